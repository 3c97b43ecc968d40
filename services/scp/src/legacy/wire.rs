//! The control messages of the legacy scp (rcp) protocol, as OpenSSH's scp.c speaks them:
//! a reply byte (0 ok; 1 warning or 2 fatal, each followed by a message line) and the
//! lines a source sends (`C` file, `T` times, `D`/`E` directories). Sans-IO: parses from
//! and encodes into byte buffers; the file data between control messages is not here.

/// The longest control line accepted, newline included (scp.c uses 2 KiB buffers).
pub const MAX_LINE: usize = 4096;

/// Why bytes are not an acceptable control message, or a header cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// No newline within [`MAX_LINE`] bytes.
    #[error("scp control line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A `C` line that does not read `C<4 octal digits> <size> <name>`.
    #[error("bad scp file line: {0}")]
    BadFile(&'static str),
    /// A file name that the other side would refuse or misread.
    #[error("bad file name for scp: {0}")]
    BadName(&'static str),
    /// A `T` line that does not read `T<mtime> <usec> <atime> <usec>`.
    #[error("bad scp time line")]
    BadTime,
}

/// One control message, borrowing from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A single 0 byte: success.
    Ok,
    /// 1 and a line: a non-fatal error; the message without its newline.
    Warning(&'a [u8]),
    /// 2 and a line: a fatal error; the message without its newline.
    Fatal(&'a [u8]),
    /// A `C` line: a file follows.
    File(FileHeader<'a>),
    /// A `T` line (the source runs with `-p`): modification and access times in seconds.
    Time { mtime: u64, atime: u64 },
    /// A `D` line: a directory follows; the line after the `D`.
    Directory(&'a [u8]),
    /// An `E` line: the end of a directory.
    EndDirectory,
    /// Any other line, such as text a login script printed; the whole line without its
    /// newline.
    Other(&'a [u8]),
}

/// Parses the message at the front of `buf`: `Ok(None)` until a whole message is there,
/// then the message and how many bytes it took.
pub fn parse_message(buf: &[u8]) -> Result<Option<(Message<'_>, usize)>, WireError> {
    let Some((&lead, rest)) = buf.split_first() else {
        return Ok(None);
    };
    if lead == 0 {
        return Ok(Some((Message::Ok, 1)));
    }
    let window = rest.get(..MAX_LINE - 1).unwrap_or(rest);
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        return if window.len() >= MAX_LINE - 1 {
            Err(WireError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    let (text, _) = rest.split_at(nl);
    let used = nl + 2;
    let msg = match lead {
        1 => Message::Warning(text),
        2 => Message::Fatal(text),
        b'C' => Message::File(FileHeader::parse(text)?),
        b'T' => parse_time(text)?,
        b'D' => Message::Directory(text),
        b'E' => Message::EndDirectory,
        _ => Message::Other(buf.get(..nl + 1).unwrap_or(buf)),
    };
    Ok(Some((msg, used)))
}

/// `<mtime> <usec> <atime> <usec>`, each a decimal number.
fn parse_time(text: &[u8]) -> Result<Message<'static>, WireError> {
    let mut fields = text.split(|&b| b == b' ');
    let mut next = || fields.next().and_then(decimal).ok_or(WireError::BadTime);
    let mtime = next()?;
    let _ = next()?;
    let atime = next()?;
    let _ = next()?;
    if fields.next().is_some() {
        return Err(WireError::BadTime);
    }
    Ok(Message::Time { mtime, atime })
}

/// A decimal number of 1 to 19 digits, so it fits an `i64` as scp.c's `off_t` needs.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    (n <= i64::MAX as u64).then_some(n)
}

/// The header of one file: `C<mode> <size> <name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader<'a> {
    /// Permission bits, at most `0o7777`.
    pub mode: u32,
    /// Bytes of data that follow.
    pub size: u64,
    /// The file name: not empty, no `/`, NUL or newline, not `.` or `..`.
    pub name: &'a [u8],
}

impl<'a> FileHeader<'a> {
    /// Parses the text of a `C` line after the `C`, without its newline.
    pub fn parse(text: &'a [u8]) -> Result<Self, WireError> {
        let (mode, rest) = text
            .split_first_chunk::<4>()
            .ok_or(WireError::BadFile("mode is not 4 octal digits"))?;
        if !mode.iter().all(|d| (b'0'..=b'7').contains(d)) {
            return Err(WireError::BadFile("mode is not 4 octal digits"));
        }
        let mode = mode
            .iter()
            .fold(0u32, |m, &d| (m << 3) | u32::from(d - b'0'));
        let rest = rest
            .strip_prefix(b" ")
            .ok_or(WireError::BadFile("mode not followed by a space"))?;
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(WireError::BadFile("size not followed by a space"))?;
        let (size, name) = rest.split_at(space);
        let size = decimal(size).ok_or(WireError::BadFile("size is not a decimal number"))?;
        let name = name.get(1..).unwrap_or_default();
        check_name(name)?;
        Ok(FileHeader { mode, size, name })
    }

    /// Appends the `C` line, newline included, after checking the name.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        check_name(self.name)?;
        if self.size > i64::MAX as u64 {
            return Err(WireError::BadFile("size over 2^63 - 1"));
        }
        out.extend_from_slice(format!("C{:04o} {} ", self.mode & 0o7777, self.size).as_bytes());
        out.extend_from_slice(self.name);
        out.push(b'\n');
        Ok(())
    }
}

/// The names scp.c's sink refuses, and those that would break the line.
fn check_name(name: &[u8]) -> Result<(), WireError> {
    if name.is_empty() {
        Err(WireError::BadName("empty"))
    } else if name.contains(&b'/') {
        Err(WireError::BadName("contains '/'"))
    } else if name.contains(&b'\n') || name.contains(&0) {
        Err(WireError::BadName("contains a newline or NUL"))
    } else if name == b"." || name == b".." {
        Err(WireError::BadName("is '.' or '..'"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> Message<'_> {
        let (m, used) = parse_message(buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        m
    }

    #[test]
    fn replies() {
        assert_eq!(parse_message(b"").unwrap(), None);
        assert_eq!(parse_message(b"\0rest").unwrap(), Some((Message::Ok, 1)));
        assert_eq!(
            one(b"\x01scp: /x/y: No such file or directory\n"),
            Message::Warning(b"scp: /x/y: No such file or directory")
        );
        assert_eq!(one(b"\x02fatal\n"), Message::Fatal(b"fatal"));
        assert_eq!(parse_message(b"\x01no newline yet").unwrap(), None);
        assert_eq!(one(b"E\n"), Message::EndDirectory);
        assert_eq!(one(b"D0755 0 dir\n"), Message::Directory(b"0755 0 dir"));
        assert_eq!(one(b"hello\n"), Message::Other(b"hello"));
    }

    #[test]
    fn long_lines_are_refused() {
        let mut line = vec![1u8];
        line.extend(std::iter::repeat_n(b'x', MAX_LINE));
        assert_eq!(parse_message(&line), Err(WireError::LineTooLong));
        // Exactly at the limit, newline included, is fine.
        let mut ok = vec![1u8];
        ok.extend(std::iter::repeat_n(b'x', MAX_LINE - 2));
        ok.push(b'\n');
        assert!(matches!(one(&ok), Message::Warning(_)));
    }

    #[test]
    fn file_lines() {
        assert_eq!(
            one(b"C0644 12345 report.txt\n"),
            Message::File(FileHeader {
                mode: 0o644,
                size: 12345,
                name: b"report.txt"
            })
        );
        assert_eq!(
            one(b"C0600 0 a b\n"),
            Message::File(FileHeader {
                mode: 0o600,
                size: 0,
                name: b"a b"
            })
        );
        for bad in [
            &b"C644 1 x\n"[..],
            b"C0648 1 x\n",
            b"C0644  1 x\n",
            b"C0644 -1 x\n",
            b"C0644 1\n",
            b"C0644 1 \n",
            b"C0644 1 a/b\n",
            b"C0644 1 ..\n",
            b"C0644 99999999999999999999 x\n",
            b"C0644 9223372036854775808 x\n",
            b"C\n",
        ] {
            assert!(
                parse_message(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_message(b"C0644 9223372036854775807 x\n").is_ok());
    }

    #[test]
    fn time_lines() {
        assert_eq!(
            one(b"T1700000000 0 1700000001 0\n"),
            Message::Time {
                mtime: 1_700_000_000,
                atime: 1_700_000_001
            }
        );
        assert_eq!(parse_message(b"T1 2 3\n"), Err(WireError::BadTime));
        assert_eq!(parse_message(b"T1 2 3 4 5\n"), Err(WireError::BadTime));
        assert_eq!(parse_message(b"Tx 2 3 4\n"), Err(WireError::BadTime));
    }

    #[test]
    fn encode_round_trips_and_checks_names() {
        let mut out = Vec::new();
        let h = FileHeader {
            mode: 0o100644,
            size: 42,
            name: b"f.bin",
        };
        h.encode(&mut out).unwrap();
        assert_eq!(out, b"C0644 42 f.bin\n");
        assert_eq!(one(&out), Message::File(FileHeader { mode: 0o644, ..h }));
        for bad in [&b""[..], b"a/b", b"a\nb", b".", b"..", b"a\0"] {
            let h = FileHeader {
                mode: 0o644,
                size: 1,
                name: bad,
            };
            assert!(matches!(h.encode(&mut out), Err(WireError::BadName(_))));
        }
    }
}
