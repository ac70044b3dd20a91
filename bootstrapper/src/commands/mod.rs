//! The subcommands, one file each with its `run`, over one [`Session`] (settings,
//! reporter, cache and fetcher, each made once) and the steps `ensure`, `update`
//! and `detect` share: [`choose`], [`provision`](provision::provision), [`ready`].
//!
//! This is the top floor: it may use every other module; none uses it.

mod detect;
mod ensure;
mod gc;
mod provision;
mod release_config;
mod repair;
mod rollback;
mod self_update;
mod settings;
mod status;
mod update;
mod verify;

pub use settings::{Settings, default_cache_dir};

use std::cell::OnceCell;
use std::path::PathBuf;

use peft_manifest::select::{Outcome, select_excluding};
use peft_manifest::{Choice, Manifest, Release, Variant};
use semver::VersionReq;

use crate::cache::{BadVariants, Cache, CacheLock, Current, InstallRecord, State};
use crate::cli::Command;
use crate::detect::{Config, Detected};
use crate::error::{Error, Reason, Result};
use crate::install::executable;
use crate::report::{Event, Reporter, Source};
use crate::source::{Fetcher, Root, Shelf, Trust, accept_signed};

/// How a command ended when it did not fail.
#[derive(Debug)]
pub enum Next {
    /// Done: exit 0.
    Exit,
    /// This binary was replaced by a newer build (a manifest's
    /// `min_bootstrapper`): run `exe` with the same arguments; if that cannot be
    /// done, end with `otherwise`.
    Reexec { exe: PathBuf, otherwise: Error },
}

/// Runs one parsed command.
pub async fn run(command: Command, session: &Session<'_>) -> Result<Next> {
    match command {
        Command::Ensure => ensure::run(session).await,
        Command::Detect => detect::run(session).await,
        Command::Status => status::run(session).map(|()| Next::Exit),
        Command::Verify(a) => verify::run(session, a.repair).await,
        Command::Update(a) => update::run(session, a.check).await,
        Command::Rollback(a) => match &a.allow {
            Some(name) => rollback::allow(session, name),
            None => rollback::run(session, a.reason.as_deref()),
        }
        .map(|()| Next::Exit),
        Command::Gc(a) => gc::run(session, a.keep).map(|()| Next::Exit),
        Command::SelfUpdate(a) => self_update::run(session, a.check)
            .await
            .map(|()| Next::Exit),
    }
}

pub(crate) fn ready<I>(
    reporter: &dyn Reporter,
    cache: &Cache,
    dir: &str,
    rec: &InstallRecord<I>,
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
    unknown_variant(m, &s.choice)?;
    let probed = bad_reason(bad, state, hw);
    let mut out = select_excluding(
        m,
        &hw.hardware,
        s.ui_version.as_ref(),
        &s.choice,
        &|r, v| probed(r, v).or_else(|| shelf?.missing(v)),
    );
    let reviewed = match shelf {
        Some(shelf) => {
            let best = select_excluding(m, &hw.hardware, s.ui_version.as_ref(), &s.choice, &probed);
            shelf.review(best.selected.as_ref(), &out, reporter)
        }
        None => Ok(()),
    };
    emit_selection(reporter, &out, verdicts, None);
    reviewed?;
    match out.selected.take() {
        Some(sel) => Ok(sel),
        None => Err(no_variant(m, s, &out, hw)),
    }
}

/// Whether an installed record may serve this request without the network.
pub(crate) fn usable<I>(rec: &InstallRecord<I>, s: &Settings) -> bool {
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
    crate::detect::detect(&Config::from_env(Some(&s.cache_dir)))
}

/// The hardware event; people also get one line per GPU and per hint.
pub(crate) fn emit_hardware(ctx: &Session<'_>, hw: &Detected, lines: bool) {
    ctx.reporter.emit(hw.to_event());
    // The reporter prints only os-arch for people; stdout stays JSON-only either way.
    if lines && !ctx.json {
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

/// A forced variant that no release of the channel offers is a usage error
/// (`unknown_variant`) listing the ids the channel offers.
pub(crate) fn unknown_variant(m: &Manifest, choice: &Choice) -> Result<()> {
    let Choice::Forced(id) = choice else {
        return Ok(());
    };
    let mut offered: Vec<&str> = m
        .releases
        .iter()
        .flat_map(|r| r.variants.iter().map(|v| v.id.as_str()))
        .collect();
    if offered.contains(&id.as_str()) {
        return Ok(());
    }
    offered.sort_unstable();
    offered.dedup();
    let list = if offered.is_empty() {
        "none (the channel has no releases)".to_string()
    } else {
        offered.join(", ")
    };
    Err(Error::reasoned(
        Reason::UnknownVariant,
        format!(
            "no release of channel {:?} offers the variant {id:?}; it offers: {list}",
            m.channel
        ),
        Some(
            "choose one of those with --variant (PEFT_BACKEND_VARIANT), or `auto` to let the machine decide"
                .to_string(),
        ),
    ))
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
    let hint = Some(if reasons.is_empty() {
        "the channel has no releases".into()
    } else {
        reasons.join("; ")
    });
    // Releases exist, but none is for this UI version: the app and the channel
    // do not go together (rather than this machine not fitting).
    let ui_excluded = s.ui_version.as_ref().is_some_and(|ui| {
        !m.releases.is_empty() && m.releases.iter().all(|r| !r.ui_compat.matches(ui))
    });
    if ui_excluded {
        return Error::reasoned(Reason::Incompatible, message, hint);
    }
    Error::NoVariant { message, hint }
}

/// What every command works with, each made once: the checked settings, the
/// reporter, whether `--json` was given, and (on first use, so that a cached answer
/// or a catalogue-only `detect` creates nothing) the cache and the fetcher.
pub struct Session<'a> {
    pub s: Settings,
    pub reporter: &'a dyn Reporter,
    pub json: bool,
    cache: OnceCell<Cache>,
    fetcher: OnceCell<Fetcher>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("s", &self.s)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl<'a> Session<'a> {
    pub fn new(s: Settings, reporter: &'a dyn Reporter, json: bool) -> Session<'a> {
        Session {
            s,
            reporter,
            json,
            cache: OnceCell::new(),
            fetcher: OnceCell::new(),
        }
    }

    /// The cache, opened (and created) on first use.
    pub(crate) fn cache(&self) -> Result<&Cache> {
        if let Some(c) = self.cache.get() {
            return Ok(c);
        }
        let c = Cache::open(&self.s.cache_dir)?;
        Ok(self.cache.get_or_init(|| c))
    }

    /// The HTTP client, made on first use.
    pub(crate) fn fetcher(&self) -> Result<&Fetcher> {
        if let Some(f) = self.fetcher.get() {
            return Ok(f);
        }
        let f = Fetcher::new()?;
        Ok(self.fetcher.get_or_init(|| f))
    }

    /// What the manifest is accepted for.
    pub(crate) fn trust(&self) -> Trust<'_> {
        Trust {
            channel: &self.s.channel,
            keys: &self.s.keys,
            offline: self.s.repo.is_offline(),
            mirrors: &self.s.mirrors,
        }
    }

    /// Fetches and accepts the channel manifest from `root`; when it needs a newer
    /// bootstrapper, `Ok(Err(next))` is how the command must end: re-run with the
    /// new binary (when `update_first` allows replacing it) or the error saying how.
    pub(crate) async fn manifest(
        &self,
        root: &Root,
        lock: &CacheLock,
        update_first: bool,
    ) -> Result<std::result::Result<Manifest, Next>> {
        let (fetcher, cache) = (self.fetcher()?, self.cache()?);
        let mut m = accept_signed(fetcher, root, self.trust(), cache, lock, self.reporter).await?;
        if let Some(shelf) = Shelf::for_repo(&self.s.repo) {
            shelf.fit(&mut m);
        }
        if !crate::version::needs_newer(&m) {
            return Ok(Ok(m));
        }
        let roots = self.roots(root, &m);
        let s = &self.s;
        let (exe, version) = crate::self_update::catch_up(
            fetcher,
            &roots,
            &m,
            s.repo.is_offline(),
            update_first,
            cache,
            self.reporter,
        )
        .await?;
        let otherwise = Error::NoVariant {
            message: format!(
                "peft-bootstrap was updated to {version} ({}); run the command again",
                exe.display()
            ),
            hint: None,
        };
        Ok(Err(Next::Reexec { exe, otherwise }))
    }

    /// The roots to fetch from: the offline folder alone, or `root`, release.json's
    /// mirrors and the manifest's mirrors.
    pub(crate) fn roots(&self, root: &Root, m: &Manifest) -> Vec<Root> {
        let mut roots = vec![root.clone()];
        if !self.s.repo.is_offline() {
            let manifest_mirrors = m.mirrors.iter().filter_map(|u| Root::parse(u).ok());
            for r in self.s.mirrors.iter().cloned().chain(manifest_mirrors) {
                if !roots.contains(&r) {
                    roots.push(r);
                }
            }
        }
        roots
    }

    /// The current install, or a usage error saying `message` and to run `ensure`.
    pub(crate) fn current_or(&self, message: &str) -> Result<Current> {
        self.cache()?.current()?.ok_or_else(|| {
            Error::usage(
                message,
                Some("run `peft-bootstrap ensure` first".to_string()),
            )
        })
    }

    pub(crate) fn lock(&self) -> Result<CacheLock> {
        let reporter = self.reporter;
        self.cache()?.lock(self.s.lock_timeout, &|owner| {
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
        let old = self.cache()?.current()?;
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
        self.cache()?.set_current(&cur, lock)
    }

    /// The best install that can serve without the network, newest first: one that
    /// is whole (every indexed file there, of its size) and is not `but`.
    pub(crate) fn best_installed(
        &self,
        but: Option<&str>,
    ) -> Result<Option<(String, InstallRecord)>> {
        let cache = self.cache()?;
        let mut installs: Vec<(String, InstallRecord)> = cache
            .installs()?
            .into_iter()
            .filter(|(d, r)| usable(r, &self.s) && but != Some(d.as_str()))
            .filter(|(d, r)| cache.gaps(d, &r.entry).is_empty())
            .collect();
        installs.sort_by(|a, b| {
            let va = semver::Version::parse(&a.1.version).ok();
            let vb = semver::Version::parse(&b.1.version).ok();
            vb.cmp(&va)
        });
        Ok(installs.into_iter().next())
    }
}
