//! EXEC: a command on the remote host, its standard output and error relayed as they come,
//! its exit status at the end. ssh prints its own complaints (host key, authentication,
//! reachability) on the same standard error as the command, so the command line starts
//! by printing a marker: what comes before it is ssh's (and is turned into a failure),
//! what comes after is the command's.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::session::{Context, Outcome};
use super::ssh::{classify, Remote, Target};
use crate::wire::{self, ErrorKind, Failure, Kind, Protocol, Ready, Request};

/// The line the remote shell prints before the command runs.
const MARKER: &[u8] = b"sixstack-scpd-exec-started\n";
/// The most output held while waiting for the marker.
const MAX_HELD: usize = 64 * 1024;

fn command_line(command: &str) -> String {
    format!("printf '%s\\n' sixstack-scpd-exec-started; {command}")
}

/// Runs `req.command` and relays it.
pub async fn exec<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    req: &Request,
    target: &Target<'_>,
    ctx: &Context,
) -> Outcome {
    let what = format!("EXEC {}", req.command);
    let line = command_line(&req.command);
    let mut ssh = match ctx.ssh.spawn(target, &Remote::Command(&line)) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failed(Failure {
                kind: ErrorKind::Internal,
                message: format!("{what}: {e}"),
            })
        }
    };
    drop(ssh.stdin.take());
    let (Some(mut out), Some(mut err)) = (ssh.stdout.take(), ssh.stderr.take()) else {
        return Outcome::Failed(Failure {
            kind: ErrorKind::Internal,
            message: format!("{what}: ssh has no pipes"),
        });
    };
    let mut started = false;
    let mut held_out = Vec::new();
    let mut held_err = Vec::new();
    let (mut out_open, mut err_open) = (true, true);
    let mut obuf = vec![0u8; 32 * 1024];
    let mut ebuf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    while out_open || err_open {
        let (kind, data) = tokio::select! {
            r = out.read(&mut obuf), if out_open => match r {
                Ok(0) | Err(_) => { out_open = false; continue; }
                Ok(n) => (Kind::Data, &obuf[..n]),
            },
            r = err.read(&mut ebuf), if err_open => match r {
                Ok(0) | Err(_) => { err_open = false; continue; }
                Ok(n) => (Kind::Stderr, &ebuf[..n]),
            },
        };
        if !started {
            if kind == Kind::Stderr {
                if held_err.len() < MAX_HELD {
                    held_err.extend_from_slice(data);
                }
                continue;
            }
            held_out.extend_from_slice(data);
            let Some(at) = find(&held_out, MARKER) else {
                if held_out.len() > MAX_HELD {
                    // Startup noise without end: drop all but a marker's length.
                    let keep = held_out.len() - MARKER.len();
                    held_out.drain(..keep);
                }
                continue;
            };
            started = true;
            if wire::send(
                tls,
                Kind::Ready,
                &Ready {
                    offset: 0,
                    size: None,
                    protocol: Protocol::Auto,
                },
            )
            .await
            .is_err()
            {
                return Outcome::Gone("the appliance hung up".into());
            }
            let rest = held_out.split_off(at + MARKER.len());
            for (k, bytes) in [
                (Kind::Stderr, std::mem::take(&mut held_err)),
                (Kind::Data, rest),
            ] {
                if !bytes.is_empty() {
                    if k == Kind::Data {
                        sent += bytes.len() as u64;
                    }
                    if let Err(e) = wire::write_frame(tls, k, &bytes).await {
                        return Outcome::Gone(e.to_string());
                    }
                }
            }
            continue;
        }
        if kind == Kind::Data {
            sent += data.len() as u64;
        }
        if let Err(e) = wire::write_frame(tls, kind, data).await {
            return Outcome::Gone(e.to_string());
        }
    }
    drop(out);
    drop(err);
    let (status, _) = ssh.finish().await;
    if !started {
        let text = String::from_utf8_lossy(&held_err).into_owned();
        return Outcome::Failed(classify(target, &what, status, &text));
    }
    Outcome::Done(
        wire::Done {
            bytes: sent,
            exit: Some(status.unwrap_or(255)),
            signal: None,
        },
        Protocol::Auto,
    )
}

/// Runs a housekeeping command (legacy scp's final rename) and fails unless it exits 0.
pub async fn run_quiet(
    ctx: &Context,
    target: &Target<'_>,
    command: &str,
    what: &str,
) -> Result<(), Failure> {
    let mut ssh = ctx
        .ssh
        .spawn(target, &Remote::Command(command))
        .map_err(|e| Failure {
            kind: ErrorKind::Internal,
            message: format!("{what}: {e}"),
        })?;
    ssh.collect_stderr();
    let (status, text) = ssh.finish().await;
    match status {
        Some(0) => Ok(()),
        Some(255) | None => Err(classify(target, what, status, &text)),
        Some(code) => Err(Failure {
            kind: ErrorKind::Remote,
            message: format!(
                "{what}: `{command}` failed with status {code}: {}",
                text.trim()
            ),
        }),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_comes_first() {
        assert_eq!(
            command_line("ls -l; exit 3"),
            "printf '%s\\n' sixstack-scpd-exec-started; ls -l; exit 3"
        );
        assert_eq!(
            find(b"noise\nsixstack-scpd-exec-started\nout", MARKER),
            Some(6)
        );
        assert_eq!(find(b"sixstack-scpd-exec-start", MARKER), None);
    }
}
