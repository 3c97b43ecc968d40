//! A real OpenSSH sshd (Debian: openssh-server) in a network namespace of its own, for the
//! scp/sftp interop tests: reached over a veth pair from the namespace the client (or a
//! pass-through daemon) runs in, on an IPv4 and an IPv6 address, port 22.
//!
//! Two accounts exist only in sshd's mount namespace (copies of /etc/passwd, /etc/shadow,
//! /etc/group with them appended are mounted over the machine's): [`USER`], which logs in
//! with the fixture's ed25519 client key, and [`PW_USER`], which sshd offers nothing but
//! password authentication. Host key, client key, configuration, authorized keys, the
//! users' home and sshd's log all live in one temporary directory; the fixture also writes
//! three known_hosts files (the right host key, a different one, none). The machine's
//! users, sshd configuration and host keys are never touched; the only thing it adds is
//! /run/sshd (sshd's privilege separation directory) when missing.
//!
//! Dropped (also when a test panics): every process in sshd's namespace killed (the
//! listener, its per-connection children, which start sessions of their own, and the
//! users' commands), the veth and the namespace deleted, the directory removed.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The public-key account (shell /bin/sh, home [`Sshd::home`]).
pub const USER: &str = "sxscp";
/// The password-only account: sshd requires exactly password authentication for it.
pub const PW_USER: &str = "sxscppw";
/// The password of both accounts.
pub const PASSWORD: &str = "scp-Pw-7f3e2a";
/// sshd's port.
pub const PORT: u16 = 22;
/// User and group ids of [`USER`] and [`PW_USER`] (far above the machine's users).
pub const UID: u32 = 64_124;
pub const PW_UID: u32 = 64_125;

const SSHD: &str = "/usr/sbin/sshd";
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The programs the fixture (and its own tests) need that are not installed; empty when
/// everything is there.
pub fn missing() -> Vec<&'static str> {
    let path = std::env::var("PATH").unwrap_or_default();
    let on_path = |cmd: &str| {
        path.split(':')
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
            .any(|d| Path::new(d).join(cmd).is_file())
    };
    let mut out = Vec::new();
    for (prog, there) in [
        ("sshd (openssh-server)", Path::new(SSHD).is_file()),
        (
            "sftp-server (openssh-sftp-server)",
            Path::new(SFTP_SERVER).is_file(),
        ),
    ] {
        if !there {
            out.push(prog);
        }
    }
    for (cmd, what) in [
        ("ssh", "ssh (openssh-client)"),
        ("ssh-keygen", "ssh-keygen (openssh-client)"),
        ("scp", "scp (openssh-client)"),
        ("sftp", "sftp (openssh-client)"),
        ("unshare", "unshare (util-linux)"),
        ("openssl", "openssl"),
        ("ip", "ip (iproute2)"),
    ] {
        if !on_path(cmd) {
            out.push(what);
        }
    }
    out
}

/// Whether sshd, sftp-server, ssh, ssh-keygen, scp, sftp, unshare, openssl and ip are
/// installed.
pub fn available() -> bool {
    missing().is_empty()
}

/// How to configure the server.
#[derive(Clone, Copy, Debug, Default)]
pub struct SshdOptions {
    /// Whether the sftp subsystem is configured; without it only legacy scp (`scp -O`,
    /// the remote `scp -t`/`scp -f`) works.
    pub sftp: bool,
}

/// A running sshd.
pub struct Sshd {
    /// sshd's network namespace.
    pub ns: String,
    /// The namespace it is reached from (the other end of the veth).
    pub via_ns: String,
    /// sshd's IPv4 address (port [`PORT`]).
    pub addr4: Ipv4Addr,
    /// sshd's IPv6 address (port [`PORT`]).
    pub addr6: Ipv6Addr,
    /// The via end's addresses (the route back from sshd's namespace).
    pub via4: Ipv4Addr,
    pub via6: Ipv6Addr,
    /// [`USER`]'s home: where relative remote paths land.
    pub home: PathBuf,
    /// The ed25519 private key (mode 0600, no passphrase) authorised for [`USER`] (and
    /// listed for [`PW_USER`], which is refused anyway: that account takes passwords only).
    pub client_key: PathBuf,
    /// known_hosts naming sshd's host key for both addresses.
    pub known_hosts: PathBuf,
    /// known_hosts naming a different ed25519 key for both addresses (a changed host key).
    pub wrong_known_hosts: PathBuf,
    /// An empty known_hosts (an unknown host).
    pub empty_known_hosts: PathBuf,
    /// sshd's host public key line (`ssh-ed25519 AAAA... comment`).
    pub host_key_pub: String,
    dir: PathBuf,
    /// The via end of the veth (in `via_ns`).
    via_if: String,
    /// unshare (then sh, ip netns exec and sshd, each by exec): the listener.
    server: Option<Child>,
}

impl Sshd {
    /// Creates namespace [`Sshd::ns`] joined by a veth pair to `via_ns`, addresses
    /// 10.201.`index`.1/30 and fd9a:0:0:`index`::1/64 on the via end, .2 and ::2 on sshd's,
    /// generates keys and configuration into a fresh directory, starts sshd there and
    /// waits until it accepts on both addresses (probed from `via_ns`).
    pub fn start(via_ns: &str, index: u8, opts: SshdOptions) -> Sshd {
        let miss = missing();
        assert!(miss.is_empty(), "sshd fixture: not installed: {miss:?}");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("sxh{:x}{n}", std::process::id() & 0xffff);
        let dir = std::env::temp_dir().join(format!("sixstack-sshd-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        // From here on, Drop cleans up whatever goes wrong.
        let mut s = Sshd {
            ns: format!("{tag}n"),
            via_ns: via_ns.to_string(),
            addr4: Ipv4Addr::new(10, 201, index, 2),
            addr6: Ipv6Addr::new(0xfd9a, 0, 0, index.into(), 0, 0, 0, 2),
            via4: Ipv4Addr::new(10, 201, index, 1),
            via6: Ipv6Addr::new(0xfd9a, 0, 0, index.into(), 0, 0, 0, 1),
            home: dir.join("home").join(USER),
            client_key: dir.join("client_ed25519"),
            known_hosts: dir.join("known_hosts"),
            wrong_known_hosts: dir.join("wrong_known_hosts"),
            empty_known_hosts: dir.join("empty_known_hosts"),
            host_key_pub: String::new(),
            dir: dir.clone(),
            via_if: format!("{tag}v"),
            server: None,
        };
        std::fs::create_dir_all(&dir).unwrap();
        s.network();
        s.files(opts);
        s.spawn();
        s.wait_listening();
        s
    }

    /// The path of `name` in [`USER`]'s home.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }

    /// Writes `data` to `name` in [`USER`]'s home, owned by [`USER`].
    pub fn put(&self, name: &str, data: &[u8]) {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        std::os::unix::fs::chown(&p, Some(UID), Some(UID)).unwrap();
    }

    /// The contents of `name` in [`USER`]'s home, if it exists.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(name)).ok()
    }

    /// sshd's address and port.
    pub fn server4(&self) -> SocketAddr {
        SocketAddr::from((self.addr4, PORT))
    }
    pub fn server6(&self) -> SocketAddr {
        SocketAddr::from((self.addr6, PORT))
    }

    /// What sshd wrote to its standard error (`-e`, LogLevel VERBOSE), with the mounts'.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// The options that make the system OpenSSH client (ssh, scp, sftp) use the fixture's
    /// key and `known_hosts` only, never ask anything and never read the machine's
    /// configuration or the caller's ~/.ssh.
    pub fn client_opts(&self, known_hosts: &Path) -> Vec<String> {
        let mut v: Vec<String> = ["-F", "/dev/null"].map(String::from).into();
        for o in [
            "BatchMode=yes".to_string(),
            "StrictHostKeyChecking=yes".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "PasswordAuthentication=no".into(),
            "KbdInteractiveAuthentication=no".into(),
            "IdentitiesOnly=yes".into(),
            "ConnectTimeout=10".into(),
        ] {
            v.push("-o".into());
            v.push(o);
        }
        v.push("-i".into());
        v.push(self.client_key.display().to_string());
        v
    }

    /// The processes in sshd's namespace (the listener, connections, sessions).
    pub fn pids(&self) -> Vec<i32> {
        ns_pids(&self.ns)
    }

    /// Stops sshd now: every process in its namespace is killed (Drop does it too).
    pub fn kill(&mut self) {
        if let Some(child) = self.server.as_ref() {
            // sh, ip netns exec and sshd replaced unshare by exec: the child leads the
            // listener's process group. Connections start sessions of their own (setsid),
            // so they are found by namespace below.
            let group = rustix::process::Pid::from_child(child);
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(p) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn network(&self) {
        let (ns, via, vif) = (&self.ns, &self.via_ns, &self.via_if);
        let sif = format!("{vif}s");
        let net = |args: &[&str]| {
            sixstack::lab::ip(args).unwrap_or_else(|e| panic!("sshd fixture network: {e}"))
        };
        net(&["netns", "add", ns]);
        net(&["-n", ns, "link", "set", "lo", "up"]);
        net(&[
            "-n", via, "link", "add", vif, "type", "veth", "peer", "name", &sif, "netns", ns,
        ]);
        let addr = |ns: &str, ifname: &str, cidr: String| {
            let mut a = vec!["-n", ns, "addr", "add", &cidr, "dev", ifname];
            if cidr.contains(':') {
                a.push("nodad");
            }
            net(&a);
        };
        addr(via, vif, format!("{}/30", self.via4));
        addr(via, vif, format!("{}/64", self.via6));
        addr(ns, &sif, format!("{}/30", self.addr4));
        addr(ns, &sif, format!("{}/64", self.addr6));
        net(&["-n", via, "link", "set", vif, "up"]);
        net(&["-n", ns, "link", "set", &sif, "up"]);
        // Clients beyond the via namespace (routed through it) get answers too.
        net(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &self.via4.to_string(),
        ]);
        net(&[
            "-n",
            ns,
            "-6",
            "route",
            "add",
            "default",
            "via",
            &self.via6.to_string(),
        ]);
    }

    fn files(&mut self, opts: SshdOptions) {
        let dir = self.dir.clone();
        let pw_home = dir.join("home").join(PW_USER);
        for (home, uid) in [(&self.home, UID), (&pw_home, PW_UID)] {
            std::fs::create_dir_all(home).unwrap();
            std::os::unix::fs::chown(home, Some(uid), Some(uid)).unwrap();
        }
        let host_key = dir.join("host_ed25519_key");
        keygen(&host_key, "sixstack-sshd-host");
        keygen(&self.client_key, "sixstack-sshd-client");
        let wrong = dir.join("wrong_host_ed25519_key");
        keygen(&wrong, "sixstack-sshd-wrong-host");
        let public = |key: &Path| {
            let p = key.with_extension("pub");
            std::fs::read_to_string(p).unwrap().trim().to_string()
        };
        self.host_key_pub = public(&host_key);
        let names = format!("{},{}", self.addr4, self.addr6);
        std::fs::write(
            &self.known_hosts,
            format!("{names} {}\n", self.host_key_pub),
        )
        .unwrap();
        let wrong_line = format!("{names} {}\n", public(&wrong));
        std::fs::write(&self.wrong_known_hosts, wrong_line).unwrap();
        std::fs::write(&self.empty_known_hosts, "").unwrap();

        // sshd reads authorized keys as the user: readable by all, in a directory of
        // root's (StrictModes is off, but nothing here is writable by the users).
        let auth = dir.join("authorized_keys");
        std::fs::create_dir_all(&auth).unwrap();
        let client_pub = public(&self.client_key);
        for user in [USER, PW_USER] {
            let f = auth.join(user);
            std::fs::write(&f, format!("{client_pub}\n")).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }

        // With UsePAM no sshd takes a '!' hash for a locked account: both get a real one.
        let hash = Command::new("openssl")
            .args(["passwd", "-6", PASSWORD])
            .output()
            .unwrap();
        assert!(hash.status.success(), "openssl passwd failed");
        let hash = String::from_utf8(hash.stdout).unwrap();
        let hash = hash.trim();
        let passwd = self.etc(
            "passwd",
            &format!(
                "{USER}:x:{UID}:{UID}:sixstack scp test:{}:/bin/sh\n\
                 {PW_USER}:x:{PW_UID}:{PW_UID}:sixstack scp password test:{}:/bin/sh\n",
                self.home.display(),
                pw_home.display()
            ),
        );
        let shadow = self.etc(
            "shadow",
            &format!("{USER}:{hash}:19000:0:99999:7:::\n{PW_USER}:{hash}:19000:0:99999:7:::\n"),
        );
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
        let group = self.etc(
            "group",
            &format!("{USER}:x:{UID}:\n{PW_USER}:x:{PW_UID}:\n"),
        );

        let mut cfg = format!(
            "# sixstack test sshd (tests/common/sshd.rs)\n\
             Port {PORT}\n\
             AddressFamily any\n\
             ListenAddress {a4}\n\
             ListenAddress {a6}\n\
             HostKey {hk}\n\
             PidFile none\n\
             UsePAM no\n\
             StrictModes no\n\
             UseDNS no\n\
             LogLevel VERBOSE\n\
             AuthorizedKeysFile {auth}/%u\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication yes\n\
             PermitEmptyPasswords no\n\
             KbdInteractiveAuthentication no\n\
             HostbasedAuthentication no\n\
             GSSAPIAuthentication no\n\
             PermitRootLogin no\n\
             AllowUsers {USER} {PW_USER}\n\
             # No terminals: no utmp, wtmp or lastlog records on the machine.\n\
             PermitTTY no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             X11Forwarding no\n\
             AllowAgentForwarding no\n\
             MaxStartups 100:30:200\n\
             MaxAuthTries 10\n",
            a4 = self.addr4,
            a6 = self.addr6,
            hk = host_key.display(),
            auth = auth.display(),
        );
        if sshd_version() >= (9, 8) {
            // Refused logins must not get the test client's address blocked.
            cfg.push_str("PerSourcePenalties no\n");
        }
        if opts.sftp {
            cfg.push_str(&format!("Subsystem sftp {SFTP_SERVER}\n"));
        }
        cfg.push_str(&format!(
            "Match User {PW_USER}\n    AuthenticationMethods password\n"
        ));
        let conf = dir.join("sshd_config");
        std::fs::write(&conf, cfg).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let script = format!(
            "mount --bind {p} /etc/passwd && mount --bind {s} /etc/shadow && \
             mount --bind {g} /etc/group && \
             exec ip netns exec {ns} {SSHD} -D -e -f {c}",
            p = passwd.display(),
            s = shadow.display(),
            g = group.display(),
            ns = self.ns,
            c = conf.display(),
        );
        std::fs::write(dir.join("start.sh"), script).unwrap();
    }

    fn spawn(&mut self) {
        // The privilege separation directory: root's, not writable by others.
        let run = Path::new("/run/sshd");
        if !run.is_dir() {
            std::fs::create_dir_all(run).unwrap();
            std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let test = Command::new(SSHD)
            .args(["-t", "-f"])
            .arg(self.dir.join("sshd_config"))
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "sshd -t rejects the fixture's configuration: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let script = std::fs::read_to_string(self.dir.join("start.sh")).unwrap();
        let log = std::fs::File::create(self.dir.join("sshd.log")).unwrap();
        self.server = Some(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap(),
        );
    }

    /// A copy of the machine's /etc/`name` with `extra` appended, in the directory.
    fn etc(&self, name: &str, extra: &str) -> PathBuf {
        let mut text = std::fs::read_to_string(Path::new("/etc").join(name)).unwrap();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(extra);
        let copy = self.dir.join(name);
        std::fs::write(&copy, text).unwrap();
        copy
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for to in [self.server4(), self.server6()] {
            loop {
                // The probe's connection closes at once; sshd logs it and moves on.
                let up = super::in_ns(&self.via_ns, move || {
                    std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok()
                });
                if up {
                    break;
                }
                if let Some(Ok(Some(st))) = self.server.as_mut().map(|c| c.try_wait()) {
                    panic!("sshd exited ({st}): {}", self.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "sshd does not accept on {to}: {}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
        // The namespace takes its end of the veth, and with it the via end, along; the via
        // end is deleted first in case a process (not ours) still holds the namespace.
        for args in [
            vec!["-n", &self.via_ns, "link", "del", &self.via_if],
            vec!["netns", "del", &self.ns],
        ] {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An ed25519 key pair without passphrase at `path` (private, mode 0600) and `path`.pub.
fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// sshd's (major, minor) version, from `sshd -V` ("OpenSSH_9.2p1 ..."); (0, 0) if unknown.
fn sshd_version() -> (u32, u32) {
    let out = Command::new(SSHD).arg("-V").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let Some(rest) = text.split("OpenSSH_").nth(1) else {
        return (0, 0);
    };
    let num = |s: &str| -> u32 {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        d.parse().unwrap_or(0)
    };
    let mut parts = rest.splitn(2, '.');
    let major = num(parts.next().unwrap_or(""));
    let minor = num(parts.next().unwrap_or(""));
    (major, minor)
}

/// The processes whose network namespace is the named namespace `ns`.
fn ns_pids(ns: &str) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(Path::new("/run/netns").join(ns)) else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .collect()
}
