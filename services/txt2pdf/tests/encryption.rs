//! Tool-based checks of AES-256 encryption: the password is needed, qpdf reports R6/AESv3 and
//! exactly the permissions that were set.
#![allow(clippy::unwrap_used)]

mod common;

use common::{extract, have, run, save};
use sixstack_txt2pdf::{convert, Encryption, Options, Permissions};

fn encrypted(permissions: Permissions) -> std::path::PathBuf {
    let opts = Options {
        encryption: Some(Encryption {
            user_password: "open sesame".into(),
            owner_password: Some("master key".into()),
            permissions,
        }),
        ..Options::default()
    };
    save(
        &convert(b"CONFIDENTIAL PAYROLL\n", &opts).unwrap(),
        "enc.pdf",
    )
}

#[test]
fn opens_only_with_a_password() {
    if !have("qpdf", "encryption checks") || !have("pdftotext", "encryption checks") {
        return;
    }
    let path = encrypted(Permissions::ALL);
    let p = path.to_str().unwrap();
    assert!(!run("qpdf", &["--check", "--password=WRONG", p])
        .status
        .success());
    assert!(!run("qpdf", &["--check", p]).status.success());
    let user = run("qpdf", &["--check", "--password=open sesame", p]);
    assert!(
        user.status.success(),
        "{}",
        String::from_utf8_lossy(&user.stdout)
    );
    let owner = run("qpdf", &["--check", "--password=master key", p]);
    assert!(String::from_utf8_lossy(&owner.stdout).contains("Supplied password is owner password"));
    assert_eq!(
        extract(&path, Some("open sesame")),
        vec!["CONFIDENTIAL PAYROLL"]
    );
    assert!(!run("pdftotext", &["-upw", "WRONG", p, "-"])
        .status
        .success());
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(12).any(|w| w == b"CONFIDENTIAL"));
}

#[test]
fn reports_aes256_r6_and_permissions() {
    if !have("qpdf", "encryption checks") {
        return;
    }
    let perms = Permissions {
        print: true,
        annotate: true,
        accessibility: true,
        ..Permissions::NONE
    };
    let path = encrypted(perms);
    let out = run(
        "qpdf",
        &[
            "--show-encryption",
            "--password=open sesame",
            path.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "R = 6",
        "stream encryption method: AESv3",
        "string encryption method: AESv3",
        "print low resolution: allowed",
        "print high resolution: not allowed",
        "extract for any purpose: not allowed",
        "extract for accessibility: allowed",
        "modify annotations: allowed",
        "modify other: not allowed",
        "modify document assembly: not allowed",
        "modify forms: not allowed",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}
