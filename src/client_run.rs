//! Where a batch client (FTP, mail, remote execution) runs: on sixstack's own stack — an
//! appliance brought up on the configured link with no services, the client a task on its
//! first shard — or over the kernel's sockets (`--kernel`). The client code is the same
//! either way ([`sixstack_transport::Transport`]).

use std::future::Future;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sixstack_transport::{KernelTransport, StackTransport, Transport};

use crate::app;
use crate::config::Config;

/// A client's work, runnable over either transport.
pub trait Job: Send + 'static {
    /// What the job gives back.
    type Output: Send + 'static;
    /// Runs the job over `t`.
    fn run<T: Transport + 'static>(self, t: T) -> impl Future<Output = Self::Output>;
}

/// Which sockets a job uses.
#[derive(Debug)]
pub enum Via {
    /// The kernel's, on a tokio current-thread runtime.
    Kernel,
    /// sixstack's own, on the link this configuration describes.
    Stack(Box<Config>),
}

/// Runs `job` and returns its output. Starting the stack retries a receive queue that
/// is still busy from a socket closed a moment ago.
pub fn run<J: Job>(via: Via, job: J) -> Result<J::Output, String> {
    match via {
        Via::Kernel => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the kernel sockets' runtime: {e}"))?;
            Ok(rt.block_on(job.run(KernelTransport)))
        }
        Via::Stack(cfg) => on_stack(*cfg, job),
    }
}

fn on_stack<J: Job>(cfg: Config, job: J) -> Result<J::Output, String> {
    let (tx, rx) = mpsc::channel::<J::Output>();
    let slot = Arc::new(Mutex::new(Some((job, tx))));
    let mut last = String::new();
    let mut running = None;
    for attempt in 0..6u32 {
        let slot = slot.clone();
        let started = app::start(
            cfg.clone(),
            Arc::new(move |net: &sixstack_stack::Net, shard| {
                if shard != 0 {
                    return;
                }
                let Some((job, tx)) = slot.lock().ok().and_then(|mut s| s.take()) else {
                    return;
                };
                let t = StackTransport::new(net);
                net.spawn(async move {
                    let out = job.run(t).await;
                    let _ = tx.send(out);
                });
            }),
        );
        match started {
            Ok(r) => {
                running = Some(r);
                break;
            }
            Err(e) => {
                last = e.to_string();
                let busy = last.contains("busy") || last.contains("EBUSY");
                if !busy {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500 * u64::from(attempt + 1)));
            }
        }
    }
    let Some(running) = running else {
        return Err(format!(
            "cannot bring up sixstack on {}: {last} (is an appliance running on that link? \
             give a link of its own with --config, or use --kernel)",
            cfg.file.interface.name
        ));
    };
    let out = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(out) => break Ok(out),
            Err(mpsc::RecvTimeoutError::Timeout) if !running.is_finished() => continue,
            Err(_) => break Err("the stack stopped before the job ended".to_string()),
        }
    };
    if let Err(e) = running.stop() {
        log::warn!("stopping the client's stack: {e}");
    }
    out
}

/// Where a client runs, as every client command takes it.
#[derive(clap::Args, Debug, Clone)]
pub struct ViaArgs {
    /// Run over the kernel's sockets instead of sixstack's.
    #[arg(long)]
    pub kernel: bool,
    /// The link to bring sixstack up on (an appliance configuration; its services are not
    /// started). Default: the lab's.
    #[arg(long, short = 'c', conflicts_with = "kernel")]
    pub config: Option<std::path::PathBuf>,
}

impl ViaArgs {
    /// The sockets these options ask for.
    pub fn via(&self) -> Result<Via, String> {
        if self.kernel {
            Ok(Via::Kernel)
        } else {
            Ok(Via::Stack(Box::new(crate::client_config(
                self.config.as_deref(),
            )?)))
        }
    }
}

/// A blocking writer (the process's standard output or error) as an async sink: a
/// client's output is written as it arrives, on whichever executor runs the client.
#[derive(Debug)]
pub struct BlockingSink<W>(pub W);

impl<W: std::io::Write + Unpin> tokio::io::AsyncWrite for BlockingSink<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.0.write(buf))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.0.flush())
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.0.flush())
    }
}

/// How a batch script ended, as every script client reports it.
#[derive(Debug)]
pub struct ScriptEnd<'a> {
    /// The failed steps: line and what went wrong.
    pub failed: &'a [(usize, String)],
    /// The line where ON ERROR STOP ended the script.
    pub stopped_at: Option<usize>,
}

/// The exit status of a script client (0: every step completed; 1: a step failed; 2: the
/// script or the options are wrong and nothing ran), its failures printed under `tool`.
pub fn script_status(tool: &str, end: Result<ScriptEnd<'_>, String>) -> i32 {
    match end {
        Ok(end) if end.failed.is_empty() => 0,
        Ok(end) => {
            for (line, e) in end.failed {
                eprintln!("{tool}: line {line}: {e}");
            }
            if let Some(l) = end.stopped_at {
                eprintln!("{tool}: stopped at line {l} (ON ERROR STOP)");
            }
            1
        }
        Err(e) => {
            eprintln!("{tool}: {e}");
            2
        }
    }
}
