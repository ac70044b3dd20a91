//! The stream follows a growing file, and gives up (for the ordinary unpack) on
//! anything it cannot follow.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::install::fixture::{Item, bundle, streamed_bundle, zstd_bundle};
use peft_manifest::FileEntry;

/// Bytes that deflate only a little, so the archive is not tiny.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 16) as u8
        })
        .collect()
}

/// Writes `archive` into `partial` as a download would, in 64 KiB steps, telling
/// `follow`. Before the last 64 KiB it waits (at most 10 s) until `ready` holds.
fn grow(archive: &Path, partial: &Path, follow: &Follow, ready: impl Fn() -> bool) -> bool {
    let bytes = fs_err::read(archive).expect("read");
    let mut out = File::create(partial).expect("create");
    follow.attempt(0);
    let last = bytes.len().saturating_sub(64 << 10);
    let mut waited = false;
    for (i, chunk) in bytes.chunks(64 << 10).enumerate() {
        if i * (64 << 10) >= last && !waited {
            let t = Instant::now();
            while !ready() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            waited = ready();
        }
        out.write_all(chunk).expect("write");
        follow.grew(((i + 1) * (64 << 10)).min(bytes.len()) as u64);
    }
    follow.end();
    waited
}

/// Packs a big library, a smaller one and small files with `make`, streams the
/// archive while it grows (its last 64 KiB held back until the big file is written)
/// and checks every file.
fn streams_while_growing(
    make: fn(&Path, &[Item<'_>]) -> (std::path::PathBuf, FileIndex),
    big_len: usize,
    seed: u64,
) {
    let t = tempfile::tempdir().expect("tempdir");
    let (big, filler) = (noise(big_len, seed), noise(512 << 10, seed + 2));
    let items = [
        Item::File("lib/big.so", &big),
        Item::File("lib/later.so", &filler),
        Item::File("a/x.pyc", b"x"),
        Item::File("a/y.pyc", b"yy"),
        Item::File("a/empty", b""),
    ];
    let (archive, index) = make(t.path(), &items);
    let (partial, dest) = (t.path().join("p.partial"), t.path().join("dest"));
    fs_err::create_dir_all(&dest).expect("mkdir");
    let follow = Arc::new(Follow::default());
    let stream = Stream::start(
        partial.clone(),
        index.clone(),
        dest.clone(),
        Arc::clone(&follow),
    );
    let early = grow(&archive, &partial, &follow, || {
        stream.done() >= big.len() as u64
    });
    let s = stream.join().expect("streams");
    assert!(early, "nothing was unpacked before the download ended");
    let written: Vec<_> = s.paths(&index).collect();
    assert_eq!(
        written,
        [
            "a/empty",
            "a/x.pyc",
            "a/y.pyc",
            "lib/big.so",
            "lib/later.so"
        ]
    );
    s.syncer.finish(Vec::new()).expect("sync");
    for item in &items {
        let Item::File(name, bytes) = item else {
            continue;
        };
        assert_eq!(
            fs_err::read(dest.join(name)).expect("read"),
            *bytes,
            "{name}"
        );
    }
}

#[test]
fn files_are_written_while_the_archive_still_grows() {
    streams_while_growing(bundle, 3 << 20, 7);
}

#[test]
fn zstd_entries_are_written_while_the_archive_still_grows() {
    streams_while_growing(zstd_bundle, 4 << 20, 11);
}

/// A zstd frame that asks for a 128 MiB window (more than [`ZSTD_WINDOW_LOG_MAX`]
/// allows) is refused before its window is allocated: a server cannot make each
/// worker hold that much memory with bytes that are not verified yet. Small files
/// (a worker's context) and large ones (the lane of large files) alike.
#[test]
fn a_zstd_window_above_the_limit_ends_the_stream() {
    for len in [64 << 10, SMALL_ENTRY as usize + 1] {
        window_above_the_limit_ends_the_stream(len);
    }
}

fn window_above_the_limit_ends_the_stream(len: usize) {
    let t = tempfile::tempdir().expect("tempdir");
    let data = noise(len, 5);
    let frame = {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        e.window_log(27).expect("window");
        e.write_all(&data).expect("compress");
        e.finish().expect("finish")
    };
    let name = b"big";
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
    for half in [63u16, 0, 93, 0, 0] {
        bytes.extend_from_slice(&half.to_le_bytes()); // version, flags, zstd, time, date
    }
    for word in [0u32, frame.len() as u32, data.len() as u32] {
        bytes.extend_from_slice(&word.to_le_bytes()); // crc, sizes
    }
    bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&frame);
    bytes.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
    let index = FileIndex {
        schema: 1,
        version: "1.0.0".parse().expect("v"),
        variant: "t".into(),
        files: vec![FileEntry {
            path: "big".into(),
            size: data.len() as u64,
            mode: 0o644,
            sha256: peft_manifest::Sha256::of(&data),
        }],
    };
    let (partial, dest) = (t.path().join("p.partial"), t.path().join("dest"));
    fs_err::create_dir_all(&dest).expect("mkdir");
    fs_err::write(&partial, &bytes).expect("write");
    let follow = Arc::new(Follow::default());
    follow.attempt(bytes.len() as u64);
    follow.end();
    let stream = Stream::start(partial, index, dest, follow);
    let why = stream.join().expect_err("refused");
    assert!(why.contains("\"big\""), "{why}");
}

/// A complete zip of one zstd entry (method 93) named `name` whose data is
/// `payload`, declared (sizes, CRC-32) as holding `content`, and an index that lists
/// `content`: what a signer could publish.
fn zstd_entry_zip(name: &str, payload: &[u8], content: &[u8]) -> (Vec<u8>, FileIndex) {
    let mut crc = flate2::Crc::new();
    crc.update(content);
    let fields = |v: &mut Vec<u8>| {
        for half in [63u16, 0, 93, 0, 0x21] {
            v.extend_from_slice(&half.to_le_bytes()); // version, flags, zstd, time, date
        }
        for word in [crc.sum(), payload.len() as u32, content.len() as u32] {
            v.extend_from_slice(&word.to_le_bytes()); // crc, sizes
        }
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
    };
    let mut zip = LOCAL_HEADER.to_le_bytes().to_vec();
    fields(&mut zip);
    zip.extend_from_slice(name.as_bytes());
    zip.extend_from_slice(payload);
    let central_at = zip.len() as u32;
    zip.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
    zip.extend_from_slice(&[63, 3]); // made by 6.3 on Unix
    fields(&mut zip);
    zip.extend_from_slice(&[0; 6]); // comment, disk, internal attributes
    zip.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes());
    zip.extend_from_slice(&0u32.to_le_bytes()); // the local header's offset
    zip.extend_from_slice(name.as_bytes());
    let central_len = zip.len() as u32 - central_at;
    zip.extend_from_slice(&END_OF_CENTRAL.to_le_bytes());
    zip.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]); // disks, entries
    zip.extend_from_slice(&central_len.to_le_bytes());
    zip.extend_from_slice(&central_at.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    let index = FileIndex {
        schema: 1,
        version: "1.0.0".parse().expect("v"),
        variant: "t".into(),
        files: vec![FileEntry {
            path: name.into(),
            size: content.len() as u64,
            mode: 0o644,
            sha256: peft_manifest::Sha256::of(content),
        }],
    };
    (zip, index)
}

/// `zip` streamed as a complete download into `dir/stream`, then unpacked by the
/// ordinary `extract` into `dir/extract`: what each returned.
fn stream_and_extract(
    dir: &Path,
    zip: &[u8],
    index: &FileIndex,
) -> (Result<Streamed, String>, crate::error::Result<()>) {
    let (archive, streamed, extracted) = (
        dir.join("bundle.zip"),
        dir.join("stream"),
        dir.join("extract"),
    );
    fs_err::write(&archive, zip).expect("write");
    fs_err::create_dir_all(&streamed).expect("mkdir");
    fs_err::create_dir_all(&extracted).expect("mkdir");
    let follow = Arc::new(Follow::default());
    follow.attempt(zip.len() as u64);
    follow.end();
    let stream = Stream::start(archive.clone(), index.clone(), streamed, follow).join();
    let quiet = crate::install::fixture::Quiet;
    let extract = crate::install::extract(&archive, index, &extracted, &quiet);
    (stream, extract)
}

/// Found by the `zstd_stream` fuzz target: the stream's decoder stopped after an
/// entry's first frame, so it took an entry with bytes after its frame that are no
/// frame, which the ordinary unpack (and so offline installs and repairs) refuses.
/// Both refuse it now.
#[test]
fn a_zstd_entry_with_bytes_after_its_frame_is_refused_by_the_stream_as_by_extract() {
    let t = tempfile::tempdir().expect("tempdir");
    let content = b"hello, zstd";
    let mut payload = zstd::stream::encode_all(&content[..], 19).expect("compress");
    payload.extend_from_slice(b"\xff\xff");
    let (zip, index) = zstd_entry_zip("lib/a.so", &payload, content);
    let (stream, extract) = stream_and_extract(t.path(), &zip, &index);
    let why = stream.expect_err("the stream refuses the entry");
    assert!(why.contains("lib/a.so"), "{why}");
    let err = extract.expect_err("extract refuses the entry");
    assert!(err.to_string().contains("lib/a.so"), "{err}");
}

/// An entry of two zstd frames is their concatenation, for the stream as for the
/// ordinary unpack (the stream used to write only the first frame's bytes, and so
/// gave up on such an archive).
#[test]
fn a_zstd_entry_of_two_frames_is_streamed_as_extract_reads_it() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut payload = zstd::stream::encode_all(&b"first, "[..], 19).expect("compress");
    payload.extend(zstd::stream::encode_all(&b"second"[..], 3).expect("compress"));
    let (zip, index) = zstd_entry_zip("lib/a.so", &payload, b"first, second");
    let (stream, extract) = stream_and_extract(t.path(), &zip, &index);
    let s = stream.expect("the stream takes both frames");
    assert_eq!(s.paths(&index).count(), 1);
    s.syncer.finish(Vec::new()).expect("sync");
    extract.expect("extract takes both frames");
    for dir in ["stream", "extract"] {
        let got = fs_err::read(t.path().join(dir).join("lib/a.so")).expect("read");
        assert_eq!(got, b"first, second", "{dir}");
    }
}

#[test]
fn a_download_that_starts_over_ends_the_stream() {
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, index) = bundle(t.path(), &[Item::File("big", &noise(1 << 20, 3))]);
    let (partial, dest) = (t.path().join("p.partial"), t.path().join("dest"));
    fs_err::create_dir_all(&dest).expect("mkdir");
    let follow = Arc::new(Follow::default());
    let stream = Stream::start(partial.clone(), index, dest, Arc::clone(&follow));
    let bytes = fs_err::read(&archive).expect("read");
    let mut out = File::create(&partial).expect("create");
    follow.attempt(0);
    out.write_all(&bytes[..1000]).expect("write");
    follow.grew(1000);
    // A server that ignored Range: the file is written again from zero.
    follow.attempt(0);
    follow.end();
    let why = stream.join().expect_err("a new attempt ends the stream");
    assert!(why.contains("started over"), "{why}");
}

#[test]
fn sizes_only_in_data_descriptors_end_the_stream() {
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, index) = streamed_bundle(t.path(), &[Item::File("a", b"hello")]);
    let (partial, dest) = (t.path().join("p.partial"), t.path().join("dest"));
    fs_err::create_dir_all(&dest).expect("mkdir");
    let follow = Arc::new(Follow::default());
    let stream = Stream::start(partial.clone(), index, dest.clone(), Arc::clone(&follow));
    grow(&archive, &partial, &follow, || true);
    let why = stream.join().expect_err("the stream cannot follow it");
    assert!(why.contains("no sizes in its header"), "{why}");
    assert!(!dest.join("a").exists());
}

#[test]
fn an_entry_outside_the_index_is_refused_before_it_is_written() {
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, mut index) = bundle(
        t.path(),
        &[Item::File("a", b"fine"), Item::File("evil", b"bad")],
    );
    index.files.retain(|f| f.path != "evil");
    let (partial, dest) = (t.path().join("p.partial"), t.path().join("dest"));
    fs_err::create_dir_all(&dest).expect("mkdir");
    let follow = Arc::new(Follow::default());
    let stream = Stream::start(partial.clone(), index, dest.clone(), Arc::clone(&follow));
    grow(&archive, &partial, &follow, || true);
    let why = stream.join().expect_err("refused");
    assert!(why.contains("\"evil\" is not a carrier"), "{why}");
    assert!(!dest.join("evil").exists());
}

/// Found while writing the `zip_stream` fuzz target (the target reproduces it
/// with the seed `zip64-overflow.zip`): a local header whose zip64 extra field
/// gives a compressed size near `u64::MAX` made the reader's next position
/// overflow (a panic with overflow checks, a wrap without). An entry must end
/// within the largest archive; the stream gives up cleanly.
#[test]
fn a_zip64_compressed_size_near_u64_max_ends_the_stream_without_overflow() {
    let t = tempfile::tempdir().expect("tempdir");
    let (name, size) = (b"a", 5u64);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
    for half in [45u16, 0, 8, 0, 0] {
        bytes.extend_from_slice(&half.to_le_bytes()); // version, flags, deflate, time, date
    }
    for word in [0u32, u32::MAX, u32::MAX] {
        bytes.extend_from_slice(&word.to_le_bytes()); // crc, sizes in the zip64 field
    }
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&20u16.to_le_bytes());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&1u16.to_le_bytes()); // zip64 extra: id 1, 16 bytes
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes.extend_from_slice(&(u64::MAX - 15).to_le_bytes());
    bytes.extend_from_slice(&[3, 0]);
    let index = FileIndex {
        schema: 1,
        version: "1.0.0".parse().expect("v"),
        variant: "t".into(),
        files: vec![FileEntry {
            path: "a".into(),
            size,
            mode: 0o644,
            sha256: peft_manifest::Sha256::of(b"hello"),
        }],
    };
    let (partial, dest) = (t.path().join("p.partial"), t.path().join("dest"));
    fs_err::create_dir_all(&dest).expect("mkdir");
    fs_err::write(&partial, &bytes).expect("write");
    let follow = Arc::new(Follow::default());
    follow.attempt(bytes.len() as u64);
    follow.end();
    let stream = Stream::start(partial, index, dest.clone(), follow);
    let why = stream.join().expect_err("refused");
    assert!(why.contains("past the largest archive"), "{why}");
    assert!(!dest.join("a").exists());
}

/// A large entry decoded on its own thread comes out whole and in order across many
/// pieces; a reader that stops early ends the decoding thread (no hang); a frame
/// cut short is an error of the reading side.
#[test]
fn a_large_entry_decoded_alongside_comes_out_whole() {
    let data = noise(3 * PIECE + 12_345, 9);
    let frame = zstd::stream::encode_all(&data[..], 3).expect("compress");
    let mut ctx = None;
    let ctx = context(&mut ctx).expect("context");
    let got = decode_alongside(BufReader::new(&frame[..]), ctx, |r| {
        let mut v = Vec::new();
        r.read_to_end(&mut v).map(|_| v)
    })
    .expect("started")
    .expect("read");
    assert!(got == data, "the decoded bytes differ");
    let first = decode_alongside(BufReader::new(&frame[..]), ctx, |r| {
        let mut v = vec![0u8; 10];
        r.read_exact(&mut v).map(|()| v)
    })
    .expect("started")
    .expect("read");
    assert_eq!(first, data[..10]);
    let broken = &frame[..frame.len() - 100];
    let r = decode_alongside(BufReader::new(broken), ctx, |r| {
        std::io::copy(r, &mut std::io::sink())
    })
    .expect("started");
    assert!(r.is_err(), "a frame cut short decoded: {r:?}");
}
