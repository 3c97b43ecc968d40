//! Shared helpers for the tool-based checks: sample reports, temporary files, running qpdf and
//! poppler, and skipping when those tools are not installed.
#![allow(dead_code, clippy::unwrap_used)]

use sixstack_txt2pdf::CarriageControl;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether `tool` can be run; prints a note naming the skipped check if not.
pub fn have(tool: &str, check: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-v")
        .output()
        .or_else(|_| Command::new(tool).arg("--version").output())
        .is_ok();
    if !ok {
        eprintln!(
            "note: {tool} not installed (apt-get install qpdf poppler-utils); skipping {check}"
        );
    }
    ok
}

/// A fresh path in a per-process scratch folder.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("sixstack-txt2pdf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)))
}

/// Writes `pdf` to a scratch file and returns its path.
pub fn save(pdf: &[u8], name: &str) -> PathBuf {
    let p = scratch(name);
    std::fs::write(&p, pdf).unwrap();
    p
}

/// Runs a tool and returns its output.
pub fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool).args(args).output().unwrap()
}

/// Page count as `qpdf --show-npages` reports it.
pub fn npages(path: &std::path::Path, password: Option<&str>) -> usize {
    let pw = format!("--password={}", password.unwrap_or(""));
    let out = run("qpdf", &[&pw, "--show-npages", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Text lines as `pdftotext -layout` extracts them: trimmed, inner spaces collapsed, blank
/// lines and page breaks dropped.
pub fn extract(path: &std::path::Path, password: Option<&str>) -> Vec<String> {
    let mut args = vec!["-layout", "-enc", "UTF-8"];
    if let Some(pw) = password {
        args.extend(["-upw", pw]);
    }
    let p = path.to_str().unwrap();
    args.extend([p, "-"]);
    let out = run("pdftotext", &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    normalise(&String::from_utf8_lossy(&out.stdout))
}

/// Trimmed, space-collapsed, non-empty lines of `text` (form feeds count as line breaks).
pub fn normalise(text: &str) -> Vec<String> {
    text.split(['\n', '\u{0C}'])
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// A report of `pages` pages with `lines` lines each, with the carriage control `cc`; returns
/// the input bytes and the lines a reader should see.
pub fn report(cc: CarriageControl, pages: usize, lines: usize) -> (Vec<u8>, Vec<String>) {
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for p in 1..=pages {
        for l in 1..=lines {
            let text = format!(
                "PAGE {p:02} LINE {l:02} ACCOUNT {:06} (net) 1\\2 café {:>9.2}",
                p * 97 + l,
                (p * l) as f64 * 3.25
            );
            expected.push(normalise(&text).join(" "));
            let latin1: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
            match cc {
                CarriageControl::None => {
                    if l == 1 && p > 1 {
                        input.push(0x0C);
                    }
                }
                CarriageControl::Asa => input.push(match (l, l % 4) {
                    (1, _) => b'1',
                    (_, 0) => b'0',
                    _ => b' ',
                }),
                CarriageControl::Machine => input.push(if l == lines {
                    0x89
                } else if l % 3 == 0 {
                    0x11
                } else {
                    0x09
                }),
            }
            input.extend_from_slice(&latin1);
            input.push(b'\n');
        }
    }
    (input, expected)
}
