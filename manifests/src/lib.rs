//! The release manifest of PEFT Studio's backend, shared by `peft-bootstrap` and
//! `peft-release` so that both agree on every byte.
//!
//! This crate is pure: no file system, no network, no clock. Callers pass the facts
//! in (the manifest bytes, its signature, the hardware, the time) and get decisions
//! out. The modules:
//!
//! - [`model`]: serde types for schema 1 of the channel manifest;
//! - [`hardware`]: the facts about a machine that selection decides on;
//! - [`index`]: the per-file index of a bundle and the rules for safe entry paths;
//! - [`archive`]: the rules every zip entry of a bundle keeps before anything is written;
//! - [`limits`]: the bounds on every signed count and size (zip bombs, endless blobs);
//! - [`validate`](mod@validate): every structural problem of a manifest or an index, all at once;
//! - [`select`](mod@select): which release and variant this machine gets, and why;
//! - [`trust`]: minisign verification against built-in, given or announced public keys;
//! - [`memory`]: what a bootstrapper remembers of a channel (serial floor, clock floor,
//!   announced and retired keys) and how an accepted manifest changes it;
//! - [`accept`](mod@accept): whether a signed manifest is believed (both binaries use it);
//! - [`variants`]: the variant catalogue (`manifests/variants.json`) used by `pack`.

pub mod accept;
pub mod archive;
pub mod delta;
mod digest;
mod dotted;
pub mod hardware;
pub mod index;
pub mod limits;
pub mod memory;
pub mod model;
mod problem;
pub mod select;
pub mod trust;
pub mod validate;
pub mod variants;

#[cfg(test)]
mod sample;
#[cfg(test)]
mod schema_tests;

pub use accept::{Accepted, Policy, Refusal, accept};
pub use digest::{CappedWriter, CopyError, ParseDigestError, Sha256, Sha256Hasher, copy_capped};
pub use dotted::{Dotted, ParseDottedError};
pub use hardware::{Amd, AmdGpu, Cpu, Gpu, GpuSource, Nvidia, PciDevice, Visible};
pub use index::{FileEntry, FileIndex, PathProblem, check_entry_path};
pub use memory::{Announced, ChannelMemory};
pub use model::{
    Accelerator, Arch, Blob, BootstrapperBuild, CcRange, Delta, IndexRef, KeyRotation, Manifest,
    Os, Release, Requirements, SCHEMA, Variant, ZSTD_SINCE,
};
pub use select::{Choice, Hardware, Outcome, Selection, Verdict, select, select_excluding};
pub use trust::{KeyId, TrustError, TrustedKeys, Verified};
pub use validate::{Problem, validate, validate_index, validate_index_for};
pub use variants::{VariantCatalog, VariantDef};
