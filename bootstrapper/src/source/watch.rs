//! Telling a reader how far a download's `.partial` file has grown.

/// Told how far a download's `.partial` file has grown, so that a reader can follow
/// it while it is written (the unpack that streams; `install/stream.rs`).
pub trait Watch: Sync {
    /// A new attempt starts on the partial file, which holds `len` good bytes now;
    /// what was reported before this call no longer holds.
    fn attempt(&self, len: u64);
    /// The partial file holds `len` bytes of this attempt, readable by others.
    fn grew(&self, len: u64);
}

/// Watches nothing.
#[derive(Debug)]
pub struct NoWatch;

impl Watch for NoWatch {
    fn attempt(&self, _: u64) {}
    fn grew(&self, _: u64) {}
}
