//! Decoding one delta entry into a new file, in memory bounded by the container's
//! limits (`peft_manifest::delta::container`) whatever the file's size: a `whole`
//! frame decodes with a window of at most 16 MiB, a `zstd_patch` frame by frame with
//! only that frame's base window read (at most 24 MiB, one buffer reused), a `bsdiff`
//! patch only between files of at most 32 MiB. Every file goes through one
//! [`CappedWriter`]: hashed once as it is written, never past its signed size.

use fs_err::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use peft_manifest::delta::container::{PATCH_WINDOW_LOG, WHOLE_WINDOW_LOG};
use peft_manifest::delta::{DeltaEntry, DeltaKind};
use peft_manifest::{CappedWriter, CopyError, FileEntry};

use super::executable;
use super::extract::set_mode;
use crate::error::{Error, Result};

/// The error of a delta that cannot produce what it promises.
pub(super) fn bad_delta(why: impl std::fmt::Display) -> Error {
    Error::integrity(format!("the delta is unusable: {why}"))
}

/// Reads payloads out of one delta blob; its buffers are reused from file to file.
#[derive(Debug)]
pub(super) struct Patcher<'a> {
    delta: File,
    /// Where the payloads start in `delta`.
    start: u64,
    base_dir: &'a Path,
    reference: Vec<u8>,
    buf: Vec<u8>,
}

impl<'a> Patcher<'a> {
    pub fn new(delta: File, start: u64, base_dir: &'a Path) -> Self {
        Patcher {
            delta,
            start,
            base_dir,
            reference: Vec::new(),
            buf: vec![0u8; 1 << 20],
        }
    }

    /// Writes the file `t` at `dest` from entry `e` (already checked against the
    /// container's bounds by `actions`), checks it against the signed index, gives
    /// it its mode and returns it, open, to be synced.
    pub fn write(&mut self, e: &DeltaEntry, t: &FileEntry, dest: &Path) -> Result<File> {
        let file = File::create(dest).map_err(|err| Error::storage("creating", dest, err))?;
        let mut out = CappedWriter::new(file, t.size);
        let at = self.start + e.offset;
        let base = e.base.as_deref().map(|b| executable(self.base_dir, b));
        match (e.kind, base) {
            (DeltaKind::Whole, _) => {
                let payload = payload(&mut self.delta, at, e.len)?;
                let mut dec =
                    zstd::stream::read::Decoder::with_buffer(payload).map_err(bad_delta)?;
                dec.window_log_max(WHOLE_WINDOW_LOG).map_err(bad_delta)?;
                out.pump(&mut dec, &mut self.buf, |_| {})
                    .map_err(|err| copy_failed(err, dest))?;
            }
            (DeltaKind::ZstdPatch, Some(base)) => {
                let mut from =
                    File::open(&base).map_err(|err| Error::storage("reading", &base, err))?;
                let mut offset = at;
                for f in &e.frames {
                    self.reference.resize(f.reference_len as usize, 0);
                    from.seek(SeekFrom::Start(f.reference_start))
                        .and_then(|_| from.read_exact(&mut self.reference))
                        .map_err(|err| Error::storage("reading", &base, err))?;
                    let payload = payload(&mut self.delta, offset, f.len)?;
                    let mut dec =
                        zstd::stream::read::Decoder::with_ref_prefix(payload, &self.reference)
                            .map_err(bad_delta)?;
                    dec.window_log_max(PATCH_WINDOW_LOG).map_err(bad_delta)?;
                    let n = out
                        .pump(&mut dec.take(f.out + 1), &mut self.buf, |_| {})
                        .map_err(|err| copy_failed(err, dest))?;
                    if n != f.out {
                        return Err(bad_delta(format!(
                            "a frame of {} decodes to {n} bytes, not {}",
                            t.path, f.out
                        )));
                    }
                    offset += f.len;
                }
            }
            (DeltaKind::Bsdiff, Some(base)) => {
                let reference =
                    fs_err::read(&base).map_err(|err| Error::storage("reading", &base, err))?;
                let mut patch = Vec::new();
                payload(&mut self.delta, at, e.len)?
                    .read_to_end(&mut patch)
                    .map_err(bad_delta)?;
                qbsdiff::Bspatch::new(&patch)
                    .map_err(bad_delta)?
                    .apply(&reference, &mut out)
                    .map_err(bad_delta)?;
            }
            (_, None) => return Err(bad_delta(format!("{} is a patch without a base", t.path))),
        }
        let (got, written, file) = out.finish();
        if written != t.size || got != t.sha256 {
            return Err(bad_delta(format!(
                "{} came out as {written} bytes with SHA-256 {got}; the index says {} and {}",
                t.path, t.size, t.sha256
            )));
        }
        set_mode(&file, t.mode).map_err(|err| Error::storage("setting the mode of", dest, err))?;
        Ok(file)
    }
}

/// The `len` payload bytes at `at` (from the start of the blob).
fn payload(delta: &mut File, at: u64, len: u64) -> Result<BufReader<std::io::Take<&mut File>>> {
    delta.seek(SeekFrom::Start(at)).map_err(bad_delta)?;
    Ok(BufReader::new(delta.take(len)))
}

/// A failed copy: the delta's fault when reading or overrunning, the disk's when writing.
fn copy_failed(err: CopyError, dest: &Path) -> Error {
    match err {
        CopyError::Write(e) => Error::storage("writing", dest, e),
        other => bad_delta(other),
    }
}
