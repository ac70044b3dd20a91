//! Fuzz target `delta_header`: untrusted bytes as a `PEFTDLT2` delta container.
//!
//! For any input, nothing panics and:
//! - `delta::read_header` reads at most the input, and a header it returns writes
//!   back (`write_header`) to bytes it reads back equal;
//! - `check_entry`, what the decoder relies on before it decodes a byte, is asked
//!   about every entry against several base sizes; an entry it accepts has a payload
//!   whose end (header start + offset + length, and every frame's) fits in a `u64`,
//!   frames that add up exactly, and windows inside the base file;
//! - `delta::actions` (the planner that calls `check_entry`) runs over indexes
//!   derived from the header: the target lists the entries' files, the base lists
//!   the base files they name.
//!
//! The same bytes are also read as entries built field by field (`arbitrary`) and
//! given to `check_entry` the same way: mutating JSON text seldom turns an offset
//! or a length into one near `u64::MAX`, and sums of those are where a bound can
//! overflow.
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use peft_manifest::delta::container::{BSDIFF_LIMIT, FRAME_OUT, MAX_HEADER, MAX_REFERENCE};
use peft_manifest::delta::{
    DeltaEntry, DeltaKind, Frame, actions, check_entry, read_header, write_header,
};
use peft_manifest::{FileEntry, FileIndex, Sha256};

/// What an accepted entry promises the decoder.
fn accepted(e: &DeltaEntry, base: Option<u64>, start: u64) {
    let end = start
        .checked_add(e.offset)
        .and_then(|a| a.checked_add(e.len));
    assert!(end.is_some(), "{e:?}: the payload's end overflows");
    let mut len = 0u64;
    let mut out = 0u64;
    for f in &e.frames {
        assert!(
            f.out <= FRAME_OUT && f.reference_len <= MAX_REFERENCE,
            "{e:?}"
        );
        let b = base.expect("a patch has a base");
        assert!(f.reference_start + f.reference_len <= b, "{e:?}");
        len = len.checked_add(f.len).expect("frame lengths add up");
        out = out.checked_add(f.out).expect("frame sizes add up");
    }
    if !e.frames.is_empty() {
        assert_eq!((len, out), (e.len, e.size), "{e:?}");
    }
}

fn entry_file(path: &str, size: u64, e: &DeltaEntry) -> FileEntry {
    FileEntry {
        path: path.to_string(),
        size,
        mode: 0o644,
        sha256: e.sha256,
    }
}

fn sorted(mut files: Vec<FileEntry>) -> Vec<FileEntry> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    files
}

/// Asks `check_entry` about `e` against several base sizes (and `extra`).
fn bounds(e: &DeltaEntry, start: u64, extra: Option<u64>) {
    for base in [
        None,
        Some(0),
        Some(e.size),
        Some(BSDIFF_LIMIT),
        Some(u64::MAX),
        extra,
    ] {
        if check_entry(e, base).is_ok() {
            accepted(e, base, start);
        }
    }
}

/// Raw fields of an entry: kind, offset, len, size, frames (len, out, start, len).
type RawEntry = (u8, u64, u64, u64, Vec<(u64, u64, u64, u64)>);

/// The bytes as entries built field by field, each with a base size.
fn structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(raw) = Vec::<(RawEntry, u64)>::arbitrary(&mut u) else {
        return;
    };
    for ((kind, offset, len, size, frames), base) in raw {
        let e = DeltaEntry {
            path: "p".into(),
            kind: [DeltaKind::Whole, DeltaKind::ZstdPatch, DeltaKind::Bsdiff]
                [usize::from(kind % 3)],
            base: Some("p".into()),
            offset,
            len,
            size,
            sha256: Sha256::of(b""),
            frames: frames
                .into_iter()
                .map(|(len, out, reference_start, reference_len)| Frame {
                    len,
                    out,
                    reference_start,
                    reference_len,
                })
                .collect(),
        };
        // The furthest a payload can start: after the largest header.
        bounds(&e, 16 + MAX_HEADER, Some(base));
    }
}

fuzz_target!(|data: &[u8]| {
    structured(data);
    let Ok((header, start)) = read_header(&mut &data[..]) else {
        return;
    };
    assert!(start <= data.len() as u64);

    for e in &header.entries {
        bounds(e, start, None);
    }

    let target = FileIndex {
        schema: header.schema,
        version: header.to.clone(),
        variant: header.variant.clone(),
        files: sorted(
            header
                .entries
                .iter()
                .map(|e| entry_file(&e.path, e.size, e))
                .collect(),
        ),
    };
    let base = FileIndex {
        schema: header.schema,
        version: header.from.clone(),
        variant: header.variant.clone(),
        files: sorted(
            header
                .entries
                .iter()
                .filter_map(|e| e.base.as_deref().map(|b| entry_file(b, e.size, e)))
                .collect(),
        ),
    };
    if let Ok(acts) = actions(&base, &target, &header) {
        assert_eq!(acts.len(), target.files.len());
    }

    let mut bytes = Vec::new();
    let written = write_header(&mut bytes, &header).expect("a header read writes back");
    let (back, at) = read_header(&mut &bytes[..]).expect("a written header reads back");
    assert_eq!((back, at), (header, written));
});
