//! Fuzz target `zip_stream`: untrusted bytes as an archive that is still being
//! downloaded, through the bootstrapper's unpack that follows the download
//! (`install/stream.rs`, via `peft_bootstrap::fuzzing`). Its reader parses the zip's
//! local headers itself, before the archive's signed hash can be checked, so it is
//! the code that sees the most untrusted bytes.
//!
//! The signed index is built from the input's own local headers (read with the
//! `zip` crate's streaming reader): every entry whose name is UTF-8, with the size
//! its header declares and the SHA-256 of what it inflates to (or of its name when
//! it does not inflate within its size). The whole input is then written to a
//! `.partial` file, the download is told it is complete, and a `Stream` unpacks it
//! into an empty folder. For any input, nothing panics, the stream ends, and:
//! - the temporary folder holds only the `.partial` file and that folder, which holds
//!   only folders and regular files named in the index (no link, nothing outside);
//! - a stream that succeeds wrote only carriers of the index, each with its size.
//!
//! The temporary folders and LeakSanitizer's one suppression are in `common.rs`.
#![no_main]

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use peft_bootstrap::fuzzing::{Follow, Stream, Watch};
use peft_manifest::{FileEntry, FileIndex, Sha256};

/// The most entries and bytes the harness reads to build the index.
const MAX_ENTRIES: usize = 256;
const MAX_READ: u64 = 16 << 20;

/// An index that lists the entries of the input's local headers.
fn index_of(mut data: &[u8]) -> FileIndex {
    let mut files = Vec::new();
    let mut budget = MAX_READ;
    while files.len() < MAX_ENTRIES {
        let Ok(Some(e)) = zip::read::read_zipfile_from_stream(&mut data) else {
            break;
        };
        let Ok(name) = std::str::from_utf8(e.name_raw()).map(str::to_string) else {
            continue;
        };
        let size = e.size();
        let sha = if size <= budget {
            budget -= size;
            Sha256::of_reader(e.take(size.saturating_add(1)))
                .ok()
                .filter(|(_, n)| *n == size)
                .map(|(sha, _)| sha)
        } else {
            None
        };
        files.push(FileEntry {
            sha256: sha.unwrap_or_else(|| Sha256::of(name.as_bytes())),
            path: name,
            size,
            mode: 0o644,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    FileIndex {
        schema: 1,
        version: semver::Version::new(1, 0, 0),
        variant: "fuzz".into(),
        files,
    }
}

fuzz_target!(|data: &[u8]| {
    let index = index_of(data);
    let tmp = common::temp_dir();
    let partial = tmp.path().join("archive.partial");
    let dest = tmp.path().join("dest");
    std::fs::write(&partial, data).expect("writing the partial file");
    std::fs::create_dir(&dest).expect("creating dest");

    let follow = Arc::new(Follow::default());
    follow.attempt(data.len() as u64);
    follow.end();
    let stream = Stream::start(partial, index.clone(), dest.clone(), follow);
    let result = stream.join();

    common::assert_only_indexed_files_in_dest(tmp.path(), "archive.partial", &index);
    if let Ok(streamed) = result {
        let carriers: HashSet<&str> = index.carriers().iter().map(|f| f.path.as_str()).collect();
        for name in streamed.paths(&index) {
            assert!(carriers.contains(name), "{name:?}");
            let md = std::fs::symlink_metadata(dest.join(name)).expect("written");
            assert_eq!(Some(md.len()), index.get(name).map(|f| f.size), "{name:?}");
        }
    }
});
