//! The server's security method, one per server: `standard` (the security file of
//! [`crate::users`]), `exit` (an external program, [`crate::exit`]) or `resource-rules`
//! (profiles, [`crate::rules`], with an audit line for every decision). Logins and access
//! checks may block (Argon2id, a program), so they run off the shard.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sixstack_stack::offload;

use crate::exit::ExitProgram;
use crate::login_cache::LoginCache;
use crate::rules::{Level, RuleBase};
use crate::users::{Access, TlsRequirement, User, Users};
use crate::vpath::VirtualPath;

/// A dummy hash: an unknown user's login costs as much as a known one's.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2l4c3RhY2tmdHBkdW1teQ$3vyHHpoUqgPz2yX2/lfG1qhPEgPO7LM6Wbbl7sgk5Rs";

/// A security method.
#[derive(Debug, Clone)]
pub enum Security {
    /// Users, hashes, homes and per-path access from a security file.
    Standard(Arc<Users>),
    /// An external program decides.
    Exit(Arc<ExitProgram>),
    /// Users and groups with resource profiles.
    Rules(Arc<RuleBase>),
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Home directory on the disk.
    pub home: PathBuf,
    /// Where TLS is required.
    pub tls: TlsRequirement,
    /// TYPE A files are EBCDIC in this code page.
    pub ebcdic: Option<crate::ebcdic::CodePage>,
    /// The standard method's user (its per-path rules).
    user: Option<User>,
}

fn password_check(user: Option<User>, password: String) -> Option<User> {
    match user {
        Some(u) if u.check_password(&password) => Some(u),
        Some(_) => None,
        None => {
            let dummy = User {
                name: String::new(),
                password: DUMMY_HASH.into(),
                home: "/".into(),
                access: Access::None,
                tls: TlsRequirement::None,
                rules: Vec::new(),
                certificates: Vec::new(),
                ebcdic: None,
            };
            dummy.check_password(&password);
            None
        }
    }
}

impl Security {
    /// Checks a login through `cache` (a password verified within its lifetime is not
    /// checked again; never for the exit method); the account when it is allowed.
    pub async fn login_cached(
        &self,
        cache: &LoginCache,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Option<Account> {
        if matches!(self, Security::Exit(_)) {
            return self.login(user, password, client).await;
        }
        if cache.verified(user, password, Instant::now()) {
            if let Some(a) = self.account_of(user) {
                return Some(a);
            }
        }
        let account = self.login(user, password, client).await?;
        cache.remember(user, password, Instant::now());
        Some(account)
    }

    /// Checks a login; the account when it is allowed.
    pub async fn login(&self, user: &str, password: &str, client: IpAddr) -> Option<Account> {
        let (name, password) = (user.to_string(), password.to_string());
        let found = match self {
            Security::Standard(users) => {
                let u = users.get(user).cloned();
                offload(move || password_check(u, password)).await.ok()??
            }
            Security::Rules(rules) => {
                let u = rules.user(user).cloned();
                offload(move || password_check(u, password)).await.ok()??
            }
            Security::Exit(exit) => {
                let exit = exit.clone();
                let n = name.clone();
                let answer = offload(move || exit.login(&n, &password, &client.to_string()))
                    .await
                    .ok()?;
                return match answer {
                    Ok(Some(l)) => Some(Account {
                        name,
                        home: l.home,
                        tls: l.tls,
                        ebcdic: None,
                        user: None,
                    }),
                    Ok(None) => None,
                    Err(e) => {
                        log::warn!("ftp: login exit for {name}: {e}; denied");
                        None
                    }
                };
            }
        };
        Some(Account {
            name,
            home: found.home.clone(),
            tls: found.tls,
            ebcdic: found.ebcdic,
            user: Some(found),
        })
    }

    /// The account of `user` without a password: for a user a verified client certificate
    /// signed on (the exit method decides passwords only, so it has none).
    pub fn account_of(&self, user: &str) -> Option<Account> {
        let u = match self {
            Security::Standard(users) => users.get(user)?.clone(),
            Security::Rules(rules) => rules.user(user)?.clone(),
            Security::Exit(_) => return None,
        };
        Some(Account {
            name: u.name.clone(),
            home: u.home.clone(),
            tls: u.tls,
            ebcdic: u.ebcdic,
            user: Some(u),
        })
    }

    /// Which user each client certificate fingerprint signs on.
    pub fn certificate_map(&self) -> sixstack_tls::signon::UserMap {
        let mut map = sixstack_tls::signon::UserMap::new();
        if let Security::Standard(users) = self {
            for u in users.iter() {
                for f in &u.certificates {
                    map.map_fingerprint(f, u.name.clone());
                }
            }
        }
        map
    }

    /// Whether `account` may do what needs `need` at `path`.
    pub async fn allowed(
        &self,
        account: &Account,
        path: &VirtualPath,
        need: Level,
        client: IpAddr,
    ) -> bool {
        match self {
            Security::Standard(_) => {
                let have = account
                    .user
                    .as_ref()
                    .map_or(Access::None, |u| u.access_at(path));
                match need {
                    Level::None => true,
                    Level::Read => have >= Access::ReadOnly,
                    Level::Update | Level::Alter => have == Access::ReadWrite,
                }
            }
            Security::Rules(rules) => {
                let d = rules.decide(&account.name, path, need);
                log::info!(
                    target: "sixstack_ftp::audit",
                    "{} {} {path} {need:?}: {} (level {:?} by {} via {})",
                    client,
                    account.name,
                    if d.allowed { "granted" } else { "denied" },
                    d.level,
                    d.profile.as_deref().unwrap_or("-"),
                    d.via
                );
                d.allowed
            }
            Security::Exit(exit) => {
                let (exit, user, p) = (exit.clone(), account.name.clone(), path.to_string());
                let answer =
                    offload(move || exit.access(&user, &p, need, &client.to_string())).await;
                match answer {
                    Ok(Ok(allowed)) => allowed,
                    Ok(Err(e)) => {
                        log::warn!(
                            "ftp: access exit for {} at {path}: {e}; denied",
                            account.name
                        );
                        false
                    }
                    Err(_) => false,
                }
            }
        }
    }
}
