//! The crypto provider: aws-lc-rs by default, ring with `--no-default-features --features
//! ring` (the measurement behind the choice is in the README). The provider is restricted
//! to the policy's algorithms before anything uses it.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, NamedGroup};

#[cfg(feature = "aws-lc")]
pub(crate) use aws_lc_rs as crypto;
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
pub(crate) use ring as crypto;

#[cfg(not(any(feature = "aws-lc", feature = "ring")))]
compile_error!("sixstack-tls needs a crypto provider: enable feature `aws-lc` or `ring`");

/// The name of the provider in use.
pub fn name() -> &'static str {
    if cfg!(feature = "aws-lc") {
        "aws-lc-rs"
    } else {
        "ring"
    }
}

/// The cipher suites the policy allows: AEAD only (AES-GCM and ChaCha20-Poly1305), and
/// for TLS 1.2 only ECDHE key exchange with ECDSA or RSA signatures.
pub const ALLOWED_SUITES: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// Key-exchange groups allowed: elliptic-curve Diffie-Hellman (and its hybrid with
/// ML-KEM), all ephemeral, so every session has forward secrecy.
pub const ALLOWED_GROUPS: &[NamedGroup] = &[
    NamedGroup::X25519,
    NamedGroup::secp256r1,
    NamedGroup::secp384r1,
    NamedGroup::X25519MLKEM768,
];

/// The provider, restricted to [`ALLOWED_SUITES`] and [`ALLOWED_GROUPS`].
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc")]
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .retain(|s| ALLOWED_SUITES.contains(&s.suite()));
    p.kx_groups.retain(|g| ALLOWED_GROUPS.contains(&g.name()));
    Arc::new(p)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = crypto::digest::digest(&crypto::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Fills `buf` from the system's secure random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), rustls::Error> {
    use crypto::rand::SecureRandom;
    crypto::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| rustls::Error::FailedToGetRandomBytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_keeps_only_aead_ecdhe() {
        let p = provider();
        assert!(!p.cipher_suites.is_empty());
        for s in &p.cipher_suites {
            let name = format!("{:?}", s.suite());
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
            assert!(
                name.starts_with("TLS13_") || name.contains("ECDHE"),
                "{name}"
            );
        }
        assert!(p
            .kx_groups
            .iter()
            .all(|g| ALLOWED_GROUPS.contains(&g.name())));
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
