//! `peft-release pack`: turn a folder (a PyInstaller onedir, or any test folder) into
//! a content-addressed archive and index, and record the release for `publish`.
//!
//! The zips are reproducible: entries sorted by path, one fixed timestamp
//! (1980-01-01, the zip epoch), modes normalised to 0755/0644, no directory entries,
//! a fixed method and level. The same folder always gives the same bytes, so the
//! same digest, so an unchanged variant costs nothing to re-upload.
//!
//! By default a variant gets two archives of the same files (`--format`): Deflate
//! (`archive`, which every bootstrapper reads) and zstd entries (`zstd_archive`,
//! compression method 93, which bootstrappers from [`peft_manifest::ZSTD_SINCE`] on
//! download instead). Entries are compressed on all cores, each on its own (so an
//! entry can still be read alone, by byte ranges), then written in path order.
//!
//! The zips are written by [`crate::zipout`], not the `zip` crate (which still reads
//! them): each worker keeps one compression context for the whole run instead of a
//! fresh one per entry, and pledges each entry's size to zstd, so every frame records
//! its content size and a small file's frame asks its reader for a small window.
//! The layout (sizes in every local header, never a data descriptor, zip64 fields
//! only where a value overflows) is described there.

use fs_err::File;
use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use peft_manifest::{
    Blob, CopyError, Delta, FileEntry, FileIndex, IndexRef, Manifest, Release, Variant,
    VariantCatalog, check_entry_path, copy_capped, validate_index,
};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::error::{ReleaseError, Result};
use crate::layout::{Repo, write_atomic};
use crate::zipout::{Codec, Coder, Compressed, ZipOut};

/// What `pack` records for `publish`: one variant of one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRelease {
    pub version: Version,
    pub ui_compat: VersionReq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub variant: Variant,
}

impl PendingRelease {
    /// A release holding just this variant.
    pub fn to_release(&self) -> Release {
        Release {
            version: self.version.clone(),
            ui_compat: self.ui_compat.clone(),
            notes: self.notes.clone(),
            variants: vec![self.variant.clone()],
        }
    }
}

/// The inputs of `pack`, also its command line (`peft-release pack --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct PackArgs {
    /// The release repository folder (channels/, blobs/); created by the first pack.
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// The folder to ship (e.g. a PyInstaller onedir's parent).
    #[arg(long, value_name = "DIR")]
    pub input: PathBuf,
    /// The release version (semver, e.g. 1.4.0); one release may have several variants.
    #[arg(long, value_name = "SEMVER")]
    pub version: Version,
    /// The variant id, from the catalogue.
    #[arg(long, value_name = "ID")]
    pub variant: String,
    /// The executable's path inside the folder, with '/'.
    #[arg(long, value_name = "REL")]
    pub entry: String,
    /// A variant catalogue instead of the built-in manifests/variants.json.
    #[arg(long = "variants", value_name = "FILE")]
    pub variants_file: Option<PathBuf>,
    /// The UI versions this release serves.
    #[arg(long, value_name = "RANGE", default_value = "*")]
    pub ui_compat: VersionReq,
    /// Release notes.
    #[arg(long)]
    pub notes: Option<String>,
    /// Make deltas from this many earlier releases of the variant in the repository.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub deltas: usize,
    /// Which archives to make: `both` (Deflate for every bootstrapper, plus zstd for
    /// those from 0.2.0 on), `zstd` only (publish with --min-bootstrapper 0.2.0 or
    /// later), or `deflate` only (what releases before 0.2.0 shipped).
    #[arg(long, value_enum, default_value_t = Format::Both)]
    pub format: Format,
    /// The zstd level, 1 (fastest) to 19 (smallest). Levels 20 to 22 are refused:
    /// their windows (32 to 128 MiB) would be memory each unpacking worker must hold.
    #[arg(long, value_name = "N", default_value_t = 19,
          value_parser = clap::value_parser!(i64).range(1..=19))]
    pub zstd_level: i64,
}

/// The archives `pack` makes (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Deflate as `archive` and zstd as `zstd_archive`.
    Both,
    /// zstd entries only, as `archive`.
    Zstd,
    /// Deflate entries only, as `archive`.
    Deflate,
}

/// How the entries of one archive are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Deflate at level 6: what every bootstrapper reads.
    Deflate,
    /// zstd (zip method 93) at this level.
    Zstd(i64),
}

impl Method {
    fn codec(self) -> Result<Codec> {
        match self {
            Method::Deflate => Ok(Codec::Deflate),
            Method::Zstd(level) => i32::try_from(level).map(Codec::Zstd).map_err(|_| {
                ReleaseError::Usage(format!(
                    "the zstd level {level} is out of range; use 1 to 19"
                ))
            }),
        }
    }

    /// How it is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            Method::Deflate => "Deflate",
            Method::Zstd(_) => "zstd",
        }
    }
}

/// One archive `pack` wrote, and what it cost.
#[derive(Debug, Clone)]
pub struct Written {
    pub method: Method,
    pub blob: Blob,
    pub took: Duration,
}

/// What `pack` made.
#[derive(Debug, Clone)]
pub struct Packed {
    pub pending: PendingRelease,
    pub record: PathBuf,
    /// The archives, in the order they were written.
    pub archives: Vec<Written>,
}

/// A file found in the input folder.
struct Found {
    rel: String,
    path: PathBuf,
    executable: bool,
}

/// Lists every file under `root` (following symlinks to their content), sorted.
fn walk(root: &Path) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let rd = fs_err::read_dir(&dir).map_err(|e| ReleaseError::io("listing", &dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| ReleaseError::io("listing", &dir, e))?;
            let name = entry.file_name().into_string().map_err(|n| {
                ReleaseError::Usage(format!(
                    "{} has a name that is not UTF-8: {n:?}",
                    dir.display()
                ))
            })?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            let meta = fs_err::metadata(&path)
                .map_err(|e| ReleaseError::io("reading (dangling link?)", &path, e))?;
            if meta.is_dir() {
                stack.push((path, rel));
            } else if meta.is_file() {
                out.push(Found {
                    rel,
                    executable: is_executable(&meta),
                    path,
                });
            } else {
                return Err(ReleaseError::Usage(format!(
                    "{} is neither a file nor a folder",
                    path.display()
                )));
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_m: &std::fs::Metadata) -> bool {
    false
}

/// Packs `args.input` into the repository and records it for the next publish.
pub fn pack(args: &PackArgs) -> Result<Packed> {
    let catalog = match &args.variants_file {
        Some(p) => {
            let bytes = fs_err::read(p).map_err(|e| ReleaseError::io("reading", p, e))?;
            VariantCatalog::from_json(&bytes).map_err(|e| {
                ReleaseError::Usage(format!("{} is not a variant catalogue: {e}", p.display()))
            })?
        }
        None => VariantCatalog::builtin()
            .map_err(|e| ReleaseError::Usage(format!("built-in catalogue: {e}")))?,
    };
    let def = catalog.get(&args.variant).ok_or_else(|| {
        ReleaseError::Usage(format!(
            "unknown variant {:?}; the catalogue has: {}",
            args.variant,
            catalog.ids().join(", ")
        ))
    })?;
    if !args.input.is_dir() {
        return Err(ReleaseError::Usage(format!(
            "the input {} is not a folder",
            args.input.display()
        )));
    }
    let found = walk(&args.input)?;
    if found.is_empty() {
        return Err(ReleaseError::Usage(format!(
            "the input {} has no files",
            args.input.display()
        )));
    }
    let bad: Vec<String> = found
        .iter()
        .filter_map(|f| {
            check_entry_path(&f.rel)
                .err()
                .map(|p| format!("{:?} {p}", f.rel))
        })
        .collect();
    if !bad.is_empty() {
        return Err(ReleaseError::Usage(format!(
            "these paths cannot be shipped: {}",
            bad.join("; ")
        )));
    }
    let repo = Repo::open(&args.repo)?;
    let files = index_entries(&found, &args.entry)?;
    let index = FileIndex {
        schema: peft_manifest::SCHEMA,
        version: args.version.clone(),
        variant: def.id.clone(),
        files,
    };
    // The index's own counts: the checks on paths, order, collisions and the entry are what matter here.
    let index_ref_self = IndexRef {
        sha256: peft_manifest::Sha256([0; 32]),
        size: 1,
        files: index.files.len() as u64,
        unpacked_size: index.unpacked_size(),
    };
    let problems = validate_index(&index, &index_ref_self, &args.entry);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ReleaseError::Usage(format!(
            "the bundle cannot be shipped: {}",
            list.join("; ")
        )));
    }
    let methods = match args.format {
        Format::Both => vec![Method::Deflate, Method::Zstd(args.zstd_level)],
        Format::Zstd => vec![Method::Zstd(args.zstd_level)],
        Format::Deflate => vec![Method::Deflate],
    };
    let carriers: Vec<(&Found, &FileEntry)> = {
        let keep: std::collections::HashSet<&str> = index
            .carriers()
            .into_iter()
            .map(|f| f.path.as_str())
            .collect();
        found
            .iter()
            .zip(&index.files)
            .filter(|(_, e)| keep.contains(e.path.as_str()))
            .collect()
    };
    let mut archives = Vec::new();
    for method in methods {
        let tmp = repo.temp_path("archive");
        let started = Instant::now();
        write_zip(&tmp, &carriers, method, AHEAD_BYTES).inspect_err(|_| {
            let _ = fs_err::remove_file(&tmp);
        })?;
        let blob = repo.adopt(&tmp)?;
        archives.push(Written {
            method,
            blob,
            took: started.elapsed(),
        });
    }
    let (archive, zstd_archive) = match archives.as_slice() {
        [one] => (one.blob.clone(), None),
        [deflate, zstd, ..] => (deflate.blob.clone(), Some(zstd.blob.clone())),
        [] => {
            return Err(ReleaseError::Usage("no archive format was chosen".into()));
        }
    };
    let fetched_size = zstd_archive.as_ref().unwrap_or(&archive).size;
    let index_blob: Blob = repo.put_bytes(&index.to_json())?;
    let sources: HashMap<String, PathBuf> = found
        .iter()
        .map(|f| (f.rel.clone(), f.path.clone()))
        .collect();
    let mut deltas = Vec::new();
    for (version, base_variant) in earlier_releases(&repo, &def.id, &args.version)?
        .into_iter()
        .take(args.deltas)
    {
        let Some(base_archive) = base_variant
            .archives()
            .into_iter()
            .map(|a| repo.blob_path(&a.sha256))
            .find(|p| p.is_file())
        else {
            continue;
        };
        let base_index = crate::delta::load_index(&repo, &base_variant.index.blob())?;
        let blob = crate::delta::make(
            &repo,
            &crate::delta::Base {
                index: &base_index,
                archive: base_archive,
            },
            &index,
            &sources,
        )?;
        if blob.size < fetched_size {
            deltas.push(Delta {
                from: version,
                sha256: blob.sha256,
                size: blob.size,
            });
        }
    }
    let variant = Variant {
        id: def.id.clone(),
        os: def.os,
        arch: def.arch,
        accelerator: def.accelerator,
        requires: def.requires.clone(),
        priority: def.priority,
        entry: args.entry.clone(),
        probe: def.probe,
        archive,
        zstd_archive,
        index: IndexRef {
            sha256: index_blob.sha256,
            size: index_blob.size,
            files: index.files.len() as u64,
            unpacked_size: index.unpacked_size(),
        },
        deltas,
    };
    let pending = PendingRelease {
        version: args.version.clone(),
        ui_compat: args.ui_compat.clone(),
        notes: args.notes.clone(),
        variant,
    };
    let record = repo
        .pending()
        .join(format!("{}+{}.json", args.version, def.id));
    let json =
        serde_json::to_vec_pretty(&pending).map_err(|e| ReleaseError::Usage(e.to_string()))?;
    write_atomic(&record, &json)?;
    Ok(Packed {
        pending,
        record,
        archives,
    })
}

/// The index entries of every file found, in path order: hashed, with the mode the
/// bundle gives them (the entry is always executable).
fn index_entries(found: &[Found], entry: &str) -> Result<Vec<FileEntry>> {
    found
        .iter()
        .map(|f| {
            let (sha256, size) = crate::layout::hash_file(&f.path)?;
            let mode = if f.executable || f.rel == entry {
                0o755
            } else {
                0o644
            };
            Ok(FileEntry {
                path: f.rel.clone(),
                size,
                mode,
                sha256,
            })
        })
        .collect()
}

/// Entries held (counted unpacked), waiting for their turn to be written, before the
/// workers pause: memory stays bounded while one large entry is still being
/// compressed and the smaller ones after it are done.
const AHEAD_BYTES: u64 = 1 << 30;

/// What the compressing workers and the writer share.
#[derive(Default)]
struct Ready {
    /// Finished entries by position, waiting to be written, with their unpacked size.
    done: BTreeMap<usize, (Result<Compressed>, u64)>,
    /// Their unpacked bytes (more than they hold, so a safe bound).
    held: u64,
    /// The position the writer waits for: its worker never pauses, or the entries
    /// held could wait for it forever.
    next: usize,
}

/// Writes the reproducible zip of `items` (carriers, in path order) with `method`.
/// One worker per core compresses entries, each on its own with the one compression
/// context the worker keeps for the whole run, and checks every file against its
/// hash while reading it; this thread writes them in order.
fn write_zip(
    dest: &Path,
    items: &[(&Found, &FileEntry)],
    method: Method,
    ahead: u64,
) -> Result<()> {
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, items.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let ready = Mutex::new(Ready::default());
    let changed = Condvar::new();
    let lock = || ready.lock().unwrap_or_else(PoisonError::into_inner);
    let codec = method.codec()?;
    let coders = (0..workers)
        .map(|_| Coder::new(codec))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            ReleaseError::Usage(format!(
                "cannot start the {} compressor: {e}",
                method.name()
            ))
        })?;
    let out = File::create(dest).map_err(|e| ReleaseError::io("creating", dest, e))?;
    let mut zip = ZipOut::new(BufWriter::with_capacity(1 << 20, out));
    let werr = |e: std::io::Error| ReleaseError::io("writing", dest, e);
    let written: Result<()> = std::thread::scope(|s| {
        for mut coder in coders {
            let (next, stop, changed, lock) = (&next, &stop, &changed, &lock);
            s.spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(f, e)) = items.get(i) else { return };
                    {
                        let mut r = lock();
                        while r.held > ahead && i != r.next && !stop.load(Ordering::Relaxed) {
                            r = changed.wait(r).unwrap_or_else(PoisonError::into_inner);
                        }
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let prepared = compress(f, e, &mut coder, &mut buf);
                    let mut r = lock();
                    r.held += e.size;
                    r.done.insert(i, (prepared, e.size));
                    changed.notify_all();
                }
            });
        }
        let result = (|| {
            for (i, (_, entry)) in items.iter().enumerate() {
                let prepared = {
                    let mut r = lock();
                    loop {
                        if let Some((p, size)) = r.done.remove(&i) {
                            r.held -= size;
                            r.next = i + 1;
                            changed.notify_all();
                            break p;
                        }
                        r = changed.wait(r).unwrap_or_else(PoisonError::into_inner);
                    }
                };
                zip.add(&entry.path, entry.mode, &prepared?).map_err(werr)?;
            }
            Ok(())
        })();
        if result.is_err() {
            // Under the lock, so no worker can miss the wake-up between its check
            // and its wait.
            let _held = lock();
            stop.store(true, Ordering::Relaxed);
            next.store(items.len(), Ordering::Relaxed);
            changed.notify_all();
        }
        result
    });
    written?;
    let out = zip.finish().map_err(werr)?;
    let file = out
        .into_inner()
        .map_err(|e| ReleaseError::io("writing", dest, e.into_error()))?;
    file.sync_all()
        .map_err(|e| ReleaseError::io("writing", dest, e))?;
    Ok(())
}

/// Compresses one file into an entry with `coder`, checking that it still has the
/// bytes its index entry was made from. The file is read in `buf`-sized pieces.
fn compress(f: &Found, e: &FileEntry, coder: &mut Coder, buf: &mut [u8]) -> Result<Compressed> {
    let cerr = |err: crate::zipout::CoderError| {
        ReleaseError::io("compressing", &f.path, std::io::Error::other(err))
    };
    let mut sink = coder.entry(e.size).map_err(cerr)?;
    let mut input = File::open(&f.path).map_err(|err| ReleaseError::io("reading", &f.path, err))?;
    let changed = || {
        ReleaseError::Usage(format!(
            "{} changed while it was being packed; pack again once nothing writes to the input folder",
            f.path.display()
        ))
    };
    match copy_capped(&mut input, &mut sink, e.size, buf, |_| {}) {
        Ok((sha, n)) if sha == e.sha256 && n == e.size => {}
        Ok(_) | Err(CopyError::TooLong { .. }) => return Err(changed()),
        Err(CopyError::Read(err)) => return Err(ReleaseError::io("reading", &f.path, err)),
        Err(CopyError::Write(err)) => return Err(ReleaseError::io("compressing", &f.path, err)),
    }
    sink.finish().map_err(cerr)
}

/// Earlier releases of `variant` in the repository (published on any channel, or
/// pending), newest first.
fn earlier_releases(
    repo: &Repo,
    variant: &str,
    before: &Version,
) -> Result<Vec<(Version, Variant)>> {
    let mut found: BTreeMap<Version, Variant> = BTreeMap::new();
    let channels = repo.root().join("channels");
    for dir in fs_err::read_dir(&channels)
        .map_err(|e| ReleaseError::io("listing", &channels, e))?
        .flatten()
    {
        let p = dir.path().join("manifest.json");
        if let Ok(bytes) = fs_err::read(&p) {
            let m = Manifest::from_json(&bytes)
                .map_err(|e| ReleaseError::Integrity(format!("{}: {e}", p.display())))?;
            for r in m.releases {
                if let Some(v) = r.variants.into_iter().find(|v| v.id == variant) {
                    found.insert(r.version, v);
                }
            }
        }
    }
    let pending = repo.pending();
    for e in fs_err::read_dir(&pending)
        .map_err(|e| ReleaseError::io("listing", &pending, e))?
        .flatten()
    {
        if let Ok(rec) = fs_err::read(e.path())
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<PendingRelease>(&b).map_err(|_| ()))
            && rec.variant.id == variant
        {
            found.insert(rec.version, rec.variant);
        }
    }
    Ok(found
        .into_iter()
        .rev()
        .filter(|(v, _)| v < before)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Files of mixed sizes, written with a budget of one byte ahead (so workers keep
    /// pausing for the writer), come out whole, in path order, with their mode, in
    /// either method (each zstd frame with its content size); a file that changed
    /// after it was hashed stops the archive with its name.
    #[test]
    fn entries_come_out_in_order_and_whole_when_workers_must_wait() {
        let t = tempfile::tempdir().expect("tempdir");
        let mut found = Vec::new();
        let mut entries = Vec::new();
        for i in 0..40u32 {
            let rel = format!("d/{i:03}.bin");
            let path = t.path().join(format!("{i:03}.bin"));
            let len = if i % 7 == 0 {
                300_000
            } else {
                (i as usize) * 37
            };
            let bytes: Vec<u8> = (0..len).map(|k| (k as u32 * 31 + i) as u8).collect();
            fs_err::write(&path, &bytes).expect("write");
            entries.push(FileEntry {
                path: rel.clone(),
                size: len as u64,
                mode: 0o644,
                sha256: peft_manifest::Sha256::of(&bytes),
            });
            found.push(Found {
                rel,
                path,
                executable: false,
            });
        }
        let items: Vec<(&Found, &FileEntry)> = found.iter().zip(&entries).collect();
        for method in [Method::Deflate, Method::Zstd(3)] {
            let dest = t.path().join(format!("{}.zip", method.name()));
            write_zip(&dest, &items, method, 1).expect("written");
            let mut zip =
                zip::ZipArchive::new(fs_err::File::open(&dest).expect("open")).expect("zip");
            assert_eq!(zip.len(), entries.len());
            for (i, want) in entries.iter().enumerate() {
                if let Method::Zstd(_) = method {
                    let mut raw = zip.by_index_raw(i).expect("entry");
                    let mut frame = Vec::new();
                    raw.read_to_end(&mut frame).expect("read");
                    assert_eq!(
                        zstd::zstd_safe::get_frame_content_size(&frame).expect("a frame"),
                        Some(want.size),
                        "{}",
                        want.path
                    );
                }
                let mut e = zip.by_index(i).expect("entry");
                assert_eq!(e.name().expect("name"), want.path);
                assert_eq!(e.unix_mode(), Some(0o100_644));
                let mut got = Vec::new();
                e.read_to_end(&mut got).expect("read");
                assert_eq!(peft_manifest::Sha256::of(&got), want.sha256);
            }
        }
        fs_err::write(&found[20].path, b"changed").expect("change");
        let dest = t.path().join("changed.zip");
        let err = write_zip(&dest, &items, Method::Zstd(3), 1).expect_err("refused");
        assert!(err.to_string().contains("020.bin"), "{err}");
    }
}
