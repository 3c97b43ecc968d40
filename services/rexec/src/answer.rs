//! The server's answer (sans-IO): its first byte, and the message after an error byte.

use crate::Error;

/// The most bytes of a server's error message that are read and kept.
pub const MAX_ERROR_TEXT: usize = 512;

/// What the server's first byte means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 0: the command runs; its standard output follows.
    Accepted,
    /// 1: refused; a message line follows.
    Refused,
}

/// Interprets the first byte; `None` is the end of the stream before any byte.
pub fn first_byte(b: Option<u8>) -> Result<Answer, Error> {
    match b {
        Some(0) => Ok(Answer::Accepted),
        Some(1) => Ok(Answer::Refused),
        Some(byte) => Err(Error::Protocol { byte }),
        None => Err(Error::ClosedWithoutAnswer),
    }
}

/// Collects the message after an error byte, up to its newline or [`MAX_ERROR_TEXT`]
/// bytes.
#[derive(Debug, Default)]
pub struct ErrorText {
    raw: Vec<u8>,
    done: bool,
}

impl ErrorText {
    /// Takes bytes read after the error byte; true once the message is complete.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        for &b in data {
            if self.done || b == b'\n' || self.raw.len() >= MAX_ERROR_TEXT {
                self.done = true;
                break;
            }
            self.raw.push(b);
        }
        self.done
    }

    /// The message, printable: invalid UTF-8 and control characters become `?`, and
    /// surrounding blanks are trimmed. Empty when the server said nothing.
    pub fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.raw);
        let clean: String = text
            .trim_end_matches('\r')
            .chars()
            .map(|c| {
                if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                    '?'
                } else {
                    c
                }
            })
            .collect();
        let clean = clean.trim();
        if clean.is_empty() {
            "(no reason given)".to_string()
        } else {
            clean.to_string()
        }
    }

    /// The error for this message.
    pub fn into_error(self) -> Error {
        Error::Refused {
            message: self.message(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes() {
        assert_eq!(first_byte(Some(0)).unwrap(), Answer::Accepted);
        assert_eq!(first_byte(Some(1)).unwrap(), Answer::Refused);
        assert!(matches!(
            first_byte(Some(b'/')),
            Err(Error::Protocol { byte: b'/' })
        ));
        assert!(matches!(first_byte(None), Err(Error::ClosedWithoutAnswer)));
    }

    #[test]
    fn message_ends_at_newline_in_any_split() {
        let mut t = ErrorText::default();
        assert!(!t.feed(b"password "));
        assert!(t.feed(b"too long\nextra"));
        assert!(t.feed(b"more"));
        assert_eq!(t.message(), "password too long");
    }

    #[test]
    fn message_is_bounded_and_printable() {
        let mut t = ErrorText::default();
        assert!(t.feed(&[b'x'; 2 * MAX_ERROR_TEXT]));
        assert_eq!(t.message().len(), MAX_ERROR_TEXT);
        let mut t = ErrorText::default();
        t.feed(b"bad\x1b[31m \xff end\r");
        assert_eq!(t.message(), "bad?[31m ? end");
        assert_eq!(ErrorText::default().message(), "(no reason given)");
        let e = ErrorText::default().into_error();
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
