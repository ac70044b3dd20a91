//! Every environment variable the bootstrapper reads, in one place.
//!
//! The settings of CONTRACT §4 each have a flag and a variable; the flag wins. The
//! rest tune behaviour for tests and unusual networks and are documented in
//! `docs/BOOTSTRAPPER.md`.

/// Channel manifest URL (`https://`, `http://`, `file://`), or a repository root.
pub const MANIFEST_URL: &str = "PEFT_MANIFEST_URL";
/// Release channel, default `stable`.
pub const CHANNEL: &str = "PEFT_CHANNEL";
/// Cache directory, default `<data dir>/PEFT Studio/backend`.
pub const CACHE_DIR: &str = "PEFT_CACHE_DIR";
/// A pre-fetched bundle folder; no network is touched.
pub const OFFLINE_DIR: &str = "PEFT_OFFLINE_DIR";
/// Force a variant id, or `auto`.
pub const BACKEND_VARIANT: &str = "PEFT_BACKEND_VARIANT";
/// A minisign public key (file path or key line) trusted instead of the built-in ones.
pub const TRUSTED_KEY: &str = "PEFT_TRUSTED_KEY";
/// The UI version asking; releases whose `ui_compat` excludes it are skipped.
pub const UI_VERSION: &str = "PEFT_UI_VERSION";
/// Seconds to wait for another instance's cache lock before exit code 7 (default 120).
pub const LOCK_TIMEOUT: &str = "PEFT_LOCK_TIMEOUT";
/// Seconds without a byte before a download attempt is abandoned (default 30).
pub const READ_TIMEOUT: &str = "PEFT_READ_TIMEOUT";
/// First retry delay in milliseconds, doubled per attempt (default 500).
pub const RETRY_BASE_MS: &str = "PEFT_RETRY_BASE_MS";
/// Log filter for stderr (`tracing` syntax), e.g. `debug` or `peft_bootstrap=trace`.
pub const LOG: &str = "PEFT_LOG";

/// The value of `name` when set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A numeric variable, or `default` when unset or not a number.
pub fn number(name: &str, default: u64) -> u64 {
    var(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
