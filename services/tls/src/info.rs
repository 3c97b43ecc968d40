//! What a certificate says, in the fields an operator (and a sign-on mapping) needs:
//! subject, issuer, serial, validity, subject alternative names, SHA-256 fingerprint, key
//! type and size, signature algorithm.

use std::fmt;
use std::net::IpAddr;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::TlsError;

/// The facts of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name (RFC 4514 style, as x509 prints it).
    pub subject: String,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// Not valid before (RFC 2822 date).
    pub not_before: String,
    /// Not valid after (RFC 2822 date).
    pub not_after: String,
    /// Not valid after, Unix seconds.
    pub not_after_unix: i64,
    /// Subject alternative names: `DNS:name`, `IP:addr`, `email:addr`, `URI:uri`.
    pub sans: Vec<String>,
    /// SHA-256 over the DER certificate, colon-separated upper-case hex.
    pub sha256: String,
    /// Key type: `RSA`, `EC P-256`, `EC P-384`, `Ed25519`, ...
    pub key_type: String,
    /// Key size in bits.
    pub key_bits: u32,
    /// Signature algorithm name (or OID when unknown).
    pub signature: String,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn time_text(t: x509_parser::time::ASN1Time) -> String {
    t.to_rfc2822().unwrap_or_else(|e| e.to_string())
}

impl CertInfo {
    /// Reads the facts out of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, TlsError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| TlsError::Certificate(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                sans.push(match name {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::RFC822Name(e) => format!("email:{e}"),
                    GeneralName::URI(u) => format!("URI:{u}"),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => format!(
                            "IP:{}",
                            IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or([0; 4]))
                        ),
                        16 => format!(
                            "IP:{}",
                            IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or([0; 16]))
                        ),
                        _ => format!("IP:{}", colon_hex(b)),
                    },
                    other => format!("{other:?}"),
                });
            }
        }
        let (key_type, key_bits) = match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => ("RSA".to_string(), rsa.key_size() as u32),
            Ok(PublicKey::EC(point)) => {
                let curve = cert
                    .public_key()
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some("1.2.840.10045.3.1.7") => ("EC P-256".to_string(), 256),
                    Some("1.3.132.0.34") => ("EC P-384".to_string(), 384),
                    Some("1.3.132.0.35") => ("EC P-521".to_string(), 521),
                    other => (
                        format!("EC {}", other.unwrap_or("unknown curve")),
                        point.key_size() as u32,
                    ),
                }
            }
            Ok(PublicKey::DSA(_)) => ("DSA".to_string(), 0),
            Ok(PublicKey::GostR3410(_)) | Ok(PublicKey::GostR3410_2012(_)) => {
                ("GOST".to_string(), 0)
            }
            Ok(PublicKey::Unknown(_)) | Err(_) => {
                let oid = cert.public_key().algorithm.algorithm.to_id_string();
                match oid.as_str() {
                    "1.3.101.112" => ("Ed25519".to_string(), 256),
                    "1.3.101.113" => ("Ed448".to_string(), 456),
                    _ => (format!("unknown ({oid})"), 0),
                }
            }
        };
        let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
        let signature = match sig_oid.as_str() {
            "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption".to_string(),
            "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption".to_string(),
            "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption".to_string(),
            "1.2.840.113549.1.1.10" => "rsassaPss".to_string(),
            "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256".to_string(),
            "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384".to_string(),
            "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512".to_string(),
            "1.3.101.112" => "Ed25519".to_string(),
            _ => crate::policy::WEAK_SIGNATURE_OIDS
                .iter()
                .find(|(o, _)| *o == sig_oid)
                .map_or(sig_oid.clone(), |(_, n)| (*n).to_string()),
        };
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            common_name,
            issuer: cert.issuer().to_string(),
            serial: colon_hex(match tbs.raw_serial() {
                // DER's sign byte, not part of the number.
                [0, rest @ ..] if rest.first().is_some_and(|b| b & 0x80 != 0) => rest,
                raw => raw,
            }),
            not_before: time_text(cert.validity().not_before),
            not_after: time_text(cert.validity().not_after),
            not_after_unix: cert.validity().not_after.timestamp(),
            sans,
            sha256: colon_hex(&crate::provider::sha256(der)),
            key_type,
            key_bits,
            signature,
            is_ca: cert.is_ca(),
        })
    }

    /// The signature algorithm's OID if it is one the policy refuses (SHA-1, MD5).
    pub fn weak_signature(&self) -> Option<&'static str> {
        crate::policy::WEAK_SIGNATURE_OIDS
            .iter()
            .find(|(_, n)| *n == self.signature)
            .map(|(_, n)| *n)
    }

    /// Checks the certificate against the policy's key and signature rules.
    pub fn check_policy(&self) -> Result<(), TlsError> {
        let refuse = |reason: String| {
            Err(TlsError::Policy {
                subject: self.subject.clone(),
                reason,
            })
        };
        if let Some(sig) = self.weak_signature() {
            return refuse(format!("signed with {sig} (SHA-1 and MD5 are refused)"));
        }
        if self.key_type == "RSA" && self.key_bits < crate::policy::MIN_RSA_BITS {
            return refuse(format!(
                "RSA key of {} bits (at least {} required)",
                self.key_bits,
                crate::policy::MIN_RSA_BITS
            ));
        }
        Ok(())
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "subject:     {}", self.subject)?;
        writeln!(f, "issuer:      {}", self.issuer)?;
        writeln!(f, "serial:      {}", self.serial)?;
        writeln!(f, "not before:  {}", self.not_before)?;
        writeln!(f, "not after:   {}", self.not_after)?;
        writeln!(
            f,
            "SANs:        {}",
            if self.sans.is_empty() {
                "-".to_string()
            } else {
                self.sans.join(", ")
            }
        )?;
        writeln!(f, "key:         {} {} bits", self.key_type, self.key_bits)?;
        writeln!(f, "signature:   {}", self.signature)?;
        writeln!(f, "CA:          {}", if self.is_ca { "yes" } else { "no" })?;
        write!(f, "SHA-256:     {}", self.sha256)
    }
}
