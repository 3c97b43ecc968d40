//! The `exit` security method: an external authority, a program called for every login
//! and every file access. It gets one JSON object on standard input and answers one on
//! standard output:
//!
//! ```text
//! {"event":"login","user":"anna","password":"...","client":"10.0.0.1"}
//!   -> {"allow":true,"home":"/srv/ftp/anna","tls":"none"}
//! {"event":"access","user":"anna","path":"/in/a.txt","access":"update","client":"10.0.0.1"}
//!   -> {"allow":false}
//! ```
//!
//! Anything else is a denial: a timeout (the program is killed), a crash, a non-zero exit,
//! output that is not such an object, more than 64 KiB of it. The calls block, so the
//! server runs them off the shard.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::rules::Level;
use crate::users::TlsRequirement;

/// The most output read from the program.
const MAX_ANSWER: u64 = 64 * 1024;

/// The program and how long it may take.
#[derive(Debug, Clone)]
pub struct ExitProgram {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long one call may take.
    pub timeout: Duration,
}

/// What a login exit allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitLogin {
    /// The user's home.
    pub home: PathBuf,
    /// Where TLS is required.
    pub tls: TlsRequirement,
}

/// Why a call counts as a denial.
#[derive(Debug, thiserror::Error)]
pub enum ExitError {
    /// It could not be started.
    #[error("cannot start the exit program: {0}")]
    Start(std::io::Error),
    /// It took too long.
    #[error("the exit program took longer than {0:?}")]
    Timeout(Duration),
    /// It failed.
    #[error("the exit program failed: {0}")]
    Failed(String),
    /// Its answer was not understood.
    #[error("the exit program's answer is not understood: {0}")]
    Answer(String),
}

impl ExitProgram {
    /// One call: `request` in, the answer out.
    pub fn ask(&self, request: &Value) -> Result<Value, ExitError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(ExitError::Start)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its input only loses it.
            let _ = stdin.write_all(format!("{request}\n").as_bytes());
        }
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| ExitError::Failed("no output".into()))?;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = (&mut stdout).take(MAX_ANSWER + 1).read_to_end(&mut out);
            out
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if started.elapsed() < self.timeout => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ExitError::Timeout(self.timeout));
                }
                Err(e) => return Err(ExitError::Failed(e.to_string())),
            }
        };
        let out = reader
            .join()
            .map_err(|_| ExitError::Failed("reading its output".into()))?;
        if !status.success() {
            return Err(ExitError::Failed(status.to_string()));
        }
        if out.len() as u64 > MAX_ANSWER {
            return Err(ExitError::Answer("longer than 64 KiB".into()));
        }
        let v: Value =
            serde_json::from_slice(&out).map_err(|e| ExitError::Answer(e.to_string()))?;
        if !v.is_object() || !v.get("allow").is_some_and(Value::is_boolean) {
            return Err(ExitError::Answer("no boolean \"allow\"".into()));
        }
        Ok(v)
    }

    /// A login: the user's home and TLS requirement when allowed.
    pub fn login(
        &self,
        user: &str,
        password: &str,
        client: &str,
    ) -> Result<Option<ExitLogin>, ExitError> {
        let v = self.ask(&json!({
            "event": "login", "user": user, "password": password, "client": client,
        }))?;
        if v["allow"] != true {
            return Ok(None);
        }
        let home = v["home"]
            .as_str()
            .filter(|h| h.starts_with('/'))
            .ok_or_else(|| {
                ExitError::Answer("an allowed login needs an absolute \"home\"".into())
            })?;
        let tls = match v["tls"].as_str().unwrap_or("none") {
            "none" => TlsRequirement::None,
            "control" => TlsRequirement::Control,
            "control-and-data" => TlsRequirement::ControlAndData,
            other => return Err(ExitError::Answer(format!("unknown \"tls\": {other}"))),
        };
        Ok(Some(ExitLogin {
            home: PathBuf::from(home),
            tls,
        }))
    }

    /// An access: allowed or not.
    pub fn access(
        &self,
        user: &str,
        path: &str,
        need: Level,
        client: &str,
    ) -> Result<bool, ExitError> {
        let access = match need {
            Level::None => "none",
            Level::Read => "read",
            Level::Update => "update",
            Level::Alter => "alter",
        };
        let v = self.ask(&json!({
            "event": "access", "user": user, "path": path, "access": access, "client": client,
        }))?;
        Ok(v["allow"] == true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn script(body: &str) -> ExitProgram {
        ExitProgram {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), body.into()],
            timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn answers_and_denials() {
        let ok = script(r#"read l; echo '{"allow":true,"home":"/srv/x","tls":"control"}'"#);
        let l = ok.login("anna", "pw", "10.0.0.1").unwrap().unwrap();
        assert_eq!(l.home, PathBuf::from("/srv/x"));
        assert_eq!(l.tls, TlsRequirement::Control);
        // The request reaches the program.
        let echo = script(
            r#"read l; case "$l" in *'"access":"alter"'*'"path":"/a"'*|*'"path":"/a"'*'"access":"alter"'*) echo '{"allow":true}';; *) echo '{"allow":false}';; esac"#,
        );
        assert!(echo.access("anna", "/a", Level::Alter, "c").unwrap());
        assert!(!echo.access("anna", "/a", Level::Read, "c").unwrap());
        assert_eq!(
            script(r#"echo '{"allow":false}'"#)
                .login("a", "b", "c")
                .unwrap(),
            None
        );
        for bad in [
            "sleep 5",
            "exit 3",
            "kill -9 $$",
            "echo 'not json'",
            r#"echo '{"allow":"yes"}'"#,
            r#"echo '{"allow":true}'"#,
        ] {
            assert!(script(bad).login("a", "b", "c").is_err(), "{bad}");
        }
        let missing = ExitProgram {
            program: "/nonexistent/exit".into(),
            args: vec![],
            timeout: Duration::from_millis(100),
        };
        assert!(missing.access("a", "/", Level::Read, "c").is_err());
    }
}
