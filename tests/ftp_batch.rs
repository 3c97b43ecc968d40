//! The batch FTP client (`sixstack ftp batch`) on sixstack's own stack against vsftpd in
//! the peer namespace — plain, explicit FTPS (AUTH TLS, data connections resuming the
//! control connection's session as vsftpd requires) and implicit FTPS — and over the
//! kernel against sixstack's own FTP server; passwords from the vault; bad scripts
//! refused with their line and nothing written anywhere.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::clients::*;
use common::*;

/// vsftpd in the peer namespace; killed on drop.
struct Vsftpd(Child);

impl Drop for Vsftpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts vsftpd on `addr:port` serving `root` to anonymous users (who log in with any
/// password and may upload, rename and delete in `root/up`); with `tls`, FTPS with
/// `certs` (explicit, or implicit).
fn vsftpd(g: &LabGuard, dir: &Path, port: u16, tls: Option<(&Path, bool)>) -> Vsftpd {
    let _ = std::fs::create_dir_all("/var/run/vsftpd/empty");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("up")).unwrap();
    Command::new("chmod")
        .arg("777")
        .arg(root.join("up"))
        .status()
        .unwrap();
    let mut conf = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address={}\nlisten_port={port}\nbackground=NO\n\
         anonymous_enable=YES\nno_anon_password=NO\nanon_root={}\nlocal_enable=NO\n\
         write_enable=YES\nanon_upload_enable=YES\nanon_mkdir_write_enable=YES\n\
         anon_other_write_enable=YES\nanon_umask=022\npasv_enable=YES\nport_enable=YES\n\
         ascii_upload_enable=YES\nascii_download_enable=YES\nseccomp_sandbox=NO\n\
         secure_chroot_dir=/var/run/vsftpd/empty\nxferlog_enable=NO\n",
        g.lab.peer4(),
        root.display()
    );
    if let Some((certs, implicit)) = tls {
        conf.push_str(&format!(
            "ssl_enable=YES\nrsa_cert_file={0}/server.pem\nrsa_private_key_file={0}/server.key\n\
             allow_anon_ssl=YES\nforce_anon_logins_ssl=YES\nforce_anon_data_ssl=YES\n\
             require_ssl_reuse=YES\nssl_ciphers=HIGH\nimplicit_ssl={1}\n",
            certs.display(),
            if implicit { "YES" } else { "NO" }
        ));
    }
    let path = dir.join(format!("vsftpd-{port}.conf"));
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &g.lab.peer_ns, "vsftpd"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let v = Vsftpd(child);
    let to = sa(g.lab.peer4(), port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_ns(&g.lab.app_ns, move || std::net::TcpStream::connect(to)).is_err() {
        assert!(Instant::now() < deadline, "vsftpd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    v
}

/// A vault in `dir` (key file beside it) holding `entries`.
/// Runs `sixstack ftp batch` with `script` (written into `dir`) from `dir`: on the stack
/// of the lab (`config`) or, without one, over the kernel in namespace `ns`.
fn batch(
    dir: &Path,
    vault: &Path,
    script: &str,
    config: Option<&Path>,
    ns: &str,
    extra: &[&str],
) -> Run {
    let s = dir.join("job.ftp");
    std::fs::write(&s, script).unwrap();
    let mut cmd = Command::new("ip");
    // Logged in full, so that the tests see any password a log line would carry.
    cmd.env("RUST_LOG", "debug");
    cmd.args(["netns", "exec", ns, BIN, "ftp", "batch"])
        .arg(&s)
        .arg("--vault")
        .arg(vault)
        .args(extra)
        .current_dir(dir);
    match config {
        Some(c) => cmd.arg("--config").arg(c),
        None => cmd.arg("--kernel"),
    };
    run(&mut cmd)
}

fn certs(dir: &Path, ip: Ipv4Addr) -> PathBuf {
    let c = dir.join("certs");
    sixstack_tls::selfsigned::create(&c, &[ip.to_string()], "batch-client").unwrap();
    // vsftpd runs as root but drops to nobody for the session: readable key.
    Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(&c)
        .status()
        .unwrap();
    c
}

#[test]
fn batch_client_on_the_stack_against_vsftpd_plain_and_ftps() {
    let g = LabGuard::new(false);
    let s = scratch("vsftpd");
    let dir = &s.0;
    let certs = certs(dir, g.lab.peer4());
    let _plain = vsftpd(&g, dir, 21, None);
    let _explicit = vsftpd(&g, dir, 2021, Some((&certs, false)));
    let _implicit = vsftpd(&g, dir, 2990, Some((&certs, true)));
    let v = vault(dir, &[("anon", "batch@sixstack")]);
    let link = lab_config_file(&g, dir);
    let root = dir.join("root");
    let big = pattern(3 << 20, 9);
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("a1.csv"), b"x,1\n").unwrap();
    std::fs::write(dir.join("a2.csv"), b"x,2\n").unwrap();
    std::fs::write(dir.join("text.txt"), b"line one\nline two\n").unwrap();
    // IBM-1047 text with NL line ends: "HELLO\n" "ABC\n".
    std::fs::write(
        dir.join("ebcdic.txt"),
        [0xC8, 0xC5, 0xD3, 0xD3, 0xD6, 0x15, 0xC1, 0xC2, 0xC3, 0x15],
    )
    .unwrap();
    let peer = g.lab.peer4();
    let ca = certs.join("ca.pem");
    let ca = ca.to_str().unwrap();

    // Plain: binary and text both ways, wildcards, rename, delete, mkdir, site.
    let script = format!(
        "OPEN {peer}\nUSER anonymous\nPASS VAULT anon\nCD up\nTYPE I\nINPUT big.bin\nSTOR big.bin\n\
         OUTPUT big.back\nRETR big.bin\nTYPE A\nINPUT text.txt\nSTOR text.txt\nTYPE A 1047\n\
         INPUT ebcdic.txt\nSTOR ebcdic.txt\nOUTPUT ebcdic.back\nRETR ebcdic.txt\nTYPE I\n\
         MPUT a?.csv\nMKDIR got\nLCD .\nRENAME a1.csv b1.csv\nDELETE a2.csv\n\
         ACTIVE\nOUTPUT active.back\nRETR big.bin\nQUIT\n"
    );
    let r = batch(dir, &v, &script, Some(&link), &g.lab.app_ns, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("over sixstack"), "{}", r.out);
    assert!(r.out.contains("size verified"), "{}", r.out);
    assert!(
        !r.out.contains("batch@sixstack"),
        "the password logged: {}",
        r.out
    );
    assert!(std::fs::read(root.join("up/big.bin")).unwrap() == big);
    assert!(std::fs::read(dir.join("big.back")).unwrap() == big);
    assert!(std::fs::read(dir.join("active.back")).unwrap() == big);
    assert_eq!(
        std::fs::read(root.join("up/text.txt")).unwrap(),
        b"line one\nline two\n"
    );
    assert_eq!(
        std::fs::read(root.join("up/ebcdic.txt")).unwrap(),
        b"HELLO\nABC\n"
    );
    assert_eq!(
        std::fs::read(dir.join("ebcdic.back")).unwrap(),
        std::fs::read(dir.join("ebcdic.txt")).unwrap()
    );
    assert_eq!(std::fs::read(root.join("up/b1.csv")).unwrap(), b"x,1\n");
    assert!(!root.join("up/a2.csv").exists());
    assert!(root.join("up/got").is_dir());
    let leftovers: Vec<_> = std::fs::read_dir(root.join("up"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // MGET brings every match back.
    let got = dir.join("mget");
    std::fs::create_dir_all(&got).unwrap();
    let script = format!(
        "OPEN {peer} 21\nUSER anonymous\nPASS VAULT anon\nCD up\nLCD mget\nTYPE I\nMGET *.csv\nQUIT\n"
    );
    let r = batch(dir, &v, &script, Some(&link), &g.lab.app_ns, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(std::fs::read(got.join("b1.csv")).unwrap(), b"x,1\n");

    // Explicit and implicit FTPS: vsftpd refuses plain logins and data connections that do
    // not resume the control connection's TLS session.
    for (open, name) in [
        (format!("OPEN {peer} 2021\nAUTH TLS"), "explicit"),
        (format!("OPEN {peer} 2990 IMPLICIT"), "implicit"),
    ] {
        let script = format!(
            "{open}\nUSER anonymous\nPASS VAULT anon\nCD up\nTYPE I\nINPUT big.bin\nSTOR {name}.bin\n\
             OUTPUT {name}.back\nRETR {name}.bin\nQUIT\n"
        );
        let r = batch(dir, &v, &script, Some(&link), &g.lab.app_ns, &["--ca", ca]);
        assert_eq!(r.code, 0, "{name}: {}", r.out);
        assert!(
            std::fs::read(root.join(format!("up/{name}.bin"))).unwrap() == big,
            "{name}"
        );
        assert!(
            std::fs::read(dir.join(format!("{name}.back"))).unwrap() == big,
            "{name}"
        );
    }
    // Without TLS vsftpd refuses the anonymous login there: the step and reply are named.
    let script = format!("OPEN {peer} 2021\nUSER anonymous\nPASS VAULT anon\nQUIT\n");
    let r = batch(dir, &v, &script, Some(&link), &g.lab.app_ns, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("line 2") && r.out.contains("530"),
        "{}",
        r.out
    );

    // Resume: an earlier run's partial download and partial upload are carried on.
    std::fs::write(dir.join("resumed.back.part"), &big[..1 << 20]).unwrap();
    std::fs::write(
        root.join("up/resumed.bin.sixstack-part"),
        &big[..(1 << 20) + 7],
    )
    .unwrap();
    Command::new("chmod")
        .arg("666")
        .arg(root.join("up/resumed.bin.sixstack-part"))
        .status()
        .unwrap();
    let script = format!(
        "OPEN {peer}\nUSER anonymous\nPASS VAULT anon\nCD up\nTYPE I\nOUTPUT resumed.back\nRETR big.bin\n\
         INPUT big.bin\nSTOR resumed.bin\nQUIT\n"
    );
    let r = batch(dir, &v, &script, Some(&link), &g.lab.app_ns, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains(&format!("resumed at {}", 1 << 20)),
        "{}",
        r.out
    );
    assert!(
        r.out.contains(&format!("resumed at {}", (1 << 20) + 7)),
        "{}",
        r.out
    );
    assert!(std::fs::read(dir.join("resumed.back")).unwrap() == big);
    assert!(std::fs::read(root.join("up/resumed.bin")).unwrap() == big);
}

#[test]
fn bad_scripts_are_refused_with_their_line_and_write_nothing() {
    let g = LabGuard::new(false);
    let s = scratch("bad");
    let dir = &s.0;
    let _ftp = vsftpd(&g, dir, 21, None);
    let v = vault(dir, &[("anon", "x@y")]);
    let link = lab_config_file(&g, dir);
    let root = dir.join("root");
    std::fs::write(dir.join("f.bin"), b"data").unwrap();
    let peer = g.lab.peer4();
    let before = std::fs::read_dir(root.join("up")).unwrap().count();
    let cases = [
        (format!("OPEN {peer}\nUSER anonymous\nPASS VAULT anon\nFROB x\nINPUT f.bin\nSTOR f.bin\n"), 2, "line 4", "unknown command"),
        (format!("OPEN {peer}\nUSER anonymous\nPASS VAULT anon\nOUTPUT got.bin\nSTOR f.bin\n"), 2, "line 5", "needs an INPUT"),
        (format!("OPEN {peer}\nUSER anonymous\nPASS clear\n"), 2, "line 3", "vault"),
        // 10.255.255.1 is not on the lab link: no route from the stack.
        ("OPEN 10.255.255.1\nUSER a\nPASS VAULT anon\nOUTPUT got.bin\nRETR f.bin\n".to_string(), 1, "line 1", "OPEN"),
        (format!("OPEN {peer}\nUSER anonymous\nPASS VAULT nosuch\nOUTPUT got.bin\nRETR f.bin\n"), 1, "line 3", "nosuch"),
        (format!("OPEN {peer}\nUSER anonymous\nPASS VAULT anon\nCD up\nOUTPUT got.bin\nRETR missing.bin\n"), 1, "line 6", "550"),
    ];
    for (script, code, line, why) in &cases {
        let r = batch(
            dir,
            &v,
            script,
            Some(&link),
            &g.lab.app_ns,
            &["--timeout", "3"],
        );
        assert_eq!(r.code, *code, "{script}: {}", r.out);
        assert!(
            r.out.contains(line) && r.out.contains(why),
            "{script}: {}",
            r.out
        );
        assert!(
            !dir.join("got.bin").exists() && !dir.join("got.bin.part").exists(),
            "{script}"
        );
        assert_eq!(
            std::fs::read_dir(root.join("up")).unwrap().count(),
            before,
            "{script}"
        );
    }
}

#[test]
fn batch_client_over_the_kernel_against_sixstacks_ftp_server() {
    let g = LabGuard::new(false);
    let s = scratch("own");
    let dir = &s.0;
    let home = dir.join("anna");
    std::fs::create_dir_all(&home).unwrap();
    let hash = sixstack_ftp::users::hash_password("anna's password").unwrap();
    let users = dir.join("users.toml");
    std::fs::write(
        &users,
        format!("[[user]]\nname = \"anna\"\npassword = \"{hash}\"\nhome = \"{}\"\naccess = \"read-write\"\n", home.display()),
    )
    .unwrap();
    let mut config = sixstack::lab_config(&g.lab, None);
    config.push_str(&format!(
        "\n[ftp]\nport = 2121\nusers = \"{}\"\n",
        users.display()
    ));
    let _app = start_appliance_with(&config, |_, _| {});
    let stack = g.lab.stack4();
    drop(in_ns(&g.lab.peer_ns, move || {
        connect_retry(sa(stack, 2121))
    }));
    let v = vault(dir, &[("anna", "anna's password")]);
    let big = pattern(2 << 20, 4);
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("r1.txt"), b"one\n").unwrap();
    std::fs::write(dir.join("r2.txt"), b"two\n").unwrap();
    let ca = format!("{}/ca.pem", sixstack::LAB_TLS_DIR);
    // The lab certificate names the default lab's addresses, not this test lab's: the
    // control connection is protected only in the explicit run below, by host name.
    let script = format!(
        "OPEN {stack} 2121\nUSER anna\nPASS VAULT anna\nTYPE I\nINPUT big.bin\nSTOR big.bin\n\
         OUTPUT big.back\nRETR big.bin\nMKDIR rep\nCD rep\nTYPE A\nMPUT r?.txt\nLCD .\nOUTPUT r1.back\n\
         RETR r1.txt\nSITE HELP\nRENAME r2.txt r3.txt\nDELETE r1.txt\nINPUT r2.txt\nAPPEND r3.txt\nQUIT\n"
    );
    let r = batch(dir, &v, &script, None, &g.lab.peer_ns, &["--ca", &ca]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("over kernel"), "{}", r.out);
    assert!(std::fs::read(home.join("big.bin")).unwrap() == big);
    assert!(std::fs::read(dir.join("big.back")).unwrap() == big);
    assert_eq!(std::fs::read(dir.join("r1.back")).unwrap(), b"one\n");
    assert_eq!(
        std::fs::read(home.join("rep/r3.txt")).unwrap(),
        b"two\ntwo\n"
    );
    assert!(!home.join("rep/r1.txt").exists());
}
