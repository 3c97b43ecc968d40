//! `sixstack rexec` against Debian's in.rexecd (rsh-server) in the lab's peer namespace,
//! over sixstack's own stack and over the kernel's sockets: standard output byte-exact
//! (also a megabyte of it), standard error on its own connection, exit statuses, output
//! without a final newline, a wrong password refused, and standard error mixed into
//! standard output with --no-stderr.
//!
//! The command line end to end; `tests/rexec.rs` drives the library against the same
//! server (`common::rexecd`) in more detail.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use common::clients::*;
use common::rexecd::{self, Rexecd, PASSWORD, USER};
use common::*;

fn skip() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the rexec interop tests need root (namespaces)");
        return true;
    }
    if !rexecd::available() {
        eprintln!("skipped: in.rexecd is not installed (apt-get install rsh-server)");
        return true;
    }
    false
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
    let _server = Rexecd::start(&g.lab);
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
