//! Getting bytes from a release repository: the manifest, indexes and archives.
//!
//! A repository root is an `http(s)://` URL or a local folder (`file://` or an
//! offline folder). Blobs are streamed to `downloads/<sha256>.partial` while they are
//! hashed, never beyond their signed size, and renamed to `downloads/<sha256>` only
//! when size and digest match. A dropped connection or a killed process resumes with
//! an HTTP `Range` request; a server that ignores `Range` restarts from zero, never
//! appends. Timeouts, 408, 429 and 5xx are retried with backoff ([`retry`]); the
//! budget of failures resets whenever a response delivers bytes beyond the furthest
//! point reached, so a server that cuts every response still delivers the whole
//! blob, while one that cuts and restarts, or drips bytes, is given up on. Other 4xx,
//! refused redirects and wrong bytes move on to the next root (the manifest's
//! `mirrors`). Every download has a total deadline ([`retry::Deadline`]); the bytes
//! received before it passed are kept for the next run. The client itself, its trust
//! roots and proxies, and the words for its failures are [`client`]'s.

use fs_err::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use peft_manifest::{Blob, Sha256Hasher};
use reqwest::StatusCode;
use url::Url;

// Kept beside this file (not a folder of its own) to leave the module tree as it is.

use super::client::{self, Client};
use super::failure::Failure;
use super::local::copy_local;
use super::retry::{self, Deadline, Pace, Stop, retryable};
use super::{NoWatch, Root, Watch};
use crate::env;
use crate::error::{Error, Result, human_bytes};
use crate::report::{Event, Phase, Reporter};

pub(super) mod range;

/// Downloads with retries; one per command.
#[derive(Debug, Clone)]
pub struct Fetcher {
    net: Client,
    retry_base: Duration,
    max_failures: u32,
    pace: Pace,
    deadline: Deadline,
}

impl Fetcher {
    pub fn new() -> Result<Fetcher> {
        Ok(Fetcher {
            net: Client::new()?,
            retry_base: Duration::from_millis(env::number(env::RETRY_BASE_MS, 500)),
            max_failures: 5,
            pace: Pace::from_env(),
            deadline: Deadline::from_env(),
        })
    }

    /// Says that attempt `failures + 1` follows, and why (a `retry` event, before
    /// the wait), then waits; `hint` is the server's `Retry-After`.
    pub(super) async fn backoff(
        &self,
        reporter: Option<&dyn Reporter>,
        failures: u32,
        hint: Option<Duration>,
        reason: &str,
        message: &str,
    ) {
        let wait = retry::delay(self.retry_base, failures, hint);
        if let Some(reporter) = reporter {
            reporter.emit(Event::Retry {
                attempt: failures + 1,
                max_attempts: self.max_failures,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                reason: reason.to_string(),
                message: message.to_string(),
            });
        }
        tokio::time::sleep(wait).await;
    }

    /// Fetches a small file (manifest, signature, index) of at most `max` bytes from
    /// the first root that has it.
    /// The whole search has the deadline of a download of `max` bytes.
    pub async fn get_small(
        &self,
        roots: &[Root],
        rel: &str,
        max: u64,
        reporter: &dyn Reporter,
    ) -> Result<Vec<u8>> {
        let url = roots.first().map(|r| r.describe(rel)).unwrap_or_default();
        let mut last = String::from("no source configured");
        let search = async {
            for root in roots {
                match self.get_small_from(root, rel, max, reporter).await {
                    Ok(b) => return Ok(b),
                    Err(Failure::Fatal(e)) => return Err(e),
                    Err(Failure::Integrity(m) | Failure::Network(m)) => {
                        tracing::debug!("{}: {m}", root.describe(rel));
                        last = m;
                    }
                }
            }
            Err(self.net.network_error(url.clone(), last))
        };
        match tokio::time::timeout(self.deadline.budget(max), search).await {
            Ok(r) => r,
            Err(_) => Err(self.net.network_error(url, self.deadline.passed(max))),
        }
    }

    async fn get_small_from(
        &self,
        root: &Root,
        rel: &str,
        max: u64,
        reporter: &dyn Reporter,
    ) -> Result<Vec<u8>, Failure> {
        let url = match root {
            Root::Dir(d) => {
                let p = d.join(rel);
                let f = File::open(&p).map_err(|e| Failure::Network(e.to_string()))?;
                let mut buf = Vec::new();
                f.take(max + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| Failure::Network(e.to_string()))?;
                if buf.len() as u64 > max {
                    return Err(Failure::Fatal(too_big(&p.display().to_string(), max)));
                }
                return Ok(buf);
            }
            Root::Http(base) => base
                .join(rel)
                .map_err(|e| Failure::Fatal(Error::Internal(e.to_string())))?,
        };
        let mut failures = 0;
        loop {
            let mut hint = None;
            let mut reason = UNREACHABLE;
            let attempt = async {
                let mut resp = self
                    .net
                    .http
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| (client::transient(&e), self.net.explain(&e, &url)))?;
                let status = resp.status();
                if !status.is_success() {
                    hint = retry::retry_after(&resp);
                    reason = SERVER_ERROR;
                    return Err((retryable(status), self.net.status_error(&resp, &url)));
                }
                if resp.content_length().is_some_and(|n| n > max) {
                    return Err((false, format!("larger than the {} cap", human_bytes(max))));
                }
                let mut buf = Vec::new();
                let mut meter = self.pace.meter();
                while let Some(chunk) = meter.chunk(&mut resp).await.map_err(|e| match e {
                    Stop::Lost(e) => (true, self.net.explain(&e, &url)),
                    Stop::Slow(m) => (true, m),
                })? {
                    buf.extend_from_slice(&chunk);
                    if buf.len() as u64 > max {
                        return Err((false, format!("larger than the {} cap", human_bytes(max))));
                    }
                }
                Ok(buf)
            };
            let outcome = attempt.await;
            match outcome {
                Ok(buf) => return Ok(buf),
                Err((false, m)) if m.contains("cap") => {
                    return Err(Failure::Fatal(too_big(url.as_str(), max)));
                }
                Err((true, m)) if failures + 1 < self.max_failures => {
                    tracing::debug!("{url}: {m}; retrying");
                    failures += 1;
                    let said = format!("{url}: {m}");
                    self.backoff(Some(reporter), failures, hint, reason, &said)
                        .await;
                }
                Err((_, m)) => return Err(Failure::Network(m)),
            }
        }
    }

    /// Makes `downloads/<sha256>` hold exactly `blob`, from the first root that
    /// delivers it, and returns its path.
    pub async fn download(
        &self,
        roots: &[Root],
        blob: &Blob,
        downloads: &Path,
        reporter: &dyn Reporter,
    ) -> Result<PathBuf> {
        self.download_watched(roots, blob, downloads, reporter, &NoWatch)
            .await
    }

    /// [`Fetcher::download`], telling `watch` how the partial file grows (only when
    /// the blob is not already complete in `downloads`).
    pub async fn download_watched(
        &self,
        roots: &[Root],
        blob: &Blob,
        downloads: &Path,
        reporter: &dyn Reporter,
        watch: &dyn Watch,
    ) -> Result<PathBuf> {
        let hex = blob.sha256.hex();
        let done = downloads.join(&hex);
        if done.is_file() {
            reporter.progress(Phase::Verify, 0, blob.size);
            if hash_file(&done)
                .map(|(d, n)| d == blob.sha256.hex() && n == blob.size)
                .unwrap_or(false)
            {
                reporter.progress(Phase::Verify, blob.size, blob.size);
                return Ok(done);
            }
            let _ = fs_err::remove_file(&done);
        }
        let partial = crate::cache::partial_path(downloads, &hex);
        let mut network = Vec::new();
        let mut integrity = Vec::new();
        let until = tokio::time::Instant::now() + self.deadline.budget(blob.size);
        for root in roots {
            let from = root.describe(&blob.path());
            let result = match root {
                Root::Http(base) => {
                    let attempts = self.download_http(base, blob, &partial, reporter, watch);
                    match tokio::time::timeout_at(until, attempts).await {
                        Ok(r) => r,
                        // Dropped at an await: every byte written so far is whole (the
                        // buffer is flushed on drop) and is resumed by the next run.
                        Err(_) => {
                            let kept = fs_err::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                            network.push(format!(
                                "{from}: {}; the {kept} bytes received are kept for the next run",
                                self.deadline.passed(blob.size)
                            ));
                            break;
                        }
                    }
                }
                Root::Dir(dir) => {
                    copy_local(&dir.join(blob.path()), blob, &partial, reporter, watch)
                }
            };
            match result {
                Ok(()) => {
                    fs_err::rename(&partial, &done)
                        .map_err(|e| Error::storage("renaming", &partial, e))?;
                    return Ok(done);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Network(m)) => network.push(format!("{from}: {m}")),
                Err(Failure::Integrity(m)) => integrity.push(format!("{from}: {m}")),
            }
        }
        if !integrity.is_empty() {
            return Err(Error::integrity_hint(
                format!(
                    "the download of {hex} does not match the signed manifest: {}",
                    integrity.join("; ")
                ),
                "the repository or a proxy serves altered files; nothing was installed",
            ));
        }
        let url = roots.first().map(|r| r.describe(&blob.path()));
        Err(self
            .net
            .network_error(url.unwrap_or_default(), network.join("; ")))
    }

    async fn download_http(
        &self,
        base: &Url,
        blob: &Blob,
        partial: &Path,
        reporter: &dyn Reporter,
        watch: &dyn Watch,
    ) -> Result<(), Failure> {
        let url = base
            .join(&blob.path())
            .map_err(|e| Failure::Fatal(Error::Internal(e.to_string())))?;
        let storage = |action, e| Failure::Fatal(Error::storage(action, partial, e));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(partial)
            .map_err(|e| storage("opening", e))?;
        let len = file.metadata().map_err(|e| storage("reading", e))?.len();
        let mut have = if len > blob.size { 0 } else { len };
        let mut hasher = hash_prefix(&mut file, have).map_err(|e| storage("reading", e))?;
        // Truncating only when needed: on ext4, truncating a file to zero bytes (even
        // a new, empty one) makes its `close` write all its data to the disk, which
        // kept the download waiting 0.23 s for 533 MB about to be deleted anyway.
        if have != len {
            file.set_len(have).map_err(|e| storage("writing", e))?;
        }
        file.seek(SeekFrom::Start(have))
            .map_err(|e| storage("writing", e))?;
        watch.attempt(have);
        // What was on disk before this run: progress says so, and speed and time
        // left count only what this run moves.
        let mut resumed = have;
        set_in_flight(partial, blob.size);
        reporter.download(have, blob.size, resumed);
        // Each chunk goes straight to the file (chunks over loopback are ~400 KB; a
        // buffer in between only copied every byte once more), and the stream
        // following the file hears of it at once.
        let mut out = file;
        let mut failures = 0u32;
        let mut last_error = String::new();
        // Only bytes beyond this point count as progress that resets `failures`.
        let mut furthest = have;
        let mut hint = None;
        let mut reason = UNREACHABLE;
        while have < blob.size {
            if failures >= self.max_failures {
                return Err(Failure::Network(format!(
                    "gave up after {failures} failed attempts: {last_error}"
                )));
            }
            if failures > 0 {
                let said = format!("{url}: {last_error}");
                self.backoff(Some(reporter), failures, hint.take(), reason, &said)
                    .await;
            }
            let mut req = self.net.http.get(url.clone());
            if have > 0 {
                req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
            }
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) if !client::transient(&e) => {
                    return Err(Failure::Network(self.net.explain(&e, &url)));
                }
                Err(e) => {
                    last_error = self.net.explain(&e, &url);
                    reason = UNREACHABLE;
                    failures += 1;
                    continue;
                }
            };
            let status = resp.status();
            let range_start = content_range_start(&resp);
            let restart = match status {
                StatusCode::PARTIAL_CONTENT => range_start != Some(have),
                StatusCode::OK => have > 0,
                StatusCode::RANGE_NOT_SATISFIABLE => true,
                s if retryable(s) => {
                    last_error = format!("HTTP {s}");
                    reason = SERVER_ERROR;
                    failures += 1;
                    hint = retry::retry_after(&resp);
                    continue;
                }
                _ => return Err(Failure::Network(self.net.status_error(&resp, &url))),
            };
            if restart {
                // The server ignored or mangled the range: start over, never append.
                tracing::debug!("{url}: {status} for bytes={have}-; restarting from zero");
                let asked = have;
                out.set_len(0).map_err(|e| storage("writing", e))?;
                out.seek(SeekFrom::Start(0))
                    .map_err(|e| storage("writing", e))?;
                have = 0;
                resumed = 0;
                watch.attempt(0);
                hasher = Sha256Hasher::new();
                // Only a body that starts at byte 0 can be kept; otherwise ask again.
                if status != StatusCode::OK && range_start != Some(0) {
                    last_error = match range_start {
                        Some(at) => format!("asked for bytes={asked}-, got a range from {at}"),
                        None => format!("HTTP {status} for bytes={asked}-"),
                    };
                    reason = SERVER_ERROR;
                    failures += 1;
                    continue;
                }
            }
            let mut slow = false;
            let mut meter = self.pace.meter();
            loop {
                match meter.chunk(&mut resp).await {
                    Ok(Some(bytes)) => {
                        if have + bytes.len() as u64 > blob.size {
                            drop(out);
                            let _ = fs_err::remove_file(partial);
                            return Err(Failure::Integrity(format!(
                                "the server sent more than the signed size of {} bytes",
                                blob.size
                            )));
                        }
                        out.write_all(&bytes).map_err(|e| storage("writing", e))?;
                        hasher.update(&bytes);
                        have += bytes.len() as u64;
                        watch.grew(have);
                        reporter.download(have, blob.size, resumed);
                        crate::failpoint::count("download-bytes", have);
                    }
                    Ok(None) => break,
                    Err(Stop::Lost(e)) => {
                        let why = self.net.explain(&e, &url);
                        last_error = format!("connection lost at byte {have}: {why}");
                        reason = UNREACHABLE;
                        tracing::debug!("{url}: {last_error}");
                        break;
                    }
                    Err(Stop::Slow(m)) => {
                        last_error = format!("{m}, at byte {have}");
                        reason = UNREACHABLE;
                        tracing::debug!("{url}: {last_error}");
                        slow = true;
                        break;
                    }
                }
            }
            if have > furthest && !slow {
                furthest = have;
                failures = 0;
            } else if have < blob.size {
                if last_error.is_empty() {
                    last_error = "the response ended without data".into();
                    reason = SERVER_ERROR;
                }
                failures += 1;
            }
        }
        // No fsync: a download is re-hashed before every use (see `download`), so a
        // power cut can cost a fresh download, never a wrong install.
        drop(out);
        watch.grew(have);
        let got = hasher.finish();
        if got != blob.sha256 {
            let _ = fs_err::remove_file(partial);
            return Err(Failure::Integrity(format!(
                "SHA-256 is {got}, the manifest says {}",
                blob.sha256
            )));
        }
        Ok(())
    }
}

/// The `retry` event's reasons (the words of the `error` event's `reason`).
pub(super) const UNREACHABLE: &str = "unreachable";
pub(super) const SERVER_ERROR: &str = "server_error";

/// The download over HTTP started last in this process: its partial file and size.
static IN_FLIGHT: std::sync::Mutex<Option<(PathBuf, u64)>> = std::sync::Mutex::new(None);

fn set_in_flight(partial: &Path, size: u64) {
    if let Ok(mut f) = IN_FLIGHT.lock() {
        *f = Some((partial.to_path_buf(), size));
    }
}

/// The partial download an interrupted run leaves, if one was in progress: its
/// path, the bytes it holds and the blob's size. (A finished download was renamed,
/// so its partial file is gone.)
pub fn interrupted_download() -> Option<(PathBuf, u64, u64)> {
    let (path, size) = IN_FLIGHT.lock().ok()?.clone()?;
    let len = fs_err::metadata(&path).ok()?.len();
    Some((path, len, size))
}

fn too_big(what: &str, max: u64) -> Error {
    Error::integrity(format!(
        "{what} is larger than the {} cap; refusing it",
        human_bytes(max)
    ))
}

/// The first byte a `Content-Range: bytes N-M/T` header says the body starts at.
fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Hashes the first `n` bytes of `file`.
fn hash_prefix(file: &mut File, n: u64) -> std::io::Result<Sha256Hasher> {
    let mut h = Sha256Hasher::new();
    file.seek(SeekFrom::Start(0))?;
    let mut take = (&mut *file).take(n);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = take.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    Ok(h)
}

/// The hex SHA-256 and size of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let (digest, n) = peft_manifest::Sha256::of_reader(File::open(path)?)?;
    Ok((digest.hex(), n))
}
