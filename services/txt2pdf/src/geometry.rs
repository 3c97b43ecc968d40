//! Page geometry resolved from the options: page size, text area, line pitch, lines per page
//! and columns per line.

use crate::error::Txt2PdfError;
use crate::options::{FontFamily, FontStyle, Options, Orientation};

/// The checked, derived measurements every page shares (all lengths in points).
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Page width after orientation.
    pub page_width: f64,
    /// Page height after orientation.
    pub page_height: f64,
    /// Left edge of the text area.
    pub left: f64,
    /// Top edge of the text area (from the bottom of the page, as PDF counts).
    pub top: f64,
    /// Distance between baselines.
    pub leading: f64,
    /// Font size.
    pub font_size: f64,
    /// Lines that fit in the text area.
    pub lines_per_page: usize,
    /// Characters that fit across the text area (nominal advance of the font).
    pub columns: usize,
    /// Width of the text area.
    pub text_width: f64,
    /// PDF name of the base-14 font.
    pub font_name: &'static str,
}

/// Nominal advance per character, as a fraction of the font size: exact for Courier, the digit
/// width for Helvetica and Times (their other glyphs vary; the text area is clipped instead).
fn nominal_advance(family: FontFamily) -> f64 {
    match family {
        FontFamily::Courier => 0.6,
        FontFamily::Helvetica => 0.556,
        FontFamily::Times => 0.5,
    }
}

/// The base-14 font name for a family and style.
pub fn font_name(family: FontFamily, style: FontStyle) -> &'static str {
    use FontFamily::*;
    use FontStyle::*;
    match (family, style) {
        (Courier, Regular) => "Courier",
        (Courier, Bold) => "Courier-Bold",
        (Courier, Italic) => "Courier-Oblique",
        (Courier, BoldItalic) => "Courier-BoldOblique",
        (Helvetica, Regular) => "Helvetica",
        (Helvetica, Bold) => "Helvetica-Bold",
        (Helvetica, Italic) => "Helvetica-Oblique",
        (Helvetica, BoldItalic) => "Helvetica-BoldOblique",
        (Times, Regular) => "Times-Roman",
        (Times, Bold) => "Times-Bold",
        (Times, Italic) => "Times-Italic",
        (Times, BoldItalic) => "Times-BoldItalic",
    }
}

/// Allowance for rounding when counting how many lines or columns fit.
const EPS: f64 = 1e-6;

fn fits(space: f64, step: f64) -> usize {
    let n = ((space + EPS) / step).floor();
    if n.is_finite() && n > 0.0 {
        n.min(1_000_000.0) as usize
    } else {
        0
    }
}

impl Geometry {
    /// Checks the options and derives the page geometry.
    pub fn new(opts: &Options) -> Result<Self, Txt2PdfError> {
        opts.paper.validate()?;
        let m = opts.margins;
        for v in [m.top, m.right, m.bottom, m.left] {
            if !v.is_finite() || v < 0.0 {
                return Err(Txt2PdfError::InvalidMargin(v));
            }
        }
        let lpi = opts.lines_per_inch;
        if !(lpi > 0.0 && lpi <= 72.0) {
            return Err(Txt2PdfError::InvalidLinesPerInch(lpi));
        }
        if opts.background.bar_lines == 0 || opts.background.bar_lines > 100 {
            return Err(Txt2PdfError::InvalidBarHeight(opts.background.bar_lines));
        }
        let leading = 72.0 / lpi;
        let font_size = opts.font_size.unwrap_or(leading * 5.0 / 6.0);
        if !(1.0..=200.0).contains(&font_size) {
            return Err(Txt2PdfError::InvalidFontSize(font_size));
        }
        let (w, h) = match opts.orientation {
            Orientation::Portrait => (opts.paper.width, opts.paper.height),
            Orientation::Landscape => (opts.paper.height, opts.paper.width),
        };
        let text_width = w - m.left - m.right;
        let text_height = h - m.top - m.bottom;
        let lines = fits(text_height, leading);
        let columns = fits(text_width, font_size * nominal_advance(opts.font));
        if lines == 0 || columns == 0 {
            return Err(Txt2PdfError::NoRoomForText { lines, columns });
        }
        Ok(Self {
            page_width: w,
            page_height: h,
            left: m.left,
            top: h - m.top,
            leading,
            font_size,
            lines_per_page: lines,
            columns,
            text_width,
            font_name: font_name(opts.font, opts.font_style),
        })
    }

    /// Top edge of line slot `row` (0 is the first line of the text area).
    pub fn slot_top(&self, row: usize) -> f64 {
        self.top - self.leading * row as f64
    }

    /// Baseline of line `row`, centring the glyphs' cap height in the slot.
    pub fn baseline(&self, row: usize) -> f64 {
        self.slot_top(row) - self.leading + (self.leading - 0.6 * self.font_size) / 2.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::options::Margins;
    use crate::units::Paper;

    #[test]
    fn letter_defaults() {
        let g = Geometry::new(&Options::default()).unwrap();
        assert_eq!(g.lines_per_page, 60); // 10 in at 6 lpi
        assert_eq!(g.columns, 90); // 7.5 in of 6 pt Courier advances
        assert_eq!(g.font_size, 10.0);
        assert_eq!(g.font_name, "Courier");
    }

    #[test]
    fn fanfold_landscape_eight_lpi() {
        let o = Options {
            paper: Paper::LETTER,
            orientation: Orientation::Landscape,
            margins: Margins::uniform(0.0),
            lines_per_inch: 8.0,
            ..Options::default()
        };
        let g = Geometry::new(&o).unwrap();
        assert_eq!(g.lines_per_page, 68);
        assert_eq!(g.page_width, 792.0);
    }

    #[test]
    fn rejects_bad_values() {
        let bad = [
            Options {
                lines_per_inch: 0.0,
                ..Options::default()
            },
            Options {
                lines_per_inch: f64::NAN,
                ..Options::default()
            },
            Options {
                font_size: Some(0.5),
                ..Options::default()
            },
            Options {
                margins: Margins::uniform(-1.0),
                ..Options::default()
            },
            Options {
                margins: Margins::uniform(400.0),
                ..Options::default()
            },
            Options {
                paper: Paper {
                    width: 0.0,
                    height: 10.0,
                },
                ..Options::default()
            },
        ];
        for o in bad {
            assert!(Geometry::new(&o).is_err(), "{o:?}");
        }
    }
}
