//! Tests of the vault's operations: round trips, keys, key files, errors and secrecy.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::error::KeyFileProblem;
use crate::test_support::{fast_params, pass, ScratchDir};

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn set_get_list_rm_round_trip() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let key = pass("correct horse");
    let mut vault = Vault::init_with(&path, &key, fast_params()).unwrap();
    assert!(vault.is_empty());
    assert_eq!(mode_of(&path), 0o600);
    vault.set("smtp:reports@mail", "pw-smtp").unwrap();
    vault.set("ftp.example", "pw-ftp").unwrap();
    vault.set("empty", "").unwrap();
    vault.set("ftp.example", "pw-ftp-2").unwrap();
    assert_eq!(vault.list(), ["empty", "ftp.example", "smtp:reports@mail"]);
    assert_eq!(vault.len(), 3);

    let reopened = Vault::open(&path, &key).unwrap();
    assert_eq!(reopened.get("ftp.example").unwrap().as_str(), "pw-ftp-2");
    assert_eq!(
        reopened.get("smtp:reports@mail").unwrap().as_str(),
        "pw-smtp"
    );
    assert_eq!(reopened.get("empty").unwrap().as_str(), "");
    assert!(reopened.contains("empty"));
    assert_eq!(reopened.kdf_params(), Some(fast_params()));
    assert_eq!(reopened.key_kind(), KeyKind::Passphrase);

    vault.rm("empty").unwrap();
    match vault.rm("empty") {
        Err(VaultError::NotFound { name }) => assert_eq!(name, "empty"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match vault.get("nope") {
        Err(e @ VaultError::NotFound { .. }) => assert!(e.to_string().contains("\"nope\"")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let reopened = Vault::open(&path, &key).unwrap();
    assert_eq!(reopened.list(), ["ftp.example", "smtp:reports@mail"]);
    // The lock file sits beside the vault and is private too.
    assert_eq!(mode_of(&lock_path(&path)), 0o600);
}

#[test]
fn large_secret_round_trip_and_limits() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let mut vault = Vault::init_with(&path, &pass("p"), fast_params()).unwrap();
    let big = "s".repeat(crate::MAX_SECRET_LEN);
    vault.set("big", &big).unwrap();
    assert_eq!(
        Vault::open(&path, &pass("p"))
            .unwrap()
            .get("big")
            .unwrap()
            .as_str(),
        big
    );
    assert!(matches!(
        vault.set("big", &format!("{big}!")),
        Err(VaultError::SecretTooLarge { .. })
    ));
    for bad in ["", "has space", "tab\t", &"n".repeat(256), "caf\u{e9}"] {
        assert!(
            matches!(vault.set(bad, "x"), Err(VaultError::BadName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn a_second_handle_sees_changes_after_reload() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let key = pass("p");
    let mut first = Vault::init_with(&path, &key, fast_params()).unwrap();
    let mut second = Vault::open(&path, &key).unwrap();
    first.set("a", "1").unwrap();
    assert!(second.list().is_empty());
    second.reload().unwrap();
    assert_eq!(second.list(), ["a"]);
    // A change through a stale handle keeps what others wrote.
    let mut stale = Vault::open(&path, &key).unwrap();
    first.set("b", "2").unwrap();
    stale.set("c", "3").unwrap();
    assert_eq!(stale.list(), ["a", "b", "c"]);
}

#[test]
fn init_refuses_to_overwrite() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let mut vault = Vault::init_with(&path, &pass("p"), fast_params()).unwrap();
    vault.set("keep", "me").unwrap();
    assert!(matches!(
        Vault::init_with(&path, &pass("other"), fast_params()),
        Err(VaultError::AlreadyExists { .. })
    ));
    let new_key = dir.join("new.key");
    assert!(matches!(
        Vault::init(&path, &KeySource::key_file(&new_key)),
        Err(VaultError::AlreadyExists { .. })
    ));
    assert!(!new_key.exists(), "no key file is made for a refused init");
    std::fs::write(dir.join("plain"), b"not a vault").unwrap();
    assert!(matches!(
        Vault::init_with(dir.join("plain"), &pass("p"), fast_params()),
        Err(VaultError::AlreadyExists { .. })
    ));
    assert_eq!(
        Vault::open(&path, &pass("p"))
            .unwrap()
            .get("keep")
            .unwrap()
            .as_str(),
        "me"
    );
}

#[test]
fn init_errors() {
    let dir = ScratchDir::new();
    assert!(matches!(
        Vault::init_with(dir.join("v"), &pass(""), fast_params()),
        Err(VaultError::EmptyPassphrase)
    ));
    assert!(matches!(
        Vault::init_with(dir.join("no/such/dir/v"), &pass("p"), fast_params()),
        Err(VaultError::Io { .. })
    ));
    assert!(matches!(
        KdfParams::new(0, 1, 1),
        Err(VaultError::BadKdfParams { .. })
    ));
    assert!(matches!(
        KdfParams::new(64, 0, 1),
        Err(VaultError::BadKdfParams { .. })
    ));
    assert!(matches!(
        KdfParams::new(64, 1, 0),
        Err(VaultError::BadKdfParams { .. })
    ));
    assert!(matches!(
        KdfParams::new(1 << 21, 1, 1),
        Err(VaultError::BadKdfParams { .. })
    ));
    assert_eq!(KdfParams::default().memory_kib(), 65536);
}

#[test]
fn open_errors() {
    let dir = ScratchDir::new();
    assert!(matches!(
        Vault::open(dir.join("missing"), &pass("p")),
        Err(VaultError::Missing { .. })
    ));
    std::fs::write(dir.join("plain"), b"just some text file\n").unwrap();
    assert!(matches!(
        Vault::open(dir.join("plain"), &pass("p")),
        Err(VaultError::NotAVault { .. })
    ));
    let path = dir.join("vault");
    Vault::init_with(&path, &pass("p"), fast_params()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[9] = 2;
    std::fs::write(&path, &bytes).unwrap();
    match Vault::open(&path, &pass("p")) {
        Err(VaultError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }) => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn wrong_passphrase_is_wrong_key() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let mut vault = Vault::init_with(&path, &pass("right"), fast_params()).unwrap();
    vault.set("a", "secret-a").unwrap();
    assert!(matches!(
        Vault::open(&path, &pass("wrong")),
        Err(VaultError::WrongKey { .. })
    ));
    assert!(matches!(
        Vault::open(&path, &KeySource::key_file(dir.join("kf"))),
        Err(VaultError::KeyKindMismatch {
            vault: KeyKind::Passphrase,
            given: KeyKind::KeyFile,
            ..
        })
    ));
}

#[test]
fn key_file_vault_round_trip_and_wrong_key_file() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let key_path = dir.join("machine.key");
    let key = KeySource::key_file(&key_path);
    let mut vault = Vault::init(&path, &key).unwrap();
    assert_eq!(vault.key_kind(), KeyKind::KeyFile);
    assert_eq!(vault.kdf_params(), None);
    assert_eq!(mode_of(&key_path), 0o600);
    assert_eq!(std::fs::metadata(&key_path).unwrap().len(), 32);
    vault.set("ftp.example", "kf-secret").unwrap();
    assert_eq!(
        Vault::open(&path, &key)
            .unwrap()
            .get("ftp.example")
            .unwrap()
            .as_str(),
        "kf-secret"
    );

    // Another, valid key file does not open it.
    let other_path = dir.join("other.key");
    Vault::init(dir.join("other-vault"), &KeySource::key_file(&other_path)).unwrap();
    assert!(matches!(
        Vault::open(&path, &KeySource::key_file(&other_path)),
        Err(VaultError::WrongKey { .. })
    ));
    assert!(matches!(
        Vault::open(&path, &pass("p")),
        Err(VaultError::KeyKindMismatch {
            vault: KeyKind::KeyFile,
            ..
        })
    ));
    // An existing key file is reused by init, not replaced.
    let before = std::fs::read(&key_path).unwrap();
    Vault::init(dir.join("vault2"), &key).unwrap();
    assert_eq!(std::fs::read(&key_path).unwrap(), before);
}

#[test]
fn key_file_checks() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let key_path = dir.join("machine.key");
    let key = KeySource::key_file(&key_path);
    Vault::init(&path, &key).unwrap();

    for mode in [0o640, 0o604, 0o660, 0o644] {
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode)).unwrap();
        match Vault::open(&path, &key) {
            Err(
                e @ VaultError::BadKeyFile {
                    problem: KeyFileProblem::TooOpen { .. },
                    ..
                },
            ) => {
                assert!(e.to_string().contains("chmod 600"), "{e}");
            }
            other => panic!("mode {mode:o}: expected TooOpen, got {other:?}"),
        }
    }
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Vault::open(&path, &key).is_ok());

    let short = dir.join("short.key");
    std::fs::write(&short, [1u8; 31]).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        Vault::open(&path, &KeySource::key_file(&short)),
        Err(VaultError::BadKeyFile {
            problem: KeyFileProblem::WrongLength { len: 31 },
            ..
        })
    ));
    assert!(matches!(
        Vault::init(dir.join("v-short"), &KeySource::key_file(&short)),
        Err(VaultError::BadKeyFile { .. })
    ));
    assert!(!dir.join("v-short").exists());

    let as_dir = dir.join("dir.key");
    std::fs::create_dir(&as_dir).unwrap();
    std::fs::set_permissions(&as_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        Vault::open(&path, &KeySource::key_file(&as_dir)),
        Err(VaultError::BadKeyFile {
            problem: KeyFileProblem::NotAFile,
            ..
        })
    ));
    std::fs::remove_file(&key_path).unwrap();
    assert!(matches!(
        Vault::open(&path, &key),
        Err(VaultError::Io { .. })
    ));
}

#[test]
fn rekey_between_passphrases_and_key_files() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let mut vault = Vault::init_with(&path, &pass("old"), fast_params()).unwrap();
    vault.set("a", "secret-a").unwrap();
    vault.set("b", "secret-b").unwrap();

    vault.rekey(&pass("new")).unwrap();
    assert_eq!(vault.kdf_params(), Some(fast_params()));
    assert!(matches!(
        Vault::open(&path, &pass("old")),
        Err(VaultError::WrongKey { .. })
    ));
    let reopened = Vault::open(&path, &pass("new")).unwrap();
    assert_eq!(reopened.get("a").unwrap().as_str(), "secret-a");
    assert_eq!(reopened.get("b").unwrap().as_str(), "secret-b");

    // The same handle keeps working after its own rekey.
    vault.set("c", "secret-c").unwrap();

    let key_file = KeySource::key_file(dir.join("machine.key"));
    vault.rekey(&key_file).unwrap();
    assert_eq!(mode_of(&dir.join("machine.key")), 0o600);
    let reopened = Vault::open(&path, &key_file).unwrap();
    assert_eq!(reopened.list(), ["a", "b", "c"]);
    assert_eq!(reopened.get("c").unwrap().as_str(), "secret-c");

    vault.rekey_with(&pass("back"), fast_params()).unwrap();
    assert_eq!(
        Vault::open(&path, &pass("back"))
            .unwrap()
            .get("b")
            .unwrap()
            .as_str(),
        "secret-b"
    );
    assert!(matches!(
        vault.rekey(&pass("")),
        Err(VaultError::EmptyPassphrase)
    ));

    // A handle holding the old key learns that the vault moved on.
    let mut stale = Vault::open(&path, &pass("back")).unwrap();
    vault.rekey(&pass("newest")).unwrap();
    assert!(matches!(
        stale.set("d", "x"),
        Err(VaultError::WrongKey { .. })
    ));
}

#[test]
fn import_netrc_round_trip() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let netrc = dir.join("netrc");
    std::fs::write(
        &netrc,
        "machine ftp.example login alice password ftp-pw\n\
         machine mail.example\n login reports@mail\n password \"mail pw\"\n\
         macdef init\nput x\n\n\
         machine nopass login u\n\
         default login anonymous password guest\n",
    )
    .unwrap();
    let mut vault = Vault::init_with(&path, &pass("p"), fast_params()).unwrap();
    vault.set("ftp.example:alice", "old").unwrap();
    let names = vault.import_netrc(&netrc).unwrap();
    assert_eq!(names, ["ftp.example:alice", "mail.example:reports@mail"]);
    let reopened = Vault::open(&path, &pass("p")).unwrap();
    assert_eq!(
        reopened.get("ftp.example:alice").unwrap().as_str(),
        "ftp-pw"
    );
    assert_eq!(
        reopened.get("mail.example:reports@mail").unwrap().as_str(),
        "mail pw"
    );
    assert_eq!(reopened.len(), 2);

    std::fs::write(
        &netrc,
        "machine a login b password ok\nmachine c passwd leaked-secret\n",
    )
    .unwrap();
    match vault.import_netrc(&netrc) {
        Err(e @ VaultError::Netrc { line: 2, .. }) => {
            let text = e.to_string();
            assert!(text.contains(":2:"), "{text}");
            assert!(!text.contains("leaked-secret"), "{text}");
        }
        other => panic!("expected a Netrc error, got {other:?}"),
    }
    assert!(
        !Vault::open(&path, &pass("p")).unwrap().contains("a:b"),
        "nothing imported"
    );

    std::fs::write(&netrc, b"machine a password ok\n\xff\xfe\n").unwrap();
    assert!(matches!(
        vault.import_netrc(&netrc),
        Err(VaultError::Netrc { line: 2, .. })
    ));
    assert!(matches!(
        vault.import_netrc(dir.join("none")),
        Err(VaultError::Io { .. })
    ));
}

#[test]
fn no_secret_in_debug_display_or_file() {
    let dir = ScratchDir::new();
    let path = dir.join("vault");
    let passphrase = "PASSPHRASE-MARKER-0451";
    let secret = "SECRET-MARKER-8812";
    let key = pass(passphrase);
    let mut vault = Vault::init_with(&path, &key, fast_params()).unwrap();
    vault.set("svc", secret).unwrap();
    let got = vault.get("svc").unwrap();

    let netrc = dir.join("netrc");
    std::fs::write(
        &netrc,
        format!("machine m login l password {secret} {secret}\n"),
    )
    .unwrap();
    let errors = [
        Vault::open(&path, &pass("wrong")).unwrap_err(),
        vault.get("nope").unwrap_err(),
        vault.set("bad name", secret).unwrap_err(),
        vault.set("big", &secret.repeat(10_000)).unwrap_err(),
        vault.import_netrc(&netrc).unwrap_err(),
        Vault::init_with(&path, &key, fast_params()).unwrap_err(),
    ];
    let mut texts = vec![
        format!("{vault:?}"),
        format!("{key:?}"),
        format!("{:?}", KeySource::passphrase(secret)),
        format!("{:?}", vault.contents),
    ];
    for e in &errors {
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    for text in &texts {
        assert!(
            !text.contains(secret) && !text.contains(passphrase),
            "leak in {text}"
        );
    }
    assert_eq!(got.as_str(), secret);

    let bytes = std::fs::read(&path).unwrap();
    for needle in [secret.as_bytes(), passphrase.as_bytes()] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}
