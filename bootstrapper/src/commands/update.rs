//! `update [--check]`: select the release `ensure` would (newest compatible with
//! the UI, best fitting variant, minus probe failures and rolled-back installs),
//! plan the cheapest download with [`peft_manifest::delta::plan`], apply a delta
//! ([`crate::install::apply_delta`]) or fall back to the full archive, probe, and
//! stage the result in `pending.json`. The next `ensure`, which runs before the
//! engine starts, makes it current. Nothing the running engine uses is touched.

use peft_manifest::delta::{Plan, plan};
use semver::Version;

use super::provision::{OnProbeFailure, Provided, Step, provision};
use super::{Next, Session, detect_here, selection_env};
use crate::cache::{InstallRecord, Pending, collect};
use crate::error::{Error, Result};
use crate::install::{Target, apply_delta, install};
use crate::report::Event;

/// `update [--check]`.
pub async fn run(ctx: &Session<'_>, check: bool) -> Result<Next> {
    let (s, reporter) = (&ctx.s, ctx.reporter);
    let cache = ctx.cache()?;
    let root = s.require_repo()?;
    let fetcher = ctx.fetcher()?;
    let lock = ctx.lock()?;
    let m = match ctx.manifest(&root, &lock, true).await? {
        Ok(m) => m,
        Err(next) => return Ok(next),
    };
    let roots = ctx.roots(&root, &m);
    let hw = detect_here(s);
    let (mut bytes, mut from) = (0, None);
    let provided = provision(ctx, &m, &hw, &lock, OnProbeFailure::Update, async |sel| {
        let target = Target::chosen(sel, &m, &s.channel);
        let name = target.name();
        let (version, variant) = (sel.release.version.to_string(), sel.variant.id.clone());
        if cache.current()?.is_some_and(|c| c.dir == name) {
            cache.clear_pending(&lock)?;
            reporter.emit(Event::UpToDate { version, variant });
            return Ok(Step::Stop(()));
        }
        let same_variant: Vec<(String, InstallRecord)> = cache
            .installs()?
            .into_iter()
            .filter(|(_, r)| r.variant == sel.variant.id)
            .collect();
        let installed: Vec<Version> = same_variant
            .iter()
            .filter_map(|(_, r)| r.version.parse().ok())
            .collect();
        let already = cache.record(&name)?.is_some();
        let p = plan(&installed, sel.variant);
        if check {
            let (bytes, from) = match (&p, already) {
                (_, true) => (0, None),
                (Plan::Delta { from, .. }, false) => (p.bytes(), Some(from.to_string())),
                (Plan::Full { .. }, false) => (p.bytes(), None),
            };
            reporter.emit(Event::UpdateAvailable {
                version,
                variant,
                bytes,
                from,
            });
            return Ok(Step::Stop(()));
        }
        (bytes, from) = (0, None);
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
                match apply_delta(fetcher, &roots, cache, target, (base_dir, base), blob, reporter).await {
                    Ok(()) => (done, bytes, from) = (true, blob.size, Some(base_version.to_string())),
                    Err(e @ (Error::Storage { .. } | Error::DiskFull { .. } | Error::Busy { .. })) => return Err(e),
                    Err(e) => reporter.warn(format!("the delta from {base_version} cannot be used ({e}); downloading the full archive instead")),
                }
            }
            if !done {
                install(fetcher, &roots, cache, &lock, target, reporter).await?;
                bytes = sel.variant.archive_to_fetch().size;
            }
        }
        Ok(Step::Installed {
            dir: name,
            fresh: !already,
            probe: !already,
        })
    })
    .await?;
    let Provided::Installed { sel, dir, rec, .. } = provided else {
        return Ok(Next::Exit);
    };
    cache.set_pending(
        &Pending {
            dir,
            env: selection_env(&sel),
        },
        &lock,
    )?;
    reporter.emit(Event::Staged {
        version: rec.version,
        variant: rec.variant,
        bytes,
        from,
    });
    collect(cache, &lock, 2, reporter)?;
    Ok(Next::Exit)
}
