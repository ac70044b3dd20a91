//! What the bootstrapper tells its caller while it works.
//!
//! With `--json`, stdout carries one JSON object per line and nothing else; that is
//! the wire format Electron reads (docs/CONTRACT.md §4). Every object has an `event` field:
//!
//! | event | fields |
//! | --- | --- |
//! | `hardware` | the hardware profile (`os`, `arch`, GPUs, ...), `visible_gpus`, `machine_key`, `hints`, `tried`, `summary` |
//! | `verdict` | `version`, `variant`, `fits`, `reason`: one per variant considered |
//! | `selected` | `version`, `variant`, `reason` |
//! | `progress` | `phase` (`download`, `copy`, `verify`, `patch`, `extract`), `done`, `total` (bytes); `download` and `copy` add `resumed_from` (bytes already on disk when this run began; 0 when fresh) |
//! | `retry` | `attempt` (the one about to be made), `max_attempts`, `wait_ms`, `reason` (`unreachable`, `server_error`, `not_found`), `message`: sent before each wait between attempts |
//! | `warning` | `message` |
//! | `ready` | `version`, `variant`, `dir`, `executable`, `source` (`cache`, `network`, `offline`), `env` (variables to start the engine with, e.g. a narrowed `CUDA_VISIBLE_DEVICES`; `{}` when none) |
//! | `error` | `code`, `reason` (finer and stable, see [`crate::error::Reason`] and docs/BOOTSTRAPPER.md), `message`, `exit_code`, `hint` |
//! | `update_available` | `version`, `variant`, `bytes` to download, `from` (the delta's base, or null for the full archive) |
//! | `up_to_date` | `version`, `variant` |
//! | `staged` | `version`, `variant`, `bytes` downloaded, `from`: ready for the next `ensure` |
//! | `rolled_back` | `from`, `to` (install names) |
//! | `allowed` | `version`, `variant`: `rollback --allow` lifted the refusal of that install |
//! | `collected` | `removed` (install names and files), `freed` (bytes) |
//! | `status` | `cache_dir`, `current` (`version`, `variant`, `dir`, `previous`, or null), `installed` (each: `version`, `variant`, `dir`, `installed_at`, `files`, `bytes`, `current`), `channels` (each: `serial`, `published_at`), `cache_bytes`, `staged` (`version`, `variant`, `dir` of the install `update` staged, or null), `refused` (each: `version`, `variant`, `reason`, `allow_command`: installs `rollback` marked never to pick again) |
//! | `verified` | `version`, `variant`, `files`, `ok`, `problems` (what was found wrong), `extra` (files the index does not list; reported, never removed), `repaired` (with `--repair`: each `{path, from}`, `from` being `cache`, `offline` or `network`), `fetched` (bytes the repair took from the network) |
//! | `self_update` | `status` (`up_to_date`, `available`, `updated`, `not_offered`: with `--check`, the channel lists no build for this platform), `version`; `from` when available or updated; `path` when updated |
//!
//! Progress events are throttled to about ten a second per phase; the first and the
//! last of each phase are always sent. Without `--json`, a terminal gets indicatif
//! bars on stderr and a pipe gets one plain line per phase.
//!
//! The types are in [`wire`](self::wire) (serialize-only), the reporters in
//! `json` and `human`.

mod human;
mod json;
mod wire;

pub use human::HumanReporter;
pub use json::JsonReporter;
pub use wire::{
    ChannelSerial, Event, HardwareEvent, Phase, RepairSource, Repaired, SelfUpdateStatus, Source,
    StatusCurrent, StatusInstall, StatusRefused, StatusStaged,
};

/// Receives events; shared by reference across the work.
pub trait Reporter: Send + Sync {
    fn emit(&self, event: Event);

    fn warn(&self, message: String) {
        self.emit(Event::Warning { message });
    }

    /// Progress of a phase; `download` and `copy` say they started from byte 0.
    fn progress(&self, phase: Phase, done: u64, total: u64) {
        let resumed_from = matches!(phase, Phase::Download | Phase::Copy).then_some(0);
        self.emit(Event::Progress {
            phase,
            done,
            total,
            resumed_from,
        });
    }

    /// Progress of a download that found `resumed_from` bytes already on disk.
    fn download(&self, done: u64, total: u64, resumed_from: u64) {
        self.emit(Event::Progress {
            phase: Phase::Download,
            done,
            total,
            resumed_from: Some(resumed_from),
        });
    }
}

/// The reporter for `--json`, or for people, chosen by the flag.
pub fn reporter(json: bool) -> Box<dyn Reporter> {
    if json {
        Box::new(JsonReporter::default())
    } else {
        Box::new(HumanReporter::new())
    }
}
