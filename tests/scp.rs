//! Secure copy end to end: `sixstack scp` on the appliance's stack, `sixstack scpd` in the
//! peer namespace, Debian's OpenSSH sshd in a third namespace. Transfers byte-exact both
//! ways over SFTP and legacy scp, TYPE A, EXEC, refusals, no trace of the data on the
//! daemon's disk, and a daemon killed mid-transfer.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::clients::BIN;
use common::pattern;
use common::scpd::{ScpLab, PORT};
use common::sshd::{PW_USER, USER};

/// Sizes every transfer test moves (edge cases and a few MiB).
const SIZES: [usize; 5] = [0, 1, 1024, 1024 * 1024 + 3, 12 * 1024 * 1024 + 5];

fn transfers(lab: &ScpLab, header: &str, proto: &str, tag: &str) {
    let mut script = format!("{header}PROTOCOL {proto}\n");
    for (i, n) in SIZES.iter().enumerate() {
        std::fs::write(
            lab.local.join(format!("{tag}{i}.bin")),
            pattern(*n, i as u64),
        )
        .unwrap();
        script += &format!(
            "INPUT {tag}{i}.bin\nSTOR {tag}{i}.bin\nOUTPUT {tag}{i}.back\nRETR {tag}{i}.bin\n"
        );
    }
    script += "QUIT\n";
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 0, "{}", r.out);
    let want = format!("over {}", proto.to_ascii_lowercase());
    for (i, n) in SIZES.iter().enumerate() {
        let data = pattern(*n, i as u64);
        assert_eq!(
            lab.sshd.get(&format!("{tag}{i}.bin")).unwrap(),
            data,
            "remote {tag}{i}"
        );
        assert_eq!(
            std::fs::read(lab.local.join(format!("{tag}{i}.back"))).unwrap(),
            data,
            "local {tag}{i}"
        );
        assert!(r.out.contains(&format!("{n} bytes {want}")), "{}", r.out);
    }
    // No temporary file is left on either side.
    let leftovers: Vec<_> = std::fs::read_dir(&lab.sshd.home)
        .unwrap()
        .chain(std::fs::read_dir(&lab.local).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".sixstack-part") || n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn transfers_text_and_commands() {
    let lab = ScpLab::new("scp-xfer", true);
    let d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    transfers(&lab, &lab.header(false), "SFTP", "s");
    // Legacy scp, with the daemon reached over IPv6.
    transfers(&lab, &lab.header(true), "SCP", "l");

    // A leftover temporary file longer than the new upload (from another file) is not
    // resumed from: the upload starts over and is exact.
    let leftover = lab.sshd.home.join(".short.bin.sixstack-part");
    lab.sshd.put(".short.bin.sixstack-part", &pattern(5000, 1));
    std::fs::write(lab.local.join("short.bin"), pattern(3000, 2)).unwrap();
    let r = lab.scp(
        &format!("{}INPUT short.bin\nSTOR short.bin\n", lab.header(false)),
        false,
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(lab.sshd.get("short.bin").unwrap(), pattern(3000, 2));
    assert!(!leftover.exists());

    // TYPE A: local CR LF and LF lines become the remote host's LF (or CR LF with EOL
    // CRLF); EBCDIC 037 files become Latin-1 text and come back as they were.
    std::fs::write(lab.local.join("dos.txt"), b"one\r\ntwo\nthree\r\n").unwrap();
    let ebcdic: Vec<u8> = vec![
        0xC8, 0x85, 0x93, 0x93, 0x96, 0x15, 0xE6, 0x96, 0x99, 0x93, 0x84, 0x15,
    ];
    std::fs::write(lab.local.join("e.txt"), &ebcdic).unwrap();
    let script = format!(
        "{}TYPE A\nINPUT dos.txt\nSTOR unix.txt\nEOL CRLF\nINPUT dos.txt\nSTOR win.txt\n\
         EOL LF\nOUTPUT dos.back\nRETR win.txt\nTYPE A 037\nINPUT e.txt\nSTOR latin.txt\n\
         OUTPUT e.back\nRETR latin.txt\nTYPE I\nOUTPUT latin.raw\nRETR latin.txt\nQUIT\n",
        lab.header(false)
    );
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(lab.sshd.get("unix.txt").unwrap(), b"one\ntwo\nthree\n");
    assert_eq!(lab.sshd.get("win.txt").unwrap(), b"one\r\ntwo\r\nthree\r\n");
    assert_eq!(
        std::fs::read(lab.local.join("dos.back")).unwrap(),
        b"one\ntwo\nthree\n"
    );
    assert_eq!(lab.sshd.get("latin.txt").unwrap(), b"Hello\nWorld\n");
    assert_eq!(std::fs::read(lab.local.join("e.back")).unwrap(), ebcdic);
    assert_eq!(
        std::fs::read(lab.local.join("latin.raw")).unwrap(),
        b"Hello\nWorld\n"
    );

    // EXEC: output and status come back; a failing command fails its step.
    let script = format!(
        "{}ON ERROR CONTINUE\nEXEC printf 'out %s\\n' \"$(id -un)\"; printf 'oops\\n' >&2; exit 3\n\
         OUTPUT listing.txt\nEXEC ls -1 s2.bin s3.bin\nEXEC true\nQUIT\n",
        lab.header(false)
    );
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains(&format!("out {USER}\n")), "{}", r.out);
    assert!(r.out.contains("oops\n"), "{}", r.out);
    assert!(
        r.out.contains("FAILED: the command exited with status 3"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("line 7: EXEC true: exit status 0"),
        "{}",
        r.out
    );
    assert_eq!(
        std::fs::read_to_string(lab.local.join("listing.txt")).unwrap(),
        "s2.bin\ns3.bin\n"
    );

    // The transfer log names the appliance, the account, the file, bytes and result.
    let log = d.output();
    assert!(
        log.contains(&format!("appliance=branch-1 peer={}", lab.g.lab.stack4())),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "op=STOR target={USER}@{}:22 file=\"s4.bin\" protocol=sftp bytes={} ",
            lab.sshd.addr4, SIZES[4]
        )),
        "{log}"
    );
    assert!(log.contains("result=ok exit=3"), "{log}");
}

#[test]
fn a_host_without_sftp_gets_legacy_scp() {
    let lab = ScpLab::new("scp-legacy", false);
    let _d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let data = pattern(700_001, 9);
    std::fs::write(lab.local.join("a.bin"), &data).unwrap();
    let script = format!(
        "{}INPUT a.bin\nSTOR a.bin\nOUTPUT a.back\nRETR a.bin\nPROTOCOL SFTP\nOUTPUT x\nRETR a.bin\n",
        lab.header(false)
    );
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("STOR a.bin: 700001 bytes over scp"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("RETR a.bin: 700001 bytes over scp"),
        "{}",
        r.out
    );
    assert!(r.out.contains("has no SFTP subsystem"), "{}", r.out);
    assert_eq!(lab.sshd.get("a.bin").unwrap(), data);
    assert_eq!(std::fs::read(lab.local.join("a.back")).unwrap(), data);
}

#[test]
fn refusals_are_clear_and_change_nothing() {
    let lab = ScpLab::new("scp-refuse", true);
    let _good = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let _unknown = lab.start_daemon(&lab.sshd.empty_known_hosts, PORT + 1);
    let _changed = lab.start_daemon(&lab.sshd.wrong_known_hosts, PORT + 2);
    std::fs::write(lab.local.join("f"), b"data").unwrap();
    let daemon = |port: u16| format!("DAEMON {}:{port}\n", lab.g.lab.peer4());
    let stor = "INPUT f\nSTOR refused.txt\n";
    let cases = [
        (
            format!("{}HOST {PW_USER}@{}\n{stor}", daemon(PORT), lab.sshd.addr4),
            false,
            "(AuthRefused)",
            "offers only password authentication",
        ),
        (
            format!("{}HOST {USER}@{}\n{stor}", daemon(PORT + 1), lab.sshd.addr4),
            false,
            "(HostKeyUnknown)",
            "host key is not in scpd's known_hosts",
        ),
        (
            format!("{}HOST {USER}@{}\n{stor}", daemon(PORT + 2), lab.sshd.addr4),
            false,
            "(HostKeyChanged)",
            "host key differs from the one in scpd's known_hosts",
        ),
        (
            format!("{}HOST {USER}@{}\n{stor}", daemon(PORT), lab.sshd.addr4),
            true,
            "(NotAllowed)",
            "certificate (O=sixstack lab, CN=rogue-appliance",
        ),
        (
            format!("{}HOST root@{}\n{stor}", daemon(PORT), lab.sshd.addr4),
            false,
            "(NotAllowed)",
            "may not use root@",
        ),
        (
            format!(
                "{}HOST {USER}@{}\nOUTPUT g\nRETR no-such-file\n",
                daemon(PORT),
                lab.sshd.addr4
            ),
            false,
            "(NoSuchFile)",
            "no-such-file",
        ),
        (
            format!(
                "{}HOST {USER}@{}\nEXEC true\n",
                daemon(PORT + 1),
                lab.sshd.addr4
            ),
            false,
            "(HostKeyUnknown)",
            "EXEC true",
        ),
    ];
    for (script, rogue, kind, words) in cases {
        let r = lab.scp(&script, rogue);
        assert_eq!(r.code, 1, "{script}\n{}", r.out);
        assert!(r.out.contains(kind), "{script}\n{}", r.out);
        assert!(r.out.contains(words), "{script}\n{}", r.out);
        assert!(lab.sshd.get("refused.txt").is_none());
        assert!(!lab.local.join("g").exists());
    }
    // An appliance that speaks nonsense inside TLS (openssl as the client) is told so and
    // cut off; the daemon goes on serving.
    let pki = lab.pki();
    let to = format!("{}:{PORT}", lab.g.lab.peer4());
    let out = common::in_ns(&lab.g.lab.app_ns.clone(), {
        let pki = pki.clone();
        move || {
            let mut c = Command::new("openssl")
                .args(["s_client", "-quiet", "-connect", &to])
                .arg("-CAfile")
                .arg(pki.join("ca.pem"))
                .arg("-cert")
                .arg(pki.join("appliance.pem"))
                .arg("-key")
                .arg(pki.join("appliance.key"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            let mut w = c.stdin.take().unwrap();
            // A Request whose payload is not JSON, then an unknown frame kind.
            w.write_all(b"\x02\x00\x00\x00\x05hello").unwrap();
            std::thread::sleep(Duration::from_millis(500));
            let _ = w.write_all(b"\xff\x00\x00\x00\x00");
            std::thread::sleep(Duration::from_millis(500));
            drop(w);
            let out = c.wait_with_output().unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    });
    assert!(out.contains("\"appliance\":\"branch-1\""), "{out}");
    assert!(out.contains("\"kind\":\"bad_request\""), "{out}");
    let r = lab.scp(
        &format!("{}INPUT f\nSTOR after-nonsense.txt\n", lab.header(false)),
        false,
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(lab.sshd.get("after-nonsense.txt").unwrap(), b"data");

    // A daemon whose certificate does not lead to the appliance's CA is refused.
    std::fs::write(
        lab.dir.0.join("other-ca.pem"),
        sixstack_tls::selfsigned::LabCa::new("other")
            .unwrap()
            .cert_pem,
    )
    .unwrap();
    let r = lab.scp_with(
        &format!("{}INPUT f\nSTOR x\n", lab.header(false)),
        false,
        &["--ca", lab.dir.0.join("other-ca.pem").to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("TLS handshake with scpd"), "{}", r.out);
    assert!(r.out.contains("UnknownIssuer"), "{}", r.out);

    // The daemon's configuration is checked before it starts: a good one passes, a broken
    // one names its line.
    let cfg = lab.daemon_config(&lab.sshd.known_hosts, PORT + 3);
    let ok = common::clients::run(
        Command::new(BIN)
            .args(["scpd", "--check", "--config"])
            .arg(&cfg),
    );
    assert_eq!(ok.code, 0, "{}", ok.out);
    assert!(
        ok.out.contains("ok (1 appliance(s) on the allow-list)"),
        "{}",
        ok.out
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("common_name = \"appliance-1\"\n", "")).unwrap();
    let bad = common::clients::run(
        Command::new(BIN)
            .args(["scpd", "--check", "--config"])
            .arg(&cfg),
    );
    assert_ne!(bad.code, 0);
    assert!(
        bad.out
            .contains(":9:1: appliance \"branch-1\": needs common_name or fingerprint"),
        "{}",
        bad.out
    );

    // A script that does not parse runs nothing.
    let r = lab.scp(
        &format!("{}INPUT f\nSTOR x\nFROB\n", lab.header(false)),
        false,
    );
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(r.out.contains("line 5: unknown command"), "{}", r.out);
    assert!(lab.sshd.get("x").is_none());
}

/// Regular files under `root` modified since `since`, skipping `skip`.
fn recent_files(root: &Path, since: SystemTime, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if skip.iter().any(|s| p.starts_with(s)) {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            recent_files(&p, since, skip, out);
        } else if m.is_file() && m.modified().is_ok_and(|t| t >= since) {
            out.push(p);
        }
    }
}

#[test]
fn the_daemon_keeps_no_trace_of_the_data() {
    let lab = ScpLab::new("scp-trace", true);
    let d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let since = SystemTime::now() - Duration::from_secs(1);
    // A marker no other file holds, all through the data.
    let marker = format!(
        "sixstack-trace-{:x}-{}",
        std::process::id(),
        since
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let data: Vec<u8> = marker.repeat(200_000).into_bytes();
    std::fs::write(lab.local.join("m.txt"), &data).unwrap();
    let script = format!(
        "{}INPUT m.txt\nSTOR m.txt\nOUTPUT m.back\nRETR m.txt\nPROTOCOL SCP\nINPUT m.txt\nSTOR m2.txt\n\
         OUTPUT m2.back\nRETR m2.txt\nEXEC cat m.txt | head -c 100000\nQUIT\n",
        lab.header(false)
    );
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 0, "{}", &r.out[..r.out.len().min(2000)]);
    assert_eq!(lab.sshd.get("m2.txt").unwrap(), data);
    // Everywhere the daemon (root, in /tmp-like places, its own directory) could write,
    // except the appliance's and the SSH host's own directories, which hold the data by
    // design: no recent file holds the marker.
    let skip = vec![lab.dir.0.clone(), lab.sshd.home.clone()];
    let mut files = Vec::new();
    for root in [
        "/tmp", "/var/tmp", "/root", "/run", "/dev/shm", "/home", "/var/log", "/var/lib",
    ] {
        recent_files(Path::new(root), since, &skip, &mut files);
    }
    let cwd = lab.dir.0.join(format!("scpd-{PORT}-cwd"));
    recent_files(&cwd, since, &[], &mut files);
    let needle = marker.as_bytes();
    let holding: Vec<_> = files
        .iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
        .collect();
    assert!(
        holding.is_empty(),
        "the data is on the daemon's disk: {holding:?}"
    );
    assert!(
        std::fs::read_dir(&cwd).unwrap().next().is_none(),
        "scpd wrote into its directory"
    );
    // Nor does any file the daemon holds open.
    for fd in std::fs::read_dir(format!("/proc/{}/fd", d.pid))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            assert!(
                !target.starts_with("/tmp") || target.starts_with(&lab.dir.0),
                "{target:?}"
            );
        }
    }
}

/// Runs `sixstack scp` in the background.
fn spawn_scp(lab: &ScpLab, script: &str) -> std::process::Child {
    let f = lab.dir.0.join("bg-script.txt");
    std::fs::write(&f, script).unwrap();
    let p = lab.pki();
    Command::new(BIN)
        .arg("scp")
        .arg(&f)
        .arg("--config")
        .arg(&lab.link)
        .arg("--ca")
        .arg(p.join("ca.pem"))
        .arg("--cert")
        .arg(p.join("appliance.pem"))
        .arg("--key")
        .arg(p.join("appliance.key"))
        .args(["--no-progress", "--timeout", "30", "--retries", "1"])
        .current_dir(&lab.local)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_size(p: &Path, at_least: u64, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::metadata(p).is_ok_and(|m| m.len() >= at_least) {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the transfer ended first"
        );
        assert!(Instant::now() < deadline, "{} never grew", p.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn finish(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_daemon_killed_mid_transfer_leaves_no_complete_looking_file() {
    let lab = ScpLab::new("scp-kill", true);
    let data = pattern(160 * 1024 * 1024, 77);
    std::fs::write(lab.local.join("big.bin"), &data).unwrap();
    let part = lab.sshd.home.join(".big.bin.sixstack-part");

    // Upload: killed once the remote temporary file holds 4 MiB.
    let mut d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let script = format!("{}INPUT big.bin\nSTOR big.bin\nQUIT\n", lab.header(false));
    let mut c = spawn_scp(&lab, &script);
    wait_for_size(&part, 4 << 20, &mut c);
    d.kill();
    let (code, out) = finish(c);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 4: STOR big.bin: FAILED"), "{out}");
    assert!(out.contains("the connection to scpd broke"), "{out}");
    assert!(
        out.contains("tried again 1 time(s): cannot connect to scpd"),
        "{out}"
    );
    assert!(
        lab.sshd.get("big.bin").is_none(),
        "a partial upload under the final name"
    );
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept < data.len() as u64, "{kept}");

    // A new daemon: the upload resumes where the remote file ends and completes exactly.
    let mut d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains(", resumed at "), "{}", r.out);
    assert!(
        lab.sshd.get("big.bin").unwrap() == data,
        "resumed upload differs"
    );
    assert!(!part.exists());

    // Download: killed once the local .part holds 4 MiB; the final name never appears.
    let script = format!("{}OUTPUT got.bin\nRETR big.bin\nQUIT\n", lab.header(false));
    let local_part = lab.local.join("got.bin.part");
    let mut c = spawn_scp(&lab, &script);
    wait_for_size(&local_part, 4 << 20, &mut c);
    d.kill();
    let (code, out) = finish(c);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("RETR big.bin: FAILED"), "{out}");
    assert!(!lab.local.join("got.bin").exists());
    let _d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains(", resumed at "), "{}", r.out);
    assert!(std::fs::read(lab.local.join("got.bin")).unwrap() == data);
    assert!(!local_part.exists());
}

/// Writes `mib` MiB of patterned bytes (each MiB its own pattern) to `p`.
fn write_big(p: &Path, mib: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
    for i in 0..mib {
        f.write_all(&pattern(1 << 20, i as u64 + 1000)).unwrap();
    }
    f.flush().unwrap();
}

/// Whether two files hold the same bytes (compared a MiB at a time).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = fa.read(&mut ba).unwrap();
        let mut nb = 0;
        while nb < na {
            let n = fb.read(&mut bb[nb..na]).unwrap();
            if n == 0 {
                return false;
            }
            nb += n;
        }
        if na == 0 {
            return fb.read(&mut bb).unwrap() == 0;
        }
        if ba[..na] != bb[..na] {
            return false;
        }
    }
}

#[test]
fn one_gibibyte_both_ways() {
    let lab = ScpLab::new("scp-gib", true);
    let _d = lab.start_daemon(&lab.sshd.known_hosts, PORT);
    let src = lab.local.join("gib.bin");
    write_big(&src, 1024);
    let started = Instant::now();
    let script = format!(
        "{}INPUT gib.bin\nSTOR gib.bin\nOUTPUT gib.back\nRETR gib.bin\nQUIT\n",
        lab.header(false)
    );
    let r = lab.scp(&script, false);
    assert_eq!(r.code, 0, "{}", r.out);
    println!(
        "1 GiB up and down in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        r.out.contains("STOR gib.bin: 1073741824 bytes over sftp"),
        "{}",
        r.out
    );
    assert!(
        same_file(&src, &lab.sshd.home.join("gib.bin")),
        "uploaded copy differs"
    );
    assert!(
        same_file(&src, &lab.local.join("gib.back")),
        "downloaded copy differs"
    );
}
