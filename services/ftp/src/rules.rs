//! The `resource-rules` security method, in the style of mainframe resource access control:
//! users in groups, and resource profiles (generic path patterns) that grant access levels
//! NONE < READ < UPDATE < ALTER. For a path the most specific matching profile decides:
//! the user's own entry, else the best of their groups' entries, else the profile's
//! universal access (UACC). No matching profile: no access.
//!
//! ```toml
//! [[user]]
//! name = "anna"
//! password = "$argon2id$..."
//! home = "/srv/ftp"
//! groups = ["payroll"]
//!
//! [[profile]]
//! pattern = "/data/payroll/**"
//! uacc = "none"
//! access = [{ id = "payroll", level = "update" }, { id = "anna", level = "alter" }]
//! ```
//!
//! Patterns: `**` any number of path components, `*` any characters within one component,
//! anything else literal. Specificity: more literal characters first, then fewer `**`, then
//! fewer `*`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::users::{TlsRequirement, User, UsersError};
use crate::vpath::VirtualPath;

/// An access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing.
    None,
    /// List, read, download.
    Read,
    /// Also write and create.
    Update,
    /// Also delete and rename.
    Alter,
}

/// One entry of a profile's access list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A user or a group.
    pub id: String,
    /// What it may do.
    pub level: Level,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileRepr {
    pattern: String,
    uacc: Level,
    #[serde(default)]
    access: Vec<Grant>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRepr {
    name: String,
    #[serde(default)]
    password: Option<String>,
    home: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    tls: TlsRequirement,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default, rename = "user")]
    users: Vec<UserRepr>,
    #[serde(default, rename = "profile")]
    profiles: Vec<ProfileRepr>,
}

/// A resource profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its pattern, split at `/`.
    parts: Vec<String>,
    /// The pattern as written.
    pub pattern: String,
    /// Universal access.
    pub uacc: Level,
    /// The access list.
    pub access: Vec<Grant>,
    specificity: (usize, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>),
}

/// `*` within one component.
fn glob(pat: &str, s: &str) -> bool {
    let (p, t) = (pat.as_bytes(), s.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

fn matches(parts: &[String], path: &[&str]) -> bool {
    match parts.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|k| matches(&parts[1..], &path[k..])),
        Some(p) => !path.is_empty() && glob(p, path[0]) && matches(&parts[1..], &path[1..]),
    }
}

impl Profile {
    fn new(pattern: &str, uacc: Level, access: Vec<Grant>) -> Profile {
        let parts: Vec<String> = pattern
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let literal = pattern.chars().filter(|&c| c != '*' && c != '/').count();
        let globstars = parts.iter().filter(|p| *p == "**").count();
        let stars = pattern.matches('*').count();
        Profile {
            parts,
            pattern: pattern.to_string(),
            uacc,
            access,
            specificity: (
                literal,
                std::cmp::Reverse(globstars),
                std::cmp::Reverse(stars),
            ),
        }
    }

    /// Whether the profile covers `path`.
    pub fn covers(&self, path: &VirtualPath) -> bool {
        let comps: Vec<&str> = path.components().collect();
        matches(&self.parts, &comps)
    }
}

/// The users and profiles of a rules file.
#[derive(Debug, Clone, Default)]
pub struct RuleBase {
    users: Vec<(User, Vec<String>)>,
    profiles: Vec<Profile>,
}

/// One decision, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Granted or not.
    pub allowed: bool,
    /// The level the user has there.
    pub level: Level,
    /// The profile that decided (none: no profile covers the path).
    pub profile: Option<String>,
    /// Why: the user's entry, a group's entry, or UACC.
    pub via: String,
}

impl RuleBase {
    /// Parses a rules file's text.
    pub fn parse(text: &str, path: &Path) -> Result<RuleBase, UsersError> {
        let invalid = |message: String| UsersError::Invalid {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message,
        };
        let repr: FileRepr = toml::from_str(text).map_err(|e| {
            let (line, column) = crate::users::line_col(text, e.span().map_or(0, |s| s.start));
            UsersError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        // The users' own checks (names, hashes, homes) are the standard method's.
        let mut as_users = String::new();
        for u in &repr.users {
            as_users.push_str(&format!(
                "[[user]]\nname = {:?}\nhome = {:?}\n{}\n",
                u.name,
                u.home,
                u.password
                    .as_ref()
                    .map(|p| format!("password = {p:?}"))
                    .unwrap_or_default()
            ));
        }
        let checked = crate::users::Users::parse(&as_users, path)?;
        let mut users = Vec::new();
        for u in &repr.users {
            let mut user = checked
                .get(&u.name)
                .cloned()
                .ok_or_else(|| invalid(format!("user {}", u.name)))?;
            user.tls = u.tls;
            users.push((user, u.groups.clone()));
        }
        let mut profiles = Vec::new();
        for p in repr.profiles {
            if !p.pattern.starts_with('/') || p.pattern.contains("..") {
                return Err(invalid(format!(
                    "profile pattern {:?} must be an absolute path without ..",
                    p.pattern
                )));
            }
            profiles.push(Profile::new(&p.pattern, p.uacc, p.access));
        }
        Ok(RuleBase { users, profiles })
    }

    /// Reads and parses a rules file.
    pub fn load(path: &Path) -> Result<RuleBase, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Io {
            path: PathBuf::from(path),
            source,
        })?;
        RuleBase::parse(&text, path)
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|(u, _)| u.name == name)
            .map(|(u, _)| u)
    }

    /// Whether `user` may do what needs `need` at `path`.
    pub fn decide(&self, user: &str, path: &VirtualPath, need: Level) -> Decision {
        let groups: &[String] = self
            .users
            .iter()
            .find(|(u, _)| u.name == user)
            .map_or(&[], |(_, g)| g.as_slice());
        let Some(p) = self
            .profiles
            .iter()
            .filter(|p| p.covers(path))
            .max_by_key(|p| p.specificity)
        else {
            return Decision {
                allowed: false,
                level: Level::None,
                profile: None,
                via: "no profile covers the path".into(),
            };
        };
        let (level, via) = if let Some(g) = p.access.iter().find(|g| g.id == user) {
            (g.level, format!("user {user}"))
        } else if let Some(g) = p
            .access
            .iter()
            .filter(|g| groups.contains(&g.id))
            .max_by_key(|g| g.level)
        {
            (g.level, format!("group {}", g.id))
        } else {
            (p.uacc, "UACC".into())
        };
        Decision {
            allowed: level >= need && need > Level::None,
            level,
            profile: Some(p.pattern.clone()),
            via,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[user]]
name = "anna"
home = "/srv/ftp"
groups = ["payroll"]

[[user]]
name = "ben"
home = "/srv/ftp"
groups = ["staff"]

[[profile]]
pattern = "/**"
uacc = "read"

[[profile]]
pattern = "/data/payroll/**"
uacc = "none"
access = [{ id = "payroll", level = "update" }]

[[profile]]
pattern = "/data/payroll/*.TXT"
uacc = "none"
access = [{ id = "payroll", level = "read" }, { id = "anna", level = "alter" }]

[[profile]]
pattern = "/data/payroll/archive/**"
uacc = "none"
access = [{ id = "payroll", level = "read" }]
"#;

    fn vp(p: &str) -> VirtualPath {
        VirtualPath::root().resolve(p).unwrap()
    }

    #[test]
    fn patterns() {
        assert!(glob("*.TXT", "A.TXT") && glob("*", "") && glob("a*b*c", "axxbyyc"));
        assert!(!glob("*.TXT", "A.txt") && !glob("a*b", "ac"));
        let p = Profile::new("/data/**/x", Level::Read, vec![]);
        assert!(p.covers(&vp("/data/x")) && p.covers(&vp("/data/a/b/x")));
        assert!(!p.covers(&vp("/data/a/y")));
    }

    #[test]
    fn the_most_specific_profile_decides() {
        let r = RuleBase::parse(RULES, Path::new("rules.toml")).unwrap();
        let d = r.decide("ben", &vp("/pub/readme"), Level::Read);
        assert!(d.allowed && d.via == "UACC" && d.profile.as_deref() == Some("/**"));
        assert!(!r.decide("ben", &vp("/pub/readme"), Level::Update).allowed);
        // Payroll: the group may update, ben (staff) nothing.
        assert!(
            r.decide("anna", &vp("/data/payroll/run.dat"), Level::Update)
                .allowed
        );
        assert!(
            !r.decide("anna", &vp("/data/payroll/run.dat"), Level::Alter)
                .allowed
        );
        let d = r.decide("ben", &vp("/data/payroll/run.dat"), Level::Read);
        assert!(!d.allowed && d.via == "UACC" && d.level == Level::None);
        // *.TXT is more specific than ** in the same directory: anna's own entry wins.
        let d = r.decide("anna", &vp("/data/payroll/LIST.TXT"), Level::Alter);
        assert!(d.allowed && d.via == "user anna", "{d:?}");
        assert_eq!(
            r.decide("anna", &vp("/data/payroll/LIST.TXT"), Level::Read)
                .profile
                .as_deref(),
            Some("/data/payroll/*.TXT")
        );
        // The archive profile is longer: read only, even for the group that may update.
        assert!(
            !r.decide("anna", &vp("/data/payroll/archive/2025/x"), Level::Update)
                .allowed
        );
        assert!(
            r.decide("anna", &vp("/data/payroll/archive/2025/x"), Level::Read)
                .allowed
        );
    }

    #[test]
    fn no_profile_no_access_and_bad_files_refused() {
        let r = RuleBase::parse(
            "[[profile]]\npattern = \"/in/**\"\nuacc = \"alter\"\n",
            Path::new("r"),
        )
        .unwrap();
        assert!(!r.decide("x", &vp("/out/f"), Level::Read).allowed);
        assert!(r.decide("x", &vp("/in/f"), Level::Alter).allowed);
        assert!(RuleBase::parse(
            "[[profile]]\npattern = \"in\"\nuacc = \"read\"\n",
            Path::new("r")
        )
        .is_err());
        assert!(RuleBase::parse(
            "[[profile]]\npattern = \"/a\"\nuacc = \"write\"\n",
            Path::new("r")
        )
        .is_err());
        let clear = "[[user]]\nname = \"a\"\nhome = \"/x\"\npassword = \"secret\"\n";
        assert!(RuleBase::parse(clear, Path::new("r")).is_err());
    }
}
