//! Conversion options: paper, layout, carriage control, background, decorations, security.

use crate::stamp::Stamp;
use crate::units::{Paper, PT_PER_IN};

/// Which way the paper is turned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Orientation {
    /// Long side vertical.
    #[default]
    Portrait,
    /// Long side horizontal (the named paper's width and height swapped).
    Landscape,
}

/// How the first byte of each input line is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CarriageControl {
    /// Plain text: every line is printed single-spaced; form feed (0x0C) starts a new page.
    #[default]
    None,
    /// ASA (FBA/VBA) control character in column 1: ' ' single, '0' double, '-' triple space
    /// before printing, '1' new page, '+' overprint the previous line.
    Asa,
    /// Machine (FBM/VBM) command byte in column 1, e.g. 0x09 write and space 1, 0x8B skip to
    /// channel 1 (new page) immediately.
    Machine,
}

/// What happens to a line longer than the page is wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Overflow {
    /// Continue the rest on following lines.
    #[default]
    Wrap,
    /// Cut the line at the right margin.
    Clip,
}

/// Base-14 font family (always WinAnsiEncoding, never embedded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FontFamily {
    /// Fixed pitch, what a line printer looks like.
    #[default]
    Courier,
    /// Sans serif, proportional.
    Helvetica,
    /// Serif, proportional.
    Times,
}

/// Weight and slant of the font.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FontStyle {
    /// Upright, normal weight.
    #[default]
    Regular,
    /// Heavy weight.
    Bold,
    /// Slanted.
    Italic,
    /// Heavy and slanted.
    BoldItalic,
}

/// Colour of the bars of striped line-printer paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BarColor {
    /// Classic green-bar paper.
    Green,
    /// Blue bars.
    Blue,
    /// Gray bars.
    Gray,
    /// Orange bars.
    Orange,
    /// Yellow bars.
    Yellow,
}

/// Page background imitating continuous line-printer paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Background {
    /// Colour of the bars; `None` for plain white paper.
    pub bars: Option<BarColor>,
    /// Height of each bar and each white gap, in lines.
    pub bar_lines: u32,
    /// Draw tractor-feed holes in a strip along the left and right edges.
    pub tractor_holes: bool,
}

impl Default for Background {
    fn default() -> Self {
        Self {
            bars: None,
            bar_lines: 3,
            tractor_holes: false,
        }
    }
}

/// Distances from the paper edges to the text area, in points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margins {
    /// Top margin.
    pub top: f64,
    /// Right margin.
    pub right: f64,
    /// Bottom margin.
    pub bottom: f64,
    /// Left margin.
    pub left: f64,
}

impl Margins {
    /// The same margin on all four sides.
    pub fn uniform(pt: f64) -> Self {
        Self {
            top: pt,
            right: pt,
            bottom: pt,
            left: pt,
        }
    }
}

/// What the user password allows (the owner password always allows everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// Print (at least in low quality).
    pub print: bool,
    /// Print in full quality (only meaningful with `print`).
    pub print_high_quality: bool,
    /// Change the document content.
    pub modify: bool,
    /// Copy or otherwise extract text and graphics.
    pub copy: bool,
    /// Add or change annotations.
    pub annotate: bool,
    /// Fill in form fields.
    pub fill_forms: bool,
    /// Extract text for accessibility tools.
    pub accessibility: bool,
    /// Insert, rotate or delete pages and create bookmarks.
    pub assemble: bool,
}

impl Permissions {
    /// Everything allowed.
    pub const ALL: Permissions = Permissions {
        print: true,
        print_high_quality: true,
        modify: true,
        copy: true,
        annotate: true,
        fill_forms: true,
        accessibility: true,
        assemble: true,
    };
    /// Nothing allowed but opening and viewing.
    pub const NONE: Permissions = Permissions {
        print: false,
        print_high_quality: false,
        modify: false,
        copy: false,
        annotate: false,
        fill_forms: false,
        accessibility: false,
        assemble: false,
    };
}

impl Default for Permissions {
    fn default() -> Self {
        Self::ALL
    }
}

/// AES-256 encryption (PDF 2.0 standard security handler, revision 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// Password needed to open the file; empty opens without asking but keeps the permissions.
    pub user_password: String,
    /// Password that lifts all restrictions; `None` uses a random one nobody knows.
    pub owner_password: Option<String>,
    /// What a user opening with the user password may do.
    pub permissions: Permissions,
}

/// Document information dictionary entries; `None` leaves an entry out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocInfo {
    /// Document title.
    pub title: Option<String>,
    /// Person who wrote the report.
    pub author: Option<String>,
    /// What the report is about.
    pub subject: Option<String>,
    /// Search keywords.
    pub keywords: Option<String>,
    /// Application that produced the original text.
    pub creator: Option<String>,
    /// Application that made the PDF; defaults to "sixstack txt2pdf".
    pub producer: Option<String>,
}

/// How input bytes are turned into characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputEncoding {
    /// UTF-8 if the whole input is valid UTF-8, Latin-1 otherwise.
    #[default]
    Auto,
    /// UTF-8; invalid sequences become '?'.
    Utf8,
    /// ISO 8859-1, one byte per character.
    Latin1,
}

/// Everything that controls a conversion. `Options::default()` gives Letter portrait, half-inch
/// margins, 6 lines per inch, 10 pt Courier, wrapped lines, plain text, compressed, unencrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Paper size as it feeds.
    pub paper: Paper,
    /// Portrait or landscape.
    pub orientation: Orientation,
    /// Margins around the text area.
    pub margins: Margins,
    /// Line pitch; lines per page follow from paper, margins and this.
    pub lines_per_inch: f64,
    /// Font family.
    pub font: FontFamily,
    /// Font weight and slant.
    pub font_style: FontStyle,
    /// Font size in points; `None` derives it from the line pitch (5/6 of the line height).
    pub font_size: Option<f64>,
    /// Long lines: wrap or clip.
    pub overflow: Overflow,
    /// Carriage control in column 1.
    pub carriage_control: CarriageControl,
    /// Tab stops every this many columns (0 turns tabs into one space).
    pub tab_width: usize,
    /// Input character set.
    pub encoding: InputEncoding,
    /// Bar paper and tractor holes.
    pub background: Background,
    /// Header template (see [`crate::decorate`] for `&`-codes), drawn in the top margin.
    pub header: Option<String>,
    /// Footer template, drawn in the bottom margin.
    pub footer: Option<String>,
    /// Add "Page &P of &N" at the right of the footer.
    pub page_numbers: bool,
    /// Date and time for `&D`/`&T` and the document's CreationDate; none by default.
    pub timestamp: Option<Stamp>,
    /// Deflate-compress content streams.
    pub compress: bool,
    /// Encrypt with AES-256.
    pub encryption: Option<Encryption>,
    /// Lines matching this regular expression become bookmarks (capture group 1, if any, is the
    /// title; otherwise the trimmed line).
    pub bookmark_pattern: Option<String>,
    /// Document information.
    pub info: DocInfo,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            paper: Paper::LETTER,
            orientation: Orientation::Portrait,
            margins: Margins::uniform(PT_PER_IN / 2.0),
            lines_per_inch: 6.0,
            font: FontFamily::Courier,
            font_style: FontStyle::Regular,
            font_size: None,
            overflow: Overflow::Wrap,
            carriage_control: CarriageControl::None,
            tab_width: 8,
            encoding: InputEncoding::Auto,
            background: Background::default(),
            header: None,
            footer: None,
            page_numbers: false,
            timestamp: None,
            compress: true,
            encryption: None,
            bookmark_pattern: None,
            info: DocInfo::default(),
        }
    }
}
