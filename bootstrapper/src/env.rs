//! Every environment variable the bootstrapper reads, in one place.
//!
//! The settings of docs/CONTRACT.md §4 each have a flag and a variable; the flag wins. The
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
/// First retry delay in milliseconds, doubled per attempt (default 500); a server's
/// `Retry-After` (seconds, at most 8) lengthens it.
pub const RETRY_BASE_MS: &str = "PEFT_RETRY_BASE_MS";
/// Minimum-throughput rule: a download attempt that receives fewer than this many
/// bytes in `PEFT_MIN_RATE_SECS` is abandoned and counts as a failed attempt
/// (default 65536; `0` turns the rule off).
pub const MIN_RATE_BYTES: &str = "PEFT_MIN_RATE_BYTES";
/// The window of `PEFT_MIN_RATE_BYTES`, in seconds (default 30).
pub const MIN_RATE_SECS: &str = "PEFT_MIN_RATE_SECS";
/// A crash point for the fault tests, `<step>` or `<step>:<n>` (debug builds only;
/// see `failpoint.rs`).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub const FAILPOINT: &str = "PEFT_FAILPOINT";
/// Total deadline of one download (every attempt, retry and mirror together): this
/// many seconds (default 600) plus the blob's signed size at `PEFT_DEADLINE_RATE_BYTES`.
pub const DEADLINE_SECS: &str = "PEFT_DEADLINE_SECS";
/// The slowest average rate, in bytes a second, that the deadline still lets a
/// download finish at (default 32768; `0`: the deadline is `PEFT_DEADLINE_SECS` alone).
pub const DEADLINE_RATE_BYTES: &str = "PEFT_DEADLINE_RATE_BYTES";

/// Trust roots read instead of the system store (not added to it): a PEM bundle.
/// Read by `rustls-native-certs` on Linux and the other Unixes but macOS.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// Folders of PEM certificates (`:`-separated), read like `SSL_CERT_FILE`.
pub const SSL_CERT_DIR: &str = "SSL_CERT_DIR";
/// The proxy for https:// URLs (also `https_proxy`); read by reqwest.
pub const HTTPS_PROXY: &str = "HTTPS_PROXY";
/// The proxy for http:// URLs (also `http_proxy`; ignored when `REQUEST_METHOD` is set).
pub const HTTP_PROXY: &str = "HTTP_PROXY";
/// The proxy for both when the two above are unset (also `all_proxy`).
pub const ALL_PROXY: &str = "ALL_PROXY";
/// Hosts, domains and IP ranges reached without a proxy (also `no_proxy`), e.g.
/// `localhost,127.0.0.1,.corp.example`.
pub const NO_PROXY: &str = "NO_PROXY";
/// Log filter for stderr (`tracing` syntax), e.g. `debug` or `peft_bootstrap=trace`.
pub const LOG: &str = "PEFT_LOG";

/// Seconds a fresh install's `entry --probe` may take before it counts as failed (default 120).
pub const PROBE_TIMEOUT: &str = "PEFT_PROBE_TIMEOUT";
/// The NVML library to load instead of searching for `libnvidia-ml.so.1` / `nvml.dll`.
pub const NVML_LIBRARY: &str = "PEFT_NVML_LIBRARY";
/// The `nvidia-smi` to run instead of searching PATH and the usual places.
pub const NVIDIA_SMI: &str = "PEFT_NVIDIA_SMI";
/// Root of the `/sys` tree read by detection (tests point it at fixtures).
pub const SYSFS_ROOT: &str = "PEFT_SYSFS_ROOT";
/// Root of the `/proc` tree read by detection (tests point it at fixtures).
pub const PROCFS_ROOT: &str = "PEFT_PROCFS_ROOT";
/// CUDA's own variable: which NVIDIA GPUs CUDA sees (`-1` or empty: none).
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";
/// ROCm's install prefix (default `/opt/rocm`), for its version.
pub const ROCM_PATH: &str = "ROCM_PATH";

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
