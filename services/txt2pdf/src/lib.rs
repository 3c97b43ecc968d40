//! Text to PDF: a line-printer report (optionally with carriage control) laid out on pages
//! of a chosen paper, font and background.
//!
//! [`convert`] turns bytes into a PDF; [`convert_file`] reads and writes files. The layout is
//! plain code: [`carriage`] drives a simulated [`printer`], [`content`] draws each page and
//! [`pdf`] assembles the document with lopdf (including AES-256 encryption). [`cli`] holds the
//! command-line options of `sixstack txt2pdf`.

#![forbid(unsafe_code)]

pub mod background;
pub mod carriage;
pub mod cli;
pub mod content;
pub mod decorate;
pub mod encrypt;
pub mod error;
pub mod geometry;
pub mod input;
pub mod options;
pub mod outline;
pub mod pdf;
pub mod printer;
pub mod stamp;
pub mod units;
pub mod winansi;

pub use error::Txt2PdfError;
pub use geometry::Geometry;
pub use options::{
    Background, BarColor, CarriageControl, DocInfo, Encryption, FontFamily, FontStyle,
    InputEncoding, Margins, Options, Orientation, Overflow, Permissions,
};
pub use stamp::Stamp;
pub use units::{parse_length, Paper};

use std::path::Path;

/// Converts `text` into a PDF document laid out as `opts` asks.
///
/// Never panics; bad options give a typed error, any input bytes give a valid PDF (empty input
/// gives one blank page).
pub fn convert(text: &[u8], opts: &Options) -> Result<Vec<u8>, Txt2PdfError> {
    let g = Geometry::new(opts)?;
    if let Some(enc) = &opts.encryption {
        encrypt::validate(enc)?;
    }
    let pattern = opts
        .bookmark_pattern
        .as_deref()
        .map(regex::Regex::new)
        .transpose()?;
    let feed = carriage::Feed {
        control: opts.carriage_control,
        encoding: opts.encoding,
        tab_width: opts.tab_width,
        lines_per_page: g.lines_per_page,
        columns: g.columns,
        wrap: opts.overflow == Overflow::Wrap,
        bookmarks: pattern.as_ref(),
    };
    let (pages, marks) = carriage::lay_out(text, &feed)?;
    pdf::write(&pages, &marks, &g, opts)
}

/// Reads `input`, converts it and writes the PDF to `output`.
pub fn convert_file(input: &Path, output: &Path, opts: &Options) -> Result<(), Txt2PdfError> {
    let text = std::fs::read(input).map_err(|source| Txt2PdfError::Io {
        path: input.to_path_buf(),
        source,
    })?;
    let pdf = convert(&text, opts)?;
    std::fs::write(output, pdf).map_err(|source| Txt2PdfError::Io {
        path: output.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
