//! What the batch clients' tests share: the sixstack binary, scratch directories, a
//! vault made with `sixstack vault`, and the lab's link configuration in a file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::LabGuard;

/// The sixstack binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sixstack");

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh scratch directory named for this process and `tag`.
pub fn scratch(tag: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("sixstack-client-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// A vault in `dir` (unlocked by its key file beside it) holding `entries`, made with
/// `sixstack vault init` and `sixstack vault set`.
pub fn vault(dir: &Path, entries: &[(&str, &str)]) -> PathBuf {
    let v = dir.join("vault");
    let out = Command::new(BIN)
        .args(["vault", "init", "--vault"])
        .arg(&v)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, secret) in entries {
        let mut c = Command::new(BIN)
            .args(["vault", "set", name, "--vault"])
            .arg(&v)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(c.stdin.take().unwrap(), "{secret}").unwrap();
        assert!(c.wait().unwrap().success());
    }
    v
}

/// The lab's configuration in a file, for a client's own stack.
pub fn lab_config_file(g: &LabGuard, dir: &Path) -> PathBuf {
    let p = dir.join("link.toml");
    std::fs::write(&p, sixstack::lab_config(&g.lab, None)).unwrap();
    p
}

/// What a client command printed, and its exit status.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub out: String,
}

/// Runs `cmd` to its end.
pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
