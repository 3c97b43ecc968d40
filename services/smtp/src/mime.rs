//! The message: headers, a text body and attachments as `multipart/mixed`, base64 in
//! 76-character lines, CR LF throughout, no line over 998 characters.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::address::Mailbox;
use crate::{base64, content_type, date, header};

/// A file sent with the message.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name shown to the recipient (a path is reduced to its last component).
    pub name: String,
    /// The content, sent byte for byte.
    pub data: Vec<u8>,
    /// `type/subtype`; by default from the name's extension.
    pub content_type: Option<String>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("bytes", &self.data.len())
            .field("content_type", &self.content_type)
            .finish()
    }
}

impl Attachment {
    /// An attachment whose type comes from its name.
    pub fn new(name: impl Into<String>, data: Vec<u8>) -> Attachment {
        Attachment {
            name: name.into(),
            data,
            content_type: None,
        }
    }

    /// The content type sent.
    pub fn effective_type(&self) -> &str {
        match &self.content_type {
            Some(t) => t,
            None => content_type::for_name(&self.name),
        }
    }
}

/// What the message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The author (`From:`), also the envelope sender.
    pub from: Mailbox,
    /// `To:` recipients.
    pub to: Vec<Mailbox>,
    /// `Cc:` recipients.
    pub cc: Vec<Mailbox>,
    /// Blind copies: envelope recipients that appear in no header.
    pub bcc: Vec<Mailbox>,
    /// The subject (any Unicode).
    pub subject: String,
    /// The text body (UTF-8 text; other bytes are sent as `unknown-8bit`).
    pub body: Vec<u8>,
    /// Files to attach.
    pub attachments: Vec<Attachment>,
}

/// The rendered message and its `Message-ID`.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The message, CR LF line ends (not yet dot-stuffed).
    pub bytes: Vec<u8>,
    /// The `Message-ID` value, with its angle brackets.
    pub message_id: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}.{:x}.{seq:x}", std::process::id())
}

/// Text with every line end made CR LF (bare CR and bare LF included).
pub fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32);
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if text.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The text part's headers and body: 7bit when it is ASCII with short lines, else base64.
fn text_part(body: &[u8], out: &mut Vec<u8>) {
    let text = crlf(body);
    let charset = if text.is_ascii() {
        "us-ascii"
    } else if std::str::from_utf8(&text).is_ok() {
        "utf-8"
    } else {
        "unknown-8bit"
    };
    let seven_bit = text.is_ascii()
        && !text.contains(&0)
        && text.split(|&b| b == b'\n').all(|l| l.len() <= 990);
    out.extend_from_slice(format!("Content-Type: text/plain; charset={charset}\r\n").as_bytes());
    if seven_bit {
        out.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n\r\n");
        out.extend_from_slice(&text);
        if !text.is_empty() && !text.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    } else {
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
        base64::encode_mime(&text, out);
    }
}

fn attachment_part(a: &Attachment, out: &mut Vec<u8>) {
    let name = header::clean_file_name(&a.name);
    out.extend_from_slice(
        format!(
            "Content-Type: {}{}\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment{}\r\n\r\n",
            a.effective_type(),
            header::name_param(&name),
            header::filename_param(&name)
        )
        .as_bytes(),
    );
    base64::encode_mime(&a.data, out);
}

impl Message {
    /// Envelope recipients: To, Cc and Bcc, each address once (compared without case).
    pub fn recipients(&self) -> Vec<(&Mailbox, crate::RecipientKind)> {
        use crate::RecipientKind::*;
        let mut seen = std::collections::HashSet::new();
        self.to
            .iter()
            .map(|m| (m, To))
            .chain(self.cc.iter().map(|m| (m, Cc)))
            .chain(self.bcc.iter().map(|m| (m, Bcc)))
            .filter(|(m, _)| seen.insert(m.address.to_ascii_lowercase()))
            .collect()
    }

    /// Renders the message, dated `unix` seconds, with a new `Message-ID` in the sender's
    /// domain.
    pub fn render(&self, unix: u64) -> Rendered {
        let domain = self
            .from
            .address
            .rsplit_once('@')
            .map_or("sixstack.invalid", |(_, d)| d);
        let message_id = format!("<{}.sixstack@{domain}>", unique());
        let mut out = Vec::new();
        let mut h = |s: String| out.extend_from_slice(s.as_bytes());
        h(format!("Date: {}\r\n", date::rfc5322(unix)));
        h(header::address_list(
            "From",
            std::slice::from_ref(&self.from),
        ));
        if !self.to.is_empty() {
            h(header::address_list("To", &self.to));
        }
        if !self.cc.is_empty() {
            h(header::address_list("Cc", &self.cc));
        }
        if self.to.is_empty() && self.cc.is_empty() {
            h("To: undisclosed-recipients:;\r\n".to_string());
        }
        h(header::unstructured("Subject", &self.subject));
        h(format!("Message-ID: {message_id}\r\n"));
        h("MIME-Version: 1.0\r\n".to_string());
        if self.attachments.is_empty() {
            text_part(&self.body, &mut out);
            return Rendered {
                bytes: out,
                message_id,
            };
        }
        // Base64 never contains `_`, and the text part is checked for the boundary.
        let mut boundary = format!("=_sixstack_{}", unique());
        let body = crlf(&self.body);
        while body
            .windows(boundary.len())
            .any(|w| w == boundary.as_bytes())
        {
            boundary = format!("=_sixstack_{}", unique());
        }
        out.extend_from_slice(
            format!(
                "Content-Type: multipart/mixed;\r\n boundary=\"{boundary}\"\r\n\r\nThis is a MIME message.\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        text_part(&self.body, &mut out);
        for a in &self.attachments {
            out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
            attachment_part(a, &mut out);
        }
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Rendered {
            bytes: out,
            message_id,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::header::tests::decode_words;

    /// A parsed MIME entity (sixstack's own output only): unfolded headers and the body.
    #[derive(Debug)]
    pub struct Part {
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Part {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        /// The body after its transfer encoding is undone.
        pub fn decoded(&self) -> Vec<u8> {
            match self.header("Content-Transfer-Encoding") {
                Some("base64") => crate::base64::decode(&self.body).unwrap(),
                _ => self.body.clone(),
            }
        }

        /// Sub-parts of a multipart entity.
        pub fn parts(&self) -> Vec<Part> {
            let ct = self.header("Content-Type").unwrap();
            let b = ct
                .split("boundary=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let delim = format!("\r\n--{b}");
            let body = [b"\r\n".as_slice(), &self.body].concat();
            let text = body.as_slice();
            let mut pieces = Vec::new();
            let mut rest = text;
            while let Some(at) = find(rest, delim.as_bytes()) {
                pieces.push(&rest[..at]);
                rest = &rest[at + delim.len()..];
                if rest.starts_with(b"--") {
                    break;
                }
                rest = &rest[2..];
            }
            pieces.into_iter().skip(1).map(parse).collect()
        }
    }

    fn find(h: &[u8], n: &[u8]) -> Option<usize> {
        h.windows(n.len()).position(|w| w == n)
    }

    pub fn parse(msg: &[u8]) -> Part {
        let split = find(msg, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&msg[..split]).unwrap();
        for line in head.split("\r\n") {
            assert!(line.len() <= 998);
        }
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        let headers = unfolded
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        Part {
            headers,
            body: msg[split + 4..].to_vec(),
        }
    }

    fn sample() -> Message {
        Message {
            from: Mailbox::parse("Zoë Sender <zoe@example.org>").unwrap(),
            to: vec![
                Mailbox::parse("anna@example.org").unwrap(),
                Mailbox::parse("Bob <bob@example.org>").unwrap(),
            ],
            cc: vec![Mailbox::parse("carl@example.org").unwrap()],
            bcc: vec![
                Mailbox::parse("dora@example.org").unwrap(),
                Mailbox::parse("ANNA@example.org").unwrap(),
            ],
            subject: "Bericht für März ✓".to_string(),
            body: b"Hello,\nline two\n.leading dot\n".to_vec(),
            attachments: vec![],
        }
    }

    #[test]
    fn plain_text_message() {
        let r = sample().render(0);
        let p = parse(&r.bytes);
        assert_eq!(p.header("Date"), Some("Thu, 01 Jan 1970 00:00:00 +0000"));
        assert_eq!(
            decode_words(p.header("Subject").unwrap()),
            "Bericht für März ✓"
        );
        assert_eq!(
            decode_words(p.header("From").unwrap()),
            "Zoë Sender <zoe@example.org>"
        );
        assert_eq!(
            p.header("To"),
            Some("anna@example.org, Bob <bob@example.org>")
        );
        assert_eq!(p.header("Cc"), Some("carl@example.org"));
        assert!(p.header("Bcc").is_none());
        assert!(!String::from_utf8_lossy(&r.bytes).contains("dora"));
        assert_eq!(p.header("Message-ID"), Some(r.message_id.as_str()));
        assert!(r.message_id.ends_with("@example.org>"));
        assert_eq!(
            p.header("Content-Type"),
            Some("text/plain; charset=us-ascii")
        );
        assert_eq!(p.body, b"Hello,\r\nline two\r\n.leading dot\r\n");
        let rcpts: Vec<_> = sample()
            .recipients()
            .iter()
            .map(|(m, _)| m.address.clone())
            .collect();
        assert_eq!(
            rcpts,
            [
                "anna@example.org",
                "bob@example.org",
                "carl@example.org",
                "dora@example.org"
            ]
        );
    }

    #[test]
    fn utf8_body_is_base64() {
        let mut m = sample();
        m.body = "Grüße\n".into();
        let p = parse(&m.render(0).bytes);
        assert_eq!(p.header("Content-Type"), Some("text/plain; charset=utf-8"));
        assert_eq!(p.decoded(), "Grüße\r\n".as_bytes());
    }

    #[test]
    fn attachments_decode_byte_exact() {
        let mut m = sample();
        let binary: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
        let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n".to_vec();
        m.attachments = vec![
            Attachment::new("data.bin", binary.clone()),
            Attachment::new("Bericht März.pdf", pdf.clone()),
            Attachment {
                name: "notes".into(),
                data: b".\r\n".to_vec(),
                content_type: Some("text/x-notes".into()),
            },
            Attachment::new("empty.txt", Vec::new()),
        ];
        let r = m.render(0);
        for line in r.bytes.split(|&b| b == b'\n') {
            assert!(line.len() <= 998);
        }
        let top = parse(&r.bytes);
        assert!(top
            .header("Content-Type")
            .unwrap()
            .starts_with("multipart/mixed;"));
        let parts = top.parts();
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].body, b"Hello,\r\nline two\r\n.leading dot\r\n");
        assert_eq!(parts[1].decoded(), binary);
        assert_eq!(
            parts[1].header("Content-Type"),
            Some("application/octet-stream; name=\"data.bin\"")
        );
        assert_eq!(
            parts[1].header("Content-Disposition"),
            Some("attachment; filename=\"data.bin\"")
        );
        assert_eq!(parts[2].decoded(), pdf);
        assert!(parts[2]
            .header("Content-Type")
            .unwrap()
            .starts_with("application/pdf; name=\"=?utf-8?B?"));
        assert_eq!(
            parts[2].header("Content-Disposition"),
            Some("attachment; filename*=utf-8''Bericht%20M%C3%A4rz.pdf")
        );
        assert_eq!(parts[3].decoded(), b".\r\n");
        assert!(parts[3]
            .header("Content-Type")
            .unwrap()
            .starts_with("text/x-notes;"));
        assert_eq!(parts[4].decoded(), b"");
        for line in String::from_utf8(parts[1].body.clone()).unwrap().lines() {
            assert!(line.len() <= 76);
        }
    }

    #[test]
    fn line_ends() {
        assert_eq!(crlf(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd");
        let mut m = sample();
        m.body = "x".repeat(2000).into_bytes();
        let p = parse(&m.render(0).bytes);
        assert_eq!(
            p.header("Content-Transfer-Encoding"),
            Some("base64"),
            "long lines are encoded"
        );
        assert_eq!(p.decoded(), "x".repeat(2000).as_bytes());
    }
}
