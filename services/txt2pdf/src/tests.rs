//! Whole-conversion tests that need no external tools: structure read back with lopdf.

use super::*;
use lopdf::Document;

fn load(pdf: &[u8]) -> Document {
    Document::load_mem(pdf).unwrap()
}

fn pages(pdf: &[u8]) -> usize {
    load(pdf).get_pages().len()
}

#[test]
fn default_conversion() {
    let pdf = convert(b"hello\nworld\n", &Options::default()).unwrap();
    assert!(pdf.starts_with(b"%PDF-1.7"));
    assert_eq!(pages(&pdf), 1);
}

#[test]
fn uncompressed_streams_hold_the_text() {
    let opts = Options {
        compress: false,
        ..Options::default()
    };
    let pdf = convert(b"(paren) back\\slash caf\xc3\xa9\n", &opts).unwrap();
    let needle = b"(\\(paren\\) back\\\\slash caf\\351) Tj";
    assert!(pdf.windows(needle.len()).any(|w| w == needle));
    let compressed = convert(&b"(paren)\n".repeat(20), &Options::default()).unwrap();
    assert!(compressed.windows(11).any(|w| w == b"FlateDecode"));
}

#[test]
fn page_counts_follow_carriage_control() {
    let asa = Options {
        carriage_control: CarriageControl::Asa,
        ..Options::default()
    };
    assert_eq!(
        pages(&convert(b"1one\n two\n1three\n1four\n", &asa).unwrap()),
        3
    );
    assert_eq!(pages(&convert(b" one\n1two\n", &asa).unwrap()), 2);
    let machine = Options {
        carriage_control: CarriageControl::Machine,
        ..Options::default()
    };
    assert_eq!(
        pages(&convert(b"\x09a\n\x89b\n\x09c\n\x8b\n\x09d\n", &machine).unwrap()),
        3
    );
    let plain = Options::default();
    let long: Vec<u8> = (0..130)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    assert_eq!(pages(&convert(&long, &plain).unwrap()), 3); // 60 lines per page
}

#[test]
fn empty_and_hostile_inputs_never_fail() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut garbage = vec![0u8; 20_000];
    for b in garbage.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    let long_line = vec![b'x'; 200_000];
    let inputs: Vec<&[u8]> = vec![
        b"",
        b"\n",
        b"\x0c",
        b"\x0c\x0c\x0c",
        b"\r\r\r",
        b"\x00\xff\xfe",
        &garbage,
        &long_line,
        b"\t\t\t\t",
    ];
    for cc in [
        CarriageControl::None,
        CarriageControl::Asa,
        CarriageControl::Machine,
    ] {
        for overflow in [Overflow::Wrap, Overflow::Clip] {
            let opts = Options {
                carriage_control: cc,
                overflow,
                bookmark_pattern: Some("x".into()),
                tab_width: usize::MAX,
                ..Options::default()
            };
            for input in &inputs {
                let pdf = convert(input, &opts).unwrap();
                assert!(pages(&pdf) >= 1);
            }
        }
    }
}

#[test]
fn too_many_form_feeds_is_an_error() {
    let mut input = b"a".to_vec();
    input.extend(std::iter::repeat_n(b'\x0c', printer::MAX_PAGES + 1));
    input.push(b'b');
    assert!(matches!(
        convert(&input, &Options::default()),
        Err(Txt2PdfError::TooManyPages(_))
    ));
}

#[test]
fn bookmarks_and_info() {
    let opts = Options {
        bookmark_pattern: Some(r"^REPORT (\S+)".into()),
        info: DocInfo {
            title: Some("Réport".into()),
            ..DocInfo::default()
        },
        timestamp: Some(Stamp::parse("2024-03-04T05:06:07").unwrap()),
        compress: false,
        ..Options::default()
    };
    let pdf = convert(b"REPORT alpha\nx\n\x0cREPORT beta\n", &opts).unwrap();
    let doc = load(&pdf);
    let catalog = doc.catalog().unwrap();
    let outlines = doc
        .get_dictionary(catalog.get(b"Outlines").unwrap().as_reference().unwrap())
        .unwrap();
    assert_eq!(outlines.get(b"Count").unwrap().as_i64().unwrap(), 2);
    assert!(pdf.windows(19).any(|w| w == b"(D:20240304050607Z)"));
}

#[test]
fn encrypted_opens_with_password_only() {
    let opts = Options {
        encryption: Some(Encryption {
            user_password: "user".into(),
            owner_password: Some("owner".into()),
            permissions: Permissions {
                print: true,
                ..Permissions::NONE
            },
        }),
        ..Options::default()
    };
    let pdf = convert(b"secret text\n", &opts).unwrap();
    assert!(!pdf.windows(6).any(|w| w == b"secret"));
    let open =
        |pw: &str| Document::load_mem_with_options(&pdf, lopdf::LoadOptions::with_password(pw));
    assert!(open("wrong").is_err());
    for password in ["user", "owner"] {
        let doc = open(password).unwrap();
        assert_eq!(doc.get_pages().len(), 1);
    }
}

#[test]
fn bad_options_are_typed_errors() {
    let o = Options {
        bookmark_pattern: Some("(".into()),
        ..Options::default()
    };
    assert!(matches!(
        convert(b"x", &o),
        Err(Txt2PdfError::InvalidPattern(_))
    ));
    let o = Options {
        lines_per_inch: -1.0,
        ..Options::default()
    };
    assert!(matches!(
        convert(b"x", &o),
        Err(Txt2PdfError::InvalidLinesPerInch(_))
    ));
}
