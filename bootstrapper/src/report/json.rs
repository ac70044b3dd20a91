//! The `--json` reporter: one event per line on stdout, progress throttled.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Event, Phase, Reporter};

#[derive(Default)]
struct Throttle {
    last: Option<(Phase, Instant, u64)>,
}

impl Throttle {
    /// Whether a progress event should go out now.
    fn pass(&mut self, phase: Phase, done: u64, total: u64) -> bool {
        let now = Instant::now();
        let pass = match self.last {
            Some((p, _, d)) if p == phase && d == done => false,
            Some((p, t, _)) if p == phase => {
                done >= total || now.duration_since(t) >= Duration::from_millis(100)
            }
            _ => true,
        };
        if pass {
            self.last = Some((phase, now, done));
        }
        pass
    }
}

/// JSON lines on stdout.
#[derive(Default)]
pub struct JsonReporter {
    throttle: Mutex<Throttle>,
}

impl std::fmt::Debug for JsonReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonReporter")
    }
}

impl Reporter for JsonReporter {
    fn emit(&self, event: Event) {
        if let Event::Progress {
            phase, done, total, ..
        } = &event
        {
            let pass = self
                .throttle
                .lock()
                .map(|mut t| t.pass(*phase, *done, *total))
                .unwrap_or(true);
            if !pass {
                return;
            }
        }
        if let Ok(line) = serde_json::to_string(&event) {
            let mut out = std::io::stdout().lock();
            // A closed stdout (the UI went away) must not turn into a panic.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_keeps_first_and_last() {
        let mut t = Throttle::default();
        assert!(t.pass(Phase::Download, 0, 10));
        assert!(!t.pass(Phase::Download, 5, 10));
        assert!(t.pass(Phase::Download, 10, 10));
        assert!(
            !t.pass(Phase::Download, 10, 10),
            "an exact repeat is dropped"
        );
        assert!(t.pass(Phase::Extract, 1, 10));
    }
}
