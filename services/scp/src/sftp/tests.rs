//! The client against OpenSSH's own sftp-server, run as a child process speaking SFTP on
//! its stdin and stdout, as it does at the far end of `ssh -s HOST sftp`.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::*;

const SERVER_PATHS: [&str; 3] = [
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
];

/// Every test finishes well within this, or fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(60);

type Client = SftpClient<ChildStdout, ChildStdin>;

fn sftp_server() -> &'static str {
    SERVER_PATHS
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "OpenSSH's sftp-server is not installed (looked for {SERVER_PATHS:?}); \
                 install openssh-sftp-server to run these tests"
            )
        })
}

/// A scratch directory unique to the process and test, removed when dropped.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(test: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sixstack-scp-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(super) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The absolute path of `name` inside, as the remote path string.
    pub(super) fn remote(&self, name: &str) -> String {
        self.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes that differ at every offset modulo any small period, so a misplaced chunk shows.
pub(super) fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

async fn connect_as(uid: Option<u32>) -> (Client, Child) {
    let path = sftp_server();
    let mut cmd = Command::new(path);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let r = child.stdout.take().unwrap();
    let w = child.stdin.take().unwrap();
    let client = SftpClient::start(r, w).await.unwrap();
    (client, child)
}

async fn connect() -> (Client, Child) {
    connect_as(None).await
}

async fn read_all(c: &mut Client, path: &str, from: u64) -> (Vec<u8>, FileReader) {
    let mut f = c.open_read(path, from).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = c.read(&mut f).await.unwrap() {
        assert!(!chunk.is_empty() && chunk.len() <= CHUNK);
        got.extend_from_slice(&chunk);
    }
    assert_eq!(c.read(&mut f).await.unwrap(), None, "EOF is sticky");
    (got, f)
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(LIMIT, test)
                .await
                .expect("test timed out");
        });
}

#[test]
fn version_and_extensions() {
    run(async {
        let (c, _child) = connect().await;
        assert_eq!(c.version, 3);
        assert!(c.has_extension(packet::POSIX_RENAME));
        assert!(!c.has_extension("nonexistent@example.com"));
        assert!(format!("{c:?}").contains("posix-rename"));
    });
}

#[test]
fn upload_5_mib_byte_exact() {
    run(async {
        let dir = TempDir::new("upload5");
        let data = pattern(5 << 20, 1);
        let (mut c, _child) = connect().await;
        let path = dir.remote("big.bin");
        let mut f = c.create(&path, None, 0o640).await.unwrap();
        let sizes = [1, 1000, CHUNK, CHUNK + 1, 100_000, 1 << 20];
        let mut at = 0;
        let mut i = 0;
        while at < data.len() {
            let n = sizes[i % sizes.len()].min(data.len() - at);
            c.write(&mut f, &data[at..at + n]).await.unwrap();
            at += n;
            i += 1;
            assert_eq!(f.offset(), at as u64);
        }
        assert_eq!(c.finish_write(f).await.unwrap(), data.len() as u64);
        assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);
        let attrs = c.stat(&path).await.unwrap().unwrap();
        assert_eq!(attrs.size, Some(data.len() as u64));
        assert!(attrs.is_regular() && !attrs.is_dir());
        assert_eq!(attrs.permissions.unwrap() & 0o077 & !0o640, 0);
    });
}

#[test]
fn upload_truncates_an_existing_file() {
    run(async {
        let dir = TempDir::new("truncate");
        std::fs::write(dir.join("f"), pattern(100_000, 2)).unwrap();
        let (mut c, _child) = connect().await;
        let mut f = c.create(&dir.remote("f"), None, 0o644).await.unwrap();
        c.write(&mut f, b"short").await.unwrap();
        assert_eq!(c.finish_write(f).await.unwrap(), 5);
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"short");
    });
}

#[test]
fn upload_resumes_after_a_partial_file() {
    run(async {
        let dir = TempDir::new("resume");
        let data = pattern((1 << 20) + 777, 3);
        let cut = 300_001;
        std::fs::write(dir.join("f"), &data[..cut]).unwrap();
        let (mut c, _child) = connect().await;
        let mut f = c
            .create(&dir.remote("f"), Some(cut as u64), 0o644)
            .await
            .unwrap();
        assert_eq!(f.offset(), cut as u64);
        c.write(&mut f, &data[cut..]).await.unwrap();
        assert_eq!(c.finish_write(f).await.unwrap(), data.len() as u64);
        assert!(std::fs::read(dir.join("f")).unwrap() == data);
    });
}

#[test]
fn download_whole_and_from_an_offset() {
    run(async {
        let dir = TempDir::new("download");
        let data = pattern((3 << 20) + 12_345, 4);
        std::fs::write(dir.join("f"), &data).unwrap();
        let (mut c, _child) = connect().await;
        let path = dir.remote("f");

        let (got, f) = read_all(&mut c, &path, 0).await;
        assert_eq!(f.size(), Some(data.len() as u64));
        assert_eq!(f.offset(), data.len() as u64);
        assert!(got == data);
        c.close_read(f).await.unwrap();

        let from = 1_000_003;
        let (got, f) = read_all(&mut c, &path, from as u64).await;
        assert!(got == data[from..]);
        assert_eq!(f.offset(), data.len() as u64);
        c.close_read(f).await.unwrap();

        // Past the end: nothing, no error.
        let (got, f) = read_all(&mut c, &path, data.len() as u64 + 5).await;
        assert!(got.is_empty());
        c.close_read(f).await.unwrap();

        // Closing early, with read-ahead outstanding, leaves the client usable.
        let mut f = c.open_read(&path, 0).await.unwrap();
        let first = c.read(&mut f).await.unwrap().unwrap();
        assert_eq!(first, data[..first.len()]);
        c.close_read(f).await.unwrap();
        assert!(c.stat(&path).await.unwrap().is_some());
    });
}

#[test]
fn download_empty_and_one_byte_files() {
    run(async {
        let dir = TempDir::new("small");
        std::fs::write(dir.join("empty"), b"").unwrap();
        std::fs::write(dir.join("one"), b"x").unwrap();
        let (mut c, _child) = connect().await;
        let (got, f) = read_all(&mut c, &dir.remote("empty"), 0).await;
        assert!(got.is_empty());
        assert_eq!(f.size(), Some(0));
        c.close_read(f).await.unwrap();
        let (got, f) = read_all(&mut c, &dir.remote("one"), 0).await;
        assert_eq!(got, b"x");
        assert_eq!((f.size(), f.offset()), (Some(1), 1));
        c.close_read(f).await.unwrap();
    });
}

#[test]
fn stat_of_missing_directory_and_file() {
    run(async {
        let dir = TempDir::new("stat");
        let (mut c, _child) = connect().await;
        assert_eq!(c.stat(&dir.remote("missing")).await.unwrap(), None);
        assert_eq!(c.stat(&dir.remote("no/such/dir")).await.unwrap(), None);
        let d = c.stat(&dir.remote("")).await.unwrap().unwrap();
        assert!(d.is_dir() && !d.is_regular());
    });
}

#[test]
fn rename_replaces_an_existing_file() {
    run(async {
        let dir = TempDir::new("rename");
        let (mut c, _child) = connect().await;
        for posix in [true, false] {
            if !posix {
                // The fallback: REMOVE the target, then RENAME.
                c.extensions.retain(|(n, _)| n != packet::POSIX_RENAME);
            }
            std::fs::write(dir.join("new"), b"new").unwrap();
            std::fs::write(dir.join("target"), b"old contents").unwrap();
            c.rename(&dir.remote("new"), &dir.remote("target"))
                .await
                .unwrap();
            assert_eq!(std::fs::read(dir.join("target")).unwrap(), b"new");
            assert!(!dir.join("new").exists());
            // And onto a name that does not exist yet.
            c.rename(&dir.remote("target"), &dir.remote("fresh"))
                .await
                .unwrap();
            assert_eq!(std::fs::read(dir.join("fresh")).unwrap(), b"new");
            std::fs::remove_file(dir.join("fresh")).unwrap();
            let e = c
                .rename(&dir.remote("gone"), &dir.remote("x"))
                .await
                .unwrap_err();
            assert!(e.is_no_such_file(), "{e}");
            assert!(e.to_string().contains("gone"), "{e}");
        }
    });
}

#[test]
fn remove_and_remove_missing() {
    run(async {
        let dir = TempDir::new("remove");
        std::fs::write(dir.join("f"), b"x").unwrap();
        let (mut c, _child) = connect().await;
        c.remove(&dir.remote("f")).await.unwrap();
        assert!(!dir.join("f").exists());
        let e = c.remove(&dir.remote("f")).await.unwrap_err();
        assert!(e.is_no_such_file(), "{e}");
        // A STATUS error leaves the client usable.
        assert_eq!(c.stat(&dir.remote("f")).await.unwrap(), None);
    });
}

#[test]
fn errors_name_the_path() {
    run(async {
        let dir = TempDir::new("errors");
        let (mut c, _child) = connect().await;
        let missing = dir.remote("no-such-dir/f");
        let e = c.create(&missing, None, 0o644).await.unwrap_err();
        assert!(e.is_no_such_file(), "{e}");
        match &e {
            SftpError::Status { op, path, .. } => {
                assert_eq!((*op, path.as_str()), ("create", missing.as_str()))
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(&missing), "{e}");
        let e = c.open_read(&missing, 0).await.unwrap_err();
        assert!(
            e.is_no_such_file() && e.to_string().contains(&missing),
            "{e}"
        );
    });
}

#[test]
fn permission_denied_names_the_path() {
    run(async {
        let dir = TempDir::new("denied");
        let locked = dir.join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::write(locked.join("kept"), b"x").unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root passes every permission check: run the server as nobody instead.
        let root = std::fs::metadata(&locked).unwrap().uid() == 0;
        let (mut c, _child) = connect_as(root.then_some(65_534)).await;
        let path = dir.remote("locked/new");
        let e = c.create(&path, None, 0o644).await.unwrap_err();
        assert!(e.is_permission_denied(), "{e}");
        assert!(e.to_string().contains(&path), "{e}");
        let e = c.remove(&dir.remote("locked/kept")).await.unwrap_err();
        assert!(e.is_permission_denied(), "{e}");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    });
}

#[test]
fn server_killed_mid_upload_is_an_error_not_a_hang() {
    run(async {
        let dir = TempDir::new("killwrite");
        let (mut c, mut child) = connect().await;
        let mut f = c.create(&dir.remote("f"), None, 0o644).await.unwrap();
        let data = pattern(1 << 20, 5);
        c.write(&mut f, &data).await.unwrap();
        child.kill().await.unwrap();
        let mut err = None;
        for _ in 0..64 {
            if let Err(e) = c.write(&mut f, &data).await {
                err = Some(e);
                break;
            }
        }
        let e = match err {
            Some(e) => e,
            None => c.finish_write(f).await.unwrap_err(),
        };
        assert!(
            matches!(e, SftpError::Io(_) | SftpError::Protocol(_)),
            "{e:?}"
        );
        // Every later call fails at once.
        assert!(c.stat("/").await.is_err());
    });
}

#[test]
fn server_killed_mid_download_is_an_error_not_an_end() {
    run(async {
        let dir = TempDir::new("killread");
        std::fs::write(dir.join("f"), pattern(8 << 20, 6)).unwrap();
        let (mut c, mut child) = connect().await;
        let mut f = c.open_read(&dir.remote("f"), 0).await.unwrap();
        assert!(c.read(&mut f).await.unwrap().is_some());
        child.kill().await.unwrap();
        let e = loop {
            match c.read(&mut f).await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a killed server looked like the end of the file"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(e, SftpError::Io(_) | SftpError::Protocol(_)),
            "{e:?}"
        );
    });
}
