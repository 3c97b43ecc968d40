//! The appliance's log lines in a test: it runs in the test's process, so a logger that
//! keeps every line lets a test check what was logged (a refusal, a lockout, an audit
//! decision). Each test runs in its own process under nextest; the logger is installed once.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Keep {
    lines: Mutex<Vec<String>>,
}

impl log::Log for Keep {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("{} {} {}", r.level(), r.target(), r.args());
            self.lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line);
        }
    }

    fn flush(&self) {}
}

static KEEP: OnceLock<&'static Keep> = OnceLock::new();

/// Starts keeping log lines (call before starting the appliance).
pub fn capture() {
    KEEP.get_or_init(|| {
        let keep: &'static Keep = Box::leak(Box::new(Keep {
            lines: Mutex::new(Vec::new()),
        }));
        if log::set_logger(keep).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        keep
    });
}

/// The lines kept so far that contain every one of `parts`.
pub fn matching(parts: &[&str]) -> Vec<String> {
    let Some(keep) = KEEP.get() else {
        return Vec::new();
    };
    keep.lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .cloned()
        .collect()
}

/// Waits (up to 5 s) for a line with every one of `parts`; whether one came.
pub fn logged(parts: &[&str]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if !matching(parts).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
