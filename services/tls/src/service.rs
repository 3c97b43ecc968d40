//! TLS test services over the stack: **tls-echo** (implicit TLS, echoes what it receives),
//! **tls-discard** (implicit TLS, reads and throws away: the TLS bulk benchmark's sink),
//! **tls-http** (implicit TLS, answers each HTTP request with a plain-text page describing
//! the session: protocol, suite, resumption, client certificate) and **starttls-echo**
//! (an SMTP-like plain-text greeting, `EHLO` and `STARTTLS`, then echo under TLS, so
//! `openssl s_client -starttls smtp` can drive the upgrade).

use std::fmt::Write as _;
use std::io;

use sixstack_stack::smoltcp::wire::IpListenEndpoint;
use sixstack_stack::{IdleLimit, ListenOptions, Net, TcpListener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::server::{SessionInfo, ShardAcceptor};

/// Which TLS service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Implicit TLS, echo.
    Echo,
    /// Implicit TLS, discard.
    Discard,
    /// Implicit TLS, an HTTP/1.1 page about the session.
    Http,
    /// Plain text until STARTTLS, then echo.
    StartTlsEcho,
}

impl Kind {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "tls-echo",
            Kind::Discard => "tls-discard",
            Kind::Http => "tls-http",
            Kind::StartTlsEcho => "starttls-echo",
        }
    }
}

/// Listens on `port` and serves every connection with `kind`, each on its own task. A
/// client that has not completed the TLS handshake within `handshake_limit` is dropped,
/// and so is one whose connection makes no progress (nothing received while the service
/// waits for data, nothing taken while it waits to send) for `idle`.
pub async fn serve(
    net: Net,
    kind: Kind,
    port: u16,
    opts: ListenOptions,
    acceptor: ShardAcceptor,
    handshake_limit: std::time::Duration,
    idle: std::time::Duration,
) -> io::Result<()> {
    let listener = TcpListener::bind_with(&net, IpListenEndpoint { addr: None, port }, opts)?;
    log::info!("{} listening on port {port}", kind.name());
    listener
        .serve_each(|stream, peer| {
            stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let net = net.clone();
            async move {
                let stream = IdleLimit::new(stream, &net, idle);
                let r = if kind == Kind::StartTlsEcho {
                    starttls_echo(stream, &acceptor, &peer).await
                } else {
                    let shake = acceptor.accept(stream, &peer);
                    match sixstack_stack::timeout(&net, handshake_limit, shake).await {
                        Ok(Ok(tls)) => match kind {
                            Kind::Echo => echo(tls).await.map(drop),
                            Kind::Discard => discard(tls).await,
                            _ => http(tls).await,
                        },
                        Ok(Err(_)) => Ok(()), // logged by the acceptor
                        Err(_) => {
                            log::info!(
                                "{}: {peer} did not complete the TLS handshake within {:?}: dropped",
                                kind.name(),
                                handshake_limit
                            );
                            Ok(())
                        }
                    }
                };
                match r {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        log::info!("{} connection from {peer}: {e}; closed", kind.name());
                    }
                    Err(e) => log::debug!("{} connection from {peer} ended: {e}", kind.name()),
                    Ok(()) => {}
                }
            }
        })
        .await
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            s.shutdown().await?;
            return Ok(total);
        }
        s.write_all(&buf[..n]).await?;
        s.flush().await?;
        total += n as u64;
    }
}

async fn discard<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    while s.read(&mut buf).await? > 0 {}
    s.shutdown().await
}

/// The page tls-http serves: one `key: value` line per fact.
pub fn describe(info: &SessionInfo) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "protocol: {}", info.version);
    let _ = writeln!(body, "cipher: {}", info.suite);
    let _ = writeln!(body, "resumed: {}", info.resumed);
    let _ = writeln!(body, "sni: {}", info.sni.as_deref().unwrap_or("-"));
    let _ = writeln!(body, "alpn: {}", info.alpn.as_deref().unwrap_or("-"));
    match info.peer_chain.first() {
        Some(c) => {
            let _ = writeln!(body, "client-subject: {}", c.subject);
            let _ = writeln!(body, "client-issuer: {}", c.issuer);
            let _ = writeln!(body, "client-serial: {}", c.serial);
            let _ = writeln!(body, "client-sha256: {}", c.sha256);
            let _ = writeln!(body, "client-key: {} {}", c.key_type, c.key_bits);
        }
        None => {
            let _ = writeln!(body, "client-subject: -");
        }
    }
    body
}

async fn http<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: tokio_rustls::server::TlsStream<S>,
) -> io::Result<()> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // Requests are answered one at a time, each once its header block is complete.
        while let Some(end) = find(&req, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..end]).into_owned();
            req.drain(..end + 4);
            let close = head.to_ascii_lowercase().contains("connection: close");
            let (status, body) = if head.starts_with("GET ") || head.starts_with("HEAD ") {
                ("200 OK", describe(&SessionInfo::of(s.get_ref().1)))
            } else {
                ("405 Method Not Allowed", "only GET and HEAD\n".to_string())
            };
            let mut resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
                body.len(),
                if close { "Connection: close\r\n" } else { "" }
            );
            if !head.starts_with("HEAD ") {
                resp.push_str(&body);
            }
            s.write_all(resp.as_bytes()).await?;
            s.flush().await?;
            if close {
                s.shutdown().await?;
                return Ok(());
            }
        }
        if req.len() > 64 * 1024 {
            s.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await?;
            s.shutdown().await?;
            return Ok(());
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn starttls_echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    acceptor: &ShardAcceptor,
    peer: &dyn std::fmt::Display,
) -> io::Result<()> {
    s.write_all(b"220 sixstack starttls-echo ESMTP\r\n").await?;
    let mut pending = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let Some(end) = find(&pending, b"\n") else {
            if pending.len() > 4096 {
                s.write_all(b"500 line too long\r\n").await?;
                return Ok(());
            }
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
            continue;
        };
        let line: Vec<u8> = pending.drain(..=end).collect();
        let cmd = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
        let verb = cmd.split_whitespace().next().unwrap_or("");
        match verb {
            "EHLO" => s.write_all(b"250-sixstack\r\n250 STARTTLS\r\n").await?,
            "HELO" => s.write_all(b"250 sixstack\r\n").await?,
            "NOOP" => s.write_all(b"250 ok\r\n").await?,
            "QUIT" => {
                s.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "STARTTLS" => {
                if !pending.is_empty() {
                    // Refuse before answering: nothing sent in the clear after the command
                    // may be taken for protected data.
                    s.write_all(b"501 plain text after STARTTLS\r\n").await?;
                    let _ = crate::starttls::server_upgrade(&mut s, &pending, acceptor, peer).await;
                    return Ok(());
                }
                s.write_all(b"220 2.0.0 ready to start TLS\r\n").await?;
                let tls = crate::starttls::server_upgrade(s, &pending, acceptor, peer).await?;
                echo(tls).await?;
                return Ok(());
            }
            _ => s.write_all(b"502 command not implemented\r\n").await?,
        }
    }
}
