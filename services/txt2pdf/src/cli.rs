//! Command-line options of `sixstack txt2pdf IN OUT [options]`, turned into checked [`Options`].

use crate::encrypt::parse_permissions;
use crate::error::Txt2PdfError;
use crate::geometry::Geometry;
use crate::options::{
    Background, BarColor, CarriageControl, DocInfo, Encryption, FontFamily, FontStyle,
    InputEncoding, Margins, Options, Orientation, Overflow,
};
use crate::stamp::Stamp;
use crate::units::{parse_length, Paper};
use std::path::PathBuf;

/// Convert a text report (plain, ASA or machine carriage control) to PDF.
#[derive(Debug, Clone, clap::Args)]
pub struct Txt2PdfArgs {
    /// Text file to convert.
    pub input: PathBuf,
    /// PDF file to write.
    pub output: PathBuf,

    /// Paper: letter, legal, a4, a3, fanfold (14.875x11in) or WIDTHxHEIGHT such as 210mmx297mm.
    #[arg(long, default_value = "letter", help_heading = "Page")]
    pub paper: String,
    /// Paper orientation.
    #[arg(long, value_enum, default_value_t = Orientation::Portrait, help_heading = "Page")]
    pub orientation: Orientation,
    /// Margin on all four sides, with unit: in, mm, cm or pt (e.g. 0.5in, 12mm).
    #[arg(long, default_value = "0.5in", help_heading = "Page")]
    pub margin: String,
    /// Top margin (overrides --margin).
    #[arg(long, help_heading = "Page")]
    pub margin_top: Option<String>,
    /// Bottom margin (overrides --margin).
    #[arg(long, help_heading = "Page")]
    pub margin_bottom: Option<String>,
    /// Left margin (overrides --margin).
    #[arg(long, help_heading = "Page")]
    pub margin_left: Option<String>,
    /// Right margin (overrides --margin).
    #[arg(long, help_heading = "Page")]
    pub margin_right: Option<String>,

    /// Lines per inch (6 and 8 are the line-printer pitches); lines per page follow from paper
    /// and margins.
    #[arg(long, default_value_t = 6.0, help_heading = "Text")]
    pub lpi: f64,
    /// Base-14 font family.
    #[arg(long, value_enum, default_value_t = FontFamily::Courier, help_heading = "Text")]
    pub font: FontFamily,
    /// Font weight and slant.
    #[arg(long, value_enum, default_value_t = FontStyle::Regular, help_heading = "Text")]
    pub font_style: FontStyle,
    /// Font size in points [default: 5/6 of the line height, 10 pt at 6 lpi].
    #[arg(long, help_heading = "Text")]
    pub font_size: Option<f64>,
    /// Lines wider than the text area: wrap onto the next lines or clip at the right margin.
    #[arg(long, value_enum, default_value_t = Overflow::Wrap, help_heading = "Text")]
    pub overflow: Overflow,
    /// Carriage control in column 1: none (form feeds still eject), asa (' ' '0' '-' '1' '+'),
    /// machine (command bytes such as 0x09, 0x11, 0x89, 0x8B).
    #[arg(long = "cc", visible_alias = "carriage-control", value_enum, default_value_t = CarriageControl::None, help_heading = "Text")]
    pub carriage_control: CarriageControl,
    /// Tab stops every N columns (0 turns a tab into one space).
    #[arg(long, default_value_t = 8, help_heading = "Text")]
    pub tab_width: usize,
    /// Input character set (characters outside Windows-1252 print as '?').
    #[arg(long, value_enum, default_value_t = InputEncoding::Auto, help_heading = "Text")]
    pub encoding: InputEncoding,

    /// Bar-paper background colour [default: plain white].
    #[arg(long, value_enum, help_heading = "Background")]
    pub bars: Option<BarColor>,
    /// Height of each bar (and each white gap) in lines.
    #[arg(long, default_value_t = 3, help_heading = "Background")]
    pub bar_lines: u32,
    /// Draw tractor-feed holes along both edges (use margins of at least 0.5in).
    #[arg(long, help_heading = "Background")]
    pub tractor_holes: bool,

    /// Header in the top margin. Codes: &L &C &R left/centre/right part, &P page, &N pages,
    /// &D date, &T time, && a literal '&'.
    #[arg(long, help_heading = "Header and footer")]
    pub header: Option<String>,
    /// Footer in the bottom margin, same codes as --header.
    #[arg(long, help_heading = "Header and footer")]
    pub footer: Option<String>,
    /// Add "Page N of M" at the right of the footer.
    #[arg(long, help_heading = "Header and footer")]
    pub page_numbers: bool,
    /// Date and time for &D, &T and the document's creation date, as YYYY-MM-DD[THH:MM[:SS]]
    /// [default: now, UTC].
    #[arg(long, help_heading = "Header and footer")]
    pub date: Option<String>,

    /// Lines matching this regular expression become bookmarks; capture group 1, if present,
    /// is the bookmark title.
    #[arg(long, value_name = "REGEX", help_heading = "Document")]
    pub bookmarks: Option<String>,
    /// Document title.
    #[arg(long, help_heading = "Document")]
    pub title: Option<String>,
    /// Document author.
    #[arg(long, help_heading = "Document")]
    pub author: Option<String>,
    /// Document subject.
    #[arg(long, help_heading = "Document")]
    pub subject: Option<String>,
    /// Document keywords.
    #[arg(long, help_heading = "Document")]
    pub keywords: Option<String>,
    /// Application that created the text.
    #[arg(long, help_heading = "Document")]
    pub creator: Option<String>,
    /// Application that made the PDF [default: sixstack txt2pdf].
    #[arg(long, help_heading = "Document")]
    pub producer: Option<String>,
    /// Store page contents uncompressed (larger, readable with a text editor).
    #[arg(long, help_heading = "Document")]
    pub no_compress: bool,

    /// Encrypt with AES-256 and require this password to open (visible to other local users
    /// in the process list; empty opens without a password but keeps the restrictions).
    #[arg(long, help_heading = "Security")]
    pub user_password: Option<String>,
    /// Owner password lifting all restrictions; implies encryption [default: random, unknown].
    #[arg(long, help_heading = "Security")]
    pub owner_password: Option<String>,
    /// What opening with the user password allows, comma separated: all, none, print,
    /// print-high, modify, copy, annotate, forms, accessibility, assemble.
    #[arg(long, default_value = "all", help_heading = "Security")]
    pub permissions: String,
}

fn opt_text(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

impl Txt2PdfArgs {
    /// Checked options; `--date` or, without it, `now` supplies the timestamp.
    pub fn to_options_at(&self, now: Option<Stamp>) -> Result<Options, Txt2PdfError> {
        let all = parse_length(&self.margin)?;
        let side = |v: &Option<String>| v.as_deref().map_or(Ok(all), parse_length);
        let margins = Margins {
            top: side(&self.margin_top)?,
            right: side(&self.margin_right)?,
            bottom: side(&self.margin_bottom)?,
            left: side(&self.margin_left)?,
        };
        let timestamp = match &self.date {
            Some(d) => Some(Stamp::parse(d)?),
            None => now,
        };
        let encrypting = self.user_password.is_some() || self.owner_password.is_some();
        let encryption = if encrypting {
            Some(Encryption {
                user_password: self.user_password.clone().unwrap_or_default(),
                owner_password: self.owner_password.clone(),
                permissions: parse_permissions(&self.permissions)?,
            })
        } else {
            parse_permissions(&self.permissions)?;
            None
        };
        let bookmark_pattern = self.bookmarks.clone();
        if let Some(p) = &bookmark_pattern {
            regex::Regex::new(p)?;
        }
        let opts = Options {
            paper: Paper::parse(&self.paper)?,
            orientation: self.orientation,
            margins,
            lines_per_inch: self.lpi,
            font: self.font,
            font_style: self.font_style,
            font_size: self.font_size,
            overflow: self.overflow,
            carriage_control: self.carriage_control,
            tab_width: self.tab_width,
            encoding: self.encoding,
            background: Background {
                bars: self.bars,
                bar_lines: self.bar_lines,
                tractor_holes: self.tractor_holes,
            },
            header: opt_text(&self.header),
            footer: opt_text(&self.footer),
            page_numbers: self.page_numbers,
            timestamp,
            compress: !self.no_compress,
            encryption,
            bookmark_pattern,
            info: DocInfo {
                title: opt_text(&self.title),
                author: opt_text(&self.author),
                subject: opt_text(&self.subject),
                keywords: opt_text(&self.keywords),
                creator: opt_text(&self.creator),
                producer: opt_text(&self.producer),
            },
        };
        Geometry::new(&opts)?;
        Ok(opts)
    }

    /// Checked options, stamped with `--date` or the system clock (UTC).
    pub fn to_options(&self) -> Result<Options, Txt2PdfError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .and_then(Stamp::from_unix_seconds);
        self.to_options_at(now)
    }

    /// Converts `input` to `output` with these options.
    pub fn run(&self) -> Result<(), Txt2PdfError> {
        crate::convert_file(&self.input, &self.output, &self.to_options()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Txt2PdfArgs,
    }

    fn parse(extra: &[&str]) -> Result<Options, Txt2PdfError> {
        let argv = ["txt2pdf", "in.txt", "out.pdf"].iter().chain(extra);
        Cmd::try_parse_from(argv).unwrap().args.to_options_at(None)
    }

    #[test]
    fn defaults_match_library_defaults() {
        assert_eq!(parse(&[]).unwrap(), Options::default());
    }

    #[test]
    fn full_set() {
        let o = parse(&[
            "--paper",
            "a4",
            "--orientation",
            "landscape",
            "--margin",
            "10mm",
            "--margin-left",
            "1in",
            "--lpi",
            "8",
            "--cc",
            "asa",
            "--bars",
            "green",
            "--tractor-holes",
            "--header",
            "&LX&R&D",
            "--date",
            "2024-01-02T03:04",
            "--user-password",
            "u",
            "--permissions",
            "print,copy",
            "--bookmarks",
            "^PAGE",
            "--title",
            "T",
            "--no-compress",
            "--overflow",
            "clip",
        ])
        .unwrap();
        assert_eq!(o.paper, Paper::A4);
        assert_eq!(o.margins.left, 72.0);
        assert_eq!(o.carriage_control, CarriageControl::Asa);
        assert_eq!(o.timestamp.unwrap().date_text(), "2024-01-02");
        let e = o.encryption.unwrap();
        assert!(e.permissions.print && e.permissions.copy && !e.permissions.modify);
        assert!(!o.compress);
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(
            parse(&["--margin", "3"]),
            Err(Txt2PdfError::InvalidLength(_))
        ));
        assert!(matches!(
            parse(&["--paper", "b9"]),
            Err(Txt2PdfError::InvalidPaper(_))
        ));
        assert!(matches!(
            parse(&["--bookmarks", "("]),
            Err(Txt2PdfError::InvalidPattern(_))
        ));
        assert!(matches!(
            parse(&["--permissions", "fly"]),
            Err(Txt2PdfError::UnknownName { .. })
        ));
        assert!(matches!(
            parse(&["--margin", "5in"]),
            Err(Txt2PdfError::NoRoomForText { .. })
        ));
        assert!(matches!(
            parse(&["--date", "2024-02-30"]),
            Err(Txt2PdfError::InvalidDateTime(_))
        ));
    }
}
