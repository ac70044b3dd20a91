//! `update`, `rollback` and `gc`: moving between installed backends.
//!
//! `update` selects the release `ensure` would (newest compatible with the UI, best
//! fitting variant, minus probe failures and rolled-back installs), plans the
//! cheapest download with [`peft_manifest::delta::plan`], applies a delta into
//! `staging/` by linking or copying unchanged files from the installed base and
//! decoding the rest (every file verified against the target's signed index), falls
//! back to the full archive on any delta failure, probes, renames into `versions/`
//! and stages the result in `pending.json`. The next `ensure`, which runs before the
//! engine starts, makes it current. Nothing the running engine uses is touched.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use peft_manifest::delta::{Action, DeltaHeader, DeltaKind, MAGIC, Plan, actions, plan};
use peft_manifest::{Blob, FileIndex, Sha256Hasher};
use semver::Version;

use crate::cache::{Cache, CacheLock, Current, InstallRecord, Pending, dir_size, sync_dir};
use crate::commands::{Ctx, choose, detect_here, discard, probe_install, ready, selection_env};
use crate::error::{Error, Result};
use crate::events::{Event, Phase, Reporter, Source};
use crate::fetch::{Fetcher, Root};
use crate::install::{
    SPARE, Target, check_space, clean_staging, commit, executable, fetch_index, install,
    new_staging,
};
use crate::offline::Shelf;
use crate::probe::BadVariants;
use crate::repo::accept_manifest;
use crate::settings::Settings;

/// The largest delta header read.
const MAX_HEADER: u64 = 64 << 20;

/// `update [--check]`.
pub async fn update(s: &Settings, reporter: &dyn Reporter, check: bool) -> Result<()> {
    let ctx = Ctx {
        s,
        cache: Cache::open(&s.cache_dir)?,
        reporter,
    };
    let root = s.require_repo()?.clone();
    let fetcher = Fetcher::new()?;
    let lock = ctx.lock()?;
    let m = accept_manifest(&fetcher, &root, s, &ctx.cache, &lock, reporter).await?;
    let mut roots = vec![root];
    if !s.offline {
        roots.extend(m.mirrors.iter().filter_map(|u| Root::parse(u).ok()));
    }
    let hw = detect_here(s);
    let mut bad = BadVariants::load(ctx.cache.root());
    let state = ctx.cache.state()?;
    let attempts: usize = m.releases.iter().map(|r| r.variants.len()).sum::<usize>() + 1;
    let shelf = Shelf::for_settings(s);
    for _ in 0..attempts {
        let sel = &choose(&m, s, &hw, &bad, &state, shelf.as_ref(), false, reporter)?;
        let target = Target {
            release: sel.release,
            variant: sel.variant,
            channel: &s.channel,
            serial: m.serial,
        };
        let name = target.name();
        let (version, variant) = (sel.release.version.to_string(), sel.variant.id.clone());
        if ctx.cache.current()?.is_some_and(|c| c.dir == name) {
            ctx.cache.clear_pending(&lock)?;
            reporter.emit(Event::UpToDate { version, variant });
            return Ok(());
        }
        let same_variant: Vec<(String, InstallRecord)> = ctx
            .cache
            .installs()?
            .into_iter()
            .filter(|(_, r)| r.variant == sel.variant.id)
            .collect();
        let installed: Vec<Version> = same_variant
            .iter()
            .filter_map(|(_, r)| r.version.parse().ok())
            .collect();
        let already = ctx.cache.record(&name)?.is_some();
        let p = plan(&installed, sel.variant);
        let delta_from = |p: &Plan| match p {
            Plan::Delta { from, .. } => Some(from.to_string()),
            Plan::Full { .. } => None,
        };
        if check {
            let bytes = if already { 0 } else { p.bytes() };
            let from = if already { None } else { delta_from(&p) };
            reporter.emit(Event::UpdateAvailable {
                version,
                variant,
                bytes,
                from,
            });
            return Ok(());
        }
        let (mut bytes, mut from) = (0, None);
        if !already {
            let mut done = false;
            if let Plan::Delta {
                from: base_version,
                blob,
            } = &p
                && let Some((base_dir, base)) = same_variant
                    .iter()
                    .find(|(_, r)| r.version == base_version.to_string())
            {
                match apply_delta(&fetcher, &roots, &ctx.cache, target, (base_dir, base), blob, reporter).await {
                    Ok(()) => (done, bytes, from) = (true, blob.size, Some(base_version.to_string())),
                    Err(e @ (Error::Storage { .. } | Error::DiskFull { .. } | Error::Busy { .. })) => return Err(e),
                    Err(e) => reporter.warn(format!("the delta from {base_version} cannot be used ({e}); downloading the full archive instead")),
                }
            }
            if !done {
                install(&fetcher, &roots, &ctx.cache, &lock, target, reporter).await?;
                bytes = sel.variant.archive.size;
            }
            if sel.variant.probe {
                let rec = ctx
                    .cache
                    .record(&name)?
                    .ok_or_else(|| Error::Internal(format!("{name} vanished")))?;
                if let Err(why) = probe_install(&ctx, &lock, &mut bad, &hw, sel, &name, &rec)? {
                    discard(&ctx.cache, &name);
                    reporter.warn(format!("{variant} {version} failed its probe on this machine ({why}); trying the next variant"));
                    continue;
                }
            }
        }
        ctx.cache.set_pending(
            &Pending {
                dir: name.clone(),
                env: selection_env(sel),
            },
            &lock,
        )?;
        reporter.emit(Event::Staged {
            version,
            variant,
            bytes,
            from,
        });
        collect(&ctx.cache, &lock, 2, reporter)?;
        return Ok(());
    }
    Err(Error::Internal("every candidate failed its probe".into()))
}

/// Builds the target from an installed base and a delta; any error leaves nothing.
async fn apply_delta(
    fetcher: &Fetcher,
    roots: &[Root],
    cache: &Cache,
    target: Target<'_>,
    base: (&str, &InstallRecord),
    blob: &Blob,
    reporter: &dyn Reporter,
) -> Result<()> {
    let name = target.name();
    clean_staging(cache);
    let index = fetch_index(fetcher, roots, target.release, target.variant).await?;
    check_space(
        cache.root(),
        blob.size + target.variant.index.unpacked_size + SPARE,
    )?;
    let path = fetcher
        .download(roots, blob, &cache.downloads(), reporter)
        .await?;
    let staging = new_staging(cache, &name)?;
    let base_dir = cache.versions().join(base.0);
    let result = write_from_delta(&path, &base_dir, &base.1.index, &index, &staging, reporter)
        .and_then(|()| commit(cache, &staging, &name, &target.record(index)));
    let _ = std::fs::remove_file(&path);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
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
            std::fs::create_dir_all(parent).map_err(|e| Error::storage("creating", parent, e))?;
        }
        let mut hasher = Sha256Hasher::new();
        let written = match act {
            Action::Reuse(b) => {
                let src = executable(base_dir, &b.path);
                // A link shares the base's immutable file; a different mode needs a copy.
                if b.mode != t.mode || std::fs::hard_link(&src, &dest).is_err() {
                    std::fs::copy(&src, &dest).map_err(|e| Error::storage("copying", &src, e))?;
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
                        std::fs::read(&p).map_err(|err| Error::storage("reading", &p, err))?
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
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
        .map_err(|e| Error::storage("setting the mode of", p, e))
}

#[cfg(not(unix))]
fn set_mode(_p: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// `rollback`: the previous install becomes current again; the one rolled back from
/// is remembered and not chosen again (a newer release is).
pub fn rollback(s: &Settings, reporter: &dyn Reporter, reason: Option<&str>) -> Result<()> {
    let ctx = Ctx {
        s,
        cache: Cache::open(&s.cache_dir)?,
        reporter,
    };
    let lock = ctx.lock()?;
    let cur = ctx.cache.current()?.ok_or_else(|| {
        Error::usage(
            "no backend is installed, so there is nothing to roll back",
            Some("run `peft-bootstrap ensure` first".to_string()),
        )
    })?;
    let prev = cur
        .previous
        .clone()
        .and_then(|p| ctx.cache.record(&p).ok().flatten().map(|r| (p, r)))
        .ok_or_else(|| {
            Error::usage(
                format!("{} has no previous install to roll back to", cur.dir),
                Some("`peft-bootstrap status` lists the installs".to_string()),
            )
        })?;
    let mut state = ctx.cache.state()?;
    state.rejected.insert(
        cur.dir.clone(),
        reason.unwrap_or("rolled back by the user").to_string(),
    );
    ctx.cache.save_state(&state, &lock)?;
    // The previous install's GPU narrowing is not kept; the next `ensure` that
    // selects again sets it.
    let next = Current {
        version: prev.1.version.clone(),
        variant: prev.1.variant.clone(),
        dir: prev.0.clone(),
        previous: Some(cur.dir.clone()),
        env: Default::default(),
    };
    ctx.cache.set_current(&next, &lock)?;
    if ctx.cache.pending()?.is_some_and(|p| p.dir == cur.dir) {
        ctx.cache.clear_pending(&lock)?;
    }
    reporter.emit(Event::RolledBack {
        from: cur.dir,
        to: prev.0.clone(),
    });
    ready(reporter, &ctx.cache, &prev.0, &prev.1, Source::Cache);
    Ok(())
}

/// `gc [--keep N]`.
pub fn gc(s: &Settings, reporter: &dyn Reporter, keep: usize) -> Result<()> {
    let ctx = Ctx {
        s,
        cache: Cache::open(&s.cache_dir)?,
        reporter,
    };
    let lock = ctx.lock()?;
    collect(&ctx.cache, &lock, keep, reporter)
}

/// Partial downloads untouched this long are stale.
const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Keeps the current, previous and staged installs and the newest others up to
/// `keep` installs; removes the rest, leftover downloads and staging folders.
pub fn collect(
    cache: &Cache,
    lock: &CacheLock,
    keep: usize,
    reporter: &dyn Reporter,
) -> Result<()> {
    let _ = lock;
    let cur = cache.current()?;
    let mut kept: HashSet<String> = HashSet::new();
    if let Some(c) = &cur {
        kept.insert(c.dir.clone());
        kept.extend(c.previous.clone());
    }
    kept.extend(cache.pending()?.map(|p| p.dir));
    let mut installs = cache.installs()?;
    installs.sort_by(|a, b| {
        b.1.version
            .parse::<Version>()
            .ok()
            .cmp(&a.1.version.parse::<Version>().ok())
    });
    for (dir, _) in &installs {
        if kept.len() >= keep.max(1) {
            break;
        }
        kept.insert(dir.clone());
    }
    let (mut removed, mut freed) = (Vec::new(), 0u64);
    for (dir, _) in installs.iter().filter(|(d, _)| !kept.contains(d)) {
        let from = cache.versions().join(dir);
        // Out of versions/ first, in one rename, so no half-deleted install is ever visible.
        let trash = cache
            .staging()
            .join(format!("{dir}.gc.{}", std::process::id()));
        std::fs::rename(&from, &trash).map_err(|e| Error::storage("moving", &from, e))?;
        freed += dir_size(&trash);
        std::fs::remove_dir_all(&trash).map_err(|e| Error::storage("removing", &trash, e))?;
        removed.push(dir.clone());
    }
    sync_dir(&cache.versions());
    if let Ok(rd) = std::fs::read_dir(cache.downloads()) {
        for e in rd.flatten() {
            let partial = e.file_name().to_string_lossy().ends_with(".partial");
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if !partial || age > STALE {
                freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(e.path()).is_ok() {
                    removed.push(format!("downloads/{}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    clean_staging(cache);
    reporter.emit(Event::Collected { removed, freed });
    Ok(())
}
