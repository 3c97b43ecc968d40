//! Input bytes to records and clean text: line splitting, character decoding, tab expansion
//! and replacement of control characters.

use crate::options::InputEncoding;

/// Form feed: starts a new page wherever it appears in the text.
pub const FORM_FEED: char = '\u{0C}';

/// Splits input into records at `\n`, dropping one `\r` before it; a final newline does not
/// start another record. Empty input has no records.
pub fn records(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    let empty = input.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .map(|r| r.strip_suffix(b"\r").unwrap_or(r))
}

/// Whether records are read as UTF-8 (`true`) or Latin-1 (`false`) for this input.
pub fn reads_utf8(input: &[u8], encoding: InputEncoding) -> bool {
    match encoding {
        InputEncoding::Auto => std::str::from_utf8(input).is_ok(),
        InputEncoding::Utf8 => true,
        InputEncoding::Latin1 => false,
    }
}

/// Widest tab stop distance honoured; larger settings are reduced to it.
pub const MAX_TAB_WIDTH: usize = 64;

/// Decodes a record and makes it printable: tabs expand to stops every `tab_width` columns
/// (0: one space; at most [`MAX_TAB_WIDTH`]), form feeds stay, other control characters
/// become `?`.
pub fn clean(bytes: &[u8], utf8: bool, tab_width: usize) -> String {
    let tab_width = tab_width.min(MAX_TAB_WIDTH);
    let decoded: String = if utf8 {
        String::from_utf8_lossy(bytes).replace('\u{FFFD}', "?")
    } else {
        bytes.iter().map(|&b| char::from(b)).collect()
    };
    let mut out = String::with_capacity(decoded.len());
    let mut col = 0usize;
    for c in decoded.chars() {
        match c {
            '\t' => {
                let n = if tab_width == 0 {
                    1
                } else {
                    tab_width - col % tab_width
                };
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            FORM_FEED => {
                out.push(c);
                col = 0;
            }
            c if c.is_control() => {
                out.push('?');
                col += 1;
            }
            c => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// Splits a cleaned record at form feeds into the pieces to print, each with whether a page
/// eject comes before it. Empty pieces next to a form feed are dropped, so `"\fTITLE"` is one
/// eject then `TITLE`, and `"END\f"` is `END` then one eject (returned as a trailing piece
/// `(true, None)`).
pub fn split_form_feeds(text: &str) -> Vec<(bool, Option<&str>)> {
    let parts: Vec<&str> = text.split(FORM_FEED).collect();
    if parts.len() == 1 {
        return vec![(false, Some(text))];
    }
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let eject = i > 0;
        if !p.is_empty() {
            out.push((eject, Some(*p)));
        } else if eject {
            out.push((true, None));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_records() {
        let r: Vec<&[u8]> = records(b"a\r\nb\n\nc").collect();
        assert_eq!(r, vec![&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(records(b"a\n").count(), 1);
        assert_eq!(records(b"").count(), 0);
        assert_eq!(records(b"\n").count(), 1);
    }

    #[test]
    fn cleans() {
        assert_eq!(clean(b"a\tb", true, 8), "a       b");
        assert_eq!(clean(b"ab\tc", true, 4), "ab  c");
        assert_eq!(clean(b"a\tb", true, 0), "a b");
        assert_eq!(clean(b"\x00\x1b\x0c\xe9", false, 8), "??\u{0C}\u{e9}");
        assert_eq!(clean(b"\xff\xfe", true, 8), "??");
    }

    #[test]
    fn form_feeds() {
        assert_eq!(split_form_feeds("x"), vec![(false, Some("x"))]);
        assert_eq!(split_form_feeds("\u{0C}T"), vec![(true, Some("T"))]);
        assert_eq!(
            split_form_feeds("E\u{0C}"),
            vec![(false, Some("E")), (true, None)]
        );
        assert_eq!(
            split_form_feeds("a\u{0C}\u{0C}b"),
            vec![(false, Some("a")), (true, None), (true, Some("b"))]
        );
        assert_eq!(split_form_feeds("\u{0C}"), vec![(true, None)]);
    }
}
