//! The refusals of [`super::extract`], each leaving nothing written.

use peft_manifest::{FileEntry, Sha256};

use super::*;
use crate::install::fixture::{Item, Quiet, bundle};

/// Runs extract into `<tmp>/staging/x` and returns the error and every path
/// that exists under `<tmp>` afterwards, apart from the archive.
fn attempt(items: &[Item<'_>]) -> (Error, Vec<String>) {
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, index) = bundle(t.path(), items);
    let staging = t.path().join("staging").join("x");
    fs_err::create_dir_all(&staging).expect("mkdir");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("must be refused");
    let mut seen = Vec::new();
    let mut stack = vec![t.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).expect("ls").flatten() {
            let rel = e
                .path()
                .strip_prefix(t.path())
                .expect("rel")
                .display()
                .to_string();
            if e.path().is_dir() {
                stack.push(e.path());
            }
            if rel != "bundle.zip" {
                seen.push(rel);
            }
        }
    }
    seen.sort();
    (err, seen)
}

fn assert_refused_whole(items: &[Item<'_>], needle: &str) {
    let (err, seen) = attempt(items);
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(
        err.to_string().contains(needle),
        "{err} should mention {needle}"
    );
    assert_eq!(
        seen,
        vec!["staging".to_string(), "staging/x".to_string()],
        "nothing may be written"
    );
}

#[test]
fn parent_paths_are_refused_whole() {
    assert_refused_whole(
        &[Item::File("a/ok.txt", b"fine"), Item::File("../x", b"evil")],
        "'..'",
    );
}

#[test]
fn absolute_paths_are_refused_whole() {
    assert_refused_whole(
        &[
            Item::File("a/ok.txt", b"fine"),
            Item::File("/tmp/peft-evil", b"evil"),
        ],
        "absolute",
    );
}

#[test]
fn symlink_entries_are_refused_whole() {
    assert_refused_whole(
        &[
            Item::File("a/ok.txt", b"fine"),
            Item::Symlink("a/link", "/etc/passwd"),
        ],
        "symbolic link",
    );
}

#[test]
fn duplicate_names_are_refused_whole() {
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, mut index) = bundle(
        t.path(),
        &[Item::File("a/aaaa", b"one"), Item::File("a/bbbb", b"two")],
    );
    // Rename the second entry to the first's name in both headers; the zip writer would refuse to.
    let bytes = fs_err::read(&archive).expect("read");
    let patched: Vec<u8> = {
        let mut out = bytes.clone();
        let needle = b"a/bbbb";
        let mut i = 0;
        while i + needle.len() <= out.len() {
            if &out[i..i + needle.len()] == needle {
                out[i..i + needle.len()].copy_from_slice(b"a/aaaa");
            }
            i += 1;
        }
        out
    };
    assert_ne!(bytes, patched);
    fs_err::write(&archive, patched).expect("write");
    index.files.retain(|f| f.path == "a/aaaa");
    index.files.push(FileEntry {
        path: "a/aaaa".into(),
        size: 3,
        mode: 0o644,
        sha256: Sha256::of(b"two"),
    });
    let staging = t.path().join("staging").join("x");
    fs_err::create_dir_all(&staging).expect("mkdir");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("duplicates are refused");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert_eq!(
        fs_err::read_dir(&staging).expect("ls").count(),
        0,
        "nothing written"
    );
}

#[test]
fn entries_missing_from_the_index_or_of_another_size_are_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, mut index) = bundle(
        t.path(),
        &[Item::File("a", b"1234"), Item::File("b", b"5678")],
    );
    let staging = t.path().join("s");
    fs_err::create_dir_all(&staging).expect("mkdir");
    index.files[1].size = 5;
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("size differs");
    assert!(err.to_string().contains("the index says 5"), "{err}");
    index.files[1].size = 4;
    index.files[1].sha256 = Sha256::of(b"other");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("hash differs");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    index.files.pop();
    let err =
        extract(&archive, &index.clone(), &t.path().join("s2"), &Quiet).expect_err("count differs");
    assert!(err.to_string().contains("entries"), "{err}");
}

#[test]
fn a_zstd_bundle_extracts_and_a_damaged_entry_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let big: Vec<u8> = (0..300_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let (archive, index) = crate::install::fixture::zstd_bundle(
        t.path(),
        &[
            Item::File("lib/big.so", &big),
            Item::File("a.py", b"print(1)\n"),
        ],
    );
    let staging = t.path().join("s");
    fs_err::create_dir_all(&staging).expect("mkdir");
    extract(&archive, &index, &staging, &Quiet).expect("extracts");
    assert_eq!(fs_err::read(staging.join("lib/big.so")).expect("read"), big);
    assert_eq!(
        fs_err::read(staging.join("a.py")).expect("read"),
        b"print(1)\n"
    );
    // One flipped byte inside the first entry's compressed data: zstd or the
    // signed hash refuses it, and nothing of it is kept.
    let mut bytes = fs_err::read(&archive).expect("read");
    bytes[200] ^= 0x40;
    fs_err::write(&archive, &bytes).expect("write");
    let staging = t.path().join("s2");
    fs_err::create_dir_all(&staging).expect("mkdir");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("damaged");
    assert!(
        err.to_string().contains("the bundle archive was refused"),
        "{err}"
    );
}

#[test]
fn a_sound_bundle_extracts_with_modes() {
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, mut index) = bundle(
        t.path(),
        &[
            Item::File("d/run", b"#!/bin/sh\n"),
            Item::File("d/x.py", b"x"),
        ],
    );
    index.files[0].mode = 0o755;
    let staging = t.path().join("s");
    fs_err::create_dir_all(&staging).expect("mkdir");
    extract(&archive, &index, &staging, &Quiet).expect("extracts");
    assert_eq!(fs_err::read(staging.join("d/x.py")).expect("read"), b"x");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs_err::metadata(staging.join("d/run"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}

#[test]
fn backslash_parent_paths_are_refused_whole() {
    assert_refused_whole(
        &[
            Item::File("a/ok.txt", b"fine"),
            Item::File("..\\x", b"evil"),
        ],
        "backslash",
    );
}

#[test]
fn drive_letter_paths_are_refused_whole() {
    assert_refused_whole(
        &[
            Item::File("a/ok.txt", b"fine"),
            Item::File("C:\\x", b"evil"),
        ],
        "backslash",
    );
    assert_refused_whole(
        &[Item::File("a/ok.txt", b"fine"), Item::File("C:/x", b"evil")],
        "drive",
    );
}

#[test]
fn case_colliding_names_are_refused_whole() {
    assert_refused_whole(
        &[
            Item::File("a/Lib.so", b"one"),
            Item::File("a/lib.so", b"two"),
        ],
        "only in case",
    );
}

/// A 16 MiB run of zeros: deflate packs it into about 16 kB.
const BOMB: usize = 16 << 20;

#[test]
fn a_zip_bomb_by_declared_size_is_refused_whole() {
    let zeros = vec![0u8; BOMB];
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, mut index) = bundle(
        t.path(),
        &[
            Item::File("a/ok.txt", b"fine"),
            Item::File("a/bomb", &zeros),
        ],
    );
    assert!(fs_err::metadata(&archive).expect("meta").len() < (BOMB / 100) as u64);
    // The signed index says ten bytes; the archive declares sixteen MiB.
    let bomb = index
        .files
        .iter_mut()
        .find(|f| f.path == "a/bomb")
        .expect("bomb");
    bomb.size = 10;
    bomb.sha256 = Sha256::of(&zeros[..10]);
    let staging = t.path().join("s");
    fs_err::create_dir_all(&staging).expect("mkdir");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("refused");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("the index says 10"), "{err}");
    assert_eq!(fs_err::read_dir(&staging).expect("ls").count(), 0);
}

/// Sets every uncompressed-size field of the zip at `archive` (local and central
/// headers) that holds `from` to `to`: a header that lies about what it inflates to.
fn lie_about_size(archive: &Path, from: u32, to: u32) {
    let mut bytes = fs_err::read(archive).expect("read");
    let mut patched = 0;
    for (sig, at) in [(0x0403_4b50u32, 22usize), (0x0201_4b50, 24)] {
        let mut i = 0;
        while i + at + 4 <= bytes.len() {
            let here = u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4"));
            let size = u32::from_le_bytes(bytes[i + at..i + at + 4].try_into().expect("4"));
            if here == sig && size == from {
                bytes[i + at..i + at + 4].copy_from_slice(&to.to_le_bytes());
                patched += 1;
            }
            i += 1;
        }
    }
    assert_eq!(patched, 2, "one local and one central header");
    fs_err::write(archive, bytes).expect("write");
}

#[test]
fn a_zip_bomb_by_lying_header_writes_no_more_than_the_signed_size() {
    let zeros = vec![0u8; BOMB];
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, mut index) = bundle(t.path(), &[Item::File("bomb", &zeros)]);
    lie_about_size(&archive, BOMB as u32, 10);
    index.files[0].size = 10;
    index.files[0].sha256 = Sha256::of(&zeros[..10]);
    let staging = t.path().join("s");
    fs_err::create_dir_all(&staging).expect("mkdir");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("refused");
    assert_eq!(err.exit_code(), 4, "{err}");
    let written = fs_err::metadata(staging.join("bomb")).map_or(0, |m| m.len());
    assert!(
        written <= 10,
        "{written} bytes written; the cap is the signed 10"
    );
}

#[test]
fn a_zip_bomb_by_entry_count_is_refused_whole() {
    let names: Vec<String> = (0..5000).map(|i| format!("many/{i:05}")).collect();
    let items: Vec<Item<'_>> = names.iter().map(|n| Item::File(n, b"")).collect();
    let t = tempfile::tempdir().expect("tempdir");
    let (archive, mut index) = bundle(t.path(), &items);
    index.files.truncate(1);
    let staging = t.path().join("s");
    fs_err::create_dir_all(&staging).expect("mkdir");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("refused");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("5000 entries"), "{err}");
    assert_eq!(fs_err::read_dir(&staging).expect("ls").count(), 0);
}

/// Found by the `zip_entries` fuzz target (LeakSanitizer: the syncing threads were
/// still running, holding files of the refused tree, after `extract` returned).
/// When an unpack fails, every file it wrote must be closed by the time `extract`
/// returns, so the caller can remove the staging folder (Windows refuses to remove
/// an open file's folder) and nothing keeps working on a refused tree.
#[cfg(target_os = "linux")]
#[test]
fn a_refused_archive_leaves_no_file_open_when_extract_returns() {
    let t = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = (0..300).map(|i| format!("f/{i:03}")).collect();
    let bodies: Vec<Vec<u8>> = names.iter().map(|n| n.repeat(1000).into_bytes()).collect();
    let mut items: Vec<Item<'_>> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| Item::File(n, b))
        .collect();
    items.push(Item::File("last", b"x"));
    let (archive, mut index) = bundle(t.path(), &items);
    let last = index
        .files
        .iter_mut()
        .find(|f| f.path == "last")
        .expect("last");
    last.sha256 = Sha256::of(b"y");
    let staging = t.path().join("staging");
    fs_err::create_dir_all(&staging).expect("mkdir");
    let err = extract(&archive, &index, &staging, &Quiet).expect_err("a wrong hash");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    let open: Vec<_> = fs_err::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter_map(|fd| fs_err::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(&staging))
        .collect();
    assert_eq!(open, Vec::<std::path::PathBuf>::new(), "files left open");
}
