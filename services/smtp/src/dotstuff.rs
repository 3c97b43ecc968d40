//! The DATA payload (RFC 5321 §4.5.2): CR LF line ends, a second dot before every line
//! that starts with one, and the `.` line that ends the message.

/// `message` ready to write after the server's 354: lone CR or LF become CR LF, leading
/// dots are doubled, a final line end is added if missing, then `.` CR LF.
pub fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut at_line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                if b == b'\r' && message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Undoes [`stuff`] (for tests and for checking what a server received): the payload
/// without the final `.` line and with leading dots halved.
pub fn unstuff(data: &[u8]) -> Option<Vec<u8>> {
    let body = data.strip_suffix(b".\r\n")?;
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leading_dots_are_doubled() {
        assert_eq!(stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(stuff(b"a\r\n.b\r\n..c"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(stuff(b""), b".\r\n");
        assert_eq!(stuff(b"x.y\r\n"), b"x.y\r\n.\r\n");
    }

    #[test]
    fn line_ends_are_normalised() {
        assert_eq!(stuff(b"a\nb\r.c\r\n"), b"a\r\nb\r\n..c\r\n.\r\n");
        assert_eq!(stuff(b"\n.\n"), b"\r\n..\r\n.\r\n");
    }

    #[test]
    fn round_trip() {
        let msg = b"From: x\r\n\r\n.\r\n..\r\n.a\r\nend\r\n";
        let s = stuff(msg);
        assert!(!s[..s.len() - 3].windows(5).any(|w| w == b"\r\n.\r\n"));
        assert_eq!(unstuff(&s).unwrap(), msg);
    }
}
