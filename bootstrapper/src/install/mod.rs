//! The install transaction: index, archive (or delta), staging, rename, record.
//!
//! Nothing under `versions/` changes until a complete, verified tree is renamed into
//! it; a crash at any point leaves at worst a partial download (resumed next time)
//! and a staging folder (removed next time). `current.json` is switched by the caller.
//! The full-archive path lives here; the delta path ([`delta`]) shares
//! [`fetch_index`] and the [`Transaction`] (staging folder, commit by rename, cleanup
//! on drop); archive checks and the parallel unpack are [`extract`], making the
//! staged tree durable is [`durable`]; proving a fresh install is [`probe`]; mending
//! a damaged install in place (`verify --repair`, the one exception) is [`repair`].

mod delta;
mod durable;
mod extract;
#[cfg(test)]
mod fixture;
mod patch;
pub mod probe;
pub mod repair;
mod shared_file;
mod stream;
mod transaction;

pub use delta::apply_delta;
pub use extract::{check_entries, extract};
pub use transaction::Transaction;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use peft_manifest::{FileIndex, Manifest, Release, Sha256, Variant, validate_index};
use time::OffsetDateTime;

use crate::cache::{Cache, CacheLock, InstallRecord};
use crate::error::{Error, Result};
use crate::report::{Phase, Reporter};
use crate::source::{Fetcher, Root};
pub use stream::{Follow, Stream, Streamed};

/// Free space kept beyond the worst case, for logs and the OS.
pub const SPARE: u64 = 64 << 20;

/// What to install: a variant of a release from a manifest of a channel.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub release: &'a Release,
    pub variant: &'a Variant,
    pub channel: &'a str,
    pub serial: u64,
}

impl<'a> Target<'a> {
    /// The variant a selection chose, from the manifest of `channel` it was chosen in.
    pub fn chosen(sel: &peft_manifest::Selection<'a>, m: &Manifest, channel: &'a str) -> Self {
        Target {
            release: sel.release,
            variant: sel.variant,
            channel,
            serial: m.serial,
        }
    }

    /// The install's directory name under `versions/`.
    pub fn name(&self) -> String {
        Cache::install_name(&self.release.version.to_string(), &self.variant.id)
    }

    /// The record of a finished install of this target.
    pub fn record(&self, index: FileIndex) -> InstallRecord {
        InstallRecord {
            version: self.release.version.to_string(),
            variant: self.variant.id.clone(),
            channel: self.channel.to_string(),
            entry: self.variant.entry.clone(),
            ui_compat: self.release.ui_compat.to_string(),
            archive_sha256: self.variant.archive_to_fetch().sha256.hex(),
            manifest_serial: self.serial,
            installed_at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            index,
        }
    }
}

/// Installs the target from its full archive into `versions/` unless it is there;
/// returns the install's directory name and whether it had to be installed now.
pub async fn install(
    fetcher: &Fetcher,
    roots: &[Root],
    cache: &Cache,
    _lock: &CacheLock,
    target: Target<'_>,
    reporter: &dyn Reporter,
) -> Result<(String, bool)> {
    let name = target.name();
    if cache.record(&name)?.is_some() {
        return Ok((name, false));
    }
    cache.clean_staging();
    let variant = target.variant;
    let blob = variant.archive_to_fetch();
    let mut index = fetch_index(fetcher, roots, target.release, variant, reporter).await?;
    let archive_done = cache.downloads().join(blob.sha256.hex());
    // A partial download (kept by a run that failed, e.g. on a full disk) is resumed:
    // only the rest of it needs space.
    let partial_len = fs_err::metadata(archive_done.with_extension("partial"))
        .map_or(0, |m| m.len())
        .min(blob.size);
    let download = if archive_done.is_file() {
        0
    } else {
        blob.size - partial_len
    };
    check_space(cache.root(), variant.index.unpacked_size + download + SPARE)?;
    let downloads = cache.downloads();
    let mut tx = Transaction::begin(cache, &name)?;
    let (archive, streamed) = if download == 0 {
        let got = fetcher.download(roots, blob, &downloads, reporter).await?;
        (got, None)
    } else {
        // Unpack while downloading (see `stream`).
        let follow = Arc::new(Follow::default());
        let partial = crate::cache::partial_path(&downloads, &blob.sha256.hex());
        // The stream shares the index (15,700 files' worth, in the real-library
        // bench) rather than holding a copy of it.
        let shared = Arc::new(index);
        let stream = Stream::start(
            partial,
            Arc::clone(&shared),
            tx.path().to_path_buf(),
            Arc::clone(&follow),
        );
        let got = fetcher
            .download_watched(roots, blob, &downloads, reporter, &*follow)
            .await;
        follow.end();
        if got.is_ok() {
            let total = shared.unpacked_size();
            while !stream.wait(extract::PROGRESS_EVERY) {
                reporter.progress(Phase::Extract, stream.done(), total);
            }
        }
        let streamed = stream.join();
        index = Arc::try_unwrap(shared).unwrap_or_else(|still| (*still).clone());
        (got?, Some(streamed))
    };
    // A refusal here goes through the same cleanup as any other failure below.
    let whole = match &streamed {
        Some(Ok(s)) => streamed_is_whole(&archive, &index, s),
        _ => Ok(false),
    };
    // Once every file of the tree is in place and verified, the archive has served
    // its purpose (installs are what the cache keeps): it is removed while the tree
    // is synced and committed (see `Removal`).
    let result = match (whole, streamed) {
        (Err(e), _) => Err(e),
        (Ok(true), Some(Ok(s))) => extract::add_duplicates(&index, tx.path(), &s.syncer, reporter)
            .and_then(|()| {
                let _removal = Removal::start(&archive);
                extract::make_durable(&index, tx.path(), s.syncer)
                    .and_then(|()| tx.commit(&target.record(index)))
            }),
        (_, other) => {
            if let Some(Err(why)) = other {
                tracing::debug!("unpacking while downloading stopped: {why}");
            }
            drop(tx);
            tx = Transaction::begin(cache, &name)?;
            extract(&archive, &index, tx.path(), reporter).and_then(|()| {
                let _removal = Removal::start(&archive);
                tx.commit(&target.record(index))
            })
        }
    };
    if let Err(e) = result {
        if matches!(e, Error::Integrity { .. }) {
            let _ = fs_err::remove_file(&archive);
        }
        return Err(e);
    }
    Ok((name, true))
}

/// The finished archive's removal, on its own thread, while the install is synced and
/// committed: freeing a 533 MB archive whose bytes had reached the disk took the bench
/// machine's file system 0.14–0.28 s (35 ms when they had not, the usual case now).
///
/// It starts only when every file is in place, so a full disk during the unpack still
/// keeps the archive. If syncing or the commit fails after that (a disk error), the
/// archive is gone and the next attempt downloads again: a cost, never a wrong
/// install. Dropping a `Removal` waits for it: the install returns only once the
/// archive is gone.
struct Removal(Option<std::thread::JoinHandle<()>>);

impl Removal {
    fn start(archive: &Path) -> Removal {
        let archive = archive.to_path_buf();
        Removal(Some(std::thread::spawn(move || {
            let _ = fs_err::remove_file(&archive);
        })))
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

/// Whether a stream's files are the whole install: the finished archive (its signed
/// hash already checked by the download) passes the entry checks, and the stream
/// wrote exactly its carriers. A refusal of the archive is an error.
fn streamed_is_whole(archive: &Path, index: &FileIndex, s: &Streamed) -> Result<bool> {
    let mut zip = extract::open(archive)?;
    extract::check_entries(&mut zip, index)?;
    Ok(s.written == index.carrier_mask())
}

/// Downloads, checks and parses a variant's index.
pub async fn fetch_index(
    fetcher: &Fetcher,
    roots: &[Root],
    release: &Release,
    variant: &Variant,
    reporter: &dyn Reporter,
) -> Result<FileIndex> {
    let blob = variant.index.blob();
    let bytes = fetcher
        .get_small(roots, &blob.path(), blob.size, reporter)
        .await?;
    let got = Sha256::of(&bytes);
    if got != blob.sha256 || bytes.len() as u64 != blob.size {
        return Err(Error::integrity(format!(
            "the index of {} {} has SHA-256 {got} and {} bytes, the manifest says {} and {}",
            variant.id,
            release.version,
            bytes.len(),
            blob.sha256,
            blob.size
        )));
    }
    let index = FileIndex::from_json(&bytes)
        .map_err(|e| Error::integrity(format!("the index of {} is malformed: {e}", variant.id)))?;
    let mut problems: Vec<String> = validate_index(&index, &variant.index, &variant.entry)
        .iter()
        .map(ToString::to_string)
        .collect();
    if index.version != release.version || index.variant != variant.id {
        problems.push(format!(
            "it describes {} {}, not {} {}",
            index.variant, index.version, variant.id, release.version
        ));
    }
    if !problems.is_empty() {
        return Err(Error::integrity(format!(
            "the index of {} {} is refused: {}",
            variant.id,
            release.version,
            problems.join("; ")
        )));
    }
    Ok(index)
}

/// Fails with exit code 6 unless `need` bytes are free at `path`.
pub fn check_space(path: &Path, need: u64) -> Result<()> {
    match fs4::available_space(path) {
        Ok(available) if available < need => Err(Error::DiskFull {
            path: path.to_path_buf(),
            needed: need,
            available,
        }),
        _ => Ok(()),
    }
}

/// The absolute path of an install's entry executable.
pub fn executable(dir: &Path, entry: &str) -> PathBuf {
    entry.split('/').fold(dir.to_path_buf(), |p, c| p.join(c))
}
