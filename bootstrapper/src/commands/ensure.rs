//! `ensure`: answer from the cache when the current install serves the request;
//! otherwise fetch, verify, install, probe and switch `current.json`.

use std::path::PathBuf;

use super::provision::{OnProbeFailure, Provided, Step, provision};
use super::repair::mend;
use super::{Env, Next, Session, detect_here, emit_hardware, ready, selection_env, usable};
use crate::cache::{Cache, CacheLock, Gap, InstallRecord};
use crate::error::{Error, Result, human_bytes};
use crate::install::repair::{Damaged, Fault, Inspection};
use crate::install::{Target, install};
use crate::report::{RepairSource, Source};

/// `ensure`: answer from the cache when possible, else fetch, verify and install.
/// Prints the executable's path for people (the `ready` event carries it for
/// machines).
pub async fn run(ctx: &Session<'_>) -> Result<Next> {
    match provide(ctx).await? {
        Ok(exe) => {
            if !ctx.json {
                println!("{}", exe.display());
            }
            Ok(Next::Exit)
        }
        Err(next) => Ok(next),
    }
}

async fn provide(ctx: &Session<'_>) -> Result<std::result::Result<PathBuf, Next>> {
    let (s, reporter) = (&ctx.s, ctx.reporter);
    let cache = ctx.cache()?;
    // An update staged by `update` becomes current now, before the engine starts;
    // if another instance is busy with the cache, it waits for the next start.
    if let Some(pending) = cache.pending()?
        && let Some(lock) = cache.try_lock()?
    {
        if let Some(rec) = cache.record(&pending.dir)?
            && usable(&rec, s)
        {
            ctx.switch(&lock, &pending.dir, &rec, pending.env)?;
        }
        cache.clear_pending(&lock)?;
    }
    // The install that is current but lost files (an antivirus, a hand), when
    // repairing it in place did not work: installed again below.
    let mut damaged: Option<Damage> = None;
    if let Some(cur) = cache.current()?
        && let Some(rec) = cache.record_head(&cur.dir)?
        && usable(&rec, s)
    {
        // One stat per indexed file, no hashing: the cached answer stays in milliseconds.
        let gaps = cache.gaps(&cur.dir, &rec.entry);
        if gaps.is_empty() {
            return Ok(Ok(ready(reporter, cache, &cur.dir, &rec, Source::Cache)));
        }
        match heal(ctx, &cur.dir).await? {
            Healed::Whole => {
                let rec = cache.record_head(&cur.dir)?.ok_or_else(|| {
                    Error::Internal(format!("{} vanished after its repair", cur.dir))
                })?;
                return Ok(Ok(ready(reporter, cache, &cur.dir, &rec, Source::Cache)));
            }
            Healed::Not(d) => damaged = Some(d),
        }
    }
    match install_or_fall_back(ctx, damaged.as_ref()).await {
        Err(mut e) => {
            if let Some(d) = &damaged {
                d.explain(&mut e);
            }
            Err(e)
        }
        ok => ok,
    }
}

/// The part of `ensure` that selects and installs (or falls back on an install).
async fn install_or_fall_back(
    ctx: &Session<'_>,
    damaged: Option<&Damage>,
) -> Result<std::result::Result<PathBuf, Next>> {
    let (s, reporter) = (&ctx.s, ctx.reporter);
    let cache = ctx.cache()?;
    let broken = damaged.map(|d| d.name.as_str());
    let hw = detect_here(s);
    emit_hardware(ctx, &hw, false);
    let root = match s.require_repo() {
        Ok(r) => r,
        Err(e) => return fallback_or(ctx, e, None, broken).map(Ok),
    };
    let lock = ctx.lock()?;
    let m = match ctx.manifest(&root, &lock, true).await {
        Ok(Ok(m)) => m,
        Ok(Err(next)) => return Ok(Err(next)),
        Err(e @ Error::Network { .. }) => {
            return fallback_or(ctx, e, Some(&lock), broken).map(Ok);
        }
        Err(e) => return Err(e),
    };
    let fetcher = ctx.fetcher()?;
    let roots = ctx.roots(&root, &m);
    let provided = provision(ctx, &m, &hw, &lock, OnProbeFailure::Ensure, async |sel| {
        let target = Target::chosen(sel, &m, &s.channel);
        // The damaged install is set aside while it is installed again, and put
        // back if that fails.
        let aside = match broken {
            Some(b) if b == target.name() => Some(SetAside::new(cache, b)?),
            _ => None,
        };
        let installed = install(fetcher, &roots, cache, &lock, target, reporter).await;
        if let Some(a) = aside {
            a.end(installed.is_ok());
        }
        match installed {
            Ok((dir, fresh)) => {
                // The current install proved itself when it became current.
                let probe = cache.current()?.is_none_or(|c| c.dir != dir);
                Ok(Step::Installed { dir, fresh, probe })
            }
            Err(e @ Error::Network { .. }) => {
                Ok(Step::Stop(fallback_or(ctx, e, Some(&lock), broken)?))
            }
            Err(e) => Err(e),
        }
    })
    .await?;
    let (sel, dir, rec, fresh) = match provided {
        Provided::Installed {
            sel,
            dir,
            rec,
            fresh,
        } => (sel, dir, rec, fresh),
        Provided::Stopped(exe) => return Ok(Ok(exe)),
    };
    ctx.switch(&lock, &dir, &rec, selection_env(&sel))?;
    let source = match (fresh, s.repo.is_offline()) {
        (false, _) => Source::Cache,
        (true, true) => Source::Offline,
        (true, false) => Source::Network,
    };
    Ok(Ok(ready(reporter, cache, &dir, &rec, source)))
}

/// When the repository cannot be reached, an installed backend still serves.
/// `held` is the lock when the caller has it already (a second lock in the same
/// process would wait for itself).
fn fallback_or(
    ctx: &Session<'_>,
    e: Error,
    held: Option<&CacheLock>,
    broken: Option<&str>,
) -> Result<PathBuf> {
    // Only a whole install serves: never the damaged one.
    match ctx.best_installed(broken)? {
        Some((dir, rec)) => {
            ctx.reporter.warn(format!(
                "{e}; using the installed backend {} ({})",
                rec.version, rec.variant
            ));
            match held {
                Some(lock) => ctx.switch(lock, &dir, &rec, Env::new())?,
                None => ctx.switch(&ctx.lock()?, &dir, &rec, Env::new())?,
            }
            Ok(ready(ctx.reporter, ctx.cache()?, &dir, &rec, Source::Cache))
        }
        None => Err(e),
    }
}

/// A current install found with files missing, and what is known of it.
#[derive(Debug)]
struct Damage {
    /// Its directory name under `versions/`.
    name: String,
    version: String,
    variant: String,
    /// How many files are missing or wrong, and one line per file or gone folder.
    files: usize,
    gaps: Vec<String>,
    /// Why repairing it in place did not work.
    why: String,
}

impl Damage {
    /// Says, in the error that ends `ensure`, what was wrong and that it was kept.
    fn explain(&self, e: &mut Error) {
        let what = format!(
            "the installed backend {} ({}) is missing {} and could not be repaired ({}); it was left as it is",
            self.version,
            self.variant,
            list(self.files, &self.gaps),
            self.why
        );
        match e {
            Error::Network { detail, .. } => *detail = format!("{what}; {detail}"),
            Error::Usage { message, .. }
            | Error::Integrity { message, .. }
            | Error::NoVariant { message, .. }
            | Error::Reasoned { message, .. } => *message = format!("{what}: {message}"),
            _ => {}
        }
    }
}

/// How [`heal`] ended.
#[derive(Debug)]
enum Healed {
    /// The install is whole again (or was, once the lock was ours).
    Whole,
    /// It could not be mended in place.
    Not(Damage),
}

/// Repairs the current install `name`, found with files missing, in place from
/// what the cache, the offline folder or the repository has (`verify --repair`'s
/// path); says what was missing and that it was repaired.
async fn heal(ctx: &Session<'_>, name: &str) -> Result<Healed> {
    let cache = ctx.cache()?;
    let lock = ctx.lock()?;
    let rec = match cache.record(name) {
        Ok(Some(rec)) => rec,
        // Another instance replaced it meanwhile: the caller looks again.
        Ok(None) => return Ok(Healed::Whole),
        Err(e) => {
            let head = cache.record_head(name)?;
            return Ok(Healed::Not(Damage {
                name: name.to_string(),
                version: head.as_ref().map(|h| h.version.clone()).unwrap_or_default(),
                variant: head.map(|h| h.variant).unwrap_or_default(),
                files: 1,
                gaps: vec![format!(
                    "{}: cannot be read",
                    peft_manifest::index::INSTALL_INDEX
                )],
                why: e.to_string(),
            }));
        }
    };
    // Looked at again under the lock: another instance may have mended it.
    let gaps = cache.gaps(name, &rec.entry);
    if gaps.is_empty() {
        return Ok(Healed::Whole);
    }
    let lines = summarize(&cache.versions().join(name), &rec.entry, &gaps);
    let found = inspection(&rec, &gaps);
    let damage = |why: String| Damage {
        name: name.to_string(),
        version: rec.version.clone(),
        variant: rec.variant.clone(),
        files: gaps.len(),
        gaps: lines.clone(),
        why,
    };
    let (mended, result) = match mend(ctx, &lock, name, &rec, found).await {
        Ok(m) => m,
        Err(e @ (Error::Storage { .. } | Error::DiskFull { .. })) => return Err(e),
        Err(e) => return Ok(Healed::Not(damage(why(&e)))),
    };
    if let Err(e) = result {
        return Ok(Healed::Not(damage(why(&e))));
    }
    let mut from: Vec<&str> = mended
        .repaired
        .iter()
        .map(|r| match r.from {
            RepairSource::Cache => "the cache",
            RepairSource::Offline => "the offline folder",
            RepairSource::Network => "the repository",
        })
        .collect();
    from.sort_unstable();
    from.dedup();
    let fetched = match mended.fetched {
        0 => String::new(),
        n => format!(", {} downloaded", human_bytes(n)),
    };
    ctx.reporter.warn(format!(
        "the installed backend {} ({}) was missing {}; repaired from {}{fetched}",
        rec.version,
        rec.variant,
        list(gaps.len(), &lines),
        from.join(" and "),
    ));
    Ok(Healed::Whole)
}

/// The repair's view of the gaps: each a damaged file of the index.
fn inspection(rec: &InstallRecord, gaps: &[Gap]) -> Inspection {
    let damaged = rec
        .index
        .files
        .iter()
        .filter_map(|f| {
            let g = gaps.iter().find(|g| g.path == f.path)?;
            Some(Damaged {
                entry: f.clone(),
                fault: match &g.problem {
                    None => Fault::Missing,
                    Some(p) => Fault::Content(p.clone()),
                },
            })
        })
        .collect();
    Inspection {
        damaged,
        ..Inspection::default()
    }
}

/// Why a repair failed, without the "could not download" the final error has.
fn why(e: &Error) -> String {
    match e {
        Error::Network { detail, .. } => detail.clone(),
        e => e.to_string(),
    }
}

/// One line per gap, the entry first; files under a folder that is gone are one
/// line for the highest such folder (`peft_engine/_internal/: missing (145 files)`).
fn summarize(dir: &std::path::Path, entry: &str, gaps: &[Gap]) -> Vec<String> {
    let mut folders: Vec<(String, usize)> = Vec::new();
    let mut files = Vec::new();
    for g in gaps {
        let gone = g.problem.is_none().then(|| {
            let parts: Vec<&str> = g.path.split('/').collect();
            (1..parts.len())
                .map(|n| parts[..n].join("/"))
                .find(|p| !dir.join(p).exists())
        });
        match gone.flatten() {
            Some(folder) => match folders.iter_mut().find(|(f, _)| *f == folder) {
                Some((_, n)) => *n += 1,
                None => folders.push((folder, 1)),
            },
            None if g.path == entry => files.insert(0, g.describe()),
            None => files.push(g.describe()),
        }
    }
    let folder_lines = folders
        .into_iter()
        .map(|(f, n)| format!("{f}/: missing ({n} file{})", if n == 1 { "" } else { "s" }));
    let entry_first = files.first().is_some_and(|f| f.starts_with(entry));
    let mut out: Vec<String> = Vec::new();
    if entry_first {
        out.push(files.remove(0));
    }
    out.extend(folder_lines);
    out.extend(files);
    out
}

/// `3 files (a: missing, b/: missing (2 files))`, at most five lines named.
fn list(n: usize, lines: &[String]) -> String {
    let named: Vec<&str> = lines.iter().take(5).map(String::as_str).collect();
    let more = if lines.len() > 5 {
        format!(", and {} more", lines.len() - 5)
    } else {
        String::new()
    };
    format!(
        "{n} file{} ({}{more})",
        if n == 1 { "" } else { "s" },
        named.join(", ")
    )
}

/// A damaged install moved out of `versions/` while it is installed again.
struct SetAside<'c> {
    cache: &'c Cache,
    name: String,
    at: PathBuf,
}

impl<'c> SetAside<'c> {
    fn new(cache: &'c Cache, name: &str) -> Result<SetAside<'c>> {
        let from = cache.versions().join(name);
        let at = cache.root().join(format!("damaged-{name}"));
        if at.exists() {
            fs_err::remove_dir_all(&at).map_err(|e| Error::storage("removing", &at, e))?;
        }
        fs_err::rename(&from, &at).map_err(|e| Error::storage("moving", &from, e))?;
        Ok(SetAside {
            cache,
            name: name.to_string(),
            at,
        })
    }

    /// Removes it once installed again, else puts it back as it was.
    fn end(self, installed: bool) {
        let back = self.cache.versions().join(&self.name);
        if installed || back.exists() {
            let _ = fs_err::remove_dir_all(&self.at);
        } else if let Err(e) = fs_err::rename(&self.at, &back) {
            tracing::warn!("could not put the damaged install back: {e}");
        }
    }
}
