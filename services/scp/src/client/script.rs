//! The secure-copy script (`sixstack scp SCRIPT`): one command a line, parsed and checked
//! as a whole before anything runs, so a bad script touches no file, local or remote.
//! Words are split as in the batch FTP client's scripts (`"..."` quotes a word with
//! spaces). No I/O here.
//!
//! ```text
//! # comments and blank lines are ignored; keywords are case-insensitive
//! DAEMON host[:port]             the pass-through daemon (scpd, port 4422); [v6]:port
//! HOST user@host                 the remote account (the daemon logs in with its key)
//! PORT 22                        the remote host's SSH port
//! PROTOCOL AUTO | SFTP | SCP     remote file protocol (AUTO: SFTP, else legacy scp)
//! TYPE A [codepage] | TYPE I     text (local files optionally EBCDIC: 037, 1047) or binary
//! EOL LF | CRLF                  the remote host's line ending for TYPE A (LF by default)
//! RESUME ON | OFF                continue partial transfers (ON by default)
//! LCD dir                        local directory
//! INPUT localfile  + STOR remote upload
//! OUTPUT localfile + RETR remote download
//! EXEC command ...               run a command (its output to standard output, or to
//!                                the file of a preceding OUTPUT); non-zero status fails
//! ON ERROR STOP | CONTINUE       what a failing step does to the rest (STOP by default)
//! QUIT
//! ```

use sixstack_ftp::client::script::{arity, words, ScriptError};
use sixstack_ftp::ebcdic::CodePage;

use crate::wire::Protocol;

/// The most lines a script may have.
pub const MAX_LINES: usize = 100_000;
/// The longest script line.
pub const MAX_LINE: usize = 8192;
/// The scpd port when DAEMON names none.
pub const DEFAULT_DAEMON_PORT: u16 = 4422;

/// How files are moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// As they are.
    Image,
    /// As text: line endings converted, local files optionally EBCDIC.
    Ascii(Option<CodePage>),
}

/// The remote host's line ending for text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eol {
    /// LF (Unix).
    Lf,
    /// CR LF (Windows).
    CrLf,
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The daemon.
    Daemon {
        /// Its host.
        host: String,
        /// Its port.
        port: u16,
    },
    /// The remote account.
    Host {
        /// User.
        user: String,
        /// Host.
        host: String,
    },
    /// The remote SSH port.
    Port(u16),
    /// The remote file protocol.
    Protocol(Protocol),
    /// The transfer type.
    Type(TransferType),
    /// The remote line ending.
    Eol(Eol),
    /// Resume partial transfers.
    Resume(bool),
    /// Local directory.
    Lcd(String),
    /// The local file of the next STOR.
    Input(String),
    /// The local file of the next RETR or EXEC.
    Output(String),
    /// Upload the INPUT file.
    Stor(String),
    /// Download into the OUTPUT file.
    Retr(String),
    /// Run a command.
    Exec(String),
    /// Stop at the first failure (true) or go on.
    StopOnError(bool),
    /// The end.
    Quit,
}

impl Command {
    /// The command as a log line shows it.
    pub fn describe(&self) -> String {
        match self {
            Command::Daemon { host, port } if host.contains(':') => {
                format!("DAEMON [{host}]:{port}")
            }
            Command::Daemon { host, port } => format!("DAEMON {host}:{port}"),
            Command::Host { user, host } => format!("HOST {user}@{host}"),
            Command::Port(p) => format!("PORT {p}"),
            Command::Protocol(p) => format!("PROTOCOL {}", p.name().to_ascii_uppercase()),
            Command::Type(TransferType::Image) => "TYPE I".into(),
            Command::Type(TransferType::Ascii(None)) => "TYPE A".into(),
            Command::Type(TransferType::Ascii(Some(p))) => format!("TYPE A {}", p.name()),
            Command::Eol(Eol::Lf) => "EOL LF".into(),
            Command::Eol(Eol::CrLf) => "EOL CRLF".into(),
            Command::Resume(on) => format!("RESUME {}", if *on { "ON" } else { "OFF" }),
            Command::Lcd(d) => format!("LCD {d}"),
            Command::Input(f) => format!("INPUT {f}"),
            Command::Output(f) => format!("OUTPUT {f}"),
            Command::Stor(f) => format!("STOR {f}"),
            Command::Retr(f) => format!("RETR {f}"),
            Command::Exec(c) => format!("EXEC {c}"),
            Command::StopOnError(true) => "ON ERROR STOP".into(),
            Command::StopOnError(false) => "ON ERROR CONTINUE".into(),
            Command::Quit => "QUIT".into(),
        }
    }
}

/// A command and its line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Line number.
    pub line: usize,
    /// The command.
    pub command: Command,
}

fn err<T>(line: usize, reason: impl Into<String>) -> Result<T, ScriptError> {
    Err(ScriptError {
        line,
        reason: reason.into(),
    })
}

/// `host[:port]`, `[v6]:port` or a bare IPv6 address.
fn daemon_address(n: usize, s: &str) -> Result<(String, u16), ScriptError> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => err(n, format!("{p:?} is not a port (1-65535)")),
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, tail)) = rest.split_once(']') else {
            return err(n, format!("{s:?}: an IPv6 address in [ ] is not closed"));
        };
        return match tail.strip_prefix(':') {
            Some(p) => Ok((host.to_string(), port(p)?)),
            None if tail.is_empty() => Ok((host.to_string(), DEFAULT_DAEMON_PORT)),
            None => err(n, format!("{s:?} is not host[:port]")),
        };
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((s.to_string(), DEFAULT_DAEMON_PORT));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h.to_string(), port(p)?)),
        Some(_) => err(n, format!("{s:?} is not host[:port]")),
        None => Ok((s.to_string(), DEFAULT_DAEMON_PORT)),
    }
}

fn on_off(n: usize, kw: &str, a: &[String]) -> Result<bool, ScriptError> {
    match a.first().map(|s| s.to_ascii_uppercase()).as_deref() {
        Some("ON") if a.len() == 1 => Ok(true),
        Some("OFF") if a.len() == 1 => Ok(false),
        _ => err(n, format!("usage: {kw} ON | OFF")),
    }
}

fn parse_line(n: usize, text: &str) -> Result<Command, ScriptError> {
    let trimmed = text.trim_start();
    // EXEC keeps its command line exactly as written (quotes are the remote shell's).
    let head = trimmed.get(..4).zip(trimmed.get(4..));
    if let Some((_, rest)) = head.filter(|(kw, _)| kw.eq_ignore_ascii_case("EXEC")) {
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            let cmd = rest.trim();
            if cmd.is_empty() {
                return err(n, "usage: EXEC command");
            }
            if cmd.chars().any(|c| c.is_control() && c != '\t') {
                return err(n, "the command holds a control character");
            }
            return Ok(Command::Exec(cmd.to_string()));
        }
    }
    let mut w = words(text, n)?;
    if w.is_empty() {
        return err(n, "empty command");
    }
    let kw = w.remove(0).to_ascii_uppercase();
    let a = &w;
    let up: Vec<String> = a.iter().map(|s| s.to_ascii_uppercase()).collect();
    let one = || a.first().cloned().unwrap_or_default();
    Ok(match kw.as_str() {
        "DAEMON" => {
            arity(n, &kw, a, 1, 1)?;
            let (host, port) = daemon_address(n, &one())?;
            Command::Daemon { host, port }
        }
        "HOST" => {
            arity(n, &kw, a, 1, 1)?;
            let s = one();
            let Some((user, host)) = s
                .rsplit_once('@')
                .filter(|(u, h)| !u.is_empty() && !h.is_empty())
            else {
                return err(n, "usage: HOST user@host");
            };
            crate::daemon::allow::check_user(user).or_else(|e| err(n, e))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            crate::daemon::allow::check_host(host).or_else(|e| err(n, e))?;
            Command::Host {
                user: user.to_string(),
                host: host.to_string(),
            }
        }
        "PORT" => {
            arity(n, &kw, a, 1, 1)?;
            match one().parse::<u16>() {
                Ok(p) if p > 0 => Command::Port(p),
                _ => return err(n, format!("{:?} is not a port (1-65535)", one())),
            }
        }
        "PROTOCOL" => match up.as_slice() {
            [p] if p == "AUTO" => Command::Protocol(Protocol::Auto),
            [p] if p == "SFTP" => Command::Protocol(Protocol::Sftp),
            [p] if p == "SCP" => Command::Protocol(Protocol::Scp),
            _ => return err(n, "usage: PROTOCOL AUTO | SFTP | SCP"),
        },
        "TYPE" => match up.first().map(String::as_str) {
            Some("I" | "B" | "BINARY" | "IMAGE") if a.len() == 1 => {
                Command::Type(TransferType::Image)
            }
            Some("A" | "ASCII") => match a.get(1) {
                None => Command::Type(TransferType::Ascii(None)),
                Some(p) if a.len() == 2 => match CodePage::parse(p) {
                    Some(page) => Command::Type(TransferType::Ascii(Some(page))),
                    None => {
                        return err(
                            n,
                            format!("{p:?} is not a known EBCDIC code page (037, 1047)"),
                        )
                    }
                },
                _ => return err(n, "usage: TYPE A [codepage] or TYPE I"),
            },
            _ => return err(n, "usage: TYPE A [codepage] or TYPE I"),
        },
        "EOL" => match up.as_slice() {
            [e] if e == "LF" => Command::Eol(Eol::Lf),
            [e] if e == "CRLF" => Command::Eol(Eol::CrLf),
            _ => return err(n, "usage: EOL LF | CRLF"),
        },
        "RESUME" => Command::Resume(on_off(n, &kw, a)?),
        "LCD" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Lcd(one())
        }
        "INPUT" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Input(one())
        }
        "OUTPUT" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Output(one())
        }
        "STOR" | "PUT" => {
            arity(n, &kw, a, 1, 1)?;
            crate::daemon::transfer::check_path(&one()).or_else(|e| err(n, e))?;
            crate::daemon::transfer::temp_name(&one()).or_else(|e| err(n, e))?;
            Command::Stor(one())
        }
        "RETR" | "GET" => {
            arity(n, &kw, a, 1, 1)?;
            crate::daemon::transfer::check_path(&one()).or_else(|e| err(n, e))?;
            Command::Retr(one())
        }
        "ON" => match up.as_slice() {
            [e, s] if e == "ERROR" && s == "STOP" => Command::StopOnError(true),
            [e, c] if e == "ERROR" && c == "CONTINUE" => Command::StopOnError(false),
            _ => return err(n, "usage: ON ERROR STOP | CONTINUE"),
        },
        "QUIT" | "BYE" => {
            arity(n, &kw, a, 0, 0)?;
            Command::Quit
        }
        other => return err(n, format!("unknown command {other:?}")),
    })
}

/// Parses and checks a whole script: every line well-formed, a DAEMON and a HOST before
/// the first transfer, INPUT before each STOR, OUTPUT before each RETR, nothing after QUIT.
pub fn parse(text: &[u8]) -> Result<Vec<Step>, ScriptError> {
    let text = std::str::from_utf8(text).map_err(|e| ScriptError {
        line: 1 + text[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: "the script is not UTF-8".into(),
    })?;
    let mut steps = Vec::new();
    let (mut daemon, mut host) = (false, false);
    let (mut input, mut output) = (false, false);
    let mut quit = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if n > MAX_LINES {
            return err(n, format!("more than {MAX_LINES} lines"));
        }
        if raw.len() > MAX_LINE {
            return err(n, format!("longer than {MAX_LINE} bytes"));
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if quit {
            return err(n, "nothing may follow QUIT");
        }
        let command = parse_line(n, line)?;
        match &command {
            Command::Daemon { .. } => daemon = true,
            Command::Host { .. } => host = true,
            Command::Input(_) => input = true,
            Command::Output(_) => output = true,
            Command::Stor(_) | Command::Retr(_) | Command::Exec(_) => {
                if !daemon {
                    return err(n, "no DAEMON before the first transfer");
                }
                if !host {
                    return err(n, "no HOST before the first transfer");
                }
                match &command {
                    Command::Stor(_) if !input => return err(n, "STOR needs an INPUT before it"),
                    Command::Stor(_) => input = false,
                    Command::Retr(_) if !output => return err(n, "RETR needs an OUTPUT before it"),
                    _ => output = false,
                }
            }
            Command::Quit => quit = true,
            _ => {}
        }
        steps.push(Step { line: n, command });
    }
    Ok(steps)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The README's example script, as a user would copy it.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../../README.md");
        let start = readme.find("# the pass-through daemon").unwrap();
        let end = start + readme[start..].find("```").unwrap();
        let steps = parse(&readme.as_bytes()[start..end]).unwrap();
        assert!(steps.len() > 5, "{steps:?}");
    }

    #[test]
    fn a_whole_script() {
        let s = parse(
            b"# nightly\nDAEMON 10.0.0.1\nHOST backup@files.example\nPORT 2222\nPROTOCOL scp\n\
              TYPE A 037\nEOL CRLF\nRESUME off\nINPUT \"a b.txt\"\nSTOR in/a.txt\nOUTPUT out\n\
              RETR /var/log/x\nEXEC ls -l \"a b\" | wc -l\nON ERROR CONTINUE\nQUIT\n",
        )
        .unwrap();
        assert_eq!(s.len(), 14);
        assert_eq!(
            s[0].command,
            Command::Daemon {
                host: "10.0.0.1".into(),
                port: 4422
            }
        );
        assert_eq!(s[0].line, 2);
        assert_eq!(s[3].command, Command::Protocol(Protocol::Scp));
        assert_eq!(s[7].command, Command::Input("a b.txt".into()));
        assert_eq!(s[11].command, Command::Exec("ls -l \"a b\" | wc -l".into()));
        assert_eq!(s[11].command.describe(), "EXEC ls -l \"a b\" | wc -l");
    }

    #[test]
    fn daemon_addresses() {
        let d = |s: &str| daemon_address(1, s);
        assert_eq!(d("h:99").unwrap(), ("h".into(), 99));
        assert_eq!(d("[fd00::1]:99").unwrap(), ("fd00::1".into(), 99));
        assert_eq!(d("fd00::1").unwrap(), ("fd00::1".into(), 4422));
        assert!(d("h:0").is_err());
        assert!(d("[fd00::1").is_err());
    }

    #[test]
    fn bad_scripts_name_the_line() {
        let e = |t: &[u8]| parse(t).unwrap_err();
        assert_eq!(e(b"DAEMON d\nHOST u@h\nSTOR x\n").line, 3);
        assert!(e(b"DAEMON d\nINPUT a\nSTOR x\n").reason.contains("HOST"));
        assert!(e(b"HOST u@h\nOUTPUT a\nRETR x\n").reason.contains("DAEMON"));
        assert!(e(b"DAEMON d\nHOST -oProxyCommand=x@h\n")
            .reason
            .contains("user"));
        assert!(e(b"DAEMON d\nHOST u@h;rm\n").reason.contains("host"));
        assert!(e(b"FROB\n").reason.contains("unknown"));
        assert!(e(b"QUIT\nDAEMON d\n").reason.contains("QUIT"));
        assert!(e(b"EXEC\n").reason.contains("usage"));
        assert!(e(b"DAEMON d\nHOST u@h\nINPUT a\nSTOR dir/\n")
            .reason
            .contains("directory"));
        assert_eq!(e(b"DAEMON d\n\xff\n").line, 2);
        // Found by the fuzzer: a multi-byte character across the keyword's fourth byte.
        assert!(e("EXE\u{e9}x\n".as_bytes()).reason.contains("unknown"));
    }
}
