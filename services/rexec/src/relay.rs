//! Relaying the command's output as it arrives: standard output (with the status line
//! taken out) and standard error at once, so a chatty stream cannot stall the other.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::status::StatusScanner;
use crate::Error;

/// Bytes read from a connection at a time.
const CHUNK: usize = 16 * 1024;

async fn deliver<W: AsyncWrite + Unpin>(
    sink: &mut W,
    data: &[u8],
    stream: &'static str,
) -> Result<(), Error> {
    if data.is_empty() {
        return Ok(());
    }
    let r = async {
        sink.write_all(data).await?;
        sink.flush().await
    };
    r.await.map_err(|source| Error::Sink { stream, source })
}

/// Copies the main connection to `sink` through `scanner` until the server closes it;
/// returns the bytes delivered and the exit status (or why it is unknown).
pub(crate) async fn standard_output<R, W>(
    src: &mut R,
    mut scanner: StatusScanner,
    sink: &mut W,
) -> Result<(u64, Result<u8, Error>), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK);
    let mut total = 0u64;
    loop {
        let n = src.read(&mut buf).await.map_err(|source| Error::Io {
            what: "reading the command's standard output",
            source,
        })?;
        out.clear();
        if n == 0 {
            let status = scanner.finish(&mut out);
            deliver(sink, &out, "standard output").await?;
            total += out.len() as u64;
            return Ok((total, status));
        }
        scanner.feed(&buf[..n], &mut out);
        deliver(sink, &out, "standard output").await?;
        total += out.len() as u64;
    }
}

/// Copies the standard-error connection to `sink` until the server closes it; returns the
/// bytes delivered.
pub(crate) async fn standard_error<R, W>(src: &mut R, sink: &mut W) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = src.read(&mut buf).await.map_err(|source| Error::Io {
            what: "reading the command's standard error",
            source,
        })?;
        if n == 0 {
            return Ok(total);
        }
        deliver(sink, &buf[..n], "standard error").await?;
        total += n as u64;
    }
}

/// Runs both futures at once on the current task; the first error ends both.
pub(crate) async fn both<A, B, TA, TB>(a: A, b: B) -> Result<(TA, TB), Error>
where
    A: Future<Output = Result<TA, Error>>,
    B: Future<Output = Result<TB, Error>>,
{
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut ra = None;
    let mut rb = None;
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(r) = a.as_mut().poll(cx) {
                match r {
                    Ok(v) => ra = Some(v),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        if rb.is_none() {
            if let Poll::Ready(r) = b.as_mut().poll(cx) {
                match r {
                    Ok(v) => rb = Some(v),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready(Ok((x, y))),
            (x, y) => {
                ra = x;
                rb = y;
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::status::ExitMarker;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Standard error far larger than the pipe's buffer while standard output waits for
    /// it: relaying one after the other would deadlock.
    #[test]
    fn a_chatty_stream_does_not_block_the_other() {
        block_on(async {
            let marker = ExitMarker::from_token(5);
            let (mut out_w, mut out_r) = tokio::io::duplex(1024);
            let (mut err_w, mut err_r) = tokio::io::duplex(1024);
            let status = format!("sixstack-rexec-status-{:032x} 4\n", 5);
            let server = async move {
                err_w.write_all(&vec![b'e'; 256 * 1024]).await.unwrap();
                drop(err_w);
                out_w.write_all(b"out\n").await.unwrap();
                out_w.write_all(status.as_bytes()).await.unwrap();
            };
            let mut so = Vec::new();
            let mut se = Vec::new();
            let relay = both(
                standard_output(&mut out_r, marker.scanner(), &mut so),
                standard_error(&mut err_r, &mut se),
            );
            let (_, r) = tokio::join!(server, relay);
            let ((n_out, status), n_err) = r.unwrap();
            assert_eq!(status.unwrap(), 4);
            assert_eq!((n_out, n_err), (4, 256 * 1024));
            assert_eq!(so, b"out\n");
            assert!(se.iter().all(|b| *b == b'e'));
        });
    }
}
