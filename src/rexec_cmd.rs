//! `sixstack rexec HOST COMMAND...`: runs a command on a host's rexec server over
//! sixstack's own stack or the kernel's, relays its output and exits with its status.

use clap::Args;
use sixstack_rexec::cli::RexecArgs;
use sixstack_transport::Transport;

use crate::client_run::{self, BlockingSink, Job, ViaArgs};
use crate::vault_cmd::{client_password, VaultArgs};

/// The exit status when sixstack could not learn the command's: like ssh, 255.
pub const CLIENT_FAILED: i32 = 255;

/// Options of `sixstack rexec`.
#[derive(Args, Debug)]
pub struct RexecCmd {
    #[command(flatten)]
    pub via: ViaArgs,
    /// Where the user's password comes from: vault:NAME (an entry of the vault).
    #[arg(long, value_name = "vault:NAME")]
    pub password_from: String,
    /// Accept a clear-text password in --password-from.
    #[arg(long)]
    pub insecure_password: bool,
    #[command(flatten)]
    pub vault: VaultArgs,
    #[command(flatten)]
    pub rexec: RexecArgs,
}

struct RexecJob {
    job: sixstack_rexec::Job,
    opts: sixstack_rexec::Options,
}

impl Job for RexecJob {
    type Output = Result<sixstack_rexec::Outcome, sixstack_rexec::Error>;

    async fn run<T: Transport + 'static>(self, t: T) -> Self::Output {
        let mut out = BlockingSink(std::io::stdout());
        let mut err = BlockingSink(std::io::stderr());
        sixstack_rexec::run(&t, &self.job, &self.opts, &mut out, &mut err).await
    }
}

/// Runs the command; returns its exit status, or [`CLIENT_FAILED`].
pub fn run(args: RexecCmd) -> i32 {
    let prepared = client_password(
        &args.vault,
        Some(&args.password_from),
        args.insecure_password,
    )
    .and_then(|p| p.ok_or_else(|| "no password".to_string()))
    .and_then(|p| args.rexec.job(p).map_err(|e| e.to_string()))
    .and_then(|job| Ok((job, args.via.via()?)));
    let (job, via) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sixstack rexec: {e}");
            return CLIENT_FAILED;
        }
    };
    let opts = args.rexec.options();
    match client_run::run(via, RexecJob { job, opts }) {
        Ok(Ok(outcome)) => i32::from(outcome.exit_status),
        Ok(Err(e)) => {
            eprintln!("sixstack rexec: {e}");
            CLIENT_FAILED
        }
        Err(e) => {
            eprintln!("sixstack rexec: {e}");
            CLIENT_FAILED
        }
    }
}
