//! The options of `sixstack mail send`, and how they become a [`MailRequest`]. The caller
//! reads the body (a file or stdin), adds any attachment of its own (the PDF of `--pdf`) and
//! passes the password from the vault.

use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::address::Mailbox;
use crate::auth::{AuthChoice, Credentials};
use crate::limits::{DEFAULT_MAX_MESSAGE, MAX_ATTACHMENTS};
use crate::mime::{Attachment, Message};
use crate::request::{EhloName, MailRequest, RequestError, Timeouts, TlsMode, TlsOptions};

/// How the connection is protected (`--tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsArg {
    /// STARTTLS on the plain port; the server must offer it unless --allow-plain.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS at all: everything, the password included, in plain text.
    None,
}

/// `sixstack mail send`: one message to several recipients.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Mail server: a host name or an address.
    #[arg(long, value_name = "HOST")]
    pub server: String,
    /// Server port [default: 465 with --tls implicit, else 587].
    #[arg(long)]
    pub port: Option<u16>,
    /// Connection security.
    #[arg(long, value_enum, default_value_t = TlsArg::Starttls)]
    pub tls: TlsArg,
    /// With --tls starttls: send in plain text when the server does not offer STARTTLS
    /// (instead of failing).
    #[arg(long)]
    pub allow_plain: bool,
    /// The name the server's certificate must carry [default: --server].
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// PEM file of the CA certificates the server's certificate must lead to.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain to present (with --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// User name for SMTP AUTH (the password comes from the vault).
    #[arg(long)]
    pub user: Option<String>,
    /// AUTH mechanism: auto picks PLAIN, else LOGIN, from what the server offers.
    #[arg(long, value_enum, default_value_t = AuthChoice::Auto)]
    pub auth: AuthChoice,
    /// Sender: `addr` or `Name <addr>`; also the envelope sender.
    #[arg(long)]
    pub from: String,
    /// Recipient (repeat, or separate with commas).
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub to: Vec<String>,
    /// Copy recipient (repeat, or separate with commas).
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub cc: Vec<String>,
    /// Blind copy recipient: in the envelope only (repeat, or separate with commas).
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub bcc: Vec<String>,
    /// Subject (any Unicode).
    #[arg(long, short = 's', default_value = "")]
    pub subject: String,
    /// File with the message text [default: standard input].
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// File to attach (repeat); the content type comes from the extension.
    #[arg(long = "attach", value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Also attach the message text as a PDF, under this file name.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "message.pdf")]
    pub pdf: Option<String>,
    /// Name to give in EHLO [default: the host name if fully qualified, else [local address]].
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,
    /// Upper bound, in seconds, on every step's time-out [default: RFC 5321's: 5 minutes,
    /// 10 for the end of the data].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Largest message, in bytes after encoding.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE)]
    pub max_size: usize,
}

impl SendArgs {
    /// The port in use.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.mode().default_port())
    }

    fn mode(&self) -> TlsMode {
        match (self.tls, self.allow_plain) {
            (TlsArg::Starttls, false) => TlsMode::StartTls,
            (TlsArg::Starttls, true) => TlsMode::StartTlsIfOffered,
            (TlsArg::Implicit, _) => TlsMode::Implicit,
            (TlsArg::None, _) => TlsMode::None,
        }
    }

    /// Reads the `--attach` files (each at most `max_size` bytes).
    pub fn read_attachments(&self) -> Result<Vec<Attachment>, RequestError> {
        if self.attach.len() > MAX_ATTACHMENTS {
            return Err(RequestError::TooManyAttachments(self.attach.len()));
        }
        self.attach
            .iter()
            .map(|p| {
                let file = |source| RequestError::File {
                    path: p.clone(),
                    source,
                };
                let len = std::fs::metadata(p).map_err(file)?.len();
                if len > self.max_size as u64 {
                    return Err(RequestError::MessageTooLarge {
                        size: usize::try_from(len).unwrap_or(usize::MAX),
                        limit: self.max_size,
                    });
                }
                let data = std::fs::read(p).map_err(file)?;
                let name = p
                    .file_name()
                    .map_or_else(|| "attachment".into(), |n| n.to_string_lossy().into_owned());
                Ok(Attachment::new(name, data))
            })
            .collect()
    }

    /// The request: `body` is the message text, `extra` attachments go after the `--attach`
    /// files (which are read here), `password` is the user's (from the vault).
    pub fn into_request(
        self,
        body: Vec<u8>,
        extra: Vec<Attachment>,
        password: Option<Zeroizing<String>>,
    ) -> Result<MailRequest, RequestError> {
        let mut attachments = self.read_attachments()?;
        attachments.extend(extra);
        let parse_all = |list: &[String]| -> Result<Vec<Mailbox>, RequestError> {
            list.iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Mailbox::parse(s).map_err(RequestError::from))
                .collect()
        };
        let credentials = match (self.user.clone(), password) {
            (Some(user), Some(password)) => Some(Credentials { user, password }),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(RequestError::MissingCredentials(self.auth))
            }
        };
        let timeouts = match self.timeout {
            Some(0) => return Err(RequestError::BadTimeout),
            Some(s) => Timeouts::default().capped(Duration::from_secs(s)),
            None => Timeouts::default(),
        };
        let req = MailRequest {
            port: self.port(),
            tls: TlsOptions {
                mode: self.mode(),
                server_name: self.tls_name.clone().unwrap_or_else(|| {
                    let s = &self.server;
                    s.strip_prefix('[')
                        .and_then(|x| x.strip_suffix(']'))
                        .unwrap_or(s)
                        .to_string()
                }),
                ca: self.ca.clone(),
                cert: self.cert.clone(),
                key: self.key.clone(),
            },
            host: self.server.clone(),
            auth: self.auth,
            credentials,
            ehlo: self.ehlo.clone().map_or(EhloName::Auto, EhloName::Name),
            timeouts,
            max_message: self.max_size,
            message: Message {
                from: Mailbox::parse(&self.from)?,
                to: parse_all(&self.to)?,
                cc: parse_all(&self.cc)?,
                bcc: parse_all(&self.bcc)?,
                subject: self.subject.clone(),
                body,
                attachments,
            },
        };
        req.validate()?;
        Ok(req)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        send: SendArgs,
    }

    fn parse(args: &[&str]) -> Result<SendArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("send").chain(args.iter().copied())).map(|c| c.send)
    }

    #[test]
    fn options_become_a_request() {
        let dir = std::env::temp_dir().join(format!("sixstack-smtp-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("data.bin");
        std::fs::write(&file, [0u8, 1, 2, 255]).unwrap();
        let a = parse(&[
            "--server",
            "mail.example.org",
            "--from",
            "Anna <anna@example.org>",
            "--to",
            "bob@example.org,carl@example.org",
            "--cc",
            "dora@example.org",
            "--bcc",
            "eve@example.org",
            "-s",
            "Grüße",
            "--user",
            "anna",
            "--attach",
            file.to_str().unwrap(),
            "--pdf",
            "--timeout",
            "30",
        ])
        .unwrap();
        assert_eq!(a.pdf.as_deref(), Some("message.pdf"));
        assert_eq!(a.port(), 587);
        let pdf = Attachment::new("message.pdf", b"%PDF".to_vec());
        let r = a
            .into_request(b"hi".to_vec(), vec![pdf], Some(Zeroizing::new("pw".into())))
            .unwrap();
        assert_eq!(r.tls.mode, TlsMode::StartTls);
        assert_eq!(r.tls.server_name, "mail.example.org");
        assert_eq!(r.message.to.len(), 2);
        assert_eq!(r.message.from.name.as_deref(), Some("Anna"));
        assert_eq!(r.message.attachments.len(), 2);
        assert_eq!(r.message.attachments[0].name, "data.bin");
        assert_eq!(r.message.attachments[0].data, [0, 1, 2, 255]);
        assert_eq!(r.timeouts.data_end, Duration::from_secs(30));
        assert!(!format!("{r:?}").contains("\"pw\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn modes_and_errors() {
        let base = [
            "--server",
            "[192.0.2.1]",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
        ];
        let a = parse(&[&base[..], &["--tls", "implicit", "--auth", "none"]].concat()).unwrap();
        assert_eq!(a.port(), 465);
        let r = a.into_request(vec![], vec![], None).unwrap();
        assert_eq!(r.tls.server_name, "192.0.2.1");
        let a = parse(&[&base[..], &["--allow-plain"]].concat()).unwrap();
        assert_eq!(
            a.clone()
                .into_request(vec![], vec![], None)
                .unwrap()
                .tls
                .mode,
            TlsMode::StartTlsIfOffered
        );
        assert!(matches!(
            a.into_request(vec![], vec![], Some(Zeroizing::new("pw".into()))),
            Err(RequestError::MissingCredentials(_))
        ));
        let a = parse(&[&base[..], &["--auth", "plain"]].concat()).unwrap();
        assert!(matches!(
            a.into_request(vec![], vec![], None),
            Err(RequestError::MissingCredentials(_))
        ));
        let a = parse(&[&base[..], &["--to", "not an address"]].concat()).unwrap();
        assert!(matches!(
            a.into_request(vec![], vec![], None),
            Err(RequestError::Address(_))
        ));
        let a = parse(&[&base[..], &["--attach", "/nonexistent/x.pdf"]].concat()).unwrap();
        assert!(matches!(
            a.into_request(vec![], vec![], None),
            Err(RequestError::File { .. })
        ));
        assert!(parse(&[&base[..], &["--cert", "c.pem"]].concat()).is_err());
        assert!(parse(&[&base[..], &["--tls", "maybe"]].concat()).is_err());
        assert!(parse(&["--server", "x"]).is_err());
    }
}
