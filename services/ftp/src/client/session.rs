//! Runs a checked script: one step after another over one control connection at a time,
//! each reported with its line number; ON ERROR decides whether a failure ends the run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sixstack_transport::Transport;

use super::conn::{ClientStream, Control};
use super::facts::{self, Facts};
use super::script::{Command, Password, Step, TransferType};
use super::{ClientError, Options, PasswordSource, Report};

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Steps that completed.
    pub completed: usize,
    /// Every failed step: its line and the error text.
    pub failed: Vec<(usize, String)>,
    /// The line the run stopped at (ON ERROR STOP).
    pub stopped_at: Option<usize>,
}

impl Outcome {
    /// Whether every step completed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What the server said it supports (FEAT, RFC 2389).
#[derive(Debug, Clone, Copy)]
pub(super) struct Features {
    pub(super) mlst: bool,
    pub(super) size: bool,
    pub(super) rest: bool,
    pub(super) epsv: bool,
}

impl Default for Features {
    fn default() -> Features {
        Features {
            mlst: false,
            size: true,
            rest: true,
            epsv: true,
        }
    }
}

/// One run's state.
pub(super) struct Session<'a, T: Transport> {
    pub(super) t: &'a T,
    pub(super) opts: &'a Options,
    pub(super) report: &'a mut dyn Report,
    passwords: PasswordSource<'a>,
    pub(super) ctl: Option<Control<T::Stream>>,
    pub(super) host: String,
    pub(super) prot_p: bool,
    pub(super) ty: TransferType,
    /// The TYPE the server was last told.
    pub(super) sent_type: Option<char>,
    pub(super) passive: bool,
    pub(super) feat: Features,
    lcd: PathBuf,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    pub(super) line: usize,
}

/// Runs `steps` (from [`super::parse`]) and reports each one.
pub async fn run<T: Transport>(
    t: &T,
    steps: &[Step],
    opts: &Options,
    passwords: PasswordSource<'_>,
    report: &mut dyn Report,
) -> Outcome {
    let mut s = Session {
        t,
        opts,
        report,
        passwords,
        ctl: None,
        host: String::new(),
        prot_p: false,
        ty: TransferType::Ascii(None),
        sent_type: None,
        passive: true,
        feat: Features::default(),
        lcd: opts.local_dir.clone(),
        input: None,
        output: None,
        line: 0,
    };
    let mut out = Outcome::default();
    let mut stop_on_error = true;
    for step in steps {
        s.line = step.line;
        if let Command::StopOnError(b) = step.command {
            stop_on_error = b;
        }
        match s.step(&step.command).await {
            Ok(what) => {
                out.completed += 1;
                s.report.step_ok(step.line, &what);
            }
            Err(e) => {
                s.report
                    .step_failed(step.line, &step.command.describe(), &e);
                out.failed
                    .push((step.line, format!("{}: {e}", step.command.describe())));
                if stop_on_error {
                    out.stopped_at = Some(step.line);
                    break;
                }
            }
        }
    }
    if let Some(mut ctl) = s.ctl.take() {
        let _ = ctl.command(t, "QUIT").await;
    }
    out
}

fn local_err(path: &Path, what: &str, e: std::io::Error) -> ClientError {
    ClientError::Local(format!("{what} {}: {e}", path.display()))
}

impl<T: Transport> Session<'_, T> {
    pub(super) fn ctl(&mut self) -> Result<&mut Control<T::Stream>, ClientError> {
        self.ctl
            .as_mut()
            .ok_or_else(|| ClientError::Connection("no connection is open".into()))
    }

    fn local(&self, name: &str) -> PathBuf {
        self.lcd.join(name)
    }

    async fn step(&mut self, cmd: &Command) -> Result<String, ClientError> {
        let t = self.t;
        match cmd {
            Command::Open {
                host,
                port,
                implicit,
            } => self.open(host, *port, *implicit).await,
            Command::AuthTls => {
                let config = self.tls_config()?;
                let r = self.ctl()?.command(t, "AUTH TLS").await?;
                if r.code != 234 {
                    return Err(ClientError::Refused {
                        command: "AUTH TLS".into(),
                        reply: r,
                    });
                }
                let host = self.host.clone();
                let ctl = self.ctl()?;
                let plain = std::mem::replace(&mut ctl.stream, ClientStream::Closed);
                ctl.stream = plain
                    .upgrade(&host, config)
                    .await
                    .map_err(ClientError::Tls)?;
                Ok("AUTH TLS: control connection protected".into())
            }
            Command::User(u) => {
                let line = format!("USER {u}");
                let r = self.ctl()?.command(t, &line).await?;
                match r.code {
                    331 => Ok(format!("USER {u}: password required")),
                    230 => {
                        self.after_login().await?;
                        Ok(format!("USER {u}: logged in"))
                    }
                    _ => Err(ClientError::Refused {
                        command: line,
                        reply: r,
                    }),
                }
            }
            Command::Pass(p) => {
                let secret = match p {
                    Password::Vault(name) => {
                        (self.passwords)(name).map_err(ClientError::Password)?
                    }
                    Password::Clear(s) => zeroize::Zeroizing::new(s.clone()),
                };
                let line = zeroize::Zeroizing::new(format!("PASS {}", secret.as_str()));
                let r = self.ctl()?.command_shown(t, &line, "PASS ****").await?;
                if !matches!(r.code, 230 | 202) {
                    return Err(ClientError::Refused {
                        command: "PASS ****".into(),
                        reply: r,
                    });
                }
                self.after_login().await?;
                Ok("PASS: logged in".into())
            }
            Command::Type(ty) => {
                self.ty = *ty;
                self.send_type().await?;
                Ok(cmd.describe())
            }
            Command::Cd(d) => {
                self.ctl()?.expect_ok(t, &format!("CWD {d}")).await?;
                Ok(cmd.describe())
            }
            Command::Lcd(d) => {
                let dir = self.local(d);
                match std::fs::metadata(&dir) {
                    Ok(m) if m.is_dir() => {
                        self.lcd = dir;
                        Ok(format!("LCD {}", self.lcd.display()))
                    }
                    Ok(_) => Err(ClientError::Local(format!(
                        "LCD {}: not a directory",
                        dir.display()
                    ))),
                    Err(e) => Err(local_err(&dir, "LCD", e)),
                }
            }
            Command::Input(f) => {
                self.input = Some(self.local(f));
                Ok(cmd.describe())
            }
            Command::Output(f) => {
                self.output = Some(self.local(f));
                Ok(cmd.describe())
            }
            Command::Stor(remote) => {
                let local = self
                    .input
                    .take()
                    .ok_or_else(|| ClientError::Local("STOR without an INPUT file".into()))?;
                self.upload(&local, remote, false).await
            }
            Command::Append(remote) => {
                let local = self
                    .input
                    .take()
                    .ok_or_else(|| ClientError::Local("APPEND without an INPUT file".into()))?;
                self.upload(&local, remote, true).await
            }
            Command::Retr(remote) => {
                let local = self
                    .output
                    .take()
                    .ok_or_else(|| ClientError::Local("RETR without an OUTPUT file".into()))?;
                self.download(remote, &local).await
            }
            Command::Mput(pattern) => self.mput(pattern).await,
            Command::Mget(pattern) => self.mget(pattern).await,
            Command::Delete(f) => {
                self.ctl()?.expect_ok(t, &format!("DELE {f}")).await?;
                Ok(cmd.describe())
            }
            Command::Rename(a, b) => {
                self.rename(a, b).await?;
                Ok(cmd.describe())
            }
            Command::Mkdir(d) => {
                self.ctl()?.expect_ok(t, &format!("MKD {d}")).await?;
                Ok(cmd.describe())
            }
            Command::Site(args) => {
                let r = self.ctl()?.expect_ok(t, &format!("SITE {args}")).await?;
                Ok(format!("SITE {args}: {}", r.last()))
            }
            Command::Passive(p) => {
                self.passive = *p;
                Ok(cmd.describe())
            }
            Command::StopOnError(_) => Ok(cmd.describe()),
            Command::Quit => {
                if let Some(mut ctl) = self.ctl.take() {
                    ctl.command(t, "QUIT").await?;
                }
                Ok("QUIT".into())
            }
        }
    }

    fn tls_config(
        &self,
    ) -> Result<std::sync::Arc<sixstack_tls::rustls::ClientConfig>, ClientError> {
        self.opts.tls.clone().ok_or_else(|| {
            ClientError::Tls("TLS is not configured for this run (no CA given)".into())
        })
    }

    async fn open(&mut self, host: &str, port: u16, implicit: bool) -> Result<String, ClientError> {
        let t = self.t;
        if let Some(mut old) = self.ctl.take() {
            let _ = old.command(t, "QUIT").await;
        }
        let addr = sixstack_transport::resolve(host, port)
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let tcp = t.connect(addr, self.opts.timeout).await.map_err(|e| {
            ClientError::Connection(format!("cannot connect to {host} port {port}: {e}"))
        })?;
        let mut stream = ClientStream::Plain(tcp);
        self.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if implicit {
            stream = stream
                .upgrade(&self.host, self.tls_config()?)
                .await
                .map_err(ClientError::Tls)?;
        }
        let mut ctl = Control::new(stream, self.opts.timeout);
        let mut greeting = ctl.reply(t, "the greeting").await?;
        while greeting.code == 120 {
            greeting = ctl.reply(t, "the greeting").await?;
        }
        if !greeting.ok() {
            return Err(ClientError::Refused {
                command: format!("OPEN {host} {port}"),
                reply: greeting,
            });
        }
        self.ctl = Some(ctl);
        self.prot_p = false;
        self.sent_type = None;
        self.feat = Features::default();
        Ok(format!(
            "OPEN {host} {port}{}: {} (over {})",
            if implicit { " (implicit TLS)" } else { "" },
            greeting.last(),
            t.name()
        ))
    }

    async fn after_login(&mut self) -> Result<(), ClientError> {
        let t = self.t;
        let r = self.ctl()?.command(t, "FEAT").await?;
        if r.code == 211 {
            let mut f = Features {
                mlst: false,
                size: false,
                rest: false,
                epsv: true,
            };
            for l in &r.lines {
                let l = l.trim().to_ascii_uppercase();
                f.mlst |= l.starts_with("MLST");
                f.size |= l == "SIZE";
                f.rest |= l.starts_with("REST STREAM");
            }
            self.feat = f;
        }
        let tls = self.ctl()?.stream.is_tls();
        if tls {
            self.ctl()?.expect_ok(t, "PBSZ 0").await?;
            self.ctl()?.expect_ok(t, "PROT P").await?;
            self.prot_p = true;
        }
        Ok(())
    }

    /// Tells the server the TYPE the next transfer needs, when it differs.
    pub(super) async fn send_type(&mut self) -> Result<(), ClientError> {
        let want = match self.ty {
            TransferType::Image => 'I',
            TransferType::Ascii(_) => 'A',
        };
        self.server_type(want).await
    }

    async fn server_type(&mut self, want: char) -> Result<(), ClientError> {
        if self.sent_type != Some(want) {
            let t = self.t;
            self.ctl()?.expect_ok(t, &format!("TYPE {want}")).await?;
            self.sent_type = Some(want);
        }
        Ok(())
    }

    /// A remote file's facts: MLST where the server has it, else SIZE (in TYPE I, where
    /// the count is the file's bytes) and MDTM. `Ok(None)` when the file does not exist.
    pub(super) async fn facts(&mut self, name: &str) -> Result<Option<Facts>, ClientError> {
        let t = self.t;
        if self.feat.mlst {
            let r = self.ctl()?.command(t, &format!("MLST {name}")).await?;
            return match r.code {
                250 => Ok(facts::parse_mlst_reply(&r.lines)),
                550 => Ok(None),
                _ => Err(ClientError::Refused {
                    command: format!("MLST {name}"),
                    reply: r,
                }),
            };
        }
        if !self.feat.size {
            return Ok(Some(Facts {
                name: name.to_string(),
                ..Facts::default()
            }));
        }
        self.server_type('I').await?;
        let r = self.ctl()?.command(t, &format!("SIZE {name}")).await?;
        let size = match r.code {
            213 => r.last().trim().parse::<u64>().ok(),
            550 => return Ok(None),
            _ => {
                return Err(ClientError::Refused {
                    command: format!("SIZE {name}"),
                    reply: r,
                })
            }
        };
        let r = self.ctl()?.command(t, &format!("MDTM {name}")).await?;
        let modified = (r.code == 213)
            .then(|| facts::parse_time(r.last().trim()))
            .flatten();
        Ok(Some(Facts {
            kind: None,
            size,
            modified,
            name: name.to_string(),
        }))
    }

    pub(super) async fn rename(&mut self, from: &str, to: &str) -> Result<(), ClientError> {
        let t = self.t;
        let r = self.ctl()?.command(t, &format!("RNFR {from}")).await?;
        if r.code != 350 {
            return Err(ClientError::Refused {
                command: format!("RNFR {from}"),
                reply: r,
            });
        }
        self.ctl()?.expect_ok(t, &format!("RNTO {to}")).await?;
        Ok(())
    }

    async fn mput(&mut self, pattern: &str) -> Result<String, ClientError> {
        let (dir, pat) = match pattern.rsplit_once('/') {
            Some((d, p)) => (self.local(d), p.to_string()),
            None => (self.lcd.clone(), pattern.to_string()),
        };
        let entries = std::fs::read_dir(&dir).map_err(|e| local_err(&dir, "MPUT: listing", e))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| facts::wildcard_match(&pat, n) && !n.ends_with(".part"))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(ClientError::Local(format!(
                "MPUT {pattern}: no local file in {} matches",
                dir.display()
            )));
        }
        for n in &names {
            let msg = self.upload(&dir.join(n), n, false).await?;
            self.report.step_ok(self.line, &msg);
        }
        Ok(format!("MPUT {pattern}: {} file(s)", names.len()))
    }

    async fn mget(&mut self, pattern: &str) -> Result<String, ClientError> {
        let (dir, pat) = match pattern.rsplit_once('/') {
            Some((d, p)) => (Some(d.to_string()), p.to_string()),
            None => (None, pattern.to_string()),
        };
        let listing = self.list_names(dir.as_deref()).await?;
        let mut names: Vec<String> = listing
            .into_iter()
            .filter(|n| facts::wildcard_match(&pat, n))
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Err(ClientError::Local(format!(
                "MGET {pattern}: no remote file matches"
            )));
        }
        for n in &names {
            let remote = match &dir {
                Some(d) => format!("{d}/{n}"),
                None => n.clone(),
            };
            let local = self.local(n);
            let msg = self.download(&remote, &local).await?;
            self.report.step_ok(self.line, &msg);
        }
        Ok(format!("MGET {pattern}: {} file(s)", names.len()))
    }

    /// Where a transfer's time went, for the log line.
    pub(super) fn rate(bytes: u64, since: Instant) -> String {
        let s = since.elapsed().as_secs_f64().max(1e-6);
        format!(
            "{bytes} bytes in {s:.2} s ({:.1} Mbit/s)",
            bytes as f64 * 8.0 / s / 1e6
        )
    }
}
