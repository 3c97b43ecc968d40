//! Control-connection commands: one line (without its CR LF) in, one typed [`Command`] or
//! a [`CommandError`] carrying the reply code the client gets (500 syntax, 501 bad
//! argument, 502 not implemented, 504 parameter not implemented). Nothing here panics on
//! input; every limit is explicit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The longest command line read (RFC 959 leaves it open; paths up to [`MAX_ARG`]).
pub const MAX_LINE: usize = 4096;

/// The longest argument accepted.
pub const MAX_ARG: usize = 4000;

/// TYPE: how file contents are represented on the data connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// `TYPE A` (non-print): lines end in CR LF on the wire.
    Ascii,
    /// `TYPE I` (or `L 8`): bytes as they are.
    Image,
}

/// PROT: the data connection's protection (RFC 4217).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtLevel {
    /// `C`: clear.
    Clear,
    /// `P`: private (TLS).
    Private,
}

/// EPSV's argument (RFC 2428).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the control connection's protocol.
    Any,
    /// `1`: IPv4.
    V4,
    /// `2`: IPv6.
    V6,
    /// `ALL`: from now on only EPSV (no PORT/PASV/EPRT).
    All,
}

/// A password as the client sent it: shown as `Secret(..)` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for checking it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The password (redacted from `Debug`, never logged).
    Pass(Secret),
    Acct(String),
    Cwd(String),
    Cdup,
    Pwd,
    /// LIST with an optional path (leading `-la`-style options are dropped).
    List(Option<String>),
    Nlst(Option<String>),
    Retr(String),
    Stor(String),
    Stou,
    Appe(String),
    Dele(String),
    Rmd(String),
    Mkd(String),
    Rnfr(String),
    Rnto(String),
    Type(TransferType),
    /// MODE S (the only mode served).
    ModeStream,
    /// STRU F (the only structure served).
    StruFile,
    Pasv,
    Epsv(EpsvArg),
    Port(SocketAddr),
    Eprt(SocketAddr),
    Abor,
    Rest(u64),
    Noop,
    Syst,
    Stat(Option<String>),
    Help(Option<String>),
    Quit,
    /// SITE and its words (e.g. `SITE CHMOD 644 f`, `SITE EBCDIC 1047`).
    Site(String),
    Size(String),
    Mdtm(String),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Feat,
    /// OPTS's argument (e.g. `UTF8 ON`, `MLST type;size;`).
    Opts(String),
    /// AUTH's mechanism (`TLS`, `TLS-C`, `SSL`; upper-cased).
    Auth(String),
    Pbsz(u64),
    Prot(ProtLevel),
    Ccc,
}

/// Why a line is not a command this server runs, with the reply code for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not a command at all, or one nobody knows (500).
    #[error("500 {0}")]
    Syntax(String),
    /// A known command with a bad argument (501).
    #[error("501 {0}")]
    Argument(String),
    /// A known command this server does not implement (502).
    #[error("502 {0}")]
    NotImplemented(String),
    /// A valid parameter this server does not implement (504).
    #[error("504 {0}")]
    Parameter(String),
}

impl CommandError {
    /// The reply code.
    pub fn code(&self) -> u16 {
        match self {
            CommandError::Syntax(_) => 500,
            CommandError::Argument(_) => 501,
            CommandError::NotImplemented(_) => 502,
            CommandError::Parameter(_) => 504,
        }
    }

    /// The reply text.
    pub fn text(&self) -> &str {
        match self {
            CommandError::Syntax(t)
            | CommandError::Argument(t)
            | CommandError::NotImplemented(t)
            | CommandError::Parameter(t) => t,
        }
    }
}

/// Removes TELNET commands (RFC 854) from a line: `IAC x` for a command byte, `IAC IAC` for
/// a literal 0xFF, and the option negotiation `IAC WILL/WONT/DO/DONT opt`. Clients send
/// `IAC IP IAC DM` before ABOR.
pub fn strip_telnet(line: &[u8]) -> Vec<u8> {
    const IAC: u8 = 0xff;
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b != IAC {
            out.push(b);
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            Some(&IAC) => {
                out.push(IAC);
                i += 2;
            }
            // WILL, WONT, DO, DONT carry an option byte.
            Some(0xfb..=0xfe) => i += 3,
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    out
}

fn need(verb: &str, arg: Option<&str>) -> Result<String, CommandError> {
    match arg {
        Some(a) if !a.is_empty() => Ok(a.to_string()),
        _ => Err(CommandError::Argument(format!("{verb} needs an argument"))),
    }
}

fn none(verb: &str, arg: Option<&str>) -> Result<(), CommandError> {
    match arg {
        None => Ok(()),
        Some(a) if a.trim().is_empty() => Ok(()),
        Some(_) => Err(CommandError::Argument(format!("{verb} takes no argument"))),
    }
}

fn optional(arg: Option<&str>) -> Option<String> {
    arg.filter(|a| !a.is_empty()).map(str::to_string)
}

/// LIST/NLST arguments: `ls`-style options (`-la`, `-a`) are dropped, the rest is a path.
fn list_arg(arg: Option<&str>) -> Option<String> {
    let mut rest = arg?.trim_start();
    while rest.starts_with('-') {
        match rest.find(' ') {
            Some(sp) => rest = rest[sp..].trim_start(),
            None => rest = "",
        }
    }
    optional(Some(rest))
}

fn number(verb: &str, arg: Option<&str>) -> Result<u64, CommandError> {
    let a = need(verb, arg)?;
    a.trim()
        .parse()
        .map_err(|_| CommandError::Argument(format!("{verb} needs a decimal number")))
}

/// `PORT h1,h2,h3,h4,p1,p2`.
fn port_arg(arg: Option<&str>) -> Result<SocketAddr, CommandError> {
    let bad = || CommandError::Argument("PORT needs h1,h2,h3,h4,p1,p2".into());
    let a = need("PORT", arg)?;
    let parts: Vec<u8> = a
        .trim()
        .split(',')
        .map(|p| p.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [h1, h2, h3, h4, p1, p2] = parts[..] else {
        return Err(bad());
    };
    let port = u16::from(p1) << 8 | u16::from(p2);
    if port == 0 {
        return Err(bad());
    }
    Ok(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(h1, h2, h3, h4)),
        port,
    ))
}

/// `EPRT |1|132.235.1.2|6275|` (RFC 2428; any delimiter in 33..=126).
fn eprt_arg(arg: Option<&str>) -> Result<SocketAddr, CommandError> {
    let a = need("EPRT", arg)?;
    let a = a.trim();
    let bad = || CommandError::Argument("EPRT needs <d>proto<d>address<d>port<d>".into());
    let d = a.chars().next().ok_or_else(bad)?;
    if !(33..=126).contains(&(d as u32)) || d.is_ascii_digit() {
        return Err(bad());
    }
    let fields: Vec<&str> = a.split(d).collect();
    let ["", proto, addr, port, ""] = fields[..] else {
        return Err(bad());
    };
    let ip: IpAddr = match proto {
        "1" => IpAddr::V4(addr.parse().map_err(|_| bad())?),
        "2" => IpAddr::V6(addr.parse().map_err(|_| bad())?),
        _ => {
            return Err(CommandError::Parameter(
                "network protocol not supported, use (1,2)".into(),
            ))
        }
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok(SocketAddr::new(ip, port))
}

fn type_arg(arg: Option<&str>) -> Result<TransferType, CommandError> {
    let a = need("TYPE", arg)?.to_ascii_uppercase();
    let words: Vec<&str> = a.split_whitespace().collect();
    match words[..] {
        ["A"] | ["A", "N"] => Ok(TransferType::Ascii),
        ["I"] | ["L", "8"] => Ok(TransferType::Image),
        ["A", _] | ["E"] | ["E", _] | ["L", _] => Err(CommandError::Parameter(format!(
            "TYPE {a} is not served; use A or I"
        ))),
        _ => Err(CommandError::Argument(format!("unknown TYPE {a}"))),
    }
}

impl Command {
    /// Parses one line (CR LF already removed; TELNET commands already stripped).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        if line.len() > MAX_LINE {
            return Err(CommandError::Syntax(format!(
                "command line longer than {MAX_LINE} bytes"
            )));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| CommandError::Argument("command is not UTF-8 (RFC 2640)".into()))?;
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.find(' ') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        if verb.is_empty() || verb.len() > 4 || !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
            let shown: String = verb.chars().take(16).collect();
            return Err(CommandError::Syntax(format!("'{shown}': not a command")));
        }
        if arg.is_some_and(|a| a.len() > MAX_ARG) {
            return Err(CommandError::Argument(format!(
                "argument longer than {MAX_ARG} bytes"
            )));
        }
        if arg.is_some_and(|a| a.contains('\0')) {
            return Err(CommandError::Argument("argument contains NUL".into()));
        }
        let verb = verb.to_ascii_uppercase();
        let v = verb.as_str();
        let c = match v {
            "USER" => Command::User(need(v, arg)?),
            "PASS" => Command::Pass(Secret(arg.unwrap_or("").to_string())),
            "ACCT" => Command::Acct(need(v, arg)?),
            "CWD" | "XCWD" => Command::Cwd(need(v, arg)?),
            "CDUP" | "XCUP" => {
                none(v, arg)?;
                Command::Cdup
            }
            "PWD" | "XPWD" => {
                none(v, arg)?;
                Command::Pwd
            }
            "LIST" => Command::List(list_arg(arg)),
            "NLST" => Command::Nlst(list_arg(arg)),
            "RETR" => Command::Retr(need(v, arg)?),
            "STOR" => Command::Stor(need(v, arg)?),
            "STOU" => {
                none(v, arg)?;
                Command::Stou
            }
            "APPE" => Command::Appe(need(v, arg)?),
            "DELE" => Command::Dele(need(v, arg)?),
            "RMD" | "XRMD" => Command::Rmd(need(v, arg)?),
            "MKD" | "XMKD" => Command::Mkd(need(v, arg)?),
            "RNFR" => Command::Rnfr(need(v, arg)?),
            "RNTO" => Command::Rnto(need(v, arg)?),
            "TYPE" => Command::Type(type_arg(arg)?),
            "MODE" => match need(v, arg)?.trim().to_ascii_uppercase().as_str() {
                "S" => Command::ModeStream,
                "B" | "C" | "Z" => {
                    return Err(CommandError::Parameter("only MODE S is served".into()))
                }
                _ => return Err(CommandError::Argument("unknown MODE".into())),
            },
            "STRU" => match need(v, arg)?.trim().to_ascii_uppercase().as_str() {
                "F" => Command::StruFile,
                "R" | "P" => return Err(CommandError::Parameter("only STRU F is served".into())),
                _ => return Err(CommandError::Argument("unknown STRU".into())),
            },
            "PASV" => {
                none(v, arg)?;
                Command::Pasv
            }
            "EPSV" => Command::Epsv(match arg.map(|a| a.trim().to_ascii_uppercase()) {
                None => EpsvArg::Any,
                Some(a) if a.is_empty() => EpsvArg::Any,
                Some(a) if a == "1" => EpsvArg::V4,
                Some(a) if a == "2" => EpsvArg::V6,
                Some(a) if a == "ALL" => EpsvArg::All,
                Some(_) => {
                    return Err(CommandError::Parameter(
                        "network protocol not supported, use (1,2)".into(),
                    ))
                }
            }),
            "PORT" => Command::Port(port_arg(arg)?),
            "EPRT" => Command::Eprt(eprt_arg(arg)?),
            "ABOR" => Command::Abor,
            "REST" => Command::Rest(number(v, arg)?),
            "NOOP" => Command::Noop,
            "SYST" => Command::Syst,
            "STAT" => Command::Stat(optional(arg)),
            "HELP" => Command::Help(optional(arg)),
            "QUIT" => Command::Quit,
            "SITE" => Command::Site(need(v, arg)?),
            "SIZE" => Command::Size(need(v, arg)?),
            "MDTM" => Command::Mdtm(need(v, arg)?),
            "MLSD" => Command::Mlsd(optional(arg)),
            "MLST" => Command::Mlst(optional(arg)),
            "FEAT" => Command::Feat,
            "OPTS" => Command::Opts(need(v, arg)?),
            "AUTH" => Command::Auth(need(v, arg)?.trim().to_ascii_uppercase()),
            "PBSZ" => Command::Pbsz(number(v, arg)?),
            "PROT" => match need(v, arg)?.trim().to_ascii_uppercase().as_str() {
                "C" => Command::Prot(ProtLevel::Clear),
                "P" => Command::Prot(ProtLevel::Private),
                "S" | "E" => {
                    return Err(CommandError::Parameter(
                        "PROT S and E are not served; use C or P".into(),
                    ))
                }
                _ => return Err(CommandError::Argument("unknown PROT level".into())),
            },
            "CCC" => Command::Ccc,
            "SMNT" | "REIN" | "ALLO" | "MIC" | "CONF" | "ENC" | "ADAT" => {
                return Err(CommandError::NotImplemented(format!(
                    "{v} is not implemented"
                )))
            }
            _ => return Err(CommandError::Syntax(format!("'{v}': unknown command"))),
        };
        Ok(c)
    }

    /// The command's verb, for logs (a PASS argument is never part of it).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Pwd => "PWD",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Stou => "STOU",
            Command::Appe(_) => "APPE",
            Command::Dele(_) => "DELE",
            Command::Rmd(_) => "RMD",
            Command::Mkd(_) => "MKD",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Type(_) => "TYPE",
            Command::ModeStream => "MODE",
            Command::StruFile => "STRU",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Abor => "ABOR",
            Command::Rest(_) => "REST",
            Command::Noop => "NOOP",
            Command::Syst => "SYST",
            Command::Stat(_) => "STAT",
            Command::Help(_) => "HELP",
            Command::Quit => "QUIT",
            Command::Site(_) => "SITE",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, CommandError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn verbs_are_case_insensitive_and_arguments_keep_their_spaces() {
        assert_eq!(p("user anna"), Ok(Command::User("anna".into())));
        assert_eq!(
            p("RETR my file.txt"),
            Ok(Command::Retr("my file.txt".into()))
        );
        assert_eq!(p("STOR  lead"), Ok(Command::Stor(" lead".into())));
        assert_eq!(p("PASS"), Ok(Command::Pass(Secret(String::new()))));
        assert_eq!(p("XPWD"), Ok(Command::Pwd));
        assert_eq!(p("CDUP"), Ok(Command::Cdup));
        assert_eq!(p("NOOP\r"), Ok(Command::Noop));
        assert_eq!(p("RETR café.txt"), Ok(Command::Retr("café.txt".into())));
    }

    #[test]
    fn list_options_are_dropped() {
        assert_eq!(p("LIST"), Ok(Command::List(None)));
        assert_eq!(p("LIST -la"), Ok(Command::List(None)));
        assert_eq!(p("LIST -a dir"), Ok(Command::List(Some("dir".into()))));
        assert_eq!(p("NLST sub/dir"), Ok(Command::Nlst(Some("sub/dir".into()))));
    }

    #[test]
    fn data_connection_addresses() {
        assert_eq!(
            p("PORT 10,0,0,1,4,1"),
            Ok(Command::Port("10.0.0.1:1025".parse().unwrap()))
        );
        assert_eq!(
            p("EPRT |2|2001:db8::1|5282|"),
            Ok(Command::Eprt("[2001:db8::1]:5282".parse().unwrap()))
        );
        assert_eq!(
            p("EPRT !1!10.0.0.2!80!"),
            Ok(Command::Eprt("10.0.0.2:80".parse().unwrap()))
        );
        assert_eq!(p("EPSV"), Ok(Command::Epsv(EpsvArg::Any)));
        assert_eq!(p("EPSV 2"), Ok(Command::Epsv(EpsvArg::V6)));
        assert_eq!(p("EPSV all"), Ok(Command::Epsv(EpsvArg::All)));
        for bad in [
            "PORT 10,0,0,1,4",
            "PORT 10,0,0,256,4,1",
            "PORT 1,2,3,4,0,0",
            "PORT",
            "EPRT |1|2001:db8::1|80|",
            "EPRT |1|10.0.0.1|x|",
            "EPRT 1|10.0.0.1|80|",
            "EPRT |1|10.0.0.1|80",
        ] {
            assert_eq!(p(bad).unwrap_err().code(), 501, "{bad}");
        }
        assert_eq!(p("EPRT |3|x|80|").unwrap_err().code(), 504);
        assert_eq!(p("EPSV 3").unwrap_err().code(), 504);
    }

    #[test]
    fn parameters() {
        assert_eq!(p("TYPE I"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(p("type a n"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(p("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(p("TYPE E").unwrap_err().code(), 504);
        assert_eq!(p("TYPE X").unwrap_err().code(), 501);
        assert_eq!(p("MODE S"), Ok(Command::ModeStream));
        assert_eq!(p("MODE B").unwrap_err().code(), 504);
        assert_eq!(p("STRU R").unwrap_err().code(), 504);
        assert_eq!(p("REST 1048576"), Ok(Command::Rest(1 << 20)));
        assert_eq!(p("REST -1").unwrap_err().code(), 501);
        assert_eq!(p("PROT P"), Ok(Command::Prot(ProtLevel::Private)));
        assert_eq!(p("PROT E").unwrap_err().code(), 504);
        assert_eq!(p("AUTH tls"), Ok(Command::Auth("TLS".into())));
        assert_eq!(p("PBSZ 0"), Ok(Command::Pbsz(0)));
    }

    #[test]
    fn hostile_lines_get_a_reply_code_not_a_panic() {
        assert_eq!(p("").unwrap_err().code(), 500);
        assert_eq!(p("   ").unwrap_err().code(), 500);
        assert_eq!(p("RETRIEVE x").unwrap_err().code(), 500);
        assert_eq!(p("R3TR x").unwrap_err().code(), 500);
        assert_eq!(p("FOO").unwrap_err().code(), 500);
        assert_eq!(p("REIN").unwrap_err().code(), 502);
        assert_eq!(p("RETR").unwrap_err().code(), 501);
        assert_eq!(p("PWD x").unwrap_err().code(), 501);
        assert_eq!(p("RETR a\0b").unwrap_err().code(), 501);
        assert_eq!(Command::parse(b"RETR \xff\xfe").unwrap_err().code(), 501);
        let long = format!("STOR {}", "a".repeat(MAX_ARG + 1));
        assert_eq!(p(&long).unwrap_err().code(), 501);
        let longer = "x".repeat(MAX_LINE + 1);
        assert_eq!(p(&longer).unwrap_err().code(), 500);
    }

    #[test]
    fn telnet_commands_are_stripped() {
        assert_eq!(strip_telnet(b"\xff\xf4\xff\xf2ABOR"), b"ABOR");
        assert_eq!(strip_telnet(b"RETR a\xff\xffb"), b"RETR a\xffb");
        assert_eq!(strip_telnet(b"\xff\xfb\x01NOOP"), b"NOOP");
        assert_eq!(strip_telnet(b"NOOP\xff"), b"NOOP");
        assert_eq!(p("ABOR"), Ok(Command::Abor));
    }

    /// A cheap stand-in for the fuzz target (`fuzz/fuzz_targets/ftp_command.rs`) that runs
    /// with the tests: 200 000 random lines over the bytes commands are made of.
    #[test]
    fn random_lines_never_panic() {
        let alphabet: &[u8] =
            b"RETRSTORPORTEPRTEPSVTYPEPROTREST|,.:/ 0123456789aAiI\xff\xf4\r\n\0-";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let len = (next() % 40) as usize;
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let stripped = strip_telnet(&line);
            if let Err(e) = Command::parse(&stripped) {
                assert!((500..=504).contains(&e.code()));
            }
        }
    }

    #[test]
    fn pass_is_named_but_never_shown() {
        let c = p("PASS s3cret").unwrap();
        assert_eq!(c.verb(), "PASS");
        assert!(!format!("{c:?}").contains("s3cret"));
        let Command::Pass(s) = c else { panic!() };
        assert_eq!(s.expose(), "s3cret");
    }
}
