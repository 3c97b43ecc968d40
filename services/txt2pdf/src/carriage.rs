//! Carriage control: reads each record's control (none, ASA or machine code) and drives the
//! simulated printer.
//!
//! Supported codes, exactly:
//!
//! * **None**: each record is spaced one line, then printed.
//! * **ASA** (column 1, applied before printing): `' '` space 1, `'0'` space 2, `'-'` space 3,
//!   `'1'` skip to channel 1 (new page), `'+'` no spacing (overprint the previous line). Any
//!   other character (channels `2`–`9`, `A`–`C`, junk) spaces 1. An empty record is a blank
//!   single-spaced line.
//! * **Machine** (first byte, a command code):
//!   - write, then move: `0x01` no move (next record overprints), `0x09` space 1, `0x11`
//!     space 2, `0x19` space 3, `0x89` skip to channel 1 (new page);
//!   - move immediately, record data not printed: `0x03` no-op, `0x0B` space 1, `0x13` space 2,
//!     `0x1B` space 3, `0x8B` skip to channel 1 (new page);
//!   - skips to channels 2–12 (`0x91`–`0xE1` write, `0x93`–`0xE3` immediate) act as space 1,
//!     since there is no carriage tape; any other byte is taken as `0x09` (write, space 1).
//!
//! In every mode a form feed (0x0C) inside the text starts a new page at that point, and lines
//! running off the bottom of the page continue at the top of the next one.

use crate::error::Txt2PdfError;
use crate::input::{clean, reads_utf8, records, split_form_feeds};
use crate::options::{CarriageControl, InputEncoding};
use crate::printer::{Home, Mark, Page, Printer};
use regex::Regex;

/// How a record moves the paper around printing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Motion {
    /// Lines to space (0 for none).
    Space(usize),
    /// Skip to channel 1.
    Eject,
}

/// One record's control: motion before printing, whether data prints, motion after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Control {
    before: Motion,
    prints: bool,
    after: Motion,
}

fn asa(code: u8) -> Control {
    let before = match code {
        b'0' => Motion::Space(2),
        b'-' => Motion::Space(3),
        b'1' => Motion::Eject,
        b'+' => Motion::Space(0),
        _ => Motion::Space(1),
    };
    Control {
        before,
        prints: true,
        after: Motion::Space(0),
    }
}

fn machine(code: u8) -> Control {
    // Write commands end in binary 001, immediate (control-only) commands in 011.
    let write = code & 0x07 == 0x01;
    let motion = match code {
        0x01 | 0x03 => Motion::Space(0),
        0x09 | 0x0B => Motion::Space(1),
        0x11 | 0x13 => Motion::Space(2),
        0x19 | 0x1B => Motion::Space(3),
        0x89 | 0x8B => Motion::Eject,
        _ => Motion::Space(1),
    };
    let immediate = code & 0x07 == 0x03 && code <= 0xE3;
    if write || !immediate {
        Control {
            before: Motion::Space(0),
            prints: true,
            after: motion,
        }
    } else {
        Control {
            before: motion,
            prints: false,
            after: Motion::Space(0),
        }
    }
}

fn apply(p: &mut Printer, m: Motion) -> Result<(), Txt2PdfError> {
    match m {
        Motion::Space(n) => p.space(n),
        Motion::Eject => p.eject(),
    }
}

/// Settings the carriage pass needs.
#[derive(Debug)]
pub struct Feed<'a> {
    /// Which carriage control the records carry.
    pub control: CarriageControl,
    /// Input character set.
    pub encoding: InputEncoding,
    /// Tab stop distance.
    pub tab_width: usize,
    /// Lines per page.
    pub lines_per_page: usize,
    /// Characters per line.
    pub columns: usize,
    /// Wrap (true) or clip long lines.
    pub wrap: bool,
    /// Lines matching become bookmarks.
    pub bookmarks: Option<&'a Regex>,
}

fn title_for(re: Option<&Regex>, text: &str) -> Option<String> {
    let caps = re?.captures(text)?;
    let m = caps.get(1).or_else(|| caps.get(0))?;
    let t = if caps.get(1).is_some() {
        m.as_str().trim()
    } else {
        text.trim()
    };
    let t: String = t.chars().take(200).collect();
    Some(if t.is_empty() { "?".to_string() } else { t })
}

/// Runs all records through the printer and returns the pages and bookmarks.
pub fn lay_out(input: &[u8], feed: &Feed<'_>) -> Result<(Vec<Page>, Vec<Mark>), Txt2PdfError> {
    let home = match feed.control {
        CarriageControl::Machine => Home::FirstLine,
        _ => Home::AboveFirstLine,
    };
    let mut p = Printer::new(feed.lines_per_page, feed.columns, feed.wrap, home);
    let utf8 = reads_utf8(input, feed.encoding);
    for rec in records(input) {
        let (ctl, data) = match (feed.control, rec.split_first()) {
            (CarriageControl::None, _) => (asa(b' '), rec),
            (_, None) => (asa(b' '), rec),
            (CarriageControl::Asa, Some((&c, rest))) => (asa(c), rest),
            (CarriageControl::Machine, Some((&c, rest))) => (machine(c), rest),
        };
        apply(&mut p, ctl.before)?;
        if ctl.prints {
            let text = clean(data, utf8, feed.tab_width);
            for (eject, piece) in split_form_feeds(&text) {
                if eject {
                    p.eject()?;
                }
                if let Some(piece) = piece {
                    p.print(piece, title_for(feed.bookmarks, piece))?;
                }
            }
        }
        apply(&mut p, ctl.after)?;
    }
    Ok(p.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(control: CarriageControl, input: &[u8], lines: usize) -> Vec<Vec<(usize, String)>> {
        let feed = Feed {
            control,
            encoding: InputEncoding::Auto,
            tab_width: 8,
            lines_per_page: lines,
            columns: 20,
            wrap: true,
            bookmarks: None,
        };
        let (pages, _) = lay_out(input, &feed).unwrap();
        pages
            .iter()
            .map(|p| p.lines.iter().map(|l| (l.row, l.text.clone())).collect())
            .collect()
    }

    fn l(row: usize, t: &str) -> (usize, String) {
        (row, t.to_string())
    }

    #[test]
    fn plain_with_form_feeds() {
        let pages = run(CarriageControl::None, b"a\nb\x0cc\n\x0cd\ne\x0c\n", 60);
        assert_eq!(
            pages,
            vec![
                vec![l(0, "a"), l(1, "b")],
                vec![l(0, "c")],
                vec![l(0, "d"), l(1, "e")]
            ]
        );
    }

    #[test]
    fn asa_codes() {
        let pages = run(CarriageControl::Asa, b"1A\n B\n0C\n-D\n+d\n1E\n1F\n", 60);
        assert_eq!(
            pages,
            vec![
                vec![l(0, "A"), l(1, "B"), l(3, "C"), l(6, "D"), l(6, "d")],
                vec![l(0, "E")],
                vec![l(0, "F")]
            ]
        );
    }

    #[test]
    fn machine_codes() {
        let pages = run(
            CarriageControl::Machine,
            b"\x8bX\n\x09A\n\x11B\n\x01C\n\x19c\n\x0bX\n\x89D\n\x09E\n",
            60,
        );
        assert_eq!(
            pages,
            vec![
                vec![l(0, "A"), l(1, "B"), l(3, "C"), l(3, "c"), l(7, "D")],
                vec![l(0, "E")]
            ]
        );
    }

    #[test]
    fn bookmark_titles() {
        let re = Regex::new(r"^REPORT (\w+)").unwrap();
        assert_eq!(
            title_for(Some(&re), "REPORT sales 2024"),
            Some("sales".into())
        );
        let re = Regex::new(r"TOTAL").unwrap();
        assert_eq!(
            title_for(Some(&re), "  GRAND TOTAL  "),
            Some("GRAND TOTAL".into())
        );
        assert_eq!(title_for(Some(&re), "nothing"), None);
    }
}
