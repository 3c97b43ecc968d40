//! The sshd fixture (`common::sshd`) proved with the system OpenSSH client run from a
//! namespace of the test's own: public-key login over IPv4 and IPv6 with the command's
//! output and exit status, the password-only account refusing the key but taking its
//! password, unknown and changed host keys refused, sftp only when configured, legacy scp
//! both ways byte-exact, and everything gone after a drop (also one during a panic),
//! including a session still running.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::sshd::{self, Sshd, SshdOptions, PASSWORD, PW_USER, UID, USER};
use common::*;

fn require() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the sshd fixture tests need root (namespaces, mounts)"
    );
    let miss = sshd::missing();
    assert!(
        miss.is_empty(),
        "not installed: {miss:?} (tests/run installs them)"
    );
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The via namespace (where a pass-through daemon would run; here only the clients):
/// deleted when dropped. A namespace of its own rather than a lab: sshd needs no more.
struct Via {
    ns: String,
    index: u8,
}

impl Via {
    fn new() -> Via {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let v = Via {
            ns: format!("sxk{:x}{n}", std::process::id() & 0xffff),
            index: (n % 250) as u8 + 1,
        };
        // Dropped (the namespace deleted) also when the second command fails.
        sixstack::lab::ip(&["netns", "add", &v.ns]).unwrap();
        sixstack::lab::ip(&["-n", &v.ns, "link", "set", "lo", "up"]).unwrap();
        v
    }
}

impl Drop for Via {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// A via namespace and an sshd behind it.
fn start(sftp: bool) -> (Via, Sshd) {
    require();
    let v = Via::new();
    let s = Sshd::start(&v.ns, v.index, SshdOptions { sftp });
    (v, s)
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `prog` with the fixture's client options and `args` in the via namespace.
fn client(s: &Sshd, prog: &str, known_hosts: &Path, args: &[&str]) -> Out {
    let out = Command::new("ip")
        .args(["netns", "exec", &s.via_ns, prog])
        .args(s.client_opts(known_hosts))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ssh(s: &Sshd, known_hosts: &Path, user: &str, host: &str, cmd: &str) -> Out {
    let to = format!("{user}@{host}");
    client(s, "ssh", known_hosts, &[&to, cmd])
}

/// A client-side scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!(
            "sixstack-sshd-client-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// After `s` is dropped: its namespace and its end of the veth in `via` are gone.
fn assert_gone(ns: &str, via: &str) {
    assert!(
        !namespaces().split_whitespace().any(|n| n == ns),
        "namespace {ns} left behind: {}",
        namespaces()
    );
    let tag = &ns[..ns.len() - 1];
    let (_, links) = ns_exec(via, &["ip", "-o", "link"]);
    assert!(!links.contains(tag), "veth {tag}v left in {via}: {links}");
}

#[test]
fn public_key_login_host_keys_sftp_and_scp() {
    let (g, s) = start(true);
    let (a4, a6) = (s.addr4.to_string(), s.addr6.to_string());

    for host in [&a4, &a6] {
        let o = ssh(&s, &s.known_hosts, USER, host, "echo hi; exit 3");
        assert_eq!(o.code, 3, "ssh to {host}: {}\n{}", o.stderr, s.log());
        assert_eq!(o.stdout, "hi\n", "ssh to {host}: {}", o.stderr);
    }
    let o = ssh(&s, &s.known_hosts, USER, &a4, "id -u; pwd");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, format!("{UID}\n{}\n", s.home.display()));

    // The key is listed for the password-only account too: sshd still offers passwords only.
    let o = ssh(&s, &s.known_hosts, PW_USER, &a4, "echo hi");
    assert_eq!(o.code, 255, "{}", o.stdout);
    assert!(
        o.stderr.contains("Permission denied (password)"),
        "{}",
        o.stderr
    );

    // ... and takes its password (given through SSH_ASKPASS: no terminal needed).
    let scratch = Scratch::new("pw");
    let askpass = scratch.0.join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{PASSWORD}'\n")).unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    let kh = format!("UserKnownHostsFile={}", s.known_hosts.display());
    let out = Command::new("ip")
        .args(["netns", "exec", &s.via_ns, "ssh", "-F", "/dev/null"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", &kh])
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
        ])
        .args([
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .arg(format!("{PW_USER}@{a4}"))
        .arg("id -un")
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "password login: {err}\n{}", s.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{PW_USER}\n"));

    let o = ssh(&s, &s.empty_known_hosts, USER, &a4, "echo hi");
    assert_eq!(o.code, 255);
    assert!(
        o.stderr.contains("Host key verification failed"),
        "{}",
        o.stderr
    );
    let o = ssh(&s, &s.wrong_known_hosts, USER, &a6, "echo hi");
    assert_eq!(o.code, 255);
    assert!(
        o.stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stdout, "");

    // sftp: a file up and back down.
    let scratch = Scratch::new("sftp");
    let data = pattern(300_000, 7);
    let local = scratch.0.join("up.bin");
    std::fs::write(&local, &data).unwrap();
    let back = scratch.0.join("back.bin");
    let batch = scratch.0.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} sftp-up.bin\nget sftp-up.bin {}\nls -l\n",
            local.display(),
            back.display()
        ),
    )
    .unwrap();
    let to = format!("{USER}@{a4}");
    let b = batch.display().to_string();
    let o = client(&s, "sftp", &s.known_hosts, &["-b", &b, &to]);
    assert_eq!(o.code, 0, "sftp: {}\n{}", o.stderr, s.log());
    assert_eq!(s.get("sftp-up.bin").as_deref(), Some(&data[..]));
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // Legacy scp: up over IPv4, down over IPv6.
    let data = pattern(1_000_003, 9);
    std::fs::write(&local, &data).unwrap();
    let l = local.display().to_string();
    let o = client(
        &s,
        "scp",
        &s.known_hosts,
        &["-O", &l, &format!("{to}:scp.bin")],
    );
    assert_eq!(o.code, 0, "scp -O up: {}\n{}", o.stderr, s.log());
    assert_eq!(s.get("scp.bin").as_deref(), Some(&data[..]));
    let meta = std::fs::metadata(s.path("scp.bin")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), UID);

    let down = pattern(65_537, 11);
    s.put("down.bin", &down);
    let from = format!("{USER}@[{a6}]:down.bin");
    let d = scratch.0.join("down.bin").display().to_string();
    let o = client(&s, "scp", &s.known_hosts, &["-O", &from, &d]);
    assert_eq!(o.code, 0, "scp -O down: {}", o.stderr);
    assert_eq!(std::fs::read(&d).unwrap(), down);

    let (ns, via) = (s.ns.clone(), s.via_ns.clone());
    drop(s);
    assert_gone(&ns, &via);
    drop(g);
}

#[test]
fn without_sftp_only_legacy_scp_works() {
    let (_g, mut s) = start(false);
    let to = format!("{USER}@{}", s.addr4);
    let scratch = Scratch::new("legacy");
    let batch = scratch.0.join("batch");
    std::fs::write(&batch, "ls\n").unwrap();
    let b = batch.display().to_string();
    let o = client(&s, "sftp", &s.known_hosts, &["-b", &b, &to]);
    assert_ne!(o.code, 0, "sftp worked without the subsystem");
    let o = client(&s, "ssh", &s.known_hosts, &["-s", &to, "sftp"]);
    assert_ne!(o.code, 0, "ssh -s sftp worked without the subsystem");
    assert!(
        s.log().contains("subsystem not found"),
        "sshd log: {}",
        s.log()
    );

    let local = scratch.0.join("f.bin");
    let data = pattern(4096, 3);
    std::fs::write(&local, &data).unwrap();
    let l = local.display().to_string();
    // scp's default (SFTP) fails; the legacy protocol works.
    let o = client(&s, "scp", &s.known_hosts, &[&l, &format!("{to}:new.bin")]);
    assert_ne!(o.code, 0, "scp over SFTP worked without the subsystem");
    assert_eq!(s.get("new.bin"), None);
    let o = client(
        &s,
        "scp",
        &s.known_hosts,
        &["-O", &l, &format!("{to}:old.bin")],
    );
    assert_eq!(o.code, 0, "scp -O: {}", o.stderr);
    assert_eq!(s.get("old.bin").as_deref(), Some(&data[..]));

    // kill(): nothing listens any more, the namespace is empty.
    s.kill();
    assert!(s.pids().is_empty(), "left running: {:?}", s.pids());
    let to = s.server4();
    let refused = in_ns(&s.via_ns, move || {
        std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_err()
    });
    assert!(refused, "sshd still accepts after kill()");
}

#[test]
fn drop_during_a_panic_ends_sessions_and_removes_everything() {
    let (g, s) = start(false);
    let (ns, via) = (s.ns.clone(), s.via_ns.clone());
    // A session that would run for ten minutes.
    let mut session = Command::new("ip")
        .args(["netns", "exec", &via, "ssh"])
        .args(s.client_opts(&s.known_hosts))
        .arg(format!("{USER}@{}", s.addr4))
        .arg("exec sleep 600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let sleeper = loop {
        let found = s.pids().into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < deadline, "no session: {}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    };

    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _s = s;
        panic!("a failing test (deliberate)");
    }));
    assert!(r.is_err());
    assert_gone(&ns, &via);
    // The session's command is gone (or a zombie waiting for its new parent).
    let state = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
    let state = state.rsplit(") ").next().unwrap_or("").chars().next();
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "session command {sleeper} still running: {state:?}"
    );
    // The client sees its connection end.
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = session.kill();
            panic!("the ssh client still runs after the server is gone");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(g);
}
