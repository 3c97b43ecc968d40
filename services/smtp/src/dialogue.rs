//! The SMTP dialogue as plain code: replies in, commands out (RFC 5321 §3 and §4.1; STARTTLS
//! RFC 3207; AUTH RFC 4954). No I/O: the driver writes what [`Step`] says, reads the next
//! reply and hands it back, so the whole exchange can be replayed from a script.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::auth::{self, AuthChoice, Credentials, Mechanism};
use crate::delivery::{Delivery, RecipientKind, RecipientResult};
use crate::error::MailError;
use crate::reply::Reply;
use crate::request::{Timeouts, TlsMode};

/// What the dialogue needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server's host, for messages.
    pub server: String,
    /// The EHLO name.
    pub ehlo: String,
    /// TLS mode; with [`TlsMode::Implicit`] the connection is already TLS.
    pub tls: TlsMode,
    /// The AUTH choice.
    pub auth: AuthChoice,
    /// The credentials.
    pub credentials: Option<Credentials>,
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub recipients: Vec<(String, RecipientKind)>,
    /// The message, dot-stuffed and ended by `.` CR LF.
    pub data: Vec<u8>,
    /// The `Message-ID`, for the result.
    pub message_id: String,
    /// Time-outs.
    pub timeouts: Timeouts,
}

/// A command line to write. `Debug` and [`Command::shown`] hide credentials.
pub struct Command {
    line: Zeroizing<String>,
    shown: String,
}

impl Command {
    fn new(line: String) -> Command {
        Command {
            shown: line.clone(),
            line: Zeroizing::new(format!("{line}\r\n")),
        }
    }

    fn secret(line: Zeroizing<String>, shown: &str) -> Command {
        let mut l = line;
        l.push_str("\r\n");
        Command {
            line: l,
            shown: shown.to_string(),
        }
    }

    /// The bytes on the wire, CR LF ended.
    pub fn bytes(&self) -> &[u8] {
        self.line.as_bytes()
    }

    /// The line as it may be logged.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({:?})", self.shown)
    }
}

/// What the driver does next.
#[derive(Debug)]
pub enum Step {
    /// Write the command, then read a reply.
    Send(Command),
    /// Run the TLS handshake on the connection, then call [`Dialogue::tls_started`].
    StartTls,
    /// Write [`Dialogue::data`], then read a reply.
    Data,
    /// The message was accepted: say QUIT (best effort) and report.
    Finish(Delivery),
}

/// Extensions from the EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// STARTTLS is offered.
    pub starttls: bool,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
    /// The SIZE limit (0: none given).
    pub size: Option<u64>,
}

impl Extensions {
    /// Reads the lines after the first of an EHLO reply.
    pub fn parse(reply: &Reply) -> Extensions {
        let mut e = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(kw) = words.next() else { continue };
            let kw = kw.to_ascii_uppercase();
            match kw.as_str() {
                "STARTTLS" => e.starttls = true,
                "SIZE" => e.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                _ if kw == "AUTH" || kw.starts_with("AUTH=") => {
                    let first = kw.strip_prefix("AUTH=").filter(|s| !s.is_empty());
                    for m in first
                        .into_iter()
                        .map(str::to_string)
                        .chain(words.map(str::to_ascii_uppercase))
                    {
                        if !e.auth.contains(&m) {
                            e.auth.push(m);
                        }
                    }
                }
                _ => {}
            }
        }
        e
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    AuthLoginDone,
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    Done,
}

/// One client session for one message.
#[derive(Debug)]
pub struct Dialogue {
    plan: Plan,
    state: State,
    tls_active: bool,
    ext: Extensions,
    mechanism: Option<Mechanism>,
    results: Vec<RecipientResult>,
}

impl Dialogue {
    /// A dialogue waiting for the server's greeting.
    pub fn new(plan: Plan) -> Dialogue {
        let tls_active = plan.tls == TlsMode::Implicit;
        Dialogue {
            plan,
            state: State::Greeting,
            tls_active,
            ext: Extensions::default(),
            mechanism: None,
            results: Vec::new(),
        }
    }

    /// The message data for [`Step::Data`].
    pub fn data(&self) -> &[u8] {
        &self.plan.data
    }

    /// The time-outs in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.plan.timeouts
    }

    /// Whether the connection is TLS now.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The step being waited for and its time-out.
    pub fn waiting_for(&self) -> (&'static str, Duration) {
        let t = &self.plan.timeouts;
        match self.state {
            State::Greeting => ("greeting", t.greeting),
            State::Ehlo => ("EHLO", t.command),
            State::Helo => ("HELO", t.command),
            State::StartTls => ("STARTTLS", t.command),
            State::AuthPlain
            | State::AuthLoginUser
            | State::AuthLoginPassword
            | State::AuthLoginDone => ("AUTH", t.command),
            State::Mail => ("MAIL FROM", t.mail),
            State::Rcpt(_) => ("RCPT TO", t.rcpt),
            State::Data => ("DATA", t.data_start),
            State::DataEnd => ("end of data", t.data_end),
            State::Done => ("QUIT", t.command),
        }
    }

    fn ehlo(&mut self) -> Step {
        self.state = State::Ehlo;
        Step::Send(Command::new(format!("EHLO {}", self.plan.ehlo)))
    }

    /// Call after the handshake [`Step::StartTls`] asked for: EHLO again, over TLS (what
    /// was learned before is forgotten, RFC 3207 §4.2).
    pub fn tls_started(&mut self) -> Step {
        self.tls_active = true;
        self.ext = Extensions::default();
        self.ehlo()
    }

    fn protocol(&self, detail: String) -> MailError {
        MailError::Protocol {
            step: self.waiting_for().0,
            detail,
        }
    }

    /// Takes the next reply; says what to do or why the dialogue ends.
    pub fn on_reply(&mut self, r: Reply) -> Result<Step, MailError> {
        match self.state {
            State::Greeting => {
                if r.code != 220 {
                    return Err(MailError::SessionRefused {
                        step: "greeting",
                        reply: r,
                    });
                }
                Ok(self.ehlo())
            }
            State::Ehlo => {
                if r.is_positive() {
                    self.ext = Extensions::parse(&r);
                    return self.after_hello();
                }
                if r.code >= 500 && !self.tls_active {
                    // An old server without ESMTP.
                    self.state = State::Helo;
                    return Ok(Step::Send(Command::new(format!("HELO {}", self.plan.ehlo))));
                }
                Err(MailError::SessionRefused {
                    step: "EHLO",
                    reply: r,
                })
            }
            State::Helo => {
                if !r.is_positive() {
                    return Err(MailError::SessionRefused {
                        step: "HELO",
                        reply: r,
                    });
                }
                self.ext = Extensions::default();
                self.after_hello()
            }
            State::StartTls => {
                if r.code == 220 {
                    Ok(Step::StartTls)
                } else {
                    Err(MailError::StartTlsRefused(r))
                }
            }
            State::AuthPlain | State::AuthLoginDone => {
                if r.code == 235 {
                    return self.mail();
                }
                Err(MailError::AuthRefused(r))
            }
            State::AuthLoginUser | State::AuthLoginPassword => {
                if r.code != 334 {
                    return Err(MailError::AuthRefused(r));
                }
                let Some(c) = &self.plan.credentials else {
                    return Err(self.protocol("no credentials".into()));
                };
                let (user, password) = auth::login_responses(c);
                if self.state == State::AuthLoginUser {
                    self.state = State::AuthLoginPassword;
                    Ok(Step::Send(Command::new(user)))
                } else {
                    self.state = State::AuthLoginDone;
                    Ok(Step::Send(Command::secret(password, "<password>")))
                }
            }
            State::Mail => {
                if !r.is_positive() {
                    return Err(MailError::SenderRefused(r));
                }
                self.rcpt(0)
            }
            State::Rcpt(i) => {
                let Some((address, kind)) = self.plan.recipients.get(i).cloned() else {
                    return Err(self.protocol("reply without a recipient".into()));
                };
                self.results.push(RecipientResult {
                    address,
                    kind,
                    reply: r,
                });
                if i + 1 < self.plan.recipients.len() {
                    return self.rcpt(i + 1);
                }
                if self.results.iter().any(RecipientResult::accepted) {
                    self.state = State::Data;
                    return Ok(Step::Send(Command::new("DATA".into())));
                }
                Err(MailError::AllRecipientsRefused(std::mem::take(
                    &mut self.results,
                )))
            }
            State::Data => {
                if r.code != 354 {
                    return Err(MailError::MessageRefused(r));
                }
                self.state = State::DataEnd;
                Ok(Step::Data)
            }
            State::DataEnd => {
                if !r.is_positive() {
                    return Err(MailError::MessageRefused(r));
                }
                self.state = State::Done;
                Ok(Step::Finish(Delivery {
                    recipients: std::mem::take(&mut self.results),
                    reply: r,
                    message_id: self.plan.message_id.clone(),
                    tls: self.tls_active,
                    auth: self.mechanism,
                }))
            }
            State::Done => Err(self.protocol(format!("unexpected reply {r}"))),
        }
    }

    fn after_hello(&mut self) -> Result<Step, MailError> {
        let wants_tls = matches!(
            self.plan.tls,
            TlsMode::StartTls | TlsMode::StartTlsIfOffered
        );
        if !self.tls_active && wants_tls {
            if self.ext.starttls {
                self.state = State::StartTls;
                return Ok(Step::Send(Command::new("STARTTLS".into())));
            }
            if self.plan.tls == TlsMode::StartTls {
                return Err(MailError::StartTlsNotOffered {
                    server: self.plan.server.clone(),
                });
            }
            log::warn!(
                "{} does not offer STARTTLS: sending in plain text as allowed",
                self.plan.server
            );
        }
        if let (Some(c), true) = (&self.plan.credentials, self.plan.auth != AuthChoice::None) {
            let Some(m) = auth::choose(self.plan.auth, &self.ext.auth) else {
                return Err(MailError::AuthNotOffered {
                    wanted: self.plan.auth,
                    offered: self.ext.auth.join(" "),
                });
            };
            if !self.tls_active {
                log::warn!("sending the password to {} without TLS", self.plan.server);
            }
            self.mechanism = Some(m);
            return Ok(Step::Send(match m {
                Mechanism::Plain => {
                    self.state = State::AuthPlain;
                    let mut line = Zeroizing::new(String::from("AUTH PLAIN "));
                    line.push_str(&auth::plain_response(c));
                    Command::secret(line, "AUTH PLAIN <credentials>")
                }
                Mechanism::Login => {
                    self.state = State::AuthLoginUser;
                    Command::new("AUTH LOGIN".into())
                }
            }));
        }
        self.mail()
    }

    fn mail(&mut self) -> Result<Step, MailError> {
        let size = self.plan.data.len();
        let mut line = format!("MAIL FROM:<{}>", self.plan.from);
        if let Some(limit) = self.ext.size {
            if limit > 0 && size as u64 > limit {
                return Err(MailError::TooLarge { size, limit });
            }
            line.push_str(&format!(" SIZE={size}"));
        }
        self.state = State::Mail;
        Ok(Step::Send(Command::new(line)))
    }

    fn rcpt(&mut self, i: usize) -> Result<Step, MailError> {
        let Some((address, _)) = self.plan.recipients.get(i) else {
            return Err(self.protocol("no recipient".into()));
        };
        let line = format!("RCPT TO:<{address}>");
        self.state = State::Rcpt(i);
        Ok(Step::Send(Command::new(line)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(tls: TlsMode, auth: AuthChoice) -> Plan {
        Plan {
            server: "mail.example.org".into(),
            ehlo: "client.example.org".into(),
            tls,
            auth,
            credentials: (auth != AuthChoice::None).then(|| Credentials {
                user: "anna".into(),
                password: Zeroizing::new("s3cret".into()),
            }),
            from: "anna@example.org".into(),
            recipients: vec![
                ("bob@example.org".into(), RecipientKind::To),
                ("nobody@example.org".into(), RecipientKind::Cc),
                ("carl@example.org".into(), RecipientKind::Bcc),
            ],
            data: b"Subject: x\r\n\r\nhi\r\n.\r\n".to_vec(),
            message_id: "<id@example.org>".into(),
            timeouts: Timeouts::default(),
        }
    }

    fn r(code: u16, lines: &[&str]) -> Reply {
        Reply::new(code, lines)
    }

    fn sent(step: Step) -> String {
        match step {
            Step::Send(c) => String::from_utf8(c.bytes().to_vec()).unwrap(),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    const EHLO_TLS: &[&str] = &[
        "mail.example.org",
        "PIPELINING",
        "SIZE 10240000",
        "STARTTLS",
    ];
    const EHLO_AUTH: &[&str] = &[
        "mail.example.org",
        "SIZE 10240000",
        "AUTH LOGIN PLAIN",
        "AUTH=LOGIN PLAIN",
    ];

    #[test]
    fn starttls_auth_plain_and_partial_recipients() {
        let mut d = Dialogue::new(plan(TlsMode::StartTls, AuthChoice::Auto));
        assert_eq!(d.waiting_for().0, "greeting");
        assert_eq!(
            sent(d.on_reply(r(220, &["hi"])).unwrap()),
            "EHLO client.example.org\r\n"
        );
        assert_eq!(sent(d.on_reply(r(250, EHLO_TLS)).unwrap()), "STARTTLS\r\n");
        assert!(matches!(
            d.on_reply(r(220, &["go"])).unwrap(),
            Step::StartTls
        ));
        assert_eq!(sent(d.tls_started()), "EHLO client.example.org\r\n");
        let Step::Send(auth) = d.on_reply(r(250, EHLO_AUTH)).unwrap() else {
            panic!()
        };
        assert_eq!(auth.bytes(), b"AUTH PLAIN AGFubmEAczNjcmV0\r\n");
        assert_eq!(auth.shown(), "AUTH PLAIN <credentials>");
        assert!(!format!("{auth:?}").contains("AGFubmEAczNjcmV0"));
        let mail = sent(d.on_reply(r(235, &["ok"])).unwrap());
        assert!(
            mail.starts_with("MAIL FROM:<anna@example.org> SIZE="),
            "{mail}"
        );
        assert_eq!(
            sent(d.on_reply(r(250, &["ok"])).unwrap()),
            "RCPT TO:<bob@example.org>\r\n"
        );
        assert_eq!(
            sent(d.on_reply(r(250, &["ok"])).unwrap()),
            "RCPT TO:<nobody@example.org>\r\n"
        );
        assert_eq!(d.waiting_for().0, "RCPT TO");
        assert_eq!(
            sent(d.on_reply(r(550, &["5.1.1 unknown"])).unwrap()),
            "RCPT TO:<carl@example.org>\r\n"
        );
        assert_eq!(sent(d.on_reply(r(250, &["ok"])).unwrap()), "DATA\r\n");
        assert!(matches!(d.on_reply(r(354, &["go"])).unwrap(), Step::Data));
        assert_eq!(d.data(), b"Subject: x\r\n\r\nhi\r\n.\r\n");
        let Step::Finish(done) = d.on_reply(r(250, &["2.0.0 queued as ABC"])).unwrap() else {
            panic!()
        };
        assert!(done.tls);
        assert_eq!(done.auth, Some(Mechanism::Plain));
        assert_eq!(done.accepted().count(), 2);
        let refused: Vec<_> = done.refused().collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].address, "nobody@example.org");
        assert_eq!(refused[0].reply.code, 550);
        assert_eq!(done.exit_code(), crate::exit::SOME_REFUSED);
    }

    #[test]
    fn auth_login_exchange() {
        let mut d = Dialogue::new(plan(TlsMode::Implicit, AuthChoice::Login));
        assert!(d.tls_active());
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        assert_eq!(
            sent(d.on_reply(r(250, EHLO_AUTH)).unwrap()),
            "AUTH LOGIN\r\n"
        );
        assert_eq!(
            sent(d.on_reply(r(334, &["VXNlcm5hbWU6"])).unwrap()),
            "YW5uYQ==\r\n"
        );
        let Step::Send(pw) = d.on_reply(r(334, &["UGFzc3dvcmQ6"])).unwrap() else {
            panic!()
        };
        assert_eq!(pw.bytes(), b"czNjcmV0\r\n");
        assert_eq!(pw.shown(), "<password>");
        let e = d
            .on_reply(r(535, &["5.7.8 authentication failed"]))
            .unwrap_err();
        assert!(matches!(e, MailError::AuthRefused(_)));
        assert_eq!(e.exit_code(), crate::exit::AUTH);
        assert!(e.to_string().contains("535 5.7.8 authentication failed"));
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn starttls_required_but_missing() {
        let mut d = Dialogue::new(plan(TlsMode::StartTls, AuthChoice::Auto));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        let e = d.on_reply(r(250, EHLO_AUTH)).unwrap_err();
        assert!(matches!(e, MailError::StartTlsNotOffered { .. }));
        assert_eq!(e.exit_code(), crate::exit::TLS);
        // The opt-out continues in plain text.
        let mut d = Dialogue::new(plan(TlsMode::StartTlsIfOffered, AuthChoice::None));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        assert!(sent(d.on_reply(r(250, &["x"])).unwrap())
            .starts_with("MAIL FROM:<anna@example.org>\r\n"));
        // STARTTLS refused.
        let mut d = Dialogue::new(plan(TlsMode::StartTls, AuthChoice::None));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        sent(d.on_reply(r(250, EHLO_TLS)).unwrap());
        assert!(matches!(
            d.on_reply(r(454, &["not now"])),
            Err(MailError::StartTlsRefused(_))
        ));
    }

    #[test]
    fn refusals() {
        let mut d = Dialogue::new(plan(TlsMode::None, AuthChoice::None));
        let e = d.on_reply(r(554, &["go away"])).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::SENDER);
        assert!(e.to_string().contains("554 go away"));

        let mut d = Dialogue::new(plan(TlsMode::None, AuthChoice::Plain));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        let e = d.on_reply(r(250, &["x", "AUTH LOGIN"])).unwrap_err();
        assert!(matches!(e, MailError::AuthNotOffered { ref offered, .. } if offered == "LOGIN"));

        let mut d = Dialogue::new(plan(TlsMode::None, AuthChoice::None));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        sent(d.on_reply(r(250, &["x"])).unwrap());
        assert!(matches!(
            d.on_reply(r(553, &["no"])),
            Err(MailError::SenderRefused(_))
        ));

        let mut d = Dialogue::new(plan(TlsMode::None, AuthChoice::None));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        sent(d.on_reply(r(250, &["x"])).unwrap());
        sent(d.on_reply(r(250, &["ok"])).unwrap());
        sent(d.on_reply(r(550, &["a"])).unwrap());
        sent(d.on_reply(r(450, &["b"])).unwrap());
        let e = d.on_reply(r(550, &["c"])).unwrap_err();
        let MailError::AllRecipientsRefused(ref list) = e else {
            panic!("{e}")
        };
        assert_eq!(list.len(), 3);
        assert_eq!(e.exit_code(), crate::exit::ALL_REFUSED);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("nobody@example.org: 450 b"));

        let mut d = Dialogue::new(plan(TlsMode::None, AuthChoice::None));
        for (code, _) in [
            (220, ""),
            (250, ""),
            (250, ""),
            (250, ""),
            (250, ""),
            (250, ""),
        ] {
            sent(d.on_reply(r(code, &["x"])).unwrap());
        }
        assert!(matches!(d.on_reply(r(354, &["go"])).unwrap(), Step::Data));
        let e = d.on_reply(r(552, &["too big"])).unwrap_err();
        assert!(matches!(e, MailError::MessageRefused(_)));
        assert_eq!(e.exit_code(), crate::exit::MESSAGE);
    }

    #[test]
    fn helo_fallback_and_size() {
        let mut d = Dialogue::new(plan(TlsMode::None, AuthChoice::None));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        assert_eq!(
            sent(d.on_reply(r(502, &["no EHLO"])).unwrap()),
            "HELO client.example.org\r\n"
        );
        assert_eq!(
            sent(d.on_reply(r(250, &["hello"])).unwrap()),
            "MAIL FROM:<anna@example.org>\r\n"
        );

        let mut d = Dialogue::new(plan(TlsMode::None, AuthChoice::None));
        sent(d.on_reply(r(220, &["hi"])).unwrap());
        let e = d.on_reply(r(250, &["x", "SIZE 10"])).unwrap_err();
        assert!(matches!(e, MailError::TooLarge { limit: 10, .. }));
    }

    #[test]
    fn extensions() {
        let e = Extensions::parse(&r(
            250,
            &["x", "auth=LOGIN", "Auth plain login", "starttls", "SIZE"],
        ));
        assert!(e.starttls);
        assert_eq!(e.auth, vec!["LOGIN", "PLAIN"]);
        assert_eq!(e.size, Some(0));
    }
}
