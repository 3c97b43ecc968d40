//! Header fields: RFC 2047 encoded words for non-ASCII text, folding at 78 characters,
//! address lists, and RFC 2231 file name parameters.

use crate::address::Mailbox;
use crate::base64;

/// Input bytes per encoded word: 42 bytes make 56 base64 characters, so a word
/// (`=?utf-8?B?` ... `?=`, 68 characters) fits a 78-character line after `Subject: `.
const WORD_BYTES: usize = 42;

/// Preferred line length (RFC 5322 §2.1.1).
const LINE: usize = 78;

/// Whether `s` must be carried in encoded words: non-ASCII, controls, or text that could
/// be taken for an encoded word.
pub fn needs_encoding(s: &str) -> bool {
    !s.is_ascii() || s.chars().any(|c| c.is_ascii_control()) || s.contains("=?")
}

/// `s` as encoded words (UTF-8, base64), split at character boundaries.
pub fn encoded_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if i + c.len_utf8() - start > WORD_BYTES {
            words.push(word(&s[start..end]));
            start = i;
        }
        end = i + c.len_utf8();
    }
    if end > start || words.is_empty() {
        words.push(word(&s[start..end]));
    }
    words
}

fn word(s: &str) -> String {
    // Controls are not allowed even inside encoded words' decoded text of a header.
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("=?utf-8?B?{}?=", base64::encode(clean.as_bytes()))
}

/// Joins `parts` after `name: `, separated by `sep` and folded (CR LF and a space) where a
/// line would pass 78 characters; ends with CR LF.
fn fold(name: &str, parts: &[String], sep: &str) -> String {
    let mut out = format!("{name}:");
    let mut col = out.len();
    for (i, p) in parts.iter().enumerate() {
        let piece = if i + 1 < parts.len() {
            format!("{p}{sep}")
        } else {
            p.clone()
        };
        if i > 0 && col + 1 + piece.len() > LINE {
            out.push_str("\r\n");
            col = 0;
        }
        out.push(' ');
        out.push_str(&piece);
        col += 1 + piece.len();
    }
    out.push_str("\r\n");
    out
}

/// An unstructured field such as `Subject:`.
pub fn unstructured(name: &str, value: &str) -> String {
    if needs_encoding(value) || value.split(' ').any(|w| w.len() > 900) {
        return fold(name, &encoded_words(value), "");
    }
    let words: Vec<String> = value.split(' ').map(str::to_string).collect();
    fold(name, &words, "")
}

/// A display name as a phrase: atoms as they are, other ASCII quoted, the rest encoded.
pub fn phrase(name: &str) -> String {
    if needs_encoding(name) {
        return encoded_words(name).join(" ");
    }
    let atom = |c: char| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atom) {
        return name.to_string();
    }
    let mut q = String::from("\"");
    for c in name.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// An address list field (`From:`, `To:`, `Cc:`).
pub fn address_list(name: &str, boxes: &[Mailbox]) -> String {
    let parts: Vec<String> = boxes
        .iter()
        .map(|m| match &m.name {
            Some(n) => format!("{} <{}>", phrase(n), m.address),
            None => m.address.clone(),
        })
        .collect();
    fold(name, &parts, ",")
}

/// A file name sixstack can put in a header: the last path component, without controls;
/// `attachment` if nothing is left.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "attachment".to_string()
    } else {
        clean.to_string()
    }
}

fn quoted(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// `; name=...` for a Content-Type field: quoted ASCII, or an encoded word (RFC 2047, what
/// most readers take there).
pub fn name_param(file: &str) -> String {
    if needs_encoding(file) {
        format!(";\r\n name=\"{}\"", encoded_words(file).join(" "))
    } else {
        format!(";\r\n name={}", quoted(file))
    }
}

/// `; filename=...` for a Content-Disposition field: quoted ASCII, or RFC 2231 extended
/// (percent-encoded UTF-8, continued in pieces when long).
pub fn filename_param(file: &str) -> String {
    if !needs_encoding(file) && file.len() <= 60 {
        return format!(";\r\n filename={}", quoted(file));
    }
    let mut pieces = Vec::new();
    let mut cur = String::new();
    for b in file.bytes() {
        let enc = if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            char::from(b).to_string()
        } else {
            format!("%{b:02X}")
        };
        if cur.len() + enc.len() > 60 {
            pieces.push(std::mem::take(&mut cur));
        }
        cur.push_str(&enc);
    }
    pieces.push(cur);
    if pieces.len() == 1 {
        return format!(";\r\n filename*=utf-8''{}", pieces[0]);
    }
    let mut out = String::new();
    for (i, p) in pieces.iter().enumerate() {
        let charset = if i == 0 { "utf-8''" } else { "" };
        out.push_str(&format!(";\r\n filename*{i}*={charset}{p}"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// Decodes the encoded words in a header value (sixstack's own: UTF-8, base64).
    pub fn decode_words(v: &str) -> String {
        let mut out = String::new();
        for part in v.split_whitespace() {
            match part
                .strip_prefix("=?utf-8?B?")
                .and_then(|p| p.strip_suffix("?="))
            {
                Some(b) => out.push_str(
                    &String::from_utf8(crate::base64::decode(b.as_bytes()).unwrap()).unwrap(),
                ),
                None => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(part)
                }
            }
        }
        out
    }

    #[test]
    fn words_are_short_and_round_trip() {
        let s = "Grüße aus Köln — ".repeat(10);
        let words = encoded_words(&s);
        assert!(words.len() > 1);
        for w in &words {
            assert!(w.len() <= 75, "{w}");
        }
        assert_eq!(decode_words(&words.join(" ")), s);
        let h = unstructured("Subject", &s);
        for line in h.split_terminator("\r\n") {
            assert!(line.len() <= 78, "{line}");
        }
        assert!(h.ends_with("\r\n"));
    }

    #[test]
    fn ascii_subject_folds_at_spaces() {
        let s = "word ".repeat(40);
        let h = unstructured("Subject", s.trim());
        assert!(h.lines().count() > 1);
        let unfolded = h.replace("\r\n ", " ");
        assert_eq!(unfolded, format!("Subject: {}\r\n", s.trim()));
        assert_eq!(unstructured("Subject", "hi"), "Subject: hi\r\n");
        assert!(unstructured("Subject", "a\r\nBcc: x").starts_with("Subject: =?utf-8?B?"));
    }

    #[test]
    fn phrases_and_lists() {
        assert_eq!(phrase("Anna Example"), "Anna Example");
        assert_eq!(phrase("Example, Anna"), "\"Example, Anna\"");
        assert_eq!(phrase("a\"b"), "\"a\\\"b\"");
        assert!(phrase("Zoë").starts_with("=?utf-8?B?"));
        let list = address_list(
            "To",
            &[
                Mailbox::parse("Anna <anna@example.org>").unwrap(),
                Mailbox::parse("bob@example.org").unwrap(),
            ],
        );
        assert_eq!(list, "To: Anna <anna@example.org>, bob@example.org\r\n");
    }

    #[test]
    fn file_names() {
        assert_eq!(clean_file_name("/etc/../x/report.pdf"), "report.pdf");
        assert_eq!(clean_file_name("a\\b\r\n.txt"), "b.txt");
        assert_eq!(clean_file_name(".."), "attachment");
        assert_eq!(filename_param("a b.pdf"), ";\r\n filename=\"a b.pdf\"");
        assert_eq!(
            filename_param("€.pdf"),
            ";\r\n filename*=utf-8''%E2%82%AC.pdf"
        );
        let long = filename_param(&"ü".repeat(30));
        assert!(long.contains("filename*0*=utf-8''%C3%BC"));
        assert!(long.contains("filename*1*=%C3%BC"));
        assert!(name_param("ü.pdf").contains("=?utf-8?B?"));
    }
}
