//! Content types of attachments, from the file name's extension.

/// The type for names sixstack does not know.
pub const DEFAULT: &str = "application/octet-stream";

const TABLE: &[(&str, &str)] = &[
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("log", "text/plain"),
    ("csv", "text/csv"),
    ("md", "text/markdown"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("xml", "application/xml"),
    ("json", "application/json"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("svg", "image/svg+xml"),
    ("webp", "image/webp"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("pcap", "application/vnd.tcpdump.pcap"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ics", "text/calendar"),
];

/// The content type for a file name (by extension, case-insensitive).
pub fn for_name(name: &str) -> &'static str {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return DEFAULT;
    };
    TABLE
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or(DEFAULT, |(_, t)| t)
}

/// Whether `t` is a bare `type/subtype` made of token characters (RFC 2045 §5.1).
pub fn is_valid(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(for_name("report.PDF"), "application/pdf");
        assert_eq!(for_name("a.tar.gz"), "application/gzip");
        assert_eq!(for_name("noext"), DEFAULT);
        assert_eq!(for_name("weird.xyz"), DEFAULT);
        assert!(is_valid("text/plain"));
        assert!(!is_valid("text/plain; charset=x"));
        assert!(!is_valid("text"));
        assert!(!is_valid("te xt/plain"));
    }
}
