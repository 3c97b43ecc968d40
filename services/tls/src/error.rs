//! The crate's error type.

use std::path::PathBuf;

/// Why TLS material or a TLS configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it returned.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the kind needed.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A certificate or key breaks the security policy (SHA-1 signature, short RSA key, ...).
    #[error("{subject}: refused by policy: {reason}")]
    Policy {
        /// Which certificate (its subject, or the file).
        subject: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A certificate could not be parsed.
    #[error("certificate does not parse: {0}")]
    Certificate(String),
    /// rustls refused the configuration (for instance a key that does not match the
    /// certificate).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// Generating certificates failed.
    #[error("generating certificates: {0}")]
    Generate(String),
}
