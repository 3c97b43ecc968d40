//! The client against a small rexec server on loopback (kernel sockets), which runs the
//! commands it gets with the local `sh`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sixstack_transport::KernelTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

use crate::{run, Credentials, Error, Job, Options, Outcome};

/// What the server does once it has the request.
#[derive(Clone, Copy)]
enum Act {
    /// Runs the command with `sh -c`.
    Run,
    /// Answers 1 and a message.
    Refuse,
    /// Closes without a byte.
    Close,
    /// Closes right after the port field, without connecting back.
    NoBack,
    /// Accepts, sends some output and closes: no status line.
    Cut,
}

async fn field(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        let b = s.read_u8().await.unwrap();
        if b == 0 {
            return v;
        }
        v.push(b);
    }
}

/// Serves one request; returns the user name and password it got.
async fn serve(l: TcpListener, act: Act) -> (String, String) {
    let (mut s, peer) = l.accept().await.unwrap();
    let port: u16 = match String::from_utf8(field(&mut s).await).unwrap().as_str() {
        "" => 0,
        p => p.parse().unwrap(),
    };
    if let Act::NoBack = act {
        return (String::new(), String::new());
    }
    let mut back = match port {
        0 => None,
        p => Some(TcpStream::connect((peer.ip(), p)).await.unwrap()),
    };
    let user = String::from_utf8(field(&mut s).await).unwrap();
    let pass = String::from_utf8(field(&mut s).await).unwrap();
    let command = String::from_utf8(field(&mut s).await).unwrap();
    match act {
        Act::Run => {
            // Without a standard-error connection, the shell's standard error is the main one.
            let script = match back {
                Some(_) => command,
                None => format!("exec 2>&1\n{command}"),
            };
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            s.write_all(&[0]).await.unwrap();
            s.write_all(&out.stdout).await.unwrap();
            if let Some(b) = back.as_mut() {
                b.write_all(&out.stderr).await.unwrap();
            }
        }
        Act::Refuse => s.write_all(b"\x01Login incorrect.\n").await.unwrap(),
        Act::Close | Act::NoBack => {}
        Act::Cut => s.write_all(b"\0partial").await.unwrap(),
    }
    (user, pass)
}

fn go(act: Act, command: &str, stderr: bool) -> (Result<Outcome, Error>, Vec<u8>, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let command = command.to_string();
    rt.block_on(async move {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at: SocketAddr = l.local_addr().unwrap();
        let server = tokio::spawn(serve(l, act));
        let creds = Credentials::new("alice", Zeroizing::new("pw".into())).unwrap();
        let job = Job::new(at, creds, command).unwrap();
        let opts = Options {
            answer_timeout: Duration::from_secs(5),
            separate_stderr: stderr,
            ..Options::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = run(&KernelTransport, &job, &opts, &mut out, &mut err).await;
        let (user, pass) = server.await.unwrap();
        if let Act::Run | Act::Refuse | Act::Close | Act::Cut = act {
            assert_eq!((user.as_str(), pass.as_str()), ("alice", "pw"));
        }
        (r, out, err)
    })
}

#[test]
fn output_and_exit_status_come_back() {
    let (r, out, err) = go(Act::Run, "printf out; echo err >&2; exit 3", true);
    assert_eq!(r.unwrap().exit_status, 3);
    assert_eq!(out, b"out");
    assert_eq!(err, b"err\n");
    let (r, out, _) = go(Act::Run, "echo one; echo two >&2", false);
    let o = r.unwrap();
    assert_eq!((o.exit_status, o.stdout_bytes, o.stderr_bytes), (0, 8, 0));
    assert_eq!(out, b"one\ntwo\n");
}

#[test]
fn refusals_and_cuts_are_errors() {
    let (r, _, _) = go(Act::Refuse, "true", true);
    match r {
        Err(Error::Refused { message }) => assert_eq!(message, "Login incorrect."),
        other => panic!("{other:?}"),
    }
    let (r, _, _) = go(Act::Close, "true", false);
    assert!(matches!(r, Err(Error::ClosedWithoutAnswer)), "{r:?}");
    let (r, _, _) = go(Act::NoBack, "true", true);
    assert!(matches!(r, Err(Error::NoBackConnection)), "{r:?}");
    let (r, out, _) = go(Act::Cut, "true", true);
    assert!(matches!(r, Err(Error::ExitStatusUnknown)), "{r:?}");
    assert_eq!(out, b"partial");
}
