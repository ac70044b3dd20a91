//! Unpacking the archive while it downloads.
//!
//! A zip's table of contents (the central directory) is at its end, but every entry
//! is preceded by a local header with its name and sizes, and `peft-release pack`
//! writes those sizes in place (no data descriptors). So a [`Stream`] follows the
//! `.partial` file as the download writes it ([`Follow`], told by the fetcher through
//! [`Watch`]): one thread reads the local headers in order and checks each entry
//! against the signed index before anything is written (a safe path, listed, a
//! carrier, its signed size, not seen before), and the workers inflate, hash and
//! write the entries as their bytes arrive, each file checked against its signed
//! hash, exactly as [`super::extract`] does.
//!
//! This is only a head start: the result counts only when the download completes
//! with the archive's signed hash, the complete archive passes
//! [`super::extract::check_entries`], and the streamed files are exactly the
//! index's carriers. Anything else (a new download attempt, a server that ignored
//! `Range`, an archive this reader does not follow, a refused entry) ends the
//! stream; the caller then discards its folder and unpacks the finished archive
//! the ordinary way, which also gives any refusal its usual message.

use fs_err::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use peft_manifest::limits::MAX_BLOB;
use peft_manifest::{FileIndex, check_entry_path};
use zstd::zstd_safe::{DCtx, DParameter, ResetDirective};

use super::durable::Syncer;
use super::extract::{workers, write_verified};
use super::shared_file::read_at;
use crate::source::Watch;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
/// Entries waiting for a worker at most (each is a few numbers, not data).
const QUEUE: usize = 64;
/// What a worker reads the archive with, and copies each file through (its
/// hashing and writing): 256 KiB, well past where larger reads stop paying.
const BUF: usize = 256 << 10;

/// How far the partial file is written; shared by the fetcher and the stream.
#[derive(Debug, Default)]
pub struct Follow {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    attempt: u64,
    len: u64,
    ended: bool,
}

impl Watch for Follow {
    fn attempt(&self, len: u64) {
        let mut s = self.lock();
        s.attempt += 1;
        s.len = len;
        self.changed.notify_all();
    }
    fn grew(&self, len: u64) {
        self.lock().len = len;
        self.changed.notify_all();
    }
}

impl Follow {
    /// No more bytes will come (the download finished or failed).
    pub fn end(&self) {
        self.lock().ended = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the first attempt, the only one a stream follows; `None` when the
    /// download ended without one.
    fn first_attempt(&self) -> Option<u64> {
        let mut s = self.lock();
        while s.attempt == 0 && !s.ended {
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        (s.attempt != 0).then_some(1)
    }

    /// Waits until more than `pos` bytes of `attempt` are written; returns how many.
    fn past(&self, pos: u64, attempt: u64) -> io::Result<u64> {
        let mut s = self.lock();
        loop {
            if s.attempt != attempt {
                return Err(io::Error::other("the download started over"));
            }
            if s.len > pos {
                return Ok(s.len);
            }
            if s.ended {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Reads `[pos, end)` of the partial file, waiting for bytes still to come.
struct Tail<'a> {
    follow: &'a Follow,
    file: &'a File,
    attempt: u64,
    pos: u64,
    end: u64,
}

impl Read for Tail<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end || buf.is_empty() {
            return Ok(0);
        }
        let have = self.follow.past(self.pos, self.attempt)?;
        let n = (have.min(self.end) - self.pos).min(buf.len() as u64) as usize;
        let k = read_at(self.file.file(), &mut buf[..n], self.pos)?;
        if k == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += k as u64;
        Ok(k)
    }
}

/// What a finished stream leaves for the caller.
#[derive(Debug)]
pub struct Streamed {
    /// Which files of the index were written and verified, by their position in
    /// it (see [`FileIndex::carrier_mask`]).
    pub written: Vec<bool>,
    /// Their files, still being synced.
    pub syncer: Syncer,
}

impl Streamed {
    /// The paths of the files written, in index order.
    pub fn paths<'a>(&'a self, index: &'a FileIndex) -> impl Iterator<Item = &'a str> + 'a {
        index
            .files
            .iter()
            .zip(&self.written)
            .filter(|(_, w)| **w)
            .map(|(f, _)| f.path.as_str())
    }
}

/// How an entry's bytes are stored (zip compression methods 0, 8 and 93).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Stored,
    Deflate,
    Zstd,
}

/// One entry, located and checked, for a worker.
struct Job {
    /// Its file's position in the index.
    pos: usize,
    data: u64,
    compressed: u64,
    method: Method,
}

/// A running stream; see the module documentation.
#[derive(Debug)]
pub struct Stream {
    done: Arc<AtomicU64>,
    thread: JoinHandle<Result<Streamed, String>>,
    /// Disconnected when the thread ends (its sender is dropped with it).
    ended: Receiver<()>,
}

impl Stream {
    /// Starts following `partial` (once the fetcher's first attempt begins) and
    /// unpacking it into the empty folder `dest`.
    pub fn start(
        partial: PathBuf,
        index: impl Into<Arc<FileIndex>>,
        dest: PathBuf,
        follow: Arc<Follow>,
    ) -> Stream {
        let index = index.into();
        let done = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&done);
        let (alive, ended) = channel();
        let thread = std::thread::spawn(move || {
            let _alive = alive;
            run(&partial, &index, &dest, &follow, &counter)
        });
        Stream {
            done,
            thread,
            ended,
        }
    }

    /// Bytes written so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits at most `timeout` for the end; whether it came.
    pub fn wait(&self, timeout: Duration) -> bool {
        matches!(
            self.ended.recv_timeout(timeout),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        )
    }

    /// Waits for the end; `Err` says why the stream gave up.
    pub fn join(self) -> Result<Streamed, String> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err("the unpacking thread panicked".into()))
    }
}

fn run(
    partial: &std::path::Path,
    index: &FileIndex,
    dest: &std::path::Path,
    follow: &Follow,
    done: &AtomicU64,
) -> Result<Streamed, String> {
    let attempt = follow
        .first_attempt()
        .ok_or("the download ended before it began")?;
    let file = File::open(partial).map_err(|e| e.to_string())?;
    let syncer = Syncer::start();
    let failed = AtomicBool::new(false);
    let (tx, rx) = sync_channel::<Job>(QUEUE);
    let (large_tx, large_rx) = sync_channel::<Job>(QUEUE);
    let (rx, large_rx) = (Mutex::new(rx), Mutex::new(large_rx));
    // One worker per core, plus the lane of large zstd files (see `SMALL_ENTRY`).
    let lanes = std::iter::repeat_n((&rx, false), workers()).chain([(&large_rx, true)]);
    let (file, sync, failed) = (&file, &syncer, &failed);
    let (parsed, results) = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .map(|(rx, large)| {
                s.spawn(move || {
                    let mut buf = vec![0u8; BUF];
                    let mut ctx = None;
                    let mut written = Vec::new();
                    let mut error = None;
                    loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(job) = job else {
                            return error.map_or(Ok(written), Err);
                        };
                        // After a failure, keep taking jobs (so the reader never
                        // blocks on a full queue) but do nothing with them.
                        if failed.load(Ordering::Relaxed) {
                            continue;
                        }
                        let Some(want) = index.files.get(job.pos) else {
                            continue;
                        };
                        let tail = Tail {
                            follow,
                            file,
                            attempt,
                            pos: job.data,
                            end: job.data + job.compressed,
                        };
                        // A small entry gets a small buffer: there are thousands.
                        let cap = usize::try_from(job.compressed)
                            .map_or(BUF, |c| c.min(BUF))
                            .max(4096);
                        let input = BufReader::with_capacity(cap, tail);
                        let (name, path) = (want.path.as_str(), dest.join(&want.path));
                        let mut write =
                            |r: &mut dyn Read| write_verified(r, &path, name, want, &mut buf, done);
                        let r = match job.method {
                            Method::Deflate => {
                                Ok(write(&mut flate2::bufread::DeflateDecoder::new(input)))
                            }
                            Method::Stored => Ok(write(&mut input.into_inner())),
                            Method::Zstd if large => context(&mut ctx)
                                .and_then(|ctx| decode_alongside(input, ctx, &mut write)),
                            Method::Zstd => context(&mut ctx)
                                .and_then(|ctx| Ok(write(&mut zstd_reader(input, ctx)?))),
                        }
                        .unwrap_or_else(|e| {
                            Err(crate::error::Error::storage("starting zstd for", &path, e))
                        });
                        match r {
                            Ok(f) => {
                                sync.add(f);
                                written.push(job.pos);
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                error = Some(e.to_string());
                            }
                        }
                    }
                })
            })
            .collect();
        let parsed = parse(index, follow, file, attempt, [&tx, &large_tx], failed);
        if parsed.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        drop((tx, large_tx));
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect();
        (parsed, results)
    });
    // A worker's error first: the reader then only says that a worker failed.
    let mut written = vec![false; index.files.len()];
    for r in results {
        for pos in r? {
            if let Some(w) = written.get_mut(pos) {
                *w = true;
            }
        }
    }
    parsed?;
    Ok(Streamed { written, syncer })
}

/// Reads the local headers in order, handing each checked entry to the workers.
fn parse(
    index: &FileIndex,
    follow: &Follow,
    file: &File,
    attempt: u64,
    [tx, large_tx]: [&std::sync::mpsc::SyncSender<Job>; 2],
    failed: &AtomicBool,
) -> Result<(), String> {
    let carrier = index.carrier_mask();
    let mut seen = vec![false; index.files.len()];
    let mut pos = 0u64;
    let read = |pos: u64, n: usize| -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; n];
        let mut tail = Tail {
            follow,
            file,
            attempt,
            pos,
            end: pos + n as u64,
        };
        tail.read_exact(&mut v)
            .map_err(|e| format!("at byte {pos}: {e}"))?;
        Ok(v)
    };
    while !failed.load(Ordering::Relaxed) {
        let sig = read(pos, 4)?;
        match u32::from_le_bytes([sig[0], sig[1], sig[2], sig[3]]) {
            LOCAL_HEADER => {}
            CENTRAL_HEADER | END_OF_CENTRAL => return Ok(()),
            other => return Err(format!("no local header at byte {pos} ({other:#x})")),
        }
        let h = read(pos + 4, 26)?;
        let u16_at = |i: usize| u64::from(u16::from_le_bytes([h[i], h[i + 1]]));
        let u32_at = |i: usize| u64::from(u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        let (flags, method) = (u16_at(2), u16_at(4));
        let (mut compressed, mut size) = (u32_at(14), u32_at(18));
        let (name_len, extra_len) = (u16_at(22), u16_at(24));
        let rest = read(pos + 30, (name_len + extra_len) as usize)?;
        let name = std::str::from_utf8(&rest[..name_len as usize])
            .map_err(|_| format!("a name that is not UTF-8 at byte {pos}"))?;
        if flags & 0b1001 != 0 {
            return Err(format!(
                "{name:?} is encrypted or has no sizes in its header"
            ));
        }
        if compressed == 0xFFFF_FFFF || size == 0xFFFF_FFFF {
            (size, compressed) = zip64_sizes(&rest[name_len as usize..], size, compressed)
                .ok_or_else(|| format!("{name:?} has no readable zip64 sizes"))?;
        }
        check_entry_path(name).map_err(|p| format!("{name:?} {p}"))?;
        let (at, want) = index
            .position(name)
            .filter(|&i| carrier.get(i) == Some(&true))
            .and_then(|i| Some((i, index.files.get(i)?)))
            .ok_or_else(|| format!("{name:?} is not a carrier in the signed index"))?;
        let first = seen.get_mut(at).map(|s| !std::mem::replace(s, true));
        if size != want.size || first != Some(true) {
            return Err(format!("{name:?} is repeated or not of its signed size"));
        }
        let method = match method {
            8 => Method::Deflate,
            93 => Method::Zstd,
            0 if compressed == size => Method::Stored,
            m => return Err(format!("{name:?} is stored with method {m}")),
        };
        let data = pos + 30 + name_len + extra_len;
        // Every entry ends within the largest archive, so no position overflows.
        let end = data
            .checked_add(compressed)
            .filter(|&end| end <= MAX_BLOB)
            .ok_or_else(|| {
                format!("{name:?} claims {compressed} bytes, past the largest archive")
            })?;
        let job = Job {
            pos: at,
            data,
            compressed,
            method,
        };
        let lane = if method == Method::Zstd && want.size > SMALL_ENTRY {
            large_tx
        } else {
            tx
        };
        lane.send(job)
            .map_err(|_| "the workers stopped".to_string())?;
        pos = end;
    }
    Err("a worker failed".into())
}

/// zstd files up to this size are decoded by the workers, each with its own context;
/// larger ones go to a lane of their own, one after another, with one context. A
/// context keeps the largest window it has decoded (8 MiB for large files at
/// `pack`'s level 19), so a context per worker made the unpack hold a window per
/// core; this way it holds one large window, and each worker's stays at most this
/// size. Large files are most of the bytes (15 files over 8 MiB were 93 % of the
/// real-library tree), so while the lane decodes one, its hashing and writing run on
/// a second thread ([`decode_alongside`]), and the workers go on with the small
/// files meanwhile: the cores stay busy without a second window.
const SMALL_ENTRY: u64 = 1 << 20;

/// Decoded pieces in flight between the decoding thread and the writing one.
const PIECES: usize = 4;
/// The size of each (1 MiB in flight in all).
const PIECE: usize = 256 << 10;

/// Runs `consume` (hash and write) on the bytes `input` decodes to, decoding with
/// `ctx` on a thread of its own, [`PIECES`] pieces ahead at most.
fn decode_alongside<R: Read + Send, T>(
    input: BufReader<R>,
    ctx: &mut DCtx<'static>,
    consume: impl FnOnce(&mut dyn Read) -> T,
) -> io::Result<T> {
    let (full_tx, full) = sync_channel::<io::Result<(Vec<u8>, usize)>>(PIECES);
    let (empty, empty_rx) = channel::<Vec<u8>>();
    for _ in 0..PIECES {
        let _ = empty.send(vec![0u8; PIECE]);
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut z = match zstd_reader(input, ctx) {
                Ok(z) => z,
                Err(e) => {
                    let _ = full_tx.send(Err(e));
                    return;
                }
            };
            // Ends when the reader drops its end (it stopped early) or at the end.
            while let Ok(mut piece) = empty_rx.recv() {
                let mut n = 0;
                let sent = loop {
                    match z.read(&mut piece[n..]) {
                        Ok(0) if n == 0 => return,
                        Ok(0) => break full_tx.send(Ok((piece, n))),
                        Ok(k) if n + k == piece.len() => break full_tx.send(Ok((piece, n + k))),
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = full_tx.send(Err(e));
                            return;
                        }
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        let mut pieces = Pieces {
            full,
            empty,
            current: None,
            at: 0,
        };
        Ok(consume(&mut pieces))
    })
}

/// The reading end of [`decode_alongside`]: the decoded pieces in order, each sent
/// back for reuse once read.
struct Pieces {
    full: Receiver<io::Result<(Vec<u8>, usize)>>,
    empty: std::sync::mpsc::Sender<Vec<u8>>,
    current: Option<(Vec<u8>, usize)>,
    at: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((piece, len)) = &self.current
                && self.at < *len
            {
                let k = (*len - self.at).min(buf.len());
                buf[..k].copy_from_slice(&piece[self.at..self.at + k]);
                self.at += k;
                return Ok(k);
            }
            if let Some((piece, _)) = self.current.take() {
                let _ = self.empty.send(piece);
                self.at = 0;
            }
            match self.full.recv() {
                Ok(Ok(next)) => self.current = Some(next),
                Ok(Err(e)) => return Err(e),
                // The decoder ended: every piece was read.
                Err(_) => return Ok(0),
            }
        }
    }
}

/// The zstd context in `slot`, made there (with the window limit) if it is empty.
fn context<'a>(slot: &'a mut Option<DCtx<'static>>) -> io::Result<&'a mut DCtx<'static>> {
    if slot.is_none() {
        let mut ctx = DCtx::try_create().ok_or_else(|| io::Error::other("out of memory"))?;
        ctx.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
            .map_err(zstd_error)?;
        *slot = Some(ctx);
    }
    slot.as_mut()
        .ok_or_else(|| io::Error::other("no zstd context"))
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd::zstd_safe::get_error_name(code))
}

/// The largest zstd window an entry may ask for, as a power of two: 16 MiB, twice
/// what `peft-release pack`'s highest level (19) uses. Each zstd context holds one
/// window (see [`SMALL_ENTRY`]), so this bounds the unpack's memory even for bytes
/// not yet verified.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// A zstd decoder of one entry's data with `ctx` (reset first, so nothing of an
/// entry that failed half-way carries over). It decodes every frame up to the
/// entry's end, as the `zip` crate does for the ordinary unpack, so both take the
/// same entries: an entry of several frames is their concatenation, and bytes after
/// a frame that are no frame are refused (a decoder that stopped after the first
/// frame took those, while `extract`, offline installs and repairs refused the same
/// archive).
pub(super) fn zstd_reader<'a, R: Read>(
    input: BufReader<R>,
    ctx: &'a mut DCtx<'static>,
) -> io::Result<zstd::stream::read::Decoder<'a, BufReader<R>>> {
    ctx.reset(ResetDirective::SessionOnly).map_err(zstd_error)?;
    Ok(zstd::stream::read::Decoder::with_context(input, ctx))
}

/// The 64-bit sizes from a local header's zip64 extra field (uncompressed first).
fn zip64_sizes(mut extra: &[u8], size: u64, compressed: u64) -> Option<(u64, u64)> {
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let body = extra.get(4..4 + len)?;
        if id == 1 {
            let mut vals = body
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
            let size = if size == 0xFFFF_FFFF {
                vals.next()?
            } else {
                size
            };
            let compressed = if compressed == 0xFFFF_FFFF {
                vals.next()?
            } else {
                compressed
            };
            return Some((size, compressed));
        }
        extra = &extra[4 + len..];
    }
    None
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
