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
