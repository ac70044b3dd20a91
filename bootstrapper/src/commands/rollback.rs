//! `rollback [--reason TEXT]`, and `rollback --allow INSTALL` to undo the refusal.

use super::status::{allow_command, name_parts};
use super::{Session, ready};
use crate::cache::Current;
use crate::error::{Error, Result};
use crate::report::{Event, Source};

/// `rollback`: the previous install becomes current again; the one rolled back from
/// is remembered and not chosen again (a newer release is).
pub fn run(ctx: &Session<'_>, reason: Option<&str>) -> Result<()> {
    let (cache, reporter) = (ctx.cache()?, ctx.reporter);
    let lock = ctx.lock()?;
    let cur = ctx.current_or("no backend is installed, so there is nothing to roll back")?;
    let prev = cur
        .previous
        .clone()
        .and_then(|p| cache.record(&p).ok().flatten().map(|r| (p, r)))
        .ok_or_else(|| {
            Error::usage(
                format!("{} has no previous install to roll back to", cur.dir),
                Some("`peft-bootstrap status` lists the installs".to_string()),
            )
        })?;
    let mut state = cache.state()?;
    state.rejected.insert(
        cur.dir.clone(),
        reason.unwrap_or("rolled back by the user").to_string(),
    );
    cache.save_state(&state, &lock)?;
    // The previous install's GPU narrowing is not kept; the next `ensure` that
    // selects again sets it.
    let next = Current {
        version: prev.1.version.clone(),
        variant: prev.1.variant.clone(),
        dir: prev.0.clone(),
        previous: Some(cur.dir.clone()),
        env: Default::default(),
    };
    cache.set_current(&next, &lock)?;
    if cache.pending()?.is_some_and(|p| p.dir == cur.dir) {
        cache.clear_pending(&lock)?;
    }
    reporter.emit(Event::RolledBack {
        from: cur.dir,
        to: prev.0.clone(),
    });
    ready(reporter, cache, &prev.0, &prev.1, Source::Cache);
    Ok(())
}

/// `rollback --allow INSTALL`: an install rolled back before may be chosen again
/// (by the next `update`, or `ensure` when it selects).
pub fn allow(ctx: &Session<'_>, name: &str) -> Result<()> {
    let cache = ctx.cache()?;
    let lock = ctx.lock()?;
    let mut state = cache.state()?;
    if state.rejected.remove(name).is_none() {
        let refused: Vec<String> = state.rejected.keys().cloned().collect();
        return Err(Error::usage(
            format!(
                "{name} is not refused on this machine; refused: {}",
                if refused.is_empty() {
                    "none".to_string()
                } else {
                    refused.join(", ")
                }
            ),
            Some(format!(
                "`peft-bootstrap status` lists the refused installs with the command that allows each, e.g. `{}`",
                allow_command("<version>-<variant>")
            )),
        ));
    }
    cache.save_state(&state, &lock)?;
    let (version, variant) = name_parts(cache, name);
    ctx.reporter.emit(Event::Allowed { version, variant });
    Ok(())
}
