//! Page content streams: background, the printed lines, header and footer, as PDF operators.

use crate::background;
use crate::decorate::Parts;
use crate::geometry::Geometry;
use crate::options::Background;
use crate::printer::Page;
use crate::winansi::{encode, write_literal};

/// Resource name of the body font.
pub const BODY_FONT: &str = "F1";
/// Resource name of the header/footer font (Courier, so alignment is exact).
pub const DECOR_FONT: &str = "F2";
/// Advance of a Courier glyph as a fraction of the font size.
const COURIER_ADVANCE: f64 = 0.6;

/// A number as PDF writes it: at most three decimals, no trailing zeros.
pub fn num(v: f64) -> String {
    let v = if v.is_finite() {
        (v * 1000.0).round() / 1000.0
    } else {
        0.0
    };
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// What goes around the text of a page.
#[derive(Debug)]
pub struct Decor<'a> {
    /// Paper background.
    pub background: &'a Background,
    /// Expanded header parts, if any.
    pub header: Option<Parts>,
    /// Expanded footer parts, if any.
    pub footer: Option<Parts>,
    /// Bottom margin, to centre the footer in it.
    pub bottom_margin: f64,
}

fn show(out: &mut Vec<u8>, font: &str, size: f64, x: f64, y: f64, text: &str) {
    out.extend_from_slice(
        format!(
            "BT /{font} {} Tf 1 0 0 1 {} {} Tm ",
            num(size),
            num(x),
            num(y)
        )
        .as_bytes(),
    );
    write_literal(out, &encode(text));
    out.extend_from_slice(b" Tj ET\n");
}

fn decoration(out: &mut Vec<u8>, g: &Geometry, parts: &Parts, baseline: f64) {
    let size = g.font_size;
    let width = |t: &str| t.chars().count() as f64 * COURIER_ADVANCE * size;
    let right_edge = g.left + g.text_width;
    if !parts.left.is_empty() {
        show(out, DECOR_FONT, size, g.left, baseline, &parts.left);
    }
    if !parts.center.is_empty() {
        let x = (g.page_width - width(&parts.center)) / 2.0;
        show(out, DECOR_FONT, size, x, baseline, &parts.center);
    }
    if !parts.right.is_empty() {
        show(
            out,
            DECOR_FONT,
            size,
            right_edge - width(&parts.right),
            baseline,
            &parts.right,
        );
    }
}

/// The content stream of one page.
pub fn page_stream(g: &Geometry, page: &Page, decor: &Decor<'_>) -> Vec<u8> {
    let mut bg = String::new();
    background::draw(&mut bg, g, decor.background);
    let mut out = bg.into_bytes();
    if page.lines.iter().any(|l| !l.text.is_empty()) {
        // Clip to the text area's width: proportional fonts may run past the nominal columns.
        out.extend_from_slice(
            format!(
                "q {} 0 {} {} re W n\n",
                num(g.left),
                num(g.text_width),
                num(g.page_height)
            )
            .as_bytes(),
        );
        out.extend_from_slice(format!("BT /{BODY_FONT} {} Tf\n", num(g.font_size)).as_bytes());
        for line in page.lines.iter().filter(|l| !l.text.is_empty()) {
            out.extend_from_slice(
                format!("1 0 0 1 {} {} Tm ", num(g.left), num(g.baseline(line.row))).as_bytes(),
            );
            write_literal(&mut out, &encode(&line.text));
            out.extend_from_slice(b" Tj\n");
        }
        out.extend_from_slice(b"ET Q\n");
    }
    let cap = 0.3 * g.font_size;
    if let Some(h) = &decor.header {
        let top_margin = g.page_height - g.top;
        decoration(&mut out, g, h, g.page_height - top_margin / 2.0 - cap);
    }
    if let Some(f) = &decor.footer {
        decoration(&mut out, g, f, decor.bottom_margin / 2.0 - cap);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::options::Options;
    use crate::printer::PlacedLine;

    #[test]
    fn numbers() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(num(595.27559), "595.276");
        assert_eq!(num(f64::NAN), "0");
    }

    #[test]
    fn stream_has_text_and_decor() {
        let g = Geometry::new(&Options::default()).unwrap();
        let page = Page {
            lines: vec![PlacedLine {
                row: 0,
                text: "Hi (1)".into(),
            }],
        };
        let bg = Background::default();
        let parts = Parts {
            left: "L".into(),
            center: String::new(),
            right: "R".into(),
        };
        let decor = Decor {
            background: &bg,
            header: Some(parts),
            footer: None,
            bottom_margin: 36.0,
        };
        let s = String::from_utf8(page_stream(&g, &page, &decor)).unwrap();
        assert!(s.contains("(Hi \\(1\\)) Tj"), "{s}");
        assert!(s.contains("/F2 10 Tf 1 0 0 1 36 "), "{s}");
        assert!(s.contains("(R) Tj"));
    }
}
