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
            } => {
                // The one summary meant for stdout: it is what `status` is asked for.
                println!("cache: {cache_dir} ({})", human_bytes(cache_bytes));
                match &current {
                    Some(c) => println!("current: {} ({})", c.version, c.variant),
                    None => println!("current: none"),
                }
                for r in &installed {
                    let mark = if r.current { "*" } else { " " };
                    println!(
                        "{mark} {} {} {} files, {}, installed {}",
                        r.version,
                        r.variant,
                        r.files,
                        human_bytes(r.bytes),
                        r.installed_at
                    );
                }
                for (ch, st) in &channels {
                    println!(
                        "channel {ch}: serial {} published {}",
                        st.serial, st.published_at
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
