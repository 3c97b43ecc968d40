//! Error type of sixstack's text-to-PDF conversion.

/// Why a conversion could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Txt2PdfError {
    /// A length such as a margin or paper side could not be parsed (`12mm`, `0.5in`, `2cm`, `36pt`).
    #[error("invalid length {0:?}: expected a number followed by in, mm, cm or pt")]
    InvalidLength(String),
    /// A paper name or custom `WIDTHxHEIGHT` size could not be parsed.
    #[error(
        "invalid paper {0:?}: expected letter, legal, a4, a3, fanfold or WIDTHxHEIGHT with units"
    )]
    InvalidPaper(String),
    /// The paper is smaller than 1 pt or larger than 200 in on a side.
    #[error("paper side {0} pt is outside 1..=14400 pt")]
    PaperOutOfRange(f64),
    /// A margin is negative or not a finite number.
    #[error("margin {0} pt is negative or not finite")]
    InvalidMargin(f64),
    /// Lines per inch must be above 0 and at most 72.
    #[error("lines per inch {0} is outside (0, 72]")]
    InvalidLinesPerInch(f64),
    /// Font size must be between 1 and 200 points.
    #[error("font size {0} pt is outside 1..=200")]
    InvalidFontSize(f64),
    /// The bar height of a striped background must be 1 to 100 lines.
    #[error("bar height {0} lines is outside 1..=100")]
    InvalidBarHeight(u32),
    /// The margins leave no room for a single line or a single column of text.
    #[error("margins leave no room for text: {lines} lines x {columns} columns fit on a page")]
    NoRoomForText {
        /// Lines that fit between top and bottom margin.
        lines: usize,
        /// Columns that fit between left and right margin.
        columns: usize,
    },
    /// The date or time given for header, footer and document info is not a real calendar time.
    #[error("invalid date/time {0:?}: expected YYYY-MM-DD[THH:MM[:SS]]")]
    InvalidDateTime(String),
    /// The bookmark pattern is not a valid regular expression.
    #[error("invalid bookmark pattern: {0}")]
    InvalidPattern(#[from] regex::Error),
    /// A name (font, background, carriage control, permission...) is not one sixstack knows.
    #[error("unknown {what} {value:?}; expected one of: {expected}")]
    UnknownName {
        /// Which kind of name was given.
        what: &'static str,
        /// The name as given.
        value: String,
        /// The accepted names.
        expected: &'static str,
    },
    /// A password is longer than 127 bytes after normalisation, or contains prohibited characters.
    #[error("unusable password: {0}")]
    InvalidPassword(String),
    /// The operating system could not supply random bytes for the encryption key.
    #[error("no randomness for the encryption key: {0}")]
    Random(String),
    /// The input would make more pages than one document may hold.
    #[error("more than {0} pages")]
    TooManyPages(usize),
    /// The PDF writer failed to build, encrypt or serialise the document.
    #[error("PDF writer: {0}")]
    Pdf(String),
    /// Reading the input or writing the output file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

impl From<lopdf::Error> for Txt2PdfError {
    fn from(e: lopdf::Error) -> Self {
        Self::Pdf(e.to_string())
    }
}
