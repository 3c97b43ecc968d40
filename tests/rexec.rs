//! The remote execution client library (`sixstack_rexec::run`, jobs and options built from
//! `RexecArgs` as `sixstack rexec` does) against Debian's in.rexecd in the peer namespace.
//! Over sixstack's own stack: standard output byte-exact (also a megabyte of binary data
//! while standard error carries text at the same time), standard error on its own
//! connection, exit statuses 0, 3, 4, 143 (a signal) and 255, output without a final
//! newline, an empty standard input, a look-alike status line relayed unchanged, the login
//! shell killed (output kept, exit status unknown), standard error mixed into standard
//! output without the second connection (`--no-stderr`), and a wrong password and a user
//! name too long for in.rexecd as typed errors. Over the kernel's sockets from the
//! appliance namespace: the streams, the megabyte, `--no-stderr` and both refusals.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::rexecd::{self, Rexecd};
use common::*;
use sixstack_rexec::cli::RexecArgs;
use sixstack_rexec::{Error, Outcome};
use sixstack_transport::Transport;
use zeroize::Zeroizing;

fn skip() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the rexec interop tests need root (namespaces, mounts)");
        return true;
    }
    if !rexecd::available() {
        eprintln!("skipped: in.rexecd is not installed (apt-get install rsh-server socat openssl)");
        return true;
    }
    false
}

/// The megabyte the big case reads from the user's home.
const BIG: &str = "big.bin";
fn big() -> Vec<u8> {
    pattern(1 << 20, 512)
}

/// What a case must give.
#[derive(Debug, Clone)]
enum Want {
    /// The command ran: its exit status and both streams, byte for byte.
    Ran {
        status: u8,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// The connection ended without the exit status (the remote login shell was killed),
    /// after this standard output.
    StatusUnknown(Vec<u8>),
    /// The login was refused as Debian's in.rexecd does it: the connection closed without
    /// an answer.
    Refused,
    /// The server refused with its error byte and a message that holds this text, or no
    /// message: in.rexecd writes the byte and the message apart and exits with the rest of
    /// the request unread, so its kernel resets the connection and drops the message when
    /// Nagle still holds it back (it does while the client delays its ACK of the byte, as
    /// sixstack's stack does).
    RefusedWith(&'static str),
}

#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    command: String,
    user: &'static str,
    password: &'static str,
    no_stderr: bool,
    want: Want,
}

fn ran(status: u8, stdout: impl Into<Vec<u8>>, stderr: impl Into<Vec<u8>>) -> Want {
    Want::Ran {
        status,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

fn case(name: &'static str, command: impl Into<String>, want: Want) -> Case {
    Case {
        name,
        command: command.into(),
        user: rexecd::USER,
        password: rexecd::PASSWORD,
        no_stderr: false,
        want,
    }
}

/// Both streams and the exit status: a command that writes to each and fails with 3.
fn streams() -> Case {
    case(
        "streams",
        "echo out; echo err >&2; id -un; exit 3",
        ran(3, format!("out\n{}\n", rexecd::USER), "err\n"),
    )
}

/// A megabyte of binary output while standard error carries 20000 lines at the same time.
fn megabyte() -> Case {
    let lines: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
    case(
        "megabyte",
        format!("cat {BIG} & seq 1 20000 >&2; wait"),
        ran(0, big(), lines),
    )
}

fn wrong_password(name: &'static str, no_stderr: bool) -> Case {
    Case {
        password: "not-it-4711",
        no_stderr,
        ..case(name, "echo never", Want::Refused)
    }
}

/// sixstack allows 16 bytes as rexecd(8) says; Debian's in.rexecd takes 15 and refuses.
fn user_too_long() -> Case {
    Case {
        user: "sxrexec-sixteen1",
        ..case(
            "user name too long",
            "true",
            Want::RefusedWith("username too long"),
        )
    }
}

fn stack_cases() -> Vec<Case> {
    vec![
        streams(),
        case(
            "no newline",
            "printf 'no newline'",
            ran(0, "no newline", ""),
        ),
        case(
            "status 255",
            "echo bye >&2; exit 255",
            ran(255, "", "bye\n"),
        ),
        case(
            "signal",
            // Without the redirection, dash would say `Terminated` on standard error.
            "{ sh -c 'kill -TERM $$'; } 2>/dev/null",
            ran(143, "", ""),
        ),
        case(
            "login shell killed",
            "echo partial; kill -KILL $$",
            Want::StatusUnknown("partial\n".into()),
        ),
        case("empty stdin", "cat; echo done", ran(0, "done\n", "")),
        case(
            "look-alike status line",
            "printf 'sixstack-rexec-status-0123456789abcdef0123456789abcdef 7\\n'",
            ran(
                0,
                "sixstack-rexec-status-0123456789abcdef0123456789abcdef 7\n",
                "",
            ),
        ),
        megabyte(),
        Case {
            no_stderr: true,
            ..case(
                "no-stderr",
                "echo one; echo two >&2; exit 4",
                ran(4, "one\ntwo\n", ""),
            )
        },
        wrong_password("wrong password", false),
        wrong_password("wrong password, no-stderr", true),
        user_too_long(),
    ]
}

fn kernel_cases() -> Vec<Case> {
    vec![
        streams(),
        megabyte(),
        Case {
            no_stderr: true,
            ..case("no-stderr", "echo a; echo b >&2", ran(0, "a\nb\n", ""))
        },
        wrong_password("wrong password", false),
        user_too_long(),
    ]
}

/// What a run gave.
#[derive(Debug)]
struct Ran {
    result: Result<Outcome, Error>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `c` the way `sixstack rexec` does: the job and options from its arguments.
async fn run_case<T: Transport>(t: &T, server: SocketAddr, c: &Case) -> Ran {
    let args = RexecArgs {
        host: server.ip().to_string(),
        command: vec![c.command.clone()],
        user: c.user.into(),
        port: server.port(),
        connect_timeout: 10,
        answer_timeout: 10,
        timeout: Some(20),
        no_stderr: c.no_stderr,
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = match args.job(Zeroizing::new(c.password.into())) {
        Ok(job) => sixstack_rexec::run(t, &job, &args.options(), &mut stdout, &mut stderr).await,
        Err(e) => Err(e),
    };
    Ran {
        result,
        stdout,
        stderr,
    }
}

fn check(over: &str, c: &Case, r: &Ran, server: &Rexecd) {
    let what = format!("{over}, {}", c.name);
    match &c.want {
        Want::Ran {
            status,
            stdout,
            stderr,
        } => {
            let o = r
                .result
                .as_ref()
                .unwrap_or_else(|e| panic!("{what}: {e}\nserver: {}", server.log()));
            assert_eq!(o.exit_status, *status, "{what}: exit status");
            assert_eq!(r.stdout.len(), stdout.len(), "{what}: stdout length");
            assert!(
                r.stdout == *stdout,
                "{what}: stdout differs: {:?}",
                String::from_utf8_lossy(&r.stdout[..r.stdout.len().min(200)])
            );
            assert_eq!(
                String::from_utf8_lossy(&r.stderr),
                String::from_utf8_lossy(stderr),
                "{what}: stderr"
            );
            assert_eq!(o.stdout_bytes, stdout.len() as u64, "{what}: stdout bytes");
            assert_eq!(o.stderr_bytes, stderr.len() as u64, "{what}: stderr bytes");
        }
        Want::StatusUnknown(stdout) => {
            assert!(
                matches!(r.result, Err(Error::ExitStatusUnknown)),
                "{what}: {:?}",
                r.result
            );
            assert_eq!(r.stdout, *stdout, "{what}: stdout");
        }
        Want::Refused => {
            let e = match &r.result {
                Ok(o) => panic!("{what}: ran ({o:?}) with a wrong password"),
                Err(e) => e,
            };
            assert!(matches!(e, Error::ClosedWithoutAnswer), "{what}: {e:?}");
            assert!(
                !e.to_string().contains(c.password),
                "{what}: password shown"
            );
            assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{what}: output");
        }
        Want::RefusedWith(text) => {
            match &r.result {
                Err(Error::Refused { message }) => assert!(
                    message.contains(text) || message == "(no reason given)",
                    "{what}: {message:?}"
                ),
                other => panic!("{what}: {other:?}"),
            }
            assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{what}: output");
        }
    }
}

/// One lab with in.rexecd on the peer and the user's big file in place.
fn setup() -> (LabGuard, Rexecd) {
    let g = LabGuard::new(false);
    let server = Rexecd::start(&g.lab);
    server.put(BIG, &big());
    (g, server)
}

#[test]
fn rexec_over_the_stack_against_in_rexecd() {
    if skip() {
        return;
    }
    let (g, server) = setup();
    let to = server.server();
    let cases = Arc::new(stack_cases());
    let jobs = cases.clone();
    let (app, rx) = on_shard(&g.lab, move |net, tx| {
        let net = net.clone();
        let jobs = jobs.clone();
        net.clone().spawn(async move {
            let t = sixstack_transport::StackTransport::new(&net);
            for c in jobs.iter() {
                tx.send(run_case(&t, to, c).await).unwrap();
            }
        });
    });
    let results: Vec<Ran> = cases
        .iter()
        .map(|c| {
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{}: {e}\nserver: {}", c.name, server.log()))
        })
        .collect();
    app.stop().unwrap();
    for (c, r) in cases.iter().zip(&results) {
        check("stack", c, r, &server);
    }
}

#[test]
fn rexec_over_the_kernel_against_in_rexecd() {
    if skip() {
        return;
    }
    let (g, server) = setup();
    let to = server.server();
    let cases = kernel_cases();
    let jobs = cases.clone();
    let results = in_ns(&g.lab.app_ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = sixstack_transport::KernelTransport;
        jobs.iter()
            .map(|c| rt.block_on(run_case(&t, to, c)))
            .collect::<Vec<_>>()
    });
    for (c, r) in cases.iter().zip(&results) {
        check("kernel", c, r, &server);
    }
}
