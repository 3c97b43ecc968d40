//! The batch FTP client's script: one command a line, parsed and checked as a whole before
//! anything runs, so a bad script touches no file, local or remote. No I/O here.
//!
//! ```text
//! # comments and blank lines are ignored; keywords are case-insensitive
//! OPEN host [port] [IMPLICIT]     connect (IMPLICIT: TLS from the first byte, port 990)
//! AUTH TLS                        explicit FTPS on the open control connection
//! USER name
//! PASS VAULT entry                the password from the vault (PASS secret needs
//!                                 --insecure-password)
//! TYPE A [codepage] | TYPE I      text (optionally EBCDIC local files: 037, 1047) or binary
//! CD dir / LCD dir                remote / local directory
//! INPUT localfile  + STOR remote  upload (or + APPEND remote)
//! OUTPUT localfile + RETR remote  download
//! MPUT pattern / MGET pattern     every matching local / remote file (* and ?)
//! DELETE f / RENAME from to / MKDIR dir / SITE args
//! PASSIVE | ACTIVE                data connection mode (passive is the default)
//! ON ERROR STOP | CONTINUE        what a failing step does to the rest (STOP by default)
//! QUIT
//! ```

use std::fmt;

use crate::ebcdic::CodePage;

/// The longest script line read.
pub const MAX_LINE: usize = 4096;
/// The most lines a script may have.
pub const MAX_LINES: usize = 100_000;
/// The longest argument (path, name, SITE text) a command takes.
pub const MAX_ARG: usize = 1024;

/// A transfer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// Binary (TYPE I).
    Image,
    /// Text (TYPE A); local files in an EBCDIC code page when one is given.
    Ascii(Option<CodePage>),
}

/// Where the password of a USER comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// A vault entry.
    Vault(String),
    /// Written in the script (accepted only with `--insecure-password`).
    Clear(String),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Vault(n) => write!(f, "Vault({n:?})"),
            Password::Clear(_) => f.write_str("Clear(..)"),
        }
    }
}

/// One command of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Connect.
    Open {
        /// Host name or address.
        host: String,
        /// Port (21, or 990 with `implicit`).
        port: u16,
        /// TLS from the first byte.
        implicit: bool,
    },
    /// Explicit FTPS.
    AuthTls,
    /// Log in as this user.
    User(String),
    /// The password of the last USER.
    Pass(Password),
    /// Transfer type.
    Type(TransferType),
    /// Remote directory.
    Cd(String),
    /// Local directory.
    Lcd(String),
    /// The local file of the next STOR or APPEND.
    Input(String),
    /// The local file of the next RETR.
    Output(String),
    /// Upload the INPUT file.
    Stor(String),
    /// Append the INPUT file to a remote file.
    Append(String),
    /// Download into the OUTPUT file.
    Retr(String),
    /// Upload every matching local file.
    Mput(String),
    /// Download every matching remote file.
    Mget(String),
    /// Delete a remote file.
    Delete(String),
    /// Rename a remote file.
    Rename(String, String),
    /// Make a remote directory.
    Mkdir(String),
    /// A SITE command.
    Site(String),
    /// Passive (true) or active data connections.
    Passive(bool),
    /// Stop at the first failing step (true) or go on.
    StopOnError(bool),
    /// Log out and close.
    Quit,
}

impl Command {
    /// The command as a log line shows it (no password).
    pub fn describe(&self) -> String {
        match self {
            Command::Open {
                host,
                port,
                implicit,
            } => format!(
                "OPEN {host} {port}{}",
                if *implicit { " IMPLICIT" } else { "" }
            ),
            Command::AuthTls => "AUTH TLS".into(),
            Command::User(u) => format!("USER {u}"),
            Command::Pass(Password::Vault(n)) => format!("PASS VAULT {n}"),
            Command::Pass(Password::Clear(_)) => "PASS ****".into(),
            Command::Type(TransferType::Image) => "TYPE I".into(),
            Command::Type(TransferType::Ascii(None)) => "TYPE A".into(),
            Command::Type(TransferType::Ascii(Some(p))) => format!("TYPE A {}", p.name()),
            Command::Cd(d) => format!("CD {d}"),
            Command::Lcd(d) => format!("LCD {d}"),
            Command::Input(f) => format!("INPUT {f}"),
            Command::Output(f) => format!("OUTPUT {f}"),
            Command::Stor(f) => format!("STOR {f}"),
            Command::Append(f) => format!("APPEND {f}"),
            Command::Retr(f) => format!("RETR {f}"),
            Command::Mput(p) => format!("MPUT {p}"),
            Command::Mget(p) => format!("MGET {p}"),
            Command::Delete(f) => format!("DELETE {f}"),
            Command::Rename(a, b) => format!("RENAME {a} {b}"),
            Command::Mkdir(d) => format!("MKDIR {d}"),
            Command::Site(s) => format!("SITE {s}"),
            Command::Passive(true) => "PASSIVE".into(),
            Command::Passive(false) => "ACTIVE".into(),
            Command::StopOnError(true) => "ON ERROR STOP".into(),
            Command::StopOnError(false) => "ON ERROR CONTINUE".into(),
            Command::Quit => "QUIT".into(),
        }
    }
}

/// A command and the line it came from (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Line number in the script.
    pub line: usize,
    /// The command.
    pub command: Command,
}

/// What is wrong with a script, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ScriptError {
    /// Line number (1-based).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn err<T>(line: usize, reason: impl Into<String>) -> Result<T, ScriptError> {
    Err(ScriptError {
        line,
        reason: reason.into(),
    })
}

/// Splits a line into words; `"..."` quotes a word with spaces (`\"` and `\\` inside).
/// (Shared with the other batch clients' scripts.)
pub fn words(line: &str, n: usize) -> Result<Vec<String>, ScriptError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else {
            return Ok(out);
        };
        let mut w = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return err(n, "a quoted word is not closed"),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\')) => w.push(e),
                        _ => return err(n, "only \\\" and \\\\ may be escaped in quotes"),
                    },
                    Some(ch) => w.push(ch),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                w.push(ch);
                chars.next();
            }
        }
        if w.len() > MAX_ARG {
            return err(n, format!("an argument is longer than {MAX_ARG} bytes"));
        }
        if w.chars().any(|c| c.is_control()) {
            return err(n, "an argument holds a control character");
        }
        out.push(w);
    }
}

/// Checks that `kw` got `min` to `max` arguments.
pub fn arity(
    n: usize,
    kw: &str,
    args: &[String],
    min: usize,
    max: usize,
) -> Result<(), ScriptError> {
    if args.len() < min || args.len() > max {
        let want = match (min, max) {
            (a, b) if a == b => format!("{a}"),
            (a, b) => format!("{a} to {b}"),
        };
        return err(
            n,
            format!("{kw} takes {want} argument(s), {} given", args.len()),
        );
    }
    Ok(())
}

fn one(args: &[String]) -> String {
    args.first().cloned().unwrap_or_default()
}

/// Parses one non-empty, non-comment line.
fn parse_line(n: usize, text: &str) -> Result<Command, ScriptError> {
    let mut w = words(text, n)?;
    if w.is_empty() {
        return err(n, "empty command");
    }
    let kw = w.remove(0).to_ascii_uppercase();
    let upper: Vec<String> = w.iter().map(|a| a.to_ascii_uppercase()).collect();
    let a = &w;
    let cmd = match kw.as_str() {
        "OPEN" => {
            arity(n, &kw, a, 1, 3)?;
            let implicit = upper.last().is_some_and(|l| l == "IMPLICIT");
            let rest = &a[1..a.len() - usize::from(implicit)];
            if implicit && a.len() == 1 {
                return err(n, "OPEN needs a host");
            }
            let port = match rest {
                [] => {
                    if implicit {
                        990
                    } else {
                        21
                    }
                }
                [p] => match p.parse::<u16>() {
                    Ok(p) if p > 0 => p,
                    _ => return err(n, format!("{p:?} is not a port (1-65535)")),
                },
                _ => return err(n, "usage: OPEN host [port] [IMPLICIT]"),
            };
            Command::Open {
                host: one(a),
                port,
                implicit,
            }
        }
        "AUTH" => {
            if upper.as_slice() != ["TLS"] && upper.as_slice() != ["SSL"] {
                return err(n, "usage: AUTH TLS");
            }
            Command::AuthTls
        }
        "USER" => {
            arity(n, &kw, a, 1, 1)?;
            Command::User(one(a))
        }
        "PASS" => match upper.first().map(String::as_str) {
            Some("VAULT") => {
                arity(n, &kw, a, 2, 2)?;
                Command::Pass(Password::Vault(a[1].clone()))
            }
            Some(_) if a.len() == 1 => Command::Pass(Password::Clear(one(a))),
            _ => return err(n, "usage: PASS VAULT entry"),
        },
        "TYPE" => match upper.first().map(String::as_str) {
            Some("I") | Some("B") | Some("BINARY") | Some("IMAGE") if a.len() == 1 => {
                Command::Type(TransferType::Image)
            }
            Some("A") | Some("ASCII") => match a.get(1) {
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
        "CD" | "CWD" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Cd(one(a))
        }
        "LCD" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Lcd(one(a))
        }
        "INPUT" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Input(one(a))
        }
        "OUTPUT" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Output(one(a))
        }
        "STOR" | "PUT" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Stor(one(a))
        }
        "APPEND" | "APPE" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Append(one(a))
        }
        "RETR" | "GET" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Retr(one(a))
        }
        "MPUT" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Mput(one(a))
        }
        "MGET" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Mget(one(a))
        }
        "DELETE" | "DELE" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Delete(one(a))
        }
        "RENAME" => {
            arity(n, &kw, a, 2, 2)?;
            Command::Rename(a[0].clone(), a[1].clone())
        }
        "MKDIR" | "MKD" => {
            arity(n, &kw, a, 1, 1)?;
            Command::Mkdir(one(a))
        }
        "SITE" => {
            if a.is_empty() {
                return err(n, "SITE needs its arguments");
            }
            Command::Site(a.join(" "))
        }
        "PASSIVE" | "PASV" => {
            arity(n, &kw, a, 0, 0)?;
            Command::Passive(true)
        }
        "ACTIVE" => {
            arity(n, &kw, a, 0, 0)?;
            Command::Passive(false)
        }
        "ON" => match upper
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["ERROR", "STOP"] => Command::StopOnError(true),
            ["ERROR", "CONTINUE"] => Command::StopOnError(false),
            _ => return err(n, "usage: ON ERROR STOP or ON ERROR CONTINUE"),
        },
        "QUIT" | "BYE" => {
            arity(n, &kw, a, 0, 0)?;
            Command::Quit
        }
        _ => return err(n, format!("unknown command {kw:?}")),
    };
    Ok(cmd)
}

/// Parses a whole script and checks that its commands make sense in order: a session
/// before commands that need one, USER before PASS, INPUT before STOR/APPEND and OUTPUT
/// before RETR (each file pairs with the next transfer), PASS in clear text only when
/// `insecure_password` allows it. The first problem is returned; nothing has run.
pub fn parse(text: &[u8], insecure_password: bool) -> Result<Vec<Step>, ScriptError> {
    let mut steps = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        if n > MAX_LINES {
            return err(n, format!("a script has at most {MAX_LINES} lines"));
        }
        if raw.len() > MAX_LINE {
            return err(n, format!("the line is longer than {MAX_LINE} bytes"));
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            return err(n, "the line is not UTF-8");
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        steps.push(Step {
            line: n,
            command: parse_line(n, line)?,
        });
    }
    check(&steps, insecure_password)?;
    Ok(steps)
}

fn check(steps: &[Step], insecure_password: bool) -> Result<(), ScriptError> {
    let (mut open, mut user, mut input, mut output) = (false, false, None, None);
    for s in steps {
        let n = s.line;
        let needs_session = !matches!(
            s.command,
            Command::Open { .. }
                | Command::Lcd(_)
                | Command::Input(_)
                | Command::Output(_)
                | Command::Type(_)
                | Command::Passive(_)
                | Command::StopOnError(_)
                | Command::Quit
        );
        if needs_session && !open {
            return err(n, format!("{} needs an OPEN first", s.command.describe()));
        }
        match &s.command {
            Command::Open { .. } => (open, user) = (true, false),
            Command::Quit => open = false,
            Command::User(_) => user = true,
            Command::Pass(p) => {
                if !user {
                    return err(n, "PASS needs a USER first");
                }
                if matches!(p, Password::Clear(_)) && !insecure_password {
                    return err(
                        n,
                        "a clear-text password in a script is refused: store it with \
                         `sixstack vault set` and write PASS VAULT entry (or run with \
                         --insecure-password)",
                    );
                }
            }
            Command::Input(f) => input = Some(f.clone()),
            Command::Output(f) => output = Some(f.clone()),
            Command::Stor(_) | Command::Append(_) => {
                let Some(_) = input.take() else {
                    return err(
                        n,
                        format!("{} needs an INPUT line before it", s.command.describe()),
                    );
                };
            }
            Command::Retr(_) => {
                let Some(_) = output.take() else {
                    return err(n, "RETR needs an OUTPUT line before it");
                };
            }
            _ => {}
        }
    }
    if let Some(f) = input {
        return err(
            steps.last().map_or(1, |s| s.line),
            format!("INPUT {f} is not followed by a STOR or APPEND"),
        );
    }
    if let Some(f) = output {
        return err(
            steps.last().map_or(1, |s| s.line),
            format!("OUTPUT {f} is not followed by a RETR"),
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The README's example script, as a user would copy it.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../../README.md");
        let start = readme.find("# OPEN host").unwrap();
        let end = start + readme[start..].find("```").unwrap();
        let steps = parse(&readme.as_bytes()[start..end], false).unwrap();
        assert!(steps.len() > 10, "{steps:?}");
    }

    fn cmds(s: &str) -> Vec<Command> {
        parse(s.as_bytes(), false)
            .unwrap()
            .into_iter()
            .map(|s| s.command)
            .collect()
    }

    #[test]
    fn a_full_script_parses_with_line_numbers() {
        let s = "# nightly\nopen ftp.example 2121\nAUTH TLS\nUSER anna\nPASS VAULT ftp.anna\n\n\
                 TYPE A 1047\nCD /out\nLCD /data\nINPUT r.txt\nSTOR r.txt\nOUTPUT \"my file\"\n\
                 RETR \"in file\"\nMPUT *.csv\nMGET a?.log\nDELETE x\nRENAME a b\nMKDIR d\n\
                 SITE CHMOD 644 r.txt\nACTIVE\nON ERROR CONTINUE\nINPUT log\nAPPEND all.log\nQUIT\n";
        let steps = parse(s.as_bytes(), false).unwrap();
        assert_eq!(steps[0].line, 2);
        assert_eq!(
            steps[0].command,
            Command::Open {
                host: "ftp.example".into(),
                port: 2121,
                implicit: false
            }
        );
        assert_eq!(
            steps[4].command,
            Command::Type(TransferType::Ascii(Some(CodePage::Ibm1047)))
        );
        assert_eq!(steps[4].line, 7);
        assert!(steps.contains(&Step {
            line: 13,
            command: Command::Retr("in file".into())
        }));
        assert!(steps
            .iter()
            .any(|s| s.command == Command::Site("CHMOD 644 r.txt".into())));
        assert_eq!(steps.last().unwrap().command, Command::Quit);
    }

    #[test]
    fn implicit_defaults_to_990() {
        assert_eq!(
            cmds("OPEN h IMPLICIT")[0],
            Command::Open {
                host: "h".into(),
                port: 990,
                implicit: true
            }
        );
        assert_eq!(
            cmds("OPEN h 4990 implicit")[0],
            Command::Open {
                host: "h".into(),
                port: 4990,
                implicit: true
            }
        );
    }

    #[test]
    fn bad_scripts_name_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("OPEN h\nFROB x\n", 2, "unknown command"),
            ("OPEN h\nUSER a\nSTOR x\n", 3, "needs an INPUT"),
            ("OPEN h\nOUTPUT a\nSTOR x\n", 3, "needs an INPUT"),
            ("OPEN h\nRETR x\n", 2, "needs an OUTPUT"),
            ("USER a\n", 1, "needs an OPEN"),
            ("OPEN h\nPASS VAULT x\n", 2, "needs a USER"),
            ("OPEN h\nUSER a\nPASS secret\n", 3, "clear-text password"),
            ("OPEN h 99999\n", 1, "not a port"),
            ("OPEN h\nTYPE A 500\n", 2, "code page"),
            ("OPEN h\nCD\n", 2, "takes 1"),
            ("OPEN h\nINPUT a\n", 2, "not followed"),
            ("OPEN h\nCD \"open\n", 2, "not closed"),
            ("OPEN h\nQUIT\nCD x\n", 3, "needs an OPEN"),
        ];
        for (script, line, why) in cases {
            let e = parse(script.as_bytes(), false).unwrap_err();
            assert_eq!(e.line, *line, "{script:?}: {e}");
            assert!(e.reason.contains(why), "{script:?}: {e}");
        }
    }

    #[test]
    fn clear_passwords_only_when_allowed_and_never_shown() {
        let s = "OPEN h\nUSER a\nPASS hunter2\n";
        let steps = parse(s.as_bytes(), true).unwrap();
        let shown = format!("{:?} {}", steps, steps[2].command.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn limits_and_garbage_are_errors_not_panics() {
        let long = format!("OPEN h\nCD {}\n", "x".repeat(MAX_ARG + 1));
        assert!(parse(long.as_bytes(), false).is_err());
        let huge = "x".repeat(MAX_LINE + 1);
        assert!(parse(huge.as_bytes(), false).is_err());
        assert!(parse(b"OPEN h\n\xff\xfe\n", false).is_err());
        assert!(parse(b"OPEN h\nCD a\x01b\n", false).is_err());
        for bytes in [
            &b"\"\""[..],
            b"ON",
            b"ON ERROR",
            b"TYPE",
            b"PASS",
            b"OPEN",
            b"AUTH",
        ] {
            let _ = parse(bytes, true);
        }
    }
}
