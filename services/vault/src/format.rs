//! The vault file's byte layout: header, sealed entry table and whole-file tag.
//!
//! All integers are big-endian. Format version 1:
//!
//! | bytes | field |
//! |------:|-------|
//! | 8 | magic `SIXVAULT` |
//! | 2 | format version, `1` |
//! | 1 | key kind: `1` passphrase (Argon2id, version 0x13), `2` machine key file |
//! | 12 | passphrase vaults only: Argon2id memory in KiB, passes, lanes (`u32` each) |
//! | 16 | random salt (new on every `init` and `rekey`) |
//! | 32 | key check value: keyed BLAKE2b-256 of a fixed label under the master key |
//! | 4 | number of entries |
//! | … | the entries, sorted by name, each: name length (1 byte), name, 24-byte nonce, sealed length (4 bytes), sealed secret (XChaCha20-Poly1305 under the entry subkey, the name as associated data, tag last) |
//! | 32 | file tag: keyed BLAKE2b-256 of every byte before it, under the file-tag subkey |
//!
//! The master key is Argon2id(passphrase, salt) for passphrase vaults and keyed
//! BLAKE2b-256(salt) under the key file's 32 bytes for key file vaults; the entry and
//! file-tag subkeys are keyed BLAKE2b-256 of distinct labels under the master key.
//!
//! Reading checks, in order: magic ([`VaultError::NotAVault`]), version
//! ([`VaultError::UnsupportedVersion`]), key check value ([`VaultError::WrongKey`]), then
//! the file tag and the layout ([`VaultError::Tampered`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::VaultError;
use crate::key::{Kdf, KdfParams, MasterKey, SALT_LEN};
use crate::name::{name_problem, MAX_SECRET_LEN};
use crate::seal::{SealedEntry, NONCE_LEN, TAG_LEN};

/// The first bytes of every vault file.
pub(crate) const MAGIC: &[u8; 8] = b"SIXVAULT";

/// The format version this crate reads and writes.
pub(crate) const VERSION: u16 = 1;

const KIND_PASSPHRASE: u8 = 1;
const KIND_KEY_FILE: u8 = 2;
const CHECK_LEN: usize = 32;
const FILE_TAG_LEN: usize = 32;

/// The sealed entries of a vault, by name.
pub(crate) type Entries = BTreeMap<String, SealedEntry>;

/// A vault's contents once its key and whole-file tag have been checked.
#[derive(Debug)]
pub(crate) struct Contents {
    /// How its master key is made.
    pub(crate) kdf: Kdf,
    /// Its master key.
    pub(crate) key: MasterKey,
    /// Its sealed entries.
    pub(crate) entries: Entries,
}

/// Serialises a vault.
pub(crate) fn encode(contents: &Contents) -> Result<Vec<u8>, VaultError> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    match &contents.kdf {
        Kdf::Argon2id { params, salt } => {
            out.push(KIND_PASSPHRASE);
            out.extend_from_slice(&params.memory_kib().to_be_bytes());
            out.extend_from_slice(&params.time_cost().to_be_bytes());
            out.extend_from_slice(&params.lanes().to_be_bytes());
            out.extend_from_slice(salt);
        }
        Kdf::KeyFile { salt } => {
            out.push(KIND_KEY_FILE);
            out.extend_from_slice(salt);
        }
    }
    out.extend_from_slice(&contents.key.check_value()?);
    let too_big = || VaultError::Crypto("writing the entry table");
    let count = u32::try_from(contents.entries.len()).map_err(|_| too_big())?;
    out.extend_from_slice(&count.to_be_bytes());
    for (name, sealed) in &contents.entries {
        out.push(u8::try_from(name.len()).map_err(|_| too_big())?);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&sealed.nonce);
        let len = u32::try_from(sealed.ciphertext.len()).map_err(|_| too_big())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&sealed.ciphertext);
    }
    let tag = contents.key.file_tag(&out)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Reads a vault file's `bytes`; `derive` turns the header's key recipe into the master
/// key (it reports a missing or mismatched key source itself).
pub(crate) fn decode(
    path: &Path,
    bytes: &[u8],
    derive: impl FnOnce(&Kdf) -> Result<MasterKey, VaultError>,
) -> Result<Contents, VaultError> {
    let tampered = || VaultError::Tampered {
        path: path.to_path_buf(),
    };
    let header = parse_header(bytes).map_err(|damage| match damage {
        Damage::NotAVault => VaultError::NotAVault {
            path: path.to_path_buf(),
        },
        Damage::Version(found) => VaultError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: VERSION,
        },
        Damage::Damaged => tampered(),
    })?;
    let key = derive(&header.kdf)?;
    if !key.check_matches(&header.check)? {
        return Err(VaultError::WrongKey {
            path: path.to_path_buf(),
        });
    }
    let split = bytes
        .len()
        .checked_sub(FILE_TAG_LEN)
        .filter(|&split| split >= header.len)
        .ok_or_else(tampered)?;
    let (content, tag) = bytes.split_at(split);
    if !key.file_tag_matches(content, tag)? {
        return Err(tampered());
    }
    let entries = parse_entries(&content[header.len..]).ok_or_else(tampered)?;
    Ok(Contents {
        kdf: header.kdf,
        key,
        entries,
    })
}

/// Why a header could not be read.
enum Damage {
    /// No magic bytes.
    NotAVault,
    /// Another format version.
    Version(u16),
    /// Truncated or out-of-range fields.
    Damaged,
}

/// A parsed header.
struct Header {
    kdf: Kdf,
    check: [u8; CHECK_LEN],
    /// Its length in bytes.
    len: usize,
}

/// A cursor over bytes being parsed.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, Damage> {
    if bytes.len() < MAGIC.len() {
        // A prefix of the magic is a truncated vault; anything else is another file.
        return Err(if MAGIC.starts_with(bytes) {
            Damage::Damaged
        } else {
            Damage::NotAVault
        });
    }
    let mut r = Reader { bytes, pos: 0 };
    if r.take(MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(Damage::NotAVault);
    }
    let version = u16::from_be_bytes(r.array().ok_or(Damage::Damaged)?);
    if version != VERSION {
        return Err(Damage::Version(version));
    }
    let kdf = (|| match r.u8()? {
        KIND_PASSPHRASE => {
            let (memory, time, lanes) = (r.u32()?, r.u32()?, r.u32()?);
            let params = KdfParams::new(memory, time, lanes).ok()?;
            Some(Kdf::Argon2id {
                params,
                salt: r.array::<SALT_LEN>()?,
            })
        }
        KIND_KEY_FILE => Some(Kdf::KeyFile {
            salt: r.array::<SALT_LEN>()?,
        }),
        _ => None,
    })()
    .ok_or(Damage::Damaged)?;
    let check = r.array::<CHECK_LEN>().ok_or(Damage::Damaged)?;
    Ok(Header {
        kdf,
        check,
        len: r.pos,
    })
}

/// Parses the entry table; `None` if it is malformed in any way (bad counts or lengths,
/// invalid or unsorted names, trailing bytes).
fn parse_entries(table: &[u8]) -> Option<Entries> {
    let mut r = Reader {
        bytes: table,
        pos: 0,
    };
    let count = r.u32()?;
    let mut entries = Entries::new();
    for _ in 0..count {
        let name_len = usize::from(r.u8()?);
        let name = std::str::from_utf8(r.take(name_len)?).ok()?;
        if name_problem(name).is_some() {
            return None;
        }
        if entries
            .last_key_value()
            .is_some_and(|(last, _)| last.as_str() >= name)
        {
            return None;
        }
        let nonce = r.array::<NONCE_LEN>()?;
        let sealed_len = usize::try_from(r.u32()?).ok()?;
        if !(TAG_LEN..=MAX_SECRET_LEN + TAG_LEN).contains(&sealed_len) {
            return None;
        }
        let ciphertext = r.take(sealed_len)?.to_vec();
        entries.insert(name.to_owned(), SealedEntry { nonce, ciphertext });
    }
    r.at_end().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_classification() {
        assert!(matches!(parse_header(b""), Err(Damage::Damaged)));
        assert!(matches!(parse_header(b"SIXV"), Err(Damage::Damaged)));
        assert!(matches!(parse_header(b"hello"), Err(Damage::NotAVault)));
        assert!(matches!(
            parse_header(b"NOTAVAULT-at-all"),
            Err(Damage::NotAVault)
        ));
        assert!(matches!(
            parse_header(b"SIXVAULT\x00\x02"),
            Err(Damage::Version(2))
        ));
        assert!(matches!(
            parse_header(b"SIXVAULT\x00\x01\x03"),
            Err(Damage::Damaged)
        ));
        assert!(matches!(
            parse_header(b"SIXVAULT\x00\x01\x02"),
            Err(Damage::Damaged)
        ));
    }

    #[test]
    fn header_refuses_huge_argon_costs() {
        let mut bytes = b"SIXVAULT\x00\x01\x01".to_vec();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&[0; SALT_LEN + CHECK_LEN]);
        assert!(matches!(parse_header(&bytes), Err(Damage::Damaged)));
    }

    #[test]
    fn entry_table_refuses_malformed() {
        assert!(parse_entries(b"").is_none());
        assert!(parse_entries(&[0, 0, 0, 0]).is_some());
        assert!(parse_entries(&[0, 0, 0, 0, 9]).is_none());
        assert!(parse_entries(&[0, 0, 0, 1]).is_none());
        // One entry with an empty name.
        assert!(parse_entries(&[0, 0, 0, 1, 0]).is_none());
    }
}
