//! Lengths with units and paper sizes, all resolved to PDF points (1/72 in).

use crate::error::Txt2PdfError;

/// Points per inch.
pub const PT_PER_IN: f64 = 72.0;

/// Parses a length such as `0.5in`, `12mm`, `2cm` or `36pt` into points.
///
/// A unit is required, except for a plain `0`.
pub fn parse_length(s: &str) -> Result<f64, Txt2PdfError> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || Txt2PdfError::InvalidLength(s.to_string());
    let (num, factor) = if let Some(n) = t.strip_suffix("in") {
        (n, PT_PER_IN)
    } else if let Some(n) = t.strip_suffix("mm") {
        (n, PT_PER_IN / 25.4)
    } else if let Some(n) = t.strip_suffix("cm") {
        (n, PT_PER_IN / 2.54)
    } else if let Some(n) = t.strip_suffix("pt") {
        (n, 1.0)
    } else if t.parse::<f64>().ok() == Some(0.0) {
        (t.as_str(), 0.0)
    } else {
        return Err(bad());
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() {
        return Err(bad());
    }
    Ok(v * factor)
}

/// A sheet of paper, in points, as it feeds (portrait: width < height for the named sizes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paper {
    /// Width in points.
    pub width: f64,
    /// Height in points.
    pub height: f64,
}

impl Paper {
    /// US Letter, 8.5 x 11 in.
    pub const LETTER: Paper = Paper {
        width: 612.0,
        height: 792.0,
    };
    /// US Legal, 8.5 x 14 in.
    pub const LEGAL: Paper = Paper {
        width: 612.0,
        height: 1008.0,
    };
    /// ISO A4, 210 x 297 mm.
    pub const A4: Paper = Paper {
        width: 595.2756,
        height: 841.8898,
    };
    /// ISO A3, 297 x 420 mm.
    pub const A3: Paper = Paper {
        width: 841.8898,
        height: 1190.5512,
    };
    /// Continuous fanfold line-printer paper, 14 7/8 x 11 in (132 columns at 10 cpi).
    pub const FANFOLD: Paper = Paper {
        width: 1071.0,
        height: 792.0,
    };

    /// Parses `letter`, `legal`, `a4`, `a3`, `fanfold`, or a custom `WIDTHxHEIGHT` such as
    /// `8.5inx11in`, `210mmx297mm` or `8.5x11in` (a missing first unit is taken from the second).
    pub fn parse(s: &str) -> Result<Paper, Txt2PdfError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "letter" => return Ok(Self::LETTER),
            "legal" => return Ok(Self::LEGAL),
            "a4" => return Ok(Self::A4),
            "a3" => return Ok(Self::A3),
            "fanfold" | "greenbar" => return Ok(Self::FANFOLD),
            _ => {}
        }
        let bad = || Txt2PdfError::InvalidPaper(s.to_string());
        let (w, h) = t.split_once('x').ok_or_else(bad)?;
        let height = parse_length(h).map_err(|_| bad())?;
        let width = match parse_length(w) {
            Ok(v) => v,
            Err(_) => {
                let unit = h
                    .trim()
                    .get(h.trim().len().saturating_sub(2)..)
                    .ok_or_else(bad)?;
                parse_length(&format!("{}{unit}", w.trim())).map_err(|_| bad())?
            }
        };
        Ok(Paper { width, height })
    }

    /// Checks both sides are within what PDF viewers accept (1 pt to 200 in).
    pub fn validate(&self) -> Result<(), Txt2PdfError> {
        for side in [self.width, self.height] {
            if !(1.0..=14400.0).contains(&side) {
                return Err(Txt2PdfError::PaperOutOfRange(side));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(parse_length("1in").unwrap(), 72.0);
        assert_eq!(parse_length("36pt").unwrap(), 36.0);
        assert!((parse_length("25.4mm").unwrap() - 72.0).abs() < 1e-9);
        assert!((parse_length(" 2.54CM ").unwrap() - 72.0).abs() < 1e-9);
        assert_eq!(parse_length("0").unwrap(), 0.0);
        assert!(parse_length("12").is_err());
        assert!(parse_length("in").is_err());
        assert!(parse_length("nanin").is_err());
        assert!(parse_length("infin").is_err());
        assert!(parse_length("").is_err());
    }

    #[test]
    fn papers() {
        assert_eq!(Paper::parse("A4").unwrap(), Paper::A4);
        assert_eq!(Paper::parse("8.5inx11in").unwrap(), Paper::LETTER);
        assert_eq!(Paper::parse("8.5x11in").unwrap(), Paper::LETTER);
        let p = Paper::parse("210mmx297mm").unwrap();
        assert!((p.width - Paper::A4.width).abs() < 0.01);
        assert!(Paper::parse("x").is_err());
        assert!(Paper::parse("huge").is_err());
        assert!(Paper::parse("0inx11in").unwrap().validate().is_err());
        assert!(Paper::parse("300inx11in").unwrap().validate().is_err());
    }
}
