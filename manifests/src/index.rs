//! The per-file index of a bundle: every file's path, size, mode and SHA-256.
//!
//! The index is a content-addressed blob named by the manifest. The bootstrapper
//! checks every zip entry against it before writing a byte, hashes every file it
//! writes, and keeps a copy in the install so `verify` can re-check it offline. The
//! delta planner compares two indexes to find unchanged files.
//!
//! Paths are relative, `/`-separated and portable: [`check_entry_path`] is the one
//! rule both packing and extraction apply.

use std::collections::HashSet;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::Sha256;

/// A file name reserved for the bootstrapper's own record inside an install.
pub const INSTALL_RECORD: &str = ".peft-install.json";
/// A file name reserved for the install's copy of its index, beside the record (kept
/// apart so that reading the record stays cheap whatever the bundle's size).
pub const INSTALL_INDEX: &str = ".peft-index.json";
/// The names a bundle may not use at its root: the bootstrapper's own files.
pub const RESERVED: [&str; 2] = [INSTALL_RECORD, INSTALL_INDEX];

/// The index of one bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIndex {
    pub schema: u32,
    pub version: Version,
    pub variant: String,
    /// Sorted by path (byte order), unique.
    pub files: Vec<FileEntry>,
}

/// One file of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Unix permission bits: `0o755` for executables, `0o644` otherwise.
    pub mode: u32,
    pub sha256: Sha256,
}

impl FileEntry {
    pub fn is_executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

impl FileIndex {
    /// Parses index JSON (already checked against its digest in the manifest).
    pub fn from_json(bytes: &[u8]) -> Result<FileIndex, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Compact JSON, as stored in the repository (it can hold tens of thousands of entries).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Total bytes of all files, saturating: sizes that add up past `u64::MAX` give
    /// `u64::MAX` (above every limit), never a small wrapped-around total, and
    /// [`crate::validate_index`] refuses such an index.
    pub fn unpacked_size(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |total, f| total.saturating_add(f.size))
    }

    /// The files whose bytes the archive carries: the first path (in index order) of
    /// each distinct content. Every other file repeats a carrier's content and is
    /// produced from it at install time (a hard link, or a copy when its mode
    /// differs), so a bundle with duplicated libraries (PyInstaller's symlinked CUDA
    /// libraries, dereferenced by `pack`) ships each one once.
    pub fn carriers(&self) -> Vec<&FileEntry> {
        let mut seen = HashSet::new();
        self.files
            .iter()
            .filter(|f| seen.insert(f.sha256))
            .collect()
    }

    /// Which files are [`carriers`](Self::carriers), by position in `files`: one flag
    /// per file, where the carriers' paths would be a set of strings (the unpack of
    /// 15,700 files kept about a megabyte less this way).
    pub fn carrier_mask(&self) -> Vec<bool> {
        let mut seen = HashSet::new();
        self.files.iter().map(|f| seen.insert(f.sha256)).collect()
    }

    /// Binary search by path (the files are sorted).
    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.position(path).and_then(|i| self.files.get(i))
    }

    /// The position in `files` of `path`, by binary search (the files are sorted).
    pub fn position(&self, path: &str) -> Option<usize> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
    }
}

/// Why an entry path is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathProblem {
    Empty,
    TooLong,
    Absolute,
    Backslash,
    DriveOrStream,
    ControlCharacter,
    EmptyOrDotComponent,
    ParentComponent,
    ReservedWindowsName(String),
    TrailingDotOrSpace,
    Reserved,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::Empty => f.write_str("is empty"),
            PathProblem::TooLong => f.write_str("is longer than 1024 bytes"),
            PathProblem::Absolute => f.write_str("is absolute"),
            PathProblem::Backslash => f.write_str("contains a backslash"),
            PathProblem::DriveOrStream => f.write_str("contains ':' (a drive or stream)"),
            PathProblem::ControlCharacter => f.write_str("contains a control character"),
            PathProblem::EmptyOrDotComponent => f.write_str("has an empty or '.' component"),
            PathProblem::ParentComponent => f.write_str("has a '..' component"),
            PathProblem::ReservedWindowsName(n) => write!(f, "uses the Windows device name {n:?}"),
            PathProblem::TrailingDotOrSpace => {
                f.write_str("has a component ending in '.' or ' ' (not portable to Windows)")
            }
            PathProblem::Reserved => {
                write!(
                    f,
                    "is reserved for the bootstrapper ({})",
                    RESERVED.join(", ")
                )
            }
        }
    }
}

const WINDOWS_DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Checks that `path` is a safe, portable, relative file path inside a bundle.
pub fn check_entry_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.len() > 1024 {
        return Err(PathProblem::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    if path.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if path.contains(':') {
        return Err(PathProblem::DriveOrStream);
    }
    if path.chars().any(char::is_control) {
        return Err(PathProblem::ControlCharacter);
    }
    for comp in path.split('/') {
        match comp {
            "" | "." => return Err(PathProblem::EmptyOrDotComponent),
            ".." => return Err(PathProblem::ParentComponent),
            _ => {}
        }
        if comp.ends_with('.') || comp.ends_with(' ') {
            return Err(PathProblem::TrailingDotOrSpace);
        }
        let stem = comp.split('.').next().unwrap_or(comp).to_ascii_uppercase();
        if WINDOWS_DEVICES.contains(&stem.as_str()) {
            return Err(PathProblem::ReservedWindowsName(comp.to_string()));
        }
    }
    if RESERVED.contains(&path) {
        return Err(PathProblem::Reserved);
    }
    Ok(())
}

/// Case-folded form used to detect names that collide on case-insensitive file systems.
pub(crate) fn fold(path: &str) -> String {
    path.to_lowercase()
}

/// Paths of `files` that collide with an earlier one when case is ignored, and also
/// files that would need to be both a file and a directory (`a` and `a/b`).
pub(crate) fn collisions(files: &[FileEntry]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for f in files {
        if !seen.insert(fold(&f.path)) {
            out.push(f.path.clone());
        }
    }
    let dirs: HashSet<String> = files
        .iter()
        .flat_map(|f| {
            let p = fold(&f.path);
            p.match_indices('/')
                .map(|(i, _)| p[..i].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for f in files {
        if dirs.contains(&fold(&f.path)) {
            out.push(f.path.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriers_are_the_first_path_of_each_content() {
        let e = |p: &str, c: &[u8]| FileEntry {
            path: p.into(),
            size: c.len() as u64,
            mode: 0o644,
            sha256: Sha256::of(c),
        };
        let idx = FileIndex {
            schema: 1,
            version: "1.0.0".parse().expect("v"),
            variant: "v".into(),
            files: vec![
                e("a/lib.so.13", b"lib"),
                e("b", b"x"),
                e("n/lib.so", b"lib"),
                e("z", b"x"),
            ],
        };
        let c: Vec<&str> = idx.carriers().iter().map(|f| f.path.as_str()).collect();
        assert_eq!(c, vec!["a/lib.so.13", "b"]);
        assert_eq!(idx.carrier_mask(), vec![true, true, false, false]);
        assert_eq!(idx.position("n/lib.so"), Some(2));
        assert_eq!(idx.position("n"), None);
        assert_eq!(idx.get("z").map(|f| f.size), Some(1));
    }

    #[test]
    fn accepts_ordinary_bundle_paths() {
        for ok in [
            "peft_engine/peft_engine",
            "peft_engine/_internal/libpython3.11.so.1.0",
            "a/b c/d.txt",
            "connector.py",
        ] {
            assert_eq!(check_entry_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_escaping_and_unportable_paths() {
        let cases = [
            ("../x", PathProblem::ParentComponent),
            ("a/../../x", PathProblem::ParentComponent),
            ("/etc/passwd", PathProblem::Absolute),
            ("C:/Windows/x", PathProblem::DriveOrStream),
            ("a\\b", PathProblem::Backslash),
            ("a//b", PathProblem::EmptyOrDotComponent),
            ("./a", PathProblem::EmptyOrDotComponent),
            ("a/", PathProblem::EmptyOrDotComponent),
            (
                "nul.txt",
                PathProblem::ReservedWindowsName("nul.txt".into()),
            ),
            ("a/b.", PathProblem::TrailingDotOrSpace),
            ("a\u{0}b", PathProblem::ControlCharacter),
            (INSTALL_RECORD, PathProblem::Reserved),
            (INSTALL_INDEX, PathProblem::Reserved),
        ];
        for (path, want) in cases {
            assert_eq!(check_entry_path(path), Err(want), "{path:?}");
        }
    }
}
