//! The `PEFTDLT2` delta container: its header types, its bounds, and its one
//! encoder and decoder (of the header; the payloads are zstd frames or bsdiff
//! patches that the binaries make and read).
//!
//! ```text
//! b"PEFTDLT2" | u64 LE header length | header JSON (DeltaHeader) | payloads...
//! ```
//!
//! Every payload has a bounded cost to decode, whatever the file's size, so an update
//! never needs memory in proportion to the libraries it patches:
//! - `whole`: one zstd frame whose window is at most 2^[`WHOLE_WINDOW_LOG`] bytes;
//! - `zstd_patch`: a run of [`Frame`]s, each at most [`FRAME_OUT`] bytes of the target,
//!   compressed against one window of the base file at most [`MAX_REFERENCE`] bytes
//!   long (see [`patch_frames`] for where the windows sit);
//! - `bsdiff`: a BSDIFF40 patch of at most twice [`BSDIFF_LIMIT`] bytes, only between
//!   files of at most [`BSDIFF_LIMIT`] bytes.
//!
//! [`check_entry`] refuses an entry outside those bounds before a byte is decoded,
//! and one whose payload would end past the largest blob ([`MAX_BLOB`]), so that
//! the decoder's offsets (header end + offset + frame lengths) never overflow.

use std::io::{Read, Write};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::Sha256;
use crate::limits::MAX_BLOB;

/// The container's magic bytes.
pub const MAGIC: &[u8; 8] = b"PEFTDLT2";
/// The largest header read (a bundle of 100,000 files stays far below it).
pub const MAX_HEADER: u64 = 64 << 20;
/// The most target bytes one patch frame produces.
pub const FRAME_OUT: u64 = 8 << 20;
/// How far a frame's base window reaches before and after the frame's place.
pub const MARGIN: u64 = 8 << 20;
/// The longest base window of one frame.
pub const MAX_REFERENCE: u64 = FRAME_OUT + 2 * MARGIN;
/// The window log of a `whole` frame (16 MiB).
pub const WHOLE_WINDOW_LOG: u32 = 24;
/// The window log a patch frame may use: its reference and its output together.
pub const PATCH_WINDOW_LOG: u32 = 26;
/// The largest base or target file a bsdiff patch is made for or applied to.
pub const BSDIFF_LIMIT: u64 = 32 << 20;

/// The JSON header of a delta blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaHeader {
    pub schema: u32,
    pub variant: String,
    pub from: Version,
    pub to: Version,
    /// In payload order.
    pub entries: Vec<DeltaEntry>,
}

/// How one target file is carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaEntry {
    pub path: String,
    pub kind: DeltaKind,
    /// The base file a `zstd_patch` or `bsdiff` entry is made against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The payload's offset from the end of the header, and its length.
    pub offset: u64,
    pub len: u64,
    /// What the file must be once written.
    pub size: u64,
    pub sha256: Sha256,
    /// A `zstd_patch`'s frames, in order; empty for the other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Frame>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeltaKind {
    /// The whole file, zstd-compressed.
    Whole,
    /// zstd frames, each with a window of the base file as reference prefix.
    ZstdPatch,
    /// A BSDIFF40 patch (bzip2) against the base file.
    Bsdiff,
}

/// One frame of a `zstd_patch`: `len` payload bytes that decode, against the base
/// file's bytes `reference_start .. reference_start + reference_len`, into the next
/// `out` bytes of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub len: u64,
    pub out: u64,
    pub reference_start: u64,
    pub reference_len: u64,
}

/// Why a container or one of its entries is refused.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("reading it failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a PEFTDLT2 container")]
    Magic,
    #[error("its header claims {0} bytes, more than the {MAX_HEADER} allowed")]
    HugeHeader(u64),
    #[error("its header is not valid JSON for a delta: {0}")]
    Json(String),
    #[error("the entry {path:?} is outside the container's bounds: {why}")]
    OutOfBounds { path: String, why: String },
}

/// Writes the magic, the header's length and the header; returns the bytes written
/// (payload offsets count from there).
pub fn write_header(out: &mut impl Write, header: &DeltaHeader) -> std::io::Result<u64> {
    let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(&json)?;
    Ok(16 + json.len() as u64)
}

/// Reads what [`write_header`] wrote; returns the header and where payloads start.
pub fn read_header(input: &mut impl Read) -> Result<(DeltaHeader, u64), ContainerError> {
    let mut head = [0u8; 16];
    input.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(ContainerError::Magic);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[8..]);
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(ContainerError::HugeHeader(len));
    }
    let mut json = Vec::new();
    input.take(len).read_to_end(&mut json)?;
    if json.len() as u64 != len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    let header = serde_json::from_slice(&json).map_err(|e| ContainerError::Json(e.to_string()))?;
    Ok((header, 16 + len))
}

/// Where the frames of a patch from a base file of `base_size` bytes to a target of
/// `target_size` bytes sit (with `len` left 0 for the encoder to fill): the target in
/// pieces of [`FRAME_OUT`], each against the base bytes around the same relative
/// place, [`MARGIN`] to either side, so edits in place and growth or shrinkage spread
/// over the file keep finding what they share with the base. An empty target has
/// no frames (it is sent whole).
pub fn patch_frames(base_size: u64, target_size: u64) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < target_size {
        let out = FRAME_OUT.min(target_size - at);
        let place = (u128::from(at) * u128::from(base_size) / u128::from(target_size)) as u64;
        let start = place.saturating_sub(MARGIN).min(base_size);
        let end = place.saturating_add(out + MARGIN).min(base_size);
        frames.push(Frame {
            len: 0,
            out,
            reference_start: start,
            reference_len: end - start,
        });
        at += out;
    }
    frames
}

/// Checks that `e` stays inside the container's bounds, given the size of its base
/// file (when it has one): frames that add up to the payload and the file, and no
/// frame, window or patch larger than the format allows.
pub fn check_entry(e: &DeltaEntry, base_size: Option<u64>) -> Result<(), ContainerError> {
    let bad = |why: String| ContainerError::OutOfBounds {
        path: e.path.clone(),
        why,
    };
    if e.offset > MAX_BLOB || e.len > MAX_BLOB {
        return Err(bad(format!(
            "a payload of {} bytes at offset {}, past the largest blob ({MAX_BLOB} bytes)",
            e.len, e.offset
        )));
    }
    match (e.kind, base_size) {
        (DeltaKind::Whole, _) if !e.frames.is_empty() => {
            Err(bad("a whole file has no frames".into()))
        }
        (DeltaKind::Whole, _) => Ok(()),
        (_, None) => Err(bad("a patch without a base file".into())),
        (DeltaKind::Bsdiff, Some(b)) => {
            if b.max(e.size) > BSDIFF_LIMIT || e.len > 2 * BSDIFF_LIMIT || !e.frames.is_empty() {
                return Err(bad(format!(
                    "bsdiff between files of {b} and {} bytes (the limit is {BSDIFF_LIMIT})",
                    e.size
                )));
            }
            Ok(())
        }
        (DeltaKind::ZstdPatch, Some(b)) => {
            let (mut len, mut out) = (0u64, 0u64);
            for f in &e.frames {
                if f.out > FRAME_OUT || f.reference_len > MAX_REFERENCE {
                    return Err(bad(format!(
                        "a frame of {} bytes against {} reference bytes",
                        f.out, f.reference_len
                    )));
                }
                if f.reference_start
                    .checked_add(f.reference_len)
                    .is_none_or(|end| end > b)
                {
                    return Err(bad(format!(
                        "a reference window past the base file's {b} bytes"
                    )));
                }
                len = len.saturating_add(f.len);
                out = out.saturating_add(f.out);
            }
            if e.frames.is_empty() || len != e.len || out != e.size {
                return Err(bad(format!(
                    "frames add up to {len} payload and {out} file bytes, the entry says {} and {}",
                    e.len, e.size
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn arb_entry() -> impl Strategy<Value = DeltaEntry> {
        (
            "[a-z/._]{1,30}",
            0u8..3,
            prop::option::of("[a-z/]{1,10}"),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            prop::collection::vec(any::<(u64, u64, u64, u64)>(), 0..4),
        )
            .prop_map(
                |(path, k, base, offset, len, size, sha, frames)| DeltaEntry {
                    path,
                    kind: [DeltaKind::Whole, DeltaKind::ZstdPatch, DeltaKind::Bsdiff][k as usize],
                    base,
                    offset,
                    len,
                    size,
                    sha256: Sha256::of(&sha),
                    frames: frames
                        .into_iter()
                        .map(|(len, out, reference_start, reference_len)| Frame {
                            len,
                            out,
                            reference_start,
                            reference_len,
                        })
                        .collect(),
                },
            )
    }

    fn arb_header() -> impl Strategy<Value = DeltaHeader> {
        (
            any::<u32>(),
            "[a-z0-9-]{1,20}",
            (0u64..100, 0u64..100, 0u64..100),
            prop::collection::vec(arb_entry(), 0..20),
        )
            .prop_map(|(schema, variant, (a, b, c), entries)| DeltaHeader {
                schema,
                variant,
                from: Version::new(a, b, c),
                to: Version::new(c, b, a),
                entries,
            })
    }

    proptest! {
        /// What the encoder writes, the decoder reads back exactly, and says where
        /// the payloads start; a cut anywhere in the header is refused.
        #[test]
        fn headers_round_trip(h in arb_header(), payload in prop::collection::vec(any::<u8>(), 0..64), cut in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            let start = write_header(&mut bytes, &h).expect("write");
            prop_assert_eq!(start as usize, bytes.len());
            bytes.extend_from_slice(&payload);
            let (back, at) = read_header(&mut &bytes[..]).expect("read");
            prop_assert_eq!(back, h);
            prop_assert_eq!(at, start);
            let short = cut.index(start as usize);
            prop_assert!(read_header(&mut &bytes[..short]).is_err());
        }

        /// The frames cover the target exactly, in order, and every one is in bounds.
        #[test]
        fn patch_frames_cover_the_target_in_bounds(base in 0u64..(1 << 34), target in 1u64..(1 << 34)) {
            let frames = patch_frames(base, target);
            let total: u64 = frames.iter().map(|f| f.out).sum();
            prop_assert_eq!(total, target);
            let mut e = DeltaEntry {
                path: "p".into(), kind: DeltaKind::ZstdPatch, base: Some("p".into()),
                offset: 0, len: frames.len() as u64, size: target, sha256: Sha256::of(b""),
                frames: frames.into_iter().map(|f| Frame { len: 1, ..f }).collect(),
            };
            prop_assert!(check_entry(&e, Some(base)).is_ok(), "{:?}", check_entry(&e, Some(base)));
            if let Some(f) = e.frames.last_mut() { f.reference_len = MAX_REFERENCE + 1; }
            prop_assert!(check_entry(&e, Some(base)).is_err());
        }
    }

    #[test]
    fn foreign_and_oversized_headers_are_refused() {
        let mut old = b"PEFTDLT1".to_vec();
        old.extend_from_slice(&2u64.to_le_bytes());
        old.extend_from_slice(b"{}");
        assert!(matches!(
            read_header(&mut &old[..]),
            Err(ContainerError::Magic)
        ));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&(MAX_HEADER + 1).to_le_bytes());
        assert!(matches!(
            read_header(&mut &huge[..]),
            Err(ContainerError::HugeHeader(_))
        ));
    }

    /// Found by the `delta_header` fuzz target: an entry whose offset and length
    /// add up past `u64::MAX` was accepted, and the decoder's `start + offset`
    /// overflowed. A payload must lie within the largest blob.
    #[test]
    fn a_payload_ending_past_u64_max_is_refused() {
        let mut e = DeltaEntry {
            path: "p".into(),
            kind: DeltaKind::Whole,
            base: None,
            offset: 18_433_459_412_174_918_726,
            len: 2_484_579_619_441_410_047,
            size: 1,
            sha256: Sha256::of(b""),
            frames: vec![],
        };
        assert!(matches!(
            check_entry(&e, None),
            Err(ContainerError::OutOfBounds { .. })
        ));
        // Frames whose lengths only add up by saturating at u64::MAX.
        e.kind = DeltaKind::ZstdPatch;
        e.offset = 0;
        e.len = u64::MAX;
        e.frames = vec![
            Frame {
                len: u64::MAX,
                out: 1,
                reference_start: 0,
                reference_len: 1,
            },
            Frame {
                len: 1,
                out: 0,
                reference_start: 0,
                reference_len: 1,
            },
        ];
        e.size = 1;
        assert!(check_entry(&e, Some(1)).is_err());
        // At the bound, still accepted.
        e.kind = DeltaKind::Whole;
        e.frames = vec![];
        e.offset = MAX_BLOB;
        e.len = MAX_BLOB;
        assert!(check_entry(&e, None).is_ok());
    }

    #[test]
    fn oversized_payloads_are_refused() {
        let mut e = DeltaEntry {
            path: "lib.so".into(),
            kind: DeltaKind::Bsdiff,
            base: Some("lib.so".into()),
            offset: 0,
            len: 10,
            size: BSDIFF_LIMIT + 1,
            sha256: Sha256::of(b""),
            frames: vec![],
        };
        assert!(check_entry(&e, Some(10)).is_err());
        e.size = 10;
        assert!(check_entry(&e, Some(10)).is_ok());
        assert!(check_entry(&e, None).is_err());
        e.kind = DeltaKind::ZstdPatch;
        e.frames = vec![Frame {
            len: 10,
            out: 10,
            reference_start: 0,
            reference_len: MAX_REFERENCE + 1,
        }];
        assert!(check_entry(&e, Some(u64::MAX)).is_err());
    }
}
