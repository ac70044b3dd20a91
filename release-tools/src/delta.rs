//! Making deltas between two builds of a variant (the container format and the
//! rules are in `peft_manifest::delta`).
//!
//! For every target file the base lacks by content: the zstd-compressed whole file,
//! or, when the base has a file at the same path, a zstd patch (frames of the target,
//! each compressed against the window of the base file that
//! `peft_manifest::delta::patch_frames` names, with long-distance matching) or a
//! bsdiff patch; whichever is smallest. Files over [`PATCH_LIMIT`] are sent whole
//! (pack holds a base and a target file in memory).

use fs_err::File;
use std::collections::HashMap;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use peft_manifest::delta::container::{BSDIFF_LIMIT, WHOLE_WINDOW_LOG};
use peft_manifest::delta::{
    DeltaEntry, DeltaHeader, DeltaKind, Frame, needs, patch_frames, write_header,
};
use peft_manifest::{Blob, FileIndex};

use crate::error::{ReleaseError, Result};
use crate::layout::Repo;

/// The largest base or target file patched; larger ones are sent whole.
pub const PATCH_LIMIT: u64 = (1 << 31) - (64 << 20);
/// Files up to this size get the strongest level; larger ones a faster one (the
/// long-distance matcher finds what they share with their base either way).
const STRONG_LIMIT: u64 = 16 << 20;

/// The zstd level for a file of `size` bytes.
pub fn level_for(size: u64) -> i32 {
    if size <= STRONG_LIMIT { 19 } else { 9 }
}

/// The window log that lets a patch reach back over the whole reference.
pub fn window_log(reference: u64, target: u64) -> u32 {
    let span = (reference + target).max(1);
    (64 - (span - 1).leading_zeros()).clamp(20, 31)
}

/// `target` compressed alone.
pub fn compress_whole(target: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), level_for(target.len() as u64))?;
    enc.long_distance_matching(true)?;
    enc.window_log(window_log(0, target.len() as u64).min(WHOLE_WINDOW_LOG))?;
    enc.include_checksum(true)?;
    enc.write_all(target)?;
    enc.finish()
}

/// `target` as the frames `patch_frames` places, each compressed against its window
/// of `reference`: the frames (with their lengths) and the payload.
pub fn compress_framed(reference: &[u8], target: &[u8]) -> std::io::Result<(Vec<Frame>, Vec<u8>)> {
    let mut payload = Vec::new();
    let mut at = 0usize;
    let mut frames = patch_frames(reference.len() as u64, target.len() as u64);
    for f in &mut frames {
        let start = f.reference_start as usize;
        let window = &reference[start..start + f.reference_len as usize];
        let piece = compress_patch(window, &target[at..at + f.out as usize])?;
        f.len = piece.len() as u64;
        payload.extend_from_slice(&piece);
        at += f.out as usize;
    }
    Ok((frames, payload))
}

/// `target` compressed against `reference` (zstd patch-from), as one frame.
pub fn compress_patch(reference: &[u8], target: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::stream::Encoder::with_ref_prefix(
        Vec::new(),
        level_for(target.len() as u64),
        reference,
    )?;
    enc.long_distance_matching(true)?;
    enc.window_log(window_log(reference.len() as u64, target.len() as u64))?;
    enc.include_checksum(true)?;
    enc.write_all(target)?;
    enc.finish()
}

/// A BSDIFF40 patch (bzip2 level 9) turning `reference` into `target`.
pub fn compress_bsdiff(reference: &[u8], target: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(reference, target)
        .compression_level(9)
        .compare(std::io::Cursor::new(&mut patch))?;
    Ok(patch)
}

/// What `pack` knows about a base release of the same variant.
#[derive(Debug)]
pub struct Base<'a> {
    pub index: &'a FileIndex,
    pub archive: PathBuf,
}

/// Writes the delta from `base` to `target` into the repository and returns its blob.
/// `files` maps each target path to the file to read it from.
pub fn make(
    repo: &Repo,
    base: &Base<'_>,
    target: &FileIndex,
    files: &HashMap<String, PathBuf>,
) -> Result<Blob> {
    let zerr = |e: zip::result::ZipError| {
        ReleaseError::io("reading", &base.archive, std::io::Error::other(e))
    };
    let mut base_zip = zip::ZipArchive::new(
        File::open(&base.archive).map_err(|e| ReleaseError::io("opening", &base.archive, e))?,
    )
    .map_err(zerr)?;
    let payload_path = repo.temp_path("delta-payload");
    let payload_file = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&payload_path)
        .map_err(|e| ReleaseError::io("creating", &payload_path, e))?;
    let mut payload = BufWriter::new(payload_file);
    // A repeated file is stored once, under its carrier's name.
    let carrier_of: HashMap<_, _> = base
        .index
        .carriers()
        .into_iter()
        .map(|f| (f.sha256, f))
        .collect();
    let mut entries = Vec::new();
    let mut offset = 0u64;
    for f in needs(base.index, target) {
        let src = files
            .get(&f.path)
            .ok_or_else(|| ReleaseError::Usage(format!("{} is not in the input", f.path)))?;
        let data = fs_err::read(src).map_err(|e| ReleaseError::io("reading", src, e))?;
        let whole = compress_whole(&data).map_err(|e| ReleaseError::io("compressing", src, e))?;
        let mut chosen = (DeltaKind::Whole, None, Vec::new(), whole);
        if let Some(b) = base.index.get(&f.path)
            && b.size <= PATCH_LIMIT
            && f.size <= PATCH_LIMIT
            && f.size > 0
        {
            let mut reference = Vec::with_capacity(b.size as usize);
            base_zip
                .by_name(
                    carrier_of
                        .get(&b.sha256)
                        .map_or(b.path.as_str(), |c| c.path.as_str()),
                )
                .map_err(zerr)?
                .read_to_end(&mut reference)
                .map_err(|e| ReleaseError::io("reading", &base.archive, e))?;
            let (frames, patch) = compress_framed(&reference, &data)
                .map_err(|e| ReleaseError::io("compressing", src, e))?;
            if patch.len() < chosen.3.len() {
                chosen = (DeltaKind::ZstdPatch, Some(b.path.clone()), frames, patch);
            }
            if b.size <= BSDIFF_LIMIT && f.size <= BSDIFF_LIMIT {
                let patch = compress_bsdiff(&reference, &data)
                    .map_err(|e| ReleaseError::io("diffing", src, e))?;
                if patch.len() < chosen.3.len() {
                    chosen = (DeltaKind::Bsdiff, Some(b.path.clone()), Vec::new(), patch);
                }
            }
        }
        let (kind, base_path, frames, bytes) = chosen;
        payload
            .write_all(&bytes)
            .map_err(|e| ReleaseError::io("writing", &payload_path, e))?;
        entries.push(DeltaEntry {
            path: f.path.clone(),
            kind,
            base: base_path,
            offset,
            len: bytes.len() as u64,
            size: f.size,
            sha256: f.sha256,
            frames,
        });
        offset += bytes.len() as u64;
    }
    let mut payload = payload
        .into_inner()
        .map_err(|e| ReleaseError::io("writing", &payload_path, e.into_error()))?;
    let header = DeltaHeader {
        schema: peft_manifest::SCHEMA,
        variant: target.variant.clone(),
        from: base.index.version.clone(),
        to: target.version.clone(),
        entries,
    };
    let out_path = repo.temp_path("delta");
    let result = (|| -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&out_path)?);
        write_header(&mut out, &header)?;
        payload.seek(SeekFrom::Start(0))?;
        std::io::copy(&mut payload, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    let _ = fs_err::remove_file(&payload_path);
    result.map_err(|e| ReleaseError::io("writing", &out_path, e))?;
    repo.adopt(&out_path)
}

/// Reads a release's index from the repository.
pub fn load_index(repo: &Repo, blob: &Blob) -> Result<FileIndex> {
    let bytes = repo.read_blob(blob)?;
    FileIndex::from_json(&bytes)
        .map_err(|e| ReleaseError::Integrity(format!("index {}: {e}", blob.sha256)))
}

/// Whether a path exists (for bases whose archive was pruned from the repository).
pub fn present(p: &Path) -> bool {
    p.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` xorshift bytes from `seed`, each the state shifted right by `shift`.
    fn xorshift(seed: u64, len: usize, shift: u32) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> shift) as u8
            })
            .collect()
    }

    #[test]
    fn a_patch_of_a_small_change_is_tiny_and_decodes() {
        let base = xorshift(0x9e3779b97f4a7c15u64, 4_000_000, 32);
        let mut target = base.clone();
        for b in &mut target[1_000_000..1_065_536] {
            *b ^= 0x5a;
        }
        let patch = compress_patch(&base, &target).expect("patch");
        assert!(patch.len() < 80_000, "{} bytes", patch.len());
        let mut dec = zstd::stream::Decoder::with_ref_prefix(&patch[..], &base).expect("decoder");
        dec.window_log_max(31).expect("wlog");
        let mut out = Vec::new();
        dec.read_to_end(&mut out).expect("decode");
        assert_eq!(out, target);
        let whole = compress_whole(&target).expect("whole");
        assert!(whole.len() > 3_000_000, "noise does not compress");
    }

    #[test]
    fn bsdiff_wins_on_scattered_small_edits_and_round_trips() {
        // Like a recompiled library: a little changes every few kilobytes.
        let base = xorshift(7u64, 2_000_000, 40);
        let mut target = base.clone();
        for i in (0..target.len()).step_by(4096) {
            target[i] = target[i].wrapping_add(1);
        }
        let bs = compress_bsdiff(&base, &target).expect("bsdiff");
        let zs = compress_patch(&base, &target).expect("zstd");
        assert!(
            bs.len() < zs.len(),
            "bsdiff {} vs zstd {}",
            bs.len(),
            zs.len()
        );
        let mut out = Vec::new();
        qbsdiff::Bspatch::new(&bs)
            .expect("patch")
            .apply(&base, &mut out)
            .expect("apply");
        assert_eq!(out, target);
    }

    #[test]
    fn a_framed_patch_finds_a_moved_edit_and_decodes_frame_by_frame() {
        let base = xorshift(0x2545f4914f6cdd1du64, 20_000_000, 24);
        // 1 MiB inserted near the start shifts everything after it.
        let mut target = base[..3_000_000].to_vec();
        target.extend(std::iter::repeat_n(7u8, 1 << 20));
        target.extend_from_slice(&base[3_000_000..]);
        let (frames, payload) = compress_framed(&base, &target).expect("framed");
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert!(payload.len() < 100_000, "{} bytes", payload.len());
        let (mut out, mut at) = (Vec::new(), 0usize);
        for f in &frames {
            let start = f.reference_start as usize;
            let window = &base[start..start + f.reference_len as usize];
            let mut dec =
                zstd::stream::Decoder::with_ref_prefix(&payload[at..at + f.len as usize], window)
                    .expect("decoder");
            dec.window_log_max(peft_manifest::delta::container::PATCH_WINDOW_LOG)
                .expect("wlog");
            dec.read_to_end(&mut out).expect("decode");
            at += f.len as usize;
        }
        assert_eq!(out, target);
    }

    #[test]
    fn window_covers_reference_and_target() {
        assert_eq!(window_log(100 << 20, 100 << 20), 28);
        assert_eq!(window_log(0, 10), 20);
        assert_eq!(window_log(3 << 30, 1), 31);
    }
}
