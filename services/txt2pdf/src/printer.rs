//! A simulated line printer: spacing, page ejects, overprinting, wrapping and clipping, placing
//! each printed line on a page row.

use crate::error::Txt2PdfError;

/// Most pages one conversion may produce (guards against inputs made of form feeds).
pub const MAX_PAGES: usize = 100_000;

/// One printed line on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedLine {
    /// Line slot on the page, 0 at the top of the text area.
    pub row: usize,
    /// The characters printed there.
    pub text: String,
}

/// A page: its printed lines in print order (overprinted lines share a row).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The lines, in the order they were printed.
    pub lines: Vec<PlacedLine>,
}

/// A bookmark target: a title and where its line landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Outline title.
    pub title: String,
    /// Page index, 0-based.
    pub page: usize,
    /// Row on that page.
    pub row: usize,
}

/// Where the carriage rests right after a page eject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// Above the first line: spacing before printing (plain text, ASA) lands on row 0.
    AboveFirstLine,
    /// On the first line: printing happens before spacing (machine carriage control).
    FirstLine,
}

/// The printer state. Ejects are lazy: a new page is only started when something is printed on
/// it, so a leading eject makes no blank first page and trailing ejects make no blank last page;
/// two ejects in a row do make a blank page between.
#[derive(Debug)]
pub struct Printer {
    lines_per_page: usize,
    columns: usize,
    wrap: bool,
    home: Home,
    /// Row of the carriage; -1 means above the first line.
    row: i64,
    pages: Vec<Page>,
    current: Page,
    touched: bool,
    pending_ejects: usize,
    marks: Vec<Mark>,
}

impl Printer {
    /// A printer for pages of `lines_per_page` rows and `columns` characters (both at least 1).
    pub fn new(lines_per_page: usize, columns: usize, wrap: bool, home: Home) -> Self {
        let mut p = Self {
            lines_per_page: lines_per_page.max(1),
            columns: columns.max(1),
            wrap,
            home,
            row: 0,
            pages: Vec::new(),
            current: Page::default(),
            touched: false,
            pending_ejects: 0,
            marks: Vec::new(),
        };
        p.row = p.home_row();
        p
    }

    fn home_row(&self) -> i64 {
        match self.home {
            Home::AboveFirstLine => -1,
            Home::FirstLine => 0,
        }
    }

    /// Skips to channel 1: the next print goes on a new page.
    pub fn eject(&mut self) -> Result<(), Txt2PdfError> {
        if self.touched || self.pending_ejects > 0 {
            if self.pages.len() + self.pending_ejects + 1 >= MAX_PAGES {
                return Err(Txt2PdfError::TooManyPages(MAX_PAGES));
            }
            self.pending_ejects += 1;
        }
        self.row = self.home_row();
        Ok(())
    }

    /// Moves the paper `n` lines; running off the bottom continues on row 0 of the next page.
    pub fn space(&mut self, n: usize) -> Result<(), Txt2PdfError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let target = self.row.saturating_add(n);
        if target >= self.lines_per_page as i64 {
            self.eject()?;
            self.row = 0;
        } else {
            self.row = target;
        }
        Ok(())
    }

    /// Prints `text` at the carriage row (row 0 when above the first line), wrapping (spacing one line per piece)
    /// or clipping at the right margin. `bookmark` is recorded at the first piece.
    pub fn print(&mut self, text: &str, bookmark: Option<String>) -> Result<(), Txt2PdfError> {
        let chars: Vec<char> = text.chars().collect();
        let mut pieces = chars.chunks(self.columns);
        let first: String = pieces
            .next()
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        self.place(first, bookmark);
        if self.wrap {
            for piece in pieces {
                self.space(1)?;
                self.place(piece.iter().collect(), None);
            }
        }
        Ok(())
    }

    fn place(&mut self, text: String, bookmark: Option<String>) {
        if self.pending_ejects > 0 {
            self.pages.push(std::mem::take(&mut self.current));
            for _ in 1..self.pending_ejects {
                self.pages.push(Page::default());
            }
            self.pending_ejects = 0;
        }
        self.row = self.row.max(0);
        let row = usize::try_from(self.row).unwrap_or(0);
        if let Some(title) = bookmark {
            self.marks.push(Mark {
                title,
                page: self.pages.len(),
                row,
            });
        }
        self.current.lines.push(PlacedLine { row, text });
        self.touched = true;
    }

    /// The finished pages (at least one, blank if nothing was printed) and bookmarks.
    pub fn finish(mut self) -> (Vec<Page>, Vec<Mark>) {
        self.pages.push(self.current);
        (self.pages, self.marks)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rows(p: &Page) -> Vec<(usize, &str)> {
        p.lines.iter().map(|l| (l.row, l.text.as_str())).collect()
    }

    #[test]
    fn spacing_and_overflow() {
        let mut p = Printer::new(3, 10, true, Home::AboveFirstLine);
        for t in ["a", "b", "c", "d"] {
            p.space(1).unwrap();
            p.print(t, None).unwrap();
        }
        let (pages, _) = p.finish();
        assert_eq!(pages.len(), 2);
        assert_eq!(rows(&pages[0]), vec![(0, "a"), (1, "b"), (2, "c")]);
        assert_eq!(rows(&pages[1]), vec![(0, "d")]);
    }

    #[test]
    fn lazy_ejects() {
        let mut p = Printer::new(5, 10, true, Home::AboveFirstLine);
        p.eject().unwrap();
        p.space(1).unwrap();
        p.print("first", Some("F".into())).unwrap();
        p.eject().unwrap();
        p.eject().unwrap();
        p.space(1).unwrap();
        p.print("third", Some("T".into())).unwrap();
        p.eject().unwrap();
        let (pages, marks) = p.finish();
        assert_eq!(pages.len(), 3);
        assert!(pages[1].lines.is_empty());
        assert_eq!(
            marks[1],
            Mark {
                title: "T".into(),
                page: 2,
                row: 0
            }
        );
    }

    #[test]
    fn wraps_and_clips() {
        let mut p = Printer::new(2, 3, true, Home::FirstLine);
        p.print("abcdefg", None).unwrap();
        let (pages, _) = p.finish();
        assert_eq!(rows(&pages[0]), vec![(0, "abc"), (1, "def")]);
        assert_eq!(rows(&pages[1]), vec![(0, "g")]);
        let mut p = Printer::new(2, 3, false, Home::FirstLine);
        p.print("abcdefg", None).unwrap();
        assert_eq!(rows(&p.finish().0[0]), vec![(0, "abc")]);
    }

    #[test]
    fn nothing_printed_is_one_blank_page() {
        let mut p = Printer::new(2, 3, true, Home::FirstLine);
        p.eject().unwrap();
        p.space(usize::MAX).unwrap();
        let (pages, marks) = p.finish();
        assert_eq!(pages, vec![Page::default()]);
        assert!(marks.is_empty());
    }
}
