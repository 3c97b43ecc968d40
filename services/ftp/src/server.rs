//! The FTP server on a shard: accepts control connections, runs each through a
//! [`Session`], and carries out its requests against the user's home ([`Home`]) and the
//! data connections (passive on a port this shard owns, so the data connection lands
//! beside its control connection; or active, to the client's own address only). File
//! contents move through the shard's io_uring; a password check runs off the shard.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sixstack_stack::smoltcp::wire::{IpEndpoint, IpListenEndpoint};
use sixstack_stack::{offload, timeout, ListenOptions, Net, TcpListener, TcpStream};
use sixstack_tls::ShardAcceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ascii::{FromWire, Recode, ToWire};
use crate::command::{TransferType, MAX_LINE};
use crate::ebcdic::{CodePage, FileToWire, WireToFile};
use crate::fs::{facts_line, long_line, timeval, Home};
use crate::limits::{Admission, Limits};
use crate::reply::Reply;
use crate::rules::Level;
use crate::security::{Account, Security};
use crate::session::{ListKind, LoginOutcome, Request, Session, SessionPolicy, Step};
use crate::stream::Stream;
use crate::vpath::VirtualPath;
use crate::xferlog::{Direction, Record, XferLog};

/// Bytes moved per disk operation.
const CHUNK: usize = 256 * 1024;

/// How much of an upload is read and dropped after its file could not be written.
const DRAIN_AFTER_FAILURE: u64 = 64 << 20;

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct FtpConfig {
    /// Control port.
    pub port: u16,
    /// The security method.
    pub security: Security,
    /// Passive data ports (within 49152..=65535; each shard uses the ones it owns).
    pub passive_ports: RangeInclusive<u16>,
    /// Session rules.
    pub policy: SessionPolicy,
    /// A control connection with no command for this long is closed.
    pub idle_timeout: Duration,
    /// How long a data connection may take to be opened, and may stall.
    pub data_timeout: Duration,
    /// Implicit FTPS port (TLS from the first byte), when TLS is configured.
    pub implicit_port: Option<u16>,
    /// A PROT P data connection must resume the control connection's TLS session (so no
    /// one else can take it); off for clients that cannot.
    pub require_data_resumption: bool,
    /// Clients in all and per address, and the lockout after failed logins (shared by
    /// every shard).
    pub limits: Arc<Limits>,
    /// How long a failed login waits before its reply.
    pub failure_delay: Duration,
    /// Which user a verified client certificate signs on (no password asked).
    pub signon: Arc<sixstack_tls::signon::UserMap>,
    /// Receive and send buffer of each data connection (the window a bulk transfer gets).
    pub data_buffer: usize,
    /// The transfer log file, when one is configured (else transfers are logged as log
    /// lines only).
    pub xferlog: Option<XferLog>,
    /// A port for control connections handed on by a proxy listener (implicit FTPS by way
    /// of the proxy's TLS wrapping): each starts with a PROXY protocol version 2 header.
    pub proxied_port: Option<u16>,
    /// Proxies other than the appliance's own listeners that may connect to the proxied
    /// port.
    pub trusted_proxies: Vec<IpAddr>,
    /// Passwords verified a moment ago (shared by every shard).
    pub login_cache: Arc<crate::login_cache::LoginCache>,
    /// A PROT P upload must end with TLS close_notify (else it failed: a forged FIN cannot
    /// cut it short); off, an end of stream without it ends the upload, as many clients
    /// close that way.
    pub strict_tls_upload_eof: bool,
}

/// Serves FTP on this shard until it drains; with `tls`, AUTH TLS and PROT P are offered
/// and the implicit FTPS port is served too; with a proxied port, connections handed on by
/// a proxy listener (PROXY protocol version 2) are served there.
pub async fn serve(net: Net, cfg: Rc<FtpConfig>, tls: Option<ShardAcceptor>) -> io::Result<()> {
    let mut extra = Vec::new();
    if let (Some(port), Some(_)) = (cfg.implicit_port, &tls) {
        extra.push((port, Entry::Implicit));
    }
    if let Some(port) = cfg.proxied_port {
        extra.push((port, Entry::Proxied));
    }
    for (port, entry) in extra {
        let (n, c, t) = (net.clone(), cfg.clone(), tls.clone());
        net.spawn(async move {
            if let Err(e) = listen(n, c, t, port, entry).await {
                log::error!("ftp on port {port} stopped: {e}");
            }
        });
    }
    let port = cfg.port;
    listen(net, cfg, tls, port, Entry::Plain).await
}

/// How control connections arrive on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Clear text (AUTH TLS upgrades it).
    Plain,
    /// TLS from the first byte.
    Implicit,
    /// From a proxy listener of this appliance (or a trusted proxy): a PROXY protocol
    /// version 2 header first, naming the client and whether it spoke TLS to the proxy.
    Proxied,
}

/// Who a control connection is for, once it has arrived.
struct Arrival {
    control: Stream,
    /// The client.
    client: IpAddr,
    /// The address the client connected to, when it is not the connection's own local
    /// address (behind a proxy): passive data ports are opened there.
    local: Option<IpAddr>,
    /// The control connection is protected (here or at the proxy).
    protected: bool,
    /// The user a verified client certificate at the proxy signs on.
    cert_user: Option<String>,
    /// Bytes of the client's that came with the PROXY header.
    early: Vec<u8>,
}

/// Reads the PROXY protocol header a proxied connection starts with: the header (`None`
/// for LOCAL, a proxy's health check) and the bytes after it.
async fn read_proxy_header(
    net: &Net,
    stream: &mut TcpStream,
    limit: Duration,
) -> io::Result<Option<(sixstack_proxy::proxy_protocol::Proxied, Vec<u8>)>> {
    use sixstack_proxy::proxy_protocol::parse_v2;
    let mut buf = Vec::new();
    let read = async {
        loop {
            match parse_v2(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
                Some((h, len)) => return Ok::<_, io::Error>((h, len)),
                None => {
                    let mut chunk = [0u8; 512];
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    };
    let (h, len) = timeout(net, limit, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY header"))??;
    if h.addresses.is_none() {
        return Ok(None);
    }
    Ok(Some((h, buf.split_off(len))))
}

/// Takes a new control connection in: the TLS handshake (implicit), the PROXY header
/// (proxied); `None` when it is not to be served (each refusal is logged).
async fn arrive(
    net: &Net,
    cfg: &FtpConfig,
    tls: Option<&ShardAcceptor>,
    mut stream: TcpStream,
    peer: IpEndpoint,
    entry: Entry,
) -> Option<Arrival> {
    let from: IpAddr = peer.addr.into();
    let plain = |control, protected| Arrival {
        control,
        client: from,
        local: None,
        protected,
        cert_user: None,
        early: Vec::new(),
    };
    match entry {
        Entry::Plain => Some(plain(Stream::Plain(stream), false)),
        Entry::Implicit => match tls?.accept(stream, &peer).await {
            Ok(s) => {
                let control = Stream::Tls(Box::new(s));
                let cert_user = certificate_user(cfg, &control);
                Some(Arrival {
                    cert_user,
                    ..plain(control, true)
                })
            }
            // The acceptor logs refused handshakes.
            Err(_) => None,
        },
        Entry::Proxied => {
            if !net.is_own_address(from) && !cfg.trusted_proxies.contains(&from) {
                log::warn!("ftp: {peer} is not a trusted proxy; connection refused");
                stream.abort();
                return None;
            }
            match read_proxy_header(net, &mut stream, cfg.data_timeout).await {
                Ok(Some((h, early))) => {
                    let (client, local) = h.addresses?;
                    let cert_user = h
                        .tls
                        .as_ref()
                        .and_then(|t| t.client_cn.clone())
                        .filter(|_| cfg.signon.common_name_is_user);
                    Some(Arrival {
                        control: Stream::Plain(stream),
                        client: client.ip(),
                        local: Some(local.ip()),
                        protected: h.tls.is_some(),
                        cert_user,
                        early,
                    })
                }
                // LOCAL: the proxy checking that this port answers.
                Ok(None) => None,
                Err(e) => {
                    log::warn!("ftp: proxied connection from {peer} refused: {e}");
                    stream.abort();
                    None
                }
            }
        }
    }
}

async fn listen(
    net: Net,
    cfg: Rc<FtpConfig>,
    tls: Option<ShardAcceptor>,
    port: u16,
    entry: Entry,
) -> io::Result<()> {
    let listener = TcpListener::bind_with(
        &net,
        IpListenEndpoint { addr: None, port },
        ListenOptions::from_config(&net),
    )?;
    log::info!(
        "ftp listening on port {port}{}",
        match entry {
            Entry::Plain => "",
            Entry::Implicit => " (implicit TLS)",
            Entry::Proxied => " (behind a proxy listener: PROXY protocol v2)",
        }
    );
    let data_tls = tls.as_ref().map(ShardAcceptor::without_tickets);
    listener
        .serve_each(|stream, peer| {
            let (net, cfg, tls, data_tls) =
                (net.clone(), cfg.clone(), tls.clone(), data_tls.clone());
            async move {
                let Some(a) = arrive(&net, &cfg, tls.as_ref(), stream, peer, entry).await else {
                    return;
                };
                let admission = match cfg.limits.admit(a.client) {
                    Ok(adm) => adm,
                    Err(why) => {
                        log::warn!("ftp: {} turned away: {why}", a.client);
                        let mut control = a.control;
                        let r = Reply::new(421, format!("{why}; try again later"));
                        let _ = control.write_all(&r.to_bytes()).await;
                        let _ = control.shutdown().await;
                        return;
                    }
                };
                let mut policy = cfg.policy.clone();
                policy.tls_available = tls.is_some();
                let mut conn = Conn {
                    _admission: admission,
                    ebcdic: None,
                    cert_user: a.cert_user,
                    session: Session::new(policy, a.client, a.protected),
                    net,
                    cfg,
                    tls,
                    data_tls,
                    control: a.control,
                    peer: a.client,
                    local: a.local,
                    buf: a.early,
                    account: None,
                    home: None,
                    passive: None,
                    active: None,
                    after_ccc: false,
                };
                if let Err(e) = conn.run().await {
                    log::debug!("ftp {peer}: {e}");
                }
            }
        })
        .await
}

/// How a transfer's bytes are recoded: not at all (TYPE I), or TYPE A one way or the
/// other (listings stay plain).
struct Conversion(Option<Box<dyn Recode>>);

impl Conversion {
    /// File bytes to wire bytes (RETR).
    fn outbound(ty: TransferType, page: Option<CodePage>) -> Conversion {
        Conversion(match (ty, page) {
            (TransferType::Image, _) => None,
            (TransferType::Ascii, None) => Some(Box::new(ToWire::default())),
            (TransferType::Ascii, Some(p)) => Some(Box::new(FileToWire::new(p))),
        })
    }

    /// Wire bytes to file bytes (STOR, APPE).
    fn inbound(ty: TransferType, page: Option<CodePage>) -> Conversion {
        Conversion(match (ty, page) {
            (TransferType::Image, _) => None,
            (TransferType::Ascii, None) => Some(Box::new(FromWire::default())),
            (TransferType::Ascii, Some(p)) => Some(Box::new(WireToFile::new(p))),
        })
    }

    /// One chunk; an empty chunk is the end of the stream.
    fn convert<'a>(&mut self, chunk: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
        let Some(c) = self.0.as_mut() else {
            return chunk;
        };
        if chunk.is_empty() {
            c.finish(out);
        } else {
            c.convert(chunk, out);
        }
        out
    }
}

/// A transfer raced against the control connection.
enum Raced<T> {
    /// The transfer ended (well or not).
    Done(T),
    /// The client sent ABOR first.
    Aborted,
}

/// Runs two futures at once; both outputs when both are done (a disk operation beside a
/// network one, so neither waits for the other).
async fn both<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    use std::task::Poll;
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}

/// Runs `transfer` while reading the control connection: ABOR ends the race; any other
/// command waits in `buf` until the transfer is over (at most a few lines are read ahead).
async fn race_abort<T>(
    control: &mut Stream,
    buf: &mut Vec<u8>,
    transfer: impl std::future::Future<Output = T>,
) -> Raced<T> {
    use std::task::Poll;
    let mut transfer = std::pin::pin!(transfer);
    let mut scanned = 0usize;
    let mut closed = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = transfer.as_mut().poll(cx) {
            return Poll::Ready(Raced::Done(v));
        }
        loop {
            while let Some(i) = buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i + 1;
                let mut line = buf[scanned..end].to_vec();
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                let line = crate::command::strip_telnet(&line);
                if crate::command::Command::parse(&line) == Ok(crate::command::Command::Abor) {
                    buf.drain(scanned..end);
                    return Poll::Ready(Raced::Aborted);
                }
                scanned = end;
            }
            if closed || buf.len() > 4 * MAX_LINE {
                return Poll::Pending;
            }
            let mut chunk = [0u8; 512];
            let mut rb = tokio::io::ReadBuf::new(&mut chunk);
            match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut *control), cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => closed = true,
                Poll::Ready(Ok(())) => buf.extend_from_slice(rb.filled()),
                Poll::Ready(Err(_)) => closed = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// The user a control connection's verified client certificate signs on, if any.
fn certificate_user(cfg: &FtpConfig, control: &Stream) -> Option<String> {
    let Stream::Tls(t) = control else {
        return None;
    };
    let info = sixstack_tls::server::SessionInfo::of(t.get_ref().1);
    cfg.signon.user_for(info.peer_chain.first()?)
}

/// Runs a file-system operation of `home` on the offload thread (one that may free a big
/// file's pages); an offload failure is an I/O error.
async fn off_shard<T: Send + 'static>(
    home: &Arc<Home>,
    f: impl FnOnce(&Home) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let h = home.clone();
    offload(move || f(&h)).await.and_then(|r| r)
}

/// Drops a failed upload's temporary file, off the shard.
async fn abandon(upload: crate::fs::Upload) {
    let _ = offload(move || upload.abandon()).await;
}

struct Conn {
    _admission: Admission,
    /// TYPE A files are EBCDIC in this code page (per user, or SITE EBCDIC).
    ebcdic: Option<CodePage>,
    /// The user the control connection's client certificate signs on.
    cert_user: Option<String>,
    net: Net,
    cfg: Rc<FtpConfig>,
    tls: Option<ShardAcceptor>,
    /// For PROT P data connections: no session tickets of their own.
    data_tls: Option<ShardAcceptor>,
    control: Stream,
    peer: IpAddr,
    /// The address the client connected to, behind a proxy (see [`Arrival::local`]).
    local: Option<IpAddr>,
    buf: Vec<u8>,
    session: Session,
    account: Option<Account>,
    /// Shared with the offload thread for what may take long (dropping a big file).
    home: Option<Arc<Home>>,
    passive: Option<TcpListener>,
    active: Option<SocketAddr>,
    /// The control connection went back to clear text (CCC): TLS records the client
    /// still sends are dropped.
    after_ccc: bool,
}

enum Line {
    Got(Vec<u8>),
    TooLong,
    Closed,
}

impl Conn {
    async fn send(&mut self, r: Reply) -> io::Result<()> {
        // Every refusal is logged with who was refused (the reply names the reason).
        if r.code >= 500 || matches!(r.code, 421 | 425 | 426 | 450 | 451 | 452) {
            log::info!(
                "ftp: {} ({}): {} {}",
                self.peer,
                self.session.user().unwrap_or("not logged in"),
                r.code,
                r.lines.first().map_or("", String::as_str)
            );
        }
        self.control.write_all(&r.to_bytes()).await
    }

    /// CCC (RFC 4217 §12.3): the 200 under TLS, then this side's close_notify, and the
    /// connection goes on in clear text. The client's close_notify, if it sends one, is
    /// dropped by [`Conn::read_line`].
    async fn clear_control(&mut self, r: Reply) -> io::Result<bool> {
        if !self.buf.is_empty() {
            // Lines read ahead under TLS would be taken for clear text.
            let r = Reply::new(503, "nothing may follow CCC before its reply");
            self.send(r).await?;
            return Ok(false);
        }
        self.send(r).await?;
        let Stream::Tls(mut tls) = std::mem::replace(&mut self.control, Stream::Gone) else {
            return Ok(false);
        };
        tls.get_mut().1.send_close_notify();
        tls.flush().await?;
        let (tcp, _) = tls.into_inner();
        self.control = Stream::Plain(tcp);
        self.after_ccc = true;
        log::info!(
            "ftp: control connection of {} back to clear text (CCC)",
            self.peer
        );
        Ok(true)
    }

    /// After CCC: drops whole TLS records (the client's close_notify) at the start of
    /// what was read; false while one is still incomplete. A command line never starts
    /// with a record's content type (0x14..=0x17) followed by 0x03.
    fn skip_tls_records(&mut self) -> bool {
        while self.buf.len() >= 2 && (0x14..=0x17).contains(&self.buf[0]) && self.buf[1] == 3 {
            if self.buf.len() < 5 {
                return false;
            }
            let len = 5 + usize::from(u16::from_be_bytes([self.buf[3], self.buf[4]]));
            if self.buf.len() < len {
                return false;
            }
            self.buf.drain(..len);
        }
        true
    }

    async fn read_line(&mut self) -> io::Result<Line> {
        loop {
            if self.after_ccc && !self.skip_tls_records() {
                // The rest of a record is still on its way.
            } else if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Got(line));
            }
            if self.buf.len() > MAX_LINE {
                return Ok(Line::TooLong);
            }
            let mut chunk = [0u8; 1024];
            let n = self.control.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Line::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        let greeting = self.session.greeting();
        self.send(greeting).await?;
        loop {
            let (net, idle) = (self.net.clone(), self.cfg.idle_timeout);
            let line = match timeout(&net, idle, self.read_line()).await {
                Err(_) => {
                    self.send(Reply::new(421, "idle too long; closing")).await?;
                    return Ok(());
                }
                Ok(l) => l?,
            };
            let line = match line {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    let r = Reply::new(500, format!("line longer than {MAX_LINE} bytes; closing"));
                    self.send(r).await?;
                    return Ok(());
                }
                Line::Got(l) => l,
            };
            let step = self.session.on_line(&line);
            if !self.step(step).await? {
                return Ok(());
            }
        }
    }

    /// Carries out one step; false when the session ends.
    async fn step(&mut self, step: Step) -> io::Result<bool> {
        match step {
            Step::Reply(r) => self.send(r).await?,
            Step::ReplyThenClose(r) => {
                self.send(r).await?;
                return Ok(false);
            }
            Step::ReplyThenTls(r) => {
                let Some(acceptor) = self.tls.clone() else {
                    self.send(Reply::new(534, "TLS is not available")).await?;
                    return Ok(true);
                };
                if !self.buf.is_empty() {
                    // Commands pipelined after AUTH TLS would be read as clear text.
                    self.send(Reply::new(
                        503,
                        "nothing may follow AUTH TLS before the handshake",
                    ))
                    .await?;
                    return Ok(false);
                }
                self.send(r).await?;
                let Stream::Plain(tcp) = std::mem::replace(&mut self.control, Stream::Gone) else {
                    return Ok(false);
                };
                let peer = self.peer;
                match timeout(
                    &self.net,
                    self.cfg.data_timeout,
                    acceptor.accept(tcp, &peer),
                )
                .await
                {
                    Ok(Ok(s)) => {
                        self.control = Stream::Tls(Box::new(s));
                        self.cert_user = certificate_user(&self.cfg, &self.control);
                        self.session.tls_started();
                    }
                    // The acceptor logs refused handshakes; the connection is gone.
                    _ => return Ok(false),
                }
            }
            Step::ReplyThenClear(r) => return self.clear_control(r).await,
            Step::Login { user, password } => {
                let locked = self.cfg.limits.locked(&user, self.peer, Instant::now());
                let account = if locked {
                    None
                } else if self.cert_user.as_deref() == Some(user.as_str()) {
                    log::info!(
                        "ftp: {user} from {} signed on with a client certificate",
                        self.peer
                    );
                    self.cfg.security.account_of(&user)
                } else {
                    self.cfg
                        .security
                        .login_cached(&self.cfg.login_cache, &user, password.expose(), self.peer)
                        .await
                };
                let outcome = match account {
                    Some(a) => match Home::open(&a.home) {
                        Ok(h) => {
                            self.home = Some(Arc::new(h));
                            self.ebcdic = a.ebcdic;
                            let tls = a.tls;
                            self.account = Some(a);
                            LoginOutcome::Accepted(tls)
                        }
                        Err(e) => {
                            log::warn!("ftp: home {} of {user}: {e}", a.home.display());
                            LoginOutcome::Denied
                        }
                    },
                    None => LoginOutcome::Denied,
                };
                if outcome == LoginOutcome::Denied {
                    if locked {
                        log::warn!(
                            "ftp: login for {user} from {} refused: locked out",
                            self.peer
                        );
                    } else if self.cfg.limits.failed(&user, self.peer, Instant::now()) {
                        log::warn!(
                            "ftp: {user} from {} locked out after repeated failed logins",
                            self.peer
                        );
                    } else {
                        log::info!("ftp: login for {user} from {} refused", self.peer);
                    }
                    // A failed login is answered late: guessing is slow.
                    self.net.sleep(self.cfg.failure_delay).await;
                } else {
                    self.cfg.limits.succeeded(&user, self.peer);
                    log::info!("ftp: {user} logged in from {}", self.peer);
                }
                let next = self.session.login_result(outcome);
                if self.session.user().is_none() {
                    self.home = None;
                    self.account = None;
                }
                return Box::pin(self.step(next)).await;
            }
            Step::Request(req) => self.request(req).await?,
        }
        Ok(true)
    }

    /// SITE commands: `EBCDIC 037|1047|OFF` (TYPE A files in that code page), `HELP`.
    fn site(&mut self, s: &str) -> Reply {
        let words: Vec<String> = s.split_whitespace().map(str::to_ascii_uppercase).collect();
        match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["EBCDIC", "OFF"] => {
                self.ebcdic = None;
                Reply::new(200, "TYPE A files are ASCII")
            }
            ["EBCDIC", page] => match CodePage::parse(page) {
                Some(p) => {
                    self.ebcdic = Some(p);
                    Reply::new(200, format!("TYPE A files are EBCDIC {}", p.name()))
                }
                None => Reply::new(501, "SITE EBCDIC 037, 1047 or OFF"),
            },
            ["HELP"] => Reply::new(214, "SITE EBCDIC 037|1047|OFF"),
            _ => Reply::new(
                504,
                format!(
                    "SITE {}: not supported (SITE HELP)",
                    words.first().map_or("", String::as_str)
                ),
            ),
        }
    }

    /// Whether the logged-in user may do what needs `need` at `p`.
    async fn allowed(&self, p: &VirtualPath, need: Level) -> bool {
        match &self.account {
            Some(a) => self.cfg.security.allowed(a, p, need, self.peer).await,
            None => false,
        }
    }

    async fn request(&mut self, req: Request) -> io::Result<()> {
        // Access first: what the request needs where (STOU checks its name when made).
        let target = match &req {
            Request::ChangeDir(p)
            | Request::List(_, p)
            | Request::Retrieve { path: p, .. }
            | Request::Size(p, _)
            | Request::ModTime(p)
            | Request::Facts(p)
            | Request::StatPath(p) => Some((p.clone(), Level::Read)),
            Request::Store {
                path,
                unique: false,
                ..
            }
            | Request::MakeDir(path) => Some((path.clone(), Level::Update)),
            Request::Delete(p) | Request::RemoveDir(p) | Request::RenameFrom(p) => {
                Some((p.clone(), Level::Alter))
            }
            Request::Rename { to, .. } => Some((to.clone(), Level::Alter)),
            _ => None,
        };
        if let Some((p, need)) = target {
            if !self.allowed(&p, need).await {
                return self
                    .send(Reply::new(550, format!("{p}: permission denied")))
                    .await;
            }
        }
        let Some(home) = self.home.as_ref() else {
            return self.send(Reply::new(530, "not logged in")).await;
        };
        let failed = |e: io::Error| Reply::new(550, e.to_string());
        let reply = match req {
            Request::ChangeDir(p) => {
                if !home.is_dir(&p) {
                    Reply::new(550, format!("{p}: no such directory"))
                } else {
                    self.session.entered(p)
                }
            }
            Request::List(kind, p) => return self.list(kind, p).await,
            Request::Retrieve { path, offset, ty } => return self.retrieve(path, offset, ty).await,
            Request::Store {
                path,
                offset,
                append,
                unique,
                ty,
            } => return self.store(path, offset, append, unique, ty).await,
            // Removing a file frees its pages: off the shard.
            Request::Delete(p) => match off_shard(home, {
                let p = p.clone();
                move |h| h.delete(&p)
            })
            .await
            {
                Ok(()) => Reply::new(250, format!("{p} deleted")),
                Err(e) => failed(e),
            },
            Request::RemoveDir(p) => match home.remove_dir(&p) {
                Ok(()) => Reply::new(250, format!("{p} removed")),
                Err(e) => failed(e),
            },
            Request::MakeDir(p) => match home.make_dir(&p) {
                Ok(()) => Reply::new(257, format!("{} created", crate::session::quote_path(&p))),
                Err(e) => failed(e),
            },
            Request::RenameFrom(p) => match home.stat(&p) {
                Ok(_) => self.session.rename_from(p),
                Err(e) => failed(e),
            },
            // A rename over a file removes that file: off the shard too.
            Request::Rename { from, to } => match off_shard(home, {
                let to = to.clone();
                move |h| h.rename(&from, &to)
            })
            .await
            {
                Ok(()) => Reply::new(250, format!("renamed to {to}")),
                Err(e) => failed(e),
            },
            Request::Size(p, _) => match home.stat(&p) {
                Ok(e) if !e.dir => Reply::new(213, e.size.to_string()),
                Ok(_) => Reply::new(550, format!("{p} is a directory")),
                Err(e) => failed(e),
            },
            Request::ModTime(p) => match home.stat(&p) {
                Ok(e) => Reply::new(213, timeval(e.mtime)),
                Err(e) => failed(e),
            },
            Request::Facts(p) => match home.stat(&p) {
                Ok(mut e) => {
                    e.name = p.to_string();
                    let w = self.allowed(&p, Level::Update).await;
                    Reply::multi(250, format!("facts of {p}"), vec![facts_line(&e, w)], "End")
                }
                Err(e) => failed(e),
            },
            Request::StatPath(p) => match home.list(&p) {
                Ok(entries) => Reply::multi(
                    213,
                    format!("status of {p}"),
                    entries.iter().map(long_line).collect(),
                    "End",
                ),
                Err(e) => failed(e),
            },
            Request::Passive { extended, v6 } => return self.passive(extended, v6).await,
            Request::Active(to) => {
                self.passive = None;
                self.active = Some(to);
                Reply::new(200, format!("data connection to {to}"))
            }
            Request::Abort => Reply::new(225, "no transfer in progress"),
            Request::Site(s) => self.site(&s),
        };
        self.send(reply).await
    }

    async fn passive(&mut self, extended: bool, v6: Option<bool>) -> io::Result<()> {
        self.active = None;
        self.passive = None;
        let Some(local_ip) = self
            .local
            .or_else(|| self.control.local_addr().map(|l| l.addr.into()))
        else {
            return self.send(Reply::new(425, "no local address")).await;
        };
        if v6.is_some_and(|v| v != local_ip.is_ipv6()) {
            return self
                .send(Reply::new(
                    522,
                    "use the control connection's protocol (1,2)",
                ))
                .await;
        }
        let l = match TcpListener::bind_owned_port(
            &self.net,
            Some(local_ip.into()),
            self.cfg.passive_ports.clone(),
            ListenOptions {
                backlog: 1,
                rx_buffer: self.cfg.data_buffer,
                tx_buffer: self.cfg.data_buffer,
            },
        ) {
            Ok(l) => l,
            Err(e) => return self.send(Reply::new(425, e.to_string())).await,
        };
        let port = l.local_endpoint().port;
        self.passive = Some(l);
        let r = match (extended, local_ip) {
            (true, _) => Reply::new(229, format!("entering extended passive mode (|||{port}|)")),
            (false, IpAddr::V4(a)) => {
                let o = a.octets();
                Reply::new(
                    227,
                    format!(
                        "entering passive mode ({},{},{},{},{},{})",
                        o[0],
                        o[1],
                        o[2],
                        o[3],
                        port >> 8,
                        port & 0xff
                    ),
                )
            }
            (false, IpAddr::V6(_)) => Reply::new(522, "PASV is IPv4 only; use EPSV"),
        };
        self.send(r).await
    }

    /// The data connection for the next transfer: connected, `preliminary` (150) sent on
    /// the control connection, then TLS under PROT P (clients start the handshake once
    /// they have the 150).
    async fn open_data(&mut self, preliminary: Reply) -> io::Result<Stream> {
        let tcp = self.open_data_tcp().await?;
        self.send(preliminary).await?;
        if self.session.prot() != crate::command::ProtLevel::Private {
            return Ok(Stream::Plain(tcp));
        }
        let acceptor = self
            .data_tls
            .clone()
            .ok_or_else(|| io::Error::other("PROT P without TLS"))?;
        let peer = self.peer;
        let s = match timeout(
            &self.net,
            self.cfg.data_timeout,
            acceptor.accept(tcp, &peer),
        )
        .await
        {
            Ok(r) => Stream::Tls(Box::new(r?)),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "data TLS handshake",
                ))
            }
        };
        if self.cfg.require_data_resumption && !s.resumed() {
            let mut s = s;
            s.abort();
            log::warn!(
                "ftp: data connection of {} did not resume the control connection's TLS session; refused",
                self.peer
            );
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the data connection must resume the control connection's TLS session",
            ));
        }
        Ok(s)
    }

    async fn open_data_tcp(&mut self) -> io::Result<TcpStream> {
        let limit = self.cfg.data_timeout;
        if let Some(l) = self.passive.take() {
            let peer = self.peer;
            let accepted = timeout(&self.net, limit, async {
                loop {
                    let (s, from) = l.accept().await?;
                    // Only the client itself may take its data connection.
                    if IpAddr::from(from.addr) == peer {
                        return Ok::<_, io::Error>(s);
                    }
                    log::warn!("ftp: data connection from {from} for a client at {peer} refused");
                    let mut s = s;
                    s.abort();
                }
            })
            .await;
            return match accepted {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data connection",
                )),
            };
        }
        if let Some(to) = self.active.take() {
            let ep = IpEndpoint::new(to.ip().into(), to.port());
            let b = self.cfg.data_buffer;
            return TcpStream::connect_with(&self.net, ep, limit, b, b).await;
        }
        Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "use PASV, EPSV, PORT or EPRT first",
        ))
    }

    async fn list(&mut self, kind: ListKind, p: VirtualPath) -> io::Result<()> {
        let writable = self.allowed(&p, Level::Update).await;
        let Some(home) = self.home.as_ref() else {
            return self.send(Reply::new(530, "not logged in")).await;
        };
        let entries = match home.list(&p) {
            Ok(e) => e,
            // LIST of a file lists the file.
            Err(_) if kind != ListKind::Machine => match home.stat(&p) {
                Ok(e) => vec![e],
                Err(e) => return self.send(Reply::new(550, e.to_string())).await,
            },
            Err(e) => return self.send(Reply::new(550, e.to_string())).await,
        };
        let mut text = String::new();
        for e in &entries {
            let line = match kind {
                ListKind::Long => long_line(e),
                ListKind::Names => e.name.clone(),
                ListKind::Machine => facts_line(e, writable),
            };
            text.push_str(&line);
            text.push_str("\r\n");
        }
        let mut data = match self.open_data(Reply::new(150, "listing follows")).await {
            Ok(d) => d,
            Err(e) => return self.send(Reply::new(425, e.to_string())).await,
        };
        let sent = timeout(&self.net, self.cfg.data_timeout, async {
            data.write_all(text.as_bytes()).await?;
            data.shutdown().await?;
            data.drain().await
        })
        .await;
        match sent {
            Ok(Ok(())) => self.send(Reply::new(226, "listing sent")).await,
            _ => self.send(Reply::new(426, "listing not sent")).await,
        }
    }

    async fn retrieve(
        &mut self,
        path: VirtualPath,
        offset: u64,
        ty: TransferType,
    ) -> io::Result<()> {
        let Some(home) = self.home.as_ref() else {
            return self.send(Reply::new(530, "not logged in")).await;
        };
        let file = match home.open_read(&path) {
            Ok(f) => Arc::new(f),
            Err(e) => return self.send(Reply::new(550, format!("{path}: {e}"))).await,
        };
        let mut data = match self
            .open_data(Reply::new(150, format!("sending {path}")))
            .await
        {
            Ok(d) => d,
            Err(e) => return self.send(Reply::new(425, e.to_string())).await,
        };
        let started = Instant::now();
        let net = self.net.clone();
        let limit = self.cfg.data_timeout;
        let mut pos = offset;
        let mut sent = 0u64;
        let mut conv = Conversion::outbound(ty, self.ebcdic);
        let mut wire = Vec::new();
        let transfer = async {
            // The next chunk is read from the disk while this one goes out.
            let mut chunk = net.read_at(&file, pos, CHUNK).await?;
            while !chunk.is_empty() {
                pos += chunk.len() as u64;
                let out = conv.convert(&chunk, &mut wire);
                let (wrote, next) = both(
                    timeout(&net, limit, data.write_all(out)),
                    net.read_at(&file, pos, CHUNK),
                )
                .await;
                wrote??;
                sent += out.len() as u64;
                chunk = next?;
            }
            data.shutdown().await?;
            timeout(&net, limit, data.drain()).await??;
            Ok::<(), io::Error>(())
        };
        let result = match race_abort(&mut self.control, &mut self.buf, transfer).await {
            Raced::Done(r) => r,
            Raced::Aborted => {
                data.abort();
                self.xferlog(Direction::Out, &path, sent, started, ty, false);
                self.send(Reply::new(426, "transfer aborted")).await?;
                return self.send(Reply::new(226, "ABOR done")).await;
            }
        };
        self.xferlog(Direction::Out, &path, sent, started, ty, result.is_ok());
        match result {
            Ok(()) => {
                self.send(Reply::new(226, format!("{path} sent, {sent} bytes")))
                    .await
            }
            Err(e) => {
                data.abort();
                self.send(Reply::new(426, format!("transfer aborted: {e}")))
                    .await
            }
        }
    }

    async fn store(
        &mut self,
        path: VirtualPath,
        offset: u64,
        append: bool,
        unique: bool,
        ty: TransferType,
    ) -> io::Result<()> {
        let Some(home) = self.home.as_ref() else {
            return self.send(Reply::new(530, "not logged in")).await;
        };
        let path = if unique {
            let mut n = 0u32;
            loop {
                let candidate = path
                    .resolve(&format!("upload.{}.{n}", std::process::id()))
                    .unwrap_or_else(|_| path.clone());
                if home.stat(&candidate).is_err() || n > 1000 {
                    break candidate;
                }
                n += 1;
            }
        } else {
            path
        };
        if unique && !self.allowed(&path, Level::Update).await {
            return self
                .send(Reply::new(550, format!("{path}: permission denied")))
                .await;
        }
        let upload = match home.begin_upload(&path, offset, append) {
            Ok(u) => u,
            Err(e) => return self.send(Reply::new(553, format!("{path}: {e}"))).await,
        };
        let what = if unique {
            format!("FILE: {path}")
        } else {
            format!("receiving {path}")
        };
        let mut data = match self.open_data(Reply::new(150, what)).await {
            Ok(d) => d,
            Err(e) => {
                abandon(upload).await;
                return self.send(Reply::new(425, e.to_string())).await;
            }
        };
        let started = Instant::now();
        let net = self.net.clone();
        let limit = self.cfg.data_timeout;
        let file = Arc::new(upload.file.try_clone()?);
        let mut pos = upload.start;
        let mut got = 0u64;
        let mut conv = Conversion::inbound(ty, self.ebcdic);
        let (strict_eof, peer) = (self.cfg.strict_tls_upload_eof, self.peer);
        let mut disk = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let transfer = async {
            // After a write fails (a full disk) the rest of the upload is read and dropped,
            // up to a limit, so the client gets to its end and reads the reply.
            // What was read last goes to the disk while the next bytes are read.
            let mut failed: Option<io::Error> = None;
            let mut dropped = 0u64;
            let mut ready: Vec<u8> = Vec::with_capacity(CHUNK);
            loop {
                let write = async {
                    if ready.is_empty() {
                        Ok(())
                    } else {
                        net.write_all_at(&file, pos, &ready).await
                    }
                };
                let (wrote, read) = both(write, timeout(&net, limit, data.read(&mut buf))).await;
                match wrote {
                    Ok(()) => pos += ready.len() as u64,
                    Err(e) => failed = failed.or(Some(e)),
                }
                ready.clear();
                let n = match read? {
                    Ok(n) => n,
                    // A TLS upload that ends without close_notify: many clients close the
                    // socket without it; taken as the end unless the server is strict.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !strict_eof => {
                        log::info!(
                            "ftp: upload of {path} from {peer} ended without TLS close_notify"
                        );
                        0
                    }
                    Err(e) => return Err(e),
                };
                match &failed {
                    None => ready.extend_from_slice(conv.convert(&buf[..n], &mut disk)),
                    Some(_) => {
                        dropped += n as u64;
                        if dropped > DRAIN_AFTER_FAILURE {
                            break;
                        }
                    }
                }
                got += n as u64;
                if n == 0 {
                    break;
                }
            }
            if failed.is_none() && !ready.is_empty() {
                match net.write_all_at(&file, pos, &ready).await {
                    Ok(()) => pos += ready.len() as u64,
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            net.fsync(&file).await?;
            // Our end of the data connection (TLS: close_notify, which some clients wait
            // for). Everything has arrived by now: a client that already closed its socket
            // (and answers with a reset) does not make the upload fail.
            if let Ok(Err(e)) = timeout(&net, limit, data.shutdown()).await {
                log::debug!("ftp: closing the data connection after an upload: {e}");
            }
            Ok::<(), io::Error>(())
        };
        let result = match race_abort(&mut self.control, &mut self.buf, transfer).await {
            Raced::Done(r) => r,
            Raced::Aborted => {
                // A new upload leaves nothing behind; a resumed or appended one keeps what
                // arrived (the client asked for that file to grow).
                data.abort();
                abandon(upload).await;
                self.xferlog(Direction::In, &path, got, started, ty, false);
                self.send(Reply::new(426, "transfer aborted")).await?;
                return self.send(Reply::new(226, "ABOR done")).await;
            }
        };
        let outcome = match result {
            // Renaming over an older file removes it: off the shard.
            Ok(()) => offload(move || upload.finish()).await.and_then(|r| r),
            Err(e) => {
                abandon(upload).await;
                Err(e)
            }
        };
        self.xferlog(Direction::In, &path, got, started, ty, outcome.is_ok());
        match outcome {
            Ok(()) => {
                self.send(Reply::new(226, format!("{path} stored, {got} bytes")))
                    .await
            }
            Err(e) => {
                data.abort();
                let code = if e.raw_os_error() == Some(28) {
                    552
                } else {
                    426
                };
                self.send(Reply::new(code, format!("transfer failed: {e}")))
                    .await
            }
        }
    }

    /// One transfer in the transfer log (see [`crate::xferlog`]).
    fn xferlog(
        &self,
        direction: Direction,
        path: &VirtualPath,
        bytes: u64,
        started: Instant,
        ty: TransferType,
        complete: bool,
    ) {
        let ended = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let path = path.to_string();
        let r = Record {
            ended,
            secs: started.elapsed().as_secs(),
            client: self.peer,
            bytes,
            path: &path,
            ascii: ty == TransferType::Ascii,
            direction,
            user: self.account.as_ref().map_or("-", |a| a.name.as_str()),
            complete,
        };
        match &self.cfg.xferlog {
            Some(log) => log.record(&r),
            None => log::info!(target: "sixstack_ftp::xferlog", "{}", r.line()),
        }
    }
}
