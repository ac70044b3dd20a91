//! What the bootstrapper tells its caller while it works.
//!
//! With `--json`, stdout carries one JSON object per line and nothing else; that is
//! the wire format Electron reads (CONTRACT §4). Every object has an `event` field:
//!
//! | event | fields |
//! | --- | --- |
//! | `hardware` | the hardware profile (`os`, `arch`, GPUs, ...) |
//! | `verdict` | `version`, `variant`, `fits`, `reason`: one per variant considered |
//! | `selected` | `version`, `variant`, `reason` |
//! | `progress` | `phase` (`download`, `verify`, `patch`, `extract`), `done`, `total` (bytes) |
//! | `warning` | `message` |
//! | `ready` | `version`, `variant`, `dir`, `executable`, `source` (`cache`, `network`, `offline`), `env` (variables to start the engine with, e.g. a narrowed `CUDA_VISIBLE_DEVICES`; `{}` when none) |
//! | `error` | `code`, `message`, `exit_code`, `hint` |
//! | `update_available` | `version`, `variant`, `bytes` to download, `from` (the delta's base, or null for the full archive) |
//! | `up_to_date` | `version`, `variant` |
//! | `staged` | `version`, `variant`, `bytes` downloaded, `from`: ready for the next `ensure` |
//! | `rolled_back` | `from`, `to` (install names) |
//! | `collected` | `removed` (install names and files), `freed` (bytes) |
//!
//! Progress events are throttled to about ten a second per phase; the first and the
//! last of each phase are always sent. Without `--json`, a terminal gets indicatif
//! bars on stderr and a pipe gets one plain line per phase.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::human_bytes;

/// One event of the JSON-lines protocol.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Hardware(serde_json::Value),
    Verdict {
        version: String,
        variant: String,
        fits: bool,
        reason: String,
    },
    Selected {
        version: String,
        variant: String,
        reason: String,
    },
    Progress {
        phase: Phase,
        done: u64,
        total: u64,
    },
    Warning {
        message: String,
    },
    Ready {
        version: String,
        variant: String,
        dir: String,
        executable: String,
        source: Source,
        env: std::collections::BTreeMap<String, String>,
    },
    UpdateAvailable {
        version: String,
        variant: String,
        bytes: u64,
        from: Option<String>,
    },
    UpToDate {
        version: String,
        variant: String,
    },
    Staged {
        version: String,
        variant: String,
        bytes: u64,
        from: Option<String>,
    },
    RolledBack {
        from: String,
        to: String,
    },
    Collected {
        removed: Vec<String>,
        freed: u64,
    },
    Error {
        code: String,
        message: String,
        exit_code: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
}

/// The long-running phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Download,
    Verify,
    Patch,
    Extract,
}

/// Where a ready backend came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cache,
    Network,
    Offline,
}

/// Receives events; shared by reference across the work.
pub trait Reporter: Send + Sync {
    fn emit(&self, event: Event);

    fn warn(&self, message: String) {
        self.emit(Event::Warning { message });
    }

    fn progress(&self, phase: Phase, done: u64, total: u64) {
        self.emit(Event::Progress { phase, done, total });
    }
}

/// The reporter for `--json`, or for people, chosen by the flag.
pub fn reporter(json: bool) -> Box<dyn Reporter> {
    if json {
        Box::new(JsonReporter::default())
    } else {
        Box::new(HumanReporter::new())
    }
}

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
        if let Event::Progress { phase, done, total } = &event {
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

/// Bars on a terminal, plain lines otherwise, all on stderr.
pub struct HumanReporter {
    tty: bool,
    bar: Mutex<Option<(Phase, ProgressBar, Instant)>>,
}

impl std::fmt::Debug for HumanReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HumanReporter")
    }
}

impl HumanReporter {
    pub fn new() -> Self {
        HumanReporter {
            tty: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    fn phase_label(phase: Phase) -> &'static str {
        match phase {
            Phase::Download => "Downloading",
            Phase::Verify => "Verifying",
            Phase::Patch => "Patching",
            Phase::Extract => "Installing",
        }
    }

    fn finish_bar(&self, slot: &mut Option<(Phase, ProgressBar, Instant)>) {
        if let Some((phase, bar, start)) = slot.take() {
            bar.finish_and_clear();
            if !self.tty && bar.position() >= bar.length().unwrap_or(0) {
                let secs = start.elapsed().as_secs_f64().max(0.001);
                let rate = human_bytes((bar.position() as f64 / secs) as u64);
                eprintln!(
                    "{} {} in {secs:.1} s ({rate}/s)",
                    Self::done_label(phase),
                    human_bytes(bar.position())
                );
            }
        }
    }

    fn done_label(phase: Phase) -> &'static str {
        match phase {
            Phase::Download => "Downloaded",
            Phase::Verify => "Verified",
            Phase::Patch => "Patched",
            Phase::Extract => "Installed",
        }
    }

    fn line(&self, text: String) {
        let slot = self.bar.lock().ok();
        match slot.as_ref().and_then(|s| s.as_ref()) {
            Some((_, bar, _)) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Default for HumanReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for HumanReporter {
    fn emit(&self, event: Event) {
        match event {
            Event::Progress { phase, done, total } => {
                let Ok(mut slot) = self.bar.lock() else {
                    return;
                };
                if slot.as_ref().is_some_and(|(p, _, _)| *p != phase) {
                    self.finish_bar(&mut slot);
                }
                if slot.is_none() {
                    if !self.tty {
                        eprintln!("{} {} ...", Self::phase_label(phase), human_bytes(total));
                    }
                    let bar = if self.tty {
                        ProgressBar::new(total)
                    } else {
                        ProgressBar::hidden()
                    };
                    if let Ok(style) = ProgressStyle::with_template(
                        "{msg:12} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {eta} left",
                    ) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.set_message(Self::phase_label(phase));
                    *slot = Some((phase, bar, Instant::now()));
                }
                if let Some((_, bar, _)) = slot.as_ref() {
                    bar.set_length(total);
                    bar.set_position(done);
                }
                if done >= total {
                    self.finish_bar(&mut slot);
                }
            }
            Event::Hardware(v) => {
                let os = v.get("os").and_then(|s| s.as_str()).unwrap_or("?");
                let arch = v.get("arch").and_then(|s| s.as_str()).unwrap_or("?");
                self.line(format!("This machine: {os}-{arch}"));
            }
            Event::Verdict {
                version,
                variant,
                fits,
                reason,
            } => {
                let mark = if fits { "fits" } else { "no  " };
                self.line(format!("  {mark} {version} {variant}: {reason}"));
            }
            Event::Selected {
                version,
                variant,
                reason,
            } => {
                self.line(format!("Selected {variant} {version}: {reason}"));
            }
            Event::Warning { message } => self.line(format!("warning: {message}")),
            Event::Ready {
                version,
                variant,
                dir,
                source,
                ..
            } => {
                let from = match source {
                    Source::Cache => "already installed",
                    Source::Network => "installed",
                    Source::Offline => "installed from the offline folder",
                };
                self.line(format!("Backend {version} ({variant}) {from} in {dir}"));
            }
            Event::UpdateAvailable {
                version,
                variant,
                bytes,
                from,
            } => self.line(format!(
                "Update available: {version} ({variant}), {} to download{}",
                human_bytes(bytes),
                from.map(|f| format!(" as a delta from {f}"))
                    .unwrap_or_default()
            )),
            Event::UpToDate { version, variant } => {
                self.line(format!("Up to date: {version} ({variant})"))
            }
            Event::Staged {
                version,
                variant,
                bytes,
                from,
            } => self.line(format!(
                "Staged {version} ({variant}) for the next start; downloaded {}{}",
                human_bytes(bytes),
                from.map(|f| format!(" (delta from {f})"))
                    .unwrap_or_default()
            )),
            Event::RolledBack { from, to } => self.line(format!("Rolled back from {from} to {to}")),
            Event::Collected { removed, freed } => self.line(format!(
                "Removed {} item(s), freed {}",
                removed.len(),
                human_bytes(freed)
            )),
            Event::Error { message, hint, .. } => {
                if let Ok(mut slot) = self.bar.lock() {
                    self.finish_bar(&mut slot);
                }
                eprintln!("error: {message}");
                if let Some(h) = hint {
                    eprintln!("  hint: {h}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_matches_the_contract() {
        let e = Event::Ready {
            version: "1.3.0".into(),
            variant: "linux-x86_64-cpu".into(),
            dir: "/d".into(),
            executable: "/d/peft_engine/peft_engine".into(),
            source: Source::Network,
            env: [("CUDA_VISIBLE_DEVICES".to_string(), "GPU-1".to_string())].into(),
        };
        let v: serde_json::Value = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["event"], "ready");
        assert_eq!(v["source"], "network");
        assert_eq!(v["env"]["CUDA_VISIBLE_DEVICES"], "GPU-1");
        let p = serde_json::to_value(Event::Progress {
            phase: Phase::Download,
            done: 1,
            total: 2,
        })
        .expect("json");
        assert_eq!(
            p,
            serde_json::json!({"event":"progress","phase":"download","done":1,"total":2})
        );
        let h =
            serde_json::to_value(Event::Hardware(serde_json::json!({"os":"linux"}))).expect("json");
        assert_eq!(h, serde_json::json!({"event":"hardware","os":"linux"}));
    }

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
