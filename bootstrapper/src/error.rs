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
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::Usage {
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

    /// The process exit code (docs/CONTRACT.md §4).
    pub fn exit_code(&self) -> u8 {
        match self {
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
            Error::Usage { hint, .. } | Error::Integrity { hint, .. } | Error::NoVariant { hint, .. } => hint.clone(),
            Error::Network { hint: Some(h), .. } => Some(h.clone()),
            Error::Unusable { hint, .. } => Some(hint.clone()),
            Error::Network { hint: None, .. } => Some(
                "check the internet connection or proxy settings, or install from a pre-fetched folder with --offline-dir"
                    .into(),
            ),
            Error::Storage { source, path, .. } => Some(match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => format!(
                    "make {} writable for this user, or set PEFT_CACHE_DIR to a folder you own",
                    path.display()
                ),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => format!(
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
