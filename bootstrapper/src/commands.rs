//! The subcommands: each turns settings into events and a result.

use std::path::PathBuf;

use peft_manifest::index::INSTALL_RECORD;
use peft_manifest::select::{Outcome, catalog_manifest, select_excluding};
use peft_manifest::{Choice, Manifest, Release, Variant, VariantCatalog};
use semver::VersionReq;
use serde_json::json;

use crate::cache::{Cache, CacheLock, Current, InstallRecord, State};
use crate::detect::{self, Detected};
use crate::error::{Error, Result, human_bytes};
use crate::events::{Event, Reporter, Source};
use crate::fetch::{Fetcher, Root, hash_file};
use crate::install::{Target, executable, install};
use crate::offline::Shelf;
use crate::probe::{self, BadVariants};
use crate::repo::accept_manifest;
use crate::settings::Settings;

pub(crate) fn ready(
    reporter: &dyn Reporter,
    cache: &Cache,
    dir: &str,
    rec: &InstallRecord,
    source: Source,
) -> PathBuf {
    let d = cache.versions().join(dir);
    let exe = executable(&d, &rec.entry);
    let env = cache
        .current()
        .ok()
        .flatten()
        .filter(|c| c.dir == dir)
        .map(|c| c.env)
        .unwrap_or_default();
    reporter.emit(Event::Ready {
        version: rec.version.clone(),
        variant: rec.variant.clone(),
        dir: d.display().to_string(),
        executable: exe.display().to_string(),
        source,
        env,
    });
    exe
}

/// Environment variables an engine is started with.
pub(crate) type Env = std::collections::BTreeMap<String, String>;

/// The environment a selection asks for (a narrowed `CUDA_VISIBLE_DEVICES`).
pub(crate) fn selection_env(sel: &peft_manifest::Selection<'_>) -> Env {
    sel.cuda_visible_devices
        .iter()
        .map(|c| (crate::env::CUDA_VISIBLE_DEVICES.to_string(), c.clone()))
        .collect()
}

/// The selection `ensure`, `update` and `detect` make: the manifest's best fit for
/// this machine and UI, minus variants whose probe failed here and installs rolled
/// back here, and, from an offline folder, minus variants the folder lacks (the
/// folder then names the files to fetch). Emits the verdicts (when asked) and the
/// choice; exit 5 when nothing fits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn choose<'m>(
    m: &'m Manifest,
    s: &Settings,
    hw: &Detected,
    bad: &BadVariants,
    state: &State,
    shelf: Option<&Shelf>,
    verdicts: bool,
    reporter: &dyn Reporter,
) -> Result<peft_manifest::Selection<'m>> {
    let probed = bad_reason(bad, state, hw);
    let mut out = select_excluding(
        m,
        &hw.hardware,
        s.ui_version.as_ref(),
        &s.choice,
        &|r, v| probed(r, v).or_else(|| shelf?.missing(v)),
    );
    let reviewed = match shelf {
        Some(shelf) => shelf.review(m, &hw.hardware, s, &probed, &mut out, reporter),
        None => Ok(()),
    };
    emit_selection(reporter, &out, verdicts, None);
    reviewed?;
    match out.selected.take() {
        Some(sel) => Ok(sel),
        None => Err(no_variant(m, s, &out, hw)),
    }
}

/// Runs the probe of a fresh install of `sel` (with the selection's environment).
/// A failure is remembered in `bad`, keyed by this machine's driver and GPUs, and
/// returned as the inner `Err` for the caller to act on.
pub(crate) fn probe_install(
    ctx: &Ctx<'_>,
    lock: &CacheLock,
    bad: &mut BadVariants,
    hw: &Detected,
    sel: &peft_manifest::Selection<'_>,
    dir: &str,
    rec: &InstallRecord,
) -> Result<Result<(), String>> {
    let exe = executable(&ctx.cache.versions().join(dir), &rec.entry);
    let envs: Vec<(String, String)> = selection_env(sel).into_iter().collect();
    match probe::probe(&exe, &envs, probe::probe_timeout()) {
        Ok(()) => Ok(Ok(())),
        Err(why) => {
            bad.mark(
                &hw.hardware,
                &sel.release.version.to_string(),
                &sel.variant.id,
                &why,
            );
            bad.save(ctx.cache.root(), lock)?;
            Ok(Err(why))
        }
    }
}

/// Whether an installed record may serve this request without the network.
pub(crate) fn usable(rec: &InstallRecord, s: &Settings) -> bool {
    let ui_ok = match &s.ui_version {
        None => true,
        Some(ui) => rec
            .ui_compat
            .parse::<VersionReq>()
            .is_ok_and(|r| r.matches(ui)),
    };
    let choice_ok = match &s.choice {
        Choice::Auto => true,
        Choice::Forced(id) => id == &rec.variant,
    };
    ui_ok && choice_ok
}

/// Emits the verdicts (for `detect`) and the selection; `label` replaces the
/// release version when judging the variant catalogue.
pub(crate) fn emit_selection(
    reporter: &dyn Reporter,
    out: &Outcome<'_>,
    verdicts: bool,
    label: Option<&str>,
) {
    let version = |v: &semver::Version| label.map(String::from).unwrap_or_else(|| v.to_string());
    if verdicts {
        for v in &out.verdicts {
            reporter.emit(Event::Verdict {
                version: version(&v.version),
                variant: v.variant.clone(),
                fits: v.fits,
                reason: v.reason.clone(),
            });
        }
    }
    if let Some(sel) = &out.selected {
        if let Some(w) = &sel.warning {
            reporter.warn(w.clone());
        }
        if let Some(cvd) = &sel.cuda_visible_devices {
            reporter.warn(format!(
                "no build serves every GPU of this machine: {} serves only some, so the backend must run with CUDA_VISIBLE_DEVICES={cvd}",
                sel.variant.id
            ));
        }
        reporter.emit(Event::Selected {
            version: version(&sel.release.version),
            variant: sel.variant.id.clone(),
            reason: sel.reason.clone(),
        });
    }
}

/// Detection with this command's settings (free space measured at the cache).
pub(crate) fn detect_here(s: &Settings) -> Detected {
    detect::detect(&detect::Config::from_env(Some(&s.cache_dir)))
}

/// The hardware event; people also get one line per GPU and per hint.
pub(crate) fn emit_hardware(reporter: &dyn Reporter, hw: &Detected, lines: bool) {
    reporter.emit(Event::Hardware(hw.to_json()));
    // The reporter prints only os-arch for people; stdout stays JSON-only either way.
    if lines && !std::env::args().any(|a| a == "--json") {
        for l in hw.lines() {
            eprintln!("  {l}");
        }
    }
}

/// The variants whose probe failed on this machine, as `select_excluding` wants them.
pub(crate) fn bad_reason<'a>(
    bad: &'a BadVariants,
    state: &'a State,
    hw: &'a Detected,
) -> impl Fn(&Release, &Variant) -> Option<String> + 'a {
    move |r, v| {
        let version = r.version.to_string();
        bad.reason(&hw.hardware, &version, &v.id).or_else(|| {
            let name = Cache::install_name(&version, &v.id);
            state.rejected.get(&name).map(|why| {
                format!("rolled back on this machine ({why}); waiting for a newer release")
            })
        })
    }
}

pub(crate) fn no_variant(m: &Manifest, s: &Settings, out: &Outcome<'_>, hw: &Detected) -> Error {
    let mut message = match &s.choice {
        Choice::Forced(id) => format!(
            "no compatible release of channel {:?} has the variant {id}",
            m.channel
        ),
        Choice::Auto => format!(
            "no variant of any compatible release of channel {:?} fits this {}-{} machine",
            m.channel,
            hw.hardware.os.as_str(),
            hw.hardware.arch.as_str()
        ),
    };
    if let Some(ui) = &s.ui_version {
        message.push_str(&format!(" (UI {ui})"));
    }
    let reasons: Vec<String> = out
        .verdicts
        .iter()
        .take(8)
        .map(|v| format!("{} {}: {}", v.variant, v.version, v.reason))
        .collect();
    Error::NoVariant {
        message,
        hint: Some(if reasons.is_empty() {
            "the channel has no releases".into()
        } else {
            reasons.join("; ")
        }),
    }
}

pub(crate) struct Ctx<'a> {
    pub(crate) s: &'a Settings,
    pub(crate) cache: Cache,
    pub(crate) reporter: &'a dyn Reporter,
}

impl Ctx<'_> {
    pub(crate) fn lock(&self) -> Result<CacheLock> {
        let reporter = self.reporter;
        self.cache.lock(self.s.lock_timeout, &|owner| {
            reporter.warn(format!(
                "waiting for another peft-bootstrap{} to finish with the cache",
                owner.map(|o| format!(" ({o})")).unwrap_or_default()
            ))
        })
    }

    /// Makes `dir` current, to be started with `env`.
    pub(crate) fn switch(
        &self,
        lock: &CacheLock,
        dir: &str,
        rec: &InstallRecord,
        env: Env,
    ) -> Result<()> {
        let old = self.cache.current()?;
        if old.as_ref().is_some_and(|c| c.dir == dir && c.env == env) {
            return Ok(());
        }
        let previous = match old {
            Some(c) if c.dir == dir => c.previous,
            Some(c) => Some(c.dir),
            None => None,
        };
        let cur = Current {
            version: rec.version.clone(),
            variant: rec.variant.clone(),
            dir: dir.to_string(),
            previous,
            env,
        };
        self.cache.set_current(&cur, lock)
    }

    /// The best install that can serve without the network, newest first.
    fn best_installed(&self) -> Result<Option<(String, InstallRecord)>> {
        let mut installs: Vec<(String, InstallRecord)> = self
            .cache
            .installs()?
            .into_iter()
            .filter(|(_, r)| usable(r, self.s))
            .collect();
        installs.sort_by(|a, b| {
            let va = semver::Version::parse(&a.1.version).ok();
            let vb = semver::Version::parse(&b.1.version).ok();
            vb.cmp(&va)
        });
        Ok(installs.into_iter().next())
    }
}

/// `ensure`: answer from the cache when possible, else fetch, verify and install.
pub async fn ensure(s: &Settings, reporter: &dyn Reporter) -> Result<PathBuf> {
    let ctx = Ctx {
        s,
        cache: Cache::open(&s.cache_dir)?,
        reporter,
    };
    // An update staged by `update` becomes current now, before the engine starts;
    // if another instance is busy with the cache, it waits for the next start.
    if let Some(pending) = ctx.cache.pending()?
        && let Some(lock) = ctx.cache.try_lock()?
    {
        if let Some(rec) = ctx.cache.record(&pending.dir)?
            && usable(&rec, s)
        {
            ctx.switch(&lock, &pending.dir, &rec, pending.env)?;
        }
        ctx.cache.clear_pending(&lock)?;
    }
    if let Some(cur) = ctx.cache.current()?
        && let Some(rec) = ctx.cache.record(&cur.dir)?
        && usable(&rec, s)
        && executable(&ctx.cache.versions().join(&cur.dir), &rec.entry).is_file()
    {
        return Ok(ready(reporter, &ctx.cache, &cur.dir, &rec, Source::Cache));
    }
    let hw = detect_here(s);
    emit_hardware(reporter, &hw, false);
    let root = match s.require_repo() {
        Ok(r) => r.clone(),
        Err(e) => return fallback_or(&ctx, e, None),
    };
    let fetcher = Fetcher::new()?;
    let lock = ctx.lock()?;
    let m = match accept_manifest(&fetcher, &root, s, &ctx.cache, &lock, reporter).await {
        Ok(m) => m,
        Err(e @ Error::Network { .. }) => return fallback_or(&ctx, e, Some(&lock)),
        Err(e) => return Err(e),
    };
    let mut roots = vec![root.clone()];
    if !s.offline {
        roots.extend(m.mirrors.iter().filter_map(|u| Root::parse(u).ok()));
    }
    let mut bad = BadVariants::load(ctx.cache.root());
    let state = ctx.cache.state()?;
    // Each failed probe removes one candidate, so this ends.
    let attempts: usize = m.releases.iter().map(|r| r.variants.len()).sum::<usize>() + 1;
    let shelf = Shelf::for_settings(s);
    for _ in 0..attempts {
        let sel = &choose(&m, s, &hw, &bad, &state, shelf.as_ref(), false, reporter)?;
        let target = Target {
            release: sel.release,
            variant: sel.variant,
            channel: &s.channel,
            serial: m.serial,
        };
        let installed = install(&fetcher, &roots, &ctx.cache, &lock, target, reporter).await;
        let (dir, fresh) = match installed {
            Ok(x) => x,
            Err(e @ Error::Network { .. }) => return fallback_or(&ctx, e, Some(&lock)),
            Err(e) => return Err(e),
        };
        let rec = ctx
            .cache
            .record(&dir)?
            .ok_or_else(|| Error::Internal(format!("{dir} vanished after install")))?;
        let is_current = ctx.cache.current()?.is_some_and(|c| c.dir == dir);
        if sel.variant.probe
            && !is_current
            && let Err(why) = probe_install(&ctx, &lock, &mut bad, &hw, sel, &dir, &rec)?
        {
            let version = sel.release.version.to_string();
            if matches!(s.choice, Choice::Forced(_)) {
                reporter.warn(format!(
                        "{} {version} failed its probe on this machine ({why}); using it anyway because it was asked for",
                        sel.variant.id
                    ));
            } else {
                if fresh {
                    discard(&ctx.cache, &dir);
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
        return Ok(ready(reporter, &ctx.cache, &dir, &rec, source));
    }
    Err(Error::Internal(
        "every candidate failed its probe and selection kept offering one".into(),
    ))
}

/// Removes an install that failed its probe: its record first, so a crash midway
/// never leaves something that looks complete.
pub(crate) fn discard(cache: &Cache, dir: &str) {
    let d = cache.versions().join(dir);
    let _ = std::fs::remove_file(d.join(INSTALL_RECORD));
    let _ = std::fs::remove_dir_all(&d);
}

/// When the repository cannot be reached, an installed backend still serves.
/// `held` is the lock when the caller has it already (a second lock in the same
/// process would wait for itself).
fn fallback_or(ctx: &Ctx<'_>, e: Error, held: Option<&CacheLock>) -> Result<PathBuf> {
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
            Ok(ready(ctx.reporter, &ctx.cache, &dir, &rec, Source::Cache))
        }
        None => Err(e),
    }
}

/// `detect`: the hardware, every variant's verdict and the choice; installs nothing.
/// Without a repository it judges the built-in variant catalogue (version
/// `catalog`), so a machine can be explained before anything is published.
pub async fn detect(s: &Settings, reporter: &dyn Reporter) -> Result<()> {
    let hw = detect_here(s);
    emit_hardware(reporter, &hw, true);
    let Some(root) = s.repo.clone() else {
        reporter.warn(
            "no release repository is configured (--manifest-url or --offline-dir): judging the built-in variant catalogue".into(),
        );
        let catalog = VariantCatalog::builtin()
            .map_err(|e| Error::Internal(format!("the built-in variant catalogue: {e}")))?;
        let m = catalog_manifest(&catalog);
        let out = select_excluding(&m, &hw.hardware, None, &s.choice, &|_, _| None);
        emit_selection(reporter, &out, true, Some("catalog"));
        return match out.selected {
            Some(_) => Ok(()),
            None => Err(no_variant(&m, s, &out, &hw)),
        };
    };
    let cache = Cache::open(&s.cache_dir)?;
    let lock = cache.lock(s.lock_timeout, &|_| {})?;
    let m = accept_manifest(&Fetcher::new()?, &root, s, &cache, &lock, reporter).await?;
    drop(lock);
    let bad = BadVariants::load(cache.root());
    let state = cache.state()?;
    choose(
        &m,
        s,
        &hw,
        &bad,
        &state,
        Shelf::for_settings(s).as_ref(),
        true,
        reporter,
    )?;
    Ok(())
}

/// `status`: installed versions, the current one, the cache size.
pub fn status(s: &Settings, json_out: bool) -> Result<()> {
    let cache = Cache::open(&s.cache_dir)?;
    let current = cache.current()?;
    let installs = cache.installs()?;
    let state = cache.state()?;
    let size = cache.size();
    if json_out {
        let v = json!({
            "event": "status",
            "cache_dir": cache.root().display().to_string(),
            "current": current.as_ref().map(|c| json!({"version": c.version, "variant": c.variant, "dir": cache.versions().join(&c.dir).display().to_string(), "previous": c.previous})),
            "installed": installs.iter().map(|(d, r)| json!({
                "version": r.version, "variant": r.variant, "dir": cache.versions().join(d).display().to_string(),
                "installed_at": r.installed_at, "files": r.index.files.len(), "bytes": r.index.unpacked_size(),
                "current": current.as_ref().is_some_and(|c| &c.dir == d),
            })).collect::<Vec<_>>(),
            "channels": state.channels,
            "cache_bytes": size,
        });
        println!("{v}");
    } else {
        println!("cache: {} ({})", cache.root().display(), human_bytes(size));
        match &current {
            Some(c) => println!("current: {} ({})", c.version, c.variant),
            None => println!("current: none"),
        }
        for (d, r) in &installs {
            let mark = if current.as_ref().is_some_and(|c| &c.dir == d) {
                "*"
            } else {
                " "
            };
            println!(
                "{mark} {} {} {} files, {}, installed {}",
                r.version,
                r.variant,
                r.index.files.len(),
                human_bytes(r.index.unpacked_size()),
                r.installed_at
            );
        }
        for (ch, st) in &state.channels {
            println!(
                "channel {ch}: serial {} published {}",
                st.serial, st.published_at
            );
        }
    }
    Ok(())
}

/// `verify`: re-hash the current install against its index.
pub fn verify(s: &Settings, json_out: bool) -> Result<()> {
    let cache = Cache::open(&s.cache_dir)?;
    let cur = cache.current()?.ok_or_else(|| {
        Error::usage(
            "no backend is installed",
            Some("run `peft-bootstrap ensure` first".to_string()),
        )
    })?;
    let rec = cache
        .record(&cur.dir)?
        .ok_or_else(|| Error::integrity(format!("{} has no install record", cur.dir)))?;
    let dir = cache.versions().join(&cur.dir);
    let mut problems = Vec::new();
    for f in &rec.index.files {
        let p = executable(&dir, &f.path);
        match hash_file(&p) {
            Ok((hex, n)) if hex == f.sha256.hex() && n == f.size => {}
            Ok((hex, n)) => problems.push(format!(
                "{}: {n} bytes, SHA-256 {hex}; expected {} bytes, {}",
                f.path, f.size, f.sha256
            )),
            Err(e) => problems.push(format!("{}: {e}", f.path)),
        }
    }
    if json_out {
        println!(
            "{}",
            json!({"event": "verified", "version": rec.version, "variant": rec.variant, "files": rec.index.files.len(), "ok": problems.is_empty(), "problems": problems})
        );
    } else if problems.is_empty() {
        eprintln!(
            "{} ({}): all {} files match the signed index",
            rec.version,
            rec.variant,
            rec.index.files.len()
        );
    }
    if problems.is_empty() {
        Ok(())
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
            "reinstall with `peft-bootstrap ensure` after removing the damaged version, or restore the files",
        ))
    }
}
