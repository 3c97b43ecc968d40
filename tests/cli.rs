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

/// A scratch directory that is removed when dropped, also when the test fails.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sixstack-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn join(&self, file: &str) -> std::path::PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `sixstack` with `args`; returns (success, stdout, stderr).
fn run_sixstack(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = sixstack().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// What `openssl x509` prints for one option (`-fingerprint -sha256`, `-serial`), on the
/// first certificate of `pem`.
fn openssl_x509(pem: &std::path::Path, opts: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-in"])
        .arg(pem)
        .args(opts)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509 {opts:?} on {pem:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The value after `key` on a `key: value` line of one certificate's description.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

/// Splits `cert info` output into one description per certificate, in order.
fn certificates(out: &str) -> Vec<&str> {
    let parts: Vec<&str> = out.split("certificate ").skip(1).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            p.starts_with(&format!("{i}:")),
            "certificate {i} in:\n{out}"
        );
    }
    parts
}

/// Serial as hex digits only: no colons, upper case.
fn serial_hex(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// `cert selfsigned` into a fresh directory for `test.example` and 10.1.2.3, client bob.
fn lab_material(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let (ok, out, err) = run_sixstack(&[
        "cert".as_ref(),
        "selfsigned".as_ref(),
        "--dir".as_ref(),
        dir.0.as_os_str(),
        "--name".as_ref(),
        "test.example".as_ref(),
        "--name".as_ref(),
        "10.1.2.3".as_ref(),
        "--client".as_ref(),
        "bob".as_ref(),
    ]);
    assert!(ok, "cert selfsigned: {out}{err}");
    dir
}

#[test]
fn cert_selfsigned_writes_material_that_info_and_openssl_agree_on() {
    use std::os::unix::fs::PermissionsExt;
    let dir = lab_material("cert-selfsigned");
    for f in [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    for key in ["server.key", "client.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key} mode {mode:o}");
    }

    let server = dir.join("server.pem");
    let (ok, out, err) = run_sixstack(&["cert".as_ref(), "info".as_ref(), server.as_os_str()]);
    assert!(ok, "cert info: {err}");
    let certs = certificates(&out);
    assert_eq!(certs.len(), 2, "leaf and CA:\n{out}");
    let leaf = certs[0];
    assert!(field(leaf, "subject").contains("CN=test.example"), "{leaf}");
    assert!(field(leaf, "issuer").contains("sixstack lab CA"), "{leaf}");
    assert_eq!(field(leaf, "SANs"), "DNS:test.example, IP:10.1.2.3");
    assert_eq!(field(leaf, "key"), "EC P-256 256 bits");
    assert_eq!(field(leaf, "signature"), "ecdsa-with-SHA256");
    assert_eq!(field(leaf, "CA"), "no");
    let fp = openssl_x509(&server, &["-fingerprint", "-sha256"]);
    assert_eq!(
        fp,
        format!("sha256 Fingerprint={}", field(leaf, "SHA-256")),
        "{leaf}"
    );
    let serial = openssl_x509(&server, &["-serial"]);
    assert_eq!(
        serial_hex(serial.strip_prefix("serial=").unwrap()),
        serial_hex(field(leaf, "serial")),
        "{leaf}"
    );
    let ca = certs[1];
    assert_eq!(field(ca, "CA"), "yes", "{ca}");
    assert!(field(ca, "subject").contains("CN=sixstack lab CA"), "{ca}");
    let ca_fp = openssl_x509(&dir.join("ca.pem"), &["-fingerprint", "-sha256"]);
    assert_eq!(
        ca_fp,
        format!("sha256 Fingerprint={}", field(ca, "SHA-256"))
    );

    let client = dir.join("client.pem");
    let (ok, out, err) = run_sixstack(&["cert".as_ref(), "info".as_ref(), client.as_os_str()]);
    assert!(ok, "cert info client: {err}");
    let subject = field(certificates(&out)[0], "subject");
    assert!(subject.ends_with("CN=bob"), "{subject}");
}

/// A serial whose first byte has the high bit set is DER-encoded with a 0x00 sign byte;
/// that byte is encoding, not part of the number, and openssl does not show it.
#[test]
fn cert_info_serial_matches_openssl_for_high_bit_serials() {
    let dir = TempDir::new("cert-serial");
    for (i, serial) in ["0x0a1b", "0x80a1b2", "0xff00112233445566778899"]
        .iter()
        .enumerate()
    {
        let pem = dir.join(&format!("c{i}.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
            ])
            .args(["-subj", "/CN=serial", "-set_serial", serial, "-keyout"])
            .arg(dir.join("k.pem"))
            .arg("-out")
            .arg(&pem)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl req: {out:?}");
        let (ok, text, err) = run_sixstack(&["cert".as_ref(), "info".as_ref(), pem.as_os_str()]);
        assert!(ok, "cert info: {err}");
        let ours = field(certificates(&text)[0], "serial").to_string();
        let theirs = openssl_x509(&pem, &["-serial"]);
        assert_eq!(
            serial_hex(&ours),
            serial_hex(theirs.strip_prefix("serial=").unwrap()),
            "serial {serial}: sixstack {ours}, openssl {theirs}"
        );
    }
}

#[test]
fn cert_info_refuses_bad_files_naming_them() {
    let dir = TempDir::new("cert-bad");
    let not_pem = dir.join("notes.txt");
    std::fs::write(&not_pem, "just some text\n").unwrap();
    let missing = dir.join("missing.pem");
    let bad_base64 = dir.join("bad-base64.pem");
    std::fs::write(
        &bad_base64,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let not_der = dir.join("not-der.pem");
    std::fs::write(
        &not_der,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (file, why) in [
        (&not_pem, "no CERTIFICATE"),
        (&missing, "No such file"),
        (&bad_base64, "bad PEM"),
        (&not_der, "does not parse"),
    ] {
        let (ok, out, err) = run_sixstack(&["cert".as_ref(), "info".as_ref(), file.as_os_str()]);
        assert!(!ok, "{file:?} accepted: {out}");
        assert!(
            err.contains(&file.display().to_string()),
            "error does not name {file:?}: {err}"
        );
        assert!(err.contains(why), "{file:?}: expected {why:?} in: {err}");
    }
}

#[test]
fn cert_info_connect_describes_a_live_openssl_server() {
    let dir = lab_material("cert-connect");
    let server = dir.join("server.pem");
    let (ok, out, err) = run_sixstack(&["cert".as_ref(), "info".as_ref(), server.as_os_str()]);
    assert!(ok, "cert info: {err}");
    let leaf = certificates(&out)[0];
    let (subject, fingerprint) = (field(leaf, "subject"), field(leaf, "SHA-256"));

    let g = LabGuard::new(false);
    let accept = format!("{}:8443", g.lab.peer4());
    let _s_server = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &g.lab.peer_ns])
            .args(["openssl", "s_server", "-accept", &accept, "-cert"])
            .arg(&server)
            .arg("-key")
            .arg(dir.join("server.key"))
            .arg("-cert_chain")
            .arg(dir.join("ca.pem"))
            .arg("-www")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let (out, err) = loop {
        let (ok, out, err) = run_sixstack(&[
            "cert".as_ref(),
            "info".as_ref(),
            "--connect".as_ref(),
            accept.as_ref(),
            "--netns".as_ref(),
            g.lab.app_ns.as_ref(),
            "--sni".as_ref(),
            "test.example".as_ref(),
        ]);
        if ok {
            break (out, err);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never connected to s_server on {accept}: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{accept}: TLSv1.3 ")),
        "{out}{err}"
    );
    let certs = certificates(&out);
    assert_eq!(certs.len(), 2, "server sends leaf and CA:\n{out}");
    assert_eq!(field(certs[0], "subject"), subject, "{out}");
    assert_eq!(field(certs[0], "SHA-256"), fingerprint, "{out}");
    assert_eq!(field(certs[1], "CA"), "yes", "{out}");
}

/// `sixstack ftp passwd`: the password goes into the security file as an Argon2id hash
/// (read from standard input when it is not a terminal); a short password or an unknown
/// user changes nothing.
#[test]
fn ftp_passwd_stores_an_argon2id_hash_only() {
    let text = "[[user]]\nname = \"ben\"\nhome = \"/srv/ftp/ben\"\n";
    let p = temp_file("ftp-users.toml", text);
    let run = |user: &str, input: &str| {
        let mut child = sixstack()
            .args(["ftp", "passwd", user, "--users"])
            .arg(&p)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run("ben", "short\n");
    assert!(!ok && err.contains("at least 8"), "{err}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    let (ok, err) = run("nobody", "long enough pass\n");
    assert!(!ok && err.contains("no user named"), "{err}");
    let (ok, err) = run("ben", "correct horse battery\n");
    assert!(ok, "{err}");
    let stored = std::fs::read_to_string(&p).unwrap();
    assert!(stored.contains("password = \"$argon2id$"), "{stored}");
    assert!(!stored.contains("correct horse"));
    let users = sixstack_ftp::users::Users::load(&p).unwrap();
    assert!(users
        .get("ben")
        .unwrap()
        .check_password("correct horse battery"));
    let _ = std::fs::remove_file(&p);
}
