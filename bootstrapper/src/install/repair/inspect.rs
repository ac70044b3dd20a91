//! Re-hashing an install against its signed index (`verify`): which files are
//! damaged, missing or of the wrong mode, which folders are not real folders, and
//! which files the index does not list.

use std::path::Path;

use peft_manifest::index::RESERVED;
use peft_manifest::{FileEntry, FileIndex};

use super::TEMP_PREFIX;
use crate::error::{Error, Result};
use crate::install::executable;
use crate::install::extract::folders;
use crate::report::{Phase, Reporter};
use crate::source::hash_file;

/// What is wrong with one file of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Not there.
    Missing,
    /// Its bytes differ, it cannot be read, or it is not a regular file.
    Content(String),
    /// The right bytes, but the execute bit differs from the index.
    Mode,
}

/// A file of the index whose copy on disk is wrong.
#[derive(Debug, Clone)]
pub struct Damaged {
    pub entry: FileEntry,
    pub fault: Fault,
}

impl Damaged {
    /// The line `verify` reports for it.
    pub fn describe(&self) -> String {
        let f = &self.entry;
        match &self.fault {
            Fault::Missing => format!("{}: missing", f.path),
            Fault::Content(why) => format!("{}: {why}", f.path),
            Fault::Mode => format!(
                "{}: the right content but {}executable",
                f.path,
                if f.is_executable() { "not " } else { "" }
            ),
        }
    }
}

/// What [`inspect`] found.
#[derive(Debug, Default)]
pub struct Inspection {
    pub damaged: Vec<Damaged>,
    /// Folders of the index that are symbolic links (or files): a repair never
    /// writes through them.
    pub links: Vec<String>,
    /// Files on disk the index does not list (relative paths).
    pub extra: Vec<String>,
}

impl Inspection {
    /// Every problem, one line each (extra files are not problems).
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .links
            .iter()
            .map(|l| format!("{l}: a symbolic link or file where the index has a folder"))
            .collect();
        out.extend(self.damaged.iter().map(Damaged::describe));
        out
    }
}

/// Re-hashes every file of the install in `dir` against `index`.
pub fn inspect(dir: &Path, index: &FileIndex, reporter: &dyn Reporter) -> Result<Inspection> {
    let mut found = Inspection::default();
    for d in folders(index, dir) {
        if d == dir {
            continue;
        }
        if let Ok(m) = fs_err::symlink_metadata(&d)
            && !m.is_dir()
        {
            found.links.push(relative(dir, &d));
        }
    }
    found.links.sort();
    let total = index.unpacked_size();
    let mut done = 0;
    reporter.progress(Phase::Verify, 0, total);
    for f in &index.files {
        let p = executable(dir, &f.path);
        let fault = match fs_err::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Fault::Missing),
            Err(e) => Some(Fault::Content(e.to_string())),
            Ok(m) if !m.is_file() => Some(Fault::Content(
                "not a regular file (a symbolic link or a folder)".into(),
            )),
            Ok(m) => match hash_file(&p) {
                Ok((hex, n)) if hex == f.sha256.hex() && n == f.size => {
                    (!mode_matches(&m, f)).then_some(Fault::Mode)
                }
                Ok((hex, n)) => Some(Fault::Content(format!(
                    "{n} bytes, SHA-256 {hex}; expected {} bytes, {}",
                    f.size, f.sha256
                ))),
                Err(e) => Some(Fault::Content(e.to_string())),
            },
        };
        if let Some(fault) = fault {
            found.damaged.push(Damaged {
                entry: f.clone(),
                fault,
            });
        }
        done += f.size;
        reporter.progress(Phase::Verify, done, total);
    }
    extra_files(dir, dir, index, &mut found.extra)?;
    found.extra.sort();
    Ok(found)
}

/// Files under `at` (not following links) that `index` does not list.
fn extra_files(root: &Path, at: &Path, index: &FileIndex, out: &mut Vec<String>) -> Result<()> {
    let rd = match fs_err::read_dir(at) {
        Ok(rd) => rd,
        Err(e) if at != root && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::storage("listing", at, e)),
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = relative(root, &p);
        match e.file_type() {
            Ok(t) if t.is_dir() => extra_files(root, &p, index, out)?,
            _ if RESERVED.contains(&rel.as_str()) || index.get(&rel).is_some() => {}
            // A repair's own temporary file, left by a killed run.
            _ if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) => {}
            _ => out.push(rel),
        }
    }
    Ok(())
}

/// `p` below `root`, `/`-separated.
fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the execute bit on disk is the index's (there is none to compare off Unix).
#[cfg(unix)]
fn mode_matches(m: &std::fs::Metadata, f: &FileEntry) -> bool {
    use std::os::unix::fs::PermissionsExt;
    (m.permissions().mode() & 0o111 != 0) == f.is_executable()
}

#[cfg(not(unix))]
fn mode_matches(_: &std::fs::Metadata, _: &FileEntry) -> bool {
    true
}
