//! Fuzz target `zip_entries`: untrusted bytes as a bundle archive, through the
//! bootstrapper's own checks and unpack (`peft_bootstrap::fuzzing`).
//!
//! The signed index is built from the input itself, so that archives get past the
//! count and the listing: every entry whose name is UTF-8, with the size its central
//! directory declares, the SHA-256 of what it inflates to (or of its name when it
//! does not inflate within its size), and one more path repeating the first file's
//! content (which the unpack must produce as a link or a copy). Then, for any
//! input, nothing panics and:
//! - `check_entries` returns normally; an archive it accepts has only safe, distinct
//!   names of regular files, each listed with its size;
//! - such an archive (up to 16 MiB unpacked) is unpacked by `extract` into an empty
//!   folder in a fresh temporary folder, next to the archive; whatever the outcome,
//!   the temporary folder then holds only the archive and that folder, which holds
//!   only folders and regular files named in the index (no link, nothing outside);
//!   when `extract` succeeds, every file of the index is there with its size.
//!
//! The temporary folders and LeakSanitizer's one suppression are in `common.rs`.
#![no_main]

mod common;

use std::collections::HashSet;
use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use peft_bootstrap::fuzzing::{check_entries, extract};
use peft_bootstrap::{Event, Reporter};
use peft_manifest::{FileEntry, FileIndex, Sha256, check_entry_path};

/// The most bytes an accepted archive may unpack to before `extract` is skipped.
const MAX_EXTRACT: u64 = 16 << 20;

struct Quiet;

impl Reporter for Quiet {
    fn emit(&self, _event: Event) {}
}

/// The content digest of entry `i`, read no further than its declared size.
fn digest<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    i: usize,
    size: u64,
) -> Option<Sha256> {
    let e = zip.by_index(i).ok()?;
    let (sha, n) = Sha256::of_reader(e.take(size.saturating_add(1))).ok()?;
    (n == size).then_some(sha)
}

/// An index that lists the archive's own entries (see the module documentation).
fn index_of<R: Read + std::io::Seek>(zip: &mut zip::ZipArchive<R>, odd: bool) -> FileIndex {
    let mut files = Vec::new();
    let mut budget = MAX_EXTRACT;
    for i in 0..zip.len() {
        let Ok(e) = zip.by_index_raw(i) else { continue };
        let Ok(name) = std::str::from_utf8(e.name_raw()).map(str::to_string) else {
            continue;
        };
        let size = e.size();
        let mode = if e.unix_mode().is_some_and(|m| m & 0o111 != 0) {
            0o755
        } else {
            0o644
        };
        drop(e);
        let sha = if size <= budget {
            budget -= size;
            digest(zip, i, size)
        } else {
            None
        };
        files.push(FileEntry {
            sha256: sha.unwrap_or_else(|| Sha256::of(name.as_bytes())),
            path: name,
            size,
            mode,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    if let Some(first) = files.first().cloned() {
        // Sorts after its carrier; the mode decides between a hard link and a copy.
        let mode = if odd { first.mode ^ 0o111 } else { first.mode };
        files.push(FileEntry {
            path: format!("{}~", first.path),
            mode,
            ..first
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
    }
    FileIndex {
        schema: 1,
        version: semver::Version::new(1, 0, 0),
        variant: "fuzz".into(),
        files,
    }
}

fn unpack(data: &[u8], index: &FileIndex) {
    let tmp = common::temp_dir();
    let archive = tmp.path().join("archive.zip");
    let dest = tmp.path().join("dest");
    std::fs::write(&archive, data).expect("writing the archive");
    std::fs::create_dir(&dest).expect("creating dest");
    let result = extract(&archive, index, &dest, &Quiet);
    common::assert_only_indexed_files_in_dest(tmp.path(), "archive.zip", index);
    if result.is_ok() {
        for f in &index.files {
            let md = std::fs::symlink_metadata(dest.join(&f.path)).expect("every file is there");
            assert!(md.is_file() && md.len() == f.size, "{:?}", f.path);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let Ok(mut zip) = zip::ZipArchive::with_config(config, Cursor::new(data)) else {
        return;
    };
    let index = index_of(&mut zip, data.len() % 2 == 1);
    if check_entries(&mut zip, &index).is_err() {
        return;
    }
    let mut names = HashSet::new();
    for i in 0..zip.len() {
        let e = zip.by_index_raw(i).expect("an accepted entry is readable");
        let name = std::str::from_utf8(e.name_raw()).expect("an accepted name is UTF-8");
        assert!(check_entry_path(name).is_ok(), "{name:?}");
        assert!(!e.is_dir() && !e.is_symlink(), "{name:?}");
        assert!(names.insert(name.to_lowercase()), "{name:?} twice");
        assert_eq!(index.get(name).map(|f| f.size), Some(e.size()), "{name:?}");
    }
    let total = index
        .files
        .iter()
        .fold(0u64, |s, f| s.saturating_add(f.size));
    if total <= MAX_EXTRACT {
        unpack(data, &index);
    }
});
