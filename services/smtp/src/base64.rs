//! Base64 (RFC 4648) for AUTH tokens and MIME bodies, with MIME's 76-character lines.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The length of a MIME line of base64 text (RFC 2045 §6.8).
pub const MIME_LINE: usize = 76;

/// Encodes `data` as one line.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Encodes `data` in lines of [`MIME_LINE`] characters, each ended by CR LF, onto `out`.
pub fn encode_mime(data: &[u8], out: &mut Vec<u8>) {
    // 57 input bytes make one 76-character line.
    for chunk in data.chunks(MIME_LINE / 4 * 3) {
        out.extend_from_slice(encode(chunk).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes base64 text, ignoring line breaks and other whitespace; `None` if it is not
/// base64.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut pad = 0;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (pad <= 2 && bits < 6).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc.as_bytes()).unwrap(), plain.as_bytes());
        }
        assert!(decode(b"Zm9v!").is_none());
        assert!(decode(b"Zg==Zg").is_none());
    }

    #[test]
    fn mime_lines_round_trip() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut out = Vec::new();
        encode_mime(&data, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        for line in text.split_terminator("\r\n") {
            assert!(line.len() <= MIME_LINE);
        }
        assert_eq!(text.split_terminator("\r\n").next().unwrap().len(), 76);
        assert_eq!(decode(&out).unwrap(), data);
    }
}
