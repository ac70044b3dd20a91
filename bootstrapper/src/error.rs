//! The bootstrapper's errors, each with its docs/CONTRACT.md §4 exit code, a stable `code`
//! string for the JSON `error` event, and a hint a person can act on.

use std::io;
use std::path::{Path, PathBuf};

/// Result with the bootstrapper's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag or setting (exit 2).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// No source answered (exit 3); `hint` when the cause is known (a refused
    /// certificate, a proxy), else the general one.
    #[error("could not download {url}: {detail}")]
    Network {
        url: String,
        detail: String,
        hint: Option<String>,
    },
    /// A signature, hash, size, serial or expiry check failed (exit 4).
    #[error("{message}")]
    Integrity {
        message: String,
        hint: Option<String>,
    },
    /// No variant of any compatible release fits (exit 5).
    #[error("{message}")]
    NoVariant {
        message: String,
        hint: Option<String>,
    },
    /// The cache cannot be written or read (exit 6).
    #[error("{action} {}: {source}", path.display())]
    Storage {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The cache holds something this build will not write through or repair, e.g.
    /// a symbolic link where it keeps a folder (exit 6).
    #[error("{message}")]
    Unusable { message: String, hint: String },
    /// Not enough free space (exit 6).
    #[error("not enough free space in {}: {needed} bytes are needed, {available} are free", path.display())]
    DiskFull {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    /// Another instance holds the lock (exit 7).
    #[error("another peft-bootstrap{} is using the cache {} and did not finish within {waited_s} s", owner.as_deref().map(|o| format!(" ({o})")).unwrap_or_default(), path.display())]
    Busy {
        path: PathBuf,
        waited_s: u64,
        owner: Option<String>,
    },
    /// A bug (exit 1).
    #[error("internal error: {0}")]
    Internal(String),
    /// A failure whose finer [`Reason`] is known where it is made (a missing
    /// repository, an invalid `release.json`, an expired manifest, ...); its `code`
    /// and exit code follow from the reason.
    #[error("{message}")]
    Reasoned {
        reason: Reason,
        message: String,
        hint: Option<String>,
    },
}

/// The stable, finer `reason` of an `error` event (and of a `retry` event), beside
/// its `code` and `exit_code`. Consumers fall back to `code` for one they do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No repository named anywhere (no flag, variable, `release.json`, offline folder).
    NotConfigured,
    /// `release.json` is present but unreadable or invalid.
    ConfigInvalid,
    /// Any other bad flag or setting.
    Usage,
    /// `--variant` names an id no release of the channel offers.
    UnknownVariant,
    /// The offline folder holds no `peft-backend-bundles/` or repository within two levels.
    NotABundleFolder,
    /// Connection refused, DNS, timeout (after the retries).
    Unreachable,
    /// The server answered 404 or 410 (or a repository folder lacks the file).
    NotFound,
    /// Another HTTP status (5xx, 403, ...) after the retries.
    ServerError,
    /// The manifest is past its `expires_at`.
    Expired,
    /// A bad signature, hash or size.
    Tampered,
    /// Signed by a key that is not trusted.
    UntrustedKey,
    /// A serial lower than one already accepted (a rollback attack).
    Downgrade,
    /// No variant of any compatible release fits this machine.
    NoVariant,
    /// Releases exist but none admits this UI version, or this bootstrapper is too old.
    Incompatible,
    /// Permission denied on the cache or download folder.
    Permission,
    /// No space left.
    DiskFull,
    /// Another local storage failure.
    Storage,
    /// Another instance holds the lock.
    Busy,
    /// A bug.
    Internal,
}

impl Reason {
    /// Every reason, in the order of the table in docs/BOOTSTRAPPER.md.
    pub const ALL: [Reason; 19] = [
        Reason::NotConfigured,
        Reason::ConfigInvalid,
        Reason::Usage,
        Reason::UnknownVariant,
        Reason::NotABundleFolder,
        Reason::Unreachable,
        Reason::NotFound,
        Reason::ServerError,
        Reason::Expired,
        Reason::Tampered,
        Reason::UntrustedKey,
        Reason::Downgrade,
        Reason::NoVariant,
        Reason::Incompatible,
        Reason::Permission,
        Reason::DiskFull,
        Reason::Storage,
        Reason::Busy,
        Reason::Internal,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotConfigured => "not_configured",
            Reason::ConfigInvalid => "config_invalid",
            Reason::Usage => "usage",
            Reason::UnknownVariant => "unknown_variant",
            Reason::NotABundleFolder => "not_a_bundle_folder",
            Reason::Unreachable => "unreachable",
            Reason::NotFound => "not_found",
            Reason::ServerError => "server_error",
            Reason::Expired => "expired",
            Reason::Tampered => "tampered",
            Reason::UntrustedKey => "untrusted_key",
            Reason::Downgrade => "downgrade",
            Reason::NoVariant => "no_variant",
            Reason::Incompatible => "incompatible",
            Reason::Permission => "permission",
            Reason::DiskFull => "disk_full",
            Reason::Storage => "storage",
            Reason::Busy => "busy",
            Reason::Internal => "internal",
        }
    }

    /// The `code` this reason refines.
    pub fn code(self) -> &'static str {
        match self {
            Reason::NotConfigured
            | Reason::ConfigInvalid
            | Reason::Usage
            | Reason::UnknownVariant
            | Reason::NotABundleFolder => "usage",
            Reason::Unreachable | Reason::NotFound | Reason::ServerError => "network",
            Reason::Expired | Reason::Tampered | Reason::UntrustedKey | Reason::Downgrade => {
                "integrity"
            }
            Reason::NoVariant | Reason::Incompatible => "no_variant",
            Reason::Permission | Reason::DiskFull | Reason::Storage => "storage",
            Reason::Busy => "busy",
            Reason::Internal => "internal",
        }
    }

    /// The process exit code (docs/CONTRACT.md §4).
    pub fn exit_code(self) -> u8 {
        match self.code() {
            "usage" => 2,
            "network" => 3,
            "integrity" => 4,
            "no_variant" => 5,
            "storage" => 6,
            "busy" => 7,
            _ => 1,
        }
    }

    /// What an I/O error on the cache means.
    pub fn of_io(e: &io::Error) -> Reason {
        match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                Reason::Permission
            }
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Reason::DiskFull,
            _ => Reason::Storage,
        }
    }

    /// What a network failure's text says: a 404 or 410 (or a missing file in a
    /// repository folder) is `not_found`, another HTTP status `server_error`, the
    /// rest (refused, DNS, timeouts, TLS) `unreachable`. When several sources
    /// failed, a server that answered wins over one that could not be reached.
    pub fn of_network(detail: &str) -> Reason {
        let statuses: Vec<u16> = detail
            .match_indices("HTTP ")
            .filter_map(|(i, m)| {
                let rest = &detail[i + m.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                (digits.len() == 3).then(|| digits.parse().ok()).flatten()
            })
            .collect();
        let missing_file =
            detail.contains("No such file or directory") || detail.contains("cannot find the file");
        if statuses.iter().any(|s| matches!(s, 404 | 410)) || missing_file {
            Reason::NotFound
        } else if !statuses.is_empty() {
            Reason::ServerError
        } else {
            Reason::Unreachable
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// An error whose [`Reason`] is known where it is made.
    pub fn reasoned(
        reason: Reason,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) -> Self {
        Error::Reasoned {
            reason,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn integrity(message: impl Into<String>) -> Self {
        Error::Integrity {
            message: message.into(),
            hint: None,
        }
    }

    pub fn integrity_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Integrity {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The cache holds something it will not write through (exit 6).
    pub fn unusable(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Unusable {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// An I/O failure on `path` while doing `action` ("writing", "reading", ...).
    pub fn storage(action: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Storage {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The stable, finer reason of the `error` event.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Internal(_) => Reason::Internal,
            Error::Usage { .. } => Reason::Usage,
            Error::Network { detail, .. } => Reason::of_network(detail),
            Error::Integrity { .. } => Reason::Tampered,
            Error::NoVariant { .. } => Reason::NoVariant,
            Error::Storage { source, .. } => Reason::of_io(source),
            Error::Unusable { .. } => Reason::Storage,
            Error::DiskFull { .. } => Reason::DiskFull,
            Error::Busy { .. } => Reason::Busy,
            Error::Reasoned { reason, .. } => *reason,
        }
    }

    /// The process exit code (docs/CONTRACT.md §4).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Reasoned { reason, .. } => reason.exit_code(),
            Error::Internal(_) => 1,
            Error::Usage { .. } => 2,
            Error::Network { .. } => 3,
            Error::Integrity { .. } => 4,
            Error::NoVariant { .. } => 5,
            Error::Storage { .. } | Error::Unusable { .. } | Error::DiskFull { .. } => 6,
            Error::Busy { .. } => 7,
        }
    }

    /// The stable `code` of the JSON `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Reasoned { reason, .. } => reason.code(),
            Error::Internal(_) => "internal",
            Error::Usage { .. } => "usage",
            Error::Network { .. } => "network",
            Error::Integrity { .. } => "integrity",
            Error::NoVariant { .. } => "no_variant",
            Error::Storage { .. } | Error::Unusable { .. } | Error::DiskFull { .. } => "storage",
            Error::Busy { .. } => "busy",
        }
    }

    /// What a person can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. }
            | Error::Integrity { hint, .. }
            | Error::NoVariant { hint, .. }
            | Error::Reasoned { hint, .. } => hint.clone(),
            Error::Network { hint: Some(h), .. } => Some(h.clone()),
            Error::Unusable { hint, .. } => Some(hint.clone()),
            Error::Network { hint: None, detail, .. } => Some(match Reason::of_network(detail) {
                Reason::NotFound => "the repository does not have this file: check that the manifest URL names the right repository and channel (--manifest-url, PEFT_MANIFEST_URL or release.json), or ask its publisher whether the release was removed".into(),
                Reason::ServerError => "the server answered with an error: try again later, or ask the repository's publisher".into(),
                _ => "check the internet connection or proxy settings, or install from a pre-fetched folder with --offline-dir".into(),
            }),
            Error::Storage { source, path, .. } => Some(match Reason::of_io(source) {
                Reason::Permission => format!(
                    "make {} writable for this user, or set PEFT_CACHE_DIR to a folder you own",
                    path.display()
                ),
                Reason::DiskFull => format!(
                    "free space on the disk holding {} and run the command again (what was downloaded is kept and resumed), or set PEFT_CACHE_DIR to a larger disk",
                    path.display()
                ),
                _ => "check the disk and try again; the previously installed backend is unchanged".into(),
            }),
            Error::DiskFull { needed, available, path } => Some(format!(
                "free {} on the disk holding {}, or set PEFT_CACHE_DIR to a larger disk",
                human_bytes(needed.saturating_sub(*available)),
                path.display()
            )),
            Error::Busy { .. } => Some(
                "wait for the other instance to finish (PEFT_LOCK_TIMEOUT sets how long to wait)".into(),
            ),
            Error::Internal(_) => Some("please report this bug with the log".into()),
        }
    }
}

/// `1.2 GB`, `340 MB`, `12 kB`, `17 B`, in SI units like download dialogs.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let p = PathBuf::from("/x");
        let cases: Vec<(Error, u8, &str)> = vec![
            (Error::Internal("x".into()), 1, "internal"),
            (Error::usage("x", None), 2, "usage"),
            (
                Error::Network {
                    url: "u".into(),
                    detail: "d".into(),
                    hint: None,
                },
                3,
                "network",
            ),
            (Error::integrity("x"), 4, "integrity"),
            (
                Error::NoVariant {
                    message: "x".into(),
                    hint: None,
                },
                5,
                "no_variant",
            ),
            (
                Error::storage("writing", &p, io::Error::from(io::ErrorKind::StorageFull)),
                6,
                "storage",
            ),
            (Error::unusable("x", "y"), 6, "storage"),
            (
                Error::DiskFull {
                    path: p.clone(),
                    needed: 10,
                    available: 1,
                },
                6,
                "storage",
            ),
            (
                Error::Busy {
                    path: p,
                    waited_s: 1,
                    owner: None,
                },
                7,
                "busy",
            ),
        ];
        for (e, code, name) in cases {
            assert_eq!((e.exit_code(), e.code()), (code, name), "{e}");
        }
    }

    #[test]
    fn every_reason_refines_its_code_and_exit() {
        let table = [
            ("not_configured", "usage", 2),
            ("config_invalid", "usage", 2),
            ("usage", "usage", 2),
            ("unknown_variant", "usage", 2),
            ("not_a_bundle_folder", "usage", 2),
            ("unreachable", "network", 3),
            ("not_found", "network", 3),
            ("server_error", "network", 3),
            ("expired", "integrity", 4),
            ("tampered", "integrity", 4),
            ("untrusted_key", "integrity", 4),
            ("downgrade", "integrity", 4),
            ("no_variant", "no_variant", 5),
            ("incompatible", "no_variant", 5),
            ("permission", "storage", 6),
            ("disk_full", "storage", 6),
            ("storage", "storage", 6),
            ("busy", "busy", 7),
            ("internal", "internal", 1),
        ];
        assert_eq!(Reason::ALL.len(), table.len());
        for (r, (name, code, exit)) in Reason::ALL.iter().zip(table) {
            assert_eq!((r.as_str(), r.code(), r.exit_code()), (name, code, exit));
            assert_eq!(
                serde_json::to_value(r).expect("json"),
                serde_json::json!(name)
            );
            let e = Error::reasoned(*r, "m", None);
            assert_eq!((e.reason(), e.code(), e.exit_code()), (*r, code, exit));
        }
    }

    #[test]
    fn network_failures_are_told_apart() {
        let net = |d: &str| Error::Network {
            url: "u".into(),
            detail: d.into(),
            hint: None,
        };
        for (detail, want) in [
            ("http://h/x: HTTP 404 Not Found", Reason::NotFound),
            ("HTTP 410 Gone", Reason::NotFound),
            ("No such file or directory (os error 2)", Reason::NotFound),
            (
                "gave up after 5 failed attempts: HTTP 503 Service Unavailable",
                Reason::ServerError,
            ),
            ("HTTP 403 Forbidden", Reason::ServerError),
            (
                "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
                Reason::Unreachable,
            ),
            (
                "a: connection refused; b: HTTP 404 Not Found",
                Reason::NotFound,
            ),
        ] {
            let e = net(detail);
            assert_eq!(e.reason(), want, "{detail}");
            assert_eq!(e.exit_code(), 3);
        }
        let h = net("HTTP 404 Not Found").hint().unwrap_or_default();
        assert!(!h.contains("internet"), "{h}");
        let h = net("connection refused").hint().unwrap_or_default();
        assert!(h.contains("internet"), "{h}");
    }

    #[test]
    fn storage_reasons_follow_the_io_error() {
        let p = Path::new("/c");
        let kind = |k| Error::storage("writing", p, io::Error::from(k)).reason();
        assert_eq!(kind(io::ErrorKind::PermissionDenied), Reason::Permission);
        assert_eq!(kind(io::ErrorKind::ReadOnlyFilesystem), Reason::Permission);
        assert_eq!(kind(io::ErrorKind::StorageFull), Reason::DiskFull);
        assert_eq!(kind(io::ErrorKind::InvalidData), Reason::Storage);
        let enospc = Error::storage("writing", p, io::Error::from_raw_os_error(28));
        if cfg!(unix) {
            assert_eq!(enospc.reason(), Reason::DiskFull);
        }
    }

    #[test]
    fn storage_hints_name_the_way_out() {
        let e = Error::storage(
            "writing",
            Path::new("/c"),
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(e.hint().unwrap_or_default().contains("PEFT_CACHE_DIR"));
        let e = Error::DiskFull {
            path: "/c".into(),
            needed: 3_000_000_000,
            available: 1_000_000_000,
        };
        assert!(
            e.hint().unwrap_or_default().contains("2.0 GB"),
            "{:?}",
            e.hint()
        );
    }

    #[test]
    fn human_bytes_rounds_like_a_download_dialog() {
        assert_eq!(human_bytes(17), "17 B");
        assert_eq!(human_bytes(1_900_000_000), "1.9 GB");
        assert_eq!(human_bytes(48_000_000), "48.0 MB");
    }
}
