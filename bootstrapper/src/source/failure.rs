//! How one source failed to deliver a file, which decides what is tried next.

use crate::error::Error;

/// Why a root did not deliver: the fetcher moves on to the next root after the
/// first two kinds and stops at the third.
pub(super) enum Failure {
    /// Try again later or elsewhere; the partial file is still good.
    Network(String),
    /// The source sent wrong bytes; the partial file was discarded.
    Integrity(String),
    /// A local problem (storage, a bug) that no other source can mend.
    Fatal(Error),
}
