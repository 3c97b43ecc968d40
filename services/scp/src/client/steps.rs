//! The steps that talk to the daemon: STOR, RETR and EXEC. A transfer whose connection
//! breaks is tried again on a new connection (up to `retries` times), resuming where the
//! remote side allows it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sixstack_transport::Transport;
use tokio::io::{AsyncRead, AsyncWrite};

use super::link::{self, Link};
use super::script::TransferType;
use super::text::Convert;
use super::{ClientError, Options, Report, State};
use crate::wire::{Done, End, Kind, Op, Ready, Request};

/// Bytes read from a local file at a time.
const READ_CHUNK: usize = 256 * 1024;

/// The link, connecting (again) if there is none.
pub(crate) async fn ensure_link<'a, T: Transport>(
    t: &T,
    link: &'a mut Option<Link<T::Stream>>,
    st: &State,
    opts: &Options,
) -> Result<&'a mut Link<T::Stream>, ClientError> {
    if link.is_none() {
        let (host, port) = st
            .daemon
            .as_ref()
            .ok_or_else(|| ClientError::Connection("no DAEMON given".into()))?;
        *link = Some(Link::connect(t, host, *port, opts).await?);
    }
    link.as_mut()
        .ok_or_else(|| ClientError::Connection("no connection to scpd".into()))
}

fn request(st: &State, op: Op) -> Request {
    Request {
        op,
        user: st.user.clone(),
        host: st.host.clone(),
        port: st.port,
        path: String::new(),
        command: String::new(),
        protocol: st.protocol,
        resume: false,
        from: 0,
        size: 0,
        mode: 0o644,
    }
}

fn local_err(p: &Path, what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Local(format!("{}: cannot {what}: {e}", p.display()))
}

/// Whether a failed attempt is tried again: only a broken connection, and only while
/// attempts remain. The broken link is dropped either way; the first failure is kept in
/// `first` so the final error tells the whole story.
async fn again<T: Transport, S>(
    t: &T,
    e: &mut ClientError,
    first: &mut Option<String>,
    attempt: u32,
    opts: &Options,
    link: &mut Option<Link<S>>,
) -> bool {
    if !matches!(e, ClientError::Connection(_)) {
        return false;
    }
    *link = None;
    if attempt >= opts.retries {
        if let Some(f) = first.take() {
            *e = ClientError::Connection(format!("{f}; tried again {attempt} time(s): {e}"));
        }
        return false;
    }
    log::warn!("{e}; trying again ({} of {})", attempt + 1, opts.retries);
    if first.is_none() {
        *first = Some(e.to_string());
    }
    t.sleep(std::time::Duration::from_millis(
        500 * u64::from(attempt + 1),
    ))
    .await;
    true
}

/// The size of `path` as the remote host will hold it (after TYPE A conversion).
fn converted_size(path: &Path, st: &State) -> Result<u64, ClientError> {
    let Some(mut conv) = Convert::upload(st.ty, st.eol) else {
        return std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| local_err(path, "read", e));
    };
    let mut f = File::open(path).map_err(|e| local_err(path, "open", e))?;
    let (mut buf, mut out, mut n) = (vec![0u8; READ_CHUNK], Vec::new(), 0u64);
    loop {
        let got = f.read(&mut buf).map_err(|e| local_err(path, "read", e))?;
        if got == 0 {
            break;
        }
        conv.convert(&buf[..got], &mut out);
        n += out.len() as u64;
    }
    conv.finish(&mut out);
    Ok(n + out.len() as u64)
}

/// Upload `local` to `remote`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn stor<T: Transport>(
    t: &T,
    link: &mut Option<Link<T::Stream>>,
    st: &State,
    opts: &Options,
    line: usize,
    local: Option<&Path>,
    remote: &str,
    report: &mut dyn Report,
) -> Result<String, ClientError> {
    let local = local.ok_or_else(|| ClientError::Local("STOR without INPUT".into()))?;
    let size = converted_size(local, st)?;
    let what = Attempt::Stor {
        local,
        remote,
        size,
    };
    with_retries(t, link, st, opts, line, what, report).await
}

/// One try of a transfer.
#[derive(Clone, Copy)]
enum Attempt<'a> {
    Stor {
        local: &'a Path,
        remote: &'a str,
        size: u64,
    },
    Retr {
        local: &'a Path,
        remote: &'a str,
    },
}

/// Tries `what` until it succeeds, fails for a reason other than the connection, or the
/// retries are spent.
async fn with_retries<T: Transport>(
    t: &T,
    link: &mut Option<Link<T::Stream>>,
    st: &State,
    opts: &Options,
    line: usize,
    what: Attempt<'_>,
    report: &mut dyn Report,
) -> Result<String, ClientError> {
    let (mut attempt, mut first) = (0, None);
    loop {
        let r = match ensure_link(t, link, st, opts).await {
            Ok(l) => match what {
                Attempt::Stor {
                    local,
                    remote,
                    size,
                } => stor_once(t, l, st, opts, line, local, remote, size, report).await,
                Attempt::Retr { local, remote } => {
                    retr_once(t, l, st, opts, line, local, remote, report).await
                }
            },
            Err(e) => Err(e),
        };
        match r {
            Err(mut e) => {
                if !again(t, &mut e, &mut first, attempt, opts, link).await {
                    return Err(e);
                }
                attempt += 1;
            }
            ok => return ok,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn stor_once<T: Transport, S: AsyncRead + AsyncWrite + Unpin>(
    t: &T,
    l: &mut Link<S>,
    st: &State,
    opts: &Options,
    line: usize,
    local: &Path,
    remote: &str,
    size: u64,
    report: &mut dyn Report,
) -> Result<String, ClientError> {
    let mut f = File::open(local).map_err(|e| local_err(local, "open", e))?;
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        f.metadata()
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o644)
    };
    let mut req = request(st, Op::Stor);
    req.path = remote.to_string();
    req.size = size;
    req.mode = mode | 0o600;
    req.resume = st.resume;
    l.send(Kind::Request, &req).await?;
    let f0 = l.next(t, opts, "the daemon's answer to STOR").await?;
    let ready: Ready = match f0.kind {
        Kind::Ready => f0
            .control()
            .map_err(|e| ClientError::Connection(e.to_string()))?,
        Kind::Error => return Err(link::failure(&f0)),
        _ => return Err(ClientError::Connection(f0.unexpected("Ready").to_string())),
    };
    let offset = ready.offset.min(size);
    let mut conv = Convert::upload(st.ty, st.eol);
    if conv.is_none() {
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| local_err(local, "seek", e))?;
    }
    let name = remote.rsplit('/').next().unwrap_or(remote).to_string();
    let (mut buf, mut out) = (vec![0u8; READ_CHUNK], Vec::new());
    // Converted bytes still to skip (the remote side holds them already).
    let mut skip = if conv.is_some() { offset } else { 0 };
    let mut at = offset;
    let mut eof = false;
    while !eof {
        let got = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let why = format!("{}: read failed: {e}", local.display());
                l.abort(&why).await?;
                let _ = l.next(t, opts, "the daemon's answer to Abort").await;
                return Err(ClientError::Local(why));
            }
        };
        let chunk: &[u8] = match &mut conv {
            None if got == 0 => {
                eof = true;
                &[]
            }
            None => &buf[..got],
            Some(c) if got == 0 => {
                eof = true;
                c.finish(&mut out);
                &out
            }
            Some(c) => {
                c.convert(&buf[..got], &mut out);
                &out
            }
        };
        let s = (skip as usize).min(chunk.len());
        skip -= s as u64;
        let chunk = &chunk[s..];
        if at + chunk.len() as u64 > size {
            let why = format!("{} grew while it was being sent", local.display());
            l.abort(&why).await?;
            let _ = l.next(t, opts, "the daemon's answer to Abort").await;
            return Err(ClientError::Local(why));
        }
        l.data(chunk).await?;
        at += chunk.len() as u64;
        report.progress(line, &name, at, Some(size));
    }
    if at != size {
        let why = format!("{} shrank while it was being sent", local.display());
        l.abort(&why).await?;
        let _ = l.next(t, opts, "the daemon's answer to Abort").await;
        return Err(ClientError::Local(why));
    }
    l.send(Kind::End, &End { bytes: size }).await?;
    let f1 = l
        .next(t, opts, "the daemon's answer to the end of the upload")
        .await?;
    let done: Done = match f1.kind {
        Kind::Done => f1
            .control()
            .map_err(|e| ClientError::Connection(e.to_string()))?,
        Kind::Error => return Err(link::failure(&f1)),
        _ => return Err(ClientError::Connection(f1.unexpected("Done").to_string())),
    };
    if done.bytes != size {
        return Err(ClientError::Verify(format!(
            "the remote file holds {} bytes, {size} were sent",
            done.bytes
        )));
    }
    let resumed = if offset > 0 {
        format!(", resumed at {offset}")
    } else {
        String::new()
    };
    Ok(format!(
        "{size} bytes over {}{resumed}",
        ready.protocol.name()
    ))
}

/// `NAME.part` beside `local`.
fn part_name(local: &Path) -> PathBuf {
    let mut s = local.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Download `remote` into `local`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn retr<T: Transport>(
    t: &T,
    link: &mut Option<Link<T::Stream>>,
    st: &State,
    opts: &Options,
    line: usize,
    local: Option<&Path>,
    remote: &str,
    report: &mut dyn Report,
) -> Result<String, ClientError> {
    let local = local.ok_or_else(|| ClientError::Local("RETR without OUTPUT".into()))?;
    with_retries(
        t,
        link,
        st,
        opts,
        line,
        Attempt::Retr { local, remote },
        report,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn retr_once<T: Transport, S: AsyncRead + AsyncWrite + Unpin>(
    t: &T,
    l: &mut Link<S>,
    st: &State,
    opts: &Options,
    line: usize,
    local: &Path,
    remote: &str,
    report: &mut dyn Report,
) -> Result<String, ClientError> {
    let part = part_name(local);
    // Only binary downloads resume: a text file's local bytes are not the remote's.
    let from = match (st.resume, st.ty) {
        (true, TransferType::Image) => std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0),
        _ => 0,
    };
    let mut req = request(st, Op::Retr);
    req.path = remote.to_string();
    req.from = from;
    l.send(Kind::Request, &req).await?;
    let f0 = l.next(t, opts, "the daemon's answer to RETR").await?;
    let ready: Ready = match f0.kind {
        Kind::Ready => f0
            .control()
            .map_err(|e| ClientError::Connection(e.to_string()))?,
        Kind::Error => return Err(link::failure(&f0)),
        _ => return Err(ClientError::Connection(f0.unexpected("Ready").to_string())),
    };
    if ready.offset != 0 && ready.offset != from {
        return Err(ClientError::Verify(format!(
            "scpd starts at byte {}, the appliance asked for {from}",
            ready.offset
        )));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(ready.offset == 0)
        .append(ready.offset != 0)
        .open(&part)
        .map_err(|e| local_err(&part, "create", e))?;
    let mut conv = Convert::download(st.ty);
    let name = remote.rsplit('/').next().unwrap_or(remote).to_string();
    let mut got = 0u64;
    let mut out = Vec::new();
    let done: Done = loop {
        let f = l.next(t, opts, "file data from scpd").await?;
        match f.kind {
            Kind::Data => {
                got += f.payload.len() as u64;
                let bytes: &[u8] = match &mut conv {
                    Some(c) => {
                        c.convert(&f.payload, &mut out);
                        &out
                    }
                    None => &f.payload,
                };
                file.write_all(bytes)
                    .map_err(|e| local_err(&part, "write", e))?;
                report.progress(line, &name, ready.offset + got, ready.size);
            }
            Kind::Done => {
                break f
                    .control()
                    .map_err(|e| ClientError::Connection(e.to_string()))?
            }
            Kind::Error => return Err(link::failure(&f)),
            _ => {
                return Err(ClientError::Connection(
                    f.unexpected("file data").to_string(),
                ))
            }
        }
    };
    if let Some(c) = &mut conv {
        c.finish(&mut out);
        file.write_all(&out)
            .map_err(|e| local_err(&part, "write", e))?;
    }
    file.sync_all().map_err(|e| local_err(&part, "write", e))?;
    if done.bytes != got {
        return Err(ClientError::Verify(format!(
            "scpd sent {got} bytes but counted {} (kept as {})",
            done.bytes,
            part.display()
        )));
    }
    let total = ready.offset + got;
    if let Some(size) = ready.size {
        if size != total {
            return Err(ClientError::Verify(format!(
                "the remote file has {size} bytes, {total} arrived (kept as {})",
                part.display()
            )));
        }
    }
    std::fs::rename(&part, local).map_err(|e| local_err(local, "rename the .part file to", e))?;
    let resumed = if ready.offset > 0 {
        format!(", resumed at {}", ready.offset)
    } else {
        String::new()
    };
    Ok(format!(
        "{total} bytes over {}{resumed}",
        ready.protocol.name()
    ))
}

/// Run `command`; its output goes to `local` (when given) or to the report.
pub(crate) async fn exec<T: Transport>(
    t: &T,
    link: &mut Option<Link<T::Stream>>,
    st: &State,
    opts: &Options,
    local: Option<&Path>,
    command: &str,
    report: &mut dyn Report,
) -> Result<String, ClientError> {
    let l = ensure_link(t, link, st, opts).await?;
    let r = exec_once(t, l, st, opts, local, command, report).await;
    if matches!(r, Err(ClientError::Connection(_))) {
        *link = None;
    }
    r
}

async fn exec_once<T: Transport, S: AsyncRead + AsyncWrite + Unpin>(
    t: &T,
    l: &mut Link<S>,
    st: &State,
    opts: &Options,
    local: Option<&Path>,
    command: &str,
    report: &mut dyn Report,
) -> Result<String, ClientError> {
    let mut file = match local {
        Some(p) => Some((
            File::create(part_name(p)).map_err(|e| local_err(p, "create", e))?,
            p,
        )),
        None => None,
    };
    let mut req = request(st, Op::Exec);
    req.command = command.to_string();
    l.send(Kind::Request, &req).await?;
    let f0 = l.next(t, opts, "the daemon's answer to EXEC").await?;
    match f0.kind {
        Kind::Ready => {}
        Kind::Error => return Err(link::failure(&f0)),
        _ => return Err(ClientError::Connection(f0.unexpected("Ready").to_string())),
    }
    let done: Done = loop {
        let f = l.next(t, opts, "the command's output").await?;
        match f.kind {
            Kind::Data => match &mut file {
                Some((w, p)) => w
                    .write_all(&f.payload)
                    .map_err(|e| local_err(p, "write", e))?,
                None => report.output(false, &f.payload),
            },
            Kind::Stderr => report.output(true, &f.payload),
            Kind::Done => {
                break f
                    .control()
                    .map_err(|e| ClientError::Connection(e.to_string()))?
            }
            Kind::Error => return Err(link::failure(&f)),
            _ => {
                return Err(ClientError::Connection(
                    f.unexpected("command output").to_string(),
                ))
            }
        }
    };
    if let Some((w, p)) = file {
        w.sync_all().map_err(|e| local_err(p, "write", e))?;
        std::fs::rename(part_name(p), p).map_err(|e| local_err(p, "rename to", e))?;
    }
    match done.exit {
        Some(0) => Ok(format!("exit status 0, {} bytes of output", done.bytes)),
        Some(code) => Err(ClientError::Exit(code)),
        None => Err(ClientError::Verify("scpd reported no exit status".into())),
    }
}
