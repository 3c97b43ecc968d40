//! The security policy: which protocol versions, whether client certificates are asked for,
//! and the rules every certificate and key must meet.

use rustls::SupportedProtocolVersion;

/// Smallest RSA modulus accepted, bits (for our own keys and for client certificates).
pub const MIN_RSA_BITS: u32 = 2048;

/// Signature algorithms refused in any certificate: SHA-1 and MD5 based.
pub const WEAK_SIGNATURE_OIDS: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
];

/// Whether (and how) a listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No certificate requested.
    #[default]
    None,
    /// Requested; a client without one is admitted, a client with a bad one is refused.
    Optional,
    /// Required: no valid certificate, no connection.
    Required,
}

/// The protocol policy of a listener or client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsPolicy {
    /// Refuse TLS 1.2 (TLS 1.3 only).
    pub require_tls13: bool,
}

impl TlsPolicy {
    /// The versions this policy speaks: TLS 1.3 and (unless required away) 1.2. SSL 3.0,
    /// TLS 1.0 and 1.1 are never offered or accepted.
    pub fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static TLS13_AND_12: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        if self.require_tls13 {
            &TLS13_ONLY
        } else {
            &TLS13_AND_12
        }
    }
}
