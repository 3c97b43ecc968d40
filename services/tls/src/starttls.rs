//! STARTTLS-style upgrades: a protocol speaks plain text, agrees to start TLS, and the same
//! stream continues under TLS.
//!
//! The one trap is plaintext the peer sent after its upgrade command but before the
//! handshake (the STARTTLS command-injection attack): a line reader may already hold it in
//! its buffer, and treating it as if it had come under TLS would let an attacker on the
//! path inject commands. [`server_upgrade`] and [`client_upgrade`] take whatever plaintext
//! the caller still buffers and refuse the upgrade if there is any.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::server::ShardAcceptor;

fn check_nothing_pending(pending: &[u8], peer: &dyn fmt::Display) -> io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    log::warn!(
        "tls: {peer} sent {} bytes of plain text after the upgrade command; upgrade refused",
        pending.len()
    );
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "plain text after the TLS upgrade command (possible command injection)",
    ))
}

/// Server side: after answering the peer's upgrade command, runs the TLS handshake on the
/// same stream. `pending` is the plaintext still buffered by the caller's reader.
pub async fn server_upgrade<IO>(
    io: IO,
    pending: &[u8],
    acceptor: &ShardAcceptor,
    peer: &dyn fmt::Display,
) -> io::Result<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    check_nothing_pending(pending, peer)?;
    acceptor.accept(io, peer).await
}

/// Client side: after the server agreed to the upgrade, runs the TLS handshake on the same
/// stream. `pending` is the plaintext still buffered after the server's answer.
pub async fn client_upgrade<IO>(
    io: IO,
    pending: &[u8],
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    check_nothing_pending(pending, &server_name)?;
    crate::client::handshake(io, server_name, config).await
}
