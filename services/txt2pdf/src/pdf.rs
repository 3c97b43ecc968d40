//! Assembles the PDF document: fonts, pages, outline, document info, compression, encryption.

use crate::content::{page_stream, Decor, BODY_FONT, DECOR_FONT};
use crate::decorate::{expand, footer_template};
use crate::encrypt;
use crate::error::Txt2PdfError;
use crate::geometry::{font_name, Geometry};
use crate::options::{FontFamily, Options};
use crate::outline;
use crate::printer::{Mark, Page};
use crate::winansi::text_string;
use lopdf::{dictionary, Dictionary, Document, Object, Stream, StringFormat};
use sha2::{Digest, Sha256};

/// Producer written when the options name none.
pub const DEFAULT_PRODUCER: &str = "sixstack txt2pdf";

fn font(name: &str) -> Object {
    Object::Dictionary(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => Object::Name(name.as_bytes().to_vec()),
        "Encoding" => "WinAnsiEncoding",
    })
}

fn text(s: &str) -> Object {
    Object::String(text_string(s), StringFormat::Literal)
}

fn info(opts: &Options) -> Dictionary {
    let i = &opts.info;
    let mut d = Dictionary::new();
    for (key, value) in [
        ("Title", &i.title),
        ("Author", &i.author),
        ("Subject", &i.subject),
        ("Keywords", &i.keywords),
        ("Creator", &i.creator),
    ] {
        if let Some(v) = value {
            d.set(key, text(v));
        }
    }
    d.set(
        "Producer",
        text(i.producer.as_deref().unwrap_or(DEFAULT_PRODUCER)),
    );
    if let Some(stamp) = &opts.timestamp {
        d.set("CreationDate", text(&stamp.pdf_date()));
        d.set("ModDate", text(&stamp.pdf_date()));
    }
    d
}

/// Writes strings holding bytes outside printable ASCII (ciphertext, UTF-16) in hexadecimal:
/// a raw CR or LF inside a literal string would be read back as a different byte.
fn hex_binary_strings(obj: &mut Object) {
    match obj {
        Object::String(bytes, format) if !bytes.iter().all(|b| (0x20..0x7F).contains(b)) => {
            *format = StringFormat::Hexadecimal;
        }
        Object::Array(items) => items.iter_mut().for_each(hex_binary_strings),
        Object::Dictionary(d) => d.iter_mut().for_each(|(_, v)| hex_binary_strings(v)),
        Object::Stream(s) => s.dict.iter_mut().for_each(|(_, v)| hex_binary_strings(v)),
        _ => {}
    }
}

/// Builds and serialises the document for the laid-out pages.
pub fn write(
    pages: &[Page],
    marks: &[Mark],
    g: &Geometry,
    opts: &Options,
) -> Result<Vec<u8>, Txt2PdfError> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let body_font = doc.add_object(font(g.font_name));
    let decor_name = font_name(FontFamily::Courier, opts.font_style);
    let decor_font = if decor_name == g.font_name {
        body_font
    } else {
        doc.add_object(font(decor_name))
    };
    let footer = footer_template(opts.footer.as_deref(), opts.page_numbers);
    let total = pages.len();
    let mut hasher = Sha256::new();
    let mut kids = Vec::with_capacity(total);
    for (i, page) in pages.iter().enumerate() {
        let decor = Decor {
            background: &opts.background,
            header: opts
                .header
                .as_deref()
                .map(|h| expand(h, i + 1, total, opts.timestamp.as_ref())),
            footer: footer
                .as_deref()
                .map(|f| expand(f, i + 1, total, opts.timestamp.as_ref())),
            bottom_margin: opts.margins.bottom,
        };
        let bytes = page_stream(g, page, &decor);
        hasher.update(&bytes);
        let mut stream = Stream::new(Dictionary::new(), bytes);
        if opts.compress {
            stream.compress()?;
        }
        let contents = doc.add_object(stream);
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => contents,
        });
        kids.push(page_id);
    }
    let media_box: Vec<Object> = vec![
        0.into(),
        0.into(),
        Object::Real(g.page_width as f32),
        Object::Real(g.page_height as f32),
    ];
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids.iter().map(|&k| Object::Reference(k)).collect::<Vec<_>>(),
            "Count" => i64::try_from(total).unwrap_or(i64::MAX),
            "MediaBox" => media_box,
            "Resources" => dictionary! {
                "Font" => dictionary! { BODY_FONT => body_font, DECOR_FONT => decor_font },
                "ProcSet" => vec![Object::Name(b"PDF".to_vec()), Object::Name(b"Text".to_vec())],
            },
        }),
    );
    let mut catalog = dictionary! { "Type" => "Catalog", "Pages" => pages_id };
    if let Some(outlines) = outline::add(&mut doc, marks, &kids, g) {
        catalog.set("Outlines", outlines);
        catalog.set("PageMode", "UseOutlines");
    }
    if opts.encryption.is_some() {
        // AES-256 (R6) belongs to PDF 2.0; as PDF 1.7 it is Adobe extension level 8.
        catalog.set(
            "Extensions",
            dictionary! { "ADBE" => dictionary! { "BaseVersion" => "1.7", "ExtensionLevel" => 8 } },
        );
    }
    let catalog_id = doc.add_object(catalog);
    let info_dict = info(opts);
    hasher.update(format!("{info_dict:?}").as_bytes());
    let info_id = doc.add_object(info_dict);
    let digest = hasher.finalize();
    let id = Object::String(
        digest.get(..16).unwrap_or_default().to_vec(),
        StringFormat::Hexadecimal,
    );
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    doc.trailer.set("ID", vec![id.clone(), id]);
    if let Some(enc) = &opts.encryption {
        encrypt::encrypt(&mut doc, enc)?;
    }
    for obj in doc.objects.values_mut() {
        hex_binary_strings(obj);
    }
    for (_, obj) in doc.trailer.iter_mut() {
        hex_binary_strings(obj);
    }
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| Txt2PdfError::Pdf(e.to_string()))?;
    Ok(out)
}
