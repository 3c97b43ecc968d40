//! Postfix in a lab namespace, for the mail client's interop tests: an instance of its own
//! (configuration, queue, data and mail directories under a temporary directory) in the
//! lab's peer namespace, listening on the peer's address on 25 (STARTTLS) and 465 (implicit
//! TLS), with Cyrus SASL (sasldb) AUTH PLAIN and LOGIN offered over TLS only, delivering the
//! virtual domain `lab.test` to Maildirs. Everything else is refused: nothing leaves the
//! machine. The machine's default instance is never touched. Dropped: stopped and removed.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sixstack::lab::Lab;
use sixstack_tls::selfsigned::{LabCa, Validity};

/// The virtual mail domain.
pub const DOMAIN: &str = "lab.test";
/// The mailboxes of the domain.
pub const MAILBOXES: &[&str] = &["anna", "bob", "carl"];
/// The SASL user and password.
pub const USER: &str = "anna@lab.test";
pub const PASSWORD: &str = "pw-Anna-7f3";
/// The name on the server certificate (with the peer's address).
pub const SERVER_NAME: &str = "mail.sixstack.lab";

/// A running Postfix instance.
pub struct Postfix {
    pub dir: PathBuf,
    pub addr: Ipv4Addr,
    /// The CA that issued the server certificate.
    pub ca: PathBuf,
    conf: PathBuf,
    ns: String,
    master: Option<Child>,
}

/// Whether Postfix and the SASL tools are installed (Debian: postfix, sasl2-bin,
/// libsasl2-modules).
pub fn available() -> bool {
    [
        "/usr/sbin/postfix",
        "/usr/sbin/saslpasswd2",
        "/usr/bin/script",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
}

fn id(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    assert!(
        out.status.success(),
        "no user {name}: is Postfix installed?"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn main_cf(dir: &Path, addr: Ipv4Addr) -> String {
    let d = dir.display();
    format!(
        "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {SERVER_NAME}
mydomain = sixstack.lab
mydestination =
inet_interfaces = {addr}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
default_transport = error:the sixstack test server delivers nothing off the machine
relay_transport = error:the sixstack test server delivers nothing off the machine
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = texthash:{d}/conf/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
smtpd_banner = $myhostname ESMTP sixstack test instance
smtpd_tls_chain_files = {d}/conf/server.key, {d}/conf/server.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
message_size_limit = 10240000
"
    )
}

fn master_cf(addr: Ipv4Addr) -> String {
    format!(
        "{addr}:25 inet n - n - - smtpd
{addr}:465 inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"
    )
}

impl Postfix {
    /// Starts an instance in the lab's peer namespace and waits until it listens.
    pub fn start(lab: &Lab) -> Postfix {
        let dir = std::env::temp_dir().join(format!(
            "sixstack-postfix-{}-{}",
            std::process::id(),
            lab.peer_ns
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let conf = dir.join("conf");
        let addr = lab.peer4();
        // From here on, Drop cleans up whatever goes wrong.
        let mut pf = Postfix {
            dir: dir.clone(),
            addr,
            ca: conf.join("ca.pem"),
            conf: conf.clone(),
            ns: lab.peer_ns.clone(),
            master: None,
        };
        for sub in ["conf/sasl", "queue", "data", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (postfix_uid, nobody) = (id("-u", "postfix"), 65534);
        std::os::unix::fs::chown(dir.join("data"), Some(postfix_uid), None).unwrap();
        std::os::unix::fs::chown(dir.join("mail"), Some(nobody), Some(nobody)).unwrap();

        let ca = LabCa::new("sixstack mail test CA").unwrap();
        let names = vec![SERVER_NAME.to_string(), addr.to_string()];
        let server = ca.server(&names, Validity::default()).unwrap();
        let w = |name: &str, text: &str| std::fs::write(conf.join(name), text).unwrap();
        w("ca.pem", &ca.cert_pem);
        w("server.pem", &format!("{}{}", server.cert_pem, ca.cert_pem));
        w("server.key", &server.key_pem);
        w("main.cf", &main_cf(&dir, addr));
        w("master.cf", &master_cf(addr));
        let vmailbox: String = MAILBOXES
            .iter()
            .map(|m| format!("{m}@{DOMAIN} {m}/\n"))
            .collect();
        w("vmailbox", &vmailbox);
        // Debian's Postfix reads the SASL settings from $config_directory/sasl.
        let db = dir.join("sasldb2");
        w(
            "sasl/smtpd.conf",
            &format!(
                "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {}\n",
                db.display()
            ),
        );
        let (user, realm) = USER.split_once('@').unwrap();
        let mut sp = Command::new("saslpasswd2")
            .arg("-f")
            .arg(&db)
            .args(["-c", "-p", "-u", realm, user])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        sp.stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        assert!(sp.wait().unwrap().success(), "saslpasswd2");
        std::os::unix::fs::chown(&db, Some(postfix_uid), None).unwrap();

        let (ok, out) = pf.postfix("check");
        assert!(ok, "postfix check: {out}");
        let log = std::fs::File::create(dir.join("master.out")).unwrap();
        pf.master = Some(
            Command::new("ip")
                .args(["netns", "exec", &pf.ns, "postfix", "-c"])
                .arg(&conf)
                .arg("start-fg")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        pf.wait_listening(25);
        pf.wait_listening(465);
        pf
    }

    /// Runs `postfix -c CONF <cmd>` in the namespace; (success, output).
    fn postfix(&self, cmd: &str) -> (bool, String) {
        // Postfix writes its complaints to stderr only on a terminal; `script` gives it one.
        let line = format!(
            "ip netns exec {} postfix -c {} {cmd}",
            self.ns,
            self.conf.display()
        );
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    fn wait_listening(&mut self, port: u16) {
        let to = std::net::SocketAddr::from((self.addr, port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = super::in_ns(&self.ns, move || {
                std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok()
            });
            if up {
                return;
            }
            if let Some(Ok(Some(st))) = self.master.as_mut().map(|c| c.try_wait()) {
                panic!("postfix exited ({st}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postfix does not listen on {to}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The instance's log (and the master's own output).
    pub fn log(&self) -> String {
        let r = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!("{}{}", r("master.out"), r("maillog"))
    }

    /// The messages delivered to `mailbox` so far (LF line ends, as Postfix stores them).
    pub fn messages(&self, mailbox: &str) -> Vec<Vec<u8>> {
        let new = self.dir.join("mail").join(mailbox).join("new");
        let mut files: Vec<_> = std::fs::read_dir(new)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }

    /// Waits until `mailbox` holds a message with `message_id`, and returns it.
    pub fn wait_message(&self, mailbox: &str, message_id: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let needle = format!("Message-ID: {message_id}");
        loop {
            if let Some(m) = self
                .messages(mailbox)
                .into_iter()
                .find(|m| String::from_utf8_lossy(m).contains(&needle))
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{message_id} not delivered to {mailbox}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.postfix("stop");
        if let Some(mut child) = self.master.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = self.postfix("abort");
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
