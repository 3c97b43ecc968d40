//! `sixstack mail send`: one message, with attachments and optionally the text as a PDF,
//! over sixstack's own stack or the kernel's. The exit status says what happened
//! ([`sixstack_smtp::exit`]).

use std::io::Read;

use clap::Args;
use sixstack_smtp::cli::SendArgs;
use sixstack_smtp::mime::Attachment;
use sixstack_smtp::{exit, send, MailRequest};
use sixstack_transport::Transport;

use crate::client_run::{self, Job, ViaArgs};
use crate::vault_cmd::{client_password, VaultArgs};

/// Options of `sixstack mail send`.
#[derive(Args, Debug)]
pub struct MailArgs {
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub via: ViaArgs,
    /// Where the password for --user comes from: vault:NAME (an entry of the vault).
    #[arg(long, value_name = "vault:NAME", requires = "user")]
    pub password_from: Option<String>,
    /// Accept a clear-text password in --password-from.
    #[arg(long)]
    pub insecure_password: bool,
    #[command(flatten)]
    pub vault: VaultArgs,
}

struct MailJob(MailRequest);

impl Job for MailJob {
    type Output = Result<sixstack_smtp::Delivery, sixstack_smtp::MailError>;

    async fn run<T: Transport + 'static>(self, t: T) -> Self::Output {
        send(&t, &self.0).await
    }
}

/// Sends the message; returns the process exit status.
pub fn run(args: MailArgs) -> i32 {
    let (req, via) = match request(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sixstack mail send: {e}");
            return exit::USAGE;
        }
    };
    match client_run::run(via, MailJob(req)) {
        Err(e) => {
            eprintln!("sixstack mail send: {e}");
            exit::CONNECT
        }
        Ok(Err(e)) => {
            eprintln!("sixstack mail send: {e}");
            e.exit_code()
        }
        Ok(Ok(d)) => {
            for r in &d.recipients {
                let verdict = if r.accepted() { "accepted" } else { "REFUSED" };
                println!("{}: {verdict}: {}", r.address, r.reply);
            }
            let how = match (d.tls, d.auth) {
                (true, Some(m)) => format!("over TLS, AUTH {}", m.name()),
                (true, None) => "over TLS".into(),
                (false, Some(m)) => format!("in plain text, AUTH {}", m.name()),
                (false, None) => "in plain text".into(),
            };
            println!("sent {} {how}: {}", d.message_id, d.reply);
            d.exit_code()
        }
    }
}

fn request(args: MailArgs) -> Result<(MailRequest, client_run::Via), String> {
    let password = client_password(
        &args.vault,
        args.password_from.as_deref(),
        args.insecure_password,
    )?;
    let body = match &args.send.body {
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => {
            let mut b = Vec::new();
            std::io::stdin()
                .take(args.send.max_size as u64 + 1)
                .read_to_end(&mut b)
                .map_err(|e| format!("standard input: {e}"))?;
            b
        }
    };
    let mut extra = Vec::new();
    if let Some(name) = &args.send.pdf {
        let pdf = sixstack_txt2pdf::convert(&body, &sixstack_txt2pdf::Options::default())
            .map_err(|e| format!("--pdf: {e}"))?;
        extra.push(Attachment::new(name.clone(), pdf));
    }
    let via = args.via.via()?;
    let req = args
        .send
        .into_request(body, extra, password)
        .map_err(|e| e.to_string())?;
    Ok((req, via))
}
