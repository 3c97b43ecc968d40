//! `sixstack rexec` against Debian's in.rexecd (rsh-server) in the lab's peer namespace,
//! over sixstack's own stack and over the kernel's sockets: standard output byte-exact
//! (also a megabyte of it), standard error on its own connection, exit statuses, output
//! without a final newline, a wrong password refused, and standard error mixed into
//! standard output with --no-stderr.
//!
//! in.rexecd checks passwords through PAM (pam_unix) and names its client through
//! /etc/hosts: the server runs in a mount namespace of its own where copies of /etc/passwd,
//! /etc/shadow, /etc/group (one extra test user) and /etc/hosts (the clients' names) are
//! mounted over the machine's, so the machine's files never change.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::clients::*;
use common::*;

const USER: &str = "sxrexec";
const PASSWORD: &str = "rexec-Pw-93a";
const UID: u32 = 64_123;

fn skip() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the rexec interop tests need root (namespaces)");
        return true;
    }
    if !Path::new("/usr/sbin/in.rexecd").exists() {
        eprintln!("skipped: in.rexecd is not installed (apt-get install rsh-server)");
        return true;
    }
    false
}

/// in.rexecd behind socat in the peer namespace, in a mount namespace with the test user;
/// killed on drop (the scratch directory goes with its own guard).
struct Rexecd(Child);

impl Drop for Rexecd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rexecd(dir: &Path, ns: &str, addr: Ipv4Addr, clients: &[Ipv4Addr]) -> Rexecd {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(UID), Some(UID)).unwrap();
    let hash = Command::new("openssl")
        .args(["passwd", "-6", PASSWORD])
        .output()
        .unwrap();
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).unwrap();
    let add = |file: &str, line: String| {
        let mut text = std::fs::read_to_string(file).unwrap();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        let copy = dir.join(Path::new(file).file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        copy
    };
    let passwd = add(
        "/etc/passwd",
        format!(
            "{USER}:x:{UID}:{UID}:rexec test:{}:/bin/sh\n",
            home.display()
        ),
    );
    let shadow = add(
        "/etc/shadow",
        format!("{USER}:{}:19000:0:99999:7:::\n", hash.trim()),
    );
    let group = add("/etc/group", format!("{USER}:x:{UID}:\n"));
    // in.rexecd looks the client's address up by name and refuses one it cannot name.
    let names: String = clients
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{a} client{i}.rexec.lab\n"))
        .collect();
    let hosts = add("/etc/hosts", names);
    let script = format!(
        "mount --bind {p} /etc/passwd && mount --bind {s} /etc/shadow && \
         mount --bind {g} /etc/group && mount --bind {h} /etc/hosts && exec ip netns exec {ns} socat \
         TCP-LISTEN:512,bind={addr},reuseaddr,fork EXEC:/usr/sbin/in.rexecd,nofork",
        p = passwd.display(),
        s = shadow.display(),
        g = group.display(),
        h = hosts.display(),
    );
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Rexecd(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let to = std::net::SocketAddr::from((addr, 512));
    while in_ns(ns, move || {
        std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200))
    })
    .is_err()
    {
        assert!(Instant::now() < deadline, "in.rexecd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

fn rexec(
    ns: &str,
    via: &[&str],
    vault: &Path,
    entry: &str,
    host: Ipv4Addr,
    extra: &[&str],
    command: &str,
) -> Out {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, BIN, "rexec"])
        .args(via)
        .arg("--vault")
        .arg(vault)
        .args(["--password-from", entry, "-l", USER, "--timeout", "30"])
        .args(extra)
        .arg(host.to_string())
        .arg(command)
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn rexec_against_in_rexecd_over_the_stack_and_the_kernel() {
    if skip() {
        return;
    }
    let g = LabGuard::new(false);
    let s = scratch("rexec");
    let dir = &s.0;
    let peer = g.lab.peer4();
    let _server = rexecd(
        dir,
        &g.lab.peer_ns,
        peer,
        &[g.lab.stack4(), g.lab.kernel4()],
    );
    let v = vault(dir, &[("rx", PASSWORD), ("wrong", "not-it")]);
    let link = lab_config_file(&g, dir);
    let link = link.to_str().unwrap();
    let ns = g.lab.app_ns.clone();

    for via in [&["--config", link][..], &["--kernel"][..]] {
        let run =
            |entry: &str, extra: &[&str], cmd: &str| rexec(&ns, via, &v, entry, peer, extra, cmd);
        let what = via[0];

        let o = run("vault:rx", &[], "echo out; echo err >&2; id -un; exit 3");
        assert_eq!(o.code, 3, "{what}: {}", o.stderr);
        assert_eq!(o.stdout, format!("out\n{USER}\n").as_bytes(), "{what}");
        assert_eq!(o.stderr.trim(), "err", "{what}");

        let o = run("vault:rx", &[], "printf 'no newline'");
        assert_eq!(o.code, 0, "{what}: {}", o.stderr);
        assert_eq!(o.stdout, b"no newline", "{what}");

        let o = run("vault:rx", &[], "exit 255");
        assert_eq!(o.code, 255, "{what}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{what}");

        let o = run(
            "vault:rx",
            &["--no-stderr"],
            "echo one; echo two >&2; false",
        );
        assert_eq!(o.code, 1, "{what}: {}", o.stderr);
        assert_eq!(o.stdout, b"one\ntwo\n", "{what}: stderr mixed into stdout");

        let o = run("vault:wrong", &[], "echo never");
        assert_eq!(o.code, 255, "{what}");
        assert!(o.stdout.is_empty(), "{what}");
        assert!(!o.stderr.contains("not-it"), "{what}: the password shown");
        assert!(!o.stderr.is_empty(), "{what}: a wrong password is reported");
    }

    // A megabyte of output, byte-exact, over the stack.
    let o = rexec(
        &ns,
        &["--config", link],
        &v,
        "vault:rx",
        peer,
        &[],
        "seq 1 150000",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let want: String = (1..=150_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(o.stdout.len(), want.len());
    assert!(o.stdout == want.as_bytes(), "seq output differs");
}
