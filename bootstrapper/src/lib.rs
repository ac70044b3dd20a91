//! `peft-bootstrap`: detects the hardware, fetches the matching signed PEFT Studio
//! backend, verifies it, installs it atomically into its cache and hands its path
//! to the UI (CONTRACT §4–5).
//!
//! The decisions live in the pure `peft-manifest` crate; this crate is the I/O around
//! them: [`cli`] (flags), [`settings`] (flags and environment checked), [`detect`]
//! (hardware probes), [`fetch`] (HTTP and local sources, resume, retries),
//! [`repo`] (manifest acceptance), [`extract`] (zip checks), [`install`] (the
//! transaction), [`cache`] (layout, lock, atomic files), [`events`] (JSON lines and
//! progress bars), [`error`] (exit codes and hints), [`offline`] (offline folders:
//! discovery, what they hold), [`self_update`](mod@self_update) (replacing this binary).

pub mod cache;
pub mod cli;
pub mod commands;
pub mod detect;
pub mod env;
pub mod error;
pub mod events;
pub mod extract;
pub mod fetch;
pub mod install;
pub mod offline;
pub mod probe;
pub mod repo;
pub mod self_update;
pub mod settings;
pub mod update;

pub use error::{Error, Result};
