//! A lab CA with a server and a client certificate (`sixstack cert selfsigned`), so an
//! appliance serves TLS out of the box and the tests have material to refuse and accept.
//! ECDSA P-256 keys, SHA-256 signatures.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::TlsError;

fn gen(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A certificate authority that can issue more certificates.
pub struct LabCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for LabCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabCa").finish_non_exhaustive()
    }
}

/// One issued certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// Validity of an issued certificate, as (year, month, day) pairs.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// First valid day.
    pub not_before: (i32, u8, u8),
    /// Last valid day.
    pub not_after: (i32, u8, u8),
}

impl Default for Validity {
    fn default() -> Validity {
        Validity {
            not_before: (2025, 1, 1),
            not_after: (2035, 1, 1),
        }
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "sixstack lab");
    d.push(DnType::CommonName, cn);
    d
}

fn apply(p: &mut CertificateParams, v: Validity) {
    let (y, m, d) = v.not_before;
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = v.not_after;
    p.not_after = rcgen::date_time_ymd(y, m, d);
}

impl LabCa {
    /// A new CA named `cn`.
    pub fn new(cn: &str) -> Result<LabCa, TlsError> {
        let key = KeyPair::generate().map_err(gen)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        apply(&mut p, Validity::default());
        let cert = p.self_signed(&key).map_err(gen)?;
        Ok(LabCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        })
    }

    fn issue(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Result<Issued, TlsError> {
        let key = KeyPair::generate().map_err(gen)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.subject_alt_names = sans;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        apply(&mut p, validity);
        let cert = p.signed_by(&key, &self.issuer).map_err(gen)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for DNS names and IP addresses.
    pub fn server(&self, names: &[String], validity: Validity) -> Result<Issued, TlsError> {
        let mut sans = Vec::new();
        for n in names {
            sans.push(match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.clone().try_into().map_err(gen)?),
            });
        }
        let cn = names.first().map_or("sixstack", String::as_str);
        self.issue(cn, sans, ExtendedKeyUsagePurpose::ServerAuth, validity)
    }

    /// A client certificate whose common name is `cn` (the user it signs on as).
    pub fn client(&self, cn: &str, validity: Validity) -> Result<Issued, TlsError> {
        self.issue(
            cn,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            validity,
        )
    }
}

/// The files `sixstack cert selfsigned` writes into a directory.
#[derive(Debug, Clone)]
pub struct LabFiles {
    /// `ca.pem`
    pub ca: PathBuf,
    /// `server.pem` (server certificate, then the CA)
    pub server_cert: PathBuf,
    /// `server.key`
    pub server_key: PathBuf,
    /// `client.pem` (client certificate, then the CA)
    pub client_cert: PathBuf,
    /// `client.key`
    pub client_key: PathBuf,
}

impl LabFiles {
    /// The file names inside `dir`.
    pub fn in_dir(dir: &Path) -> LabFiles {
        LabFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }

    /// Whether every file is there.
    pub fn exist(&self) -> bool {
        [
            &self.ca,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ]
        .iter()
        .all(|p| p.exists())
    }
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Creates a lab CA, a server certificate for `names` and a client certificate for user
/// `client_cn` in `dir` (created if missing). Keys are written mode 0600.
pub fn create(dir: &Path, names: &[String], client_cn: &str) -> Result<LabFiles, TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let files = LabFiles::in_dir(dir);
    let ca = LabCa::new("sixstack lab CA")?;
    let server = ca.server(names, Validity::default())?;
    let client = ca.client(client_cn, Validity::default())?;
    write(&files.ca, &ca.cert_pem, false)?;
    write(
        &files.server_cert,
        &format!("{}{}", server.cert_pem, ca.cert_pem),
        false,
    )?;
    write(&files.server_key, &server.key_pem, true)?;
    write(
        &files.client_cert,
        &format!("{}{}", client.cert_pem, ca.cert_pem),
        false,
    )?;
    write(&files.client_key, &client.key_pem, true)?;
    Ok(files)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::material::{certified_key, load_certs};
    use crate::CertInfo;

    #[test]
    fn lab_material_loads_and_describes_itself() {
        let dir = std::env::temp_dir().join(format!("sixstack-tls-{}", std::process::id()));
        let names = vec![
            "localhost".to_string(),
            "10.77.0.2".to_string(),
            "fd77::2".to_string(),
        ];
        let f = create(&dir, &names, "alice").unwrap();
        assert!(f.exist());
        certified_key(&f.server_cert, &f.server_key).unwrap();
        let chain = load_certs(&f.server_cert).unwrap();
        assert_eq!(chain.len(), 2);
        let leaf = CertInfo::from_der(&chain[0]).unwrap();
        assert_eq!(leaf.common_name.as_deref(), Some("localhost"));
        assert!(leaf.issuer.contains("sixstack lab CA"), "{}", leaf.issuer);
        assert_eq!(
            leaf.sans,
            vec!["DNS:localhost", "IP:10.77.0.2", "IP:fd77::2"]
        );
        assert_eq!((leaf.key_type.as_str(), leaf.key_bits), ("EC P-256", 256));
        assert_eq!(leaf.signature, "ecdsa-with-SHA256");
        assert!(!leaf.is_ca);
        assert_eq!(leaf.sha256.len(), 32 * 3 - 1);
        leaf.check_policy().unwrap();
        let ca = CertInfo::from_der(&chain[1]).unwrap();
        assert!(ca.is_ca);
        let client = CertInfo::from_der(&load_certs(&f.client_cert).unwrap()[0]).unwrap();
        assert_eq!(client.common_name.as_deref(), Some("alice"));
        // The key file is private.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f.server_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A key that does not match the certificate is refused.
        assert!(certified_key(&f.server_cert, &f.client_key).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
