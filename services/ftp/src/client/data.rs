//! The batch FTP client's data connections and transfers: passive (EPSV, else PASV) or
//! active (EPRT, else PORT), TLS under PROT P, TYPE A recoding (with an EBCDIC code page
//! for local files), resume with REST, size checks, files under temporary names until
//! they are complete.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sixstack_transport::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::ClientStream;
use super::reply::{parse_epsv, parse_pasv};
use super::script::TransferType;
use super::session::Session;
use super::ClientError;
use crate::ascii::{FromWire, Recode, ToWire};
use crate::ebcdic::{FileToWire, WireToFile};

/// Bytes read from a local file per write to the data connection.
const CHUNK: usize = 256 * 1024;

/// The suffix of an upload until it is complete and verified.
pub const REMOTE_PART: &str = ".sixstack-part";
/// The suffix of a download until it is complete and verified.
pub const LOCAL_PART: &str = ".part";

/// What a data connection carries.
enum Flow<'f> {
    /// A local file to the server, from `offset`.
    Up(&'f mut File),
    /// From the server into a local file (positioned where writing goes on).
    Down(&'f mut File),
    /// From the server into memory (listings), at most this many bytes.
    Listing(&'f mut Vec<u8>),
}

/// A data connection being set up.
enum Pending<L> {
    /// Connected already (passive).
    Connected(SocketAddr),
    /// Waiting for the server (active).
    Listening(L),
}

fn local_err(path: &Path, what: &str, e: std::io::Error) -> ClientError {
    ClientError::Local(format!("{what} {}: {e}", path.display()))
}

/// The longest listing MGET reads.
const MAX_LISTING: usize = 16 << 20;

/// Whether a failed transfer may be tried again (the connection broke, or the server
/// gave a transient refusal such as 426 or 451).
fn resumable(e: &ClientError) -> bool {
    match e {
        ClientError::Connection(_) => true,
        ClientError::Refused { reply, .. } => reply.class() == 4,
        _ => false,
    }
}

fn part_name(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

impl<T: Transport> Session<'_, T> {
    /// Opens the data connection's first half: passive connects, active listens and
    /// tells the server where.
    async fn prepare_data(&mut self) -> Result<Pending<T::Listener>, ClientError> {
        let t = self.t;
        let (local, peer) = {
            let ctl = self.ctl()?;
            let tcp = ctl.stream.tcp().ok_or_else(|| {
                ClientError::Connection("the control connection is closed".into())
            })?;
            let local = t
                .local_addr(tcp)
                .map_err(|e| ClientError::Connection(e.to_string()))?;
            let peer = t
                .peer_addr(tcp)
                .map_err(|e| ClientError::Connection(e.to_string()))?;
            (local, peer)
        };
        if self.passive {
            if self.feat.epsv {
                let r = self.ctl()?.command(t, "EPSV").await?;
                if r.code == 229 {
                    let port = parse_epsv(r.last()).ok_or_else(|| ClientError::Refused {
                        command: "EPSV".into(),
                        reply: r.clone(),
                    })?;
                    return Ok(Pending::Connected(SocketAddr::new(peer.ip(), port)));
                }
                if peer.is_ipv6() {
                    return Err(ClientError::Refused {
                        command: "EPSV".into(),
                        reply: r,
                    });
                }
                self.feat.epsv = false;
            }
            let r = self.ctl()?.command(t, "PASV").await?;
            let (_, port) = (r.code == 227)
                .then(|| parse_pasv(r.last()))
                .flatten()
                .ok_or_else(|| ClientError::Refused {
                    command: "PASV".into(),
                    reply: r.clone(),
                })?;
            // The address in the reply is ignored: data goes to the server the control
            // connection reached (no third party, whatever the reply says).
            return Ok(Pending::Connected(SocketAddr::new(peer.ip(), port)));
        }
        let (listener, at) = t.listen(local.ip()).await.map_err(|e| {
            ClientError::Connection(format!("listening for the data connection: {e}"))
        })?;
        let line = match at {
            SocketAddr::V4(a) => {
                let o = a.ip().octets();
                format!(
                    "PORT {},{},{},{},{},{}",
                    o[0],
                    o[1],
                    o[2],
                    o[3],
                    a.port() >> 8,
                    a.port() & 0xff
                )
            }
            SocketAddr::V6(a) => format!("EPRT |2|{}|{}|", a.ip(), a.port()),
        };
        self.ctl()?.expect_ok(t, &line).await?;
        Ok(Pending::Listening(listener))
    }

    /// Runs one transfer command (`RETR x`, `STOR x`, `APPE x`, `MLSD`, `NLST`) over a new
    /// data connection, from or to `flow`; `offset` is sent as REST first. Returns the
    /// bytes that crossed the local side.
    async fn transfer(
        &mut self,
        command: &str,
        offset: u64,
        flow: Flow<'_>,
        name: &str,
        total: Option<u64>,
        ascii: bool,
    ) -> Result<u64, ClientError> {
        let t = self.t;
        if ascii {
            self.send_type().await?;
        } else if self.sent_type != Some('I') {
            self.ctl()?.expect_ok(t, "TYPE I").await?;
            self.sent_type = Some('I');
        }
        if offset > 0 {
            let r = self.ctl()?.command(t, &format!("REST {offset}")).await?;
            if r.code != 350 {
                return Err(ClientError::Refused {
                    command: format!("REST {offset}"),
                    reply: r,
                });
            }
        }
        let pending = self.prepare_data().await?;
        let limit = self.opts.timeout;
        let early =
            match &pending {
                Pending::Connected(addr) => Some(t.connect(*addr, limit).await.map_err(|e| {
                    ClientError::Connection(format!("data connection to {addr}: {e}"))
                })?),
                Pending::Listening(_) => None,
            };
        let r = self.ctl()?.command(t, command).await?;
        if r.class() != 1 {
            return Err(ClientError::Refused {
                command: command.to_string(),
                reply: r,
            });
        }
        let tcp = match (early, pending) {
            (Some(s), _) => s,
            (None, Pending::Listening(l)) => {
                sixstack_transport::timeout(t, limit, "the server's data connection", t.accept(&l))
                    .await
                    .and_then(|r| r)
                    .map_err(|e| ClientError::Connection(format!("data connection: {e}")))?
                    .0
            }
            (None, Pending::Connected(_)) => {
                return Err(ClientError::Connection("no data connection".into()))
            }
        };
        let mut data = ClientStream::Plain(tcp);
        if self.prot_p {
            let config = self
                .opts
                .tls
                .clone()
                .ok_or_else(|| ClientError::Tls("PROT P without a TLS configuration".into()))?;
            data = data
                .upgrade(&self.host, config)
                .await
                .map_err(ClientError::Tls)?;
        }
        let moved = self.pump(&mut data, flow, name, offset, total, ascii).await;
        drop(data);
        let r = self.ctl()?.reply(t, command).await?;
        let moved = moved?;
        if !r.ok() {
            return Err(ClientError::Refused {
                command: command.to_string(),
                reply: r,
            });
        }
        Ok(moved)
    }

    /// Moves the bytes of one data connection.
    async fn pump(
        &mut self,
        data: &mut ClientStream<T::Stream>,
        flow: Flow<'_>,
        name: &str,
        offset: u64,
        total: Option<u64>,
        ascii: bool,
    ) -> Result<u64, ClientError> {
        let t = self.t;
        let limit = self.opts.timeout;
        let page = match self.ty {
            TransferType::Ascii(p) => p,
            TransferType::Image => None,
        };
        let broken = |e: std::io::Error| ClientError::Connection(format!("data connection: {e}"));
        let mut done = offset;
        match flow {
            Flow::Up(file) => {
                let mut recode: Option<Box<dyn Recode>> = match (ascii, page) {
                    (false, _) => None,
                    (true, None) => Some(Box::new(ToWire::default())),
                    (true, Some(p)) => Some(Box::new(FileToWire::new(p))),
                };
                let mut buf = vec![0u8; CHUNK];
                let mut wire = Vec::new();
                loop {
                    let n = file
                        .read(&mut buf)
                        .map_err(|e| ClientError::Local(format!("reading {name}: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    let out: &[u8] = match recode.as_mut() {
                        Some(r) => {
                            r.convert(&buf[..n], &mut wire);
                            &wire
                        }
                        None => &buf[..n],
                    };
                    sixstack_transport::timeout(t, limit, "sending data", data.write_all(out))
                        .await
                        .and_then(|r| r)
                        .map_err(broken)?;
                    done += n as u64;
                    self.report.progress(self.line, name, done, total);
                }
                sixstack_transport::timeout(
                    t,
                    limit,
                    "closing the data connection",
                    data.shutdown(),
                )
                .await
                .and_then(|r| r)
                .map_err(broken)?;
            }
            Flow::Down(file) => {
                let mut recode: Option<Box<dyn Recode>> = match (ascii, page) {
                    (false, _) => None,
                    (true, None) => Some(Box::new(FromWire::default())),
                    (true, Some(p)) => Some(Box::new(WireToFile::new(p))),
                };
                let mut buf = vec![0u8; CHUNK];
                let mut local = Vec::new();
                loop {
                    let n = match sixstack_transport::timeout(
                        t,
                        limit,
                        "receiving data",
                        data.read(&mut buf),
                    )
                    .await
                    .and_then(|r| r)
                    {
                        Ok(n) => n,
                        // A server that closes without TLS close_notify: the size check
                        // below tells a complete file from a cut one.
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                        Err(e) => return Err(broken(e)),
                    };
                    let chunk: &[u8] = match recode.as_mut() {
                        Some(r) if n == 0 => {
                            r.finish(&mut local);
                            &local
                        }
                        Some(r) => {
                            r.convert(&buf[..n], &mut local);
                            &local
                        }
                        None => &buf[..n],
                    };
                    file.write_all(chunk)
                        .map_err(|e| ClientError::Local(format!("writing {name}: {e}")))?;
                    done += chunk.len() as u64;
                    if n == 0 {
                        break;
                    }
                    self.report.progress(self.line, name, done, total);
                }
            }
            Flow::Listing(out) => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match sixstack_transport::timeout(
                        t,
                        limit,
                        "receiving a listing",
                        data.read(&mut buf),
                    )
                    .await
                    .and_then(|r| r)
                    {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                        Err(e) => return Err(broken(e)),
                    };
                    if n == 0 {
                        break;
                    }
                    if out.len() + n > MAX_LISTING {
                        return Err(ClientError::Connection(format!(
                            "the listing is longer than {MAX_LISTING} bytes"
                        )));
                    }
                    out.extend_from_slice(&buf[..n]);
                    done += n as u64;
                }
            }
        }
        Ok(done)
    }

    /// The names of the plain files in a remote directory (MLSD where the server has it,
    /// else NLST).
    pub(super) async fn list_names(
        &mut self,
        dir: Option<&str>,
    ) -> Result<Vec<String>, ClientError> {
        let mut raw = Vec::new();
        let mlsd = self.feat.mlst;
        let cmd = match (mlsd, dir) {
            (true, Some(d)) => format!("MLSD {d}"),
            (true, None) => "MLSD".to_string(),
            (false, Some(d)) => format!("NLST {d}"),
            (false, None) => "NLST".to_string(),
        };
        self.transfer(&cmd, 0, Flow::Listing(&mut raw), "listing", None, true)
            .await?;
        let text = String::from_utf8_lossy(&raw);
        let names = text
            .lines()
            .filter_map(|l| {
                if mlsd {
                    super::facts::parse_mlst_entry(l)
                        .filter(|f| f.is_file())
                        .map(|f| f.name)
                } else {
                    let l = l.trim_end_matches('\r');
                    let base = l.rsplit('/').next().unwrap_or(l);
                    (!base.is_empty()).then(|| base.to_string())
                }
            })
            .collect();
        Ok(names)
    }

    /// Uploads `local` as `remote`: to a temporary name, resumed after a break where the
    /// server allows, checked for size, then renamed. APPEND goes straight to the file and
    /// checks that it grew by the file's size.
    pub(super) async fn upload(
        &mut self,
        local: &Path,
        remote: &str,
        append: bool,
    ) -> Result<String, ClientError> {
        let mut file = File::open(local).map_err(|e| local_err(local, "INPUT", e))?;
        let meta = file.metadata().map_err(|e| local_err(local, "INPUT", e))?;
        if !meta.is_file() {
            return Err(ClientError::Local(format!(
                "INPUT {}: not a plain file",
                local.display()
            )));
        }
        let size = meta.len();
        let ascii = matches!(self.ty, TransferType::Ascii(_));
        let start = Instant::now();
        if append {
            let before = self.facts(remote).await?.and_then(|f| f.size).unwrap_or(0);
            let cmd = format!("APPE {remote}");
            self.transfer(&cmd, 0, Flow::Up(&mut file), remote, Some(size), ascii)
                .await?;
            let after = self.facts(remote).await?.and_then(|f| f.size);
            if let Some(after) = after {
                if after != before + size {
                    return Err(ClientError::Verify(format!(
                        "APPEND {remote}: the file grew from {before} to {after} bytes, not by {size}"
                    )));
                }
            }
            return Ok(format!(
                "APPEND {} -> {remote}: {}",
                local.display(),
                Self::rate(size, start)
            ));
        }
        let temp = format!("{remote}{REMOTE_PART}");
        let can_resume = !ascii && self.feat.rest;
        let mut offset = 0;
        if can_resume {
            if let Some(s) = self.facts(&temp).await?.and_then(|f| f.size) {
                if s < size {
                    offset = s;
                }
            }
        }
        let resumed_at = offset;
        let mut tries = 0;
        loop {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| local_err(local, "INPUT", e))?;
            let cmd = format!("STOR {temp}");
            match self
                .transfer(&cmd, offset, Flow::Up(&mut file), remote, Some(size), ascii)
                .await
            {
                Ok(_) => break,
                Err(e) if resumable(&e) && tries < self.opts.retries && self.ctl.is_some() => {
                    tries += 1;
                    offset = if can_resume {
                        self.facts(&temp)
                            .await?
                            .and_then(|f| f.size)
                            .unwrap_or(0)
                            .min(size)
                    } else {
                        0
                    };
                }
                Err(e) => return Err(e),
            }
        }
        let stored = self.facts(&temp).await?.and_then(|f| f.size);
        if let Some(stored) = stored {
            if stored != size {
                let t = self.t;
                let _ = self.ctl()?.command(t, &format!("DELE {temp}")).await;
                return Err(ClientError::Verify(format!(
                    "STOR {remote}: the server holds {stored} bytes of the {size} sent{}",
                    if ascii {
                        " (TYPE A: does the server convert line endings?)"
                    } else {
                        ""
                    }
                )));
            }
        }
        self.rename(&temp, remote).await?;
        Ok(format!(
            "STOR {} -> {remote}: {}{}{}",
            local.display(),
            Self::rate(size - resumed_at, start),
            if stored.is_some() {
                ", size verified"
            } else {
                ""
            },
            if resumed_at > 0 {
                format!(", resumed at {resumed_at}")
            } else {
                String::new()
            }
        ))
    }

    /// Downloads `remote` into `local`: into `local.part`, resumed where the server allows
    /// (also from an earlier run's part), checked for size, dated as on the server, then
    /// renamed.
    pub(super) async fn download(
        &mut self,
        remote: &str,
        local: &Path,
    ) -> Result<String, ClientError> {
        let facts = self
            .facts(remote)
            .await?
            .ok_or_else(|| ClientError::Refused {
                command: format!("RETR {remote}"),
                reply: super::Reply {
                    code: 550,
                    lines: vec![format!("{remote}: no such file")],
                },
            })?;
        if !facts.is_file() {
            return Err(ClientError::Local(format!(
                "RETR {remote}: not a plain file"
            )));
        }
        let ascii = matches!(self.ty, TransferType::Ascii(_));
        let part = part_name(local, LOCAL_PART);
        let can_resume = !ascii && self.feat.rest;
        let mut offset = 0;
        if can_resume {
            if let (Ok(m), Some(size)) = (std::fs::metadata(&part), facts.size) {
                if m.is_file() && m.len() < size {
                    offset = m.len();
                }
            }
        }
        let resumed_at = offset;
        let start = Instant::now();
        let mut tries = 0;
        loop {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(offset == 0)
                .open(&part)
                .map_err(|e| local_err(&part, "OUTPUT", e))?;
            file.set_len(offset)
                .and_then(|_| file.seek(SeekFrom::Start(offset)).map(|_| ()))
                .map_err(|e| local_err(&part, "OUTPUT", e))?;
            let cmd = format!("RETR {remote}");
            match self
                .transfer(
                    &cmd,
                    offset,
                    Flow::Down(&mut file),
                    remote,
                    facts.size,
                    ascii,
                )
                .await
            {
                Ok(_) => {
                    file.sync_all().map_err(|e| local_err(&part, "OUTPUT", e))?;
                    if let Some(m) = facts.modified {
                        let _ = file.set_modified(m);
                    }
                    break;
                }
                Err(e) if resumable(&e) && tries < self.opts.retries && self.ctl.is_some() => {
                    tries += 1;
                    offset = if can_resume {
                        file.metadata().map(|m| m.len()).unwrap_or(0)
                    } else {
                        0
                    };
                }
                Err(e) => return Err(e),
            }
        }
        let got = std::fs::metadata(&part)
            .map_err(|e| local_err(&part, "OUTPUT", e))?
            .len();
        if let Some(size) = facts.size {
            if got != size {
                return Err(ClientError::Verify(format!(
                    "RETR {remote}: {got} bytes arrived of the {size} the server announced \
                     (kept in {} for a later resume)",
                    part.display()
                )));
            }
        }
        std::fs::rename(&part, local).map_err(|e| local_err(local, "OUTPUT", e))?;
        Ok(format!(
            "RETR {remote} -> {}: {}{}{}",
            local.display(),
            Self::rate(got - resumed_at, start),
            if facts.size.is_some() {
                ", size verified"
            } else {
                ""
            },
            if resumed_at > 0 {
                format!(", resumed at {resumed_at}")
            } else {
                String::new()
            }
        ))
    }
}
