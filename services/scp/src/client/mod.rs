//! The appliance's secure-copy client (`sixstack scp SCRIPT`): a script ([`script`]) of
//! transfers and remote commands, run over a [`Transport`] (the appliance's stack or the
//! kernel's) and mutual TLS to scpd, which does the SSH work. [`link`] is the connection
//! to the daemon; [`steps`] moves files and runs commands; [`text`] converts TYPE A.
//!
//! Files are never presented complete before they are: downloads go to `NAME.part` and
//! are renamed when every byte arrived and the sizes agree; uploads go to a temporary
//! name on the remote host, which the daemon renames when complete.

pub mod link;
pub mod script;
mod steps;
pub mod text;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sixstack_tls::rustls::ClientConfig;
use sixstack_transport::Transport;

pub use script::{parse, Command, Step};

use crate::wire::{ErrorKind, Failure, Protocol};
use script::{Eol, TransferType};

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The daemon refused or reported a failure (allow-list, host key, authentication,
    /// remote file, ...).
    #[error("{0}")]
    Daemon(Failure),
    /// The daemon could not be reached, the TLS handshake failed, or the connection broke.
    #[error("{0}")]
    Connection(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Local(String),
    /// A transfer ended but the byte counts disagree.
    #[error("{0}")]
    Verify(String),
    /// A remote command exited with a non-zero status.
    #[error("the command exited with status {0}")]
    Exit(i32),
}

impl ClientError {
    /// The daemon's failure kind, where the daemon reported one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Daemon(f) => Some(f.kind),
            _ => None,
        }
    }
}

/// How a script runs.
#[derive(Clone)]
pub struct Options {
    /// TLS to the daemon: the CA its certificate leads to and the appliance's certificate.
    pub tls: Arc<ClientConfig>,
    /// The name the daemon's certificate must carry, when not the DAEMON host.
    pub server_name: Option<String>,
    /// The longest wait for the daemon.
    pub timeout: Duration,
    /// How often a transfer whose connection broke is tried again (resuming).
    pub retries: u32,
    /// Where LCD starts.
    pub local_dir: PathBuf,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("local_dir", &self.local_dir)
            .finish_non_exhaustive()
    }
}

/// Where the client reports what it does.
pub trait Report {
    /// A step completed.
    fn step_ok(&mut self, line: usize, what: &str);
    /// A step failed.
    fn step_failed(&mut self, line: usize, what: &str, error: &ClientError);
    /// Transfer progress for the step at `line`.
    fn progress(&mut self, line: usize, name: &str, done: u64, total: Option<u64>);
    /// A remote command's output (standard error when `stderr`).
    fn output(&mut self, stderr: bool, data: &[u8]);
}

/// How a script ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The failed steps: line and error text.
    pub failed: Vec<(usize, String)>,
    /// The line where ON ERROR STOP ended the script.
    pub stopped_at: Option<usize>,
    /// Steps that completed.
    pub completed: usize,
}

impl Outcome {
    /// Whether every step completed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What the script has set so far.
#[derive(Debug)]
pub(crate) struct State {
    pub daemon: Option<(String, u16)>,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub ty: TransferType,
    pub eol: Eol,
    pub resume: bool,
    pub local_dir: PathBuf,
    pub input: Option<PathBuf>,
    pub output: Option<PathBuf>,
}

/// Runs `steps` and reports each.
pub async fn run<T: Transport>(
    t: &T,
    steps: &[Step],
    opts: &Options,
    report: &mut dyn Report,
) -> Outcome {
    let mut st = State {
        daemon: None,
        user: String::new(),
        host: String::new(),
        port: 22,
        protocol: Protocol::Auto,
        ty: TransferType::Image,
        eol: Eol::Lf,
        resume: true,
        local_dir: opts.local_dir.clone(),
        input: None,
        output: None,
    };
    let mut link: Option<link::Link<T::Stream>> = None;
    let mut stop = true;
    let mut outcome = Outcome::default();
    for step in steps {
        let what = step.command.describe();
        let r: Result<Option<String>, ClientError> = match &step.command {
            Command::Daemon { host, port } => {
                st.daemon = Some((host.clone(), *port));
                link = None;
                match link::Link::connect(t, host, *port, opts).await {
                    Ok(l) => {
                        let who = format!("connected as {}", l.appliance);
                        link = Some(l);
                        Ok(Some(who))
                    }
                    Err(e) => Err(e),
                }
            }
            Command::Host { user, host } => {
                st.user.clone_from(user);
                st.host.clone_from(host);
                Ok(None)
            }
            Command::Port(p) => {
                st.port = *p;
                Ok(None)
            }
            Command::Protocol(p) => {
                st.protocol = *p;
                Ok(None)
            }
            Command::Type(ty) => {
                st.ty = *ty;
                Ok(None)
            }
            Command::Eol(e) => {
                st.eol = *e;
                Ok(None)
            }
            Command::Resume(on) => {
                st.resume = *on;
                Ok(None)
            }
            Command::Lcd(d) => {
                let p = st.local_dir.join(d);
                if p.is_dir() {
                    st.local_dir = p;
                    Ok(None)
                } else {
                    Err(ClientError::Local(format!(
                        "{} is not a directory",
                        p.display()
                    )))
                }
            }
            Command::Input(f) => {
                st.input = Some(st.local_dir.join(f));
                Ok(None)
            }
            Command::Output(f) => {
                st.output = Some(st.local_dir.join(f));
                Ok(None)
            }
            Command::Stor(remote) => {
                let local = st.input.take();
                steps::stor(
                    t,
                    &mut link,
                    &st,
                    opts,
                    step.line,
                    local.as_deref(),
                    remote,
                    report,
                )
                .await
                .map(Some)
            }
            Command::Retr(remote) => {
                let local = st.output.take();
                steps::retr(
                    t,
                    &mut link,
                    &st,
                    opts,
                    step.line,
                    local.as_deref(),
                    remote,
                    report,
                )
                .await
                .map(Some)
            }
            Command::Exec(cmd) => {
                let local = st.output.take();
                steps::exec(t, &mut link, &st, opts, local.as_deref(), cmd, report)
                    .await
                    .map(Some)
            }
            Command::StopOnError(s) => {
                stop = *s;
                Ok(None)
            }
            Command::Quit => {
                if let Some(l) = link.take() {
                    l.close().await;
                }
                Ok(None)
            }
        };
        match r {
            Ok(detail) => {
                outcome.completed += 1;
                let text = match detail {
                    Some(d) => format!("{what}: {d}"),
                    None => what,
                };
                report.step_ok(step.line, &text);
            }
            Err(e) => {
                report.step_failed(step.line, &what, &e);
                outcome.failed.push((step.line, format!("{what}: {e}")));
                if stop {
                    outcome.stopped_at = Some(step.line);
                    break;
                }
            }
        }
    }
    if let Some(l) = link.take() {
        l.close().await;
    }
    outcome
}
