//! Text to WinAnsiEncoding bytes and PDF string escaping, so the base-14 fonts show the text
//! and text extraction gives it back.

/// WinAnsi codes 0x80..=0x9F and the Unicode characters they show (`None`: unused code).
const HIGH_CODES: [Option<char>; 32] = [
    Some('\u{20AC}'),
    None,
    Some('\u{201A}'),
    Some('\u{0192}'),
    Some('\u{201E}'),
    Some('\u{2026}'),
    Some('\u{2020}'),
    Some('\u{2021}'),
    Some('\u{02C6}'),
    Some('\u{2030}'),
    Some('\u{0160}'),
    Some('\u{2039}'),
    Some('\u{0152}'),
    None,
    Some('\u{017D}'),
    None,
    None,
    Some('\u{2018}'),
    Some('\u{2019}'),
    Some('\u{201C}'),
    Some('\u{201D}'),
    Some('\u{2022}'),
    Some('\u{2013}'),
    Some('\u{2014}'),
    Some('\u{02DC}'),
    Some('\u{2122}'),
    Some('\u{0161}'),
    Some('\u{203A}'),
    Some('\u{0153}'),
    None,
    Some('\u{017E}'),
    Some('\u{0178}'),
];

/// The WinAnsi byte for `c`, or `b'?'` when the base-14 fonts cannot show it.
pub fn encode_char(c: char) -> u8 {
    let u = u32::from(c);
    match u {
        0x20..=0x7E | 0xA0..=0xFF => u as u8,
        _ => HIGH_CODES
            .iter()
            .position(|h| *h == Some(c))
            .map_or(b'?', |i| 0x80 + i as u8),
    }
}

/// Encodes a line of text to WinAnsi bytes.
pub fn encode(text: &str) -> Vec<u8> {
    text.chars().map(encode_char).collect()
}

/// Writes `bytes` as a PDF literal string `( ... )` into `out`, escaping what must be escaped.
pub fn write_literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0x20..=0x7E => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out.push(b')');
}

/// A PDF text string for document info and bookmark titles: PDFDocEncoding-compatible ASCII as
/// is, anything else as UTF-16BE with a byte order mark.
pub fn text_string(s: &str) -> Vec<u8> {
    if s.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return s.as_bytes().to_vec();
    }
    let mut v = vec![0xFE, 0xFF];
    for unit in s.encode_utf16() {
        v.extend_from_slice(&unit.to_be_bytes());
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_latin1_and_windows_extras() {
        assert_eq!(encode("Aé€—ÿ"), vec![b'A', 0xE9, 0x80, 0x97, 0xFF]);
        assert_eq!(encode("Ω\u{1F600}\u{85}\t"), b"????".to_vec());
    }

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        write_literal(&mut out, b"a(b)c\\d\xE9\n");
        assert_eq!(out, b"(a\\(b\\)c\\\\d\\351\\012)".to_vec());
    }

    #[test]
    fn text_strings() {
        assert_eq!(text_string("Report"), b"Report".to_vec());
        assert_eq!(text_string("é"), vec![0xFE, 0xFF, 0x00, 0xE9]);
    }
}
