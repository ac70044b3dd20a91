//! Making a staged tree durable without stalling the unpack.
//!
//! An install must survive a power cut once it is visible under `versions/`: every
//! file's bytes, and every folder's entries, reach the disk before the rename that
//! commits it. Doing that with one `fsync` per file on the unpacking thread made the
//! unpack wait on the disk thousands of times (5,075 `fsync` calls, 2.3 s of a 600 MiB
//! install, `docs/BENCHMARKS.md`). Here the unpack hands each finished file to a
//! [`Syncer`], whose threads do nothing but wait on the disk, so the writes reach it
//! while the CPU is still inflating the next files; [`Syncer::finish`] hands them the
//! folders too and waits for the last of both.
//!
//! Process crashes (`kill -9`) never need any of this: the page cache survives them.
//! The downloaded archive is not synced at all: it is re-hashed before every use.

use fs_err::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Threads that wait on the disk; they use no CPU while they wait.
const THREADS: usize = 4;
/// Files queued for syncing at most; the unpack waits when the disk falls this far behind.
const QUEUE: usize = 256;

/// Files synced in the background; see the module documentation.
#[derive(Debug)]
pub struct Syncer {
    tx: Option<SyncSender<Item>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// Files handed over so far (the `unpack-files` crash point counts them).
    added: AtomicU64,
    /// Set when the syncer is dropped without [`Syncer::finish`]: what is still
    /// queued is closed without waiting on the disk.
    abandoned: Arc<AtomicBool>,
}

impl Syncer {
    pub fn start() -> Syncer {
        let (tx, rx) = sync_channel::<Item>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let abandoned = Arc::new(AtomicBool::new(false));
        let threads = (0..THREADS)
            .map(|_| {
                let (rx, abandoned) = (Arc::clone(&rx), Arc::clone(&abandoned));
                std::thread::spawn(move || drain(&rx, &abandoned))
            })
            .collect();
        Syncer {
            tx: Some(tx),
            threads,
            added: AtomicU64::new(0),
            abandoned,
        }
    }

    /// Hands over a completely written file; it is synced and closed in the background.
    pub fn add(&self, file: File) {
        let added = self.added.fetch_add(1, Ordering::Relaxed) + 1;
        crate::failpoint::count("unpack-files", added);
        if let Some(tx) = &self.tx
            && let Err(back) = tx.send(Item {
                file,
                folder: false,
            })
        {
            // Every syncing thread has ended (it failed): sync here instead, and let
            // `finish` report the failure.
            let _ = back.0.file.sync_all();
        }
    }

    /// Waits until every file handed over and every folder in `dirs` is on the disk.
    ///
    /// The folders go through the same threads as the files, after them: every entry
    /// of every folder exists by now, so their order does not matter, only that all
    /// are synced before the caller's rename. One after another on this thread, the
    /// 2,700 folders of the `standard` bench bundle kept the install waiting 0.18 s.
    pub fn finish(mut self, dirs: Vec<PathBuf>) -> io::Result<()> {
        crate::failpoint::hit("before-sync");
        if let Some(tx) = self.tx.take() {
            // As `cache::sync_dir` does, a folder that cannot be opened or synced is
            // passed over: some file systems refuse `fsync` on folders.
            for f in dirs.iter().filter_map(|d| open_folder(d)) {
                if tx
                    .send(Item {
                        file: f,
                        folder: true,
                    })
                    .is_err()
                {
                    break; // the threads ended on an error, reported below
                }
            }
        }
        let mut first_error = None;
        for t in self.threads.drain(..) {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a syncing thread panicked")));
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        crate::failpoint::hit("after-sync");
        Ok(())
    }
}

/// A folder opened for `fsync` (Unix); `None` where folders cannot be synced this way.
fn open_folder(dir: &std::path::Path) -> Option<File> {
    #[cfg(unix)]
    return File::open(dir).ok();
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// What the threads sync: a written file (an error fails the install) or a folder.
#[derive(Debug)]
struct Item {
    file: File,
    folder: bool,
}

/// A failed unpack drops its syncer; its threads end (closing every file of the
/// refused tree, unsynced) before the drop returns, so no file stays open while the
/// caller removes the folder (found by the `zip_entries` fuzz target).
impl Drop for Syncer {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn drain(rx: &Mutex<Receiver<Item>>, abandoned: &AtomicBool) -> io::Result<()> {
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(item) = next else {
            return Ok(());
        };
        if abandoned.load(Ordering::Relaxed) {
            continue;
        }
        let synced = item.file.sync_all();
        if !item.folder {
            synced?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_waits_for_files_and_folders_and_passes_over_a_folder_that_is_gone() {
        let t = tempfile::tempdir().expect("tempdir");
        let syncer = Syncer::start();
        // More files than the queue holds, so `add` also waits for the threads.
        for i in 0..(QUEUE + 40) {
            let p = t.path().join(format!("f{i}"));
            fs_err::write(&p, b"x").expect("write");
            syncer.add(File::open(&p).expect("open"));
        }
        let dirs = vec![t.path().to_path_buf(), t.path().join("gone")];
        syncer
            .finish(dirs)
            .expect("a missing folder is passed over, as sync_dir does");
    }
}
