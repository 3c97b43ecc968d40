//! The allow-list: which appliance a verified client certificate is (by SHA-256
//! fingerprint, else by common name) and which remote accounts it may use. Patterns are
//! `user@host`, each side either exact (host names compared without case) or `*`-globbed.

use sixstack_tls::CertInfo;

/// One appliance of the allow-list.
#[derive(Debug, Clone)]
pub struct Appliance {
    /// Its name in log lines.
    pub name: String,
    /// The certificate common name it is recognised by.
    pub common_name: Option<String>,
    /// The certificate fingerprint it is recognised by (normalised: upper-case hex).
    pub fingerprint: Option<String>,
    /// The accounts it may use.
    pub allow: Vec<Pattern>,
}

impl Appliance {
    /// Whether it may log in as `user` on `host`.
    pub fn may_use(&self, user: &str, host: &str) -> bool {
        self.allow.iter().any(|p| p.matches(user, host))
    }
}

/// The appliance `cert` stands for: a fingerprint match first, then a common name.
pub fn identify<'a>(list: &'a [Appliance], cert: &CertInfo) -> Option<&'a Appliance> {
    let fp = super::config::normalize_fingerprint(&cert.sha256);
    list.iter()
        .find(|a| a.fingerprint.as_deref() == Some(fp.as_str()))
        .or_else(|| {
            let cn = cert.common_name.as_deref()?;
            list.iter()
                .find(|a| a.fingerprint.is_none() && a.common_name.as_deref() == Some(cn))
        })
}

/// A `user@host` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    user: String,
    host: String,
}

impl Pattern {
    /// Parses `user@host` (either side may hold `*`).
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let (user, host) = s
            .rsplit_once('@')
            .filter(|(u, h)| !u.is_empty() && !h.is_empty())
            .ok_or_else(|| format!("{s:?} is not a user@host pattern"))?;
        Ok(Pattern {
            user: user.to_string(),
            host: host.to_ascii_lowercase(),
        })
    }

    /// Whether `user@host` matches.
    pub fn matches(&self, user: &str, host: &str) -> bool {
        glob(&self.user, user) && glob(&self.host, &host.to_ascii_lowercase())
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Checks a remote user name: what `ssh -l` may be given (no option, no shell text).
pub fn check_user(u: &str) -> Result<(), String> {
    let ok = !u.is_empty()
        && u.len() <= 64
        && !u.starts_with('-')
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("{u:?} is not a user name"))
    }
}

/// Checks a remote host: a DNS name or an address literal (no option, no shell text).
pub fn check_host(h: &str) -> Result<(), String> {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && !h.starts_with('.')
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!("{h:?} is not a host name or address"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = Pattern::parse("alice@10.0.0.1").unwrap();
        assert!(p.matches("alice", "10.0.0.1"));
        assert!(!p.matches("alice", "10.0.0.10"));
        assert!(!p.matches("bob", "10.0.0.1"));
        let p = Pattern::parse("*@*.Example.com").unwrap();
        assert!(p.matches("x", "files.example.COM"));
        assert!(!p.matches("x", "example.com"));
        assert!(Pattern::parse("alice").is_err());
        assert!(Pattern::parse("@h").is_err());
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("*", ""));
    }

    #[test]
    fn names_that_could_be_options_are_refused() {
        assert!(check_user("sxscp").is_ok());
        assert!(check_user("-oProxyCommand=x").is_err());
        assert!(check_user("a b").is_err());
        assert!(check_host("fd00::1").is_ok());
        assert!(check_host("files.example").is_ok());
        assert!(check_host("-oProxyCommand=x").is_err());
        assert!(check_host("a;b").is_err());
    }
}
