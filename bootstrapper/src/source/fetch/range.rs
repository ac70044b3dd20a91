//! Reading one byte range of a blob over HTTP, for `verify --repair`, which fetches
//! a zip's end and then only the entries it needs.
//!
//! The bytes land in a caller's file at their offsets in the blob, so a range of any
//! size costs no memory. Retries follow the download's rules ([`super::retry`]): a
//! dropped connection resumes at the byte reached with a narrower `Range`, timeouts,
//! 408, 429 and 5xx are retried with backoff, and the failure budget resets whenever
//! an attempt gets further. Never more than the asked bytes are written: a server
//! that sends more is read no further. There is no hash to check here (a range of a
//! blob has none of its own); the caller checks what it builds from the bytes.

use fs_err::File;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;

use reqwest::StatusCode;
use url::Url;

use super::{Fetcher, content_range_start};
use crate::error::{Error, Result};
use crate::report::Reporter;
use crate::source::client;
use crate::source::retry::{self, Stop, retryable};

use super::{SERVER_ERROR, UNREACHABLE};

/// How a range request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// The range is in the file, at its offsets.
    Written,
    /// The server answered `200` with the whole blob: it ignores `Range`. Nothing
    /// was written.
    Ignored,
}

impl Fetcher {
    /// Writes the bytes `range` of `rel` below the HTTP root `base` into `out` at the
    /// same offsets; `got` hears how many bytes arrived with each chunk.
    pub async fn get_range(
        &self,
        base: &Url,
        rel: &str,
        range: Range<u64>,
        out: &mut File,
        got: &mut dyn FnMut(u64),
        reporter: Option<&dyn Reporter>,
    ) -> Result<Ranged> {
        let url = base
            .join(rel)
            .map_err(|e| Error::Internal(format!("{base}{rel}: {e}")))?;
        let network = |detail: String| self.net.network_error(url.to_string(), detail);
        let (mut have, end) = (range.start, range.end);
        let (mut failures, mut furthest) = (0u32, have);
        let (mut last_error, mut hint) = (String::new(), None);
        let mut reason = UNREACHABLE;
        while have < end {
            if failures >= self.max_failures {
                return Err(network(format!(
                    "gave up on bytes {have}-{} after {failures} failed attempts: {last_error}",
                    end - 1
                )));
            }
            if failures > 0 {
                let said = format!("{url}: {last_error}");
                self.backoff(reporter, failures, hint.take(), reason, &said)
                    .await;
            }
            let req = self
                .net
                .http
                .get(url.clone())
                .header(reqwest::header::RANGE, format!("bytes={have}-{}", end - 1));
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) if !client::transient(&e) => {
                    return Err(network(self.net.explain(&e, &url)));
                }
                Err(e) => {
                    last_error = self.net.explain(&e, &url);
                    reason = UNREACHABLE;
                    failures += 1;
                    continue;
                }
            };
            match resp.status() {
                StatusCode::PARTIAL_CONTENT if content_range_start(&resp) == Some(have) => {}
                StatusCode::PARTIAL_CONTENT => {
                    last_error = format!(
                        "asked for bytes {have}-{}, got a range from {:?}",
                        end - 1,
                        content_range_start(&resp)
                    );
                    reason = SERVER_ERROR;
                    failures += 1;
                    continue;
                }
                StatusCode::OK => return Ok(Ranged::Ignored),
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    return Err(Error::integrity_hint(
                        format!(
                            "{url} is shorter than the signed manifest says: bytes {have}-{} do not exist",
                            end - 1
                        ),
                        "the repository serves another file under this name; nothing was written",
                    ));
                }
                s if retryable(s) => {
                    last_error = format!("HTTP {s}");
                    hint = retry::retry_after(&resp);
                    reason = SERVER_ERROR;
                    failures += 1;
                    continue;
                }
                _ => return Err(network(self.net.status_error(&resp, &url))),
            }
            out.seek(SeekFrom::Start(have))
                .map_err(|e| Error::storage("writing", out.path(), e))?;
            let mut meter = self.pace.meter();
            let mut slow = false;
            while have < end {
                match meter.chunk(&mut resp).await {
                    Ok(Some(bytes)) => {
                        // Bytes past the range are never written (nor read further).
                        let take = bytes.len().min((end - have) as usize);
                        out.write_all(&bytes[..take])
                            .map_err(|e| Error::storage("writing", out.path(), e))?;
                        have += take as u64;
                        got(take as u64);
                    }
                    Ok(None) => break,
                    Err(Stop::Lost(e)) => {
                        let why = self.net.explain(&e, &url);
                        last_error = format!("connection lost at byte {have}: {why}");
                        reason = UNREACHABLE;
                        break;
                    }
                    Err(Stop::Slow(m)) => {
                        last_error = format!("{m}, at byte {have}");
                        reason = UNREACHABLE;
                        slow = true;
                        break;
                    }
                }
            }
            if have > furthest && !slow {
                furthest = have;
                failures = 0;
            } else if have < end {
                if last_error.is_empty() {
                    last_error = "the response ended without data".into();
                    reason = SERVER_ERROR;
                }
                failures += 1;
            }
        }
        Ok(Ranged::Written)
    }
}
