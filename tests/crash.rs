//! Crash safety of `sixstack run`: the process is killed with SIGKILL in the middle of two
//! FTP uploads (one to a new name, one over an existing file). Afterwards no upload has
//! reached its final name (the existing file keeps its old bytes), the partial bytes lie
//! only in the temporary `.NAME.part-PID-N` files, the XDP program has left the interface,
//! and a new appliance started at once on the same link serves FTP and TCP echo.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const FTP_PORT: u16 = 2121;
/// The uploads' size and curl's rate limit: 64 MiB at 8 MiB/s keeps them running for
/// about 8 s, far longer than the test waits before the kill.
const UPLOAD_LEN: usize = 64 << 20;
const UPLOAD_RATE: &str = "8M";
/// How far each temporary file must have grown before the kill.
const GROWN: u64 = 1 << 20;
const OLD_CONTENT: &[u8] = b"the old content, which a crashed upload must not touch\n";

/// The FTP site: a user `anna` with a writable home, all of it removed on drop.
struct Site {
    dir: PathBuf,
    home: PathBuf,
    config: PathBuf,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn site(lab: &sixstack::lab::Lab) -> Site {
    // Memory, not disk: the payload is large.
    let dir = Path::new("/dev/shm").join(format!("sixstack-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let home = dir.join("anna");
    std::fs::create_dir_all(&home).unwrap();
    let hash = sixstack_ftp::users::hash_password("anna's password").unwrap();
    let users = dir.join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"anna\"\npassword = \"{hash}\"\nhome = \"{}\"\naccess = \"read-write\"\n",
            home.display()
        ),
    )
    .unwrap();
    let mut text = sixstack::lab_config(lab, None);
    text.push_str(&format!(
        "\n[ftp]\nport = {FTP_PORT}\nusers = \"{}\"\nidle_timeout_s = 30\ndata_timeout_s = 10\n",
        users.display()
    ));
    let config = dir.join("sixstack.toml");
    std::fs::write(&config, text).unwrap();
    Site { dir, home, config }
}

/// `sixstack run --config FILE` as a child process, its log in a file; killed with
/// SIGKILL on drop, so a failing test leaves no appliance behind.
struct Appliance {
    child: Child,
    log: PathBuf,
}

impl Appliance {
    fn spawn(site: &Site, tag: &str) -> Appliance {
        let log = site.dir.join(format!("appliance-{tag}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_sixstack"))
            .args(["run", "--config"])
            .arg(&site.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Appliance { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and the process reaped.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A child process killed on drop (the curl uploads).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the peer can open a TCP connection to `to` within a short time.
fn answers(ns: &str, to: SocketAddr) -> bool {
    in_ns(ns, move || {
        std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok()
    })
}

/// Starts the appliance and waits until its FTP port answers. A start that fails because
/// the interface's queues are still busy (a just-closed AF_XDP socket) is retried with a
/// growing pause; any other early exit fails the test. Returns the appliance and how many
/// starts it took.
fn start_serving(site: &Site, ns: &str, to: SocketAddr, tag: &str) -> (Appliance, u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut starts = 0;
    let mut pause = Duration::from_millis(100);
    loop {
        starts += 1;
        let mut app = Appliance::spawn(site, &format!("{tag}-{starts}"));
        loop {
            assert!(
                Instant::now() < deadline,
                "{tag}: the appliance did not serve within 20 s ({starts} starts):\n{}",
                app.log()
            );
            if let Some(status) = app.child.try_wait().unwrap() {
                let log = app.log();
                let busy = log.contains("busy") || log.contains("EBUSY");
                assert!(busy, "{tag}: the appliance exited ({status}):\n{log}");
                eprintln!("{tag}: start {starts} found the queue busy; retrying in {pause:?}");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
                break;
            }
            if answers(ns, to) {
                return (app, starts);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `ip -d link show` text of the appliance's interface.
fn link_details(lab: &sixstack::lab::Lab) -> String {
    let out = Command::new("ip")
        .args(["-n", &lab.app_ns, "-d", "link", "show", "dev", &lab.app_if])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether an XDP program is attached: `ip` prints the mode (`xdp`, `xdpgeneric`, ...) on
/// the first line and a `prog/xdp id N` line.
fn xdp_attached(details: &str) -> bool {
    details.contains("prog/xdp")
        || details
            .split_whitespace()
            .any(|w| w == "xdp" || w.starts_with("xdpgeneric") || w.starts_with("xdpdrv"))
}

/// The temporary upload files for `name` in `dir`.
fn temp_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.part-");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn url(stack: std::net::Ipv4Addr, name: &str) -> String {
    format!("ftp://anna:anna%27s%20password@{stack}:{FTP_PORT}/{name}")
}

/// A rate-limited curl upload of `file` to `name`, running in the peer namespace.
fn slow_upload(ns: &str, file: &Path, to: &str) -> Killed {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "60"])
        .args(["--limit-rate", UPLOAD_RATE, "-T"])
        .arg(file)
        .arg(to)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

/// STOR then RETR of `data` under `name` with curl; true when both succeed and the bytes
/// on the server and the bytes back are `data`.
fn ftp_round_trip(
    site: &Site,
    ns: &str,
    stack: std::net::Ipv4Addr,
    name: &str,
    data: &[u8],
) -> bool {
    let local = site.dir.join(format!("local-{name}"));
    let back = site.dir.join(format!("back-{name}"));
    std::fs::write(&local, data).unwrap();
    let _ = std::fs::remove_file(&back);
    let u = url(stack, name);
    for (flag, path) in [("-T", &local), ("-o", &back)] {
        let (ok, _) = ns_exec(
            ns,
            &[
                "curl",
                "-sS",
                "--connect-timeout",
                "2",
                "--max-time",
                "10",
                flag,
                path.to_str().unwrap(),
                &u,
            ],
        );
        if !ok {
            return false;
        }
    }
    std::fs::read(site.home.join(name)).ok().as_deref() == Some(data)
        && std::fs::read(&back).ok().as_deref() == Some(data)
}

#[test]
fn sigkill_mid_upload_leaves_no_final_file_detaches_xdp_and_restarts_serving() {
    let t0 = Instant::now();
    let g = LabGuard::new(false);
    let s = site(&g.lab);
    let (ns, stack) = (g.lab.peer_ns.clone(), g.lab.stack4());
    let ftp = SocketAddr::new(stack.into(), FTP_PORT);

    let payload = s.dir.join("payload.bin");
    let data = pattern(UPLOAD_LEN, 91);
    std::fs::write(&payload, &data).unwrap();
    std::fs::write(s.home.join("existing.bin"), OLD_CONTENT).unwrap();

    let (mut app, _) = start_serving(&s, &ns, ftp, "first");
    let pid = app.pid();
    assert!(
        xdp_attached(&link_details(&g.lab)),
        "no XDP program while the appliance runs:\n{}",
        link_details(&g.lab)
    );

    // Two uploads in flight: one to a new name, one over the existing file.
    let _up_new = slow_upload(&ns, &payload, &url(stack, "new.bin"));
    let _up_old = slow_upload(&ns, &payload, &url(stack, "existing.bin"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let (temp_new, temp_old) = loop {
        let (n, o) = (
            temp_files(&s.home, "new.bin"),
            temp_files(&s.home, "existing.bin"),
        );
        if n.len() == 1 && o.len() == 1 && size(&n[0]) >= GROWN && size(&o[0]) >= GROWN {
            break (n[0].clone(), o[0].clone());
        }
        assert!(
            Instant::now() < deadline,
            "the uploads' temporary files did not grow: {n:?} {o:?}\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    app.kill9();
    let killed_at = Instant::now();

    // The files: no final name for the new upload, the old bytes under the existing name,
    // the partial bytes (a prefix of the payload, shorter than it) only under the
    // temporary names, which carry the killed process's id.
    assert!(
        !s.home.join("new.bin").exists(),
        "a killed upload reached its final name"
    );
    assert_eq!(
        std::fs::read(s.home.join("existing.bin")).unwrap(),
        OLD_CONTENT,
        "a killed upload changed the existing file"
    );
    for t in [&temp_new, &temp_old] {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.contains(&format!(".part-{pid}-")), "{name}");
        let part = std::fs::read(t).unwrap();
        assert!(
            part.len() as u64 >= GROWN && part.len() < UPLOAD_LEN,
            "{name}: {}",
            part.len()
        );
        assert!(
            part[..] == data[..part.len()],
            "{name}: not a prefix of the upload"
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&s.home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "unexpected files in the home: {names:?}");

    // XDP: the bpf_link closed with the process, so the program is gone.
    let detach_deadline = killed_at + Duration::from_secs(2);
    loop {
        let d = link_details(&g.lab);
        if !xdp_attached(&d) {
            break;
        }
        assert!(
            Instant::now() < detach_deadline,
            "the XDP program stayed attached after SIGKILL:\n{d}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let detached_after = killed_at.elapsed();

    // Restart at once on the same link; it must serve FTP both ways and TCP echo.
    let restart = Instant::now();
    let (app2, starts) = start_serving(&s, &ns, ftp, "second");
    let listening = restart.elapsed();
    assert!(
        xdp_attached(&link_details(&g.lab)),
        "no XDP program after restart"
    );
    let small = pattern(256 << 10, 92);
    let round_deadline = Instant::now() + Duration::from_secs(10);
    while !ftp_round_trip(&s, &ns, stack, "after.bin", &small) {
        assert!(
            Instant::now() < round_deadline,
            "no FTP round trip after restart:\n{}",
            app2.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let serving = restart.elapsed();
    let echo = pattern(1 << 20, 93);
    assert!(
        tcp_echo(&ns, SocketAddr::new(stack.into(), 7), echo.clone()) == echo,
        "TCP echo differs after restart"
    );
    // The crashed uploads' files: still only the temporary names, the old file intact.
    assert!(!s.home.join("new.bin").exists());
    assert_eq!(
        std::fs::read(s.home.join("existing.bin")).unwrap(),
        OLD_CONTENT
    );
    let leftovers = [&temp_new, &temp_old].iter().filter(|t| t.exists()).count();
    eprintln!(
        "crash: killed pid {pid} with {} + {} bytes uploaded; XDP detached {detached_after:?} \
         after the kill; restart listening after {listening:?} ({starts} start(s)), first FTP \
         round trip after {serving:?}; {leftovers} of 2 temporary files left by the crashed \
         process remain after restart; whole test {:?}",
        size(&temp_new),
        size(&temp_old),
        t0.elapsed()
    );
    drop(app2);
}
