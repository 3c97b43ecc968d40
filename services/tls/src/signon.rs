//! Sign-on with a client certificate: which user a verified client certificate stands
//! for. A service (FTP, the proxy) asks [`UserMap::user_for`] after the handshake; the
//! certificate has already been verified against the listener's client CA.

use std::collections::HashMap;

use crate::CertInfo;

/// How certificates map to users: an explicit table by SHA-256 fingerprint (exact
/// certificates) or by subject, and optionally the subject's common name as the user name.
#[derive(Debug, Clone, Default)]
pub struct UserMap {
    by_fingerprint: HashMap<String, String>,
    by_subject: HashMap<String, String>,
    /// Fall back to the certificate's common name as the user name.
    pub common_name_is_user: bool,
}

fn normalize_fingerprint(f: &str) -> String {
    f.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl UserMap {
    /// An empty map (no certificate signs anyone on).
    pub fn new() -> UserMap {
        UserMap::default()
    }

    /// Maps the certificate with this SHA-256 fingerprint (any separators, any case).
    pub fn map_fingerprint(&mut self, fingerprint: &str, user: impl Into<String>) {
        self.by_fingerprint
            .insert(normalize_fingerprint(fingerprint), user.into());
    }

    /// Maps every certificate with this exact subject (as [`CertInfo::subject`] prints it).
    pub fn map_subject(&mut self, subject: impl Into<String>, user: impl Into<String>) {
        self.by_subject.insert(subject.into(), user.into());
    }

    /// The user `cert` signs on as: fingerprint first, then subject, then (if enabled) the
    /// common name. A common name that is empty or not a plain user name (letters, digits,
    /// `.`, `_`, `-`) maps to nobody.
    pub fn user_for(&self, cert: &CertInfo) -> Option<String> {
        if let Some(u) = self
            .by_fingerprint
            .get(&normalize_fingerprint(&cert.sha256))
        {
            return Some(u.clone());
        }
        if let Some(u) = self.by_subject.get(&cert.subject) {
            return Some(u.clone());
        }
        let cn = cert.common_name.as_deref()?;
        let plain = !cn.is_empty()
            && cn.len() <= 64
            && cn
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !cn.starts_with('.');
        (self.common_name_is_user && plain).then(|| cn.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::selfsigned::{LabCa, Validity};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    fn info(pem: &str) -> CertInfo {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        CertInfo::from_der(&der).unwrap()
    }

    #[test]
    fn fingerprint_subject_and_common_name() {
        let ca = LabCa::new("map CA").unwrap();
        let alice = info(&ca.client("alice", Validity::default()).unwrap().cert_pem);
        let bob = info(&ca.client("bob", Validity::default()).unwrap().cert_pem);
        let odd = info(&ca.client("../etc", Validity::default()).unwrap().cert_pem);
        let mut m = UserMap::new();
        assert_eq!(m.user_for(&alice), None, "empty map signs nobody on");
        m.common_name_is_user = true;
        assert_eq!(m.user_for(&alice).as_deref(), Some("alice"));
        assert_eq!(m.user_for(&odd), None, "not a plain user name");
        m.map_fingerprint(&alice.sha256.to_lowercase(), "ALICE-ADMIN");
        assert_eq!(m.user_for(&alice).as_deref(), Some("ALICE-ADMIN"));
        m.map_subject(bob.subject.clone(), "robert");
        assert_eq!(m.user_for(&bob).as_deref(), Some("robert"));
    }
}
