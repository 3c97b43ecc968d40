//! Paths in a user's virtual tree. Every path a client names is resolved here, lexically,
//! against the session's working directory into an absolute, normalized [`VirtualPath`]:
//! `..` at the root stays at the root, an absolute path starts at the user's home, and the
//! result is a list of plain components, so joining it to the home directory cannot leave
//! it. (Symbolic links inside the home are the file layer's business: it opens beneath the
//! home with `RESOLVE_BENEATH`.)

use std::path::PathBuf;

/// The longest path accepted, bytes.
pub const MAX_PATH: usize = 4096;

/// The longest component (a file name), bytes.
pub const MAX_NAME: usize = 255;

/// The deepest path accepted, in components.
pub const MAX_DEPTH: usize = 64;

/// Why a path is refused (the client gets 553 or 501).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Longer than [`MAX_PATH`].
    #[error("path longer than {MAX_PATH} bytes")]
    TooLong,
    /// A component longer than [`MAX_NAME`].
    #[error("file name longer than {MAX_NAME} bytes")]
    NameTooLong,
    /// Deeper than [`MAX_DEPTH`].
    #[error("path deeper than {MAX_DEPTH} directories")]
    TooDeep,
    /// A NUL byte.
    #[error("path contains NUL")]
    Nul,
}

/// An absolute, normalized path inside a user's tree (`/` is the user's home).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct VirtualPath {
    parts: Vec<String>,
}

impl VirtualPath {
    /// The user's home.
    pub fn root() -> VirtualPath {
        VirtualPath::default()
    }

    /// Resolves what a client named (`arg`) against this directory.
    pub fn resolve(&self, arg: &str) -> Result<VirtualPath, PathError> {
        if arg.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        if arg.contains('\0') {
            return Err(PathError::Nul);
        }
        let mut parts = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.parts.clone()
        };
        for c in arg.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => {
                    if name.len() > MAX_NAME {
                        return Err(PathError::NameTooLong);
                    }
                    parts.push(name.to_string());
                    if parts.len() > MAX_DEPTH {
                        return Err(PathError::TooDeep);
                    }
                }
            }
        }
        Ok(VirtualPath { parts })
    }

    /// Whether this is the home itself.
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The directory above (the root's parent is the root).
    pub fn parent(&self) -> VirtualPath {
        let mut parts = self.parts.clone();
        parts.pop();
        VirtualPath { parts }
    }

    /// The last component (none for the root).
    pub fn file_name(&self) -> Option<&str> {
        self.parts.last().map(String::as_str)
    }

    /// The components, from the home down.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(String::as_str)
    }

    /// The path relative to the home (`.` for the home), to open beneath it.
    pub fn relative(&self) -> PathBuf {
        if self.parts.is_empty() {
            return PathBuf::from(".");
        }
        self.parts.iter().collect()
    }

    /// Whether `self` is `other` or inside it.
    pub fn starts_with(&self, other: &VirtualPath) -> bool {
        self.parts.starts_with(&other.parts)
    }
}

impl std::fmt::Display for VirtualPath {
    /// `/` for the home, `/a/b` below it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.parts.is_empty() {
            return f.write_str("/");
        }
        for p in &self.parts {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(cwd: &str) -> VirtualPath {
        VirtualPath::root().resolve(cwd).unwrap()
    }

    #[test]
    fn relative_absolute_and_dots() {
        let cwd = at("/data/in");
        assert_eq!(cwd.to_string(), "/data/in");
        assert_eq!(cwd.resolve("f.txt").unwrap().to_string(), "/data/in/f.txt");
        assert_eq!(
            cwd.resolve("/etc/passwd").unwrap().to_string(),
            "/etc/passwd"
        );
        assert_eq!(
            cwd.resolve("../out/./x").unwrap().to_string(),
            "/data/out/x"
        );
        assert_eq!(cwd.resolve("a//b/").unwrap().to_string(), "/data/in/a/b");
        assert_eq!(cwd.resolve(".").unwrap(), cwd);
        assert_eq!(cwd.parent().to_string(), "/data");
        assert_eq!(cwd.file_name(), Some("in"));
        assert_eq!(cwd.relative(), PathBuf::from("data/in"));
        assert_eq!(VirtualPath::root().relative(), PathBuf::from("."));
    }

    #[test]
    fn no_spelling_leaves_the_home() {
        let cwd = at("/a");
        for escape in [
            "..",
            "../..",
            "../../../../etc/passwd",
            "/../../etc/shadow",
            "a/../../../..",
            "./../.././..",
        ] {
            let p = cwd.resolve(escape).unwrap();
            assert!(p
                .components()
                .all(|c| c != ".." && c != "." && !c.is_empty()));
            let rel = p.relative();
            assert!(
                rel.components().all(|c| matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )),
                "{escape} -> {rel:?}"
            );
        }
        assert_eq!(
            cwd.resolve("../../etc/passwd").unwrap().to_string(),
            "/etc/passwd"
        );
        assert!(VirtualPath::root().resolve("..").unwrap().is_root());
    }

    #[test]
    fn limits() {
        let root = VirtualPath::root();
        assert_eq!(root.resolve(&"a".repeat(256)), Err(PathError::NameTooLong));
        assert_eq!(root.resolve(&"a/".repeat(65)), Err(PathError::TooDeep));
        assert_eq!(
            root.resolve(&"/".repeat(MAX_PATH + 1)),
            Err(PathError::TooLong)
        );
        assert_eq!(root.resolve("a\0b"), Err(PathError::Nul));
        assert!(at("/a/b").starts_with(&at("/a")));
        assert!(!at("/ab").starts_with(&at("/a")));
    }
}
