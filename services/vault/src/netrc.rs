//! The .netrc reader behind `Vault::import_netrc`: which entries a netrc file holds, with
//! line numbers for anything malformed.
//!
//! What is accepted:
//!
//! * Tokens are separated by any whitespace, newlines included, so an entry may span
//!   lines or share one with others.
//! * Keywords: `machine NAME`, `default`, `login NAME`, `password SECRET`,
//!   `account VALUE` (ignored), `macdef NAME` (the rest of that line and the following
//!   lines up to the first blank line are skipped as the macro body).
//! * Where a keyword is expected, a token starting with `#` starts a comment running to
//!   the end of the line. Where a value is expected, `#` is an ordinary character.
//! * A value may be double-quoted (as curl accepts) to hold spaces: `"a b"`; inside
//!   quotes `\"` is a quote, `\\` a backslash, and a backslash before any other character
//!   stands for that character. A quoted value must end on its line.
//!
//! What is imported: each `machine M` with a `password` becomes entry `M:L` when it has
//! `login L`, or `M` when it has no login. A `machine` without a password and the
//! `default` entry (which names no host) are skipped. When the same entry name appears
//! twice, the first one wins, as it does for netrc lookups.
//!
//! Errors name the line and what was wrong, never the text of a token (it might be a
//! password that lost its keyword).

use zeroize::Zeroizing;

use crate::name::{name_problem, MAX_SECRET_LEN};

/// One entry to import.
pub(crate) struct NetrcEntry {
    /// Vault entry name, `machine:login` or `machine`.
    pub(crate) name: String,
    /// Its password.
    pub(crate) password: Zeroizing<String>,
}

impl std::fmt::Debug for NetrcEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetrcEntry")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What is wrong with a netrc file, and where.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NetrcError {
    /// Line number, from 1.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) reason: String,
}

fn error<T>(line: usize, reason: impl Into<String>) -> Result<T, NetrcError> {
    Err(NetrcError {
        line,
        reason: reason.into(),
    })
}

/// Splits netrc text into tokens, keeping track of line numbers.
struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.bump();
        }
    }

    /// Skips to just after the next newline (or to the end).
    fn skip_line(&mut self) {
        while let Some(b) = self.bump() {
            if b == b'\n' {
                break;
            }
        }
    }

    /// A run of non-space bytes.
    fn bare(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_space(b)) {
            self.bump();
        }
        &self.bytes[start..self.pos]
    }

    /// The next keyword and its line, skipping comments; `None` at the end.
    fn keyword(&mut self) -> Option<(&'a [u8], usize)> {
        loop {
            self.skip_space();
            match self.peek()? {
                b'#' => self.skip_line(),
                _ => {
                    let line = self.line;
                    return Some((self.bare(), line));
                }
            }
        }
    }

    /// The value after the keyword `keyword` (which stood on `line`).
    fn value(&mut self, keyword: &str, line: usize) -> Result<Zeroizing<String>, NetrcError> {
        self.skip_space();
        let Some(first) = self.peek() else {
            return error(
                line,
                format!("`{keyword}` is missing its value at the end of the file"),
            );
        };
        let start_line = self.line;
        let mut out = Zeroizing::new(Vec::new());
        if first == b'"' {
            self.bump();
            loop {
                match self.bump() {
                    None | Some(b'\n') => {
                        return error(start_line, format!("the quoted value after `{keyword}` has no closing quote on its line"));
                    }
                    Some(b'"') => break,
                    Some(b'\\') => match self.bump() {
                        None | Some(b'\n') => {
                            return error(start_line, format!("the quoted value after `{keyword}` has no closing quote on its line"));
                        }
                        Some(b) => out.push(b),
                    },
                    Some(b) => out.push(b),
                }
            }
            if self.peek().is_some_and(|b| !is_space(b)) {
                return error(start_line, format!("the quoted value after `{keyword}` runs into other text after its closing quote"));
            }
        } else {
            out.extend_from_slice(self.bare());
        }
        match String::from_utf8(std::mem::take(&mut *out)) {
            Ok(text) => Ok(Zeroizing::new(text)),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                error(
                    start_line,
                    format!("the value after `{keyword}` is not valid UTF-8"),
                )
            }
        }
    }

    /// Skips a macro body: the rest of the current line, then lines up to and including
    /// the first blank one.
    fn skip_macro_body(&mut self) {
        self.skip_line();
        while self.peek().is_some() {
            let start = self.pos;
            self.skip_line();
            if self.bytes[start..self.pos].iter().all(|&b| is_space(b)) {
                break;
            }
        }
    }
}

/// The entry being read.
struct Pending {
    /// The host, or `None` for `default`.
    machine: Option<Zeroizing<String>>,
    /// Line of its `machine` or `default` keyword.
    line: usize,
    login: Option<Zeroizing<String>>,
    password: Option<(Zeroizing<String>, usize)>,
    account: bool,
}

/// Reads every importable entry of a netrc file.
pub(crate) fn parse(text: &str) -> Result<Vec<NetrcEntry>, NetrcError> {
    let mut lexer = Lexer::new(text);
    let mut entries: Vec<NetrcEntry> = Vec::new();
    let mut pending: Option<Pending> = None;
    while let Some((word, line)) = lexer.keyword() {
        match word {
            b"machine" | b"default" => {
                if let Some(done) = pending.take() {
                    finish(done, &mut entries)?;
                }
                let machine = if word == b"machine" {
                    Some(lexer.value("machine", line)?)
                } else {
                    None
                };
                pending = Some(Pending {
                    machine,
                    line,
                    login: None,
                    password: None,
                    account: false,
                });
            }
            b"login" | b"password" | b"account" => {
                let keyword = match word {
                    b"login" => "login",
                    b"password" => "password",
                    _ => "account",
                };
                let value = lexer.value(keyword, line)?;
                let Some(entry) = pending.as_mut() else {
                    return error(
                        line,
                        format!("`{keyword}` comes before any `machine` or `default`"),
                    );
                };
                let twice = match keyword {
                    "login" => entry.login.replace(value).is_some(),
                    "password" => entry.password.replace((value, line)).is_some(),
                    _ => std::mem::replace(&mut entry.account, true),
                };
                if twice {
                    return error(line, format!("`{keyword}` appears twice in one entry"));
                }
            }
            b"macdef" => {
                lexer.value("macdef", line)?;
                lexer.skip_macro_body();
            }
            _ => {
                return error(
                    line,
                    "unexpected word where a keyword (machine, default, login, password, account, macdef) belongs",
                );
            }
        }
    }
    if let Some(done) = pending.take() {
        finish(done, &mut entries)?;
    }
    Ok(entries)
}

/// Turns a finished entry into an importable one, if it is one.
fn finish(entry: Pending, entries: &mut Vec<NetrcEntry>) -> Result<(), NetrcError> {
    let (Some(machine), Some((password, password_line))) = (entry.machine, entry.password) else {
        return Ok(());
    };
    let name = match &entry.login {
        Some(login) => format!("{}:{}", machine.as_str(), login.as_str()),
        None => machine.as_str().to_owned(),
    };
    if let Some(reason) = name_problem(&name) {
        return error(
            entry.line,
            format!("this machine and login do not make a valid entry name: {reason}"),
        );
    }
    if password.len() > MAX_SECRET_LEN {
        return error(
            password_line,
            format!("the password is longer than {MAX_SECRET_LEN} bytes"),
        );
    }
    if entries.iter().all(|e| e.name != name) {
        entries.push(NetrcEntry { name, password });
    }
    Ok(())
}

/// The line (from 1) holding byte `offset` of `bytes`.
pub(crate) fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.password.as_str().to_owned()))
            .collect()
    }

    fn p(name: &str, password: &str) -> (String, String) {
        (name.to_owned(), password.to_owned())
    }

    #[test]
    fn one_line_and_spread_entries() {
        let text = "machine ftp.example login alice password s3cret\n\
                    machine\n  mail.example\n login\n bob\n\n password\ttop-secret account acct\n";
        assert_eq!(
            pairs(text),
            vec![
                p("ftp.example:alice", "s3cret"),
                p("mail.example:bob", "top-secret")
            ]
        );
    }

    #[test]
    fn no_login_no_password_and_default() {
        let text = "machine a.example password pa\nmachine b.example login x\n\
                    default login anonymous password guest\n";
        assert_eq!(pairs(text), vec![p("a.example", "pa")]);
    }

    #[test]
    fn macdef_body_is_skipped() {
        let text =
            "machine a login u password p\nmacdef init\ncd /pub\nmachine evil password x\n\n\
                    machine b login v password q\n";
        assert_eq!(pairs(text), vec![p("a:u", "p"), p("b:v", "q")]);
        // A macro running to the end of the file is fine too.
        assert_eq!(
            pairs("machine a password p\nmacdef m\nls\n"),
            vec![p("a", "p")]
        );
    }

    #[test]
    fn comments_and_hash_values() {
        let text = "# my hosts\nmachine a login u password #not-a-comment # trailing\n  # more\n";
        assert_eq!(pairs(text), vec![p("a:u", "#not-a-comment")]);
    }

    #[test]
    fn quoted_values() {
        let text = "machine a login u password \"with space \\\"q\\\" \\\\ end\"\n";
        assert_eq!(pairs(text), vec![p("a:u", "with space \"q\" \\ end")]);
        let err = parse("machine a\nlogin u password \"open\nmachine b").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse("machine a password \"x\"y").unwrap_err();
        assert_eq!(err.line, 1);
    }

    #[test]
    fn first_duplicate_wins() {
        let text = "machine a login u password one\nmachine a login u password two\n";
        assert_eq!(pairs(text), vec![p("a:u", "one")]);
    }

    #[test]
    fn errors_carry_line_numbers_and_no_tokens() {
        let cases: &[(&str, usize)] = &[
            ("login u password p\n", 1),
            ("\n\nmachine a password secret words here\n", 3),
            ("machine a\nlogin u\nlogin v\n", 3),
            ("machine a password p\n\nmachine", 3),
            ("machine a\n\npassword", 3),
            (
                "machine a login has:colon?ok password p\nmachine b\u{e9} password p\n",
                2,
            ),
        ];
        for (text, line) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, *line, "{text:?}: {err:?}");
            assert!(
                !err.reason.contains("secret") && !err.reason.contains("words"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn empty_and_whitespace_files() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" \n\t\n# only a comment").unwrap().is_empty());
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of(b"a\nb\nc", 0), 1);
        assert_eq!(line_of(b"a\nb\nc", 2), 2);
        assert_eq!(line_of(b"a\nb\nc", 99), 3);
    }
}
