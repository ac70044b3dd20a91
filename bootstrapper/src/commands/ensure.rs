//! `ensure`: answer from the cache when the current install serves the request;
//! otherwise fetch, verify, install, probe and switch `current.json`.

use std::path::PathBuf;

use peft_manifest::Choice;

use super::{
    Env, Next, Session, choose, detect_here, discard, emit_hardware, probe_install, ready,
    selection_env, usable,
};
use crate::cache::{BadVariants, CacheLock};
use crate::error::{Error, Result};
use crate::install::{Target, executable, install};
use crate::report::Source;
use crate::source::Shelf;

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
    if let Some(cur) = cache.current()?
        && let Some(rec) = cache.record(&cur.dir)?
        && usable(&rec, s)
        && executable(&cache.versions().join(&cur.dir), &rec.entry).is_file()
    {
        return Ok(Ok(ready(reporter, cache, &cur.dir, &rec, Source::Cache)));
    }
    let hw = detect_here(s);
    emit_hardware(ctx, &hw, false);
    let root = match s.require_repo() {
        Ok(r) => r.clone(),
        Err(e) => return fallback_or(ctx, e, None).map(Ok),
    };
    let lock = ctx.lock()?;
    let m = match ctx.manifest(&root, &lock, true).await {
        Ok(Ok(m)) => m,
        Ok(Err(next)) => return Ok(Err(next)),
        Err(e @ Error::Network { .. }) => return fallback_or(ctx, e, Some(&lock)).map(Ok),
        Err(e) => return Err(e),
    };
    let fetcher = ctx.fetcher()?;
    let roots = ctx.roots(&root, &m);
    let mut bad = BadVariants::load(cache.root());
    let state = cache.state()?;
    // Each failed probe removes one candidate, so this ends.
    let attempts: usize = m.releases.iter().map(|r| r.variants.len()).sum::<usize>() + 1;
    let shelf = Shelf::for_root(s.repo.as_ref(), s.offline);
    for _ in 0..attempts {
        let sel = &choose(&m, s, &hw, &bad, &state, shelf.as_ref(), false, reporter)?;
        let target = Target {
            release: sel.release,
            variant: sel.variant,
            channel: &s.channel,
            serial: m.serial,
        };
        let installed = install(fetcher, &roots, cache, &lock, target, reporter).await;
        let (dir, fresh) = match installed {
            Ok(x) => x,
            Err(e @ Error::Network { .. }) => return fallback_or(ctx, e, Some(&lock)).map(Ok),
            Err(e) => return Err(e),
        };
        let rec = cache
            .record(&dir)?
            .ok_or_else(|| Error::Internal(format!("{dir} vanished after install")))?;
        let is_current = cache.current()?.is_some_and(|c| c.dir == dir);
        if sel.variant.probe
            && !is_current
            && let Err(why) = probe_install(ctx, &lock, &mut bad, &hw, sel, &dir, &rec)?
        {
            let version = sel.release.version.to_string();
            if matches!(s.choice, Choice::Forced(_)) {
                reporter.warn(format!(
                        "{} {version} failed its probe on this machine ({why}); using it anyway because it was asked for",
                        sel.variant.id
                    ));
            } else {
                if fresh {
                    discard(cache, &dir);
                }
                reporter.warn(format!(
                        "{} {version} failed its probe on this machine and is set aside until the driver or the GPUs change: {why}; trying the next variant",
                        sel.variant.id
                    ));
                continue;
            }
        }
        ctx.switch(&lock, &dir, &rec, selection_env(sel))?;
        let source = match (fresh, s.offline) {
            (false, _) => Source::Cache,
            (true, true) => Source::Offline,
            (true, false) => Source::Network,
        };
        return Ok(Ok(ready(reporter, cache, &dir, &rec, source)));
    }
    Err(Error::Internal(
        "every candidate failed its probe and selection kept offering one".into(),
    ))
}

/// When the repository cannot be reached, an installed backend still serves.
/// `held` is the lock when the caller has it already (a second lock in the same
/// process would wait for itself).
fn fallback_or(ctx: &Session<'_>, e: Error, held: Option<&CacheLock>) -> Result<PathBuf> {
    match ctx.best_installed()? {
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
