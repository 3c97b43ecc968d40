//! The FTP client of the bench: parallel `curl` transfers (RETR of a file to /dev/null, or
//! STOR of a local file), each stream one transfer after another, counted as whole files.
//! curl is what people use, speaks explicit FTPS (`--ssl-reqd`, resuming the control
//! connection's TLS session on the data connection) and is the same client for every server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{new_histogram, Errors, Report};

/// Whether a stream downloads or uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpOp {
    /// RETR `/<file>` into /dev/null.
    Retr,
    /// STOR the local `source` as `/up/<user>-s<stream>` (overwritten each time).
    Stor,
}

/// One FTP run.
#[derive(Debug, Clone)]
pub struct FtpPlan {
    /// The server's control address.
    pub target: SocketAddr,
    /// Download or upload.
    pub op: FtpOp,
    /// Parallel curl processes.
    pub streams: usize,
    /// The file's name on the server (RETR), and its size in bytes.
    pub file: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The local file uploaded by STOR.
    pub source: PathBuf,
    /// `USER:PASSWORD`.
    pub login: String,
    /// Explicit FTPS (control and data protected), verified against this CA.
    pub ca: Option<PathBuf>,
    /// Measured seconds: streams start new transfers until then, and finish them.
    pub secs: f64,
    /// Warmup seconds (transfers not counted; every stream finishes before the measured
    /// interval starts).
    pub warmup: f64,
}

/// One transfer with curl; the bytes curl moved, or why it failed.
fn transfer(p: &FtpPlan, stream: usize) -> Result<u64, String> {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "600", "-u", &p.login]);
    if let Some(ca) = &p.ca {
        c.arg("--ssl-reqd").arg("--cacert").arg(ca);
    }
    let base = format!("ftp://{}:{}", p.target.ip(), p.target.port());
    match p.op {
        FtpOp::Retr => {
            c.args(["-o", "/dev/null", "-w", "%{size_download}"])
                .arg(format!("{base}/{}", p.file));
        }
        FtpOp::Stor => {
            // Named after the user: a server may not overwrite a file another one made.
            let user = p.login.split(':').next().unwrap_or("ftp");
            c.args(["-w", "%{size_upload}", "-T"])
                .arg(&p.source)
                .arg(format!("{base}/up/{user}-s{stream}"));
        }
    }
    let out = c.output().map_err(|e| format!("curl: {e}"))?;
    let moved = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u64>()
        .unwrap_or(0);
    if !out.status.success() {
        return Err(format!(
            "curl {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if moved != p.size {
        return Err(format!("curl moved {moved} of {} bytes", p.size));
    }
    Ok(moved)
}

/// Runs the streams: a warmup phase, then the measured one. `transactions` counts whole
/// files, `size` is the file's size, so bytes/s = tps × size; the latency histogram holds
/// each measured transfer's duration.
pub fn run_ftp(p: &FtpPlan) -> Report {
    let streams = p.streams.max(1);
    let barrier = Arc::new(Barrier::new(streams + 1));
    let shared = Arc::new(Mutex::new((new_histogram(), Errors::default(), 0u64)));
    let start = Arc::new(Mutex::new(Instant::now()));
    let mut handles = Vec::new();
    for stream in 0..streams {
        let (p, barrier, shared, start) =
            (p.clone(), barrier.clone(), shared.clone(), start.clone());
        handles.push(std::thread::spawn(move || {
            let warm_end = Instant::now() + Duration::from_secs_f64(p.warmup);
            let mut failed = None;
            while Instant::now() < warm_end && failed.is_none() {
                failed = transfer(&p, stream).err();
            }
            barrier.wait();
            // The coordinator sets the start between the two barriers.
            barrier.wait();
            let t0 = *start.lock().unwrap_or_else(|e| e.into_inner());
            let end = t0 + Duration::from_secs_f64(p.secs);
            let mut done = 0u64;
            let mut errors = Errors::default();
            let mut times = Vec::new();
            if let Some(e) = failed {
                errors.push(format!("warmup: {e}"));
            }
            while Instant::now() < end && errors.count == 0 {
                let t = Instant::now();
                match transfer(&p, stream) {
                    Ok(_) => {
                        done += 1;
                        times.push(t.elapsed().as_nanos() as u64);
                    }
                    Err(e) => errors.push(e),
                }
            }
            let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
            for ns in times {
                let _ = g.0.record(ns.max(1));
            }
            g.1.merge(errors);
            g.2 += done;
        }));
    }
    barrier.wait();
    *start.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    barrier.wait();
    let t0 = *start.lock().unwrap_or_else(|e| e.into_inner());
    for h in handles {
        let _ = h.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let (hist, errors, transactions) = {
        let g = shared.lock().unwrap_or_else(|e| e.into_inner());
        (g.0.clone(), g.1.clone(), g.2)
    };
    Report {
        mode: match p.op {
            FtpOp::Retr => "ftp_retr",
            FtpOp::Stor => "ftp_stor",
        },
        target: p.target,
        conns: streams,
        connected: streams,
        threads: streams,
        size: usize::try_from(p.size).unwrap_or(usize::MAX),
        secs,
        transactions,
        losses: 0,
        errors,
        hist,
    }
}
