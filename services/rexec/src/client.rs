//! One remote command over a [`Transport`]: connect, open the standard-error port, send
//! the request, read the answer, relay the output, report the exit status.

use std::future::{poll_fn, Future};
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use sixstack_transport::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::answer::{first_byte, Answer, ErrorText, MAX_ERROR_TEXT};
use crate::relay::{both, standard_error, standard_output};
use crate::request::{login_fields, port_field, Job};
use crate::status::ExitMarker;
use crate::Error;

/// How a command is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The longest wait for the connection to the server.
    pub connect_timeout: Duration,
    /// The longest wait for each step of the server's answer: its standard-error connection
    /// back to us, and the byte saying whether the login and command were accepted.
    pub answer_timeout: Duration,
    /// The longest the command may run once accepted; `None` waits as long as it runs.
    pub run_timeout: Option<Duration>,
    /// Whether standard error comes back on its own connection (the server connects back
    /// to a port of ours). Without it, the server's shell writes standard error to the main
    /// connection and it arrives mixed into standard output.
    pub separate_stderr: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: sixstack_transport::CONNECT_TIMEOUT,
            answer_timeout: Duration::from_secs(30),
            run_timeout: None,
            separate_stderr: true,
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The remote shell's exit status (0 to 255; 128 + N when a signal N ended it).
    pub exit_status: u8,
    /// Bytes of standard output relayed (the status line not counted).
    pub stdout_bytes: u64,
    /// Bytes of standard error relayed on the separate connection.
    pub stderr_bytes: u64,
}

/// Runs `job` on its server and relays the command's standard output to `stdout` and its
/// standard error to `stderr` as they arrive, both at once. The command's standard input
/// is empty (the main connection is half-closed after the request). Returns the exit
/// status, learned as the crate documentation describes.
pub async fn run<T, O, E>(
    t: &T,
    job: &Job,
    opts: &Options,
    stdout: &mut O,
    stderr: &mut E,
) -> Result<Outcome, Error>
where
    T: Transport,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let server = job.server;
    let user = job.credentials.user();
    log::debug!("rexec: {user}@{server} over {}", t.name());
    let mut main = t
        .connect(server, opts.connect_timeout)
        .await
        .map_err(|source| Error::Connect { server, source })?;
    let limit = opts.answer_timeout;
    let mut back = None;
    if opts.separate_stderr {
        let addr = |r: std::io::Result<_>| r.map_err(|e| Error::io("the connection", limit, e));
        let local = addr(t.local_addr(&main))?;
        let peer = addr(t.peer_addr(&main))?;
        let (listener, at) = t.listen(local.ip()).await.map_err(Error::Listen)?;
        send(&mut main, &port_field(Some(at.port())), limit).await?;
        let what = "waiting for the standard-error connection";
        let waited = sixstack_transport::timeout(
            t,
            limit,
            what,
            back_connection(t, &listener, peer.ip(), &mut main, limit),
        )
        .await;
        back = Some(waited.map_err(|e| Error::io(what, limit, e))??);
    } else {
        send(&mut main, &port_field(None), limit).await?;
    }
    let marker = ExitMarker::random();
    send(&mut main, &login_fields(job, &marker), limit).await?;
    main.shutdown()
        .await
        .map_err(|e| Error::io("sending the request", limit, e))?;

    let what = "waiting for the server's answer";
    let first = sixstack_transport::timeout(t, limit, what, read_byte(&mut main))
        .await
        .and_then(|r| r)
        .map_err(|e| Error::io(what, limit, e))?;
    if first_byte(first)? == Answer::Refused {
        return Err(refusal(t, &mut main, limit).await);
    }
    log::debug!("rexec: {user}@{server} accepted the command");

    let mut no_stderr = tokio::io::empty();
    let relay = async {
        let out = standard_output(&mut main, marker.scanner(), stdout);
        match back.as_mut() {
            Some(b) => both(out, standard_error(b, stderr)).await,
            None => both(out, standard_error(&mut no_stderr, stderr)).await,
        }
    };
    let ((stdout_bytes, status), stderr_bytes) = match opts.run_timeout {
        Some(l) => {
            let what = "running the command";
            sixstack_transport::timeout(t, l, what, relay)
                .await
                .map_err(|e| Error::io(what, l, e))??
        }
        None => relay.await?,
    };
    let exit_status = status?;
    log::info!("rexec: {user}@{server}: exit status {exit_status}");
    Ok(Outcome {
        exit_status,
        stdout_bytes,
        stderr_bytes,
    })
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, data: &[u8], limit: Duration) -> Result<(), Error> {
    let r = async {
        s.write_all(data).await?;
        s.flush().await
    };
    r.await
        .map_err(|e| Error::io("sending the request", limit, e))
}

/// One byte, or `None` at the end of the stream.
async fn read_byte<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    let n = s.read(&mut b).await?;
    Ok((n == 1).then_some(b[0]))
}

/// The server's message after an error byte; what arrived if the connection ends early.
async fn refusal<T: Transport>(t: &T, main: &mut T::Stream, limit: Duration) -> Error {
    let mut text = ErrorText::default();
    let read = async {
        let mut buf = [0u8; MAX_ERROR_TEXT];
        loop {
            match main.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if text.feed(&buf[..n]) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = sixstack_transport::timeout(t, limit, "reading the server's message", read).await;
    text.into_error()
}

/// Waits for the server's standard-error connection (from the server's own address; any
/// other is dropped), or for the server to answer or close the main connection instead.
async fn back_connection<T: Transport>(
    t: &T,
    listener: &T::Listener,
    server: IpAddr,
    main: &mut T::Stream,
    limit: Duration,
) -> Result<T::Stream, Error> {
    let accept = async {
        loop {
            match t.accept(listener).await {
                Ok((s, from)) if from.ip() == server => return Ok(s),
                Ok((_, from)) => log::warn!("rexec: dropped a connection from {from}"),
                Err(e) => return Err(e),
            }
        }
    };
    let mut accept = pin!(accept);
    let mut byte = [0u8; 1];
    let early = poll_fn(|cx| {
        if let Poll::Ready(r) = accept.as_mut().poll(cx) {
            return Poll::Ready(Ok(r));
        }
        let mut rb = ReadBuf::new(&mut byte);
        match Pin::new(&mut *main).poll_read(cx, &mut rb) {
            Poll::Ready(r) => Poll::Ready(Err(r.map(|()| rb.filled().first().copied()))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let what = "waiting for the standard-error connection";
    match early {
        Ok(accepted) => accepted.map_err(|e| Error::io(what, limit, e)),
        Err(Ok(None)) => Err(Error::NoBackConnection),
        Err(Ok(Some(b))) => match first_byte(Some(b))? {
            Answer::Refused => Err(refusal(t, main, limit).await),
            Answer::Accepted => Err(Error::Protocol { byte: b }),
        },
        Err(Err(e)) => Err(Error::io(what, limit, e)),
    }
}
