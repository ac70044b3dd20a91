//! `update [--check]`: select the release `ensure` would (newest compatible with
//! the UI, best fitting variant, minus probe failures and rolled-back installs),
//! plan the cheapest download with [`peft_manifest::delta::plan`], apply a delta
//! ([`crate::install::apply_delta`]) or fall back to the full archive, probe, and
//! stage the result in `pending.json`. The next `ensure`, which runs before the
//! engine starts, makes it current. Nothing the running engine uses is touched.

use peft_manifest::delta::{Plan, plan};
use semver::Version;

use super::{Next, Session, choose, detect_here, discard, probe_install, selection_env};
use crate::cache::{BadVariants, InstallRecord, Pending, collect};
use crate::error::{Error, Result};
use crate::install::{Target, apply_delta, install};
use crate::report::Event;
use crate::source::Shelf;

/// `update [--check]`.
pub async fn run(ctx: &Session<'_>, check: bool) -> Result<Next> {
    let (s, reporter) = (&ctx.s, ctx.reporter);
    let cache = ctx.cache()?;
    let root = s.require_repo()?.clone();
    let fetcher = ctx.fetcher()?;
    let lock = ctx.lock()?;
    let m = match ctx.manifest(&root, &lock, true).await? {
        Ok(m) => m,
        Err(next) => return Ok(next),
    };
    let roots = ctx.roots(&root, &m);
    let hw = detect_here(s);
    let mut bad = BadVariants::load(cache.root());
    let state = cache.state()?;
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
        let name = target.name();
        let (version, variant) = (sel.release.version.to_string(), sel.variant.id.clone());
        if cache.current()?.is_some_and(|c| c.dir == name) {
            cache.clear_pending(&lock)?;
            reporter.emit(Event::UpToDate { version, variant });
            return Ok(Next::Exit);
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
            return Ok(Next::Exit);
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
                match apply_delta(fetcher, &roots, cache, target, (base_dir, base), blob, reporter).await {
                    Ok(()) => (done, bytes, from) = (true, blob.size, Some(base_version.to_string())),
                    Err(e @ (Error::Storage { .. } | Error::DiskFull { .. } | Error::Busy { .. })) => return Err(e),
                    Err(e) => reporter.warn(format!("the delta from {base_version} cannot be used ({e}); downloading the full archive instead")),
                }
            }
            if !done {
                install(fetcher, &roots, cache, &lock, target, reporter).await?;
                bytes = sel.variant.archive.size;
            }
            if sel.variant.probe {
                let rec = cache
                    .record(&name)?
                    .ok_or_else(|| Error::Internal(format!("{name} vanished")))?;
                if let Err(why) = probe_install(ctx, &lock, &mut bad, &hw, sel, &name, &rec)? {
                    discard(cache, &name);
                    reporter.warn(format!("{variant} {version} failed its probe on this machine ({why}); trying the next variant"));
                    continue;
                }
            }
        }
        cache.set_pending(
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
        collect(cache, &lock, 2, reporter)?;
        return Ok(Next::Exit);
    }
    Err(Error::Internal("every candidate failed its probe".into()))
}
