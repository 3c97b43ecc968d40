//! The remote exit status (sans-IO). The rexec protocol does not carry it, so sixstack
//! wraps the command (see [`ExitMarker::wrap`]) to print a status line on standard output
//! after it ends, and [`StatusScanner`] takes that line out of the relayed output.

use crate::Error;

/// What every status line starts with, before the run's token.
const PREFIX: &str = "sixstack-rexec-status-";

/// Hex digits in a token (128 random bits).
const TOKEN_HEX: usize = 32;

/// The token of one run: 128 random bits, so that no output can carry a valid status line
/// by chance or by knowing an earlier run's token.
#[derive(Debug, Clone)]
pub struct ExitMarker {
    token: String,
}

impl ExitMarker {
    /// A fresh token from the thread's cryptographic random generator.
    pub fn random() -> Self {
        Self::from_token(rand::random::<u128>())
    }

    /// A marker with a chosen token (for tests).
    pub fn from_token(token: u128) -> Self {
        ExitMarker {
            token: format!("{token:0width$x}", width = TOKEN_HEX),
        }
    }

    /// The command as sent to the server:
    ///
    /// ```text
    /// (
    /// COMMAND
    /// )
    /// printf 'sixstack-rexec-status-%s%s %d\n' TOKEN-FIRST-HALF TOKEN-SECOND-HALF "$?"
    /// ```
    ///
    /// The subshell keeps `exit N` in the command from ending the shell before the status
    /// is printed, and the newlines keep a trailing `# comment` from hiding it. The token is
    /// sent in two halves, so that output quoting the command (a shell trace, `ps`) does
    /// not carry the status line.
    pub fn wrap(&self, command: &str) -> String {
        let (a, b) = self.token.split_at(TOKEN_HEX / 2);
        format!("(\n{command}\n)\nprintf '{PREFIX}%s%s %d\\n' {a} {b} \"$?\"")
    }

    /// A scanner for output of a command wrapped by this marker.
    pub fn scanner(&self) -> StatusScanner {
        let mut needle = Vec::with_capacity(PREFIX.len() + TOKEN_HEX + 1);
        needle.extend_from_slice(PREFIX.as_bytes());
        needle.extend_from_slice(self.token.as_bytes());
        needle.push(b' ');
        StatusScanner {
            needle,
            pending: Vec::new(),
            status: None,
            repeated: false,
        }
    }
}

/// Takes the status line (`sixstack-rexec-status-TOKEN N\n`, N from 0 to 255) out of the
/// standard output stream wherever it appears, also split across reads; everything else is
/// relayed unchanged. It holds back at most one status line's length of output while a
/// possible start of one is incomplete.
#[derive(Debug)]
pub struct StatusScanner {
    needle: Vec<u8>,
    pending: Vec<u8>,
    status: Option<u8>,
    repeated: bool,
}

/// What follows the token.
enum Tail {
    /// A status and how many bytes (digits and newline) it took.
    Status(u8, usize),
    /// Not enough bytes yet.
    Incomplete,
    /// Not a status line.
    No,
}

fn tail(after: &[u8]) -> Tail {
    for (i, &b) in after.iter().enumerate().take(4) {
        if b == b'\n' && i > 0 {
            let digits = std::str::from_utf8(&after[..i]).ok();
            return match digits.and_then(|d| d.parse::<u8>().ok()) {
                Some(n) => Tail::Status(n, i + 1),
                None => Tail::No,
            };
        }
        if !b.is_ascii_digit() || i == 3 {
            return Tail::No;
        }
    }
    Tail::Incomplete
}

impl StatusScanner {
    /// Feeds bytes read from the main connection; appends those ready to relay to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(data);
        let n = self.needle.len();
        let mut start = 0;
        loop {
            let hay = &self.pending[start..];
            let Some(i) = hay.windows(n).position(|w| w == self.needle.as_slice()) else {
                let keep = (1..n.min(hay.len() + 1))
                    .rev()
                    .find(|&k| hay.ends_with(&self.needle[..k]))
                    .unwrap_or(0);
                out.extend_from_slice(&hay[..hay.len() - keep]);
                start += hay.len() - keep;
                break;
            };
            out.extend_from_slice(&hay[..i]);
            match tail(&hay[i + n..]) {
                Tail::Status(code, used) => {
                    if self.status.replace(code).is_some() {
                        self.repeated = true;
                    }
                    start += i + n + used;
                }
                Tail::Incomplete => {
                    start += i;
                    break;
                }
                Tail::No => {
                    out.push(hay[i]);
                    start += i + 1;
                }
            }
        }
        self.pending.drain(..start);
    }

    /// The end of the stream: appends what was held back to `out` and returns the status.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<u8, Error> {
        out.extend_from_slice(&self.pending);
        match (self.status, self.repeated) {
            (Some(_), true) => Err(Error::ExitStatusAmbiguous),
            (Some(code), false) => Ok(code),
            (None, _) => Err(Error::ExitStatusUnknown),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOKEN: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;

    fn line(code: &str) -> String {
        format!("{PREFIX}0123456789abcdeffedcba9876543210 {code}\n")
    }

    /// Feeds `input` in pieces of `step` bytes.
    fn scan(input: &[u8], step: usize) -> (Vec<u8>, Result<u8, Error>) {
        let mut s = ExitMarker::from_token(TOKEN).scanner();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            s.feed(piece, &mut out);
        }
        let r = s.finish(&mut out);
        (out, r)
    }

    fn every_split(input: &[u8]) -> Vec<(Vec<u8>, Result<u8, Error>)> {
        (1..=input.len().max(1)).map(|s| scan(input, s)).collect()
    }

    #[test]
    fn the_wrapper_prints_what_the_scanner_takes() {
        let m = ExitMarker::from_token(TOKEN);
        let w = m.wrap("exit 3 # a comment");
        assert!(w.starts_with("(\nexit 3 # a comment\n)\n"), "{w}");
        assert!(
            w.ends_with("0123456789abcdef fedcba9876543210 \"$?\""),
            "{w}"
        );
        assert!(!w.contains("0123456789abcdeffedcba9876543210"));
        let out = std::process::Command::new("sh").arg("-c").arg(&w).output();
        if let Ok(out) = out {
            let (rest, code) = scan(&out.stdout, 7);
            assert_eq!(code.unwrap(), 3);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn status_is_taken_out_at_any_split() {
        let mut input = b"hello\nno newline at the end".to_vec();
        input.extend_from_slice(line("42").as_bytes());
        for (out, r) in every_split(&input) {
            assert_eq!(out, b"hello\nno newline at the end");
            assert_eq!(r.unwrap(), 42);
        }
        for code in ["0", "7", "255"] {
            let (out, r) = scan(line(code).as_bytes(), 3);
            assert!(out.is_empty());
            assert_eq!(r.unwrap().to_string(), code);
        }
    }

    #[test]
    fn output_after_the_status_is_relayed() {
        let input = format!("a{}late background output\n", line("1"));
        for (out, r) in every_split(input.as_bytes()) {
            assert_eq!(out, b"alate background output\n");
            assert_eq!(r.unwrap(), 1);
        }
    }

    #[test]
    fn missing_status_is_unknown_and_output_kept() {
        for input in [
            &b""[..],
            b"cut short",
            b"sixstack-rexec-status-0123",
            b"sixstack-rexec-status-0123456789abcdeffedcba9876543210 1",
        ] {
            for (out, r) in every_split(input) {
                assert_eq!(out, input);
                assert!(matches!(r, Err(Error::ExitStatusUnknown)), "{r:?}");
            }
        }
    }

    #[test]
    fn forged_or_malformed_status_lines_are_plain_output() {
        let forged = format!(
            "{PREFIX}00000000000000000000000000000000 0\n\
             {PREFIX}0123456789abcdeffedcba9876543210 256\n\
             {PREFIX}0123456789abcdeffedcba9876543210 x\n\
             {PREFIX}0123456789abcdeffedcba9876543210 \n\
             {PREFIX}0123456789abcdeffedcba9876543210 1234\n"
        );
        let input = format!("{forged}{}", line("9"));
        for (out, r) in every_split(input.as_bytes()) {
            assert_eq!(String::from_utf8(out).unwrap(), forged);
            assert_eq!(r.unwrap(), 9);
        }
    }

    #[test]
    fn a_repeated_status_is_ambiguous() {
        let input = format!("{}{}", line("0"), line("1"));
        let (_, r) = scan(input.as_bytes(), 5);
        assert!(matches!(r, Err(Error::ExitStatusAmbiguous)), "{r:?}");
    }

    #[test]
    fn held_back_output_is_bounded() {
        let mut s = ExitMarker::from_token(TOKEN).scanner();
        let mut out = Vec::new();
        s.feed(
            b"data sixstack-rexec-status-0123456789abcdeffedcba9876543210 25",
            &mut out,
        );
        assert_eq!(out, b"data ");
        assert!(s.pending.len() <= PREFIX.len() + TOKEN_HEX + 4);
        s.feed(b"5\n", &mut out);
        assert_eq!(s.finish(&mut out).unwrap(), 255);
    }
}
