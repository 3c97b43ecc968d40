//! The system's OpenSSH client, run once per request with everything fixed on its command
//! line: no user or system ssh_config, public-key authentication with the daemon's one
//! identity only, strict host-key checking against the daemon's known_hosts (never
//! updated), no agent, no forwarding, no connection sharing. What it prints about itself
//! is classified into a [`Failure`] the appliance can act on.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::wire::{ErrorKind, Failure};

/// The most of ssh's standard error kept for a diagnosis.
const MAX_DIAGNOSTIC: usize = 16 * 1024;

/// How the daemon runs ssh.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The ssh program.
    pub ssh: PathBuf,
    /// The private key.
    pub identity: PathBuf,
    /// The accepted host keys.
    pub known_hosts: PathBuf,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

/// Where ssh goes.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Remote user (checked by [`super::allow::check_user`]).
    pub user: &'a str,
    /// Remote host (checked by [`super::allow::check_host`]).
    pub host: &'a str,
    /// SSH port.
    pub port: u16,
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// What runs on the remote side.
#[derive(Debug, Clone)]
pub enum Remote<'a> {
    /// A subsystem (`sftp`).
    Subsystem(&'a str),
    /// A command line for the remote user's shell.
    Command(&'a str),
}

/// A running ssh.
#[derive(Debug)]
pub struct Ssh {
    /// The process (killed when dropped).
    pub child: Child,
    /// Its standard input: what goes to the remote side.
    pub stdin: Option<ChildStdin>,
    /// Its standard output: what the remote side sends.
    pub stdout: Option<ChildStdout>,
    /// Its standard error, unless [`Ssh::collect_stderr`] took it.
    pub stderr: Option<ChildStderr>,
    collected: Option<JoinHandle<Vec<u8>>>,
}

impl SshSettings {
    /// The arguments for `target` running `remote`.
    pub fn args(&self, target: &Target<'_>, remote: &Remote<'_>) -> Vec<String> {
        let o = |s: &str| ["-o".to_string(), s.to_string()];
        let mut a: Vec<String> = vec!["-F".into(), "/dev/null".into(), "-T".into()];
        a.extend(["-x".into(), "-a".into(), "-e".into(), "none".into()]);
        for opt in [
            "BatchMode=yes".to_string(),
            "PubkeyAuthentication=yes".into(),
            "PasswordAuthentication=no".into(),
            "KbdInteractiveAuthentication=no".into(),
            "HostbasedAuthentication=no".into(),
            "GSSAPIAuthentication=no".into(),
            "PreferredAuthentications=publickey".into(),
            "IdentitiesOnly=yes".into(),
            "IdentityAgent=none".into(),
            "StrictHostKeyChecking=yes".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "UpdateHostKeys=no".into(),
            "CheckHostIP=no".into(),
            "ControlMaster=no".into(),
            "ControlPath=none".into(),
            "ClearAllForwardings=yes".into(),
            "PermitLocalCommand=no".into(),
            format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)),
            "ServerAliveInterval=15".into(),
            "ServerAliveCountMax=4".into(),
            "LogLevel=ERROR".into(),
        ] {
            a.extend(o(&opt));
        }
        a.extend(["-i".into(), self.identity.display().to_string()]);
        a.extend(["-p".into(), target.port.to_string()]);
        a.extend(["-l".into(), target.user.to_string()]);
        if let Remote::Subsystem(_) = remote {
            a.push("-s".into());
        }
        a.push("--".into());
        a.push(target.host.to_string());
        match remote {
            Remote::Subsystem(s) => a.push((*s).to_string()),
            Remote::Command(c) => a.push((*c).to_string()),
        }
        a
    }

    /// Starts ssh with its three standard streams piped.
    pub fn spawn(&self, target: &Target<'_>, remote: &Remote<'_>) -> std::io::Result<Ssh> {
        let mut child = Command::new(&self.ssh)
            .args(self.args(target, remote))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot run {}: {e}", self.ssh.display()))
            })?;
        Ok(Ssh {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            collected: None,
        })
    }
}

impl Ssh {
    /// Keeps (the first part of) ssh's standard error in the background, for
    /// [`Ssh::failure`].
    pub fn collect_stderr(&mut self) {
        if let Some(mut e) = self.stderr.take() {
            self.collected = Some(tokio::spawn(async move {
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = e.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = MAX_DIAGNOSTIC.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                kept
            }));
        }
    }

    /// Waits for ssh to end (closing its input first) and returns its exit status code
    /// and what it printed on standard error (when collected).
    pub async fn finish(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        drop(self.stdout.take());
        let status = match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(s)) => s.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        };
        let text = match self.collected.take() {
            Some(h) => h.await.unwrap_or_default(),
            None => Vec::new(),
        };
        (status, String::from_utf8_lossy(&text).into_owned())
    }

    /// Ends ssh and explains why the remote side went away: `what` is what the daemon was
    /// doing.
    pub async fn failure(self, target: &Target<'_>, what: &str) -> Failure {
        let (status, text) = self.finish().await;
        classify(target, what, status, &text)
    }
}

/// Turns ssh's own words into a failure kind and a message for the appliance.
pub fn classify(target: &Target<'_>, what: &str, status: Option<i32>, stderr: &str) -> Failure {
    let has = |s: &str| stderr.contains(s);
    let (kind, why) = if has("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || has("has changed and you have requested strict")
    {
        (
            ErrorKind::HostKeyChanged,
            format!("{}'s host key differs from the one in scpd's known_hosts (refused: the host may be an impostor)", target.host),
        )
    } else if has("Host key verification failed") || has("host key is known") {
        (
            ErrorKind::HostKeyUnknown,
            format!(
                "{}'s host key is not in scpd's known_hosts (refused)",
                target.host
            ),
        )
    } else if let Some(methods) = denied_methods(stderr) {
        let why = if methods.split(',').any(|m| m == "publickey") {
            format!("{target} refused scpd's public key")
        } else {
            format!(
                "{target} offers only {methods} authentication; scpd uses public keys only (refused)"
            )
        };
        (ErrorKind::AuthRefused, why)
    } else if has("Connection refused")
        || has("timed out")
        || has("No route to host")
        || has("Network is unreachable")
        || has("Could not resolve hostname")
        || has("kex_exchange_identification")
        || has("Connection closed by")
        || has("Connection reset")
    {
        (
            ErrorKind::Unreachable,
            format!("cannot reach {target}: {}", last_line(stderr)),
        )
    } else if has("subsystem request failed") {
        (ErrorKind::Remote, format!("{target} has no SFTP subsystem"))
    } else {
        let detail = last_line(stderr);
        let detail = if detail.is_empty() {
            match status {
                Some(c) => format!("ssh exited with status {c}"),
                None => "ssh was killed".to_string(),
            }
        } else {
            detail
        };
        (ErrorKind::Remote, format!("{target}: {detail}"))
    };
    Failure {
        kind,
        message: format!("{what}: {why}"),
    }
}

/// The methods in ssh's "Permission denied (a,b)." line.
fn denied_methods(stderr: &str) -> Option<&str> {
    let at = stderr.find("Permission denied (")?;
    let rest = &stderr[at + "Permission denied (".len()..];
    rest.split_once(')').map(|(m, _)| m)
}

fn last_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(400)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t() -> Target<'static> {
        Target {
            user: "u",
            host: "h",
            port: 22,
        }
    }

    #[test]
    fn ssh_words_become_kinds() {
        let c = |s: &str| classify(&t(), "STOR x", Some(255), s).kind;
        assert_eq!(
            c("@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n"),
            ErrorKind::HostKeyChanged
        );
        assert_eq!(
            c("No ED25519 host key is known for h and you have requested strict checking.\nHost key verification failed.\n"),
            ErrorKind::HostKeyUnknown
        );
        let f = classify(
            &t(),
            "STOR x",
            Some(255),
            "u@h: Permission denied (password).\n",
        );
        assert_eq!(f.kind, ErrorKind::AuthRefused);
        assert!(f.message.contains("only password"), "{}", f.message);
        assert_eq!(
            c("u@h: Permission denied (publickey,password).\n"),
            ErrorKind::AuthRefused
        );
        assert_eq!(
            c("ssh: connect to host h port 22: Connection refused\n"),
            ErrorKind::Unreachable
        );
        assert_eq!(c(""), ErrorKind::Remote);
    }

    #[test]
    fn arguments_fix_everything() {
        let s = SshSettings {
            ssh: "/usr/bin/ssh".into(),
            identity: "/k".into(),
            known_hosts: "/kh".into(),
            connect_timeout: Duration::from_secs(5),
        };
        let a = s.args(&t(), &Remote::Subsystem("sftp"));
        let joined = a.join(" ");
        assert!(joined.contains("StrictHostKeyChecking=yes"));
        assert!(joined.contains("PasswordAuthentication=no"));
        assert!(joined.contains("UserKnownHostsFile=/kh"));
        assert!(joined.ends_with("-s -- h sftp"), "{joined}");
        let a = s.args(&t(), &Remote::Command("ls -l"));
        assert_eq!(a.last().unwrap(), "ls -l");
        assert_eq!(a[a.len() - 2], "h");
    }
}
