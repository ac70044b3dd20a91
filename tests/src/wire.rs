//! Typed mirrors of the bootstrapper's JSON-lines events (docs/CONTRACT.md §4 and the
//! table in `bootstrapper/src/report/mod.rs`), written from the documentation
//! rather than shared with the code, so that a change to the wire format that the
//! documentation does not follow fails the tests. [`crate::events`] reads every
//! line of every `--json` run the tests make through these types.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One event, by its `event` field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Hardware(Box<Hardware>),
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
        /// `download` and `copy` only: bytes on disk before this run.
        #[serde(default)]
        resumed_from: Option<u64>,
    },
    Retry {
        attempt: u32,
        max_attempts: u32,
        wait_ms: u64,
        reason: String,
        message: String,
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
        env: BTreeMap<String, String>,
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
    Allowed {
        version: String,
        variant: String,
    },
    Collected {
        removed: Vec<String>,
        freed: u64,
    },
    Status {
        cache_dir: String,
        current: Option<StatusCurrent>,
        installed: Vec<StatusInstall>,
        channels: BTreeMap<String, ChannelSerial>,
        cache_bytes: u64,
        staged: Option<StatusStaged>,
        refused: Vec<StatusRefused>,
    },
    Verified {
        version: String,
        variant: String,
        files: u64,
        ok: bool,
        problems: Vec<String>,
        extra: Vec<String>,
        repaired: Vec<Repaired>,
        fetched: u64,
    },
    SelfUpdate {
        status: SelfUpdateStatus,
        version: String,
        #[serde(default)]
        from: Option<String>,
        #[serde(default)]
        path: Option<String>,
    },
    Error {
        code: ErrorCode,
        reason: Reason,
        message: String,
        exit_code: u8,
        #[serde(default)]
        hint: Option<String>,
    },
}

/// `progress`'s phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Download,
    Verify,
    Patch,
    Extract,
    Copy,
}

/// `ready`'s sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cache,
    Network,
    Offline,
}

/// The `error` codes and their exit codes (docs/CONTRACT.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Internal,
    Usage,
    Network,
    Integrity,
    NoVariant,
    Storage,
    Busy,
}

/// The `error` event's finer reasons (docs/BOOTSTRAPPER.md, "Error reasons").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NotConfigured,
    ConfigInvalid,
    Usage,
    UnknownVariant,
    NotABundleFolder,
    Unreachable,
    NotFound,
    ServerError,
    Expired,
    Tampered,
    UntrustedKey,
    Downgrade,
    NoVariant,
    Incompatible,
    Permission,
    DiskFull,
    Storage,
    Busy,
    Internal,
}

impl Reason {
    /// The `code` the reason refines.
    pub fn code(self) -> ErrorCode {
        use Reason::*;
        match self {
            NotConfigured | ConfigInvalid | Usage | UnknownVariant | NotABundleFolder => {
                ErrorCode::Usage
            }
            Unreachable | NotFound | ServerError => ErrorCode::Network,
            Expired | Tampered | UntrustedKey | Downgrade => ErrorCode::Integrity,
            NoVariant | Incompatible => ErrorCode::NoVariant,
            Permission | DiskFull | Storage => ErrorCode::Storage,
            Busy => ErrorCode::Busy,
            Internal => ErrorCode::Internal,
        }
    }
}

impl ErrorCode {
    /// The process exit code that goes with the code.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorCode::Internal => 1,
            ErrorCode::Usage => 2,
            ErrorCode::Network => 3,
            ErrorCode::Integrity => 4,
            ErrorCode::NoVariant => 5,
            ErrorCode::Storage => 6,
            ErrorCode::Busy => 7,
        }
    }
}

/// The `hardware` event: the machine profile selection decides on, and more.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hardware {
    #[serde(flatten)]
    pub profile: peft_manifest::Hardware,
    pub visible_gpus: Vec<u32>,
    pub machine_key: String,
    pub hints: Vec<String>,
    pub tried: Vec<String>,
    pub summary: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusCurrent {
    pub version: String,
    pub variant: String,
    pub dir: String,
    pub previous: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusInstall {
    pub version: String,
    pub variant: String,
    pub dir: String,
    pub installed_at: String,
    pub files: u64,
    pub bytes: u64,
    pub current: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusStaged {
    pub version: String,
    pub variant: String,
    pub dir: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusRefused {
    pub version: String,
    pub variant: String,
    pub reason: String,
    pub allow_command: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChannelSerial {
    pub serial: u64,
    pub published_at: String,
}

/// One file `verify --repair` rewrote, and where its bytes came from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Repaired {
    pub path: String,
    pub from: RepairSource,
}

/// `verified`'s repair sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairSource {
    Cache,
    Offline,
    Network,
}

/// `self_update`'s outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfUpdateStatus {
    UpToDate,
    Available,
    Updated,
    NotOffered,
}

/// Reads one stdout line as a typed event; panics naming the line if it is not one.
pub fn parse(line: &str) -> Event {
    let e: Event = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("stdout line is not a documented event ({e}): {line:?}"));
    if let Event::Error {
        code,
        reason,
        exit_code,
        ..
    } = &e
    {
        assert_eq!(
            reason.code(),
            *code,
            "the error reason and code disagree: {line}"
        );
        assert_eq!(
            code.exit_code(),
            *exit_code,
            "the error code and exit code disagree: {line}"
        );
    }
    if let Event::Progress {
        phase,
        resumed_from,
        ..
    } = &e
    {
        assert_eq!(
            resumed_from.is_some(),
            matches!(phase, Phase::Download | Phase::Copy),
            "resumed_from is sent with download and copy progress only: {line}"
        );
    }
    e
}
