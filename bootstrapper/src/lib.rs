//! `peft-bootstrap`: detects the hardware, fetches the matching signed PEFT Studio
//! backend, verifies it, installs it atomically into its cache and hands its path
//! to the UI (docs/CONTRACT.md §4–5).
//!
//! The decisions live in the pure `peft-manifest` crate; this crate is the I/O around
//! them, in layers that import only downward (docs/BOOTSTRAPPER.md has the table):
//!
//! | floor | modules |
//! | --- | --- |
//! | commands | `commands` (one file per subcommand, the `Session`, the shared selection step) |
//! | actions | `install` (transaction, extraction, delta, probe), `self_update` |
//! | sources | `source` (roots, HTTP and local downloads, manifest acceptance, offline folders), `detect` |
//! | state | `cache` (layout, lock, atomic files, bad variants, gc), `report` (events, reporters) |
//! | ground | `cli`, `env`, `error`, `failpoint`, `process`, `version` |

mod cache;
mod cli;
mod commands;
mod detect;
mod env;
mod error;
mod failpoint;
mod install;
mod process;
mod report;
mod self_update;
mod source;
mod version;

pub use cli::{Cli, Command};
pub use commands::{Next, Session, Settings, default_cache_dir, run};
pub use error::{Error, Reason, Result};
pub use report::{Event, Reporter, reporter};
pub use self_update::reexec;
pub use version::VERSION;

/// The archive checks and the unpacks, for the fuzz targets in `manifests/fuzz/`
/// (docs/SECURITY.md, "Fuzzing"); not an API. The modules stay private: this
/// re-exports exactly what the targets drive: `zip_entries` the checks and the
/// unpack of a downloaded archive, `zip_stream` the unpack that follows a download
/// (a `Stream` told how far the file is written through `Watch`).
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::install::{Follow, Stream, check_entries, extract};
    pub use crate::source::Watch;
}

/// The variable that sets the `tracing` filter for stderr (`PEFT_LOG`).
pub fn log_filter() -> String {
    env::var(env::LOG).unwrap_or_else(|| "warn".into())
}
