//! Server replies as the batch FTP client reads them (RFC 959 §4.2): a three-digit code,
//! one line or several (`123-` ... `123 `). Bytes in, replies out; no I/O here.

use std::fmt;

/// The longest reply line accepted.
pub const MAX_REPLY_LINE: usize = 8192;
/// The most lines one reply may have (a long MLST or FEAT answer fits).
pub const MAX_REPLY_LINES: usize = 4096;

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code, 100–599.
    pub code: u16,
    /// Its lines, code and separator removed.
    pub lines: Vec<String>,
}

impl Reply {
    /// 1 preliminary, 2 completion, 3 intermediate, 4 transient, 5 permanent.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// Whether it is a completion (2xx).
    pub fn ok(&self) -> bool {
        self.class() == 2
    }

    /// The last line's text (where single-line answers keep their argument).
    pub fn last(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" | "))
    }
}

/// A reply the client cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line is longer than [`MAX_REPLY_LINE`].
    #[error("the server sent a reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    /// A reply has more than [`MAX_REPLY_LINES`] lines.
    #[error("the server sent a reply of more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    /// A line that should start a reply does not start with a code.
    #[error("the server sent a line that is not a reply: {0:?}")]
    NotAReply(String),
}

/// Collects bytes from the control connection and hands out complete replies.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    code: Option<u16>,
    lines: Vec<String>,
}

fn code_of(line: &str) -> Option<(u16, u8)> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = u16::from(b[0] - b'0') * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0');
    if !(100..600).contains(&code) {
        return None;
    }
    Some((code, b.get(3).copied().unwrap_or(b' ')))
}

impl ReplyParser {
    /// Adds bytes read from the connection.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete reply, if the bytes so far hold one.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_REPLY_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            if end > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw);
            let line = text.trim_end_matches(['\r', '\n']);
            match self.code {
                None => {
                    let Some((code, sep)) = code_of(line) else {
                        return Err(ReplyError::NotAReply(line.chars().take(80).collect()));
                    };
                    let rest = line.get(4..).unwrap_or("").to_string();
                    if sep == b'-' {
                        self.code = Some(code);
                        self.lines.push(rest);
                    } else {
                        return Ok(Some(Reply {
                            code,
                            lines: vec![rest],
                        }));
                    }
                }
                Some(code) => {
                    if self.lines.len() >= MAX_REPLY_LINES {
                        return Err(ReplyError::TooManyLines);
                    }
                    match code_of(line) {
                        Some((c, b' ')) if c == code => {
                            self.lines.push(line.get(4..).unwrap_or("").to_string());
                            self.code = None;
                            return Ok(Some(Reply {
                                code,
                                lines: std::mem::take(&mut self.lines),
                            }));
                        }
                        _ => self.lines.push(line.trim_start().to_string()),
                    }
                }
            }
        }
    }
}

/// The data address of a `227` reply (`h1,h2,h3,h4,p1,p2`).
pub fn parse_pasv(text: &str) -> Option<(std::net::Ipv4Addr, u16)> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let nums: Vec<u16> = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|s| s.parse::<u16>().ok().filter(|&v| v <= 255))
        .collect::<Option<Vec<u16>>>()?;
    if nums.len() != 6 {
        return None;
    }
    let ip = std::net::Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
    Some((ip, nums[4] * 256 + nums[5]))
}

/// The port of a `229` reply (`(|||port|)`).
pub fn parse_epsv(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let close = text[open..].find(')')? + open;
    let inner = &text[open + 1..close];
    let d = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(d).collect();
    if parts.len() != 5 {
        return None;
    }
    parts[3].parse::<u16>().ok().filter(|&p| p > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Vec<Reply> {
        let mut p = ReplyParser::default();
        let mut out = Vec::new();
        for b in bytes {
            p.feed(std::slice::from_ref(b));
            while let Some(r) = p.next_reply().unwrap() {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn single_and_multi_line_replies_split_anywhere() {
        let r = all(b"220 ready\r\n211-Features:\r\n MLST size*;modify*;\r\n SIZE\r\n211 End\r\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].code, 220);
        assert_eq!(r[0].last(), "ready");
        assert_eq!(r[1].code, 211);
        assert_eq!(
            r[1].lines,
            ["Features:", "MLST size*;modify*;", "SIZE", "End"]
        );
        // A line inside a multi-line reply may start with another code.
        let r = all(b"250-a\r\n200 not the end\r\n250 end\r\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].lines.len(), 3);
        // A bare code line.
        assert_eq!(all(b"200\r\n")[0].code, 200);
    }

    #[test]
    fn garbage_and_limits_are_errors() {
        let mut p = ReplyParser::default();
        p.feed(b"hello\r\n");
        assert!(matches!(p.next_reply(), Err(ReplyError::NotAReply(_))));
        let mut p = ReplyParser::default();
        p.feed(&vec![b'2'; MAX_REPLY_LINE + 2]);
        assert_eq!(p.next_reply(), Err(ReplyError::LineTooLong));
        let mut p = ReplyParser::default();
        p.feed(b"999 no\r\n");
        assert!(p.next_reply().is_err());
        let mut p = ReplyParser::default();
        p.feed(b"200-x\r\n");
        for _ in 0..MAX_REPLY_LINES + 1 {
            p.feed(b" more\r\n");
        }
        assert_eq!(p.next_reply(), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn data_addresses() {
        assert_eq!(
            parse_pasv("Entering Passive Mode (10,0,0,2,195,80)."),
            Some(("10.0.0.2".parse().unwrap(), 50000))
        );
        assert_eq!(parse_pasv("(10,0,0,2,300,1)"), None);
        assert_eq!(parse_pasv("nothing"), None);
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||50001|)"),
            Some(50001)
        );
        assert_eq!(parse_epsv("(!!!7!)"), Some(7));
        assert_eq!(parse_epsv("(|||0|)"), None);
        assert_eq!(parse_epsv("(|||x|)"), None);
    }
}
