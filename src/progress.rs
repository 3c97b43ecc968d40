//! The progress bar the batch clients draw on a terminal's standard error while a file
//! moves (at most ten redraws a second), cleared before a step's line is printed.

use std::io::Write;
use std::time::{Duration, Instant};

/// A progress bar, drawn only when `enabled`.
#[derive(Debug)]
pub struct Bar {
    enabled: bool,
    last_draw: Option<Instant>,
}

impl Bar {
    /// A bar that draws when `enabled` (standard error is a terminal and not turned off).
    pub fn new(enabled: bool) -> Bar {
        Bar {
            enabled,
            last_draw: None,
        }
    }

    /// Draws `done` of `total` bytes of `name`.
    pub fn draw(&mut self, name: &str, done: u64, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        if self
            .last_draw
            .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let line = match total {
            Some(t) if t > 0 => {
                let frac = (done as f64 / t as f64).clamp(0.0, 1.0);
                let filled = (frac * 30.0) as usize;
                format!(
                    "\r{name:.30} [{}{}] {:5.1}% {}",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    frac * 100.0,
                    human(done)
                )
            }
            _ => format!("\r{name:.30} {}", human(done)),
        };
        let mut e = std::io::stderr();
        let _ = write!(e, "{line}\x1b[K");
        let _ = e.flush();
    }

    /// Clears the bar (before a line is printed).
    pub fn clear(&mut self) {
        if self.enabled && self.last_draw.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Bytes for people: B, KiB, MiB, GiB.
pub fn human(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(human(1 << 30), "1.0 GiB");
    }
}
