//! The step `ensure` and `update` share: choose the best candidate, have the
//! command install it, probe it when asked, and on a failed probe remember the
//! variant as bad here, set the install aside and choose again.

use peft_manifest::index::INSTALL_RECORD;
use peft_manifest::{Choice, Manifest, Selection};

use super::{Session, choose, selection_env};
use crate::cache::{BadVariants, Cache, CacheLock, InstallRecord};
use crate::detect::Detected;
use crate::error::{Error, Result};
use crate::install::executable;
use crate::install::probe::{probe, probe_timeout};
use crate::source::Shelf;

/// What the command's install step did with a candidate.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// The candidate is installed as `versions/<dir>` (`fresh`: by this step);
    /// `probe`: whether it must prove itself now (when its variant asks for it).
    Installed {
        dir: String,
        fresh: bool,
        probe: bool,
    },
    /// The command ends here with `T`.
    Stop(T),
}

/// What [`provision`] ends with (one value per command run, so its size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Provided<'m, T> {
    /// A candidate installed and, where asked, proven.
    Installed {
        sel: Selection<'m>,
        dir: String,
        rec: InstallRecord,
        fresh: bool,
    },
    /// The install step stopped the command.
    Stopped(T),
}

/// How a failed probe is treated, by the command that provisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnProbeFailure {
    /// `ensure`: a variant forced with `--variant` is used anyway, with a warning;
    /// any other is set aside until the driver or the GPUs change.
    Ensure,
    /// `update`: the candidate is set aside.
    Update,
}

/// Choose → install (the command's `step`) → probe → fall back to the next
/// candidate. Each failed probe removes one candidate, so this ends.
pub(crate) async fn provision<'m, T>(
    ctx: &Session<'_>,
    m: &'m Manifest,
    hw: &Detected,
    lock: &CacheLock,
    on_failure: OnProbeFailure,
    mut step: impl AsyncFnMut(&Selection<'m>) -> Result<Step<T>>,
) -> Result<Provided<'m, T>> {
    let (s, reporter, cache) = (&ctx.s, ctx.reporter, ctx.cache()?);
    let mut bad = BadVariants::load(cache.root());
    let state = cache.state()?;
    let attempts: usize = m.releases.iter().map(|r| r.variants.len()).sum::<usize>() + 1;
    let shelf = Shelf::for_repo(&s.repo);
    for _ in 0..attempts {
        let sel = choose(m, s, hw, &bad, &state, shelf.as_ref(), false, reporter)?;
        let (dir, fresh, must_probe) = match step(&sel).await? {
            Step::Installed { dir, fresh, probe } => (dir, fresh, probe),
            Step::Stop(t) => return Ok(Provided::Stopped(t)),
        };
        let rec = cache
            .record(&dir)?
            .ok_or_else(|| Error::Internal(format!("{dir} vanished after install")))?;
        if must_probe
            && sel.variant.probe
            && let Err(why) = probe_install(cache, lock, &mut bad, hw, &sel, &dir, &rec)?
        {
            let (id, version) = (&sel.variant.id, &sel.release.version);
            let failed = format!("{id} {version} failed its probe on this machine");
            let forced = matches!(s.choice, Choice::Forced(_));
            if on_failure == OnProbeFailure::Ensure && forced {
                reporter.warn(format!(
                    "{failed} ({why}); using it anyway because it was asked for"
                ));
            } else {
                if fresh {
                    discard(cache, &dir);
                }
                reporter.warn(match on_failure {
                    OnProbeFailure::Ensure => format!("{failed} and is set aside until the driver or the GPUs change: {why}; trying the next variant"),
                    OnProbeFailure::Update => format!("{failed} ({why}); trying the next variant"),
                });
                continue;
            }
        }
        return Ok(Provided::Installed {
            sel,
            dir,
            rec,
            fresh,
        });
    }
    Err(Error::Internal(
        "every candidate failed its probe and selection kept offering one".into(),
    ))
}

/// Runs the probe of a fresh install of `sel` (with the selection's environment).
/// A failure is remembered in `bad`, keyed by this machine's driver and GPUs, and
/// returned as the inner `Err` for the caller to act on.
fn probe_install(
    cache: &Cache,
    lock: &CacheLock,
    bad: &mut BadVariants,
    hw: &Detected,
    sel: &peft_manifest::Selection<'_>,
    dir: &str,
    rec: &InstallRecord,
) -> Result<Result<(), String>> {
    let exe = executable(&cache.versions().join(dir), &rec.entry);
    let envs: Vec<(String, String)> = selection_env(sel).into_iter().collect();
    match probe(&exe, &envs, probe_timeout()) {
        Ok(()) => Ok(Ok(())),
        Err(why) => {
            bad.mark(
                &hw.hardware,
                &sel.release.version.to_string(),
                &sel.variant.id,
                &why,
            );
            bad.save(cache.root(), lock)?;
            Ok(Err(why))
        }
    }
}

/// Removes an install that failed its probe: its record first, so a crash midway
/// never leaves something that looks complete.
fn discard(cache: &Cache, dir: &str) {
    let d = cache.versions().join(dir);
    let _ = fs_err::remove_file(d.join(INSTALL_RECORD));
    let _ = fs_err::remove_dir_all(&d);
}
