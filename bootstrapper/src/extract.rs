//! Unpacking a verified archive into `staging/`, checked against the signed index.
//!
//! Before a byte is written, every entry of the zip is checked: its name must be a
//! safe relative path ([`check_entry_path`]) listed in the index, with the index's
//! size; no symlinks, no directories, no duplicates, and exactly as many entries as
//! the index has files. Any problem refuses the whole bundle. Then each file is
//! written under the staging folder (created fresh, with `create_new`), hashed as it
//! is written, compared to the index, given its mode and fsynced.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use peft_manifest::{FileIndex, Sha256Hasher, check_entry_path};

use crate::cache::sync_dir;
use crate::error::{Error, Result};
use crate::events::{Phase, Reporter};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

fn refuse(why: String) -> Error {
    Error::integrity_hint(
        format!("the bundle archive was refused: {why}"),
        "the archive does not match its signed index; nothing was installed",
    )
}

/// Checks every entry of `archive` against `index` without writing anything.
pub fn check_entries<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    index: &FileIndex,
) -> Result<()> {
    if zip.len() != index.files.len() {
        return Err(refuse(format!(
            "it has {} entries, the index lists {} files",
            zip.len(),
            index.files.len()
        )));
    }
    let mut seen = HashSet::new();
    for i in 0..zip.len() {
        let e = zip
            .by_index_raw(i)
            .map_err(|e| refuse(format!("entry {i} is unreadable: {e}")))?;
        let name = std::str::from_utf8(e.name_raw())
            .map_err(|_| refuse(format!("entry {i} has a name that is not UTF-8")))?
            .to_string();
        check_entry_path(&name).map_err(|p| refuse(format!("the entry {name:?} {p}")))?;
        if e.is_symlink() {
            return Err(refuse(format!("the entry {name:?} is a symbolic link")));
        }
        if e.is_dir() {
            return Err(refuse(format!("the entry {name:?} is a directory")));
        }
        if let Some(mode) = e.unix_mode()
            && mode & S_IFMT != 0
            && mode & S_IFMT != S_IFREG
        {
            return Err(refuse(format!(
                "the entry {name:?} is not a regular file (mode {mode:o})"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(refuse(format!("the entry {name:?} appears twice")));
        }
        let Some(f) = index.get(&name) else {
            return Err(refuse(format!(
                "the entry {name:?} is not in the signed index"
            )));
        };
        if e.size() != f.size {
            return Err(refuse(format!(
                "the entry {name:?} is {} bytes, the index says {}",
                e.size(),
                f.size
            )));
        }
    }
    Ok(())
}

/// Unpacks `archive` into the empty folder `dest`, verifying every file against `index`.
pub fn extract(
    archive: &Path,
    index: &FileIndex,
    dest: &Path,
    reporter: &dyn Reporter,
) -> Result<()> {
    let file = File::open(archive).map_err(|e| Error::storage("opening", archive, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| refuse(format!("it is not a readable zip: {e}")))?;
    check_entries(&mut zip, index)?;
    let total = index.unpacked_size();
    let mut done = 0u64;
    reporter.progress(Phase::Extract, 0, total);
    let mut dirs = HashSet::new();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..zip.len() {
        let mut e = zip
            .by_index(i)
            .map_err(|e| refuse(format!("entry {i} is unreadable: {e}")))?;
        let name = e.name().map_err(|e| refuse(e.to_string()))?.to_string();
        let Some(want) = index.get(&name) else {
            return Err(refuse(format!(
                "the entry {name:?} is not in the signed index"
            )));
        };
        let path = dest.join(&name);
        if let Some(parent) = path.parent()
            && dirs.insert(parent.to_path_buf())
        {
            std::fs::create_dir_all(parent).map_err(|e| Error::storage("creating", parent, e))?;
        }
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::storage("creating", &path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let mut hasher = Sha256Hasher::new();
        let mut written = 0u64;
        loop {
            let n = e
                .read(&mut buf)
                .map_err(|err| refuse(format!("the entry {name:?} does not inflate: {err}")))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > want.size {
                return Err(refuse(format!(
                    "the entry {name:?} inflates beyond its {} bytes",
                    want.size
                )));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|err| Error::storage("writing", &path, err))?;
            done += n as u64;
            reporter.progress(Phase::Extract, done, total);
        }
        let got = hasher.finish();
        if written != want.size || got != want.sha256 {
            return Err(refuse(format!(
                "the file {name:?} has SHA-256 {got}, the index says {}",
                want.sha256
            )));
        }
        out.flush()
            .map_err(|err| Error::storage("writing", &path, err))?;
        let f = out
            .into_inner()
            .map_err(|err| Error::storage("writing", &path, err.into_error()))?;
        set_mode(&f, want.mode).map_err(|err| Error::storage("setting the mode of", &path, err))?;
        f.sync_all()
            .map_err(|err| Error::storage("writing", &path, err))?;
    }
    for d in &dirs {
        sync_dir(d);
    }
    sync_dir(dest);
    reporter.progress(Phase::Extract, total, total);
    Ok(())
}

#[cfg(unix)]
fn set_mode(f: &File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }))
}

#[cfg(not(unix))]
fn set_mode(_f: &File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
