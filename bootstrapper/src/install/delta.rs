//! Building an install from an installed base and a `PEFTDLT2` delta (format in
//! `peft_manifest::delta::container`): unchanged files are hard-linked (or copied
//! when the mode differs) from the base and re-hashed on every core, while the rest
//! are decoded ([`super::patch`]), every file capped at and checked against the
//! target's signed index; files and folders are synced in the background
//! ([`super::durable`]) and the tree is committed like a full install. The caller
//! holds the cache lock.

use fs_err::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use peft_manifest::delta::{Action, actions, read_header};
use peft_manifest::{Blob, FileEntry, FileIndex, Sha256};

use super::durable::Syncer;
use super::extract::{PROGRESS_EVERY, folders, set_mode, workers};
use super::patch::{Patcher, bad_delta};
use super::{SPARE, Target, Transaction, check_space, executable, fetch_index};
use crate::cache::{Cache, InstallRecord};
use crate::error::{Error, Result};
use crate::report::{Phase, Reporter};
use crate::source::{Fetcher, Root};

/// Builds the target from an installed base and a delta; any error leaves nothing.
pub async fn apply_delta(
    fetcher: &Fetcher,
    roots: &[Root],
    cache: &Cache,
    target: Target<'_>,
    base: (&str, &InstallRecord),
    blob: &Blob,
    reporter: &dyn Reporter,
) -> Result<()> {
    let name = target.name();
    cache.clean_staging();
    let index = fetch_index(fetcher, roots, target.release, target.variant, reporter).await?;
    check_space(
        cache.root(),
        blob.size + target.variant.index.unpacked_size + SPARE,
    )?;
    let path = fetcher
        .download(roots, blob, &cache.downloads(), reporter)
        .await?;
    let tx = Transaction::begin(cache, &name)?;
    let base_dir = cache.versions().join(base.0);
    let result = write_from_delta(&path, &base_dir, &base.1.index, &index, tx.path(), reporter)
        .and_then(|()| tx.commit(&target.record(index)));
    let _ = fs_err::remove_file(&path);
    result
}

/// Produces every file of `target` in `staging` from the base install and the delta:
/// the files the base already has are linked (or copied) and re-hashed by worker
/// threads while this thread decodes the others, one at a time.
fn write_from_delta(
    delta: &Path,
    base_dir: &Path,
    base: &FileIndex,
    target: &FileIndex,
    staging: &Path,
    reporter: &dyn Reporter,
) -> Result<()> {
    let mut f = File::open(delta).map_err(|e| Error::storage("opening", delta, e))?;
    let (header, start) = read_header(&mut BufReader::new(&mut f)).map_err(bad_delta)?;
    let acts = actions(base, target, &header).map_err(bad_delta)?;
    let dirs = folders(target, staging);
    for d in &dirs {
        fs_err::create_dir_all(d).map_err(|e| Error::storage("creating", d, e))?;
    }
    let (reuse, decode): (Vec<_>, Vec<_>) = acts
        .into_iter()
        .partition(|(_, a)| matches!(a, Action::Reuse(_)));
    let total = target.unpacked_size();
    let done = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let syncer = Syncer::start();
    let linker = Linker {
        reuse: &reuse,
        base_dir,
        staging,
        done: &done,
        failed: &failed,
        next: &next,
        syncer: &syncer,
    };
    reporter.progress(Phase::Patch, 0, total);
    let threads = workers().min(reuse.len()).max(1);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let r = linker.run();
                    finished.fetch_add(1, Ordering::Release);
                    r
                })
            })
            .collect();
        let mut patcher = Patcher::new(f, start, base_dir);
        let mut decoded = Ok(());
        for (t, act) in &decode {
            let Action::Decode(e) = act else { continue };
            if failed.load(Ordering::Relaxed) {
                break;
            }
            match patcher.write(e, t, &executable(staging, &t.path)) {
                Ok(file) => syncer.add(file),
                Err(err) => {
                    failed.store(true, Ordering::Relaxed);
                    decoded = Err(err);
                    break;
                }
            }
            done.fetch_add(t.size, Ordering::Relaxed);
            reporter.progress(Phase::Patch, done.load(Ordering::Relaxed), total);
        }
        while finished.load(Ordering::Acquire) < threads {
            reporter.progress(Phase::Patch, done.load(Ordering::Relaxed), total);
            std::thread::sleep(PROGRESS_EVERY);
        }
        let mut all = vec![decoded];
        all.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(bad_delta("a worker thread panicked")))
        }));
        all
    });
    // A decode error is the cause; a worker stopped by it reports nothing.
    if let Some(err) = results.into_iter().find_map(Result::err) {
        return Err(err);
    }
    reporter.progress(Phase::Patch, total, total);
    syncer
        .finish(dirs)
        .map_err(|e| Error::storage("syncing", staging, e))
}

/// What the linking workers share.
struct Linker<'a> {
    reuse: &'a [(&'a FileEntry, Action<'a>)],
    base_dir: &'a Path,
    staging: &'a Path,
    done: &'a AtomicU64,
    failed: &'a AtomicBool,
    next: &'a AtomicUsize,
    syncer: &'a Syncer,
}

impl Linker<'_> {
    /// Takes reused files one by one until none is left or another thread failed.
    fn run(&self) -> Result<()> {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some((t, Action::Reuse(b))) = self.reuse.get(i) else {
                return Ok(());
            };
            if self.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Err(e) = self.link(t, b) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
            self.done.fetch_add(t.size, Ordering::Relaxed);
        }
    }

    /// Links (or, when the mode differs, copies) base file `b` as target file `t`,
    /// then re-hashes it: a damaged base must not pass into the new install.
    fn link(&self, t: &FileEntry, b: &FileEntry) -> Result<()> {
        let src = executable(self.base_dir, &b.path);
        let dest = executable(self.staging, &t.path);
        // A link shares the base's immutable file; a different mode needs a copy.
        let copied = b.mode != t.mode || fs_err::hard_link(&src, &dest).is_err();
        if copied {
            fs_err::copy(&src, &dest).map_err(|e| Error::storage("copying", &src, e))?;
        }
        let file = File::open(&dest).map_err(|e| Error::storage("reading", &dest, e))?;
        let (got, n) = Sha256::of_reader(&file).map_err(|e| Error::storage("reading", &dest, e))?;
        if n != t.size || got != t.sha256 {
            return Err(bad_delta(format!(
                "the base file {} is {n} bytes with SHA-256 {got}; the index says {} and {}",
                b.path, t.size, t.sha256
            )));
        }
        if copied {
            set_mode(&file, t.mode).map_err(|e| Error::storage("setting the mode of", &dest, e))?;
            self.syncer.add(file);
        }
        Ok(())
    }
}
