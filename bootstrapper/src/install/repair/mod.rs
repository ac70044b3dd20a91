//! `verify --repair`: rewriting only the damaged files of an install, each from the
//! cheapest source that has its signed bytes.
//!
//! An install is otherwise never modified in place: it appears whole by a rename,
//! and a running engine, `ensure`'s cached answer and delta updates (which hard-link
//! its files) rely on that. Repair is the exception because the files it replaces
//! are already wrong: nothing that reads them can be worse off. It holds the cache
//! lock throughout, and it never writes into a file: each repaired file is written
//! to a temporary file beside it (`.peft-repair-*`), hashed while written and capped
//! at its signed size, compared with the index, given its mode, fsynced, and renamed
//! over the damaged one (then the folder is fsynced). Bytes that do not match are
//! discarded and the damaged file is left as it was. A process that still has the
//! old file open keeps reading the old inode.
//!
//! [`Repair`] keeps what is still to do, by content: one SHA-256 can stand for
//! several paths (repeated libraries); its first path is written from a source and
//! the others are copied from that verified file. The sources, tried by the caller
//! in this order: installed files with that SHA-256 (any install, this one too)
//! ([`Repair::mend_from_installs`]); a complete archive in `downloads/`, an offline
//! folder's or a `file://` repository's archive, or a whole downloaded archive
//! ([`Repair::mend_from_archive`]), reading just the needed entries; ranges of the
//! archive over HTTP ([`mend_from_network`]).

mod inspect;
mod plan;
mod ranged;

pub use inspect::{Damaged, Fault, Inspection, inspect};
pub use ranged::{Network, mend_from_network};

use fs_err::File;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use peft_manifest::{CopyError, FileEntry, FileIndex, Sha256, copy_capped};

use super::executable;
use super::extract::{open, set_mode};
use crate::cache::sync_dir;
use crate::error::{Error, Result};
use crate::report::{RepairSource, Repaired};

/// Temporary files of a repair start with this (beside the file they replace).
pub const TEMP_PREFIX: &str = ".peft-repair-";

/// What is still to be repaired in one install, and what was.
#[derive(Debug)]
pub struct Repair {
    dir: PathBuf,
    /// Damaged files by content: every path that should hold it.
    todo: BTreeMap<Sha256, Vec<FileEntry>>,
    /// The files rewritten, in order.
    pub repaired: Vec<Repaired>,
    /// Repository bytes that did not match their signed hash: one line each.
    pub wrong: Vec<String>,
    buf: Vec<u8>,
}

impl Repair {
    /// The repair of the install in `dir`; files of the wrong mode only are fixed
    /// here and now (their bytes are right).
    pub fn new(dir: &Path, damaged: &[Damaged]) -> Result<Repair> {
        let mut r = Repair {
            dir: dir.to_path_buf(),
            todo: BTreeMap::new(),
            repaired: Vec::new(),
            wrong: Vec::new(),
            buf: vec![0u8; 1 << 20],
        };
        for d in damaged {
            if d.fault == Fault::Mode {
                let p = executable(dir, &d.entry.path);
                let f = File::open(&p).map_err(|e| Error::storage("opening", &p, e))?;
                set_mode(&f, d.entry.mode)
                    .map_err(|e| Error::storage("setting the mode of", &p, e))?;
                r.done(&d.entry.path, RepairSource::Cache);
            } else {
                r.todo
                    .entry(d.entry.sha256)
                    .or_default()
                    .push(d.entry.clone());
            }
        }
        Ok(r)
    }

    /// Whether nothing is left to repair.
    pub fn is_done(&self) -> bool {
        self.todo.is_empty()
    }

    /// The paths still damaged.
    pub fn left(&self) -> Vec<String> {
        self.todo
            .values()
            .flatten()
            .map(|f| f.path.clone())
            .collect()
    }

    fn done(&mut self, path: &str, from: RepairSource) {
        self.repaired.push(Repaired {
            path: path.to_string(),
            from,
        });
    }

    /// Writes the content `sha` from `input` into every path that should hold it.
    /// `Ok(false)` (and, for a repository, a line in [`Repair::wrong`]) when the bytes
    /// do not match; nothing is written then.
    fn take(
        &mut self,
        sha: Sha256,
        input: &mut dyn Read,
        from: RepairSource,
        what: &str,
    ) -> Result<bool> {
        let Some(paths) = self.todo.get(&sha).cloned() else {
            return Ok(true);
        };
        let (first, rest) = paths.split_first().ok_or(Error::Internal(
            "a repair with no path for a content".into(),
        ))?;
        if let Err(why) = mend(input, &self.dir, first, &mut self.buf)? {
            let line = format!("{} from {what}: {why}", first.path);
            if from == RepairSource::Cache {
                tracing::debug!("not usable for the repair: {line}");
            } else {
                self.wrong.push(line);
            }
            return Ok(false);
        }
        self.done(&first.path, from);
        let src = executable(&self.dir, &first.path);
        for f in rest {
            let mut input = File::open(&src).map_err(|e| Error::storage("opening", &src, e))?;
            if let Err(why) = mend(&mut input, &self.dir, f, &mut self.buf)? {
                return Err(Error::storage("copying", &src, std::io::Error::other(why)));
            }
            self.done(&f.path, from);
        }
        self.todo.remove(&sha);
        Ok(true)
    }

    /// Copies damaged contents from installed files (`(folder, index)` of every
    /// install, this one included) that hold the same SHA-256 and still hash right.
    pub fn mend_from_installs<'i>(
        &mut self,
        installs: impl IntoIterator<Item = (PathBuf, &'i FileIndex)>,
    ) -> Result<()> {
        for (dir, index) in installs {
            let mut by_sha: HashMap<Sha256, Vec<&str>> = HashMap::new();
            for f in &index.files {
                by_sha.entry(f.sha256).or_default().push(&f.path);
            }
            let wanted: Vec<Sha256> = self.todo.keys().copied().collect();
            for sha in wanted {
                let damaged = self.todo.get(&sha).cloned().unwrap_or_default();
                for path in by_sha.get(&sha).into_iter().flatten() {
                    if dir == self.dir && damaged.iter().any(|f| f.path == *path) {
                        continue;
                    }
                    let p = executable(&dir, path);
                    if !fs_err::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                        continue;
                    }
                    let Ok(mut input) = File::open(&p) else {
                        continue;
                    };
                    if self.take(
                        sha,
                        &mut input,
                        RepairSource::Cache,
                        &p.display().to_string(),
                    )? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the damaged contents from the local zip `archive`, packed with `index`
    /// (each content is in the entry of its first path, its carrier).
    pub fn mend_from_archive(
        &mut self,
        archive: &Path,
        index: &FileIndex,
        from: RepairSource,
    ) -> Result<()> {
        let mut zip = match open(archive) {
            Ok(z) => z,
            Err(e) if from == RepairSource::Cache => {
                tracing::debug!("{} is not usable for the repair: {e}", archive.display());
                return Ok(());
            }
            Err(e) => {
                self.wrong.push(format!("{}: {e}", archive.display()));
                return Ok(());
            }
        };
        self.mend_from_zip(&mut zip, index, from, &archive.display().to_string())
    }

    /// [`Repair::mend_from_archive`] over any reader of the zip.
    fn mend_from_zip<R: Read + Seek>(
        &mut self,
        zip: &mut zip::ZipArchive<R>,
        index: &FileIndex,
        from: RepairSource,
        what: &str,
    ) -> Result<()> {
        let carriers: HashMap<Sha256, String> = index
            .carriers()
            .into_iter()
            .map(|f| (f.sha256, f.path.clone()))
            .collect();
        let wanted: Vec<Sha256> = self.todo.keys().copied().collect();
        for sha in wanted {
            let Some(name) = carriers.get(&sha) else {
                continue;
            };
            let source = format!("{name:?} in {what}");
            match zip.by_name(name) {
                Ok(mut entry) => {
                    self.take(sha, &mut entry, from, &source)?;
                }
                Err(e) if from == RepairSource::Cache => {
                    tracing::debug!("{source} is not usable for the repair: {e}");
                }
                Err(e) => self.wrong.push(format!("{source}: {e}")),
            }
        }
        Ok(())
    }
}

/// Writes `input` to a temporary file beside the file `want` names in `dir`, hashing
/// while writing and never past the signed size; if it matches the index, gives it
/// its mode, syncs it and renames it over the damaged file. `Ok(Err(why))` when the
/// bytes are wrong or unreadable: the temporary file is removed, nothing changed.
fn mend(
    input: &mut dyn Read,
    dir: &Path,
    want: &FileEntry,
    buf: &mut [u8],
) -> Result<std::result::Result<(), String>> {
    let path = executable(dir, &want.path);
    let parent = path.parent().unwrap_or(dir);
    fs_err::create_dir_all(parent).map_err(|e| Error::storage("creating", parent, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(parent)
        .map_err(|e| Error::storage("creating a temporary file in", parent, e))?;
    let (got, n) = match copy_capped(input, tmp.as_file_mut(), want.size, buf, |_| {}) {
        Ok(done) => done,
        Err(CopyError::Write(e)) => return Err(Error::storage("writing", tmp.path(), e)),
        Err(e @ (CopyError::Read(_) | CopyError::TooLong { .. })) => return Ok(Err(e.to_string())),
    };
    if n != want.size || got != want.sha256 {
        return Ok(Err(format!(
            "{n} bytes with SHA-256 {got}; the signed index says {} bytes, {}",
            want.size, want.sha256
        )));
    }
    let file = File::from_parts(
        tmp.as_file()
            .try_clone()
            .map_err(|e| Error::storage("opening", tmp.path(), e))?,
        tmp.path(),
    );
    set_mode(&file, want.mode).map_err(|e| Error::storage("setting the mode of", tmp.path(), e))?;
    file.sync_all()
        .map_err(|e| Error::storage("syncing", tmp.path(), e))?;
    tmp.persist(&path)
        .map_err(|e| Error::storage("replacing", &path, e.error))?;
    sync_dir(parent);
    Ok(Ok(()))
}

#[cfg(test)]
mod tests;
