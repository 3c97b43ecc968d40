//! The security file of the `standard` method: users with an Argon2id password hash (a PHC
//! string, never the password), a home directory, an access level and per-path rules.
//!
//! ```toml
//! [[user]]
//! name = "anna"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # set with `sixstack ftp passwd anna`
//! home = "/srv/ftp/anna"
//! access = "read-write"          # read-only | read-write
//! tls = "control-and-data"       # none | control | control-and-data
//!
//! [[user.path]]
//! path = "/outgoing"             # in the user's tree; the longest matching rule wins
//! access = "read-only"           # none | read-only | read-write
//! ```
//!
//! Loading refuses anything that looks like a clear-text password, and every error names
//! its line and column.

use std::path::{Path, PathBuf};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::Deserialize;

use crate::vpath::VirtualPath;

/// What a user may do at a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Nothing, not even a listing.
    None,
    /// List and download.
    ReadOnly,
    /// Also upload, rename, delete, make directories.
    ReadWrite,
}

/// Where TLS is required for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsRequirement {
    /// Plain FTP allowed.
    #[default]
    None,
    /// The control connection must be protected before USER (AUTH TLS or implicit FTPS).
    Control,
    /// Control and every data connection (PROT P).
    ControlAndData,
}

/// A per-path rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The directory (or file) the rule covers, with everything under it.
    pub path: VirtualPath,
    /// Access there.
    pub access: Access,
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2id PHC string.
    pub password: String,
    /// Home directory on the appliance's disk (the root of the user's tree).
    pub home: PathBuf,
    /// Access everywhere no rule covers.
    pub access: Access,
    /// Where TLS is required.
    pub tls: TlsRequirement,
    /// Per-path rules.
    pub rules: Vec<PathRule>,
    /// SHA-256 fingerprints of client certificates that sign this user on without a
    /// password (hex, upper case, no separators).
    pub certificates: Vec<String>,
    /// TYPE A files of this user are EBCDIC in this code page.
    pub ebcdic: Option<crate::ebcdic::CodePage>,
}

impl User {
    /// Access at `path`: the rule with the longest path that covers it, else the user's.
    pub fn access_at(&self, path: &VirtualPath) -> Access {
        self.rules
            .iter()
            .filter(|r| path.starts_with(&r.path))
            .max_by_key(|r| r.path.components().count())
            .map_or(self.access, |r| r.access)
    }

    /// Whether `password` is this user's (constant-time comparison inside Argon2).
    pub fn check_password(&self, password: &str) -> bool {
        match PasswordHash::new(&self.password) {
            Ok(h) => Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Why a security file was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// It could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// It is not valid (with line and column).
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A password could not be hashed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default, rename = "user")]
    users: Vec<toml::Spanned<UserRepr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRepr {
    name: String,
    #[serde(default)]
    password: Option<toml::Spanned<String>>,
    home: String,
    #[serde(default = "read_only")]
    access: Access,
    #[serde(default)]
    tls: TlsRequirement,
    #[serde(default, rename = "path")]
    paths: Vec<PathRepr>,
    #[serde(default)]
    certificates: Vec<String>,
    #[serde(default)]
    ebcdic: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathRepr {
    path: String,
    access: Access,
}

fn read_only() -> Access {
    Access::ReadOnly
}

/// The users of one security file.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: Vec<User>,
}

/// 1-based line and column of byte `offset` in `text` (for located errors).
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Users {
    /// Parses a security file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Users, UsersError> {
        let invalid = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            UsersError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let repr: FileRepr = toml::from_str(text)
            .map_err(|e| invalid(e.span().unwrap_or(0..0), e.message().to_string()))?;
        let mut users: Vec<User> = Vec::new();
        for u in repr.users {
            let span = u.span();
            let u = u.into_inner();
            if u.name.is_empty()
                || u.name.len() > 64
                || !u
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
            {
                return Err(invalid(
                    span,
                    format!("user name {:?}: 1 to 64 of A-Z a-z 0-9 . _ - @", u.name),
                ));
            }
            if users.iter().any(|x| x.name == u.name) {
                return Err(invalid(span, format!("user {} appears twice", u.name)));
            }
            let password = match u.password {
                None => String::new(),
                Some(p) => {
                    if PasswordHash::new(p.get_ref())
                        .ok()
                        .filter(|h| h.algorithm.as_str() == "argon2id")
                        .is_none()
                    {
                        return Err(invalid(
                            p.span(),
                            format!(
                                "the password of {} is not an Argon2id hash; clear-text \
                                 passwords are refused (set one with `sixstack ftp passwd {}`)",
                                u.name, u.name
                            ),
                        ));
                    }
                    p.into_inner()
                }
            };
            let home = PathBuf::from(&u.home);
            if !home.is_absolute() {
                return Err(invalid(
                    span,
                    format!("the home of {} must be an absolute path", u.name),
                ));
            }
            let mut rules = Vec::new();
            for r in u.paths {
                let p = VirtualPath::root()
                    .resolve(&r.path)
                    .map_err(|e| invalid(span.clone(), format!("path {:?}: {e}", r.path)))?;
                rules.push(PathRule {
                    path: p,
                    access: r.access,
                });
            }
            let ebcdic = match &u.ebcdic {
                None => None,
                Some(p) => Some(crate::ebcdic::CodePage::parse(p).ok_or_else(|| {
                    invalid(
                        span.clone(),
                        format!("ebcdic {p:?} of {}: 037 or 1047", u.name),
                    )
                })?),
            };
            let mut certificates = Vec::new();
            for c in &u.certificates {
                let hex: String = c
                    .chars()
                    .filter(|ch| *ch != ':' && !ch.is_whitespace())
                    .map(|ch| ch.to_ascii_uppercase())
                    .collect();
                if hex.len() != 64 || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
                    return Err(invalid(
                        span.clone(),
                        format!(
                            "certificate {c:?} of {} is not a SHA-256 fingerprint",
                            u.name
                        ),
                    ));
                }
                certificates.push(hex);
            }
            users.push(User {
                name: u.name,
                password,
                home,
                access: u.access,
                tls: u.tls,
                rules,
                certificates,
                ebcdic,
            });
        }
        Ok(Users { users })
    }

    /// Reads and parses a security file.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Users::parse(&text, path)
    }

    /// The user named `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Every user with the certificate fingerprints that sign them on.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.iter()
    }
}

/// An Argon2id hash of `password` with a fresh random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// Sets `user`'s password in the security file at `path`: the file's text is kept as it
/// is but for that one value, and it is replaced atomically (temporary file, fsync,
/// rename), keeping its permissions.
pub fn set_password(path: &Path, user: &str, password: &str) -> Result<(), UsersError> {
    use std::io::Write;
    let io = |source| UsersError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    // Validate first: the file must be a good security file before and after.
    Users::parse(&text, path)?;
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| UsersError::Invalid {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: e.to_string(),
            })?;
    let hash = hash_password(password)?;
    let mut found = false;
    if let Some(users) = doc.get_mut("user").and_then(|u| u.as_array_of_tables_mut()) {
        for t in users.iter_mut() {
            if t.get("name").and_then(|n| n.as_str()) == Some(user) {
                t["password"] = toml_edit::value(hash.clone());
                found = true;
            }
        }
    }
    if !found {
        return Err(UsersError::Invalid {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("no user named {user:?}"),
        });
    }
    let new = doc.to_string();
    Users::parse(&new, path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "users".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let perms = std::fs::metadata(path).map_err(io)?.permissions();
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(perms.clone())?;
        f.write_all(new.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[user]]
name = "anna"
home = "/srv/ftp/anna"
access = "read-write"
tls = "control-and-data"

[[user.path]]
path = "/outgoing"
access = "read-only"

[[user.path]]
path = "/outgoing/drop"
access = "read-write"

[[user.path]]
path = "/private"
access = "none"

[[user]]
name = "ben"
home = "/srv/ftp/ben"
"#;

    fn at(p: &str) -> VirtualPath {
        VirtualPath::root().resolve(p).unwrap()
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let users = Users::parse(FILE, Path::new("users.toml")).unwrap();
        assert_eq!(users.len(), 2);
        let anna = users.get("anna").unwrap();
        assert_eq!(anna.tls, TlsRequirement::ControlAndData);
        assert_eq!(anna.access_at(&at("/")), Access::ReadWrite);
        assert_eq!(anna.access_at(&at("/outgoing/a.txt")), Access::ReadOnly);
        assert_eq!(anna.access_at(&at("/outgoing/drop/x")), Access::ReadWrite);
        assert_eq!(anna.access_at(&at("/private")), Access::None);
        assert_eq!(anna.access_at(&at("/privateer")), Access::ReadWrite);
        let ben = users.get("ben").unwrap();
        assert_eq!(ben.access, Access::ReadOnly);
        assert!(!ben.check_password(""), "no password set: nobody gets in");
    }

    #[test]
    fn clear_text_passwords_and_bad_entries_are_refused_with_a_place() {
        let bad = FILE.replace("name = \"ben\"", "name = \"ben\"\npassword = \"hunter2\"");
        let e = Users::parse(&bad, Path::new("u.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("u.toml:22:12:") && e.contains("clear-text"),
            "{e}"
        );
        let e = Users::parse("[[user]]\nname = \"a b\"\nhome = \"/x\"\n", Path::new("u"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("user name"), "{e}");
        let e = Users::parse("[[user]]\nname = \"a\"\nhome = \"rel\"\n", Path::new("u"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
        let e = Users::parse(
            "[[user]]\nname = \"a\"\nhome = \"/x\"\nshell = 1\n",
            Path::new("u"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("u:4:"), "{e}");
    }

    #[test]
    fn passwords_are_set_atomically_as_argon2id() {
        let dir = std::env::temp_dir().join(format!("sixstack-ftp-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        std::fs::write(&path, FILE).unwrap();
        set_password(&path, "ben", "correct horse").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$") && !text.contains("correct horse"));
        assert!(
            text.contains("[[user.path]]"),
            "the rest of the file is kept"
        );
        let users = Users::load(&path).unwrap();
        let ben = users.get("ben").unwrap();
        assert!(ben.check_password("correct horse"));
        assert!(!ben.check_password("correct horsE"));
        assert!(set_password(&path, "nobody", "x").is_err());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
