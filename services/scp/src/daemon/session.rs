//! One appliance connection: the Welcome, then requests one after another until the
//! appliance hangs up. Each request is checked (well-formed, on the appliance's allow-list)
//! before ssh starts; each ends with one transfer log line.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::allow::{check_host, check_user, Appliance};
use super::ssh::{SshSettings, Target};
use super::{exec, transfer};
use crate::wire::{self, ErrorKind, Failure, Kind, Op, Request};

/// What ends a request.
#[derive(Debug)]
pub enum Outcome {
    /// It completed.
    Done(wire::Done, wire::Protocol),
    /// It failed; the appliance is told and the connection goes on.
    Failed(Failure),
    /// The appliance connection broke or spoke nonsense: it is closed.
    Gone(String),
}

/// What every session shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// How ssh is run.
    pub ssh: SshSettings,
}

/// Serves one verified appliance until it hangs up.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: S,
    appliance: &Appliance,
    peer: &str,
    ctx: &Context,
) {
    let welcome = wire::Welcome {
        version: wire::VERSION,
        appliance: appliance.name.clone(),
    };
    if wire::send(&mut tls, Kind::Welcome, &welcome).await.is_err() {
        return;
    }
    loop {
        let frame = match wire::read_frame(&mut tls).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                log::info!(
                    "scpd: appliance {} ({peer}): connection ended: {e}",
                    appliance.name
                );
                return;
            }
        };
        if frame.kind != Kind::Request {
            let f = Failure {
                kind: ErrorKind::BadRequest,
                message: format!("expected a request, got a {:?} frame", frame.kind),
            };
            let _ = wire::send(&mut tls, Kind::Error, &f).await;
            return;
        }
        let req: Request = match frame.control() {
            Ok(r) => r,
            Err(e) => {
                let f = Failure {
                    kind: ErrorKind::BadRequest,
                    message: e.to_string(),
                };
                if wire::send(&mut tls, Kind::Error, &f).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let started = Instant::now();
        let outcome = match check(&req, appliance) {
            Err(f) => Outcome::Failed(f),
            Ok(()) => {
                let target = Target {
                    user: &req.user,
                    host: &req.host,
                    port: req.port,
                };
                match req.op {
                    Op::Stor => transfer::stor(&mut tls, &req, &target, ctx).await,
                    Op::Retr => transfer::retr(&mut tls, &req, &target, ctx).await,
                    Op::Exec => exec::exec(&mut tls, &req, &target, ctx).await,
                }
            }
        };
        log_line(appliance, peer, &req, &outcome, started);
        let sent = match &outcome {
            Outcome::Done(d, _) => wire::send(&mut tls, Kind::Done, d).await,
            Outcome::Failed(f) => wire::send(&mut tls, Kind::Error, f).await,
            Outcome::Gone(_) => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Refuses a request that is malformed or not on the appliance's allow-list.
fn check(req: &Request, appliance: &Appliance) -> Result<(), Failure> {
    let bad = |message: String| Failure {
        kind: ErrorKind::BadRequest,
        message,
    };
    check_user(&req.user).map_err(bad)?;
    check_host(&req.host).map_err(bad)?;
    if req.port == 0 {
        return Err(bad("port 0".into()));
    }
    match req.op {
        Op::Stor | Op::Retr => transfer::check_path(&req.path).map_err(bad)?,
        Op::Exec => {
            if req.command.trim().is_empty()
                || req.command.len() > 8192
                || req.command.contains('\0')
            {
                return Err(bad("EXEC needs a command of at most 8192 bytes".into()));
            }
        }
    }
    if !appliance.may_use(&req.user, &req.host) {
        return Err(Failure {
            kind: ErrorKind::NotAllowed,
            message: format!(
                "appliance {:?} may not use {}@{} (not on scpd's allow-list)",
                appliance.name, req.user, req.host
            ),
        });
    }
    Ok(())
}

/// The transfer log: one line a request, on standard output.
fn log_line(appliance: &Appliance, peer: &str, req: &Request, outcome: &Outcome, started: Instant) {
    let op = match req.op {
        Op::Stor => "STOR",
        Op::Retr => "RETR",
        Op::Exec => "EXEC",
    };
    let what = match req.op {
        Op::Exec => format!("command={:?}", req.command),
        _ => format!("file={:?}", req.path),
    };
    let (result, bytes, proto) = match outcome {
        Outcome::Done(d, p) => {
            let r = match d.exit {
                Some(code) => format!("ok exit={code}"),
                None => "ok".to_string(),
            };
            (r, d.bytes, p.name())
        }
        Outcome::Failed(f) => (
            format!("failed ({:?}: {})", f.kind, f.message),
            0,
            req.protocol.name(),
        ),
        Outcome::Gone(why) => (
            format!("failed (appliance gone: {why})"),
            0,
            req.protocol.name(),
        ),
    };
    println!(
        "scpd: appliance={} peer={peer} op={op} target={}@{}:{} {what} protocol={proto} bytes={bytes} secs={:.3} result={result}",
        appliance.name,
        req.user,
        req.host,
        req.port,
        started.elapsed().as_secs_f64()
    );
}
