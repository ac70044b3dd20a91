//! The reporter for people: indicatif bars on a terminal, plain lines otherwise,
//! all on stderr; `status` is the one summary printed on stdout.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::{Event, Phase, RepairSource, Reporter, SelfUpdateStatus, Source};
use crate::error::human_bytes;

/// Bars on a terminal, plain lines otherwise, all on stderr.
pub struct HumanReporter {
    tty: bool,
    bar: Mutex<Option<Bar>>,
    /// The phase of the bar that ended last, until another bar opens: more reports
    /// that it is complete (the install's last steps repeat it) open no new bar.
    ended: Mutex<Option<Phase>>,
}

/// The phase in progress and what its summary needs.
struct Bar {
    phase: Phase,
    bar: ProgressBar,
    start: Instant,
    /// Bytes that were on disk before this run (a resumed download): not counted
    /// in the speed, the time left or the summary's rate.
    resumed: u64,
}

impl Bar {
    /// Bytes moved by this run.
    fn moved(&self) -> u64 {
        self.bar.position().saturating_sub(self.resumed)
    }

    /// `48.0 MB/s, 25 s left`, from the bytes moved by this run only.
    fn rate(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let moved = self.moved();
        if secs < 0.2 || moved == 0 {
            return String::new();
        }
        let per_sec = moved as f64 / secs;
        let left = self
            .bar
            .length()
            .unwrap_or(0)
            .saturating_sub(self.bar.position());
        format!(
            "{}/s, {} left",
            human_bytes(per_sec as u64),
            human_duration(left as f64 / per_sec.max(1.0))
        )
    }
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
            ended: Mutex::new(None),
        }
    }

    fn phase_label(phase: Phase) -> &'static str {
        match phase {
            Phase::Download => "Downloading",
            Phase::Copy => "Copying",
            Phase::Verify => "Verifying",
            Phase::Patch => "Patching",
            Phase::Extract => "Installing",
        }
    }

    /// Ends the bar; a finished phase leaves one line: what, how much, how long,
    /// how fast (this run's bytes only).
    fn finish_bar(&self, slot: &mut Option<Bar>) {
        let Some(b) = slot.take() else {
            return;
        };
        b.bar.finish_and_clear();
        let total = b.bar.length().unwrap_or(0);
        if b.bar.position() < total || total == 0 {
            return;
        }
        if let Ok(mut ended) = self.ended.lock() {
            *ended = Some(b.phase);
        }
        let secs = b.start.elapsed().as_secs_f64().max(0.001);
        let moved = b.moved();
        let rate = human_bytes((moved as f64 / secs) as u64);
        let resumed = if b.resumed > 0 {
            format!(
                ", resumed at {} of {}",
                human_bytes(b.resumed),
                human_bytes(total)
            )
        } else {
            String::new()
        };
        eprintln!(
            "{} {} in {} ({rate}/s{resumed})",
            Self::done_label(b.phase),
            human_bytes(moved),
            human_duration(secs)
        );
    }

    fn done_label(phase: Phase) -> &'static str {
        match phase {
            Phase::Download => "Downloaded",
            Phase::Copy => "Copied",
            Phase::Verify => "Verified",
            Phase::Patch => "Patched",
            Phase::Extract => "Installed",
        }
    }

    fn line(&self, text: String) {
        let slot = self.bar.lock().ok();
        match slot.as_ref().and_then(|s| s.as_ref()) {
            Some(b) if self.tty => b.bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    fn progress(&self, phase: Phase, done: u64, total: u64, resumed_from: Option<u64>) {
        let Ok(mut slot) = self.bar.lock() else {
            return;
        };
        if slot.as_ref().is_some_and(|b| b.phase != phase) {
            self.finish_bar(&mut slot);
        }
        let ended = self.ended.lock().ok().and_then(|e| *e);
        if slot.is_none() && done >= total && ended == Some(phase) {
            return;
        }
        let resumed = resumed_from.unwrap_or(0);
        // A download that starts over (the server ignored the range) is a new bar.
        if slot.as_ref().is_some_and(|b| b.resumed != resumed)
            && let Some(b) = slot.take()
        {
            b.bar.finish_and_clear();
            if resumed == 0 {
                eprintln!(
                    "The server did not resume at {}: {} from the start",
                    human_bytes(b.resumed),
                    Self::phase_label(phase).to_lowercase()
                );
            }
        }
        if slot.is_none() {
            // A new bar: only a repeat of the bar that just ended is passed over.
            if let Ok(mut ended) = self.ended.lock() {
                *ended = None;
            }
            let label = Self::phase_label(phase);
            if resumed > 0 {
                eprintln!(
                    "{label} {}, resuming at {} (kept from an earlier run)",
                    human_bytes(total),
                    human_bytes(resumed)
                );
            } else if !self.tty {
                eprintln!("{label} {} ...", human_bytes(total));
            }
            let bar = if self.tty {
                ProgressBar::new(total)
            } else {
                ProgressBar::hidden()
            };
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:12} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {prefix}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label);
            bar.set_length(total);
            bar.set_position(resumed.min(total));
            *slot = Some(Bar {
                phase,
                bar,
                start: Instant::now(),
                resumed,
            });
        }
        if let Some(b) = slot.as_ref() {
            b.bar.set_length(total);
            b.bar.set_position(done);
            if self.tty {
                b.bar.set_prefix(b.rate());
            }
        }
        if done >= total {
            self.finish_bar(&mut slot);
        }
    }
}

/// `2026-12-01 14:03 UTC (3 days ago)` from an RFC 3339 time; the text as it is
/// when it is not one.
pub(crate) fn human_date(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return rfc3339.to_string();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let ago = time::OffsetDateTime::now_utc() - t;
    let secs = ago.whole_seconds();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let rel = match secs {
        i64::MIN..-60 => "in the future".to_string(),
        -60..60 => "just now".to_string(),
        60..3600 => format!("{} ago", plural(secs / 60, "minute")),
        3600..86_400 => format!("{} ago", plural(secs / 3600, "hour")),
        _ => format!("{} ago", plural(secs / 86_400, "day")),
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC ({rel})",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `0.42 s`, `8.1 s`, `25 s`, `3 min 20 s`, `2 h 05 min`.
pub(crate) fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 1.0 {
        return format!("{secs:.2} s");
    }
    if secs < 10.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
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
            Event::Progress {
                phase,
                done,
                total,
                resumed_from,
            } => self.progress(phase, done, total, resumed_from),
            Event::Retry {
                attempt,
                max_attempts,
                wait_ms,
                message,
                ..
            } => self.line(format!(
                "{message}; trying again in {} (attempt {attempt} of {max_attempts})",
                human_duration(wait_ms as f64 / 1000.0)
            )),
            Event::Hardware(h) => self.line(format!(
                "This machine: {}-{}",
                h.profile.os.as_str(),
                h.profile.arch.as_str()
            )),
            Event::Status {
                cache_dir,
                current,
                installed,
                channels,
                cache_bytes,
                staged,
                refused,
            } => {
                // The one summary meant for stdout: it is what `status` is asked for.
                println!("Cache: {cache_dir} ({})", human_bytes(cache_bytes));
                match &current {
                    Some(c) => println!("Current: {} ({})", c.version, c.variant),
                    None => println!("Current: none (run `peft-bootstrap ensure`)"),
                }
                match &staged {
                    Some(st) => println!(
                        "Staged for the next start: {} ({})",
                        st.version, st.variant
                    ),
                    None => println!("Staged for the next start: none"),
                }
                if !installed.is_empty() {
                    println!("Installed (* current):");
                }
                for r in &installed {
                    let mark = if r.current { "*" } else { " " };
                    println!(
                        "  {mark} {} ({}): {}, {} files, installed {}",
                        r.version,
                        r.variant,
                        human_bytes(r.bytes),
                        r.files,
                        human_date(&r.installed_at)
                    );
                }
                for r in &refused {
                    println!(
                        "Refused (rolled back: {}): {} ({}); to allow it again: {}",
                        r.reason, r.version, r.variant, r.allow_command
                    );
                }
                for (ch, st) in &channels {
                    println!(
                        "Channel {ch}: manifest serial {}, published {}",
                        st.serial,
                        human_date(&st.published_at)
                    );
                }
            }
            Event::Verified {
                version,
                variant,
                files,
                ok,
                extra,
                repaired,
                fetched,
                ..
            } => {
                for r in &repaired {
                    let from = match r.from {
                        RepairSource::Cache => "the cache",
                        RepairSource::Offline => "the offline folder",
                        RepairSource::Network => "the network",
                    };
                    self.line(format!("repaired {} from {from}", r.path));
                }
                if fetched > 0 {
                    self.line(format!("the repair fetched {}", human_bytes(fetched)));
                }
                for e in &extra {
                    self.line(format!("not in the signed index (left alone): {e}"));
                }
                // Problems are the error that follows.
                if ok {
                    self.line(format!(
                        "{version} ({variant}): all {files} files match the signed index"
                    ));
                }
            }
            Event::SelfUpdate {
                status,
                version,
                from,
                path,
            } => {
                let from = from.unwrap_or_default();
                self.line(match status {
                    SelfUpdateStatus::UpToDate => format!("peft-bootstrap {version} is up to date"),
                    SelfUpdateStatus::Available => format!(
                        "peft-bootstrap {version} is available (this is {from}); run `peft-bootstrap self-update`"
                    ),
                    SelfUpdateStatus::NotOffered => format!(
                        "peft-bootstrap {version}: the channel lists no build of peft-bootstrap for this platform, so there is nothing to update to (a new PEFT Studio release brings a newer one)"
                    ),
                    SelfUpdateStatus::Updated => format!(
                        "peft-bootstrap updated from {from} to {version} ({})",
                        path.unwrap_or_default()
                    ),
                });
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
            Event::RolledBack { from, to } => self.line(format!(
                "Rolled back from {from} to {to}; {from} is not chosen again (`peft-bootstrap rollback --allow {from}` lifts that)"
            )),
            Event::Allowed { version, variant } => self.line(format!(
                "{version} ({variant}) may be chosen again (by the next `peft-bootstrap update`, or `ensure` when it selects)"
            )),
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
    fn durations_and_dates_read_like_a_person_writes_them() {
        assert_eq!(human_duration(0.42), "0.42 s");
        assert_eq!(human_duration(8.14), "8.1 s");
        assert_eq!(human_duration(25.4), "25 s");
        assert_eq!(human_duration(200.0), "3 min 20 s");
        assert_eq!(human_duration(7500.0), "2 h 05 min");
        assert_eq!(
            &human_date("2026-12-01T14:03:59Z")[..20],
            "2026-12-01 14:03 UTC"
        );
        let three_days = time::OffsetDateTime::now_utc() - time::Duration::days(3);
        let s = three_days
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
        assert!(
            human_date(&s).ends_with("(3 days ago)"),
            "{}",
            human_date(&s)
        );
        assert_eq!(human_date("not a date"), "not a date");
    }
}
