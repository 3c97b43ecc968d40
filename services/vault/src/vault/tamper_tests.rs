//! Tests that a damaged or tampered vault file is always refused: every byte flipped,
//! every truncation, entries removed or reordered.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::test_support::{fast_params, pass, ScratchDir};

/// Builds a small vault with two entries; returns its bytes.
fn small_vault(path: &Path, key: &KeySource) -> Vec<u8> {
    let mut vault = match key {
        KeySource::Passphrase(_) => Vault::init_with(path, key, fast_params()).unwrap(),
        _ => Vault::init(path, key).unwrap(),
    };
    vault.set("ftp.example", "secret-one").unwrap();
    vault.set("smtp:r@mail", "secret-two").unwrap();
    std::fs::read(path).unwrap()
}

/// The header length of a vault file for `key` (the bytes before the entry count).
fn header_len(key: &KeySource) -> usize {
    match key {
        KeySource::Passphrase(_) => 8 + 2 + 1 + 12 + 16 + 32,
        _ => 8 + 2 + 1 + 16 + 32,
    }
}

/// Opens `bytes` as a vault; must fail with an error, never panic or yield entries.
fn assert_refused(path: &Path, key: &KeySource, bytes: &[u8], what: &str) -> VaultError {
    std::fs::write(path, bytes).unwrap();
    match Vault::open(path, key) {
        Ok(vault) => panic!("{what}: opened with entries {:?}", vault.list()),
        Err(e) => e,
    }
}

fn flip_every_bit_pattern(key: &KeySource) {
    let dir = ScratchDir::new();
    let key = match key {
        KeySource::KeyFile(name) => KeySource::key_file(dir.path().join(name)),
        other => other.clone(),
    };
    let original_path = dir.join("original");
    let original = small_vault(&original_path, &key);
    let header = header_len(&key);
    let path = dir.join("tampered");
    for offset in 0..original.len() {
        for mask in [0x01u8, 0x80] {
            let mut bytes = original.clone();
            bytes[offset] ^= mask;
            let what = format!("offset {offset} mask {mask:#04x}");
            let err = assert_refused(&path, &key, &bytes, &what);
            let expected = match offset {
                0..=7 => matches!(err, VaultError::NotAVault { .. }),
                8..=9 => matches!(err, VaultError::UnsupportedVersion { .. }),
                10 => matches!(
                    err,
                    VaultError::Tampered { .. } | VaultError::KeyKindMismatch { .. }
                ),
                // KDF parameters, salt and key check value.
                o if o < header => {
                    matches!(
                        err,
                        VaultError::Tampered { .. } | VaultError::WrongKey { .. }
                    )
                }
                // The key is right: everything after the header is tampering.
                _ => matches!(err, VaultError::Tampered { .. }),
            };
            assert!(expected, "{what}: unexpected {err:?}");
        }
    }
    // The untouched copy still opens.
    let vault = Vault::open(&original_path, &key).unwrap();
    assert_eq!(vault.get("smtp:r@mail").unwrap().as_str(), "secret-two");
}

#[test]
fn every_flipped_bit_is_refused_passphrase() {
    flip_every_bit_pattern(&pass("tamper test"));
}

#[test]
fn every_flipped_bit_is_refused_key_file() {
    flip_every_bit_pattern(&KeySource::key_file("machine.key"));
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let dir = ScratchDir::new();
    let key = pass("p");
    let original = small_vault(&dir.join("original"), &key);
    let path = dir.join("cut");
    for len in 0..original.len() {
        assert_refused(&path, &key, &original[..len], &format!("cut to {len}"));
    }
    let mut longer = original.clone();
    longer.push(0);
    assert!(matches!(
        assert_refused(&path, &key, &longer, "one byte added"),
        VaultError::Tampered { .. }
    ));
}

/// Finds the entry records of `bytes` (vault of `small_vault`): (start, end) of each.
fn entry_records(bytes: &[u8], header: usize) -> Vec<(usize, usize)> {
    let mut pos = header + 4;
    let mut records = Vec::new();
    while pos < bytes.len() - 32 {
        let name_len = usize::from(bytes[pos]);
        let len_at = pos + 1 + name_len + 24;
        let sealed = u32::from_be_bytes(bytes[len_at..len_at + 4].try_into().unwrap()) as usize;
        let end = len_at + 4 + sealed;
        records.push((pos, end));
        pos = end;
    }
    records
}

#[test]
fn removed_reordered_or_swapped_entries_are_refused() {
    let dir = ScratchDir::new();
    let key = pass("p");
    let original = small_vault(&dir.join("original"), &key);
    let header = header_len(&key);
    let records = entry_records(&original, header);
    assert_eq!(records.len(), 2);
    let (first, second) = (records[0], records[1]);
    let path = dir.join("edited");

    // Remove the second entry and fix up the count.
    let mut removed = original[..second.0].to_vec();
    removed[header..header + 4].copy_from_slice(&1u32.to_be_bytes());
    removed.extend_from_slice(&original[second.1..]);
    assert!(matches!(
        assert_refused(&path, &key, &removed, "entry removed"),
        VaultError::Tampered { .. }
    ));

    // Swap the two entries.
    let mut swapped = original[..first.0].to_vec();
    swapped.extend_from_slice(&original[second.0..second.1]);
    swapped.extend_from_slice(&original[first.0..first.1]);
    swapped.extend_from_slice(&original[second.1..]);
    assert_eq!(swapped.len(), original.len());
    assert!(matches!(
        assert_refused(&path, &key, &swapped, "entries swapped"),
        VaultError::Tampered { .. }
    ));

    // Give the second entry's sealed secret to the first (same lengths).
    let mut moved = original.clone();
    let first_sealed = first.0 + 1 + usize::from(original[first.0]);
    let second_sealed = second.0 + 1 + usize::from(original[second.0]);
    let n = (first.1 - first_sealed).min(second.1 - second_sealed);
    moved[first_sealed..first_sealed + n]
        .copy_from_slice(&original[second_sealed..second_sealed + n]);
    assert!(matches!(
        assert_refused(&path, &key, &moved, "sealed secret moved"),
        VaultError::Tampered { .. }
    ));

    // An entry record spliced from another vault with the same passphrase.
    let other = {
        let other_path = dir.join("other");
        let mut v = Vault::init_with(&other_path, &key, fast_params()).unwrap();
        v.set("ftp.example", "attacker").unwrap();
        std::fs::read(other_path).unwrap()
    };
    let other_record = entry_records(&other, header)[0];
    let mut spliced = original[..first.0].to_vec();
    spliced.extend_from_slice(&other[other_record.0..other_record.1]);
    spliced.extend_from_slice(&original[first.1..]);
    assert!(matches!(
        assert_refused(&path, &key, &spliced, "entry spliced"),
        VaultError::Tampered { .. }
    ));
}
