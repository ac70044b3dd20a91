//! The wire types of the JSON-lines protocol (the table in [`super`]): serialize
//! only, one envelope (`event`) for all.

use std::collections::BTreeMap;

use serde::Serialize;

/// One event of the JSON-lines protocol.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Hardware(Box<HardwareEvent>),
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
        /// `download` and `copy`: the bytes already on disk when this run started
        /// on the file (0 when fresh); speed and time left count only `done -
        /// resumed_from`. Absent for the other phases.
        #[serde(skip_serializing_if = "Option::is_none")]
        resumed_from: Option<u64>,
    },
    /// A network fetch failed and is tried again after `wait_ms`; sent before the wait.
    Retry {
        /// The attempt about to be made (2 for the first retry).
        attempt: u32,
        max_attempts: u32,
        wait_ms: u64,
        /// Why, in the words of the `error` event's `reason` (`unreachable`,
        /// `server_error`, ...).
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
    /// `rollback --allow`: an install rolled back before may be chosen again.
    Allowed {
        version: String,
        variant: String,
    },
    Collected {
        removed: Vec<String>,
        freed: u64,
    },
    /// `status`: what the cache holds.
    Status {
        cache_dir: String,
        current: Option<StatusCurrent>,
        installed: Vec<StatusInstall>,
        channels: BTreeMap<String, ChannelSerial>,
        cache_bytes: u64,
        /// The install `update` staged for the next `ensure`, if any.
        staged: Option<StatusStaged>,
        /// Installs `rollback` marked never to be chosen again, and how to allow one.
        refused: Vec<StatusRefused>,
    },
    /// `verify`: the current install re-hashed against its index; with `--repair`,
    /// what was mended and from where.
    Verified {
        version: String,
        variant: String,
        files: usize,
        /// The install matches its index (after the repair, with `--repair`).
        ok: bool,
        /// Every file found damaged, missing or of the wrong mode (before a repair).
        problems: Vec<String>,
        /// Files on disk that the index does not list: reported, never removed.
        extra: Vec<String>,
        /// With `--repair`: each file rewritten, and where its bytes came from.
        repaired: Vec<Repaired>,
        /// Bytes the repair fetched from the network (0 when none).
        fetched: u64,
    },
    /// `self-update`: what it found or did.
    SelfUpdate {
        status: SelfUpdateStatus,
        version: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    Error {
        code: String,
        /// The finer, stable reason ([`crate::error::Reason`]).
        reason: String,
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
    /// Copying an archive from an offline folder (or a `file://` repository).
    Copy,
}

/// Where a ready backend came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cache,
    Network,
    Offline,
}

/// The `hardware` event's body: the profile selection decides on, and what a
/// person or a bug report needs besides.
#[derive(Debug, Clone, Serialize)]
pub struct HardwareEvent {
    #[serde(flatten)]
    pub profile: peft_manifest::Hardware,
    /// Indexes of the GPUs `CUDA_VISIBLE_DEVICES` leaves visible.
    pub visible_gpus: Vec<u32>,
    pub machine_key: String,
    pub hints: Vec<String>,
    /// What each probe said.
    pub tried: Vec<String>,
    /// The human lines (one for the machine, one for the driver, one per GPU).
    pub summary: Vec<String>,
}

/// `status`'s current install.
#[derive(Debug, Clone, Serialize)]
pub struct StatusCurrent {
    pub version: String,
    pub variant: String,
    pub dir: String,
    pub previous: Option<String>,
}

/// One install in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusInstall {
    pub version: String,
    pub variant: String,
    pub dir: String,
    pub installed_at: String,
    pub files: usize,
    pub bytes: u64,
    pub current: bool,
}

/// The install staged for the next `ensure`, in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusStaged {
    pub version: String,
    pub variant: String,
    pub dir: String,
}

/// An install rolled back on this machine, in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRefused {
    pub version: String,
    pub variant: String,
    /// Why it was rolled back (`rollback --reason`).
    pub reason: String,
    /// The command that allows it again.
    pub allow_command: String,
}

/// The highest serial accepted from a channel, in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelSerial {
    pub serial: u64,
    pub published_at: String,
}

/// One file `verify --repair` rewrote.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub path: String,
    pub from: RepairSource,
}

/// Where a repaired file's bytes came from, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairSource {
    /// Another installed file with the same SHA-256, or a complete archive in `downloads/`.
    Cache,
    /// The offline folder (or a `file://` repository): entries read from its archive.
    Offline,
    /// The repository over HTTP: ranges of the archive, or the whole archive when the
    /// server ignores `Range`.
    Network,
}

/// What `self-update` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfUpdateStatus {
    UpToDate,
    Available,
    Updated,
    /// `--check`: the channel lists no build of peft-bootstrap for this platform.
    NotOffered,
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
            done: 3,
            total: 4,
            resumed_from: Some(2),
        })
        .expect("json");
        assert_eq!(
            p,
            serde_json::json!({"event":"progress","phase":"download","done":3,"total":4,"resumed_from":2})
        );
        let p = serde_json::to_value(Event::Progress {
            phase: Phase::Extract,
            done: 1,
            total: 2,
            resumed_from: None,
        })
        .expect("json");
        assert_eq!(
            p,
            serde_json::json!({"event":"progress","phase":"extract","done":1,"total":2})
        );
        let r = serde_json::to_value(Event::Retry {
            attempt: 2,
            max_attempts: 5,
            wait_ms: 1500,
            reason: "unreachable".into(),
            message: "connection refused".into(),
        })
        .expect("json");
        assert_eq!(
            r,
            serde_json::json!({"event":"retry","attempt":2,"max_attempts":5,"wait_ms":1500,"reason":"unreachable","message":"connection refused"})
        );
        let profile =
            peft_manifest::Hardware::new(peft_manifest::Os::Linux, peft_manifest::Arch::X86_64);
        let h = serde_json::to_value(Event::Hardware(Box::new(HardwareEvent {
            machine_key: profile.machine_key(),
            profile,
            visible_gpus: vec![],
            hints: vec!["h".into()],
            tried: vec![],
            summary: vec![],
        })))
        .expect("json");
        assert_eq!(h["event"], "hardware");
        assert_eq!(h["os"], "linux");
        assert_eq!(h["arch"], "x86_64");
        assert_eq!(h["hints"], serde_json::json!(["h"]));
        let s = serde_json::to_value(Event::SelfUpdate {
            status: SelfUpdateStatus::UpToDate,
            version: "1.0.0".into(),
            from: None,
            path: None,
        })
        .expect("json");
        assert_eq!(
            s,
            serde_json::json!({"event":"self_update","status":"up_to_date","version":"1.0.0"})
        );
    }
}
