//! The legacy client against OpenSSH's own scp in sink (`-t`) and source (`-f`) mode, run
//! as a child process on its stdin and stdout as at the far end of `ssh HOST scp -t ...`,
//! and against scripted peers for what scp never does on its own.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("sixstack-scp-legacy-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn remote(&self, name: &str) -> String {
        self.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), test)
                .await
                .expect("test timed out");
        });
}

/// `scp ARGS` with piped stdin and stdout.
fn scp(args: &[&str]) -> (ChildStdout, ChildStdin, Child) {
    let mut child = Command::new("scp")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run OpenSSH's scp from PATH ({e}); install openssh-client")
        });
    let r = child.stdout.take().unwrap();
    let w = child.stdin.take().unwrap();
    (r, w, child)
}

async fn send(path: &str, name: &str, data: &[u8], piece: usize) -> Result<Child, ScpError> {
    let (r, w, child) = scp(&["-t", "--", path]);
    let mut sink = ScpSink::start(r, w).await?;
    sink.begin(name, 0o644, data.len() as u64).await?;
    for chunk in data.chunks(piece) {
        sink.write(chunk).await?;
    }
    sink.finish().await?;
    Ok(child)
}

async fn receive(args: &[&str]) -> Result<(Vec<u8>, u64, u32, String), ScpError> {
    let (r, w, _child) = scp(args);
    let mut source = ScpSource::start(r, w).await?;
    let mut got = Vec::new();
    while let Some(chunk) = source.read().await? {
        assert!(!chunk.is_empty() && chunk.len() <= 64 * 1024);
        got.extend_from_slice(&chunk);
    }
    assert!(source.read().await?.is_none(), "the end is sticky");
    Ok((got, source.size(), source.mode(), source.name().to_owned()))
}

#[test]
fn sink_0_1_and_3_mib_bytes_exact() {
    run(async {
        let dir = TempDir::new("sink");
        for (len, piece) in [(0, 1), (1, 1), (3 << 20, 100_003)] {
            let data = pattern(len, 1);
            let path = dir.remote(&format!("f{len}"));
            let mut child = send(&path, "ignored", &data, piece).await.unwrap();
            assert!(child.wait().await.unwrap().success());
            assert!(std::fs::read(&path).unwrap() == data, "{len} bytes");
        }
    });
}

#[test]
fn sink_into_a_directory_uses_the_name() {
    run(async {
        let dir = TempDir::new("sinkdir");
        let mut child = send(&dir.remote(""), "named.bin", b"hello", 2)
            .await
            .unwrap();
        assert!(child.wait().await.unwrap().success());
        assert_eq!(std::fs::read(dir.join("named.bin")).unwrap(), b"hello");
    });
}

#[test]
fn sink_into_a_missing_directory_is_the_remote_message() {
    run(async {
        let dir = TempDir::new("sinkmissing");
        let path = dir.remote("no-such-dir/f");
        let e = send(&path, "f", b"data", 4).await.unwrap_err();
        match &e {
            ScpError::Remote(m) => {
                assert!(
                    m.contains(&path) && m.contains("No such file or directory"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn sink_refuses_wrong_sizes_and_names_before_sending() {
    run(async {
        let dir = TempDir::new("sinksizes");
        let path = dir.remote("f");
        let (r, w, _child) = scp(&["-t", "--", &path]);
        let mut sink = ScpSink::start(r, w).await.unwrap();
        assert!(matches!(sink.write(b"x").await, Err(ScpError::Protocol(_))));
        for bad in ["", "a/b", "a\nb", ".."] {
            assert!(matches!(
                sink.begin(bad, 0o644, 1).await,
                Err(ScpError::Protocol(_))
            ));
        }
        // The sink saw none of it: a good file still goes through.
        sink.begin("f", 0o600, 3).await.unwrap();
        assert!(matches!(
            sink.write(b"abcd").await,
            Err(ScpError::Protocol(_))
        ));
        sink.write(b"ab").await.unwrap();
        assert!(matches!(sink.finish().await, Err(ScpError::Protocol(_))));
    });
}

#[test]
fn sink_whose_remote_scp_is_missing_is_an_io_error() {
    run(async {
        // What a remote shell without scp looks like: the channel ends at once.
        let mut child = Command::new("true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let r = child.stdout.take().unwrap();
        let w = child.stdin.take().unwrap();
        assert!(matches!(ScpSink::start(r, w).await, Err(ScpError::Io(_))));
    });
}

#[test]
fn source_3_mib_0_and_1_bytes_exact() {
    run(async {
        let dir = TempDir::new("source");
        for len in [3 << 20, 0, 1] {
            let data = pattern(len, 2);
            let path = dir.join("src.bin");
            std::fs::write(&path, &data).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640))
                .unwrap();
            let path = dir.remote("src.bin");
            let (got, size, mode, name) = receive(&["-f", "--", &path]).await.unwrap();
            assert!(got == data, "{len} bytes");
            assert_eq!((size, mode, name.as_str()), (len as u64, 0o640, "src.bin"));
        }
    });
}

#[test]
fn source_with_times_skips_the_time_line() {
    run(async {
        let dir = TempDir::new("sourcetimes");
        std::fs::write(dir.join("f"), b"timed").unwrap();
        let (got, ..) = receive(&["-p", "-f", "--", &dir.remote("f")])
            .await
            .unwrap();
        assert_eq!(got, b"timed");
    });
}

#[test]
fn source_of_a_missing_file_or_a_directory_is_the_remote_message() {
    run(async {
        let dir = TempDir::new("sourcemissing");
        let path = dir.remote("missing");
        match receive(&["-f", "--", &path]).await {
            Err(ScpError::Remote(m)) => {
                assert!(m.contains(&path) && m.contains("No such file"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match receive(&["-f", "--", &dir.remote("")]).await {
            Err(ScpError::Remote(m)) => assert!(m.contains("not a regular file"), "{m}"),
            other => panic!("{other:?}"),
        }
    });
}

/// A scripted source: `script` is what it says, whatever it is told.
async fn scripted_source(script: &'static [u8]) -> Result<Vec<u8>, ScpError> {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let _ = theirs.write_all(script).await;
        // Swallow the acknowledgements until the client is done.
        let mut sink = [0; 64];
        while let Ok(n) = theirs.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let (r, w) = tokio::io::split(ours);
    let mut source = ScpSource::start(r, w).await?;
    let mut got = Vec::new();
    while let Some(chunk) = source.read().await? {
        got.extend_from_slice(&chunk);
    }
    Ok(got)
}

/// A source that ends its side of the channel after writing `script`.
async fn closing_source(script: &'static [u8]) -> Result<Vec<u8>, ScpError> {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    theirs.write_all(script).await.unwrap();
    theirs.shutdown().await.unwrap();
    tokio::spawn(async move {
        let mut sink = [0; 64];
        while let Ok(n) = theirs.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let (r, w) = tokio::io::split(ours);
    let mut source = ScpSource::start(r, w).await?;
    let mut got = Vec::new();
    while let Some(chunk) = source.read().await? {
        got.extend_from_slice(&chunk);
    }
    Ok(got)
}

#[test]
fn scripted_sources() {
    run(async {
        assert_eq!(
            scripted_source(b"T1 0 2 0\nC0644 3 f\nabc\0")
                .await
                .unwrap(),
            b"abc"
        );
        // A read error on the far side is reported after the data.
        match scripted_source(b"C0644 3 f\nabc\x01scp: f: Input/output error\n").await {
            Err(ScpError::Remote(m)) => assert_eq!(m, "scp: f: Input/output error"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            scripted_source(b"D0755 0 dir\n").await,
            Err(ScpError::Protocol(m)) if m.contains("directory")
        ));
        assert!(matches!(
            scripted_source(b"Welcome to host\n").await,
            Err(ScpError::Protocol(m)) if m.contains("Welcome")
        ));
        assert!(matches!(
            scripted_source(b"C0644 x f\n").await,
            Err(ScpError::Protocol(_))
        ));
        assert!(matches!(
            scripted_source(b"C0644 1 ../evil\n").await,
            Err(ScpError::Protocol(_))
        ));
        assert!(matches!(
            scripted_source(b"T1 0 2 0\nT1 0 2 0\nT1 0 2 0\nT1 0 2 0\nT1 0 2 0\n").await,
            Err(ScpError::Protocol(_))
        ));
        // Closed mid-line, mid-data and before the final status: errors, never an end.
        for script in [&b"C0644 10"[..], b"C0644 10 f\nabc", b"C0644 3 f\nabc", b""] {
            let script: &'static [u8] = script;
            assert!(
                matches!(closing_source(script).await, Err(ScpError::Io(_))),
                "{script:?}"
            );
        }
    });
}
