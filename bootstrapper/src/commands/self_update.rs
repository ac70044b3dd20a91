//! `self-update [--check]`: replace this binary with the signed newer build
//! (the machinery is [`crate::self_update`]).

use std::path::PathBuf;

use semver::Version;
use serde_json::json;

use super::Session;
use crate::error::{Error, Result};
use crate::self_update::apply;
use crate::source::accept_signed;
use crate::version::{VERSION, build_for_here, platform, version};

/// What `self-update` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The manifest's build is not newer than this one.
    UpToDate { version: Version },
    /// `--check`: a newer build is available.
    Available { version: Version },
    /// The binary at `path` was replaced.
    Updated {
        from: Version,
        to: Version,
        path: PathBuf,
    },
}

/// `peft-bootstrap self-update [--check]`.
pub async fn run(ctx: &Session<'_>, check: bool) -> Result<()> {
    let outcome = check_or_apply(ctx, check).await?;
    report(&outcome, ctx.json);
    Ok(())
}

async fn check_or_apply(ctx: &Session<'_>, check: bool) -> Result<Outcome> {
    let (s, reporter) = (&ctx.s, ctx.reporter);
    let root = s.require_repo()?.clone();
    let cache = ctx.cache()?;
    let fetcher = ctx.fetcher()?;
    let lock = cache.lock(s.lock_timeout, &|_| {
        reporter.warn("waiting for another peft-bootstrap to finish with the cache".into())
    })?;
    let m = accept_signed(fetcher, &root, ctx.trust(), cache, &lock, reporter).await?;
    let ours = version();
    let Some(build) = build_for_here(&m) else {
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
        return Ok(Outcome::UpToDate { version: ours });
    }
    if check {
        return Ok(Outcome::Available {
            version: build.version.clone(),
        });
    }
    let path = apply(fetcher, &ctx.roots(&root, &m), cache, build, reporter).await?;
    Ok(Outcome::Updated {
        from: ours,
        to: build.version.clone(),
        path,
    })
}

/// Prints what `self-update` did: a JSON line with `--json`, a sentence otherwise.
fn report(outcome: &Outcome, json_out: bool) {
    let (v, text) = match outcome {
        Outcome::UpToDate { version } => (
            json!({"event": "self_update", "status": "up_to_date", "version": version.to_string()}),
            format!("peft-bootstrap {version} is up to date"),
        ),
        Outcome::Available { version } => (
            json!({"event": "self_update", "status": "available", "from": VERSION, "version": version.to_string()}),
            format!(
                "peft-bootstrap {version} is available (this is {VERSION}); run `peft-bootstrap self-update`"
            ),
        ),
        Outcome::Updated { from, to, path } => (
            json!({"event": "self_update", "status": "updated", "from": from.to_string(), "version": to.to_string(), "path": path.display().to_string()}),
            format!(
                "peft-bootstrap updated from {from} to {to} ({})",
                path.display()
            ),
        ),
    };
    if json_out {
        println!("{v}");
    } else {
        eprintln!("{text}");
    }
}
