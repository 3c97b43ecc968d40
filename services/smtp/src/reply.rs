//! Server replies (RFC 5321 §4.2): a three-digit code and one or more lines of text, parsed
//! sans-IO from whatever bytes the connection delivered, under explicit limits.

use std::fmt;

use crate::limits::{MAX_REPLY_LINE, MAX_REPLY_LINES};

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code, 200..=599.
    pub code: u16,
    /// The text of each line, without the code; control characters are replaced by `?` so a
    /// server's text cannot disturb a terminal or a log.
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply (for tests and for scripted dialogues).
    pub fn new(code: u16, lines: &[&str]) -> Reply {
        Reply {
            code,
            lines: lines.iter().map(|l| clean(l.as_bytes())).collect(),
        }
    }

    /// 2yz: the command succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3yz: the server waits for more (DATA, AUTH challenges).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4yz: a transient failure; trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The lines joined by ` / `, for messages.
    pub fn text(&self) -> String {
        self.lines.join(" / ")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

/// Why the bytes from the server are not a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line longer than [`MAX_REPLY_LINE`].
    #[error("a reply line is longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    /// A reply with more than [`MAX_REPLY_LINES`] lines.
    #[error("a reply has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    /// A line that does not start with a reply code from 200 to 599 followed by a space, a
    /// hyphen or the end of the line.
    #[error("not a reply line: {0:?}")]
    BadLine(String),
    /// The lines of one reply carry different codes.
    #[error("reply lines with different codes ({first} then {then})")]
    MixedCodes {
        /// The code of the first line.
        first: u16,
        /// The code that differs.
        then: u16,
    },
}

fn clean(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Collects reply lines from a byte stream.
#[derive(Debug, Default)]
pub struct ReplyParser {
    line: Vec<u8>,
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Whether part of a reply has been seen.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && self.code.is_none()
    }

    /// Takes bytes from `data` up to the end of the next complete reply; returns how many
    /// were taken and the reply once complete. Bytes after the reply stay with the caller
    /// (a server must not send anything after its answer to STARTTLS).
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        let mut used = 0;
        while used < data.len() {
            let rest = &data[used..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(rest);
                used = data.len();
                if self.line.len() > MAX_REPLY_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                break;
            };
            self.line.extend_from_slice(&rest[..nl]);
            used += nl + 1;
            if self.line.len() + 1 > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(reply) = self.line_done(&line)? {
                return Ok((used, Some(reply)));
            }
        }
        Ok((used, None))
    }

    fn line_done(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let bad = || ReplyError::BadLine(clean(&line[..line.len().min(80)]));
        let digits = line.get(..3).ok_or_else(bad)?;
        if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
            return Err(bad());
        }
        let code = digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let (last, text) = match line.get(3) {
            None => (true, &line[3..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(bad()),
        };
        match self.code {
            Some(first) if first != code => {
                return Err(ReplyError::MixedCodes { first, then: code })
            }
            _ => self.code = Some(code),
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.lines.push(clean(text));
        if !last {
            return Ok(None);
        }
        self.code = None;
        Ok(Some(Reply {
            code,
            lines: std::mem::take(&mut self.lines),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_all(data: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::new();
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let (n, r) = p.feed(&data[at..])?;
            at += n;
            out.extend(r);
        }
        Ok(out)
    }

    #[test]
    fn single_and_multi_line() {
        let r = parse_all(
            b"220 mail.example ESMTP\r\n250-mail.example\r\n250-SIZE 1000\r\n250 STARTTLS\r\n",
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], Reply::new(220, &["mail.example ESMTP"]));
        assert_eq!(r[1].code, 250);
        assert_eq!(r[1].lines, vec!["mail.example", "SIZE 1000", "STARTTLS"]);
        assert!(r[1].is_positive());
    }

    #[test]
    fn byte_by_byte_and_bare_lf_and_bare_code() {
        let data = b"250-a\n250-b\r\n250\r\n";
        let mut p = ReplyParser::new();
        let mut got = None;
        for (i, b) in data.iter().enumerate() {
            let (n, r) = p.feed(std::slice::from_ref(b)).unwrap();
            assert_eq!(n, 1);
            if let Some(r) = r {
                assert_eq!(i, data.len() - 1);
                got = Some(r);
            }
        }
        assert_eq!(got.unwrap().lines, vec!["a", "b", ""]);
        assert!(p.is_idle());
    }

    #[test]
    fn stops_after_a_reply() {
        let mut p = ReplyParser::new();
        let (n, r) = p.feed(b"220 go ahead\r\nextra").unwrap();
        assert_eq!(n, 14);
        assert_eq!(r.unwrap().code, 220);
    }

    #[test]
    fn bad_codes_and_garbage() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"099 x\r\n",
            b"600 x\r\n",
            b"150 x\r\n",
            b"2x0 x\r\n",
            b"250x\r\n",
            b"\xff\xfe\r\n",
            b"\r\n",
        ] {
            assert!(
                matches!(parse_all(bad), Err(ReplyError::BadLine(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_all(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes {
                first: 250,
                then: 251
            })
        );
    }

    #[test]
    fn overlong_lines_and_too_many_lines() {
        let long = vec![b'2'; MAX_REPLY_LINE + 10];
        assert_eq!(parse_all(&long), Err(ReplyError::LineTooLong));
        let mut line = b"250 ".to_vec();
        line.extend(vec![b'x'; MAX_REPLY_LINE]);
        line.extend(b"\r\n");
        assert_eq!(parse_all(&line), Err(ReplyError::LineTooLong));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(parse_all(many.as_bytes()), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn control_characters_are_neutralised() {
        let r = parse_all(b"550 no\x1b[31m way\x00\r\n").unwrap();
        assert_eq!(r[0].text(), "no?[31m way?");
        assert_eq!(r[0].to_string(), "550 no?[31m way?");
        let r = parse_all(b"550 caf\xc3\xa9 \xff\r\n").unwrap();
        assert_eq!(r[0].text(), "café \u{fffd}");
    }
}
