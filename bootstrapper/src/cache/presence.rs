//! The cheap check the cached `ensure` makes before it answers "ready": every file
//! the install's index lists is there, a regular file of its signed size. No
//! hashing (that is `verify`): it catches what an antivirus quarantine or a hand
//! does (a file or a folder deleted or moved away), not a flipped byte.
//!
//! The full check is one `stat` per file (5,800 for the real full bundle). Once it
//! found an install whole, the modification times of the install's folders are
//! kept in `<cache>/presence.json`: removing, adding or renaming an entry changes its
//! folder's time, so while every folder's time is unchanged no file can have gone,
//! and the next check is one `stat` per folder (a few hundred) without reading the
//! index. Times less than 2 s old are not kept (a file system with coarse times
//! could miss a change within the same tick); the next check is then full again.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use peft_manifest::index::INSTALL_INDEX;
use serde::{Deserialize, Serialize};

use super::{read_json, write_json_atomic};

/// The file, in the cache root, that keeps the folder times of whole installs.
pub const SNAPSHOT: &str = "presence.json";

/// Folder times younger than this are not trusted to show a change.
const SETTLED: Duration = Duration::from_secs(2);

/// `presence.json`: per install (its directory name), each folder's modification
/// time in nanoseconds since 1970, as found when the install was last found whole.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    #[serde(default)]
    installs: BTreeMap<String, BTreeMap<String, u64>>,
}

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
pub fn gaps(root: &Path, name: &str, entry: &str) -> Vec<Gap> {
    let dir = root.join("versions").join(name);
    let snapshot_path = root.join(SNAPSHOT);
    let mut snapshot: Snapshot = read_json(&snapshot_path).ok().flatten().unwrap_or_default();
    if let Some(folders) = snapshot.installs.get(name)
        && !folders.is_empty()
        && folders
            .iter()
            .all(|(f, t)| mtime(&join(&dir, f)) == Some(*t))
    {
        return Vec::new();
    }
    let (gaps, times) = check(&dir, &dir.join(super::INSTALL_RECORD), entry);
    let settled = times.is_some_and(|times| {
        let now = nanos(SystemTime::now()).unwrap_or(0);
        let young = times
            .values()
            .any(|t| now.saturating_sub(*t) < SETTLED.as_nanos() as u64);
        if young {
            return false;
        }
        snapshot.installs.insert(name.to_string(), times);
        true
    });
    if gaps.is_empty() && settled {
        // Installs that are gone are forgotten; a failed write only costs a full
        // check next time.
        snapshot
            .installs
            .retain(|n, _| root.join("versions").join(n).is_dir());
        let _ = write_json_atomic(&snapshot_path, &snapshot);
    }
    gaps
}

/// A path's modification time in nanoseconds since 1970 (not following a link).
fn mtime(p: &Path) -> Option<u64> {
    nanos(fs_err::symlink_metadata(p).ok()?.modified().ok()?)
}

fn nanos(t: SystemTime) -> Option<u64> {
    u64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// The full check, and (when every file is there) the times of the install's
/// folders, taken before its files were looked at.
fn check(dir: &Path, record: &Path, entry: &str) -> (Vec<Gap>, Option<BTreeMap<String, u64>>) {
    let bytes = match fs_err::read(dir.join(INSTALL_INDEX)) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return (vec![unreadable(&e.to_string())], None),
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
        Err(why) => return (vec![unreadable(&why)], None),
    };
    // The folders holding the files, and the install folder itself ("").
    let mut folders: BTreeSet<&str> = BTreeSet::from([""]);
    for f in &listed.files {
        let mut p: &str = &f.path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !folders.insert(parent) {
                break;
            }
            p = parent;
        }
    }
    let times: Option<BTreeMap<String, u64>> = folders
        .iter()
        .map(|f| Some((f.to_string(), mtime(&join(dir, f))?)))
        .collect();
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
    let times = if out.is_empty() { times } else { None };
    (out, times)
}

fn unreadable(why: &str) -> Gap {
    Gap {
        path: INSTALL_INDEX.to_string(),
        problem: Some(format!("the install's index cannot be read: {why}")),
    }
}

fn join(dir: &Path, rel: &str) -> std::path::PathBuf {
    rel.split('/')
        .filter(|c| !c.is_empty())
        .fold(dir.to_path_buf(), |p, c| p.join(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sets a folder's (or file's) modification time to an hour ago.
    fn age(p: &Path) {
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let f = fs_err::File::open(p).expect("open");
        f.file().set_modified(hour_ago).expect("set mtime");
    }

    fn install(root: &Path) -> std::path::PathBuf {
        let dir = root.join("versions").join("1.0.0-x");
        fs_err::create_dir_all(dir.join("e/_internal/pkg")).expect("mkdir");
        fs_err::write(dir.join("e/run"), "#!/bin/sh\n").expect("w");
        fs_err::write(dir.join("e/_internal/pkg/a.py"), "A = 1\n").expect("w");
        fs_err::write(dir.join("e/_internal/lib.so"), vec![7u8; 100]).expect("w");
        let index = r#"{"files":[
            {"path":"e/_internal/lib.so","size":100},
            {"path":"e/_internal/pkg/a.py","size":6},
            {"path":"e/run","size":10}]}"#;
        fs_err::write(dir.join(INSTALL_INDEX), index).expect("w");
        fs_err::write(dir.join(super::super::INSTALL_RECORD), "{}").expect("w");
        for f in ["", "e", "e/_internal", "e/_internal/pkg"] {
            age(&join(&dir, f));
        }
        dir
    }

    #[test]
    fn a_whole_install_is_remembered_by_its_folder_times_and_a_removal_is_seen() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = install(t.path());
        assert_eq!(gaps(t.path(), "1.0.0-x", "e/run"), vec![]);
        let kept: Snapshot = read_json(&t.path().join(SNAPSHOT))
            .expect("read")
            .expect("written");
        assert_eq!(kept.installs["1.0.0-x"].len(), 4, "{kept:?}");
        // The next check does not read the index: one that lists a file that never
        // existed (rewritten in place, so no folder time changes) is not noticed.
        let listed = r#"{"files":[{"path":"e/_internal/pkg/never.py","size":1}]}"#;
        fs_err::write(dir.join(INSTALL_INDEX), listed).expect("w");
        assert_eq!(gaps(t.path(), "1.0.0-x", "e/run"), vec![]);
        // Removing a file changes its folder's time: the full check runs again.
        fs_err::remove_file(dir.join("e/_internal/pkg/a.py")).expect("rm");
        let found = gaps(t.path(), "1.0.0-x", "e/run");
        assert_eq!(
            found,
            vec![Gap {
                path: "e/_internal/pkg/never.py".into(),
                problem: None
            }]
        );
    }

    #[test]
    fn a_deleted_folder_and_a_wrong_size_are_gaps_and_young_times_are_not_kept() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = install(t.path());
        fs_err::remove_dir_all(dir.join("e/_internal/pkg")).expect("rm");
        fs_err::write(dir.join("e/run"), "").expect("empty it");
        let found = gaps(t.path(), "1.0.0-x", "e/run");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].describe(), "e/_internal/pkg/a.py: missing");
        assert_eq!(found[1].describe(), "e/run: 0 bytes, the index says 10");
        // Whole again, but its folders changed just now: not remembered yet.
        fs_err::create_dir_all(dir.join("e/_internal/pkg")).expect("mkdir");
        fs_err::write(dir.join("e/_internal/pkg/a.py"), "A = 1\n").expect("w");
        fs_err::write(dir.join("e/run"), "#!/bin/sh\n").expect("w");
        assert_eq!(gaps(t.path(), "1.0.0-x", "e/run"), vec![]);
        assert!(!t.path().join(SNAPSHOT).exists());
    }
}
