//! `peft-release`: the release engineer's side of PEFT Studio's backend delivery
//! (docs/CONTRACT.md §6). Keys ([`keys`]), packing a folder into a content-addressed archive
//! and index ([`pack`]), signing a channel manifest ([`publish`]) and rotating its
//! keys ([`rotation`]), a folder for machines without internet ([`offline`]), and
//! checking a
//! whole repository the way a bootstrapper would ([`verify`](mod@verify)). The repository's
//! on-disk layout is in [`layout`]. Manifest types and checks come from
//! `peft-manifest`, the same code the bootstrapper trusts.

pub mod delta;
pub mod error;
pub mod keys;
pub mod layout;
pub mod offline;
pub mod pack;
pub mod publish;
pub mod release_config;
pub mod rotation;
pub mod verify;
pub mod zipout;

pub use error::{ReleaseError, Result};
