//! Unpacking a verified archive into `staging/`, checked against the signed index.
//!
//! Before a byte is written, every entry of the zip is checked: its name must be a
//! safe relative path ([`check_entry_path`]) listed in the index, with the index's
//! size; no symlinks, no directories, no duplicates, and exactly as many entries as
//! the index has files. Any problem refuses the whole bundle. Then each file is
//! written under the staging folder (created fresh, with `create_new`), hashed as it
//! is written, compared to the index, given its mode and fsynced.

use fs_err::{File, OpenOptions};
use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use peft_manifest::{FileIndex, Sha256Hasher, check_entry_path};

use crate::cache::sync_dir;
use crate::error::{Error, Result};
use crate::report::{Phase, Reporter};

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
    // Counted as a list: an index naming one path twice must not shrink the count.
    let carrier_list = index.carriers();
    if zip.len() != carrier_list.len() {
        return Err(refuse(format!(
            "it has {} entries, the index lists {} files with {} distinct contents",
            zip.len(),
            index.files.len(),
            carrier_list.len()
        )));
    }
    let carriers: HashSet<&str> = carrier_list.iter().map(|f| f.path.as_str()).collect();
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
        if !carriers.contains(name.as_str()) {
            return Err(refuse(format!(
                "the entry {name:?} repeats content the archive carries under another name"
            )));
        }
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
            fs_err::create_dir_all(parent).map_err(|e| Error::storage("creating", parent, e))?;
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
    // Files whose content the archive carries under another name (PyInstaller's
    // symlinked libraries, dereferenced by `pack`): a hard link to the verified
    // carrier, so the loader sees one file; a copy when the mode differs.
    let carrier_of: HashMap<_, _> = index
        .carriers()
        .into_iter()
        .map(|f| (f.sha256, f))
        .collect();
    for f in &index.files {
        let Some(c) = carrier_of.get(&f.sha256).filter(|c| c.path != f.path) else {
            continue;
        };
        let (src, path) = (dest.join(&c.path), dest.join(&f.path));
        if let Some(parent) = path.parent()
            && dirs.insert(parent.to_path_buf())
        {
            fs_err::create_dir_all(parent).map_err(|e| Error::storage("creating", parent, e))?;
        }
        if c.mode != f.mode || fs_err::hard_link(&src, &path).is_err() {
            fs_err::copy(&src, &path).map_err(|e| Error::storage("copying", &src, e))?;
            let out = File::open(&path).map_err(|e| Error::storage("opening", &path, e))?;
            set_mode(&out, f.mode).map_err(|e| Error::storage("setting the mode of", &path, e))?;
            out.sync_all()
                .map_err(|e| Error::storage("writing", &path, e))?;
        }
        done += f.size;
        reporter.progress(Phase::Extract, done, total);
    }
    for d in &dirs {
        sync_dir(d);
    }
    sync_dir(dest);
    if total == 0 {
        // Empty files only: the loop reported nothing, so close the phase here.
        reporter.progress(Phase::Extract, 0, 0);
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use peft_manifest::{FileEntry, Sha256};
    use zip::write::SimpleFileOptions;

    use super::*;
    use crate::report::Event;

    struct Quiet;
    impl Reporter for Quiet {
        fn emit(&self, _: Event) {}
    }

    enum Item<'a> {
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
    }

    /// A zip of `items` and an index that lists exactly them (as a signer could).
    fn bundle(dir: &Path, items: &[Item<'_>]) -> (std::path::PathBuf, FileIndex) {
        let path = dir.join("bundle.zip");
        let mut z = zip::ZipWriter::new(File::create(&path).expect("create"));
        let mut files = Vec::new();
        for it in items {
            match it {
                Item::File(name, data) => {
                    z.start_file(*name, SimpleFileOptions::default())
                        .expect("start");
                    z.write_all(data).expect("write");
                    files.push(FileEntry {
                        path: name.to_string(),
                        size: data.len() as u64,
                        mode: 0o644,
                        sha256: Sha256::of(data),
                    });
                }
                Item::Symlink(name, target) => {
                    z.add_symlink(*name, *target, SimpleFileOptions::default())
                        .expect("symlink");
                    files.push(FileEntry {
                        path: name.to_string(),
                        size: target.len() as u64,
                        mode: 0o644,
                        sha256: Sha256::of(target.as_bytes()),
                    });
                }
            }
        }
        z.finish().expect("finish");
        files.sort_by(|a, b| a.path.cmp(&b.path));
        (
            path,
            FileIndex {
                schema: 1,
                version: "1.0.0".parse().expect("v"),
                variant: "t".into(),
                files,
            },
        )
    }

    /// Runs extract into `<tmp>/staging/x` and returns the error and every path
    /// that exists under `<tmp>` afterwards, apart from the archive.
    fn attempt(items: &[Item<'_>]) -> (Error, Vec<String>) {
        let t = tempfile::tempdir().expect("tempdir");
        let (archive, index) = bundle(t.path(), items);
        let staging = t.path().join("staging").join("x");
        fs_err::create_dir_all(&staging).expect("mkdir");
        let err = extract(&archive, &index, &staging, &Quiet).expect_err("must be refused");
        let mut seen = Vec::new();
        let mut stack = vec![t.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs_err::read_dir(&d).expect("ls").flatten() {
                let rel = e
                    .path()
                    .strip_prefix(t.path())
                    .expect("rel")
                    .display()
                    .to_string();
                if e.path().is_dir() {
                    stack.push(e.path());
                }
                if rel != "bundle.zip" {
                    seen.push(rel);
                }
            }
        }
        seen.sort();
        (err, seen)
    }

    fn assert_refused_whole(items: &[Item<'_>], needle: &str) {
        let (err, seen) = attempt(items);
        assert_eq!(err.exit_code(), 4, "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
        assert_eq!(
            seen,
            vec!["staging".to_string(), "staging/x".to_string()],
            "nothing may be written"
        );
    }

    #[test]
    fn parent_paths_are_refused_whole() {
        assert_refused_whole(
            &[Item::File("a/ok.txt", b"fine"), Item::File("../x", b"evil")],
            "'..'",
        );
    }

    #[test]
    fn absolute_paths_are_refused_whole() {
        assert_refused_whole(
            &[
                Item::File("a/ok.txt", b"fine"),
                Item::File("/tmp/peft-evil", b"evil"),
            ],
            "absolute",
        );
    }

    #[test]
    fn symlink_entries_are_refused_whole() {
        assert_refused_whole(
            &[
                Item::File("a/ok.txt", b"fine"),
                Item::Symlink("a/link", "/etc/passwd"),
            ],
            "symbolic link",
        );
    }

    #[test]
    fn duplicate_names_are_refused_whole() {
        let t = tempfile::tempdir().expect("tempdir");
        let (archive, mut index) = bundle(
            t.path(),
            &[Item::File("a/aaaa", b"one"), Item::File("a/bbbb", b"two")],
        );
        // Rename the second entry to the first's name in both headers; the zip writer would refuse to.
        let bytes = fs_err::read(&archive).expect("read");
        let patched: Vec<u8> = {
            let mut out = bytes.clone();
            let needle = b"a/bbbb";
            let mut i = 0;
            while i + needle.len() <= out.len() {
                if &out[i..i + needle.len()] == needle {
                    out[i..i + needle.len()].copy_from_slice(b"a/aaaa");
                }
                i += 1;
            }
            out
        };
        assert_ne!(bytes, patched);
        fs_err::write(&archive, patched).expect("write");
        index.files.retain(|f| f.path == "a/aaaa");
        index.files.push(FileEntry {
            path: "a/aaaa".into(),
            size: 3,
            mode: 0o644,
            sha256: Sha256::of(b"two"),
        });
        let staging = t.path().join("staging").join("x");
        fs_err::create_dir_all(&staging).expect("mkdir");
        let err = extract(&archive, &index, &staging, &Quiet).expect_err("duplicates are refused");
        assert_eq!(err.exit_code(), 4, "{err}");
        assert_eq!(
            fs_err::read_dir(&staging).expect("ls").count(),
            0,
            "nothing written"
        );
    }

    #[test]
    fn entries_missing_from_the_index_or_of_another_size_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let (archive, mut index) = bundle(
            t.path(),
            &[Item::File("a", b"1234"), Item::File("b", b"5678")],
        );
        let staging = t.path().join("s");
        fs_err::create_dir_all(&staging).expect("mkdir");
        index.files[1].size = 5;
        let err = extract(&archive, &index, &staging, &Quiet).expect_err("size differs");
        assert!(err.to_string().contains("the index says 5"), "{err}");
        index.files[1].size = 4;
        index.files[1].sha256 = Sha256::of(b"other");
        let err = extract(&archive, &index, &staging, &Quiet).expect_err("hash differs");
        assert!(err.to_string().contains("SHA-256"), "{err}");
        index.files.pop();
        let err = extract(&archive, &index.clone(), &t.path().join("s2"), &Quiet)
            .expect_err("count differs");
        assert!(err.to_string().contains("entries"), "{err}");
    }

    #[test]
    fn a_sound_bundle_extracts_with_modes() {
        let t = tempfile::tempdir().expect("tempdir");
        let (archive, mut index) = bundle(
            t.path(),
            &[
                Item::File("d/run", b"#!/bin/sh\n"),
                Item::File("d/x.py", b"x"),
            ],
        );
        index.files[0].mode = 0o755;
        let staging = t.path().join("s");
        fs_err::create_dir_all(&staging).expect("mkdir");
        extract(&archive, &index, &staging, &Quiet).expect("extracts");
        assert_eq!(fs_err::read(staging.join("d/x.py")).expect("read"), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs_err::metadata(staging.join("d/run"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755);
        }
    }
}
