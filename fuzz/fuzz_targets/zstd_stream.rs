//! Fuzz target `zstd_stream`: untrusted bytes as the compressed data of zip entries
//! with compression method 93 (zstd), through both of the bootstrapper's unpacks:
//! the one that follows a download (`install/stream.rs`, its own zstd decoder) and
//! the ordinary one (`extract`, the `zip` crate's decoder).
//!
//! In `zip_stream` and `zip_entries` a mutation that changes a frame's length also
//! breaks the zip around it; here the harness writes the zip itself, so every input
//! reaches the zstd decoders. The input's first byte holds flags, the rest is split
//! at each `~93~` into at most eight payloads: entry `i` is `lib/e<i>.so` with that
//! payload as its data, inside a zip with correct local headers, CRC-32s, central
//! directory and end record. The signed index is made by decoding each payload (at
//! most 1 MiB) with the `zstd` crate: first as the ordinary unpack does (every frame,
//! a window of at most 2^27), else its first frame alone (window at most 2^24: what
//! a decoder that stops after one frame would take, as the stream's did until this
//! target found it); an entry that neither decodes is listed with the SHA-256 of
//! its name. An
//! entry whose content an earlier one already carries is left out of the zip and
//! listed as a copy (the unpack links or copies it). When flag bit `i` is set and
//! entry `i` decodes to something, the index (and the zip's size fields) say one byte
//! less, with the digest of that prefix.
//!
//! The archive is unpacked twice, by a `Stream` (as a complete `.partial` file) and
//! by `extract`, each into an empty folder of a fresh temporary folder. For any
//! input, nothing panics, both end, and:
//! - after each, the temporary folder holds only the archive and that folder, which
//!   holds only folders and regular files named in the index (no link, nothing
//!   outside); a successful unpack wrote every file it says with its content;
//! - an entry listed one byte short is refused by both (zstd never writes past a
//!   signed size);
//! - the stream never takes an archive that `extract` refuses (offline installs and
//!   repairs have only `extract`);
//! - when every payload decodes as the ordinary unpack reads it, `extract` succeeds;
//!   when moreover every frame's window is at most 2^24 (as `pack` writes them), the
//!   stream succeeds too.
//!
//! The temporary folders and LeakSanitizer's one suppression are in `common.rs`.
#![no_main]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use peft_bootstrap::fuzzing::{Follow, Stream, Watch, extract};
use peft_bootstrap::{Event, Reporter};
use peft_manifest::{FileEntry, FileIndex, Sha256};

/// The most entries, and the most bytes one may decode to in the index.
const MAX_ENTRIES: usize = 8;
const MAX_CONTENT: u64 = 1 << 20;
/// What separates the payloads in the input.
const SEP: &[u8] = b"~93~";
/// The window limits of the two unpacks: the stream's (`ZSTD_WINDOW_LOG_MAX`) and
/// libzstd's default, which the `zip` crate keeps.
const STREAM_WINDOW_LOG: u32 = 24;
const ZIP_WINDOW_LOG: u32 = 27;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

struct Quiet;

impl Reporter for Quiet {
    fn emit(&self, _event: Event) {}
}

/// One entry of the zip the harness writes.
struct Entry {
    name: String,
    payload: Vec<u8>,
    crc: u32,
    size: u64,
}

/// `payload` decoded by the `zstd` crate's streaming decoder with the given window
/// limit, every frame or only the first; `None` when it does not decode to the end
/// or decodes past [`MAX_CONTENT`].
fn decode(payload: &[u8], window_log: u32, every_frame: bool) -> Option<Vec<u8>> {
    let mut d = zstd::stream::read::Decoder::new(payload).ok()?;
    d.window_log_max(window_log).ok()?;
    let mut out = Vec::new();
    let n = if every_frame {
        d.take(MAX_CONTENT + 1).read_to_end(&mut out)
    } else {
        d.single_frame().take(MAX_CONTENT + 1).read_to_end(&mut out)
    };
    n.ok().filter(|&n| n as u64 <= MAX_CONTENT)?;
    Some(out)
}

/// The window a zstd frame's header asks for (RFC 8878, 3.1.1.1); `None` for
/// anything else (a skippable frame, a short or foreign header).
fn frame_window(frame: &[u8]) -> Option<u64> {
    if frame.get(..4)? != ZSTD_MAGIC {
        return None;
    }
    let fhd = *frame.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    if !single_segment {
        let wd = *frame.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    // A single segment's window is its content size.
    let at = 5 + [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs = match fhd >> 6 {
        0 => u64::from(*frame.get(at)?),
        1 => u64::from(u16::from_le_bytes(frame.get(at..at + 2)?.try_into().ok()?)) + 256,
        2 => u64::from(u32::from_le_bytes(frame.get(at..at + 4)?.try_into().ok()?)),
        _ => u64::from_le_bytes(frame.get(at..at + 8)?.try_into().ok()?),
    };
    Some(fcs)
}

/// Whether `payload` is whole frames whose windows the stream's decoder allows:
/// zstd frames of at most 2^24, and skippable frames.
fn frames_the_stream_allows(mut payload: &[u8]) -> bool {
    while !payload.is_empty() {
        let Ok(n) = zstd::zstd_safe::find_frame_compressed_size(payload) else {
            return false;
        };
        let Some((frame, rest)) = payload.split_at_checked(n).filter(|_| n > 0) else {
            return false;
        };
        let skippable = frame
            .get(..4)
            .is_some_and(|m| m[0] & 0xf0 == 0x50 && m[1..] == [0x2a, 0x4d, 0x18]);
        if !skippable && frame_window(frame).is_none_or(|w| w > 1 << STREAM_WINDOW_LOG) {
            return false;
        }
        payload = rest;
    }
    true
}

/// A zip of `entries`, all with method 93, as `pack` lays one out.
fn zip_of(entries: &[Entry]) -> Vec<u8> {
    fn u16le(v: &mut Vec<u8>, x: usize) {
        v.extend_from_slice(&u16::try_from(x).unwrap_or(u16::MAX).to_le_bytes());
    }
    fn u32le(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&u32::try_from(x).unwrap_or(u32::MAX).to_le_bytes());
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u64;
        let fields = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[63, 0, 0, 0, 93, 0, 0, 0, 0x21, 0]); // needs 6.3, flags, method, time, date
            u32le(v, u64::from(e.crc));
            u32le(v, e.payload.len() as u64);
            u32le(v, e.size);
            u16le(v, e.name.len());
            u16le(v, 0);
        };
        out.extend_from_slice(b"PK\x03\x04");
        fields(&mut out);
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&e.payload);

        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[63, 3]); // made by: 6.3, Unix
        fields(&mut central);
        central.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // comment, disk, internal
        u32le(&mut central, 0o100_644 << 16);
        u32le(&mut central, offset);
        central.extend_from_slice(e.name.as_bytes());
    }
    let cd_offset = out.len() as u64;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    u16le(&mut out, entries.len());
    u16le(&mut out, entries.len());
    u32le(&mut out, central.len() as u64);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    out
}

/// The archive, its index, which files hold what, and the entries listed short.
struct Case {
    zip: Vec<u8>,
    index: FileIndex,
    content: HashMap<String, Vec<u8>>,
    short: bool,
    extract_must_succeed: bool,
    stream_must_succeed: bool,
}

fn case(data: &[u8]) -> Option<Case> {
    let (&flags, rest) = data.split_first()?;
    let payloads = split(rest);
    let mut entries: Vec<Entry> = Vec::new();
    let mut files = Vec::new();
    let mut content = HashMap::new();
    let mut carriers: HashMap<Sha256, usize> = HashMap::new();
    let (mut short, mut all_decode, mut all_small) = (false, true, true);
    for (i, payload) in payloads.into_iter().enumerate() {
        let name = format!("lib/e{i}.so");
        let whole = decode(payload, ZIP_WINDOW_LOG, true);
        all_decode &= whole.is_some();
        all_small &= frames_the_stream_allows(payload);
        let decoded = whole.or_else(|| decode(payload, STREAM_WINDOW_LOG, false));
        let (sha, size, crc, bytes) = match decoded {
            Some(mut c) => {
                if flags & (1 << i) != 0 && !c.is_empty() {
                    c.pop();
                    short = true;
                }
                (Sha256::of(&c), c.len() as u64, crc32fast::hash(&c), Some(c))
            }
            None => (Sha256::of(name.as_bytes()), payload.len() as u64, 0, None),
        };
        files.push(FileEntry {
            path: name.clone(),
            sha256: sha,
            size,
            mode: 0o644,
        });
        if let Some(c) = bytes {
            content.insert(name.clone(), c);
        }
        // A later entry with the same content is a copy the archive does not carry.
        if carriers.insert(sha, i).is_none() {
            entries.push(Entry {
                name,
                payload: payload.to_vec(),
                crc,
                size,
            });
        }
    }
    if entries.is_empty() {
        return None;
    }
    let index = FileIndex {
        schema: 1,
        version: semver::Version::new(1, 0, 0),
        variant: "fuzz".into(),
        files,
    };
    Some(Case {
        zip: zip_of(&entries),
        index,
        content,
        short,
        extract_must_succeed: all_decode && !short,
        stream_must_succeed: all_decode && all_small && !short,
    })
}

/// The payloads: the input split at each [`SEP`], at most [`MAX_ENTRIES`] (the
/// last one keeps the rest).
fn split(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while out.len() + 1 < MAX_ENTRIES {
        let Some(at) = rest.windows(SEP.len()).position(|w| w == SEP) else {
            break;
        };
        out.push(&rest[..at]);
        rest = &rest[at + SEP.len()..];
    }
    out.push(rest);
    out
}

/// Every file in `names` under `dest` holds the content the index was made from.
fn assert_contents<'a>(dest: &Path, names: impl Iterator<Item = &'a str>, c: &Case) {
    for name in names {
        let got = std::fs::read(dest.join(name)).expect("a written file is there");
        let want = c.index.get(name).expect("a written file is indexed");
        assert_eq!(got.len() as u64, want.size, "{name:?}");
        assert_eq!(Sha256::of(&got), want.sha256, "{name:?}");
        if let Some(bytes) = c.content.get(name) {
            assert!(got == *bytes, "{name:?} differs from its decoding");
        }
    }
}

fn stream(c: &Case) -> bool {
    let tmp = common::temp_dir();
    let partial = tmp.path().join("archive.partial");
    let dest = tmp.path().join("dest");
    std::fs::write(&partial, &c.zip).expect("writing the partial file");
    std::fs::create_dir(&dest).expect("creating dest");
    let follow = Arc::new(Follow::default());
    follow.attempt(c.zip.len() as u64);
    follow.end();
    let result = Stream::start(partial, c.index.clone(), dest.clone(), follow).join();
    common::assert_only_indexed_files_in_dest(tmp.path(), "archive.partial", &c.index);
    match result {
        Ok(streamed) => {
            assert_eq!(streamed.written, c.index.carrier_mask(), "every carrier");
            assert_contents(&dest, streamed.paths(&c.index), c);
            true
        }
        Err(_) => false,
    }
}

fn unpack(c: &Case) -> bool {
    let tmp = common::temp_dir();
    let archive = tmp.path().join("archive.zip");
    let dest = tmp.path().join("dest");
    std::fs::write(&archive, &c.zip).expect("writing the archive");
    std::fs::create_dir(&dest).expect("creating dest");
    let result = extract(&archive, &c.index, &dest, &Quiet);
    common::assert_only_indexed_files_in_dest(tmp.path(), "archive.zip", &c.index);
    if result.is_ok() {
        assert_contents(&dest, c.index.files.iter().map(|f| f.path.as_str()), c);
    }
    result.is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(c) = case(data) else { return };
    let streamed = stream(&c);
    let extracted = unpack(&c);
    if c.short {
        assert!(
            !streamed && !extracted,
            "an entry past its signed size was taken"
        );
    }
    assert!(
        !streamed || extracted,
        "the stream took an archive the ordinary unpack refuses"
    );
    assert!(
        extracted || !c.extract_must_succeed,
        "the ordinary unpack refused entries that decode to their index"
    );
    assert!(
        streamed || !c.stream_must_succeed,
        "the stream refused single frames that decode to their index"
    );
});
