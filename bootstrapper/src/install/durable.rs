//! Making a staged tree durable without stalling the unpack.
//!
//! An install must survive a power cut once it is visible under `versions/`: every
//! file's bytes, and every folder's entries, reach the disk before the rename that
//! commits it. Doing that with one `fsync` per file on the unpacking thread made the
//! unpack wait on the disk thousands of times (5,075 `fsync` calls, 2.3 s of a 600 MiB
//! install, `docs/BENCHMARKS.md`). Here the unpack hands each finished file to a
//! [`Syncer`], whose threads do nothing but wait on the disk, so the writes reach it
//! while the CPU is still inflating the next files; [`Syncer::finish`] waits for the
//! last ones and then syncs the folders.
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

use crate::cache::sync_dir;

/// Threads that wait on the disk; they use no CPU while they wait.
const THREADS: usize = 4;
/// Files queued for syncing at most; the unpack waits when the disk falls this far behind.
const QUEUE: usize = 256;

/// Files synced in the background; see the module documentation.
#[derive(Debug)]
pub struct Syncer {
    tx: Option<SyncSender<File>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// Files handed over so far (the `unpack-files` crash point counts them).
    added: AtomicU64,
    /// Set when the syncer is dropped without [`Syncer::finish`]: what is still
    /// queued is closed without waiting on the disk.
    abandoned: Arc<AtomicBool>,
}

impl Syncer {
    pub fn start() -> Syncer {
        let (tx, rx) = sync_channel::<File>(QUEUE);
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
            && let Err(back) = tx.send(file)
        {
            // Every syncing thread has ended (it failed): sync here instead, and let
            // `finish` report the failure.
            let _ = back.0.sync_all();
        }
    }

    /// Waits until every file handed over is on the disk, then syncs `dirs` (deepest
    /// first, so a folder is synced after the entries made in it).
    pub fn finish(mut self, mut dirs: Vec<PathBuf>) -> io::Result<()> {
        crate::failpoint::hit("before-sync");
        self.tx = None;
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
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            sync_dir(d);
        }
        crate::failpoint::hit("after-sync");
        Ok(())
    }
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

fn drain(rx: &Mutex<Receiver<File>>, abandoned: &AtomicBool) -> io::Result<()> {
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(file) = next else {
            return Ok(());
        };
        if !abandoned.load(Ordering::Relaxed) {
            file.sync_all()?;
        }
    }
}
