//! Proving a fresh install on this machine.
//!
//! A variant with `probe: true` is run as `entry --probe` after it is installed
//! ([`probe`]), within a time limit (`PEFT_PROBE_TIMEOUT`, default 120 s). A probe
//! that exits non-zero or does not answer in time is remembered by the caller in
//! [`crate::cache::BadVariants`]; `ensure` then installs the next candidate.

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::env;
use crate::process::run_limited;

/// Seconds a probe may take unless `PEFT_PROBE_TIMEOUT` says otherwise: loading
/// torch and initialising CUDA the first time can take a minute on a slow disk.
pub const DEFAULT_PROBE_TIMEOUT_S: u64 = 120;

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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Instant;

    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("entry");
        fs_err::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
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
}
