//! STOR and RETR: bytes between the appliance's TLS connection and an ssh child's pipes,
//! chunk by chunk, never touching the daemon's disk. Uploads go to `.NAME.sixstack-part`
//! beside the destination and are renamed over it only when every byte arrived and the
//! remote size agrees; a broken upload leaves the temporary file for a later resume (SFTP)
//! and never a partial file under the final name.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::session::{Context, Outcome};
use super::ssh::{Remote, Ssh, Target};
use crate::legacy::{shell_quote, ScpError, ScpSink, ScpSource};
use crate::sftp::{SftpClient, SftpError};
use crate::wire::{self, ErrorKind, Failure, Kind, Protocol, Ready, Request};

/// The suffix of an upload's temporary name.
pub const PART_SUFFIX: &str = ".sixstack-part";

/// Checks a remote path.
pub fn check_path(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > 4096 || p.contains(['\0', '\n', '\r']) {
        return Err(format!(
            "{p:?} is not a remote file name (1 to 4096 bytes, no NUL or line break)"
        ));
    }
    Ok(())
}

/// `dir/.name.sixstack-part` for `dir/name`.
pub fn temp_name(path: &str) -> Result<String, String> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), path),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{path:?} names a directory, not a file"));
    }
    Ok(format!("{dir}.{name}{PART_SUFFIX}"))
}

fn failed(kind: ErrorKind, message: String) -> Outcome {
    Outcome::Failed(Failure { kind, message })
}

fn sftp_failure(e: &SftpError, what: &str) -> Failure {
    let kind = if e.is_no_such_file() {
        ErrorKind::NoSuchFile
    } else if e.is_permission_denied() {
        ErrorKind::PermissionDenied
    } else {
        ErrorKind::Remote
    };
    Failure {
        kind,
        message: format!("{what}: {e}"),
    }
}

/// Why an SFTP step failed: the server's own status, or (when the channel broke) what ssh
/// said as it ended.
async fn sftp_broke(e: SftpError, ssh: Ssh, target: &Target<'_>, what: &str) -> Failure {
    match e {
        SftpError::Status { .. } => {
            drop(ssh);
            sftp_failure(&e, what)
        }
        _ => {
            let f = ssh.failure(target, what).await;
            if f.kind == ErrorKind::Remote && f.message.ends_with("exited with status 255") {
                Failure {
                    kind: ErrorKind::Remote,
                    message: format!("{what}: {e}"),
                }
            } else {
                f
            }
        }
    }
}

type Pipes = (tokio::process::ChildStdout, tokio::process::ChildStdin);

/// Starts ssh running `remote`, keeping its standard error for a diagnosis; returns it
/// with its output and input pipes.
fn spawn_piped(
    ctx: &Context,
    target: &Target<'_>,
    remote: &Remote<'_>,
    what: &str,
) -> Result<(Ssh, Pipes), Failure> {
    let internal = |message: String| Failure {
        kind: ErrorKind::Internal,
        message,
    };
    let mut ssh = ctx
        .ssh
        .spawn(target, remote)
        .map_err(|e| internal(format!("{what}: {e}")))?;
    ssh.collect_stderr();
    match (ssh.stdout.take(), ssh.stdin.take()) {
        (Some(out), Some(inp)) => Ok((ssh, (out, inp))),
        _ => Err(internal(format!("{what}: ssh has no pipes"))),
    }
}

/// Starts an SFTP session unless `protocol` asks for legacy scp. `Ok(None)`: use legacy
/// scp (asked for, or AUTO and the host has no SFTP subsystem).
async fn open_sftp(
    ctx: &Context,
    target: &Target<'_>,
    protocol: Protocol,
    what: &str,
) -> Result<
    Option<(
        SftpClient<tokio::process::ChildStdout, tokio::process::ChildStdin>,
        Ssh,
    )>,
    Failure,
> {
    if protocol == Protocol::Scp {
        return Ok(None);
    }
    let (ssh, (out, inp)) = spawn_piped(ctx, target, &Remote::Subsystem("sftp"), what)?;
    match SftpClient::start(out, inp).await {
        Ok(c) => Ok(Some((c, ssh))),
        Err(_) => {
            let f = ssh.failure(target, what).await;
            let no_subsystem =
                f.kind == ErrorKind::Remote && f.message.contains("no SFTP subsystem");
            match (no_subsystem, protocol) {
                (true, Protocol::Auto) => Ok(None),
                (true, _) => Err(Failure {
                    kind: ErrorKind::Remote,
                    message: format!(
                        "{what}: {target} has no SFTP subsystem (PROTOCOL SCP uses legacy scp)"
                    ),
                }),
                (false, _) => Err(f),
            }
        }
    }
}

/// Upload.
pub async fn stor<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    req: &Request,
    target: &Target<'_>,
    ctx: &Context,
) -> Outcome {
    let what = format!("STOR {}", req.path);
    let tmp = match temp_name(&req.path) {
        Ok(t) => t,
        Err(e) => return failed(ErrorKind::BadRequest, e),
    };
    match open_sftp(ctx, target, req.protocol, &what).await {
        Ok(Some((client, ssh))) => stor_sftp(tls, req, &tmp, client, ssh, target, &what).await,
        Ok(None) => stor_scp(tls, req, &tmp, target, ctx, &what).await,
        Err(f) => Outcome::Failed(f),
    }
}

async fn stor_sftp<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    req: &Request,
    tmp: &str,
    mut client: SftpClient<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    ssh: Ssh,
    target: &Target<'_>,
    what: &str,
) -> Outcome {
    let offset = if req.resume {
        match client.stat(tmp).await {
            // A leftover longer than this file is from another one: start over.
            Ok(Some(a)) => a.size.filter(|&n| n <= req.size).unwrap_or(0),
            Ok(None) => 0,
            Err(e) => return Outcome::Failed(sftp_broke(e, ssh, target, what).await),
        }
    } else {
        0
    };
    let mut file = match client
        .create(tmp, (offset > 0).then_some(offset), req.mode & 0o7777)
        .await
    {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(sftp_broke(e, ssh, target, what).await),
    };
    let ready = Ready {
        offset,
        size: None,
        protocol: Protocol::Sftp,
    };
    if let Err(e) = wire::send(tls, Kind::Ready, &ready).await {
        return Outcome::Gone(e.to_string());
    }
    let mut sink = SftpSink {
        client: &mut client,
        file: &mut file,
        broken: None,
    };
    let received = receive(tls, offset, &mut sink).await;
    if let Some(e) = sink.broken {
        // The upload was drained; the temporary file stays for a resume.
        return match received {
            Err(gone) => gone,
            Ok(_) => Outcome::Failed(sftp_broke(e, ssh, target, what).await),
        };
    }
    let end = match received {
        Ok(Received::End { claimed, arrived }) if claimed == arrived => claimed,
        Ok(Received::End { claimed, arrived }) => {
            let _ = client.finish_write(file).await;
            return failed(
                ErrorKind::BadRequest,
                format!("{what}: the appliance ended the upload at {claimed} bytes but sent {arrived} (kept as {tmp})"),
            );
        }
        Ok(Received::Aborted(why)) => {
            let _ = client.finish_write(file).await;
            return failed(
                ErrorKind::Aborted,
                format!("{what}: the appliance gave up: {why}"),
            );
        }
        Err(gone) => {
            // Keep what arrived under the temporary name for a resume.
            let _ = client.finish_write(file).await;
            return gone;
        }
    };
    let written = match client.finish_write(file).await {
        Ok(n) => n,
        Err(e) => return Outcome::Failed(sftp_broke(e, ssh, target, what).await),
    };
    if written != end || end != req.size {
        return failed(
            ErrorKind::BadRequest,
            format!(
                "{what}: upload incomplete: {written} bytes written, the appliance sent {end} of {} (kept as {tmp})",
                req.size
            ),
        );
    }
    match client.stat(tmp).await {
        Ok(Some(a)) if a.size == Some(end) => {}
        Ok(a) => {
            return failed(
                ErrorKind::Remote,
                format!(
                    "{what}: the remote file holds {:?} bytes, {end} were written",
                    a.and_then(|a| a.size)
                ),
            )
        }
        Err(e) => return Outcome::Failed(sftp_broke(e, ssh, target, what).await),
    }
    if let Err(e) = client.rename(tmp, &req.path).await {
        return Outcome::Failed(sftp_broke(e, ssh, target, what).await);
    }
    drop(client);
    let _ = ssh.finish().await;
    done(end, Protocol::Sftp)
}

async fn stor_scp<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    req: &Request,
    tmp: &str,
    target: &Target<'_>,
    ctx: &Context,
    what: &str,
) -> Outcome {
    let cmd = format!("scp -t -- {}", shell_quote(tmp));
    let (ssh, (out, inp)) = match spawn_piped(ctx, target, &Remote::Command(&cmd), what) {
        Ok(p) => p,
        Err(f) => return Outcome::Failed(f),
    };
    let name = tmp.rsplit('/').next().unwrap_or(tmp);
    let mut sink = match ScpSink::start(out, inp).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(scp_broke(e, ssh, target, what).await),
    };
    if let Err(e) = sink.begin(name, req.mode & 0o777, req.size).await {
        return Outcome::Failed(scp_broke(e, ssh, target, what).await);
    }
    let ready = Ready {
        offset: 0,
        size: None,
        protocol: Protocol::Scp,
    };
    if let Err(e) = wire::send(tls, Kind::Ready, &ready).await {
        return Outcome::Gone(e.to_string());
    }
    let mut writer = ScpWriter {
        sink: &mut sink,
        broken: None,
    };
    let received = receive(tls, 0, &mut writer).await;
    if let Some(e) = writer.broken {
        return match received {
            Err(gone) => gone,
            Ok(_) => Outcome::Failed(scp_broke(e, ssh, target, what).await),
        };
    }
    let end = match received {
        // Without the rest, the sink never completes the temporary file: ssh is killed.
        Ok(Received::Aborted(why)) => {
            return failed(
                ErrorKind::Aborted,
                format!("{what}: the appliance gave up: {why}"),
            )
        }
        Err(gone) => return gone,
        Ok(Received::End { claimed, arrived }) if claimed == arrived => claimed,
        Ok(Received::End { claimed, arrived }) => {
            return failed(
                ErrorKind::BadRequest,
                format!(
                    "{what}: the appliance ended the upload at {claimed} bytes but sent {arrived}"
                ),
            )
        }
    };
    if end != req.size {
        return failed(
            ErrorKind::BadRequest,
            format!(
                "{what}: upload incomplete: the appliance sent {end} of {} bytes",
                req.size
            ),
        );
    }
    if let Err(e) = sink.finish().await {
        return Outcome::Failed(scp_broke(e, ssh, target, what).await);
    }
    let (status, text) = ssh.finish().await;
    if status != Some(0) {
        return Outcome::Failed(super::ssh::classify(target, what, status, &text));
    }
    // The file is complete under its temporary name: move it into place.
    let mv = format!("mv -f -- {} {}", shell_quote(tmp), shell_quote(&req.path));
    if let Err(f) = super::exec::run_quiet(ctx, target, &mv, what).await {
        return Outcome::Failed(f);
    }
    done(end, Protocol::Scp)
}

async fn scp_broke(e: ScpError, ssh: Ssh, target: &Target<'_>, what: &str) -> Failure {
    match e {
        ScpError::Remote(msg) => {
            drop(ssh);
            let lower = msg.to_ascii_lowercase();
            let kind = if lower.contains("no such file") {
                ErrorKind::NoSuchFile
            } else if lower.contains("permission denied") {
                ErrorKind::PermissionDenied
            } else {
                ErrorKind::Remote
            };
            Failure {
                kind,
                message: format!("{what}: {}", msg.trim()),
            }
        }
        other => {
            let f = ssh.failure(target, what).await;
            if f.kind == ErrorKind::Remote && f.message.contains("exited with status") {
                Failure {
                    kind: ErrorKind::Remote,
                    message: format!("{what}: {other}"),
                }
            } else {
                f
            }
        }
    }
}

/// How an upload's frames ended.
enum Received {
    /// End: the whole file's size as the appliance counts it, and where the data reached.
    End {
        /// What End said.
        claimed: u64,
        /// The offset the Data frames reached.
        arrived: u64,
    },
    /// Abort, with the appliance's reason.
    Aborted(String),
}

/// Where an upload's bytes go. Once a write fails the sink keeps the error and takes
/// nothing more; the rest of the upload is read and dropped.
#[allow(async_fn_in_trait)]
trait Sink {
    async fn put(&mut self, data: &[u8]);
}

struct SftpSink<'a> {
    client: &'a mut SftpClient<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    file: &'a mut crate::sftp::FileWriter,
    broken: Option<SftpError>,
}

impl Sink for SftpSink<'_> {
    async fn put(&mut self, data: &[u8]) {
        if self.broken.is_none() {
            if let Err(e) = self.client.write(self.file, data).await {
                self.broken = Some(e);
            }
        }
    }
}

struct ScpWriter<'a> {
    sink: &'a mut ScpSink<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    broken: Option<ScpError>,
}

impl Sink for ScpWriter<'_> {
    async fn put(&mut self, data: &[u8]) {
        if self.broken.is_none() {
            if let Err(e) = self.sink.write(data).await {
                self.broken = Some(e);
            }
        }
    }
}

/// Reads an upload's frames from `offset` on, handing every Data payload to `sink`.
async fn receive<S, K>(tls: &mut S, offset: u64, sink: &mut K) -> Result<Received, Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink,
{
    let mut at = offset;
    loop {
        let frame = match wire::read_frame(tls).await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(Outcome::Gone("the appliance hung up mid-upload".into())),
            Err(e) => return Err(Outcome::Gone(e.to_string())),
        };
        match frame.kind {
            Kind::Data => {
                at += frame.payload.len() as u64;
                sink.put(&frame.payload).await;
            }
            Kind::End => {
                let end: wire::End = frame.control().map_err(|e| Outcome::Gone(e.to_string()))?;
                return Ok(Received::End {
                    claimed: end.bytes,
                    arrived: at,
                });
            }
            Kind::Abort => {
                let why = String::from_utf8_lossy(&frame.payload).into_owned();
                return Ok(Received::Aborted(why));
            }
            _ => return Err(Outcome::Gone(frame.unexpected("upload data").to_string())),
        }
    }
}

/// Download.
pub async fn retr<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    req: &Request,
    target: &Target<'_>,
    ctx: &Context,
) -> Outcome {
    let what = format!("RETR {}", req.path);
    match open_sftp(ctx, target, req.protocol, &what).await {
        Ok(Some((client, ssh))) => retr_sftp(tls, req, client, ssh, target, &what).await,
        Ok(None) => retr_scp(tls, req, target, ctx, &what).await,
        Err(f) => Outcome::Failed(f),
    }
}

async fn retr_sftp<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    req: &Request,
    mut client: SftpClient<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    ssh: Ssh,
    target: &Target<'_>,
    what: &str,
) -> Outcome {
    let mut file = match client.open_read(&req.path, req.from).await {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(sftp_broke(e, ssh, target, what).await),
    };
    let ready = Ready {
        offset: req.from,
        size: file.size(),
        protocol: Protocol::Sftp,
    };
    if let Err(e) = wire::send(tls, Kind::Ready, &ready).await {
        return Outcome::Gone(e.to_string());
    }
    let mut source = SftpSource {
        client: &mut client,
        file: &mut file,
    };
    let sent = match relay(tls, &mut source).await {
        Ok(n) => n,
        Err(Relayed::Gone(why)) => return Outcome::Gone(why),
        Err(Relayed::Broke(e)) => return Outcome::Failed(sftp_broke(e, ssh, target, what).await),
    };
    let _ = client.close_read(file).await;
    drop(client);
    let _ = ssh.finish().await;
    done(sent, Protocol::Sftp)
}

async fn retr_scp<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    req: &Request,
    target: &Target<'_>,
    ctx: &Context,
    what: &str,
) -> Outcome {
    let cmd = format!("scp -f -- {}", shell_quote(&req.path));
    let (ssh, (out, inp)) = match spawn_piped(ctx, target, &Remote::Command(&cmd), what) {
        Ok(p) => p,
        Err(f) => return Outcome::Failed(f),
    };
    let mut source = match ScpSource::start(out, inp).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(scp_broke(e, ssh, target, what).await),
    };
    // Legacy scp cannot start part-way: the whole file comes, from offset 0.
    let ready = Ready {
        offset: 0,
        size: Some(source.size()),
        protocol: Protocol::Scp,
    };
    if let Err(e) = wire::send(tls, Kind::Ready, &ready).await {
        return Outcome::Gone(e.to_string());
    }
    let sent = match relay(tls, &mut source).await {
        Ok(n) => n,
        Err(Relayed::Gone(why)) => return Outcome::Gone(why),
        Err(Relayed::Broke(e)) => return Outcome::Failed(scp_broke(e, ssh, target, what).await),
    };
    drop(source);
    let _ = ssh.finish().await;
    done(sent, Protocol::Scp)
}

/// Where a download's bytes come from.
#[allow(async_fn_in_trait)]
trait Source {
    type Error;
    /// The next bytes; `None` at the end.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, Self::Error>;
}

struct SftpSource<'a> {
    client: &'a mut SftpClient<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    file: &'a mut crate::sftp::FileReader,
}

impl Source for SftpSource<'_> {
    type Error = SftpError;
    async fn next(&mut self) -> Result<Option<Vec<u8>>, SftpError> {
        self.client.read(self.file).await
    }
}

impl Source for ScpSource<tokio::process::ChildStdout, tokio::process::ChildStdin> {
    type Error = ScpError;
    async fn next(&mut self) -> Result<Option<Vec<u8>>, ScpError> {
        self.read().await
    }
}

/// Why a relay stopped early.
enum Relayed<E> {
    /// The appliance's connection broke.
    Gone(String),
    /// The remote side failed.
    Broke(E),
}

/// Sends everything `source` yields to the appliance as Data frames; returns the bytes.
async fn relay<S, K>(tls: &mut S, source: &mut K) -> Result<u64, Relayed<K::Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Source,
{
    let mut sent = 0u64;
    loop {
        match source.next().await {
            Ok(Some(data)) => {
                for piece in data.chunks(wire::DATA_CHUNK) {
                    wire::write_frame(tls, Kind::Data, piece)
                        .await
                        .map_err(|e| Relayed::Gone(e.to_string()))?;
                }
                sent += data.len() as u64;
            }
            Ok(None) => return Ok(sent),
            Err(e) => {
                let _ = tls.flush().await;
                return Err(Relayed::Broke(e));
            }
        }
    }
}

/// A completed transfer of `bytes` over `protocol`.
fn done(bytes: u64, protocol: Protocol) -> Outcome {
    Outcome::Done(
        wire::Done {
            bytes,
            exit: None,
            signal: None,
        },
        protocol,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_sit_beside_the_file() {
        assert_eq!(temp_name("a.txt").unwrap(), ".a.txt.sixstack-part");
        assert_eq!(temp_name("/x/y/a").unwrap(), "/x/y/.a.sixstack-part");
        assert!(temp_name("dir/").is_err());
        assert!(temp_name("..").is_err());
        assert!(check_path("a\nb").is_err());
        assert!(check_path("").is_err());
    }
}
