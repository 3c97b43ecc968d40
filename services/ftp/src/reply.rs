//! Replies: a three-digit code and one or more lines of text (RFC 959 section 4.2). Text
//! never carries a line break of its own (a file name with CR or LF in it cannot forge a
//! second reply), and the middle lines of a multi-line reply start with a space so none
//! can be taken for the last.

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code (100..=599).
    pub code: u16,
    /// At least one line.
    pub lines: Vec<String>,
}

fn clean(line: &str) -> String {
    line.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `first`, the `middle` lines, then `last`.
    pub fn multi(
        code: u16,
        first: impl Into<String>,
        middle: Vec<String>,
        last: impl Into<String>,
    ) -> Reply {
        let mut lines = vec![first.into()];
        lines.extend(middle);
        lines.push(last.into());
        Reply { code, lines }
    }

    /// The bytes on the wire, CR LF terminated.
    pub fn to_bytes(&self) -> Vec<u8> {
        let code = self.code.clamp(100, 599);
        let mut out = String::new();
        let n = self.lines.len();
        if n <= 1 {
            let text = self.lines.first().map_or(String::new(), |l| clean(l));
            out.push_str(&format!("{code} {text}\r\n"));
            return out.into_bytes();
        }
        for (i, line) in self.lines.iter().enumerate() {
            let text = clean(line);
            if i == 0 {
                out.push_str(&format!("{code}-{text}\r\n"));
            } else if i + 1 == n {
                out.push_str(&format!("{code} {text}\r\n"));
            } else {
                out.push_str(&format!(" {text}\r\n"));
            }
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_and_multi_line() {
        assert_eq!(
            Reply::new(200, "Command okay.").to_bytes(),
            b"200 Command okay.\r\n"
        );
        let feat = Reply::multi(211, "Features:", vec!["EPSV".into(), "211 x".into()], "End");
        assert_eq!(
            feat.to_bytes(),
            b"211-Features:\r\n EPSV\r\n 211 x\r\n211 End\r\n"
        );
    }

    #[test]
    fn text_cannot_forge_a_line() {
        let r = Reply::new(550, "no such file: a\r\n230 logged in");
        assert_eq!(r.to_bytes(), b"550 no such file: a  230 logged in\r\n");
        assert_eq!(Reply::new(7, "x").to_bytes(), b"100 x\r\n");
    }
}
