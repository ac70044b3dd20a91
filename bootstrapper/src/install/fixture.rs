//! Test fixtures shared by the unpack's tests: zips and the indexes that sign them.

use fs_err::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use peft_manifest::{FileEntry, FileIndex, Sha256};
use zip::write::SimpleFileOptions;

use crate::report::{Event, Reporter};

/// A reporter that says nothing.
pub struct Quiet;
impl Reporter for Quiet {
    fn emit(&self, _: Event) {}
}

pub enum Item<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// A zip of `items` and an index that lists exactly them (as a signer could).
pub fn bundle(dir: &Path, items: &[Item<'_>]) -> (PathBuf, FileIndex) {
    bundle_with(dir, items, SimpleFileOptions::default())
}

/// The same as [`bundle`] with zstd entries (method 93), as `peft-release pack` writes them.
pub fn zstd_bundle(dir: &Path, items: &[Item<'_>]) -> (PathBuf, FileIndex) {
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Zstd)
        .compression_level(Some(19));
    bundle_with(dir, items, options)
}

fn bundle_with(dir: &Path, items: &[Item<'_>], options: SimpleFileOptions) -> (PathBuf, FileIndex) {
    let path = dir.join("bundle.zip");
    let z = zip::ZipWriter::new(File::create(&path).expect("create"));
    let files = write_items(z, items, options);
    (path, index_of(files))
}

/// The same as [`bundle`], written the way a non-seekable writer must: sizes in data
/// descriptors after each entry, not in its local header.
pub fn streamed_bundle(dir: &Path, items: &[Item<'_>]) -> (PathBuf, FileIndex) {
    let path = dir.join("bundle.zip");
    let mut bytes = Vec::new();
    let z = zip::ZipWriter::new_stream(&mut bytes);
    let files = write_items(z, items, SimpleFileOptions::default());
    fs_err::write(&path, bytes).expect("write");
    (path, index_of(files))
}

fn write_items<W: std::io::Write + std::io::Seek>(
    mut z: zip::ZipWriter<W>,
    items: &[Item<'_>],
    options: SimpleFileOptions,
) -> Vec<FileEntry> {
    let mut files = Vec::new();
    for it in items {
        let (name, bytes) = match it {
            Item::File(name, data) => {
                z.start_file(*name, options).expect("start");
                z.write_all(data).expect("write");
                (name, *data)
            }
            Item::Symlink(name, target) => {
                z.add_symlink(*name, *target, SimpleFileOptions::default())
                    .expect("symlink");
                (name, target.as_bytes())
            }
        };
        files.push(FileEntry {
            path: name.to_string(),
            size: bytes.len() as u64,
            mode: 0o644,
            sha256: Sha256::of(bytes),
        });
    }
    z.finish().expect("finish");
    files
}

fn index_of(mut files: Vec<FileEntry>) -> FileIndex {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    FileIndex {
        schema: 1,
        version: "1.0.0".parse().expect("v"),
        variant: "t".into(),
        files,
    }
}
