//! Tool-based checks over an option matrix: every file passes `qpdf --check`, `pdftotext`
//! gives back the input lines and the page count follows the carriage control.
#![allow(clippy::unwrap_used)]

mod common;

use common::{extract, have, npages, report, run, save};
use sixstack_txt2pdf::{
    convert, Background, BarColor, CarriageControl, Encryption, FontFamily, Options, Orientation,
    Overflow, Paper, Permissions,
};

const PAPERS: [&str; 4] = ["letter", "legal", "a4", "8.5x12in"];
const BARS: [Option<BarColor>; 6] = [
    None,
    Some(BarColor::Green),
    Some(BarColor::Blue),
    Some(BarColor::Gray),
    Some(BarColor::Orange),
    Some(BarColor::Yellow),
];

fn matrix() -> Vec<(String, Options)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    for cc in [
        CarriageControl::None,
        CarriageControl::Asa,
        CarriageControl::Machine,
    ] {
        for paper in PAPERS {
            for orientation in [Orientation::Portrait, Orientation::Landscape] {
                for overflow in [Overflow::Wrap, Overflow::Clip] {
                    let encrypted = i % 3 == 1;
                    let opts = Options {
                        paper: Paper::parse(paper).unwrap(),
                        orientation,
                        overflow,
                        carriage_control: cc,
                        lines_per_inch: [6.0, 8.0][i % 2],
                        font: [
                            FontFamily::Courier,
                            FontFamily::Courier,
                            FontFamily::Helvetica,
                            FontFamily::Times,
                        ][i % 4],
                        background: Background {
                            bars: BARS[i % 6],
                            bar_lines: 1 + (i % 3) as u32,
                            tractor_holes: matches!(i % 5, 0),
                        },
                        compress: i % 4 < 2,
                        encryption: encrypted.then(|| Encryption {
                            user_password: "reader".into(),
                            owner_password: Some("boss".into()),
                            permissions: Permissions::ALL,
                        }),
                        ..Options::default()
                    };
                    out.push((
                        format!("{i:02}-{cc:?}-{paper}-{orientation:?}-{overflow:?}"),
                        opts,
                    ));
                    i += 1;
                }
            }
        }
    }
    out
}

#[test]
fn option_matrix_checks_extracts_and_counts_pages() {
    if !have("qpdf", "the option matrix") || !have("pdftotext", "the option matrix") {
        return;
    }
    let combos = matrix();
    assert_eq!(combos.len(), 48);
    for (name, opts) in combos {
        let (input, expected) = report(opts.carriage_control, 3, 12);
        let pdf = convert(&input, &opts).unwrap();
        let path = save(&pdf, &format!("{name}.pdf"));
        let pw = opts.encryption.as_ref().map(|_| "reader");
        let check = run(
            "qpdf",
            &[
                "--check",
                &format!("--password={}", pw.unwrap_or("")),
                path.to_str().unwrap(),
            ],
        );
        assert!(
            check.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        assert_eq!(npages(&path, pw), 3, "{name}");
        if opts.font == FontFamily::Courier {
            // Proportional fonts extract with unpredictable spacing; Courier gives the lines back.
            assert_eq!(extract(&path, pw), expected, "{name}");
        } else {
            let got = extract(&path, pw).join(" ");
            assert!(
                got.contains("PAGE 03") && got.contains("café"),
                "{name}: {got}"
            );
        }
    }
}

#[test]
fn asa_page_ejects_give_exact_page_counts() {
    if !have("qpdf", "ASA page counts") {
        return;
    }
    let opts = Options {
        carriage_control: CarriageControl::Asa,
        ..Options::default()
    };
    for pages in [1, 2, 7] {
        let input: Vec<u8> = (0..pages)
            .flat_map(|p| format!("1PAGE {p}\n more\n0deeper\n").into_bytes())
            .collect();
        let path = save(&convert(&input, &opts).unwrap(), "asa.pdf");
        assert_eq!(npages(&path, None), pages);
    }
    // Overflow: 130 single-spaced lines on 60-line pages make 3 pages.
    let input: Vec<u8> = (0..130)
        .flat_map(|i| format!(" line {i}\n").into_bytes())
        .collect();
    assert_eq!(
        npages(
            &save(&convert(&input, &opts).unwrap(), "asa-long.pdf"),
            None
        ),
        3
    );
}

#[test]
fn headers_footers_and_bookmarks_show_up() {
    if !have("qpdf", "header/bookmark checks") || !have("pdftotext", "header/bookmark checks") {
        return;
    }
    let opts = Options {
        header: Some("&LSALES REPORT&R&D &T".into()),
        page_numbers: true,
        timestamp: Some(sixstack_txt2pdf::Stamp::parse("2024-06-30T17:45").unwrap()),
        bookmark_pattern: Some(r"^PAGE (\d+) LINE 01".into()),
        carriage_control: CarriageControl::Asa,
        ..Options::default()
    };
    let (input, _) = report(CarriageControl::Asa, 3, 5);
    let path = save(&convert(&input, &opts).unwrap(), "decor.pdf");
    let text = extract(&path, None).join("\n");
    assert!(text.contains("SALES REPORT 2024-06-30 17:45"), "{text}");
    assert!(text.contains("Page 2 of 3"), "{text}");
    let json = run(
        "qpdf",
        &["--json", "--json-key=outlines", path.to_str().unwrap()],
    );
    let json = String::from_utf8_lossy(&json.stdout);
    for t in ["\"01\"", "\"02\"", "\"03\""] {
        assert!(json.contains(t), "{json}");
    }
}

#[test]
fn hostile_inputs_give_valid_files() {
    if !have("qpdf", "hostile-input checks") {
        return;
    }
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let long = vec![b'#'; 100_000];
    let inputs: [(&str, &[u8]); 5] = [
        ("empty", b""),
        ("feeds", b"\x0c\x0c\x0c"),
        ("garbage", &garbage),
        ("long", &long),
        ("nul", b"\0\0\0\n\r"),
    ];
    for cc in [
        CarriageControl::None,
        CarriageControl::Asa,
        CarriageControl::Machine,
    ] {
        for (name, input) in inputs {
            let opts = Options {
                carriage_control: cc,
                ..Options::default()
            };
            let path = save(&convert(input, &opts).unwrap(), &format!("{name}.pdf"));
            let check = run("qpdf", &["--check", path.to_str().unwrap()]);
            assert!(
                check.status.success(),
                "{name} {cc:?}: {}",
                String::from_utf8_lossy(&check.stdout)
            );
        }
    }
}

#[test]
fn unmappable_characters_become_question_marks() {
    if !have("pdftotext", "character mapping") {
        return;
    }
    let path = save(
        &convert("Ωmega €5 – naïve “q”\n".as_bytes(), &Options::default()).unwrap(),
        "chars.pdf",
    );
    assert_eq!(extract(&path, None), vec!["?mega €5 – naïve “q”"]);
}
