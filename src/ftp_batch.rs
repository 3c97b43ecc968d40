//! `sixstack ftp batch SCRIPT`: runs a batch FTP script on sixstack's own stack (or the
//! kernel's with --kernel) and reports each step: a progress bar on a terminal, a log
//! line per step otherwise; the exit status says whether every step completed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sixstack_ftp::client::{self, ClientError, Options, Report};
use sixstack_transport::Transport;

use crate::client_run::{self, Job, Via};
use crate::progress::Bar;
use crate::vault_cmd::VaultArgs;

/// Options of `sixstack ftp batch`.
#[derive(Args, Debug)]
pub struct BatchArgs {
    /// The script (one command a line; see the README).
    pub script: PathBuf,
    /// Run over the kernel's sockets instead of sixstack's.
    #[arg(long)]
    pub kernel: bool,
    /// The link to bring sixstack up on (an appliance configuration; its services are not
    /// started). Default: the lab's.
    #[arg(long, short, conflicts_with = "kernel")]
    pub config: Option<PathBuf>,
    /// PEM CA certificates that FTPS servers' certificates must lead to.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// A client certificate to present over TLS (with --key).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Seconds to wait for a reply, a connection or data.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// How often an interrupted transfer is resumed before its step fails.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Accept `PASS password` in the script.
    #[arg(long)]
    pub insecure_password: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Where the vault is.
    #[command(flatten)]
    pub vault: VaultArgs,
}

/// Prints steps as they complete.
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
        eprintln!("line {line}: {what}: FAILED: {error}");
    }

    fn progress(&mut self, _line: usize, name: &str, done: u64, total: Option<u64>) {
        self.bar.draw(name, done, total);
    }
}

struct BatchJob {
    steps: Vec<client::Step>,
    opts: Options,
    vault: VaultArgs,
    bar: bool,
}

impl Job for BatchJob {
    type Output = client::Outcome;

    async fn run<T: Transport + 'static>(self, t: T) -> client::Outcome {
        let mut printer = Printer {
            bar: Bar::new(self.bar),
        };
        let vault = self.vault;
        let passwords = move |name: &str| vault.password(name);
        client::run(&t, &self.steps, &self.opts, &passwords, &mut printer).await
    }
}

/// Runs the batch; returns the process exit status (0: every step completed; 1: a step
/// failed; 2: the script or the options are wrong and nothing ran).
pub fn run(args: BatchArgs) -> i32 {
    let outcome = run_inner(args);
    let end = outcome.as_ref().map(|o| client_run::ScriptEnd {
        failed: &o.failed,
        stopped_at: o.stopped_at,
    });
    client_run::script_status("sixstack ftp batch", end.map_err(String::clone))
}

fn run_inner(args: BatchArgs) -> Result<client::Outcome, String> {
    let text =
        std::fs::read(&args.script).map_err(|e| format!("{}: {e}", args.script.display()))?;
    let steps = client::parse(&text, args.insecure_password)
        .map_err(|e| format!("{}: {e}", args.script.display()))?;
    let tls = sixstack_tls::client::client_config(&sixstack_tls::client::ClientSettings {
        ca: args.ca.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
        ..Default::default()
    })
    .map_err(|e| format!("TLS: {e}"))?;
    if !(0.1..=86_400.0).contains(&args.timeout) {
        return Err("--timeout must be between 0.1 and 86400 seconds".into());
    }
    let opts = Options {
        tls: Some(tls),
        timeout: Duration::from_secs_f64(args.timeout),
        retries: args.retries,
        local_dir: std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
    };
    let via = if args.kernel {
        Via::Kernel
    } else {
        Via::Stack(Box::new(crate::client_config(args.config.as_deref())?))
    };
    let job = BatchJob {
        steps,
        opts,
        vault: args.vault,
        bar: !args.no_progress && std::io::stderr().is_terminal(),
    };
    client_run::run(via, job)
}
