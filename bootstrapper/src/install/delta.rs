//! Building an install from an installed base and a `PEFTDLT1` delta (format in
//! `peft_manifest::delta`): unchanged files are hard-linked (or copied when the mode
//! differs) from the base, the rest decoded from zstd frames or bsdiff patches, every
//! file capped at and checked against the target's signed index; the tree is then
//! committed like a full install. The caller holds the cache lock.

use fs_err::File;
use std::collections::HashSet;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use peft_manifest::delta::{Action, DeltaHeader, DeltaKind, MAGIC, actions};
use peft_manifest::{Blob, FileIndex, Sha256Hasher};

use super::{SPARE, Target, Transaction, check_space, executable, fetch_index};
use crate::cache::{Cache, InstallRecord, sync_dir};
use crate::error::{Error, Result};
use crate::report::{Phase, Reporter};
use crate::source::{Fetcher, Root};

/// The largest delta header read.
const MAX_HEADER: u64 = 64 << 20;

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
    let index = fetch_index(fetcher, roots, target.release, target.variant).await?;
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

fn bad_delta(why: impl std::fmt::Display) -> Error {
    Error::integrity(format!("the delta is unusable: {why}"))
}

/// Reads the container's header; returns it and where the payloads start.
fn read_header(f: &mut File) -> Result<(DeltaHeader, u64)> {
    let mut head = [0u8; 16];
    f.read_exact(&mut head).map_err(bad_delta)?;
    if &head[..8] != MAGIC {
        return Err(bad_delta("not a PEFTDLT1 container"));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&head[8..]);
    let len = u64::from_le_bytes(len_bytes);
    if len > MAX_HEADER {
        return Err(bad_delta(format!("a {len}-byte header")));
    }
    let mut json = vec![0u8; len as usize];
    f.read_exact(&mut json).map_err(bad_delta)?;
    let header: DeltaHeader = serde_json::from_slice(&json).map_err(bad_delta)?;
    Ok((header, 16 + len))
}

/// Produces every file of `target` in `staging` from the base install and the delta.
fn write_from_delta(
    delta: &Path,
    base_dir: &Path,
    base: &FileIndex,
    target: &FileIndex,
    staging: &Path,
    reporter: &dyn Reporter,
) -> Result<()> {
    let mut f = File::open(delta).map_err(|e| Error::storage("opening", delta, e))?;
    let (header, start) = read_header(&mut f)?;
    let acts = actions(base, target, &header).map_err(bad_delta)?;
    let total = target.unpacked_size();
    let mut done = 0u64;
    let mut dirs = HashSet::new();
    reporter.progress(Phase::Patch, 0, total);
    for (t, act) in acts {
        let dest = executable(staging, &t.path);
        if let Some(parent) = dest.parent()
            && dirs.insert(parent.to_path_buf())
        {
            fs_err::create_dir_all(parent).map_err(|e| Error::storage("creating", parent, e))?;
        }
        let mut hasher = Sha256Hasher::new();
        let written = match act {
            Action::Reuse(b) => {
                let src = executable(base_dir, &b.path);
                // A link shares the base's immutable file; a different mode needs a copy.
                if b.mode != t.mode || fs_err::hard_link(&src, &dest).is_err() {
                    fs_err::copy(&src, &dest).map_err(|e| Error::storage("copying", &src, e))?;
                    set_mode(&dest, t.mode)?;
                }
                let file = File::open(&dest).map_err(|e| Error::storage("reading", &dest, e))?;
                hasher
                    .read_from(file)
                    .map_err(|e| Error::storage("reading", &dest, e))?
            }
            Action::Decode(e) => {
                f.seek(SeekFrom::Start(start + e.offset))
                    .map_err(bad_delta)?;
                let mut payload = BufReader::new((&mut f).take(e.len));
                let reference = match &e.base {
                    Some(b) => {
                        let p = executable(base_dir, b);
                        fs_err::read(&p).map_err(|err| Error::storage("reading", &p, err))?
                    }
                    None => Vec::new(),
                };
                let mut out =
                    File::create(&dest).map_err(|err| Error::storage("creating", &dest, err))?;
                let n = match e.kind {
                    DeltaKind::Bsdiff => {
                        let mut patch = Vec::new();
                        payload.read_to_end(&mut patch).map_err(bad_delta)?;
                        let mut sink = Capped {
                            out: &mut out,
                            hasher: &mut hasher,
                            n: 0,
                            cap: t.size,
                        };
                        qbsdiff::Bspatch::new(&patch)
                            .map_err(bad_delta)?
                            .apply(&reference, &mut sink)
                            .map_err(bad_delta)?;
                        sink.n
                    }
                    DeltaKind::Whole | DeltaKind::ZstdPatch => {
                        let mut dec = if e.kind == DeltaKind::Whole {
                            zstd::stream::read::Decoder::with_buffer(payload).map_err(bad_delta)?
                        } else {
                            zstd::stream::read::Decoder::with_ref_prefix(payload, &reference)
                                .map_err(bad_delta)?
                        };
                        dec.window_log_max(31).map_err(bad_delta)?;
                        copy_hashed(&mut dec.take(t.size + 1), &mut out, &mut hasher, &dest)?
                    }
                };
                out.sync_all()
                    .map_err(|err| Error::storage("writing", &dest, err))?;
                set_mode(&dest, t.mode)?;
                n
            }
        };
        let got = hasher.finish();
        if written != t.size || got != t.sha256 {
            return Err(bad_delta(format!(
                "{} came out as {written} bytes with SHA-256 {got}; the index says {} and {}",
                t.path, t.size, t.sha256
            )));
        }
        done += t.size;
        reporter.progress(Phase::Patch, done, total);
    }
    for d in &dirs {
        sync_dir(d);
    }
    Ok(())
}

/// A writer that hashes what it writes and refuses to go past `cap` bytes.
struct Capped<'a> {
    out: &'a mut File,
    hasher: &'a mut Sha256Hasher,
    n: u64,
    cap: u64,
}

impl Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.n + buf.len() as u64 > self.cap {
            return Err(std::io::Error::other(
                "the patch writes more than the signed size",
            ));
        }
        self.out.write_all(buf)?;
        self.hasher.update(buf);
        self.n += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn copy_hashed(
    src: &mut impl Read,
    out: &mut File,
    h: &mut Sha256Hasher,
    path: &Path,
) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = src.read(&mut buf).map_err(bad_delta)?;
        if k == 0 {
            return Ok(n);
        }
        h.update(&buf[..k]);
        out.write_all(&buf[..k])
            .map_err(|e| Error::storage("writing", path, e))?;
        n += k as u64;
    }
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let m = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(m))
        .map_err(|e| Error::storage("setting the mode of", p, e))
}

#[cfg(not(unix))]
fn set_mode(_p: &Path, _mode: u32) -> Result<()> {
    Ok(())
}
