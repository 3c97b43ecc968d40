//! Latency histograms and the result report (human lines or one JSON object).

use std::fmt::Write as _;
use std::net::SocketAddr;

use hdrhistogram::Histogram;

/// Highest latency the histogram tracks exactly (60 s, in ns); larger values saturate.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// At most this many error messages are kept for the report.
pub const MAX_ERROR_MSGS: usize = 8;

/// A latency histogram in nanoseconds, 3 significant digits.
#[allow(clippy::expect_used)] // Constant bounds: this cannot fail at run time.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant histogram bounds are valid")
}

/// Error counter plus the first few messages.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    pub count: u64,
    pub msgs: Vec<String>,
}

impl Errors {
    pub fn push(&mut self, msg: impl Into<String>) {
        self.count += 1;
        if self.msgs.len() < MAX_ERROR_MSGS {
            self.msgs.push(msg.into());
        }
    }

    pub fn merge(&mut self, other: Errors) {
        self.count += other.count;
        for m in other.msgs {
            if self.msgs.len() < MAX_ERROR_MSGS {
                self.msgs.push(m);
            }
        }
    }
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Self {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Result of one request/response run.
#[derive(Debug, Clone)]
pub struct Report {
    /// `"tcp_rr"` or `"udp_rr"`.
    pub mode: &'static str,
    pub target: SocketAddr,
    /// Connections asked for (TCP) or 1 (UDP).
    pub conns: usize,
    /// Connections that were established.
    pub connected: usize,
    pub threads: usize,
    pub size: usize,
    /// Measured interval (after warmup), seconds.
    pub secs: f64,
    /// Transactions completed in the measured interval.
    pub transactions: u64,
    /// Datagrams that got no reply within the timeout (UDP only).
    pub losses: u64,
    pub errors: Errors,
    /// Latency in ns, measured interval only.
    pub hist: Histogram<u64>,
}

impl Report {
    pub fn tps(&self) -> f64 {
        if self.secs > 0.0 {
            self.transactions as f64 / self.secs
        } else {
            0.0
        }
    }

    pub fn latency(&self) -> Latency {
        Latency::from_histogram(&self.hist)
    }

    /// True when no connection failed and no byte mismatched.
    pub fn ok(&self) -> bool {
        self.errors.count == 0
    }

    /// Human-readable multi-line summary.
    pub fn human(&self) -> String {
        let l = self.latency();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} target={} conns={}/{} threads={} size={}B secs={:.2}",
            self.mode, self.target, self.connected, self.conns, self.threads, self.size, self.secs
        );
        let _ = writeln!(
            s,
            "transactions: {} ({:.1} /s)",
            self.transactions,
            self.tps()
        );
        let _ = writeln!(
            s,
            "latency us: p50={:.1} p90={:.1} p99={:.1} p99.9={:.1} max={:.1} mean={:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if self.mode == "udp_rr" {
            let sent = self.transactions + self.losses;
            let pct = if sent > 0 {
                100.0 * self.losses as f64 / sent as f64
            } else {
                0.0
            };
            let _ = writeln!(s, "losses: {} ({:.3}%)", self.losses, pct);
        }
        let _ = writeln!(s, "errors: {}", self.errors.count);
        for m in &self.errors.msgs {
            let _ = writeln!(s, "  error: {m}");
        }
        s
    }

    /// One JSON object on a single line.
    pub fn json(&self) -> String {
        let l = self.latency();
        let errs: Vec<String> = self.errors.msgs.iter().map(|m| json_str(m)).collect();
        format!(
            concat!(
                "{{\"mode\":{},\"target\":{},\"conns\":{},\"connected\":{},\"threads\":{},",
                "\"size\":{},\"secs\":{},\"transactions\":{},\"tps\":{},\"losses\":{},",
                "\"errors\":{},\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},",
                "\"p99_9\":{},\"max\":{},\"mean\":{}}},\"error_msgs\":[{}]}}"
            ),
            json_str(self.mode),
            json_str(&self.target.to_string()),
            self.conns,
            self.connected,
            self.threads,
            self.size,
            json_num(self.secs),
            self.transactions,
            json_num(self.tps()),
            self.losses,
            self.errors.count,
            json_num(l.p50),
            json_num(l.p90),
            json_num(l.p99),
            json_num(l.p999),
            json_num(l.max),
            json_num(l.mean),
            errs.join(",")
        )
    }
}

/// A finite JSON number (3 decimals); non-finite values become 0.
fn json_num(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".to_string()
        } else {
            s.to_string()
        }
    } else {
        "0".to_string()
    }
}

/// A JSON string literal with escaping.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_helpers() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_num(1.5), "1.5");
        assert_eq!(json_num(2.0), "2");
        assert_eq!(json_num(0.0), "0");
        assert_eq!(json_num(f64::NAN), "0");
    }

    #[test]
    fn report_formats() {
        let mut hist = new_histogram();
        for v in [10_000u64, 20_000, 30_000] {
            hist.saturating_record(v);
        }
        let mut errors = Errors::default();
        errors.push("boom \"x\"");
        let r = Report {
            mode: "udp_rr",
            target: "[fd77::2]:7".parse().unwrap(),
            conns: 1,
            connected: 1,
            threads: 1,
            size: 64,
            secs: 2.0,
            transactions: 3,
            losses: 1,
            errors,
            hist,
        };
        assert!((r.tps() - 1.5).abs() < 1e-9);
        assert!(!r.ok());
        let j = r.json();
        assert!(j.starts_with("{\"mode\":\"udp_rr\",\"target\":\"[fd77::2]:7\""));
        assert!(j.contains("\"tps\":1.5,"));
        assert!(j.contains("\"losses\":1,"));
        assert!(j.contains("\"error_msgs\":[\"boom \\\"x\\\"\"]"));
        assert!(j.ends_with('}'));
        let h = r.human();
        assert!(h.contains("losses: 1 (25.000%)"));
        assert!(h.contains("p50=20.0"));
    }
}
