//! `sixstack scp SCRIPT` (the appliance side: a script of transfers and remote commands
//! through scpd, over sixstack's stack or the kernel's) and `sixstack scpd --config F`
//! (the SSH pass-through daemon, on an ordinary Linux host).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sixstack_scp::client::{self, ClientError, Options, Report};
use sixstack_transport::Transport;

use crate::client_run::{self, Job, ViaArgs};
use crate::progress::Bar;

/// Options of `sixstack scp`.
#[derive(Args, Debug)]
pub struct ScpArgs {
    /// The script (one command a line; see the README).
    pub script: PathBuf,
    #[command(flatten)]
    pub via: ViaArgs,
    /// PEM CA certificates the daemon's certificate must lead to.
    #[arg(long)]
    pub ca: PathBuf,
    /// The appliance's client certificate (the daemon's allow-list knows it).
    #[arg(long)]
    pub cert: PathBuf,
    /// The client certificate's key.
    #[arg(long)]
    pub key: PathBuf,
    /// The name the daemon's certificate must carry (default: the DAEMON host).
    #[arg(long)]
    pub server_name: Option<String>,
    /// Seconds to wait for the daemon.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// How often a transfer whose connection broke is tried again.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// Options of `sixstack scpd`.
#[derive(Args, Debug)]
pub struct ScpdArgs {
    /// The daemon's configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Check the configuration and the TLS material, then exit.
    #[arg(long)]
    pub check: bool,
}

struct Printer {
    bar: Bar,
}

impl Report for Printer {
    fn step_ok(&mut self, line: usize, what: &str) {
        self.bar.clear();
        println!("line {line}: {what}");
    }

    fn step_failed(&mut self, line: usize, what: &str, error: &ClientError) {
        self.bar.clear();
        match error.kind() {
            Some(k) => eprintln!("line {line}: {what}: FAILED ({k:?}): {error}"),
            None => eprintln!("line {line}: {what}: FAILED: {error}"),
        }
    }

    fn progress(&mut self, _line: usize, name: &str, done: u64, total: Option<u64>) {
        self.bar.draw(name, done, total);
    }

    fn output(&mut self, stderr: bool, data: &[u8]) {
        self.bar.clear();
        if stderr {
            let mut e = std::io::stderr();
            let _ = e.write_all(data);
            let _ = e.flush();
        } else {
            let mut o = std::io::stdout();
            let _ = o.write_all(data);
            let _ = o.flush();
        }
    }
}

struct ScpJob {
    steps: Vec<client::Step>,
    opts: Options,
    bar: bool,
}

impl Job for ScpJob {
    type Output = client::Outcome;

    async fn run<T: Transport + 'static>(self, t: T) -> client::Outcome {
        let mut printer = Printer {
            bar: Bar::new(self.bar),
        };
        client::run(&t, &self.steps, &self.opts, &mut printer).await
    }
}

/// Runs the script; returns the exit status (0: every step completed; 1: a step failed;
/// 2: the script or the options are wrong and nothing ran).
pub fn run(args: ScpArgs) -> i32 {
    let outcome = run_inner(args);
    let end = outcome.as_ref().map(|o| client_run::ScriptEnd {
        failed: &o.failed,
        stopped_at: o.stopped_at,
    });
    client_run::script_status("sixstack scp", end.map_err(String::clone))
}

fn run_inner(args: ScpArgs) -> Result<client::Outcome, String> {
    let text =
        std::fs::read(&args.script).map_err(|e| format!("{}: {e}", args.script.display()))?;
    let steps = client::parse(&text).map_err(|e| format!("{}: {e}", args.script.display()))?;
    let tls = sixstack_tls::client::client_config(&sixstack_tls::client::ClientSettings {
        ca: Some(args.ca.clone()),
        cert: Some(args.cert.clone()),
        key: Some(args.key.clone()),
        ..Default::default()
    })
    .map_err(|e| format!("TLS: {e}"))?;
    if !(0.1..=86_400.0).contains(&args.timeout) {
        return Err("--timeout must be between 0.1 and 86400 seconds".into());
    }
    let opts = Options {
        tls,
        server_name: args.server_name.clone(),
        timeout: Duration::from_secs_f64(args.timeout),
        retries: args.retries,
        local_dir: std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
    };
    let via = args.via.via()?;
    let job = ScpJob {
        steps,
        opts,
        bar: !args.no_progress && std::io::stderr().is_terminal(),
    };
    client_run::run(via, job)
}

/// Runs the daemon until it is killed; returns an error when it cannot start.
pub fn scpd(args: ScpdArgs) -> Result<(), String> {
    let config =
        sixstack_scp::daemon::DaemonConfig::load(&args.config).map_err(|e| e.to_string())?;
    if args.check {
        sixstack_scp::daemon::acceptor(&config).map_err(|e| e.to_string())?;
        println!(
            "{}: ok ({} appliance(s) on the allow-list)",
            args.config.display(),
            config.appliances.len()
        );
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(async move {
        let appliances = config.appliances.len();
        let daemon = sixstack_scp::daemon::Daemon::bind(config)
            .await
            .map_err(|e| e.to_string())?;
        let addrs: Vec<String> = daemon.local_addrs().iter().map(|a| a.to_string()).collect();
        println!(
            "scpd: listening on {} ({appliances} appliance(s) on the allow-list)",
            addrs.join(", ")
        );
        daemon.serve().await;
        Ok(())
    })
}
