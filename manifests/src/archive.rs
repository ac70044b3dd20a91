//! The rules every entry of a bundle's zip archive must keep before a byte of it is
//! written: a safe relative path ([`check_entry_path`]) listed in the signed index,
//! with the index's size; a regular file (no symbolic link, no directory, no device);
//! no name twice, also when case is ignored (a case-insensitive disk must never see
//! two entries land on one file); exactly the index's carriers (each distinct content
//! once). The bootstrapper refuses a bundle on the first problem; `peft-release
//! verify` reports it. Reads only the central directory (names, sizes, modes), never
//! an entry's data.

use std::collections::HashSet;
use std::io::{Read, Seek};

use crate::index::{FileIndex, check_entry_path};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// Checks every entry of `archive` against `index` without writing anything.
pub fn check_entries<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    index: &FileIndex,
) -> Result<(), String> {
    // Counted as a list: an index naming one path twice must not shrink the count.
    let carrier_list = index.carriers();
    if zip.len() != carrier_list.len() {
        return Err(format!(
            "it has {} entries, the index lists {} files with {} distinct contents",
            zip.len(),
            index.files.len(),
            carrier_list.len()
        ));
    }
    let carriers: HashSet<&str> = carrier_list.iter().map(|f| f.path.as_str()).collect();
    let mut seen = HashSet::new();
    let mut folded = HashSet::new();
    for i in 0..zip.len() {
        let e = zip
            .by_index_raw(i)
            .map_err(|e| format!("entry {i} is unreadable: {e}"))?;
        let name = std::str::from_utf8(e.name_raw())
            .map_err(|_| format!("entry {i} has a name that is not UTF-8"))?
            .to_string();
        check_entry_path(&name).map_err(|p| format!("the entry {name:?} {p}"))?;
        if e.is_symlink() {
            return Err(format!("the entry {name:?} is a symbolic link"));
        }
        if e.is_dir() {
            return Err(format!("the entry {name:?} is a directory"));
        }
        if let Some(mode) = e.unix_mode()
            && mode & S_IFMT != 0
            && mode & S_IFMT != S_IFREG
        {
            return Err(format!(
                "the entry {name:?} is not a regular file (mode {mode:o})"
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(format!("the entry {name:?} appears twice"));
        }
        // The index is checked for this too; a case-insensitive disk must never
        // see two entries land on one file.
        if !folded.insert(name.to_lowercase()) {
            return Err(format!(
                "the entry {name:?} differs from another only in case"
            ));
        }
        let Some(f) = index.get(&name) else {
            return Err(format!("the entry {name:?} is not in the signed index"));
        };
        if !carriers.contains(name.as_str()) {
            return Err(format!(
                "the entry {name:?} repeats content the archive carries under another name"
            ));
        }
        if e.size() != f.size {
            return Err(format!(
                "the entry {name:?} is {} bytes, the index says {}",
                e.size(),
                f.size
            ));
        }
    }
    Ok(())
}

/// Whether any entry of `zip` is compressed with zstd (method 93), which only
/// bootstrappers from [`crate::ZSTD_SINCE`] on can read.
pub fn has_zstd_entries<R: Read + Seek>(zip: &mut zip::ZipArchive<R>) -> Result<bool, String> {
    for i in 0..zip.len() {
        let e = zip
            .by_index_raw(i)
            .map_err(|e| format!("entry {i} is unreadable: {e}"))?;
        if e.compression() == zip::CompressionMethod::Zstd {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;

    use super::*;
    use crate::{FileEntry, Sha256};

    /// A zip of `files` in memory and an index listing them as they are.
    fn bundle(files: &[(&str, &[u8])]) -> (zip::ZipArchive<Cursor<Vec<u8>>>, FileIndex) {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            w.start_file(*name, SimpleFileOptions::default())
                .expect("entry");
            w.write_all(bytes).expect("write");
        }
        let zip = zip::ZipArchive::new(Cursor::new(w.finish().expect("zip").into_inner()))
            .expect("read back");
        let mut entries: Vec<FileEntry> = files
            .iter()
            .map(|(name, bytes)| FileEntry {
                path: name.to_string(),
                size: bytes.len() as u64,
                mode: 0o644,
                sha256: Sha256::of(bytes),
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let index = FileIndex {
            schema: 1,
            version: "1.0.0".parse().expect("version"),
            variant: "x".into(),
            files: entries,
        };
        (zip, index)
    }

    #[test]
    fn a_sound_archive_passes() {
        let (mut zip, index) = bundle(&[("a/one", b"1"), ("b/two", b"22")]);
        assert_eq!(check_entries(&mut zip, &index), Ok(()));
    }

    #[test]
    fn each_broken_rule_is_named() {
        let (mut zip, index) = bundle(&[("a/Lib.so", b"1"), ("a/lib.so", b"2")]);
        let why = check_entries(&mut zip, &index).expect_err("refused");
        assert!(why.contains("only in case"), "{why}");

        let (mut zip, mut index) = bundle(&[("a/one", b"1")]);
        index.files[0].size = 7;
        let why = check_entries(&mut zip, &index).expect_err("refused");
        assert!(why.contains("the index says 7"), "{why}");

        let (mut zip, mut index) = bundle(&[("a/one", b"1")]);
        index.files[0].path = "a/other".into();
        let why = check_entries(&mut zip, &index).expect_err("refused");
        assert!(why.contains("not in the signed index"), "{why}");

        let (mut zip, index) = bundle(&[("../x", b"1")]);
        let why = check_entries(&mut zip, &index).expect_err("refused");
        assert!(why.contains("\"../x\""), "{why}");
    }
}
