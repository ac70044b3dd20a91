//! The cheap check the cached `ensure` makes before it answers "ready": every file
//! the install's index lists is there, a regular file of its signed size. One
//! `stat` per file, no hashing (that is `verify`): it catches what an antivirus
//! quarantine or a hand does (a file or a folder deleted, a file emptied), not a
//! flipped byte.

use std::borrow::Cow;
use std::path::Path;

use peft_manifest::index::INSTALL_INDEX;
use serde::Deserialize;

/// A file of the index that is not on disk as the index says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The path relative to the install folder, as the index writes it.
    pub path: String,
    /// `None` when it is not there; else what is wrong ("12 bytes, the index says 40").
    pub problem: Option<String>,
}

impl Gap {
    /// `path: missing` or `path: <problem>`.
    pub fn describe(&self) -> String {
        match &self.problem {
            None => format!("{}: missing", self.path),
            Some(p) => format!("{}: {p}", self.path),
        }
    }
}

/// The parts of the index this check reads: paths and sizes, borrowed from the
/// bytes where they need no unescaping (the 5,800-file index of the 3 GiB bench
/// bundle is 1.37 MB; digests are skipped, not decoded).
#[derive(Deserialize)]
struct Listed<'a> {
    #[serde(borrow)]
    files: Vec<ListedFile<'a>>,
}

#[derive(Deserialize)]
struct ListedFile<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    size: u64,
}

/// An older record that keeps the index inside.
#[derive(Deserialize)]
struct Inside<'a> {
    #[serde(borrow, default)]
    index: Option<Listed<'a>>,
}

/// The files of the install in `dir` that are missing or not of their signed size;
/// `entry` (the executable, relative) too when the index does not list it. When the index
/// cannot be read, that is the one gap reported.
pub fn gaps(dir: &Path, record: &Path, entry: &str) -> Vec<Gap> {
    let bytes = match fs_err::read(dir.join(INSTALL_INDEX)) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return vec![unreadable(&e.to_string())],
    };
    let owned;
    let listed = match &bytes {
        Some(b) => serde_json::from_slice::<Listed<'_>>(b).map_err(|e| e.to_string()),
        None => {
            // Written before the index had a file of its own, or removed by hand.
            owned = fs_err::read(record).map_err(|e| e.to_string());
            match &owned {
                Ok(b) => match serde_json::from_slice::<Inside<'_>>(b) {
                    Ok(Inside { index: Some(l) }) => Ok(l),
                    Ok(Inside { index: None }) => Err("it is not there".to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.clone()),
            }
        }
    };
    let listed = match listed {
        Ok(l) => l,
        Err(why) => return vec![unreadable(&why)],
    };
    let mut out = Vec::new();
    let mut entry_listed = false;
    for f in &listed.files {
        entry_listed |= f.path == entry;
        let problem = match fs_err::symlink_metadata(join(dir, &f.path)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(e.to_string()),
            Ok(m) if !m.is_file() => Some("not a regular file".to_string()),
            Ok(m) if m.len() != f.size => {
                Some(format!("{} bytes, the index says {}", m.len(), f.size))
            }
            Ok(_) => continue,
        };
        out.push(Gap {
            path: f.path.to_string(),
            problem,
        });
    }
    if !entry_listed && !join(dir, entry).is_file() {
        out.insert(
            0,
            Gap {
                path: entry.to_string(),
                problem: None,
            },
        );
    }
    out
}

fn unreadable(why: &str) -> Gap {
    Gap {
        path: INSTALL_INDEX.to_string(),
        problem: Some(format!("the install's index cannot be read: {why}")),
    }
}

fn join(dir: &Path, rel: &str) -> std::path::PathBuf {
    rel.split('/').fold(dir.to_path_buf(), |p, c| p.join(c))
}

