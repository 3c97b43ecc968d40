//! Rendering checks with `pdftoppm`: page 1 of each background colour, portrait and landscape,
//! turns into a non-empty PNG. The reference pictures in docs/txt2pdf/ are only rewritten by
//! the ignored `regenerate_reference_pictures` test, run on purpose.
#![allow(clippy::unwrap_used)]

mod common;

use common::{have, report, run, save, scratch};
use sixstack_txt2pdf::{
    convert, Background, BarColor, CarriageControl, Options, Orientation, Stamp,
};
use std::path::Path;

const COLORS: [(BarColor, &str); 5] = [
    (BarColor::Green, "green"),
    (BarColor::Blue, "blue"),
    (BarColor::Gray, "gray"),
    (BarColor::Orange, "orange"),
    (BarColor::Yellow, "yellow"),
];

fn layouts() -> Vec<(String, Vec<u8>)> {
    let (input, _) = report(CarriageControl::Asa, 2, 40);
    let mut out = Vec::new();
    for (color, name) in COLORS {
        for (orientation, o) in [
            (Orientation::Portrait, "portrait"),
            (Orientation::Landscape, "landscape"),
        ] {
            let opts = Options {
                orientation,
                carriage_control: CarriageControl::Asa,
                background: Background {
                    bars: Some(color),
                    bar_lines: 3,
                    tractor_holes: true,
                },
                header: Some("&LSIXSTACK DEMO REPORT&R&D".into()),
                page_numbers: true,
                timestamp: Stamp::parse("2024-01-01T09:00").ok(),
                ..Options::default()
            };
            out.push((
                format!("{name}-bar-letter-{o}"),
                convert(&input, &opts).unwrap(),
            ));
        }
    }
    out
}

fn render(pdf: &Path, prefix: &Path, dpi: &str) -> std::path::PathBuf {
    let out = run(
        "pdftoppm",
        &[
            "-png",
            "-r",
            dpi,
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            pdf.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    prefix.with_extension("png")
}

#[test]
fn first_pages_render() {
    if !have("pdftoppm", "rendering checks") {
        return;
    }
    for (name, pdf) in layouts() {
        let path = save(&pdf, &format!("{name}.pdf"));
        let png = std::fs::read(render(&path, &scratch(&name), "50")).unwrap();
        assert!(png.len() > 1000 && png.starts_with(b"\x89PNG"), "{name}");
    }
}

#[test]
#[ignore = "rewrites docs/txt2pdf/*.png; run on purpose after layout changes"]
fn regenerate_reference_pictures() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/txt2pdf");
    std::fs::create_dir_all(&docs).unwrap();
    for (name, pdf) in layouts() {
        let path = save(&pdf, &format!("{name}.pdf"));
        render(&path, &docs.join(&name), "40");
    }
}
