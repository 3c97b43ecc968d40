//! What the batch FTP client learns about a remote file by itself (RFC 3659 MLST facts,
//! SIZE, MDTM) and the wildcard patterns of MPUT/MGET. No I/O here.

use std::time::{Duration, SystemTime};

/// A remote file's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `file`, `dir`, `cdir`, `pdir`, ... when the server said.
    pub kind: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Last modification (UTC).
    pub modified: Option<SystemTime>,
    /// The name the facts are about.
    pub name: String,
}

impl Facts {
    /// Whether the server called it a plain file (or said nothing).
    pub fn is_file(&self) -> bool {
        self.kind
            .as_deref()
            .is_none_or(|k| k.eq_ignore_ascii_case("file"))
    }
}

/// One MLST/MLSD entry line: `fact=value;fact=value; name`.
pub fn parse_mlst_entry(line: &str) -> Option<Facts> {
    let line = line.trim_start();
    let (facts, name) = line.split_once(' ')?;
    let mut f = Facts {
        name: name.trim_end_matches(['\r', '\n']).to_string(),
        ..Facts::default()
    };
    if f.name.is_empty() {
        return None;
    }
    for fact in facts.split(';').filter(|s| !s.is_empty()) {
        let (k, v) = fact.split_once('=')?;
        match k.to_ascii_lowercase().as_str() {
            "type" => f.kind = Some(v.to_ascii_lowercase()),
            "size" => f.size = v.parse().ok(),
            "modify" => f.modified = parse_time(v),
            _ => {}
        }
    }
    Some(f)
}

/// The facts of an MLST reply (its entry is the line after the first).
pub fn parse_mlst_reply(lines: &[String]) -> Option<Facts> {
    lines.iter().skip(1).find_map(|l| parse_mlst_entry(l))
}

/// An RFC 3659 time value `YYYYMMDDHHMMSS[.sss]` (UTC).
pub fn parse_time(v: &str) -> Option<SystemTime> {
    let main = v.split('.').next()?;
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| main.get(r).and_then(|s| s.parse::<u64>().ok());
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as i64, d as i64);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `name` matches `pattern` (`*` any run, `?` one character; the rest literal).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether a pattern has wildcards at all.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mlst_entries() {
        let f =
            parse_mlst_entry(" type=file;size=1234;modify=20261201101112;UNIX.mode=0644; r.txt")
                .unwrap();
        assert_eq!(f.size, Some(1234));
        assert!(f.is_file());
        assert_eq!(f.name, "r.txt");
        assert_eq!(
            f.modified.unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_872)
        );
        let d = parse_mlst_entry("type=dir;modify=20260101000000; my dir").unwrap();
        assert!(!d.is_file());
        assert_eq!(d.name, "my dir");
        assert!(parse_mlst_entry("garbage").is_none());
        assert!(parse_mlst_entry("type=file; ").is_none());
        let lines = vec![
            "Listing".to_string(),
            " size=5; a".to_string(),
            "End".to_string(),
        ];
        assert_eq!(parse_mlst_reply(&lines).unwrap().size, Some(5));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("19700101000000"), Some(SystemTime::UNIX_EPOCH));
        assert_eq!(
            parse_time("20000229120000.5"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
        for bad in [
            "2026",
            "20261301000000",
            "2026120110111x",
            "",
            "99999999999999",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.csv", "a.csv"));
        assert!(wildcard_match("*.csv", ".csv"));
        assert!(!wildcard_match("*.csv", "a.csvx"));
        assert!(wildcard_match("a?.log", "ab.log"));
        assert!(!wildcard_match("a?.log", "a.log"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("r*p*t", "report"));
        assert!(!wildcard_match("r*p*t", "reporx"));
        assert!(has_wildcards("a*"));
        assert!(!has_wildcards("abc"));
    }
}
