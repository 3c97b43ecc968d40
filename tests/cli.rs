//! The `sixstack` binary as a user runs it: a bad configuration is refused with its
//! location and a non-zero exit; `run` on a lab link serves, and SIGINT leaves no XDP
//! program behind.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn sixstack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sixstack"))
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sixstack-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_config_is_refused_with_file_line_and_reason() {
    let p = temp_file(
        "bad.toml",
        "[interface]\nname = \"eth9\"\ndriver = \"af_xdp\"\n\n[addresses]\nipv4 = \"10.1.2.300/24\"\n",
    );
    let out = sixstack()
        .args(["run", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("{}:6:", p.display())), "{err}");
    assert!(err.contains("not a valid address"), "{err}");
    let out = sixstack()
        .args(["check", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let _ = std::fs::remove_file(p);
}

#[test]
fn run_serves_and_sigint_cleans_up() {
    let g = LabGuard::new(false);
    let p = temp_file("lab.toml", &sixstack::lab_config(&g.lab, None));
    let mut child = sixstack()
        .args(["run", "--config"])
        .arg(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let target = g.lab.stack4().to_string();
    loop {
        let (ok, _) = ns_exec(&g.lab.peer_ns, &["ping", "-c", "1", "-W", "1", &target]);
        if ok {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "appliance never answered"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "appliance exited early"
        );
    }
    let (ok, out) = ns_exec(&g.lab.app_ns, &["ip", "link", "show", &g.lab.app_if]);
    assert!(
        ok && out.contains("xdp"),
        "program attached while running: {out}"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGINT: {status:?}");
    let (ok, out) = ns_exec(&g.lab.app_ns, &["ip", "link", "show", &g.lab.app_if]);
    assert!(ok && !out.contains("xdp"), "program left behind: {out}");
    let _ = std::fs::remove_file(p);
}
