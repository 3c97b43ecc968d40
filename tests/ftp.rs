//! The FTP server on the stack against real clients in the peer namespace: curl (EPSV,
//! PASV, active PORT/EPRT; IPv4 and IPv6) and Python's ftplib, byte for byte, with the
//! standard security method; and the refusals: a wrong password, paths and symbolic links
//! that lead out of the home, FTP bounce.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;
use std::path::PathBuf;

use common::*;

struct Site {
    dir: PathBuf,
    home: PathBuf,
    config: String,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn site(lab: &sixstack::lab::Lab, tag: &str) -> Site {
    site_in(&std::env::temp_dir(), lab, tag)
}

/// A site whose files live under `base` (`/dev/shm` for the big transfers: memory, not disk).
fn site_in(base: &std::path::Path, lab: &sixstack::lab::Lab, tag: &str) -> Site {
    let dir = base.join(format!("sixstack-ftp-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let home = dir.join("anna");
    std::fs::create_dir_all(home.join("pub")).unwrap();
    std::fs::write(dir.join("secret.txt"), b"outside the home").unwrap();
    std::os::unix::fs::symlink("../secret.txt", home.join("link-out")).unwrap();
    let hash = sixstack_ftp::users::hash_password("anna's password").unwrap();
    let users = dir.join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"anna\"\npassword = \"{hash}\"\nhome = \"{}\"\naccess = \"read-write\"\n\n\
             [[user.path]]\npath = \"/pub\"\naccess = \"read-only\"\n",
            home.display()
        ),
    )
    .unwrap();
    let mut config = sixstack::lab_config(lab, None);
    config.push_str(&format!(
        "\n[ftp]\nport = 2121\nusers = \"{}\"\nidle_timeout_s = 30\ndata_timeout_s = 10\n\
         xferlog = \"{}\"\n",
        users.display(),
        dir.join("xferlog").display()
    ));
    Site { dir, home, config }
}

/// The appliance with `config` on the lab, once its FTP port answers: the running
/// appliance, the peer namespace and the stack's IPv4 address.
fn serve(g: &LabGuard, config: &str) -> (sixstack::app::Running, String, std::net::Ipv4Addr) {
    let app = start_appliance_with(config, |_, _| {});
    let (ns, stack) = (g.lab.peer_ns.clone(), g.lab.stack4());
    let to = std::net::SocketAddr::new(stack.into(), 2121);
    drop(in_ns(&ns, move || connect_retry(to)));
    (app, ns, stack)
}

/// The transfer log's lines once it holds at least `n` (its writer thread appends a moment
/// after each transfer), each split into its fields.
fn xferlog_lines(s: &Site, n: usize) -> Vec<Vec<String>> {
    let path = s.dir.join("xferlog");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// curl (with `args`) uploads the site's `payload.bin` to `name` at `base` (a URL ending in
/// `/`), then downloads it back: both succeed, and the server's copy and the download are
/// byte for byte `data`.
fn curl_round_trip(s: &Site, ns: &str, args: &[&str], base: &str, name: &str, data: &[u8]) {
    let local = s.dir.join("payload.bin").to_str().unwrap().to_string();
    let back = s.dir.join(format!("back-{name}"));
    let back_s = back.to_str().unwrap().to_string();
    let u = format!("{base}{name}");
    for (flag, path) in [("-T", &local), ("-o", &back_s)] {
        let mut cmd = args.to_vec();
        cmd.extend([flag, path.as_str(), u.as_str()]);
        let (ok, out) = ns_exec(ns, &cmd);
        assert!(ok, "{name} {flag}: {out}");
    }
    assert!(
        std::fs::read(s.home.join(name)).unwrap() == data,
        "{name}: stored bytes differ"
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "{name}: bytes back differ"
    );
}

/// Runs a Python `script` in the namespace `ns`; it must succeed and print every one of
/// `wants`. Its output, for further checks.
fn python_says(ns: &str, what: &str, script: &str, wants: &[&str]) -> String {
    let (ok, out) = ns_exec(ns, &["python3", "-c", script]);
    assert!(ok, "{what}: {out}");
    for want in wants {
        assert!(out.contains(want), "{what}: missing {want:?} in:\n{out}");
    }
    out
}

fn url(ip: IpAddr, path: &str) -> String {
    match ip {
        IpAddr::V4(a) => format!("ftp://anna:anna%27s%20password@{a}:2121/{path}"),
        IpAddr::V6(a) => format!("ftp://anna:anna%27s%20password@[{a}]:2121/{path}"),
    }
}

/// curl up and down in every data-connection mode, over IPv4 and IPv6.
#[test]
fn curl_stores_and_retrieves_byte_exact() {
    let g = LabGuard::new(false);
    let s = site(&g.lab, "curl");
    let (app, ns, _) = serve(&g, &s.config);
    let local = s.dir.join("payload.bin");
    let data = pattern(3 << 20, 71);
    std::fs::write(&local, &data).unwrap();
    let modes: [(&str, &[&str]); 4] = [
        ("epsv", &[]),
        ("pasv", &["--disable-epsv"]),
        ("port", &["-P", "-", "--disable-eprt"]),
        ("eprt", &["-P", "-"]),
    ];
    for (ip, tag) in [
        (IpAddr::from(g.lab.stack4()), "v4"),
        (IpAddr::from(g.lab.stack6()), "v6"),
    ] {
        for (mode, extra) in modes {
            if ip.is_ipv6() && (mode == "pasv" || mode == "port") {
                continue;
            }
            let name = format!("up-{tag}-{mode}.bin");
            let mut args = vec!["curl", "-sS", "--max-time", "30", "-g"];
            args.extend_from_slice(extra);
            curl_round_trip(&s, &ns, &args, &url(ip, ""), &name, &data);
        }
    }
    // A wrong password: curl's "login denied" (67), nothing written.
    let bad = format!("ftp://anna:wrong@{}:2121/x.bin", g.lab.stack4());
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "curl",
            "-sS",
            "--max-time",
            "20",
            "-T",
        ])
        .arg(&local)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(67), "{out:?}");
    assert!(!s.home.join("x.bin").exists());
    // The transfer log: one complete binary line per transfer, in and out, with the client,
    // the user and the byte count (18 fields: the xferlog format).
    let lines = xferlog_lines(&s, 12);
    assert_eq!(lines.len(), 12, "{lines:?}");
    let peer4 = g.lab.peer4().to_string();
    for l in &lines {
        assert_eq!(l.len(), 18, "{l:?}");
        assert_eq!(l[7], (3u64 << 20).to_string(), "{l:?}");
        assert_eq!((&l[9][..], &l[10][..]), ("b", "_"), "{l:?}");
        assert_eq!(
            (&l[12][..], &l[13][..], &l[17][..]),
            ("r", "anna", "c"),
            "{l:?}"
        );
    }
    let ups = lines.iter().filter(|l| l[11] == "i").count();
    assert_eq!(ups, 6, "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l[6] == peer4 && l[8] == "/up-v4-epsv.bin"));
    assert!(lines
        .iter()
        .any(|l| l[6].contains(':') && l[8] == "/up-v6-eprt.bin"));
    app.stop().unwrap();
}

/// Python's ftplib through a whole session, and the refusals, over IPv4 and IPv6.
#[test]
fn ftplib_session_and_refusals() {
    logs::capture();
    let g = LabGuard::new(false);
    let s = site(&g.lab, "ftplib");
    std::fs::write(s.home.join("pub/readme.txt"), b"line one\nline two\n").unwrap();
    let (app, ns, _) = serve(&g, &s.config);
    for (stack, bounce) in [
        (IpAddr::from(g.lab.stack4()), "PORT 10,9,9,9,200,1"),
        (IpAddr::from(g.lab.stack6()), "EPRT |2|fd00:9::9|51201|"),
    ] {
        let script = format!(
            r#"
import ftplib, hashlib, io, os
f = ftplib.FTP()
f.connect("{stack}", 2121, timeout=20)
try:
    f.login("anna", "wrong")
    print("WRONG-PASSWORD-ACCEPTED")
except ftplib.error_perm as e:
    print("denied", str(e)[:3])
f.login("anna", "anna's password")
print("pwd", f.pwd())
f.mkd("work")
f.cwd("work")
data = os.urandom(1 << 20)
f.storbinary("STOR blob", io.BytesIO(data))
print("size", f.size("blob") == len(data))
f.rename("blob", "blob2")
print("nlst", f.nlst())
got = io.BytesIO()
f.retrbinary("RETR blob2", got.write)
print("sha", hashlib.sha256(got.getvalue()).hexdigest() == hashlib.sha256(data).hexdigest())
lines = []
f.retrlines("RETR /pub/readme.txt", lines.append)
print("ascii", lines)
facts = list(f.mlsd("/pub"))
print("mlsd", [(n, x["type"], x["size"]) for n, x in facts])
for bad in ["RETR ../../secret.txt", "RETR /link-out", "RETR ../../../../etc/passwd"]:
    try:
        f.retrbinary(bad, lambda b: None)
        print("ESCAPED", bad)
    except ftplib.error_perm as e:
        print("refused", str(e)[:3])
try:
    f.storbinary("STOR /pub/new.txt", io.BytesIO(b"x"))
    print("READ-ONLY-WRITTEN")
except ftplib.error_perm as e:
    print("read-only", str(e)[:3])
try:
    f.sendcmd("{bounce}")
    print("BOUNCE-ACCEPTED")
except ftplib.error_perm as e:
    print("bounce", str(e)[:3])
f.delete("blob2")
f.cwd("/")
f.rmd("work")
print("list", sorted(f.nlst()))
f.quit()
"#
        );
        let out = python_says(
            &ns,
            &stack.to_string(),
            &script,
            &[
                "denied 530",
                "pwd /",
                "size True",
                "nlst ['blob2']",
                "sha True",
                "ascii ['line one', 'line two']",
                "mlsd [('readme.txt', 'file', '18')]",
                "read-only 550",
                "bounce 501",
                "list ['link-out', 'pub']",
            ],
        );
        assert_eq!(out.matches("refused 550").count(), 3, "{out}");
        assert!(
            !out.contains("ESCAPED") && !out.contains("WRONG-PASSWORD") && !out.contains("WRITTEN")
        );
        assert!(!s.home.join("pub/new.txt").exists());
    }
    // Each refusal is in the log with the client and the user.
    let peer4 = g.lab.peer4().to_string();
    assert!(logs::logged(&["login for anna from", &peer4, "refused"]));
    assert!(logs::logged(&[&peer4, "(anna): 501"]), "the bounce PORT");
    let peer6 = g.lab.peer6().to_string();
    assert!(logs::logged(&[&peer6, "(anna): 501"]), "the bounce EPRT");
    let escapes = logs::matching(&["(anna): 550"]).len();
    assert!(
        escapes >= 8,
        "escapes and the read-only upload, both families: {escapes}"
    );
    // No temporary upload file is left anywhere in the home.
    let leftovers: Vec<_> = std::fs::read_dir(&s.home)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".part-"))
        .collect();
    assert!(leftovers.is_empty());
    app.stop().unwrap();
}

/// FTPS: explicit (AUTH TLS) and implicit with curl, FTP_TLS with PROT P in Python, byte for
/// byte; the data connections resume the control connection's TLS session; a user who
/// must use TLS is refused in clear text and without PROT P.
#[test]
fn ftps_explicit_and_implicit() {
    logs::capture();
    let g = LabGuard::new(false);
    let mut s = site(&g.lab, "ftps");
    let hash = sixstack_ftp::users::hash_password("ben's password").unwrap();
    let users = s.dir.join("users.toml");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&format!(
        "\n[[user]]\nname = \"ben\"\npassword = \"{hash}\"\nhome = \"{}\"\naccess = \"read-write\"\n\
         tls = \"control-and-data\"\n",
        s.home.display()
    ));
    std::fs::write(&users, text).unwrap();
    s.config
        .push_str("implicit_port = 2990\nallow_ccc = true\n");
    let (app, ns, stack) = serve(&g, &s.config);
    let ca = format!("{}/ca.pem", sixstack::LAB_TLS_DIR);
    let local = s.dir.join("payload.bin");
    let data = pattern(2 << 20, 81);
    std::fs::write(&local, &data).unwrap();
    // Explicit (AUTH TLS) and implicit FTPS with curl, over IPv4 and IPv6.
    let hosts = [
        (stack.to_string(), ""),
        (format!("[{}]", g.lab.stack6()), "-v6"),
    ];
    for (host, tag) in &hosts {
        for (scheme, port, extra) in [("ftp", 2121, "--ssl-reqd"), ("ftps", 2990, "-v")] {
            let resolve = format!("sixstack.lab:{port}:{host}");
            let base = format!("{scheme}://anna:anna%27s%20password@sixstack.lab:{port}/");
            let args = [
                "curl",
                "-sS",
                "--max-time",
                "30",
                "--cacert",
                &ca,
                "--resolve",
                &resolve,
                extra,
            ];
            curl_round_trip(
                &s,
                &ns,
                &args,
                &base,
                &format!("tls-{scheme}{tag}.bin"),
                &data,
            );
        }
    }
    // CCC (allowed here): curl goes back to a clear control connection after login.
    // Active mode (curl answers the server's close_notify) still moves the file over a
    // resumed PROT P data connection; in passive mode curl sends no close_notify, and
    // OpenSSL then no longer offers the session, so that run asks only for the file's size
    // (no data connection). ben (TLS required) is refused.
    let resolve = format!("sixstack.lab:2121:{stack}");
    let u = "ftp://anna:anna%27s%20password@sixstack.lab:2121/tls-ftp.bin";
    for (mode, ask) in [("active", "-o"), ("passive", "-I")] {
        let back = s.dir.join(format!("back-ccc-{mode}.bin"));
        let back_s = back.to_str().unwrap().to_string();
        let mut args = vec![
            "curl",
            "-sS",
            "-v",
            "--max-time",
            "30",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "--ssl-reqd",
            "--ftp-ssl-ccc",
            "--ftp-ssl-ccc-mode",
            mode,
            ask,
        ];
        if ask == "-o" {
            args.push(&back_s);
        }
        args.push(u);
        let (ok, out) = ns_exec(&ns, &args);
        assert!(ok, "CCC {mode}: {out}");
        assert!(out.contains("> CCC\n") || out.contains("> CCC\r"), "{out}");
        assert!(
            out.contains("< 200 control connection in clear text"),
            "{out}"
        );
        if ask == "-o" {
            assert!(
                std::fs::read(&back).unwrap() == data,
                "CCC {mode}: bytes differ"
            );
        } else {
            assert!(out.contains("< 213 2097152"), "CCC {mode}: {out}");
        }
    }
    let ben = "ftp://ben:ben%27s%20password@sixstack.lab:2121/tls-ftp.bin";
    let (ok, out) = ns_exec(
        &ns,
        &[
            "curl",
            "-sS",
            "-v",
            "--max-time",
            "30",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "--ssl-reqd",
            "--ftp-ssl-ccc",
            "-o",
            "/dev/null",
            ben,
        ],
    );
    // curl goes on under TLS after the refusal.
    assert!(
        ok && out.contains("< 534 this account must keep the control connection protected"),
        "ben's CCC: {out}"
    );
    // Python's FTP_TLS over both address families (EPSV on IPv6).
    for stack in [IpAddr::from(stack), IpAddr::from(g.lab.stack6())] {
        let script = format!(
            r#"
import ftplib, hashlib, io, os, ssl
ctx = ssl.create_default_context(cafile="{ca}")
ctx.check_hostname = False

class Resuming(ftplib.FTP_TLS):
    # ftplib does not hand the control connection's TLS session to the data connection;
    # the server requires it, so this client does.
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = getattr(self.sock, "session", None) or self.saved
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size

plain_tls = ftplib.FTP_TLS(context=ctx)
plain_tls.connect("{stack}", 2121, timeout=20)
plain_tls.login("ben", "ben's password")
plain_tls.prot_p()
try:
    plain_tls.retrlines("LIST", lambda l: None)
    print("UNRESUMED-DATA-ALLOWED")
except (ssl.SSLError, OSError, ftplib.Error) as e:
    print("unresumed refused")
f = Resuming(context=ctx)
f.connect("{stack}", 2121, timeout=20)
f.login("ben", "ben's password")
try:
    f.retrlines("LIST", lambda l: None)
    print("CLEAR-DATA-ALLOWED")
except ftplib.error_perm as e:
    print("prot-c", str(e)[:3])
f.prot_p()
data = os.urandom(1 << 20)
f.storbinary("STOR py.bin", io.BytesIO(data))
got = io.BytesIO()
f.retrbinary("RETR py.bin", got.write)
print("sha", hashlib.sha256(got.getvalue()).digest() == hashlib.sha256(data).digest())
# An upload whose TLS ends without close_notify (the socket just closes), as some
# clients do: the server takes the end of stream as the end of the file.
conn = f.transfercmd("STOR noclose.bin")
conn.sendall(data)
conn.close()
print("noclose", f.voidresp()[:3])
f.quit()
c = Resuming(context=ctx)
c.connect("{stack}", 2121, timeout=20)
c.login("anna", "anna's password")
c.prot_p()
# After CCC the control socket is plain: the data connections resume the session it had.
c.saved = c.sock.session
c.ccc()
got = io.BytesIO()
c.retrbinary("RETR py.bin", got.write)
print("ccc sha", hashlib.sha256(got.getvalue()).digest() == hashlib.sha256(data).digest())
print("ccc pwd", c.pwd())
c.quit()
plain = ftplib.FTP()
plain.connect("{stack}", 2121, timeout=20)
try:
    plain.login("ben", "ben's password")
    print("CLEAR-LOGIN-ALLOWED")
except ftplib.error_perm as e:
    print("clear", str(e)[:3])
"#
        );
        let out = python_says(
            &ns,
            "python",
            &script,
            &[
                "unresumed refused",
                "prot-c 521",
                "sha True",
                "clear 534",
                "ccc sha True",
                "ccc pwd /",
                "noclose 226",
            ],
        );
        assert!(!out.contains("ALLOWED"), "{out}");
        assert_eq!(
            std::fs::read(s.home.join("noclose.bin")).unwrap().len(),
            1 << 20
        );
    }
    assert!(
        logs::logged(&["(ben): 521"]),
        "PROT P required, data in clear"
    );
    assert!(logs::logged(&[
        "did not resume the control connection's TLS session"
    ]));
    assert!(logs::logged(&["(not logged in): 534"]), "ben in clear text");
    assert!(logs::logged(&[
        "/noclose.bin from",
        "ended without TLS close_notify"
    ]));
    app.stop().unwrap();
}

/// Implicit FTPS by way of a proxy listener's TLS wrapping: the listener on 2991 ends TLS
/// and hands the control connection (PROXY v2 header: the client, and that it spoke TLS)
/// to the FTP server's proxied port inside the appliance; PROT P data connections come
/// straight to the passive ports and resume the session begun at the listener. curl over
/// IPv4 and IPv6, byte for byte; the transfer log names the real client; a client that
/// connects to the proxied port itself is refused.
#[test]
fn implicit_ftps_through_a_proxy_listener() {
    let g = LabGuard::new(false);
    let mut s = site(&g.lab, "wrapped");
    let stack4 = g.lab.stack4();
    s.config.push_str("proxied_port = 2122\n");
    s.config.push_str(&format!(
        "\n[[proxy]]\nname = \"ftps\"\nport = 2991\ntls = true\n\n\
         [[proxy.backend]]\naddress = \"{stack4}:2122\"\nproxy_protocol = \"v2\"\n"
    ));
    let (app, ns, _) = serve(&g, &s.config);
    let ca = format!("{}/ca.pem", sixstack::LAB_TLS_DIR);
    let local = s.dir.join("payload.bin");
    let data = pattern(3 << 20, 91);
    std::fs::write(&local, &data).unwrap();
    for (ip, tag) in [
        (IpAddr::from(stack4), "v4"),
        (IpAddr::from(g.lab.stack6()), "v6"),
    ] {
        let host = match ip {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let resolve = format!("sixstack.lab:2991:{host}");
        let base = "ftps://anna:anna%27s%20password@sixstack.lab:2991/";
        let args = [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
        ];
        curl_round_trip(&s, &ns, &args, base, &format!("wrapped-{tag}.bin"), &data);
    }
    let lines = xferlog_lines(&s, 4);
    let clients: Vec<_> = lines.iter().map(|l| (l[6].clone(), &l[17][..])).collect();
    let (p4, p6) = (g.lab.peer4().to_string(), g.lab.peer6().to_string());
    assert_eq!(
        clients,
        [(p4.clone(), "c"), (p4, "c"), (p6.clone(), "c"), (p6, "c")],
        "{lines:?}"
    );
    // The proxied port itself believes no one outside the appliance.
    let direct = format!("ftp://anna:anna%27s%20password@{stack4}:2122/wrapped-v4.bin");
    let (ok, out) = ns_exec(
        &ns,
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            &direct,
        ],
    );
    assert!(
        !ok,
        "a direct connection to the proxied port was served: {out}"
    );
    app.stop().unwrap();
}

/// lftp mirrors a tree of 200 files up and back down over AUTH TLS with protected data
/// connections, over IPv4 and over IPv6; every file arrives with the same SHA-256.
#[test]
fn lftp_mirrors_a_tree_both_ways_over_tls() {
    logs::capture();
    use std::collections::BTreeMap;
    let g = LabGuard::new(false);
    let s = site(&g.lab, "lftp");
    let (app, ns, stack) = serve(&g, &s.config);
    let src = s.dir.join("tree");
    for i in 0..200u64 {
        let dir = src.join(format!("d{}/e{}", i % 7, i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let len = (i * 7919 % 200_000) as usize + usize::from(i % 5 == 0) * 300_000;
        std::fs::write(dir.join(format!("f{i}.bin")), pattern(len, i)).unwrap();
    }
    let ca = format!("{}/ca.pem", sixstack::LAB_TLS_DIR);
    for (stack, tag) in [
        (IpAddr::from(stack), "4"),
        (IpAddr::from(g.lab.stack6()), "6"),
    ] {
        let back = s.dir.join(format!("back{tag}"));
        let host = match stack {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let script = format!(
            "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file {ca}; \
         set ssl:check-hostname no; set net:max-retries 1; set net:timeout 20; \
         open -u anna,\"anna's password\" -p 2121 {host}; \
         mkdir up{tag}; mirror -R --parallel=4 {} up{tag}; mirror --parallel=4 up{tag} {}; bye",
            src.display(),
            back.display()
        );
        let (ok, out) = ns_exec(&ns, &["lftp", "-c", &script]);
        assert!(ok, "lftp over {stack}: {out}");
        let digest = |root: &std::path::Path| {
            let mut m = BTreeMap::new();
            let mut stack = vec![root.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        let rel = p.strip_prefix(root).unwrap().to_path_buf();
                        let bytes = std::fs::read(&p).unwrap();
                        m.insert(rel, (bytes.len(), digest_of(&bytes)));
                    }
                }
            }
            m
        };
        let want = digest(&src);
        assert_eq!(want.len(), 200);
        for (what, got) in [
            ("uploaded", digest(&s.home.join(format!("up{tag}")))),
            ("downloaded", digest(&back)),
        ] {
            let differ: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "{} want {} got {:?}",
                        k.display(),
                        v.0,
                        got.get(k).map(|g| g.0)
                    )
                })
                .take(5)
                .collect();
            let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
            assert!(
                differ.is_empty() && extra == 0,
                "{what} over {stack}: tree differs: {differ:?}, {extra} extra\n{out}\n\
                 the server's refusals: {:#?}",
                logs::matching(&["ftp"])
            );
        }
    }
    app.stop().unwrap();
}

/// A SHA-2 digest through the TLS crate's provider (no extra dependency).
fn digest_of(data: &[u8]) -> Vec<u8> {
    let provider = sixstack_tls::provider::provider();
    let hash = provider
        .cipher_suites
        .iter()
        .find_map(|s| match s {
            sixstack_tls::rustls::SupportedCipherSuite::Tls13(t) => Some(t.common.hash_provider),
            _ => None,
        })
        .unwrap();
    let mut h = hash.start();
    h.update(data);
    h.finish().as_ref().to_vec()
}

/// Repeated failed logins lock a user out at that address (the right password is refused
/// too, until the lockout ends); an address with too many connections gets 421.
#[test]
fn lockout_and_connection_limits() {
    logs::capture();
    let g = LabGuard::new(false);
    let mut s = site(&g.lab, "limits");
    s.config
        .push_str("lockout_after = 2\nlockout_s = 3\nfailure_delay_ms = 10\nmax_per_address = 3\n");
    let (app, ns, stack) = serve(&g, &s.config);
    let script = format!(
        r#"
import ftplib, time
def login(pw):
    f = ftplib.FTP()
    f.connect("{stack}", 2121, timeout=20)
    try:
        f.login("anna", pw)
        f.quit()
        return "ok"
    except ftplib.error_perm as e:
        f.close()
        return str(e)[:3]
print("first", login("bad"), login("bad"))
print("locked", login("anna's password"))
time.sleep(3.2)
print("after", login("anna's password"))
held = []
for i in range(3):
    f = ftplib.FTP()
    f.connect("{stack}", 2121, timeout=20)
    held.append(f)
try:
    f = ftplib.FTP()
    f.connect("{stack}", 2121, timeout=20)
    print("FOURTH-ACCEPTED")
except ftplib.error_temp as e:
    print("fourth", str(e)[:3])
for f in held:
    f.close()
time.sleep(0.5)
print("again", login("anna's password"))
"#
    );
    python_says(
        &ns,
        "python",
        &script,
        &[
            "first 530 530",
            "locked 530",
            "after ok",
            "fourth 421",
            "again ok",
        ],
    );
    assert!(logs::logged(&[
        "anna from",
        "locked out after repeated failed logins"
    ]));
    assert!(logs::logged(&[
        "login for anna from",
        "refused: locked out"
    ]));
    assert!(logs::logged(&["turned away"]), "the fourth connection");
    app.stop().unwrap();
}

/// REST: curl resumes an interrupted download (REST + RETR) and an interrupted upload
/// (APPE after SIZE); the results are byte for byte the original.
#[test]
fn interrupted_transfers_resume() {
    let g = LabGuard::new(false);
    let s = site(&g.lab, "rest");
    let (app, ns, stack) = serve(&g, &s.config);
    let data = pattern(5 << 20, 91);
    // Download: the first 1 234 567 bytes are already here.
    std::fs::write(s.home.join("big.bin"), &data).unwrap();
    let part = s.dir.join("big.part");
    std::fs::write(&part, &data[..1_234_567]).unwrap();
    let part_s = part.to_str().unwrap().to_string();
    let u = url(stack.into(), "big.bin");
    let (ok, out) = ns_exec(
        &ns,
        &[
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-C",
            "-",
            "-o",
            &part_s,
            &u,
        ],
    );
    assert!(ok, "{out}");
    assert!(
        std::fs::read(&part).unwrap() == data,
        "resumed download differs"
    );
    // Upload: the server has the first 3 000 000 bytes.
    std::fs::write(s.home.join("up.bin"), &data[..3_000_000]).unwrap();
    let local = s.dir.join("full.bin");
    let local_s = local.to_str().unwrap().to_string();
    std::fs::write(&local, &data).unwrap();
    let u = url(stack.into(), "up.bin");
    let (ok, out) = ns_exec(
        &ns,
        &[
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-C",
            "-",
            "-T",
            &local_s,
            &u,
        ],
    );
    assert!(ok, "{out}");
    assert!(
        std::fs::read(s.home.join("up.bin")).unwrap() == data,
        "resumed upload differs"
    );
    app.stop().unwrap();
}

/// The resource-rules method: the most specific profile decides (UACC, a group's entry, the
/// user's own), every decision audited; denials get 550 and write nothing.
#[test]
fn resource_rules_method() {
    logs::capture();
    let g = LabGuard::new(false);
    let s = site(&g.lab, "rules");
    std::fs::create_dir_all(s.home.join("data/payroll")).unwrap();
    let hash = sixstack_ftp::users::hash_password("anna's password").unwrap();
    let rules = s.dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[user]]\nname = \"anna\"\npassword = \"{hash}\"\nhome = \"{}\"\ngroups = [\"payroll\"]\n\n\
             [[profile]]\npattern = \"/**\"\nuacc = \"read\"\n\n\
             [[profile]]\npattern = \"/data/payroll/**\"\nuacc = \"none\"\n\
             access = [{{ id = \"payroll\", level = \"update\" }}]\n\n\
             [[profile]]\npattern = \"/data/payroll/*.TXT\"\nuacc = \"none\"\n\
             access = [{{ id = \"anna\", level = \"alter\" }}]\n",
            s.home.display()
        ),
    )
    .unwrap();
    let config = s.config.replace(
        &format!("users = \"{}\"", s.dir.join("users.toml").display()),
        &format!(
            "method = \"resource-rules\"\nrules = \"{}\"",
            rules.display()
        ),
    );
    assert!(config.contains("resource-rules"));
    let (app, ns, stack) = serve(&g, &config);
    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
f.connect("{stack}", 2121, timeout=20)
f.login("anna", "anna's password")
def attempt(name, fn):
    try:
        fn()
        print(name, "ok")
    except ftplib.error_perm as e:
        print(name, str(e)[:3])
attempt("stor-pub", lambda: f.storbinary("STOR /pub/x", io.BytesIO(b"x")))
attempt("stor-run", lambda: f.storbinary("STOR /data/payroll/run.dat", io.BytesIO(b"run")))
attempt("dele-run", lambda: f.delete("/data/payroll/run.dat"))
attempt("stor-txt", lambda: f.storbinary("STOR /data/payroll/LIST.TXT", io.BytesIO(b"list")))
attempt("dele-txt", lambda: f.delete("/data/payroll/LIST.TXT"))
attempt("list-pub", lambda: f.nlst("/pub"))
f.quit()
"#
    );
    python_says(
        &ns,
        "python",
        &script,
        &[
            "stor-pub 550",
            "stor-run ok",
            "dele-run 550",
            "stor-txt ok",
            "dele-txt ok",
            "list-pub ok",
        ],
    );
    assert!(!s.home.join("pub/x").exists());
    assert!(s.home.join("data/payroll/run.dat").exists());
    assert!(!s.home.join("data/payroll/LIST.TXT").exists());
    // Every decision is audited; the denials name the deciding profile.
    assert!(logs::logged(&["sixstack_ftp::audit", "/pub/x", "denied"]));
    assert!(logs::logged(&[
        "sixstack_ftp::audit",
        "run.dat Alter: denied"
    ]));
    assert!(logs::logged(&["sixstack_ftp::audit", "granted"]));
    app.stop().unwrap();
}

/// The exit method: a program decides every login and access; its crash or silence is a
/// denial, and a denied upload writes nothing.
#[test]
fn exit_method() {
    logs::capture();
    let g = LabGuard::new(false);
    let s = site(&g.lab, "exit");
    let program = s.dir.join("ftp-exit.py");
    std::fs::write(
        &program,
        format!(
            r#"import json, os, sys
r = json.loads(sys.stdin.readline())
if r["event"] == "login":
    if r["user"] == "crash":
        os.kill(os.getpid(), 9)
    if r["user"] == "slow":
        import time; time.sleep(5)
    ok = r["user"] == "carl" and r["password"] == "carl's password"
    print(json.dumps({{"allow": ok, "home": "{}"}}))
else:
    print(json.dumps({{"allow": r["access"] == "read" or r["path"].startswith("/in/")}}))
"#,
            s.home.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(s.home.join("in")).unwrap();
    let config = s.config.replace(
        &format!("users = \"{}\"", s.dir.join("users.toml").display()),
        &format!(
            "method = \"exit\"\nexit_program = \"/usr/bin/env\"\nexit_args = [\"python3\", \"{}\"]\n\
             exit_timeout_ms = 2000\nfailure_delay_ms = 10",
            program.display()
        ),
    );
    let (app, ns, stack) = serve(&g, &config);
    let script = format!(
        r#"
import ftplib, io
def login(user, pw):
    f = ftplib.FTP()
    f.connect("{stack}", 2121, timeout=20)
    try:
        f.login(user, pw)
        return f
    except ftplib.error_perm as e:
        print(user, str(e)[:3])
        f.close()
login("crash", "x")
login("slow", "x")
login("carl", "wrong")
f = login("carl", "carl's password")
for name, path in [("in", "/in/a.txt"), ("out", "/out.txt")]:
    try:
        f.storbinary("STOR " + path, io.BytesIO(b"data"))
        print(name, "ok")
    except ftplib.error_perm as e:
        print(name, str(e)[:3])
print("list", f.nlst("/in"))
f.quit()
"#
    );
    python_says(
        &ns,
        "python",
        &script,
        &[
            "crash 530",
            "slow 530",
            "carl 530",
            "in ok",
            "out 550",
            "list ['a.txt']",
        ],
    );
    assert!(s.home.join("in/a.txt").exists());
    assert!(!s.home.join("out.txt").exists());
    assert!(
        logs::logged(&["login exit for crash", "denied"]),
        "the crash"
    );
    assert!(
        logs::logged(&["login exit for slow", "denied"]),
        "the timeout"
    );
    assert!(logs::logged(&["(carl): 550"]), "the denied upload");
    app.stop().unwrap();
}

/// Client-certificate sign-on: the lab client certificate's fingerprint signs its user on
/// without a password; without the certificate the same user cannot log in.
#[test]
fn client_certificate_sign_on() {
    let g = LabGuard::new(false);
    let s = site(&g.lab, "cert");
    let dir = sixstack::LAB_TLS_DIR;
    let certs =
        sixstack_tls::material::load_certs(std::path::Path::new(&format!("{dir}/client.pem")))
            .unwrap();
    let fp = sixstack_tls::CertInfo::from_der(&certs[0]).unwrap().sha256;
    let users = s.dir.join("users.toml");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&format!(
        "\n[[user]]\nname = \"robot\"\nhome = \"{}\"\naccess = \"read-write\"\ncertificates = [\"{fp}\"]\n",
        s.home.display()
    ));
    std::fs::write(&users, text).unwrap();
    let (app, ns, stack) = serve(&g, &s.config);
    let local = s.dir.join("robot.bin");
    let local_s = local.to_str().unwrap().to_string();
    std::fs::write(&local, pattern(100_000, 5)).unwrap();
    let resolve = format!("sixstack.lab:2121:{stack}");
    let u = "ftp://robot:anything@sixstack.lab:2121/robot.bin";
    let ca = format!("{dir}/ca.pem");
    let (cert, key) = (format!("{dir}/client.pem"), format!("{dir}/client.key"));
    let base = [
        "curl",
        "-sS",
        "--max-time",
        "20",
        "--ssl-reqd",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
    ];
    let mut with = base.to_vec();
    with.extend(["--cert", &cert, "--key", &key, "-T", &local_s, u]);
    let (ok, out) = ns_exec(&ns, &with);
    assert!(ok, "with the certificate: {out}");
    assert_eq!(
        std::fs::read(s.home.join("robot.bin")).unwrap().len(),
        100_000
    );
    let mut without = base.to_vec();
    without.extend([
        "-T",
        &local_s,
        "ftp://robot:anything@sixstack.lab:2121/again.bin",
    ]);
    let (ok, out) = ns_exec(&ns, &without);
    assert!(!ok && out.contains("530"), "without the certificate: {out}");
    assert!(!s.home.join("again.bin").exists());
    app.stop().unwrap();
}

/// ABOR during a download and during an upload: 426 for the transfer, 226 for ABOR, the
/// session goes on, and an aborted new upload leaves no file.
#[test]
fn abor_during_transfers() {
    let g = LabGuard::new(false);
    let s = site(&g.lab, "abor");
    std::fs::write(s.home.join("big.bin"), pattern(40 << 20, 3)).unwrap();
    let (app, ns, stack) = serve(&g, &s.config);
    let script = format!(
        r#"
import ftplib
f = ftplib.FTP()
f.connect("{stack}", 2121, timeout=20)
f.login("anna", "anna's password")
f.voidcmd("TYPE I")
conn = f.transfercmd("RETR big.bin")
conn.recv(65536)
first = f.abort()
second = f.getmultiline()
conn.close()
print("retr", first[:3], second[:3])
print("pwd", f.pwd())
conn = f.transfercmd("STOR partial.bin")
conn.sendall(b"x" * 100000)
first = f.abort()
second = f.getmultiline()
conn.close()
print("stor", first[:3], second[:3])
print("left", "partial.bin" in f.nlst())
f.quit()
"#
    );
    python_says(
        &ns,
        "python",
        &script,
        &["retr 426 226", "pwd /", "stor 426 226", "left False"],
    );
    assert!(!s.home.join("partial.bin").exists());
    // Both aborted transfers are in the transfer log as incomplete.
    let lines = xferlog_lines(&s, 2);
    let ends: Vec<_> = lines
        .iter()
        .map(|l| (&l[8][..], &l[11][..], &l[17][..]))
        .collect();
    assert_eq!(
        ends,
        [("/big.bin", "o", "i"), ("/partial.bin", "i", "i")],
        "{lines:?}"
    );
    app.stop().unwrap();
}

/// The timeouts: a data connection that is never opened (425), a download the client
/// stops reading and an upload it stops sending (426, nothing stored), and a control
/// connection left idle (421, closed).
#[test]
fn idle_and_data_timeouts() {
    let g = LabGuard::new(false);
    let mut s = site(&g.lab, "timeouts");
    s.config = s
        .config
        .replace("idle_timeout_s = 30", "idle_timeout_s = 2")
        .replace("data_timeout_s = 10", "data_timeout_s = 1");
    std::fs::write(s.home.join("big.bin"), pattern(40 << 20, 5)).unwrap();
    let (app, ns, stack) = serve(&g, &s.config);
    let script = format!(
        r#"
import ftplib, time
f = ftplib.FTP()
f.connect("{stack}", 2121, timeout=20)
f.login("anna", "anna's password")
f.voidcmd("TYPE I")
f.sendcmd("PASV")
t = time.time()
try:
    f.sendcmd("RETR big.bin")
    print("NO-DATA-ACCEPTED")
except ftplib.error_temp as e:
    print("no data", str(e)[:3], time.time() - t >= 0.9)
conn = f.transfercmd("RETR big.bin")
t = time.time()
r = f.getline()
print("stalled retr", r[:3], time.time() - t >= 0.9)
conn.close()
conn = f.transfercmd("STOR stalled.bin")
conn.sendall(b"x" * 1000)
t = time.time()
r = f.getline()
print("stalled stor", r[:3], time.time() - t >= 0.9)
conn.close()
print("after", f.sendcmd("NOOP")[:3])
t = time.time()
line = f.sock.recv(200)
print("idle", line[:3].decode(), 1.5 <= time.time() - t < 10)
print("closed", f.sock.recv(200) == b"")
"#
    );
    python_says(
        &ns,
        "python",
        &script,
        &[
            "no data 425 True",
            "stalled retr 426 True",
            "stalled stor 426 True",
            "after 200",
            "idle 421 True",
            "closed True",
        ],
    );
    assert!(!s.home.join("stalled.bin").exists());
    app.stop().unwrap();
}

/// EBCDIC for mainframe data: with SITE EBCDIC 1047 a TYPE A upload is stored as EBCDIC
/// text (NL line ends) and comes back as the same ASCII text; TYPE I moves the bytes as
/// they are.
#[test]
fn ebcdic_translation() {
    let g = LabGuard::new(false);
    let s = site(&g.lab, "ebcdic");
    let (app, ns, stack) = serve(&g, &s.config);
    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
f.connect("{stack}", 2121, timeout=20)
f.login("anna", "anna's password")
print("site", f.sendcmd("SITE EBCDIC 1047")[:3])
f.storlines("STOR e.txt", io.BytesIO(b"HELLO [X]\nend\n"))
lines = []
f.retrlines("RETR e.txt", lines.append)
print("text", lines)
raw = io.BytesIO()
f.retrbinary("RETR e.txt", raw.write)
print("raw", raw.getvalue().hex())
print("bad", f.sendcmd("SITE EBCDIC OFF")[:3])
try:
    f.sendcmd("SITE EBCDIC 500")
except ftplib.error_perm as e:
    print("unknown", str(e)[:3])
f.quit()
"#
    );
    python_says(
        &ns,
        "python",
        &script,
        &[
            "site 200",
            "text ['HELLO [X]', 'end']",
            "raw c8c5d3d3d640ade7bd1585958415",
            "unknown 501",
        ],
    );
    let stored = std::fs::read(s.home.join("e.txt")).unwrap();
    assert_eq!(
        stored,
        [0xC8, 0xC5, 0xD3, 0xD3, 0xD6, 0x40, 0xAD, 0xE7, 0xBD, 0x15, 0x85, 0x95, 0x84, 0x15]
    );
    app.stop().unwrap();
}

/// A 1 GiB file up and down (curl, EPSV), the same SHA-256 on all three copies.
#[test]
fn one_gib_file_both_ways() {
    use std::io::Write;
    let g = LabGuard::new(false);
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let s = site_in(&base, &g.lab, "gib");
    let (app, ns, stack) = serve(&g, &s.config);
    let local = s.dir.join("gib.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&local).unwrap());
        for i in 0..64u64 {
            f.write_all(&pattern(16 << 20, 1000 + i)).unwrap();
        }
    }
    let back = s.dir.join("gib.back");
    let (local_s, back_s) = (
        local.to_str().unwrap().to_string(),
        back.to_str().unwrap().to_string(),
    );
    let u = url(stack.into(), "gib.bin");
    let (ok, out) = ns_exec(
        &ns,
        &["curl", "-sS", "--max-time", "300", "-T", &local_s, &u],
    );
    assert!(ok, "upload: {out}");
    let (ok, out) = ns_exec(
        &ns,
        &["curl", "-sS", "--max-time", "300", "-o", &back_s, &u],
    );
    assert!(ok, "download: {out}");
    let stored = s.home.join("gib.bin");
    let out = std::process::Command::new("sha256sum")
        .arg(&local)
        .arg(&stored)
        .arg(&back)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let sums: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(sums.len(), 3, "{text}");
    assert!(sums.iter().all(|x| *x == sums[0]), "{text}");
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), 1 << 30);
    app.stop().unwrap();
}

/// A full disk: the upload is answered 552, its temporary file is gone, and the file that
/// was already there under the name is untouched.
#[test]
fn disk_full_is_reported_and_loses_nothing() {
    let g = LabGuard::new(false);
    let s = site(&g.lab, "full");
    let small = s.home.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    std::fs::write(small.join("keep.bin"), b"what was stored before").unwrap();
    let (app, ns, stack) = serve(&g, &s.config);
    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
f.connect("{stack}", 2121, timeout=20)
f.login("anna", "anna's password")
for name in ["keep.bin", "new.bin"]:
    try:
        f.storbinary("STOR /small/" + name, io.BytesIO(b"x" * (3 << 20)))
        print(name, "STORED")
    except ftplib.all_errors as e:
        print(name, str(e)[:3])
print("list", sorted(f.nlst("/small")))
f.quit()
"#
    );
    python_says(
        &ns,
        "python",
        &script,
        &["keep.bin 552", "new.bin 552", "list ['keep.bin']"],
    );
    assert_eq!(
        std::fs::read(small.join("keep.bin")).unwrap(),
        b"what was stored before"
    );
    app.stop().unwrap();
}
