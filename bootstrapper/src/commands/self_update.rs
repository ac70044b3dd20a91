//! `self-update [--check]`: replace this binary with the signed newer build
//! (the machinery is [`crate::self_update`]).

use super::Session;
use crate::error::{Error, Result};
use crate::report::{Event, SelfUpdateStatus};
use crate::self_update::apply;
use crate::source::accept_signed;
use crate::version::{VERSION, build_for_here, platform, version};

/// `peft-bootstrap self-update [--check]`.
pub async fn run(ctx: &Session<'_>, check: bool) -> Result<()> {
    let event = check_or_apply(ctx, check).await?;
    ctx.reporter.emit(event);
    Ok(())
}

/// The `self_update` event of what was found or done.
async fn check_or_apply(ctx: &Session<'_>, check: bool) -> Result<Event> {
    let (s, reporter) = (&ctx.s, ctx.reporter);
    let root = s.require_repo()?;
    let cache = ctx.cache()?;
    let fetcher = ctx.fetcher()?;
    let lock = cache.lock(s.lock_timeout, &|_| {
        reporter.warn("waiting for another peft-bootstrap to finish with the cache".into())
    })?;
    let m = accept_signed(fetcher, &root, ctx.trust(), cache, &lock, reporter).await?;
    let ours = version();
    let Some(build) = build_for_here(&m) else {
        if check {
            // Asked only whether there is one: there is not, and that is an answer.
            return Ok(Event::SelfUpdate {
                status: SelfUpdateStatus::NotOffered,
                version: ours.to_string(),
                from: None,
                path: None,
            });
        }
        return Err(Error::NoVariant {
            message: format!(
                "the channel {:?} lists no peft-bootstrap build for {}",
                s.channel,
                platform()
            ),
            hint: Some("this bootstrapper stays as it is; update PEFT Studio to replace it".into()),
        });
    };
    if build.version <= ours {
        return Ok(Event::SelfUpdate {
            status: SelfUpdateStatus::UpToDate,
            version: ours.to_string(),
            from: None,
            path: None,
        });
    }
    if check {
        return Ok(Event::SelfUpdate {
            status: SelfUpdateStatus::Available,
            version: build.version.to_string(),
            from: Some(VERSION.to_string()),
            path: None,
        });
    }
    let path = apply(fetcher, &ctx.roots(&root, &m), cache, build, reporter).await?;
    Ok(Event::SelfUpdate {
        status: SelfUpdateStatus::Updated,
        version: build.version.to_string(),
        from: Some(ours.to_string()),
        path: Some(path.display().to_string()),
    })
}
