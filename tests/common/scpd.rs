//! A secure-copy lab: the appliance (sixstack's stack on the lab link), `sixstack scpd` in
//! the lab's peer namespace (kernel sockets), and OpenSSH's sshd in a third namespace
//! behind it ([`super::sshd`]). TLS material from a lab CA: the daemon's certificate, the
//! appliance's (on the allow-list) and a rogue appliance's (same CA, not on the list).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sixstack_tls::selfsigned::{LabCa, Validity};

use super::clients::{lab_config_file, run, scratch, Run, Scratch, BIN};
use super::sshd::{Sshd, SshdOptions, PW_USER, USER};
use super::LabGuard;

/// The daemon's port.
pub const PORT: u16 = 4422;

/// A running scpd; killed on drop.
pub struct Scpd {
    child: Option<Child>,
    /// Everything it printed.
    pub log: Arc<Mutex<String>>,
    /// Its process id.
    pub pid: u32,
}

impl Scpd {
    /// Kills it (SIGKILL) at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Scpd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The whole lab.
pub struct ScpLab {
    pub sshd: Sshd,
    pub dir: Scratch,
    /// The appliance's local files (the client's working directory).
    pub local: PathBuf,
    pub link: PathBuf,
    pub g: LabGuard,
}

impl ScpLab {
    /// Builds the lab (sshd with or without SFTP).
    pub fn new(tag: &str, sftp: bool) -> ScpLab {
        let g = LabGuard::new(false);
        let dir = scratch(tag);
        let sshd = Sshd::start(&g.lab.peer_ns, g.lab.net4[2], SshdOptions { sftp });
        let ca = LabCa::new("sixstack scp test CA").unwrap();
        let names = vec![g.lab.peer4().to_string(), g.lab.peer6().to_string()];
        let server = ca.server(&names, Validity::default()).unwrap();
        let appliance = ca.client("appliance-1", Validity::default()).unwrap();
        let rogue = ca.client("rogue-appliance", Validity::default()).unwrap();
        let pki = dir.0.join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let w = |name: &str, text: &str| std::fs::write(pki.join(name), text).unwrap();
        w("ca.pem", &ca.cert_pem);
        w("scpd.pem", &format!("{}{}", server.cert_pem, ca.cert_pem));
        w("scpd.key", &server.key_pem);
        w(
            "appliance.pem",
            &format!("{}{}", appliance.cert_pem, ca.cert_pem),
        );
        w("appliance.key", &appliance.key_pem);
        w("rogue.pem", &format!("{}{}", rogue.cert_pem, ca.cert_pem));
        w("rogue.key", &rogue.key_pem);
        let local = dir.0.join("local");
        std::fs::create_dir_all(&local).unwrap();
        let link = lab_config_file(&g, &dir.0);
        ScpLab {
            sshd,
            local,
            link,
            g,
            dir,
        }
    }

    /// The PKI directory.
    pub fn pki(&self) -> PathBuf {
        self.dir.0.join("pki")
    }

    /// Writes a daemon configuration using `known_hosts` and listening on `port`.
    pub fn daemon_config(&self, known_hosts: &Path, port: u16) -> PathBuf {
        let p = self.pki();
        let s = &self.sshd;
        let text = format!(
            "listen = [\"{v4}:{port}\", \"[{v6}]:{port}\"]\n\
             cert = \"{pki}/scpd.pem\"\nkey = \"{pki}/scpd.key\"\nclient_ca = \"{pki}/ca.pem\"\n\
             identity = \"{id}\"\nknown_hosts = \"{kh}\"\nconnect_timeout_secs = 10\n\n\
             [[appliance]]\nname = \"branch-1\"\ncommon_name = \"appliance-1\"\n\
             allow = [\"{USER}@{a4}\", \"{USER}@{a6}\", \"{PW_USER}@{a4}\"]\n",
            v4 = self.g.lab.peer4(),
            v6 = self.g.lab.peer6(),
            pki = p.display(),
            id = s.client_key.display(),
            kh = known_hosts.display(),
            a4 = s.addr4,
            a6 = s.addr6,
        );
        let f = self.dir.0.join(format!("scpd-{port}.toml"));
        std::fs::write(&f, text).unwrap();
        f
    }

    /// Starts scpd in the peer namespace (its working directory a directory of its own)
    /// and waits until it listens.
    pub fn start_daemon(&self, known_hosts: &Path, port: u16) -> Scpd {
        let cfg = self.daemon_config(known_hosts, port);
        let cwd = self.dir.0.join(format!("scpd-{port}-cwd"));
        std::fs::create_dir_all(&cwd).unwrap();
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.g.lab.peer_ns,
                BIN,
                "scpd",
                "--config",
            ])
            .arg(&cfg)
            .current_dir(&cwd)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let pid = child.id();
        let d = Scpd {
            child: Some(child),
            log,
            pid,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.output().contains("scpd: listening on") {
            assert!(
                Instant::now() < deadline,
                "scpd did not start: {}",
                d.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// Runs `sixstack scp` with `script` on sixstack's stack as the appliance (or `rogue`).
    pub fn scp(&self, script: &str, rogue: bool) -> Run {
        self.scp_with(script, rogue, &[])
    }

    /// [`ScpLab::scp`] with extra options (a `--ca` of their own replaces the lab's).
    pub fn scp_with(&self, script: &str, rogue: bool, extra: &[&str]) -> Run {
        let f = self.dir.0.join("script.txt");
        std::fs::write(&f, script).unwrap();
        let who = if rogue { "rogue" } else { "appliance" };
        let p = self.pki();
        run(Command::new(BIN)
            .arg("scp")
            .arg(&f)
            .arg("--config")
            .arg(&self.link)
            .args(if extra.contains(&"--ca") {
                vec![]
            } else {
                vec!["--ca".into(), p.join("ca.pem").into_os_string()]
            })
            .arg("--cert")
            .arg(p.join(format!("{who}.pem")))
            .arg("--key")
            .arg(p.join(format!("{who}.key")))
            .args(["--no-progress", "--timeout", "60"])
            .args(extra)
            .current_dir(&self.local))
    }

    /// The script header: the daemon (IPv4 or IPv6) and the remote account over IPv4.
    pub fn header(&self, v6: bool) -> String {
        let daemon = if v6 {
            format!("[{}]:{PORT}", self.g.lab.peer6())
        } else {
            format!("{}:{PORT}", self.g.lab.peer4())
        };
        format!("DAEMON {daemon}\nHOST {USER}@{}\n", self.sshd.addr4)
    }
}
