//! `verify`: re-hash every file of the current install against the index kept in
//! its record; exit 4 naming each damaged file. With `--repair` the damaged files
//! are then rewritten ([`super::repair`]).

use super::{Next, Session};
use crate::error::{Error, Result};
use crate::install::repair::inspect;
use crate::report::Event;

/// `verify [--repair]`: re-hash the current install against its index.
pub async fn run(ctx: &Session<'_>, repair: bool) -> Result<Next> {
    let cache = ctx.cache()?;
    // A repair writes into the install: it holds the lock from before it looks.
    let lock = if repair {
        ctx.current_or("no backend is installed")?;
        Some(ctx.lock()?)
    } else {
        None
    };
    let cur = ctx.current_or("no backend is installed")?;
    let rec = cache
        .record(&cur.dir)?
        .ok_or_else(|| Error::integrity(format!("{} has no install record", cur.dir)))?;
    let dir = cache.versions().join(&cur.dir);
    let found = inspect(&dir, &rec.index, ctx.reporter)?;
    let problems = found.problems();
    if let Some(lock) = &lock
        && !problems.is_empty()
    {
        return super::repair::run(ctx, lock, &cur.dir, &rec, found)
            .await
            .map(|()| Next::Exit);
    }
    ctx.reporter.emit(Event::Verified {
        version: rec.version.clone(),
        variant: rec.variant.clone(),
        files: rec.index.files.len(),
        ok: problems.is_empty(),
        problems: problems.clone(),
        extra: found.extra,
        repaired: Vec::new(),
        fetched: 0,
    });
    if problems.is_empty() {
        Ok(Next::Exit)
    } else {
        Err(Error::integrity_hint(
            format!(
                "{} of {} files of {} ({}) differ from the signed index: {}",
                problems.len(),
                rec.index.files.len(),
                rec.version,
                rec.variant,
                problems.join("; ")
            ),
            "run `peft-bootstrap verify --repair` to fetch only the damaged files",
        ))
    }
}
