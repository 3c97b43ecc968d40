//! scpd's configuration file (TOML): where it listens, its TLS material and the CA that
//! signs appliance certificates, its SSH identity and known_hosts, and the allow-list of
//! appliances with the remote accounts each may use. A bad file is refused as a whole,
//! with its line and column.
//!
//! ```toml
//! listen = ["0.0.0.0:4422", "[::]:4422"]
//! cert = "/etc/sixstack/scpd.pem"          # the daemon's TLS certificate chain
//! key = "/etc/sixstack/scpd.key"
//! client_ca = "/etc/sixstack/appliances.pem"  # appliances' certificates must chain to it
//! identity = "/etc/sixstack/scpd_ed25519"     # the SSH private key the daemon logs in with
//! known_hosts = "/etc/sixstack/known_hosts"   # the only host keys it accepts
//!
//! [[appliance]]
//! name = "branch-7"
//! common_name = "branch-7.appliances.example"  # or: fingerprint = "AB:CD:…" (SHA-256)
//! allow = ["backup@files.example", "*@10.1.2.3"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::allow::{Appliance, Pattern};

/// The default port scpd listens on.
pub const DEFAULT_PORT: u16 = 4422;

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is wrong.
    #[error("{path}:{line}:{column}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Vec<toml::Spanned<String>>,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    identity: toml::Spanned<PathBuf>,
    known_hosts: toml::Spanned<PathBuf>,
    #[serde(default = "default_ssh")]
    ssh: toml::Spanned<PathBuf>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_secs: u32,
    #[serde(default = "default_max_sessions")]
    max_sessions: usize,
    #[serde(default)]
    require_tls13: bool,
    #[serde(default)]
    appliance: Vec<toml::Spanned<ApplianceRepr>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplianceRepr {
    name: String,
    #[serde(default)]
    common_name: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    allow: Vec<String>,
}

fn default_ssh() -> toml::Spanned<PathBuf> {
    toml::Spanned::new(0..0, PathBuf::from("/usr/bin/ssh"))
}
fn default_connect_timeout() -> u32 {
    15
}
fn default_max_sessions() -> usize {
    64
}

/// A checked configuration (paths made absolute against the file's directory).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where to listen.
    pub listen: Vec<SocketAddr>,
    /// TLS certificate chain.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The CA appliance certificates chain to.
    pub client_ca: PathBuf,
    /// Refuse TLS 1.2.
    pub require_tls13: bool,
    /// The SSH client program.
    pub ssh: PathBuf,
    /// The SSH private key.
    pub identity: PathBuf,
    /// The accepted host keys.
    pub known_hosts: PathBuf,
    /// How long an SSH connection may take to set up.
    pub connect_timeout: Duration,
    /// Appliance connections served at once.
    pub max_sessions: usize,
    /// The allow-list.
    pub appliances: Vec<Appliance>,
}

impl DaemonConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        DaemonConfig::parse(&text, &path.display().to_string(), base)
    }

    /// Parses and checks `text` (named `name` in errors; relative paths against `base`).
    pub fn parse(text: &str, name: &str, base: &Path) -> Result<DaemonConfig, ConfigError> {
        let err = |span: std::ops::Range<usize>, reason: String| {
            let (line, column) = locate(text, span.start);
            ConfigError::Invalid {
                path: name.to_string(),
                line,
                column,
                reason,
            }
        };
        let file: File = toml::from_str(text)
            .map_err(|e| err(e.span().unwrap_or(0..0), e.message().to_string()))?;
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if file.listen.is_empty() {
            return Err(err(0..0, "listen: at least one address is needed".into()));
        }
        let mut listen = Vec::new();
        for l in &file.listen {
            let a = l.get_ref().parse::<SocketAddr>().map_err(|_| {
                err(
                    l.span(),
                    format!(
                        "{:?} is not an address:port (like 0.0.0.0:4422 or [::]:4422)",
                        l.get_ref()
                    ),
                )
            })?;
            listen.push(a);
        }
        for (what, p) in [
            ("identity", &file.identity),
            ("known_hosts", &file.known_hosts),
            ("ssh", &file.ssh),
        ] {
            let full = abs(p.get_ref());
            if !full.is_file() {
                return Err(err(
                    p.span(),
                    format!("{what}: {} is not a readable file", full.display()),
                ));
            }
        }
        if !(1..=300).contains(&file.connect_timeout_secs) {
            return Err(err(0..0, "connect_timeout_secs must be 1 to 300".into()));
        }
        if !(1..=10_000).contains(&file.max_sessions) {
            return Err(err(0..0, "max_sessions must be 1 to 10000".into()));
        }
        let mut appliances: Vec<Appliance> = Vec::new();
        for a in &file.appliance {
            let r = a.get_ref();
            let bad = |reason: String| err(a.span(), format!("appliance {:?}: {reason}", r.name));
            if r.name.is_empty() || r.name.len() > 64 {
                return Err(bad("a name of 1 to 64 characters is needed".into()));
            }
            if appliances.iter().any(|x| x.name == r.name) {
                return Err(bad("named twice".into()));
            }
            let fingerprint = r.fingerprint.as_deref().map(normalize_fingerprint);
            if let Some(f) = &fingerprint {
                if f.len() != 64 {
                    return Err(bad("fingerprint must be a SHA-256 (64 hex digits)".into()));
                }
            }
            if fingerprint.is_none() && r.common_name.is_none() {
                return Err(bad(
                    "needs common_name or fingerprint to be recognised".into()
                ));
            }
            let mut allow = Vec::new();
            for p in &r.allow {
                allow.push(Pattern::parse(p).map_err(&bad)?);
            }
            appliances.push(Appliance {
                name: r.name.clone(),
                common_name: r.common_name.clone(),
                fingerprint,
                allow,
            });
        }
        Ok(DaemonConfig {
            listen,
            cert: abs(&file.cert),
            key: abs(&file.key),
            client_ca: abs(&file.client_ca),
            require_tls13: file.require_tls13,
            ssh: abs(file.ssh.get_ref()),
            identity: abs(file.identity.get_ref()),
            known_hosts: abs(file.known_hosts.get_ref()),
            connect_timeout: Duration::from_secs(u64::from(file.connect_timeout_secs)),
            max_sessions: file.max_sessions,
            appliances,
        })
    }
}

/// A SHA-256 fingerprint in upper-case hex without separators.
pub fn normalize_fingerprint(f: &str) -> String {
    f.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn locate(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> PathBuf {
        let d = std::env::temp_dir().join(format!("sixstack-scpd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("id"), "key").unwrap();
        std::fs::write(d.join("kh"), "").unwrap();
        d
    }

    const GOOD: &str = r#"
listen = ["127.0.0.1:4422", "[::1]:4422"]
cert = "s.pem"
key = "s.key"
client_ca = "ca.pem"
identity = "id"
known_hosts = "kh"
ssh = "/bin/sh"

[[appliance]]
name = "lab"
common_name = "appliance"
allow = ["alice@10.0.0.1", "*@backup.example"]
"#;

    #[test]
    fn a_good_file() {
        let b = base();
        let c = DaemonConfig::parse(GOOD, "scpd.toml", &b).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.identity, b.join("id"));
        assert_eq!(c.appliances[0].allow.len(), 2);
        assert_eq!(c.connect_timeout, Duration::from_secs(15));
    }

    #[test]
    fn bad_files_say_where() {
        let b = base();
        let e = DaemonConfig::parse(&GOOD.replace("127.0.0.1:4422", "nowhere"), "f", &b)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f:2:"), "{e}");
        let e = DaemonConfig::parse(&GOOD.replace("\"id\"", "\"missing\""), "f", &b)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("identity") && e.contains("not a readable file"),
            "{e}"
        );
        let e = DaemonConfig::parse(&GOOD.replace("common_name = \"appliance\"\n", ""), "f", &b)
            .unwrap_err()
            .to_string();
        assert!(e.contains("common_name or fingerprint"), "{e}");
        let e = DaemonConfig::parse(&GOOD.replace("alice@10.0.0.1", "alice"), "f", &b)
            .unwrap_err()
            .to_string();
        assert!(e.contains("user@host"), "{e}");
        let e = DaemonConfig::parse(&format!("{GOOD}\nbogus = 1\n"), "f", &b)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
