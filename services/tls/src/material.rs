//! Certificate material: PEM chains and private keys (PKCS#8, SEC1 and PKCS#1 RSA), checked
//! against the policy when loaded, and a server certificate resolver whose material can be
//! reloaded while the appliance runs (handshakes in flight keep the material they started
//! with; a reload that fails keeps the old material and says why).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::{CertInfo, TlsError};

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every certificate of a PEM file, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

/// Reads the private key of a PEM file (PKCS#8, SEC1 EC or PKCS#1 RSA).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: format!("no usable private key (PKCS#8, SEC1 or RSA): {e}"),
    })
}

/// Reads CA certificates into a root store; each must meet the policy.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        CertInfo::from_der(&cert)?.check_policy()?;
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A chain and its key, checked: every certificate meets the policy and the key matches
/// the leaf.
pub fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert)?;
    for c in &chain {
        CertInfo::from_der(c)?.check_policy()?;
    }
    let key = load_key(key)?;
    let provider = crate::provider::provider();
    let signing = provider.key_provider.load_private_key(key)?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()?;
    Ok(Arc::new(ck))
}

/// The server certificate of a listener: the same chain for every client, swapped whole
/// by [`ReloadingResolver::reload`].
pub struct ReloadingResolver {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingResolver")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingResolver {
    /// Loads `cert` and `key` (see [`certified_key`]).
    pub fn new(cert: &Path, key: &Path) -> Result<ReloadingResolver, TlsError> {
        let ck = certified_key(cert, key)?;
        Ok(ReloadingResolver {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::new(ck),
        })
    }

    /// Reads the files again; new handshakes use the new material. On error the old
    /// material stays.
    pub fn reload(&self) -> Result<CertInfo, TlsError> {
        let ck = certified_key(&self.cert, &self.key)?;
        let info = match ck.end_entity_cert() {
            Ok(c) => CertInfo::from_der(c)?,
            Err(e) => return Err(e.into()),
        };
        self.current.store(ck);
        Ok(info)
    }

    /// The leaf certificate served now.
    pub fn leaf(&self) -> Option<CertInfo> {
        let ck = self.current.load();
        ck.end_entity_cert()
            .ok()
            .and_then(|c| CertInfo::from_der(c).ok())
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
