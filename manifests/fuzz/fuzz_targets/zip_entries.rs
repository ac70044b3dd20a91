//! Fuzz target: the zip entry checks every bundle passes before one byte is written
//! (`peft-bootstrap`'s `check_entries`: names, kinds, duplicates, case collisions,
//! counts and sizes against the signed index). The input is the archive; the index
//! is made from what the zip's central directory says (names and sizes), so the
//! checks past the entry count are reached. Nothing may panic.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use peft_manifest::{FileEntry, FileIndex, Sha256};

fuzz_target!(|data: &[u8]| {
    let mut files = Vec::new();
    if let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) {
        for i in 0..zip.len().min(10_000) {
            if let Ok(e) = zip.by_index_raw(i) {
                let path = String::from_utf8_lossy(e.name_raw()).into_owned();
                files.push(FileEntry {
                    sha256: Sha256::of(path.as_bytes()),
                    path,
                    size: e.size(),
                    mode: 0o644,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let index = FileIndex {
        schema: 1,
        version: semver::Version::new(1, 0, 0),
        variant: "linux-x86_64-cpu".into(),
        files,
    };
    if let Err(e) = peft_bootstrap::fuzz_check_zip_entries(data, &index) {
        let _ = e.to_string();
    }
});
