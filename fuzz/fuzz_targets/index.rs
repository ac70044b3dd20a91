//! Fuzz target `index`: untrusted bytes as a bundle's per-file index, and as entry
//! paths.
//!
//! For any input, nothing panics and:
//! - every path `check_entry_path` accepts (the input as text, each of its lines,
//!   and every path of an index) has only normal components, so joined to a folder
//!   it stays inside it;
//! - `FileIndex::from_json` then `validate_index` against an `IndexRef` derived from
//!   the input (its digest, its size, the count and the wrapping sum of the files'
//!   sizes) and an entry taken from it return normally;
//! - an index with no problem has sorted, unique, safe paths and its entry, answers
//!   `get` for each of its files, and round-trips through `to_json`.
//!
//! The same bytes are also read as a list of files built field by field
//! (`arbitrary`), sorted by path, and checked the same way: mutating JSON text
//! seldom turns a size into one near `u64::MAX`, and sums of sizes are where an
//! index can overflow.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use peft_manifest::{FileEntry, FileIndex, IndexRef, Sha256, check_entry_path, validate_index};

/// An accepted path never leaves the folder it is joined to.
fn path_rule(p: &str) {
    if check_entry_path(p).is_ok() {
        assert!(
            Path::new(p)
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "{p:?} was accepted"
        );
        assert!(!p.split('/').any(|c| c == ".." || c.is_empty()), "{p:?}");
    }
}

/// Validates `index` against what a manifest derived from it would promise.
fn check(index: &FileIndex, data: &[u8]) {
    for f in &index.files {
        path_rule(&f.path);
    }
    let expect = IndexRef {
        sha256: Sha256::of(data),
        size: data.len() as u64,
        files: index.files.len() as u64,
        unpacked_size: index
            .files
            .iter()
            .fold(0u64, |sum, f| sum.wrapping_add(f.size)),
    };
    let entry = index
        .files
        .iter()
        .find(|f| f.is_executable())
        .or(index.files.first())
        .map_or("", |f| f.path.as_str());
    let problems = validate_index(index, &expect, entry);
    let carriers = index.carriers();
    assert!(carriers.len() <= index.files.len());
    if problems.is_empty() {
        assert!(index.files.windows(2).all(|w| w[0].path < w[1].path));
        for f in &index.files {
            assert!(check_entry_path(&f.path).is_ok(), "{:?}", f.path);
            assert_eq!(index.get(&f.path), Some(f));
        }
        assert!(index.get(entry).is_some());
        let back = FileIndex::from_json(&index.to_json()).expect("a valid index parses back");
        assert_eq!(&back, index);
    }
}

/// The bytes as files built field by field: (path, size, mode, content tag).
fn structured(data: &[u8]) -> Option<FileIndex> {
    let raw = Vec::<(String, u64, u32, u8)>::arbitrary(&mut Unstructured::new(data)).ok()?;
    let mut files: Vec<FileEntry> = raw
        .into_iter()
        .map(|(path, size, mode, tag)| FileEntry {
            path,
            size,
            mode,
            sha256: Sha256::of(&[tag]),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Some(FileIndex {
        schema: 1,
        version: semver::Version::new(1, 0, 0),
        variant: "fuzz".into(),
        files,
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    path_rule(&text);
    text.lines().for_each(path_rule);
    if let Ok(index) = FileIndex::from_json(data) {
        check(&index, data);
    }
    if let Some(index) = structured(data) {
        check(&index, data);
    }
});
