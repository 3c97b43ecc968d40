//! Header and footer templates: `&`-codes expanded per page.
//!
//! Codes: `&L`, `&C`, `&R` start the left, centred or right part (text before any of them is
//! centred); `&P` page number, `&N` number of pages, `&D` date (`YYYY-MM-DD`), `&T` time
//! (`HH:MM`), `&&` a literal `&`. Date and time come from the options' timestamp and are empty
//! without one. Any other `&x` is kept as written.

use crate::stamp::Stamp;

/// The expanded left, centre and right parts of one header or footer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parts {
    /// Left-aligned at the left margin.
    pub left: String,
    /// Centred on the page.
    pub center: String,
    /// Right-aligned at the right margin.
    pub right: String,
}

/// Expands `template` for page `page` (1-based) of `pages`.
pub fn expand(template: &str, page: usize, pages: usize, stamp: Option<&Stamp>) -> Parts {
    let mut parts = Parts::default();
    let mut which = 1u8; // 0 left, 1 centre, 2 right
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        let target = match which {
            0 => &mut parts.left,
            1 => &mut parts.center,
            _ => &mut parts.right,
        };
        if c != '&' {
            target.push(c);
            continue;
        }
        match chars.next() {
            Some('L' | 'l') => which = 0,
            Some('C' | 'c') => which = 1,
            Some('R' | 'r') => which = 2,
            Some('P' | 'p') => target.push_str(&page.to_string()),
            Some('N' | 'n') => target.push_str(&pages.to_string()),
            Some('D' | 'd') => target.push_str(&stamp.map(Stamp::date_text).unwrap_or_default()),
            Some('T' | 't') => target.push_str(&stamp.map(Stamp::time_text).unwrap_or_default()),
            Some('&') => target.push('&'),
            Some(other) => {
                target.push('&');
                target.push(other);
            }
            None => target.push('&'),
        }
    }
    parts
}

/// The footer template with page numbers added at the right, if asked for.
pub fn footer_template(footer: Option<&str>, page_numbers: bool) -> Option<String> {
    match (footer, page_numbers) {
        (f, false) => f.map(str::to_string),
        (Some(f), true) => Some(format!("{f}&RPage &P of &N")),
        (None, true) => Some("&RPage &P of &N".to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn expands_codes() {
        let s = Stamp::parse("2024-05-06T07:08").unwrap();
        let p = expand("&LRun &D &T&CSALES && CO&RPage &P/&N &x&", 3, 9, Some(&s));
        assert_eq!(p.left, "Run 2024-05-06 07:08");
        assert_eq!(p.center, "SALES & CO");
        assert_eq!(p.right, "Page 3/9 &x&");
        assert_eq!(expand("plain &D", 1, 1, None).center, "plain ");
    }

    #[test]
    fn page_number_footer() {
        assert_eq!(footer_template(None, false), None);
        assert_eq!(
            footer_template(Some("x"), true).unwrap(),
            "x&RPage &P of &N"
        );
    }
}
