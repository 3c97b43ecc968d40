//! The appliance's connection to scpd: TCP over the transport, the TLS handshake with the
//! appliance's certificate, the daemon's Welcome; then frames with a time limit on every
//! wait.

use sixstack_tls::tokio_rustls::client::TlsStream;
use sixstack_transport::Transport;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{ClientError, Options};
use crate::wire::{self, Failure, Frame, Kind};

/// A connection to the daemon.
pub struct Link<S> {
    /// The TLS stream.
    pub tls: TlsStream<S>,
    /// The allow-list entry the daemon recognised this appliance as.
    pub appliance: String,
}

impl<S> std::fmt::Debug for Link<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("appliance", &self.appliance)
            .finish_non_exhaustive()
    }
}

fn broken(e: impl std::fmt::Display) -> ClientError {
    ClientError::Connection(format!("the connection to scpd broke: {e}"))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    /// Connects to the daemon at `host`:`port` and waits for its Welcome.
    pub async fn connect<T: Transport<Stream = S>>(
        t: &T,
        host: &str,
        port: u16,
        opts: &Options,
    ) -> Result<Link<S>, ClientError> {
        let to = sixstack_transport::resolve(host, port)
            .map_err(|e| ClientError::Connection(format!("scpd {host}: {e}")))?;
        let tcp = t.connect(to, opts.timeout).await.map_err(|e| {
            ClientError::Connection(format!("cannot connect to scpd: {e} ({:?})", e.kind()))
        })?;
        let name = opts.server_name.as_deref().unwrap_or(host);
        let tls = sixstack_transport::timeout(
            t,
            opts.timeout,
            "TLS handshake with scpd",
            sixstack_tls::client::handshake(tcp, name, opts.tls.clone()),
        )
        .await
        .map_err(|e| ClientError::Connection(e.to_string()))?
        .map_err(|e| ClientError::Connection(format!("TLS handshake with scpd at {to}: {e}")))?;
        let mut link = Link {
            tls,
            appliance: String::new(),
        };
        let f = link.next(t, opts, "the daemon's welcome").await?;
        match f.kind {
            Kind::Welcome => {
                let w: wire::Welcome = f.control().map_err(broken)?;
                if w.version != wire::VERSION {
                    return Err(ClientError::Connection(format!(
                        "scpd speaks protocol version {}, this appliance {}",
                        w.version,
                        wire::VERSION
                    )));
                }
                link.appliance = w.appliance;
                Ok(link)
            }
            Kind::Error => Err(ClientError::Daemon(f.control().map_err(broken)?)),
            _ => Err(broken(f.unexpected("Welcome"))),
        }
    }

    /// The next frame, within the time limit; a clean end of stream is an error here.
    pub async fn next<T: Transport>(
        &mut self,
        t: &T,
        opts: &Options,
        what: &str,
    ) -> Result<Frame, ClientError> {
        let r = sixstack_transport::timeout(t, opts.timeout, what, wire::read_frame(&mut self.tls))
            .await
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        match r {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(ClientError::Connection(format!(
                "scpd closed the connection while the appliance waited for {what}"
            ))),
            Err(e) => Err(broken(e)),
        }
    }

    /// Sends a control frame.
    pub async fn send<M: serde::Serialize>(
        &mut self,
        kind: Kind,
        msg: &M,
    ) -> Result<(), ClientError> {
        wire::send(&mut self.tls, kind, msg).await.map_err(broken)
    }

    /// Sends data (cut into frames; not flushed).
    pub async fn data(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        for piece in bytes.chunks(wire::DATA_CHUNK) {
            wire::write_frame(&mut self.tls, Kind::Data, piece)
                .await
                .map_err(broken)?;
        }
        Ok(())
    }

    /// Sends an Abort with `why`, flushed.
    pub async fn abort(&mut self, why: &str) -> Result<(), ClientError> {
        wire::write_frame(&mut self.tls, Kind::Abort, why.as_bytes())
            .await
            .map_err(broken)?;
        self.tls.flush().await.map_err(broken)
    }

    /// Ends the connection politely (TLS close_notify, then FIN).
    pub async fn close(mut self) {
        let _ = self.tls.shutdown().await;
    }

    /// Flushes what was sent.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.tls.flush().await.map_err(broken)
    }
}

/// The daemon's Error frame as a step failure.
pub fn failure(f: &Frame) -> ClientError {
    match f.control::<Failure>() {
        Ok(fail) => ClientError::Daemon(fail),
        Err(e) => broken(e),
    }
}
