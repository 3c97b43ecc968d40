//! The transfer log: one line per file transfer, finished or not, in the xferlog format
//! that wu-ftpd, ProFTPD and vsftpd write (and log analysers read):
//!
//! ```text
//! Tue Dec  1 05:08:30 2026 2 10.0.0.1 1048576 /in/data.bin b _ i r anna ftp 0 * c
//! ```
//!
//! time of the end (UTC), seconds taken, client, bytes, file, type (`a` ASCII, `b` binary),
//! special action (`_`), direction (`o` out, `i` in), access mode (`r`: a real user),
//! user, service, authentication method (`0`), authenticated id (`*`), completion (`c`
//! complete, `i` incomplete).
//!
//! Shards hand lines to one writer thread (a file append is disk I/O, which never runs on
//! a shard); the thread opens the file for each batch, so a rotated log is followed.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc;

use crate::fs::civil;

/// Which way a file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RETR: from the server to the client.
    Out,
    /// STOR, STOU, APPE: from the client to the server.
    In,
}

/// One transfer.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// When it ended, seconds since the epoch.
    pub ended: i64,
    /// Seconds it took.
    pub secs: u64,
    /// The client's address.
    pub client: IpAddr,
    /// Bytes moved on the data connection.
    pub bytes: u64,
    /// The file, as the user sees it.
    pub path: &'a str,
    /// TYPE A (else binary).
    pub ascii: bool,
    /// Which way.
    pub direction: Direction,
    /// The logged-in user.
    pub user: &'a str,
    /// Whether the whole transfer went through.
    pub complete: bool,
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A field without blanks or control characters (they would split or break the line).
fn field(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.is_empty() {
        "-".into()
    } else {
        out
    }
}

impl Record<'_> {
    /// The record as one xferlog line (no newline).
    pub fn line(&self) -> String {
        let days = self.ended.div_euclid(86_400);
        let (y, m, d) = civil(days);
        let s = self.ended.rem_euclid(86_400);
        let weekday = DAYS[days.rem_euclid(7) as usize];
        let month = MONTHS[(m as usize).saturating_sub(1).min(11)];
        format!(
            "{weekday} {month} {d:>2} {:02}:{:02}:{:02} {y} {} {} {} {} {} _ {} r {} ftp 0 * {}",
            s / 3600,
            s % 3600 / 60,
            s % 60,
            self.secs,
            self.client,
            self.bytes,
            field(self.path),
            if self.ascii { 'a' } else { 'b' },
            match self.direction {
                Direction::Out => 'o',
                Direction::In => 'i',
            },
            field(self.user),
            if self.complete { 'c' } else { 'i' },
        )
    }
}

/// The handle shards write records through; clones share the writer thread.
#[derive(Debug, Clone)]
pub struct XferLog {
    tx: mpsc::Sender<String>,
}

impl XferLog {
    /// Checks that `path` can be appended to and starts its writer thread.
    pub fn open(path: &Path) -> io::Result<XferLog> {
        append(path, &[])?;
        let (tx, rx) = mpsc::channel::<String>();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("ftp-xferlog".into())
            .spawn(move || writer(&path, &rx))?;
        Ok(XferLog { tx })
    }

    /// Logs one transfer (also as a log line under `sixstack_ftp::xferlog`).
    pub fn record(&self, r: &Record<'_>) {
        let line = r.line();
        log::info!(target: "sixstack_ftp::xferlog", "{line}");
        // The writer thread lives as long as any handle does.
        let _ = self.tx.send(line);
    }
}

fn append(path: &Path, lines: &[String]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes())
}

/// Writes what arrives, a batch at a time, until every handle is gone.
fn writer(path: &Path, rx: &mpsc::Receiver<String>) {
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        match append(path, &batch) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                log::error!(
                    "ftp: transfer log {}: {e}; {} lines lost",
                    path.display(),
                    batch.len()
                );
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_the_xferlog_format() {
        let r = Record {
            ended: 1_796_101_710, // 2026-12-01 05:08:30 UTC, a Tuesday
            secs: 2,
            client: "10.0.0.1".parse().unwrap(),
            bytes: 1_048_576,
            path: "/in/my file.bin",
            ascii: false,
            direction: Direction::In,
            user: "anna",
            complete: true,
        };
        assert_eq!(
            r.line(),
            "Tue Dec  1 05:08:30 2026 2 10.0.0.1 1048576 /in/my_file.bin b _ i r anna ftp 0 * c"
        );
        let r = Record {
            ended: 0,
            ascii: true,
            direction: Direction::Out,
            complete: false,
            path: "",
            ..r
        };
        assert_eq!(
            r.line(),
            "Thu Jan  1 00:00:00 1970 2 10.0.0.1 1048576 - a _ o r anna ftp 0 * i"
        );
    }

    #[test]
    fn the_writer_appends_every_line() {
        let path = std::env::temp_dir().join(format!("sixstack-xferlog-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = XferLog::open(&path).unwrap();
        for i in 0..50u64 {
            log.record(&Record {
                ended: 0,
                secs: 0,
                client: "::1".parse().unwrap(),
                bytes: i,
                path: "/f",
                ascii: false,
                direction: Direction::Out,
                user: "u",
                complete: true,
            });
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 50 {
                assert!(
                    text.lines().all(|l| l.split_whitespace().count() == 18),
                    "{text}"
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{text}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&path);
        assert!(XferLog::open(Path::new("/nonexistent-dir/xferlog")).is_err());
    }
}
