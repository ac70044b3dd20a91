//! `ensure`: answer from the cache when the current install serves the request;
//! otherwise fetch, verify, install, probe and switch `current.json`.

use std::path::PathBuf;

use super::provision::{OnProbeFailure, Provided, Step, provision};
use super::{Env, Next, Session, detect_here, emit_hardware, ready, selection_env, usable};
use crate::cache::CacheLock;
use crate::error::{Error, Result};
use crate::install::{Target, executable, install};
use crate::report::Source;

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
        && let Some(rec) = cache.record_head(&cur.dir)?
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
    let provided = provision(ctx, &m, &hw, &lock, OnProbeFailure::Ensure, async |sel| {
        let target = Target::chosen(sel, &m, &s.channel);
        match install(fetcher, &roots, cache, &lock, target, reporter).await {
            Ok((dir, fresh)) => {
                // The current install proved itself when it became current.
                let probe = cache.current()?.is_none_or(|c| c.dir != dir);
                Ok(Step::Installed { dir, fresh, probe })
            }
            Err(e @ Error::Network { .. }) => Ok(Step::Stop(fallback_or(ctx, e, Some(&lock))?)),
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
    let source = match (fresh, s.offline) {
        (false, _) => Source::Cache,
        (true, true) => Source::Offline,
        (true, false) => Source::Network,
    };
    Ok(Ok(ready(reporter, cache, &dir, &rec, source)))
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
