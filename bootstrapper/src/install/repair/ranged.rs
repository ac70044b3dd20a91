//! Repairing from an HTTP repository without downloading the whole archive: its
//! end, its central directory and the damaged entries, each by a `Range` request.
//!
//! The fetched ranges go into an unnamed temporary file in `downloads/` at their
//! offsets in the archive (so memory stays small however large an entry is), and a
//! [`Patchwork`] reader over that file lets `zip` read the archive as if it were
//! whole, failing on any byte that was not fetched. The archive's signed SHA-256
//! cannot be checked on a partial read: each entry is inflated (`zip` checks its
//! CRC-32) and then checked against its SHA-256 and size in the signed index, which
//! is what decides. A server that answers a range with the whole archive (`200`)
//! is reported as [`Network::Ignored`]: the caller then downloads the whole archive
//! the ordinary, verified way.

use fs_err::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use peft_manifest::{Blob, FileIndex};
use url::Url;

use super::Repair;
use super::plan::{GAP, central_directory, coalesce, entry_spans, missing, tail};
use crate::error::{Error, Result};
use crate::install::shared_file::{read_at, seek_within};
use crate::report::{Phase, RepairSource, Reporter};
use crate::source::{Fetcher, Ranged};

/// How a network repair went; `fetched` counts the bytes that came over the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Every needed range was read (the [`Repair`] says which files matched).
    Read { fetched: u64 },
    /// The server ignores `Range`: nothing was repaired.
    Ignored { fetched: u64 },
}

/// Reads the damaged entries of the archive `blob` (packed with `index`) from the
/// HTTP root `base` by ranges and repairs them; see the module documentation.
pub async fn mend_from_network(
    repair: &mut Repair,
    fetcher: &Fetcher,
    base: &Url,
    blob: &Blob,
    index: &FileIndex,
    downloads: &Path,
    reporter: &dyn Reporter,
) -> Result<Network> {
    let (size, rel) = (blob.size, blob.path());
    let what = base
        .join(&rel)
        .map_or_else(|_| rel.clone(), |u| u.to_string());
    let scratch = downloads.join(format!("{}.ranges", blob.sha256.hex()));
    // Unnamed: nothing is left behind, even by a killed process.
    let file = tempfile::tempfile_in(downloads)
        .map(|f| File::from_parts(f, &scratch))
        .map_err(|e| Error::storage("creating a temporary file in", downloads, e))?;
    let refuse = |why: String| {
        Error::integrity_hint(
            format!("the archive {what} is refused: {why}"),
            "the repository serves an archive that does not match the signed index; nothing was written",
        )
    };
    let mut got = Ranges {
        fetcher,
        base,
        rel: &rel,
        file,
        have: Vec::new(),
        fetched: 0,
    };
    // 1. The end, which says where the central directory is.
    let end = tail(size);
    if !got.fetch(std::slice::from_ref(&end), None).await? {
        return Ok(Network::Ignored {
            fetched: got.fetched,
        });
    }
    let mut bytes = vec![0u8; (end.end - end.start) as usize];
    read_exact_at(&got.file, &mut bytes, end.start)
        .map_err(|e| Error::storage("reading", &scratch, e))?;
    let cd = central_directory(&bytes, size).map_err(refuse)?;
    // 2. The part of the central directory before that end, if any.
    let directory = cd.start..size;
    if !got.fetch(std::slice::from_ref(&directory), None).await? {
        return Ok(Network::Ignored {
            fetched: got.fetched,
        });
    }
    // 3. The entries that carry the damaged contents.
    let wanted = {
        let zip = archive(&got, size, &refuse)?;
        let starts: Vec<u64> = (0..zip.len())
            .map(|i| zip.by_index_data(i).map(|e| e.header_start()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| refuse(e.to_string()))?;
        let spans = entry_spans(&starts, zip.central_directory_start()).map_err(refuse)?;
        let wanted: Vec<Range<u64>> = index
            .carriers()
            .iter()
            .filter(|f| repair.todo.contains_key(&f.sha256))
            .filter_map(|f| zip.index_for_name(&f.path))
            .filter_map(|i| spans.get(i).cloned())
            .collect();
        coalesce(wanted, GAP)
    };
    if !got.fetch(&wanted, Some(reporter)).await? {
        return Ok(Network::Ignored {
            fetched: got.fetched,
        });
    }
    let mut zip = archive(&got, size, &refuse)?;
    repair.mend_from_zip(&mut zip, index, RepairSource::Network, &what)?;
    Ok(Network::Read {
        fetched: got.fetched,
    })
}

/// The ranges of one archive fetched so far, in an unnamed scratch file.
struct Ranges<'a> {
    fetcher: &'a Fetcher,
    base: &'a Url,
    rel: &'a str,
    file: File,
    /// Sorted, merged.
    have: Vec<Range<u64>>,
    fetched: u64,
}

impl Ranges<'_> {
    /// Fetches the parts of `want` not fetched yet; `false` when the server ignores
    /// `Range`. Progress goes to `reporter` when given.
    async fn fetch(
        &mut self,
        want: &[Range<u64>],
        reporter: Option<&dyn Reporter>,
    ) -> Result<bool> {
        let todo = missing(want, &self.have);
        let total: u64 = todo.iter().map(|r| r.end - r.start).sum();
        let mut done = 0;
        if let Some(r) = reporter {
            r.progress(Phase::Download, 0, total);
        }
        for r in todo {
            let mut grew = |n: u64| {
                done += n;
                if let Some(rep) = reporter {
                    rep.progress(Phase::Download, done, total);
                }
            };
            let answer = self
                .fetcher
                .get_range(
                    self.base,
                    self.rel,
                    r.clone(),
                    &mut self.file,
                    &mut grew,
                    reporter,
                )
                .await?;
            if answer == Ranged::Ignored {
                return Ok(false);
            }
            self.fetched += r.end - r.start;
            self.have.push(r);
            self.have = coalesce(std::mem::take(&mut self.have), 0);
        }
        Ok(true)
    }
}

/// The archive over the fetched ranges (its central directory must be among them).
fn archive<'f>(
    got: &'f Ranges<'_>,
    size: u64,
    refuse: &dyn Fn(String) -> Error,
) -> Result<zip::ZipArchive<Patchwork<'f>>> {
    let reader = Patchwork {
        file: &got.file,
        len: size,
        have: &got.have,
        pos: 0,
    };
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    zip::ZipArchive::with_config(config, reader)
        .map_err(|e| refuse(format!("its central directory is unreadable: {e}")))
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = read_at(file.file(), buf, at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        at += n as u64;
    }
    Ok(())
}

/// Reads an archive of `len` bytes of which only the `have` ranges were fetched into
/// `file` (at their offsets); reading any other byte is an error.
#[derive(Debug)]
struct Patchwork<'f> {
    file: &'f File,
    len: u64,
    have: &'f [Range<u64>],
    pos: u64,
}

impl Read for Patchwork<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let pos = self.pos;
        let Some(r) = self.have.iter().find(|r| r.contains(&pos)) else {
            return Err(io::Error::other(format!(
                "byte {pos} of the archive was not fetched"
            )));
        };
        let n = (r.end - pos).min(buf.len() as u64) as usize;
        let k = read_at(self.file.file(), &mut buf[..n], pos)?;
        self.pos += k as u64;
        Ok(k)
    }
}

impl Seek for Patchwork<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_within(self.pos, self.len, to)?;
        Ok(self.pos)
    }
}
