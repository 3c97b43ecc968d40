//! in.rexecd in a lab namespace, for the remote execution client's interop tests: Debian's
//! rexec server (package rsh-server) behind socat on the peer's address, port 512.
//!
//! in.rexecd checks the password through PAM (pam_unix: /etc/passwd and /etc/shadow) and
//! names its client through /etc/hosts (it refuses a client it cannot name). The server
//! runs in a mount namespace of its own where copies of /etc/passwd, /etc/shadow,
//! /etc/group (one extra test user, [`USER`], with [`PASSWORD`] and its home under a
//! temporary directory) and /etc/hosts (names for the lab's addresses) are mounted over the
//! machine's: the machine's files, users and inetd are never touched. Dropped: every
//! process of the server (socat, in.rexecd, the commands it runs) killed, the directory
//! removed.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sixstack::lab::Lab;

/// The test user (it exists only in the server's mount namespace).
pub const USER: &str = "sxrexec";
/// Its password (Debian's in.rexecd takes at most 15 bytes).
pub const PASSWORD: &str = "rexec-Pw-93a";
/// The server's port.
pub const PORT: u16 = 512;
/// The test user's user and group id (it owns only the home directory).
const UID: u32 = 64_123;
const IN_REXECD: &str = "/usr/sbin/in.rexecd";

/// Whether in.rexecd (Debian: rsh-server) and the tools the fixture needs (socat, unshare,
/// openssl) are installed.
pub fn available() -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let on_path = |cmd: &str| {
        path.split(':')
            .chain(["/usr/sbin", "/sbin"])
            .any(|d| Path::new(d).join(cmd).is_file())
    };
    Path::new(IN_REXECD).is_file() && ["socat", "unshare", "openssl"].iter().all(|c| on_path(c))
}

/// A running in.rexecd.
pub struct Rexecd {
    /// The address it listens on (the peer's), port [`PORT`].
    pub addr: Ipv4Addr,
    /// The test user's home directory, where commands start.
    pub home: PathBuf,
    dir: PathBuf,
    ns: String,
    /// unshare (sh, then socat by exec): leader of a process group holding every process
    /// of the server.
    server: Option<Child>,
}

impl Rexecd {
    /// Starts the server in the lab's peer namespace and waits until it listens.
    pub fn start(lab: &Lab) -> Rexecd {
        let dir = std::env::temp_dir().join(format!(
            "sixstack-rexecd-{}-{}",
            std::process::id(),
            lab.peer_ns
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // From here on, Drop cleans up whatever goes wrong.
        let mut r = Rexecd {
            addr: lab.peer4(),
            home: dir.join("home"),
            dir: dir.clone(),
            ns: lab.peer_ns.clone(),
            server: None,
        };
        std::fs::create_dir_all(&r.home).unwrap();
        std::os::unix::fs::chown(&r.home, Some(UID), Some(UID)).unwrap();

        let hash = Command::new("openssl")
            .args(["passwd", "-6", PASSWORD])
            .output()
            .unwrap();
        assert!(hash.status.success(), "openssl passwd failed");
        let hash = String::from_utf8(hash.stdout).unwrap();
        let passwd = r.etc(
            "passwd",
            &format!(
                "{USER}:x:{UID}:{UID}:sixstack rexec test:{}:/bin/sh\n",
                r.home.display()
            ),
        );
        let shadow = r.etc(
            "shadow",
            &format!("{USER}:{}:19000:0:99999:7:::\n", hash.trim()),
        );
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
        let group = r.etc("group", &format!("{USER}:x:{UID}:\n"));
        let names = [
            (lab.peer4(), "server"),
            (lab.stack4(), "stack"),
            (lab.kernel4(), "kernel"),
        ];
        let names: String = names
            .iter()
            .map(|(a, n)| format!("{a} {n}.rexec.lab\n"))
            .collect();
        let hosts = r.etc("hosts", &names);

        let script = format!(
            "mount --bind {p} /etc/passwd && mount --bind {s} /etc/shadow && \
             mount --bind {g} /etc/group && mount --bind {h} /etc/hosts && \
             exec ip netns exec {ns} socat TCP4-LISTEN:{PORT},bind={addr},reuseaddr,fork \
             EXEC:{IN_REXECD},nofork",
            p = passwd.display(),
            s = shadow.display(),
            g = group.display(),
            h = hosts.display(),
            ns = r.ns,
            addr = r.addr,
        );
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        r.server = Some(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        r.wait_listening();
        r
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        SocketAddr::from((self.addr, PORT))
    }

    /// Writes `data` to a file `name` in the test user's home, owned by the user.
    pub fn put(&self, name: &str, data: &[u8]) {
        let p = self.home.join(name);
        std::fs::write(&p, data).unwrap();
        std::os::unix::fs::chown(&p, Some(UID), Some(UID)).unwrap();
    }

    /// What the server wrote to its standard error (socat, the mounts, in.rexecd).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
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
        let to = self.server();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The probe's connection ends at once; the in.rexecd it starts gives up.
            let up = super::in_ns(&self.ns, move || {
                std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok()
            });
            if up {
                return;
            }
            if let Some(Ok(Some(st))) = self.server.as_mut().map(|c| c.try_wait()) {
                panic!("in.rexecd's socat exited ({st}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "in.rexecd does not listen on {to}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rexecd {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // socat's children (in.rexecd, then the user's shell and its commands) stay in
            // its process group: none of them starts a session or group of its own.
            let group = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
