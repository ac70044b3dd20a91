//! Proving a fresh install on this machine, and remembering the ones that failed.
//!
//! A variant with `probe: true` is run as `entry --probe` after it is installed
//! ([`probe`]), within a time limit (`PEFT_PROBE_TIMEOUT`, default 120 s). A probe
//! that exits non-zero or does not answer in time marks the variant bad for this
//! machine in `<cache>/bad-variants.json` ([`BadVariants`]), keyed by the release
//! version, the variant id and [`Hardware::machine_key`] (OS, NVIDIA driver version,
//! GPU UUIDs), so a driver update or a new GPU clears it; `ensure` then installs
//! the next candidate. [`run_limited`] is the time-limited child-process runner the
//! detection probes use too.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use peft_manifest::Hardware;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cache::{CacheLock, read_json, write_json_atomic};
use crate::env;
use crate::error::Result;

/// Seconds a probe may take unless `PEFT_PROBE_TIMEOUT` says otherwise: loading
/// torch and initialising CUDA the first time can take a minute on a slow disk.
pub const DEFAULT_PROBE_TIMEOUT_S: u64 = 120;

/// The file under the cache directory.
pub const BAD_VARIANTS: &str = "bad-variants.json";

/// How a time-limited child process ended.
#[derive(Debug)]
pub struct Finished {
    /// `None` when it was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `cmd` with its output captured, killing it after `limit`.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> std::io::Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read both pipes on threads so a chatty child never blocks on a full pipe.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.by_ref().take(1 << 20).read_to_end(&mut buf);
                // Drain the rest so the child never blocks on a full pipe.
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            buf
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The probe's time limit from `PEFT_PROBE_TIMEOUT` (seconds).
pub fn probe_timeout() -> Duration {
    Duration::from_secs(env::number(env::PROBE_TIMEOUT, DEFAULT_PROBE_TIMEOUT_S).max(1))
}

/// Runs `exe --probe` with `envs` added; `Err` says, for a person, why it failed.
pub fn probe(exe: &Path, envs: &[(String, String)], limit: Duration) -> Result<(), String> {
    let mut cmd = Command::new(exe);
    cmd.arg("--probe");
    if let Some(dir) = exe.parent() {
        cmd.current_dir(dir);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let done = run_limited(&mut cmd, limit)
        .map_err(|e| format!("{} --probe could not be started: {e}", exe.display()))?;
    match done.status {
        None => Err(format!(
            "the probe did not finish within {} s (PEFT_PROBE_TIMEOUT)",
            limit.as_secs()
        )),
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(failure_text(s, &done.stdout, &done.stderr)),
    }
}

/// The probe's own `reason` (its last JSON line on stdout), else the last line of
/// stderr, with the exit status.
pub fn failure_text(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> String {
    let code = status
        .code()
        .map(|c| format!("exit code {c}"))
        .unwrap_or_else(|| "killed by a signal".into());
    let reason = String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .find_map(|v| v.get("reason").and_then(|r| r.as_str()).map(String::from))
        .or_else(|| {
            String::from_utf8_lossy(stderr)
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| l.chars().take(300).collect())
        });
    match reason {
        Some(r) => format!("the probe failed ({code}): {r}"),
        None => format!("the probe failed ({code}) without saying why"),
    }
}

/// `bad-variants.json`: variants whose probe failed, per machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadVariants {
    #[serde(default)]
    pub entries: Vec<BadEntry>,
}

/// One variant that failed its probe on one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadEntry {
    /// [`Hardware::machine_key`] when it failed.
    pub machine: String,
    pub version: String,
    pub variant: String,
    pub reason: String,
    pub at: String,
}

impl BadVariants {
    pub fn path(cache_root: &Path) -> PathBuf {
        cache_root.join(BAD_VARIANTS)
    }

    /// Reads the file; a missing or unreadable one remembers nothing.
    pub fn load(cache_root: &Path) -> BadVariants {
        match read_json(&Self::path(cache_root)) {
            Ok(Some(b)) => b,
            Ok(None) => BadVariants::default(),
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", Self::path(cache_root).display());
                BadVariants::default()
            }
        }
    }

    /// Why `variant` of `version` is bad on `hw`, if it is.
    pub fn reason(&self, hw: &Hardware, version: &str, variant: &str) -> Option<String> {
        let key = hw.machine_key();
        self.entries
            .iter()
            .find(|e| e.machine == key && e.version == version && e.variant == variant)
            .map(|e| {
                format!(
                    "failed its probe on this machine: {} (at {})",
                    e.reason, e.at
                )
            })
    }

    /// Marks `variant` of `version` bad on `hw`; entries of other machine keys (an
    /// older driver, other GPUs) are dropped, since they no longer describe it.
    pub fn mark(&mut self, hw: &Hardware, version: &str, variant: &str, reason: &str) {
        let key = hw.machine_key();
        self.entries
            .retain(|e| e.machine == key && !(e.version == version && e.variant == variant));
        self.entries.push(BadEntry {
            machine: key,
            version: version.into(),
            variant: variant.into(),
            reason: reason.into(),
            at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        });
    }

    /// Writes the file atomically (the caller holds the cache lock).
    pub fn save(&self, cache_root: &Path, _lock: &CacheLock) -> Result<()> {
        write_json_atomic(&Self::path(cache_root), self)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use peft_manifest::{Arch, Dotted, GpuSource, Nvidia, Os};

    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("entry");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    #[test]
    fn probe_passes_fails_with_the_reason_and_times_out() {
        let t = tempfile::tempdir().expect("tempdir");
        let ok = script(
            t.path(),
            r#"[ "$1" = --probe ] && [ "$X" = y ] && exit 0; exit 3"#,
        );
        let env = [("X".to_string(), "y".to_string())];
        assert_eq!(probe(&ok, &env, Duration::from_secs(10)), Ok(()));
        let err = probe(&ok, &[], Duration::from_secs(10)).expect_err("no X");
        assert!(err.contains("exit code 3"), "{err}");
        let bad = script(
            t.path(),
            r#"echo '{"event":"probe","ok":false,"reason":"no CUDA GPU"}'; echo boom >&2; exit 1"#,
        );
        let err = probe(&bad, &[], Duration::from_secs(10)).expect_err("fails");
        assert!(
            err.contains("no CUDA GPU") && err.contains("exit code 1"),
            "{err}"
        );
        let slow = script(t.path(), "exec sleep 30");
        let start = Instant::now();
        let err = probe(&slow, &[], Duration::from_secs(1)).expect_err("times out");
        assert!(err.contains("within 1 s"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let missing = probe(&t.path().join("nope"), &[], Duration::from_secs(1));
        assert!(
            missing
                .expect_err("missing")
                .contains("could not be started")
        );
    }

    #[test]
    fn bad_variants_are_per_machine() {
        let mut hw = Hardware::new(Os::Linux, Arch::X86_64);
        hw.nvidia = Some(Nvidia {
            driver: Dotted::new(&[580, 95]),
            cuda: None,
            source: GpuSource::Nvml,
            gpus: vec![],
        });
        let mut b = BadVariants::default();
        b.mark(&hw, "1.0.0", "v", "the probe failed");
        assert!(b.reason(&hw, "1.0.0", "v").is_some());
        assert!(b.reason(&hw, "1.1.0", "v").is_none());
        let mut updated = hw.clone();
        if let Some(n) = updated.nvidia.as_mut() {
            n.driver = Dotted::new(&[580, 105]);
        }
        assert!(
            b.reason(&updated, "1.0.0", "v").is_none(),
            "a driver update clears it"
        );
        b.mark(&updated, "1.0.0", "w", "x");
        assert_eq!(b.entries.len(), 1, "entries of the old driver are dropped");
    }
}
