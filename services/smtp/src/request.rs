//! What to send and how: the server, TLS, authentication, time-outs and the message, checked
//! as a whole before a connection is made.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::address::{check_address, AddressError};
use crate::auth::{AuthChoice, Credentials};
use crate::content_type;
use crate::limits::{MAX_ATTACHMENTS, MAX_RECIPIENTS, MAX_SUBJECT};
use crate::mime::Message;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS, required: a server that does not offer it is an error.
    StartTls,
    /// STARTTLS when offered, else plain text (an explicit opt-out).
    StartTlsIfOffered,
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain text (an explicit opt-out).
    None,
}

impl TlsMode {
    /// The usual port: 465 for implicit TLS, 587 (submission) otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Implicit => 465,
            _ => 587,
        }
    }
}

/// TLS settings.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The protection.
    pub mode: TlsMode,
    /// The name the server's certificate must carry (a DNS name or an IP address).
    pub server_name: String,
    /// PEM CA certificates to trust.
    pub ca: Option<PathBuf>,
    /// A client certificate chain to present.
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    pub key: Option<PathBuf>,
}

/// Time-outs of each step; the defaults are RFC 5321 §4.5.3.2's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The TCP connect.
    pub connect: Duration,
    /// The server's greeting (220).
    pub greeting: Duration,
    /// The TLS handshake.
    pub tls: Duration,
    /// EHLO, HELO, STARTTLS, AUTH, QUIT.
    pub command: Duration,
    /// MAIL FROM.
    pub mail: Duration,
    /// Each RCPT TO.
    pub rcpt: Duration,
    /// DATA (the 354).
    pub data_start: Duration,
    /// Each block of message data written.
    pub data_block: Duration,
    /// The reply after the final dot.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let min = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            connect: sixstack_transport::CONNECT_TIMEOUT,
            greeting: min(5),
            tls: min(2),
            command: min(5),
            mail: min(5),
            rcpt: min(5),
            data_start: min(2),
            data_block: min(3),
            data_end: min(10),
        }
    }
}

impl Timeouts {
    /// Every limit at most `cap`.
    pub fn capped(self, cap: Duration) -> Timeouts {
        let c = |d: Duration| d.min(cap);
        Timeouts {
            connect: c(self.connect),
            greeting: c(self.greeting),
            tls: c(self.tls),
            command: c(self.command),
            mail: c(self.mail),
            rcpt: c(self.rcpt),
            data_start: c(self.data_start),
            data_block: c(self.data_block),
            data_end: c(self.data_end),
        }
    }
}

/// The name sixstack gives in EHLO.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EhloName {
    /// The host's name if it is fully qualified, else the local address as a literal
    /// (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
    #[default]
    Auto,
    /// This name.
    Name(String),
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_literal(s: &str) -> bool {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .is_some_and(|l| {
            !l.is_empty()
                && l.len() <= 60
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c))
        })
}

impl EhloName {
    /// The name for a connection from `local`.
    pub fn resolve(&self, local: Option<SocketAddr>) -> String {
        match self {
            EhloName::Name(n) => n.clone(),
            EhloName::Auto => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                let host = host.trim();
                if host.contains('.') && is_domain(host) {
                    return host.to_string();
                }
                match local.map(|a| a.ip()) {
                    Some(std::net::IpAddr::V6(v6)) => format!("[IPv6:{v6}]"),
                    Some(ip) => format!("[{ip}]"),
                    None => "[127.0.0.1]".to_string(),
                }
            }
        }
    }
}

/// One message to send, and how.
#[derive(Debug, Clone)]
pub struct MailRequest {
    /// The server's host name or address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// TLS.
    pub tls: TlsOptions,
    /// The AUTH mechanism.
    pub auth: AuthChoice,
    /// The user and password (required unless `auth` is `None`; with `Auto`, sending
    /// without them skips AUTH).
    pub credentials: Option<Credentials>,
    /// The EHLO name.
    pub ehlo: EhloName,
    /// Time-outs.
    pub timeouts: Timeouts,
    /// The largest message (after encoding) sixstack agrees to send.
    pub max_message: usize,
    /// The message.
    pub message: Message,
}

/// Why a request is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A bad address (sender or recipient).
    #[error(transparent)]
    Address(#[from] AddressError),
    /// No To, Cc or Bcc recipient.
    #[error("no recipient (give --to, --cc or --bcc)")]
    NoRecipients,
    /// More recipients than sixstack sends one message to.
    #[error("{0} recipients; at most {MAX_RECIPIENTS}")]
    TooManyRecipients(usize),
    /// More attachments than sixstack sends.
    #[error("{0} attachments; at most {MAX_ATTACHMENTS}")]
    TooManyAttachments(usize),
    /// A subject longer than [`MAX_SUBJECT`] bytes.
    #[error("the subject is longer than {MAX_SUBJECT} bytes")]
    SubjectTooLong,
    /// A content type that is not `type/subtype`.
    #[error("{0:?} is not a content type (type/subtype)")]
    BadContentType(String),
    /// The encoded message is larger than allowed.
    #[error("the message has {size} bytes encoded, more than the limit of {limit}")]
    MessageTooLarge {
        /// The size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Authentication is asked for without a user or password.
    #[error("--auth {0:?} needs --user and a password")]
    MissingCredentials(AuthChoice),
    /// Credentials given with `--auth none`.
    #[error("a user is given but --auth is none")]
    CredentialsWithoutAuth,
    /// A user name or password that cannot be sent (NUL, line breaks, empty).
    #[error("the user name or password has characters that cannot be sent")]
    BadCredentials,
    /// A bad EHLO name.
    #[error("{0:?} is not a host name or address literal for EHLO")]
    BadEhloName(String),
    /// A bad server host name or TLS server name.
    #[error("{0:?} is not a host name or address")]
    BadHost(String),
    /// Port 0.
    #[error("port 0 is not a server port")]
    BadPort,
    /// A client certificate without its key, or the other way round.
    #[error("a client certificate needs both --cert and --key")]
    HalfClientCert,
    /// A file (body or attachment) cannot be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// A time-out of zero.
    #[error("a time-out must be at least one second")]
    BadTimeout,
}

fn host_ok(h: &str) -> bool {
    let bare = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    bare.parse::<std::net::IpAddr>().is_ok() || is_domain(h)
}

impl MailRequest {
    /// Checks everything that can be checked before connecting.
    pub fn validate(&self) -> Result<(), RequestError> {
        if !host_ok(&self.host) {
            return Err(RequestError::BadHost(self.host.clone()));
        }
        if !host_ok(&self.tls.server_name) {
            return Err(RequestError::BadHost(self.tls.server_name.clone()));
        }
        if self.port == 0 {
            return Err(RequestError::BadPort);
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(RequestError::HalfClientCert);
        }
        if let EhloName::Name(n) = &self.ehlo {
            if !is_domain(n) && !is_literal(n) {
                return Err(RequestError::BadEhloName(n.clone()));
            }
        }
        match (&self.credentials, self.auth) {
            (Some(_), AuthChoice::None) => return Err(RequestError::CredentialsWithoutAuth),
            (None, AuthChoice::Plain | AuthChoice::Login) => {
                return Err(RequestError::MissingCredentials(self.auth))
            }
            (Some(c), _) => {
                let bad = |s: &str| {
                    s.is_empty() || s.chars().any(|c| c == '\0' || c == '\r' || c == '\n')
                };
                if bad(&c.user) || bad(&c.password) {
                    return Err(RequestError::BadCredentials);
                }
            }
            _ => {}
        }
        let m = &self.message;
        check_address(&m.from.address)?;
        let all = m.to.len() + m.cc.len() + m.bcc.len();
        if all == 0 {
            return Err(RequestError::NoRecipients);
        }
        if all > MAX_RECIPIENTS {
            return Err(RequestError::TooManyRecipients(all));
        }
        for r in m.to.iter().chain(&m.cc).chain(&m.bcc) {
            check_address(&r.address)?;
        }
        if m.subject.len() > MAX_SUBJECT {
            return Err(RequestError::SubjectTooLong);
        }
        if m.attachments.len() > MAX_ATTACHMENTS {
            return Err(RequestError::TooManyAttachments(m.attachments.len()));
        }
        for a in &m.attachments {
            if let Some(t) = &a.content_type {
                if !content_type::is_valid(t) {
                    return Err(RequestError::BadContentType(t.clone()));
                }
            }
        }
        // Base64 grows data by 4/3 plus line ends: refuse early what cannot fit.
        let raw = m.body.len() + m.attachments.iter().map(|a| a.data.len()).sum::<usize>();
        let estimate = raw / 57 * 78;
        if estimate > self.max_message {
            return Err(RequestError::MessageTooLarge {
                size: estimate,
                limit: self.max_message,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::address::Mailbox;
    use crate::mime::Attachment;
    use zeroize::Zeroizing;

    pub fn request() -> MailRequest {
        MailRequest {
            host: "mail.example.org".into(),
            port: 25,
            tls: TlsOptions {
                mode: TlsMode::StartTls,
                server_name: "mail.example.org".into(),
                ca: None,
                cert: None,
                key: None,
            },
            auth: AuthChoice::Auto,
            credentials: Some(Credentials {
                user: "anna".into(),
                password: Zeroizing::new("secret-pw".into()),
            }),
            ehlo: EhloName::Name("client.example.org".into()),
            timeouts: Timeouts::default(),
            max_message: crate::limits::DEFAULT_MAX_MESSAGE,
            message: Message {
                from: Mailbox::parse("anna@example.org").unwrap(),
                to: vec![Mailbox::parse("bob@example.org").unwrap()],
                cc: vec![],
                bcc: vec![],
                subject: "hi".into(),
                body: b"hello\n".to_vec(),
                attachments: vec![],
            },
        }
    }

    #[test]
    fn checks() {
        assert!(request().validate().is_ok());
        let mut r = request();
        r.message.to.clear();
        assert!(matches!(r.validate(), Err(RequestError::NoRecipients)));
        let mut r = request();
        r.auth = AuthChoice::None;
        assert!(matches!(
            r.validate(),
            Err(RequestError::CredentialsWithoutAuth)
        ));
        let mut r = request();
        r.credentials = None;
        assert!(r.validate().is_ok(), "auto without credentials skips AUTH");
        r.auth = AuthChoice::Login;
        assert!(matches!(
            r.validate(),
            Err(RequestError::MissingCredentials(_))
        ));
        let mut r = request();
        r.ehlo = EhloName::Name("bad name".into());
        assert!(matches!(r.validate(), Err(RequestError::BadEhloName(_))));
        r.ehlo = EhloName::Name("[IPv6:fd00::1]".into());
        assert!(r.validate().is_ok());
        let mut r = request();
        r.message.attachments = vec![Attachment {
            name: "x".into(),
            data: vec![],
            content_type: Some("x; y".into()),
        }];
        assert!(matches!(r.validate(), Err(RequestError::BadContentType(_))));
        let mut r = request();
        r.max_message = 1000;
        r.message.body = vec![b'a'; 5000];
        assert!(matches!(
            r.validate(),
            Err(RequestError::MessageTooLarge { .. })
        ));
        let mut r = request();
        r.host = "a b".into();
        assert!(matches!(r.validate(), Err(RequestError::BadHost(_))));
        r.host = "[fd00::1]".into();
        assert!(r.validate().is_ok());
        let mut r = request();
        r.credentials.as_mut().unwrap().password = Zeroizing::new("a\r\nb".into());
        let e = r.validate().unwrap_err().to_string();
        assert!(!e.contains("a\r\nb"));
    }

    #[test]
    fn ehlo_names() {
        let n = EhloName::Name("x.example".into());
        assert_eq!(n.resolve(None), "x.example");
        let auto = EhloName::Auto.resolve(Some("[fd00::1]:5".parse().unwrap()));
        assert!(auto.contains('.') || auto == "[IPv6:fd00::1]", "{auto}");
        assert!(is_literal("[10.0.0.1]") && !is_literal("[]") && !is_literal("[a b]"));
    }

    #[test]
    fn capped_timeouts() {
        let t = Timeouts::default().capped(Duration::from_secs(7));
        assert_eq!(t.data_end, Duration::from_secs(7));
        assert_eq!(t.connect, Duration::from_secs(7));
    }
}
