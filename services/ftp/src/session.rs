//! One control connection's protocol state, without I/O: a line goes in, a [`Step`] comes
//! out. Commands that need nothing but the state (TYPE, PWD, FEAT, PBSZ, REST, ...) are
//! answered here; the others become a [`Request`] the connection's task carries out
//! against the file layer, the security method or the data connection, answering the
//! client itself. The rules of the protocol live here and nowhere else: what needs a login,
//! the order of RNFR/RNTO and PBSZ/PROT, what TLS a user must have, EPSV ALL, FTP-bounce
//! protection of PORT/EPRT, and the end of a session after too many failed logins.

use std::net::{IpAddr, SocketAddr};

use crate::command::{Command, CommandError, EpsvArg, ProtLevel, Secret, TransferType};
use crate::reply::Reply;
use crate::users::TlsRequirement;
use crate::vpath::{PathError, VirtualPath};

/// Server-wide rules a session follows.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// TLS material is configured: AUTH TLS is offered.
    pub tls_available: bool,
    /// Every user needs a protected control connection (on top of per-user requirements).
    pub require_tls: bool,
    /// CCC (back to a clear control connection after login) is allowed.
    pub allow_ccc: bool,
    /// Failed logins after which the session ends.
    pub max_login_failures: u32,
    /// The greeting's text.
    pub banner: String,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            tls_available: false,
            require_tls: false,
            allow_ccc: false,
            max_login_failures: 3,
            banner: "sixstack FTP server ready".into(),
        }
    }
}

/// What a list request produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// LIST: `ls -l` style lines.
    Long,
    /// NLST: names only.
    Names,
    /// MLSD: RFC 3659 facts.
    Machine,
}

/// Work for the connection's task; it answers the client when done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// CWD/CDUP: check the directory exists and may be entered, then call
    /// [`Session::entered`] (or answer 550).
    ChangeDir(VirtualPath),
    /// A listing over the data connection.
    List(ListKind, VirtualPath),
    /// RETR from `offset`.
    Retrieve {
        /// The file.
        path: VirtualPath,
        /// Where to start (REST).
        offset: u64,
        /// TYPE.
        ty: TransferType,
    },
    /// STOR / APPE / STOU.
    Store {
        /// The file (for STOU: the directory to make a unique name in).
        path: VirtualPath,
        /// Where to start writing (REST; 0 with `append`).
        offset: u64,
        /// APPE: add at the end.
        append: bool,
        /// STOU: choose a name that does not exist.
        unique: bool,
        /// TYPE.
        ty: TransferType,
    },
    /// DELE.
    Delete(VirtualPath),
    /// RMD.
    RemoveDir(VirtualPath),
    /// MKD.
    MakeDir(VirtualPath),
    /// RNFR: check it exists, then call [`Session::rename_from`] (or answer 550).
    RenameFrom(VirtualPath),
    /// RNTO.
    Rename {
        /// From RNFR.
        from: VirtualPath,
        /// The new name.
        to: VirtualPath,
    },
    /// SIZE (in the current TYPE).
    Size(VirtualPath, TransferType),
    /// MDTM.
    ModTime(VirtualPath),
    /// MLST (facts of one entry on the control connection).
    Facts(VirtualPath),
    /// STAT with a path (a listing on the control connection).
    StatPath(VirtualPath),
    /// PASV/EPSV: open a passive listener; `v6` is the family asked for (`None`: the
    /// control connection's).
    Passive {
        /// EPSV (answer 229) rather than PASV (227).
        extended: bool,
        /// The family.
        v6: Option<bool>,
    },
    /// PORT/EPRT to the client's own address (already checked).
    Active(SocketAddr),
    /// ABOR.
    Abort,
    /// SITE.
    Site(String),
}

/// The outcome of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this reply.
    Reply(Reply),
    /// Send this reply (234), then run the TLS handshake on the control connection and
    /// call [`Session::tls_started`].
    ReplyThenTls(Reply),
    /// Send this reply (200 to CCC), then go back to plain text on the control connection.
    ReplyThenClear(Reply),
    /// Send this reply and close the connection.
    ReplyThenClose(Reply),
    /// Check this user's password with the security method, then call
    /// [`Session::login_result`].
    Login {
        /// The user.
        user: String,
        /// The password.
        password: Secret,
    },
    /// Carry out a request.
    Request(Request),
}

/// What the security method said of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// In, with the user's TLS requirement.
    Accepted(TlsRequirement),
    /// Wrong user or password (or locked out: the client is told the same).
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    NeedUser,
    NeedPass(String),
    /// Waiting for the security method's answer.
    Checking(String),
    LoggedIn(String),
}

/// One control connection's state.
#[derive(Debug, Clone)]
pub struct Session {
    policy: SessionPolicy,
    peer: IpAddr,
    phase: Phase,
    cwd: VirtualPath,
    ty: TransferType,
    rest: u64,
    rename_from: Option<VirtualPath>,
    tls_control: bool,
    pbsz: bool,
    prot: ProtLevel,
    data_tls_required: bool,
    /// The logged-in account must keep its control connection protected (no CCC).
    control_tls_required: bool,
    epsv_all: bool,
    failures: u32,
}

fn r(code: u16, text: impl Into<String>) -> Step {
    Step::Reply(Reply::new(code, text))
}

/// A path in a 257 reply: quoted, inner quotes doubled (RFC 959 appendix II).
pub fn quote_path(p: &VirtualPath) -> String {
    format!("\"{}\"", p.to_string().replace('"', "\"\""))
}

impl Session {
    /// A session for a client at `peer`; `implicit_tls` when the control connection is
    /// already protected (port 990, or behind a TLS-terminating proxy listener).
    pub fn new(policy: SessionPolicy, peer: IpAddr, implicit_tls: bool) -> Session {
        Session {
            policy,
            peer,
            phase: Phase::NeedUser,
            cwd: VirtualPath::root(),
            ty: TransferType::Ascii,
            rest: 0,
            rename_from: None,
            tls_control: implicit_tls,
            pbsz: false,
            prot: ProtLevel::Clear,
            data_tls_required: false,
            control_tls_required: false,
            epsv_all: false,
            failures: 0,
        }
    }

    /// The 220 greeting.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, self.policy.banner.clone())
    }

    /// The logged-in user.
    pub fn user(&self) -> Option<&str> {
        match &self.phase {
            Phase::LoggedIn(u) => Some(u),
            _ => None,
        }
    }

    /// The working directory.
    pub fn cwd(&self) -> &VirtualPath {
        &self.cwd
    }

    /// The data connection's protection.
    pub fn prot(&self) -> ProtLevel {
        self.prot
    }

    /// Whether the control connection is protected.
    pub fn tls_control(&self) -> bool {
        self.tls_control
    }

    /// The control connection's TLS handshake finished (after AUTH TLS): RFC 4217 resets
    /// the session's user state.
    pub fn tls_started(&mut self) {
        self.tls_control = true;
        self.phase = Phase::NeedUser;
    }

    /// A CWD/CDUP request succeeded.
    pub fn entered(&mut self, dir: VirtualPath) -> Reply {
        let shown = quote_path(&dir);
        self.cwd = dir;
        Reply::new(250, format!("directory changed to {shown}"))
    }

    /// An RNFR request found its file.
    pub fn rename_from(&mut self, from: VirtualPath) -> Reply {
        self.rename_from = Some(from);
        Reply::new(350, "ready for RNTO")
    }

    /// The security method's answer to a [`Step::Login`]; the step after it (more lines
    /// may follow, or the session ends).
    pub fn login_result(&mut self, outcome: LoginOutcome) -> Step {
        let Phase::Checking(user) = std::mem::replace(&mut self.phase, Phase::NeedUser) else {
            return r(503, "no login in progress");
        };
        match outcome {
            LoginOutcome::Accepted(req) => {
                if req != TlsRequirement::None && !self.tls_control {
                    return self.login_failed(534, "this account requires TLS (AUTH TLS)");
                }
                self.data_tls_required = req == TlsRequirement::ControlAndData;
                self.control_tls_required = req != TlsRequirement::None;
                self.failures = 0;
                self.phase = Phase::LoggedIn(user.clone());
                r(230, format!("user {user} logged in"))
            }
            LoginOutcome::Denied => self.login_failed(530, "login incorrect"),
        }
    }

    fn login_failed(&mut self, code: u16, text: &str) -> Step {
        self.failures += 1;
        if self.failures >= self.policy.max_login_failures {
            return Step::ReplyThenClose(Reply::new(421, "too many failed logins; closing"));
        }
        r(code, text)
    }

    fn resolve(&self, arg: &str) -> Result<VirtualPath, Step> {
        self.cwd.resolve(arg).map_err(|e| match e {
            PathError::Nul => r(501, e.to_string()),
            _ => r(553, e.to_string()),
        })
    }

    /// A data command is about to run: the protection it needs is there.
    fn data_allowed(&self) -> Result<(), Step> {
        if self.data_tls_required && self.prot != ProtLevel::Private {
            return Err(r(
                521,
                "data connections of this account must be protected (PBSZ 0, PROT P)",
            ));
        }
        Ok(())
    }

    /// Handles one control line (CR LF removed).
    pub fn on_line(&mut self, line: &[u8]) -> Step {
        let line = crate::command::strip_telnet(line);
        let cmd = match Command::parse(&line) {
            Ok(c) => c,
            Err(e) => return err_step(&e),
        };
        if matches!(self.phase, Phase::Checking(_)) {
            return r(503, "login in progress");
        }
        // RNFR must be followed by RNTO: any other command forgets it.
        if !matches!(cmd, Command::Rnto(_)) {
            self.rename_from = None;
        }
        self.dispatch(cmd)
    }

    fn dispatch(&mut self, cmd: Command) -> Step {
        // Commands allowed before login.
        match &cmd {
            Command::Auth(mech) => return self.auth(mech),
            Command::User(name) => return self.user_cmd(name),
            Command::Pass(pw) => return self.pass(pw.clone()),
            Command::Quit => return Step::ReplyThenClose(Reply::new(221, "goodbye")),
            Command::Noop => return r(200, "NOOP ok"),
            Command::Feat => return Step::Reply(self.feat()),
            Command::Syst => return r(215, "UNIX Type: L8"),
            Command::Help(_) => return r(214, "see RFC 959; FEAT lists the extensions"),
            Command::Opts(o) => return opts(o),
            Command::Pbsz(n) => return self.pbsz(*n),
            Command::Prot(level) => return self.prot_cmd(*level),
            _ => {}
        }
        if self.user().is_none() {
            return r(530, "please log in with USER and PASS");
        }
        match cmd {
            Command::Acct(_) => r(202, "ACCT not needed"),
            Command::Pwd => r(
                257,
                format!("{} is the current directory", quote_path(&self.cwd)),
            ),
            Command::Cwd(p) => match self.resolve(&p) {
                Ok(p) => Step::Request(Request::ChangeDir(p)),
                Err(s) => s,
            },
            Command::Cdup => Step::Request(Request::ChangeDir(self.cwd.parent())),
            Command::Type(t) => {
                self.ty = t;
                r(
                    200,
                    match t {
                        TransferType::Ascii => "TYPE set to A",
                        TransferType::Image => "TYPE set to I",
                    },
                )
            }
            Command::ModeStream => r(200, "MODE S ok"),
            Command::StruFile => r(200, "STRU F ok"),
            Command::Rest(n) => {
                self.rest = n;
                r(350, format!("restarting at {n}; send RETR or STOR"))
            }
            Command::List(p) => self.list(ListKind::Long, p),
            Command::Nlst(p) => self.list(ListKind::Names, p),
            Command::Mlsd(p) => self.list(ListKind::Machine, p),
            Command::Retr(p) => {
                if let Err(s) = self.data_allowed() {
                    return s;
                }
                match self.resolve(&p) {
                    Ok(path) => Step::Request(Request::Retrieve {
                        path,
                        offset: std::mem::take(&mut self.rest),
                        ty: self.ty,
                    }),
                    Err(s) => s,
                }
            }
            Command::Stor(p) => self.store(&p, false),
            Command::Appe(p) => self.store(&p, true),
            Command::Stou => self.store_unique(),
            Command::Dele(p) => self.path_request(&p, Request::Delete),
            Command::Rmd(p) => self.path_request(&p, Request::RemoveDir),
            Command::Mkd(p) => self.path_request(&p, Request::MakeDir),
            Command::Rnfr(p) => self.path_request(&p, Request::RenameFrom),
            Command::Rnto(p) => match self.rename_from.take() {
                None => r(503, "RNFR first"),
                Some(from) => match self.resolve(&p) {
                    Ok(to) => Step::Request(Request::Rename { from, to }),
                    Err(s) => s,
                },
            },
            Command::Size(p) => {
                let ty = self.ty;
                self.path_request(&p, |p| Request::Size(p, ty))
            }
            Command::Mdtm(p) => self.path_request(&p, Request::ModTime),
            Command::Mlst(p) => match p {
                None => Step::Request(Request::Facts(self.cwd.clone())),
                Some(p) => self.path_request(&p, Request::Facts),
            },
            Command::Stat(None) => r(
                211,
                format!(
                    "logged in as {}, TYPE {}, control {}, data PROT {}",
                    self.user().unwrap_or("-"),
                    if self.ty == TransferType::Ascii {
                        "A"
                    } else {
                        "I"
                    },
                    if self.tls_control { "TLS" } else { "clear" },
                    if self.prot == ProtLevel::Private {
                        "P"
                    } else {
                        "C"
                    },
                ),
            ),
            Command::Stat(Some(p)) => self.path_request(&p, Request::StatPath),
            Command::Pasv => {
                if self.epsv_all {
                    return r(501, "EPSV ALL was sent: only EPSV");
                }
                if self.peer.is_ipv6() {
                    return r(522, "PASV is IPv4 only; use EPSV (1,2)");
                }
                Step::Request(Request::Passive {
                    extended: false,
                    v6: Some(false),
                })
            }
            Command::Epsv(EpsvArg::All) => {
                self.epsv_all = true;
                r(200, "EPSV ALL ok")
            }
            Command::Epsv(a) => Step::Request(Request::Passive {
                extended: true,
                v6: match a {
                    EpsvArg::V4 => Some(false),
                    EpsvArg::V6 => Some(true),
                    _ => None,
                },
            }),
            Command::Port(a) | Command::Eprt(a) => self.active(a),
            Command::Abor => Step::Request(Request::Abort),
            Command::Site(s) => Step::Request(Request::Site(s)),
            Command::Ccc => {
                if !self.tls_control {
                    r(533, "the control connection is not protected")
                } else if !self.policy.allow_ccc {
                    r(534, "CCC is not allowed on this server")
                } else if self.policy.require_tls || self.control_tls_required {
                    r(
                        534,
                        "this account must keep the control connection protected",
                    )
                } else {
                    self.tls_control = false;
                    Step::ReplyThenClear(Reply::new(200, "control connection in clear text"))
                }
            }
            // Handled before the login check.
            Command::Auth(_)
            | Command::User(_)
            | Command::Pass(_)
            | Command::Quit
            | Command::Noop
            | Command::Feat
            | Command::Syst
            | Command::Help(_)
            | Command::Opts(_)
            | Command::Pbsz(_)
            | Command::Prot(_) => r(503, "bad sequence of commands"),
        }
    }

    fn path_request(&self, arg: &str, make: impl FnOnce(VirtualPath) -> Request) -> Step {
        match self.resolve(arg) {
            Ok(p) => Step::Request(make(p)),
            Err(s) => s,
        }
    }

    fn list(&self, kind: ListKind, arg: Option<String>) -> Step {
        if let Err(s) = self.data_allowed() {
            return s;
        }
        match arg {
            None => Step::Request(Request::List(kind, self.cwd.clone())),
            Some(a) => self.path_request(&a, |p| Request::List(kind, p)),
        }
    }

    fn store(&mut self, arg: &str, append: bool) -> Step {
        if let Err(s) = self.data_allowed() {
            return s;
        }
        match self.resolve(arg) {
            Ok(path) => Step::Request(Request::Store {
                path,
                offset: match std::mem::take(&mut self.rest) {
                    _ if append => 0,
                    n => n,
                },
                append,
                unique: false,
                ty: self.ty,
            }),
            Err(s) => s,
        }
    }

    fn store_unique(&mut self) -> Step {
        if let Err(s) = self.data_allowed() {
            return s;
        }
        self.rest = 0;
        Step::Request(Request::Store {
            path: self.cwd.clone(),
            offset: 0,
            append: false,
            unique: true,
            ty: self.ty,
        })
    }

    fn active(&self, to: SocketAddr) -> Step {
        if self.epsv_all {
            return r(501, "EPSV ALL was sent: only EPSV");
        }
        // FTP bounce protection (RFC 2577): data only to the client itself, never to a
        // privileged port.
        let same = match (to.ip(), self.peer) {
            (a, b) if a == b => true,
            (IpAddr::V4(a), IpAddr::V6(b)) => b.to_ipv4_mapped() == Some(a),
            _ => false,
        };
        if !same {
            return r(
                501,
                "PORT/EPRT to another address than the client's is refused",
            );
        }
        if to.port() < 1024 {
            return r(501, "PORT/EPRT to a privileged port is refused");
        }
        Step::Request(Request::Active(to))
    }

    fn auth(&mut self, mech: &str) -> Step {
        if !matches!(mech, "TLS" | "TLS-C" | "SSL") {
            return r(504, format!("AUTH {mech} is not supported; use AUTH TLS"));
        }
        if !self.policy.tls_available {
            return r(534, "TLS is not configured on this server");
        }
        if self.tls_control {
            return r(503, "the control connection is already protected");
        }
        Step::ReplyThenTls(Reply::new(234, "AUTH TLS ok; start the handshake"))
    }

    fn user_cmd(&mut self, name: &str) -> Step {
        if self.policy.require_tls && !self.tls_control {
            return r(530, "this server requires TLS first (AUTH TLS)");
        }
        if self.user().is_some() {
            // RFC 959 allows a change of user; start over.
            self.cwd = VirtualPath::root();
        }
        self.phase = Phase::NeedPass(name.to_string());
        r(331, format!("password required for {name}"))
    }

    fn pass(&mut self, password: Secret) -> Step {
        match std::mem::replace(&mut self.phase, Phase::NeedUser) {
            Phase::NeedPass(user) => {
                self.phase = Phase::Checking(user.clone());
                Step::Login { user, password }
            }
            Phase::LoggedIn(u) => {
                self.phase = Phase::LoggedIn(u);
                r(230, "already logged in")
            }
            _ => r(503, "USER first"),
        }
    }

    fn pbsz(&mut self, n: u64) -> Step {
        if !self.tls_control {
            return r(503, "PBSZ needs a protected control connection (AUTH TLS)");
        }
        self.pbsz = true;
        // Streams over TLS have no buffer size (RFC 4217): always 0.
        if n == 0 {
            r(200, "PBSZ=0")
        } else {
            r(200, "PBSZ=0 (TLS needs no buffer size)")
        }
    }

    fn prot_cmd(&mut self, level: ProtLevel) -> Step {
        if !self.tls_control {
            return r(503, "PROT needs a protected control connection (AUTH TLS)");
        }
        if !self.pbsz {
            return r(503, "PBSZ first");
        }
        self.prot = level;
        r(
            200,
            match level {
                ProtLevel::Private => "PROT P: data connections are protected",
                ProtLevel::Clear => "PROT C: data connections in clear text",
            },
        )
    }

    fn feat(&self) -> Reply {
        let mut lines: Vec<String> = Vec::new();
        if self.policy.tls_available {
            lines.extend(["AUTH TLS", "PBSZ", "PROT"].map(String::from));
            if self.policy.allow_ccc {
                lines.push("CCC".into());
            }
        }
        lines.extend(
            [
                "EPRT",
                "EPSV",
                "MDTM",
                "MLST type*;size*;modify*;perm*;",
                "REST STREAM",
                "SIZE",
                "TVFS",
                "UTF8",
            ]
            .map(String::from),
        );
        Reply::multi(211, "Features:", lines, "End")
    }
}

fn opts(o: &str) -> Step {
    let upper = o.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    match words[..] {
        ["UTF8", "ON"] | ["UTF-8", "ON"] | ["UTF8"] => r(200, "UTF8 is always on"),
        ["UTF8", "OFF"] => r(504, "UTF8 cannot be turned off (RFC 2640 paths)"),
        ["MLST", ..] => r(200, "MLST OPTS type;size;modify;perm;"),
        _ => r(501, format!("OPTS {o}: not understood")),
    }
}

fn err_step(e: &CommandError) -> Step {
    r(e.code(), e.text().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn session(tls: bool) -> Session {
        Session::new(
            SessionPolicy {
                tls_available: true,
                ..Default::default()
            },
            "10.0.0.1".parse().unwrap(),
            tls,
        )
    }

    fn code(s: &Step) -> u16 {
        match s {
            Step::Reply(r)
            | Step::ReplyThenTls(r)
            | Step::ReplyThenClose(r)
            | Step::ReplyThenClear(r) => r.code,
            _ => 0,
        }
    }

    fn login(s: &mut Session, req: TlsRequirement) -> Step {
        assert_eq!(code(&s.on_line(b"USER anna")), 331);
        let step = s.on_line(b"PASS pw");
        assert!(matches!(step, Step::Login { ref user, .. } if user == "anna"));
        s.login_result(LoginOutcome::Accepted(req))
    }

    #[test]
    fn nothing_before_login_but_the_harmless() {
        let mut s = session(false);
        assert_eq!(s.greeting().code, 220);
        for line in [
            "RETR a",
            "STOR a",
            "LIST",
            "CWD /",
            "PASV",
            "PORT 10,0,0,1,4,1",
            "DELE a",
        ] {
            assert_eq!(code(&s.on_line(line.as_bytes())), 530, "{line}");
        }
        for (line, want) in [("NOOP", 200), ("SYST", 215), ("FEAT", 211), ("PASS x", 503)] {
            assert_eq!(code(&s.on_line(line.as_bytes())), want, "{line}");
        }
        assert_eq!(code(&login(&mut s, TlsRequirement::None)), 230);
        assert_eq!(s.user(), Some("anna"));
        assert_eq!(code(&s.on_line(b"QUIT")), 221);
    }

    #[test]
    fn failed_logins_end_the_session() {
        let mut s = session(false);
        for i in 0..3 {
            s.on_line(b"USER anna");
            s.on_line(b"PASS wrong");
            let step = s.login_result(LoginOutcome::Denied);
            if i < 2 {
                assert_eq!(code(&step), 530);
            } else {
                assert!(matches!(step, Step::ReplyThenClose(ref r) if r.code == 421));
            }
        }
        assert!(s.user().is_none());
    }

    #[test]
    fn tls_requirements() {
        // A user who needs TLS on a clear control connection is refused even with the
        // right password.
        let mut s = session(false);
        assert_eq!(code(&login(&mut s, TlsRequirement::Control)), 534);
        // AUTH TLS, PBSZ, PROT P: in, and data commands need PROT P.
        let mut s = session(false);
        assert!(matches!(s.on_line(b"AUTH TLS"), Step::ReplyThenTls(ref r) if r.code == 234));
        s.tls_started();
        assert_eq!(code(&s.on_line(b"PROT P")), 503, "PBSZ first");
        assert_eq!(code(&login(&mut s, TlsRequirement::ControlAndData)), 230);
        assert_eq!(code(&s.on_line(b"RETR f")), 521);
        assert_eq!(code(&s.on_line(b"LIST")), 521);
        assert_eq!(code(&s.on_line(b"PBSZ 0")), 200);
        assert_eq!(code(&s.on_line(b"PROT P")), 200);
        assert!(matches!(
            s.on_line(b"RETR f"),
            Step::Request(Request::Retrieve { .. })
        ));
        assert_eq!(code(&s.on_line(b"CCC")), 534, "CCC is off by default");
        assert_eq!(code(&s.on_line(b"AUTH TLS")), 503);
        // A server that requires TLS refuses USER in clear text.
        let mut s = Session::new(
            SessionPolicy {
                tls_available: true,
                require_tls: true,
                ..Default::default()
            },
            "10.0.0.1".parse().unwrap(),
            false,
        );
        assert_eq!(code(&s.on_line(b"USER anna")), 530);
        // Implicit TLS: protected from the start.
        let mut s = session(true);
        assert_eq!(code(&login(&mut s, TlsRequirement::Control)), 230);
    }

    #[test]
    fn ccc_when_allowed() {
        let policy = SessionPolicy {
            tls_available: true,
            allow_ccc: true,
            ..Default::default()
        };
        let ip = "10.0.0.1".parse().unwrap();
        // Only on a protected control connection.
        let mut s = Session::new(policy.clone(), ip, false);
        login(&mut s, TlsRequirement::None);
        assert_eq!(code(&s.on_line(b"CCC")), 533);
        // An account without a TLS requirement may go back to clear text; PROT stays.
        let mut s = Session::new(policy.clone(), ip, true);
        login(&mut s, TlsRequirement::None);
        assert_eq!(code(&s.on_line(b"PBSZ 0")), 200);
        assert_eq!(code(&s.on_line(b"PROT P")), 200);
        assert!(matches!(s.on_line(b"CCC"), Step::ReplyThenClear(ref r) if r.code == 200));
        assert!(!s.tls_control());
        assert_eq!(s.prot(), crate::command::ProtLevel::Private);
        assert_eq!(code(&s.on_line(b"CCC")), 533, "already clear");
        // An account that needs TLS keeps it.
        let mut s = Session::new(policy, ip, true);
        login(&mut s, TlsRequirement::Control);
        assert_eq!(code(&s.on_line(b"CCC")), 534);
        assert!(s.tls_control());
    }

    #[test]
    fn paths_rest_and_rename() {
        let mut s = session(false);
        login(&mut s, TlsRequirement::None);
        assert_eq!(
            s.on_line(b"CWD ../../etc"),
            Step::Request(Request::ChangeDir(
                VirtualPath::root().resolve("/etc").unwrap()
            ))
        );
        s.entered(VirtualPath::root().resolve("/in \"q\"").unwrap());
        let Step::Reply(pwd) = s.on_line(b"PWD") else {
            panic!()
        };
        assert_eq!(pwd.lines[0], "\"/in \"\"q\"\"\" is the current directory");
        assert_eq!(code(&s.on_line(b"REST 100")), 350);
        let Step::Request(Request::Retrieve { offset, path, .. }) = s.on_line(b"RETR f") else {
            panic!()
        };
        assert_eq!((offset, path.to_string().as_str()), (100, "/in \"q\"/f"));
        let Step::Request(Request::Retrieve { offset, .. }) = s.on_line(b"RETR f") else {
            panic!()
        };
        assert_eq!(offset, 0, "REST applies to one transfer");
        s.on_line(b"REST 7");
        assert!(matches!(
            s.on_line(b"APPE log"),
            Step::Request(Request::Store {
                append: true,
                offset: 0,
                ..
            })
        ));
        assert!(matches!(
            s.on_line(b"STOR log"),
            Step::Request(Request::Store {
                append: false,
                offset: 0,
                ..
            })
        ));
        assert_eq!(code(&s.on_line(b"RNTO b")), 503);
        assert!(matches!(
            s.on_line(b"RNFR a"),
            Step::Request(Request::RenameFrom(_))
        ));
        s.rename_from(VirtualPath::root().resolve("/a").unwrap());
        assert!(matches!(
            s.on_line(b"RNTO b"),
            Step::Request(Request::Rename { .. })
        ));
        s.rename_from(VirtualPath::root().resolve("/a").unwrap());
        s.on_line(b"NOOP");
        assert_eq!(
            code(&s.on_line(b"RNTO b")),
            503,
            "another command cancels RNFR"
        );
        assert_eq!(
            code(&s.on_line(&[b'S', b'T', b'O', b'R', b' ', b'a', 0, b'b'])),
            501
        );
    }

    #[test]
    fn data_connections_and_bounce_protection() {
        let mut s = session(false);
        login(&mut s, TlsRequirement::None);
        assert!(matches!(
            s.on_line(b"PORT 10,0,0,1,200,1"),
            Step::Request(Request::Active(_))
        ));
        assert_eq!(code(&s.on_line(b"PORT 10,0,0,9,200,1")), 501, "bounce");
        assert_eq!(
            code(&s.on_line(b"EPRT |1|10.0.0.1|21|")),
            501,
            "privileged port"
        );
        assert!(matches!(
            s.on_line(b"EPSV"),
            Step::Request(Request::Passive {
                extended: true,
                v6: None
            })
        ));
        assert_eq!(code(&s.on_line(b"EPSV ALL")), 200);
        assert_eq!(code(&s.on_line(b"PASV")), 501);
        assert_eq!(code(&s.on_line(b"PORT 10,0,0,1,200,1")), 501);
        let mut s6 = Session::new(
            SessionPolicy::default(),
            "2001:db8::1".parse().unwrap(),
            false,
        );
        login(&mut s6, TlsRequirement::None);
        assert_eq!(code(&s6.on_line(b"PASV")), 522);
        assert!(matches!(
            s6.on_line(b"EPRT |2|2001:db8::1|5000|"),
            Step::Request(Request::Active(_))
        ));
    }
}
