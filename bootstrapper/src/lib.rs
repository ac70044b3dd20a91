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

/// The archive checks and the unpacks, for the fuzz targets in `fuzz/`
/// (docs/SECURITY.md, "Fuzzing"); not an API. The modules stay private: this
/// re-exports exactly what the targets drive: `zip_entries` the checks and the
/// unpack of a downloaded archive, `zip_stream` the unpack that follows a download
/// (a `Stream` told how far the file is written through `Watch`), `zstd_stream`
/// both unpacks on zip entries compressed with zstd.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::install::{Follow, Stream, check_entries, extract};
    pub use crate::source::Watch;
}

/// The exit code of a run stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it.
pub const INTERRUPTED: u8 = 130;

/// Says what a run stopped by Ctrl-C leaves: a partial download is kept and the
/// next run resumes it; nothing else is half done (an unfinished unpack is removed
/// by the next run, the current install is unchanged).
pub fn interrupted(reporter: &dyn Reporter) {
    let message = match source::interrupted_download() {
        Some((path, have, size)) if have > 0 => format!(
            "interrupted: the partial download ({} of {}) is kept in {}; run the same command again to resume it from there",
            error::human_bytes(have),
            error::human_bytes(size),
            path.display()
        ),
        _ => "interrupted: nothing was changed; the installed backend, if any, is as it was"
            .to_string(),
    };
    reporter.warn(message);
}

/// The variable that sets the `tracing` filter for stderr (`PEFT_LOG`).
pub fn log_filter() -> String {
    env::var(env::LOG).unwrap_or_else(|| "warn".into())
}
