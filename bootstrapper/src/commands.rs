//! The subcommands: each turns settings into events and a result.

use std::path::PathBuf;

use peft_manifest::select::{Outcome, select};
use peft_manifest::{Choice, Manifest};
use semver::VersionReq;
use serde_json::json;

use crate::cache::{Cache, CacheLock, Current, InstallRecord};
use crate::detect::{self, Detected};
use crate::error::{Error, Result, human_bytes};
use crate::events::{Event, Reporter, Source};
use crate::fetch::{Fetcher, Root, hash_file};
use crate::install::{Target, executable, install};
use crate::repo::accept_manifest;
use crate::settings::Settings;

fn ready(
    reporter: &dyn Reporter,
    cache: &Cache,
    dir: &str,
    rec: &InstallRecord,
    source: Source,
) -> PathBuf {
    let d = cache.versions().join(dir);
    let exe = executable(&d, &rec.entry);
    reporter.emit(Event::Ready {
        version: rec.version.clone(),
        variant: rec.variant.clone(),
        dir: d.display().to_string(),
        executable: exe.display().to_string(),
        source,
    });
    exe
}

/// Whether an installed record may serve this request without the network.
fn usable(rec: &InstallRecord, s: &Settings) -> bool {
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

fn emit_selection(reporter: &dyn Reporter, out: &Outcome<'_>, verdicts: bool) {
    if verdicts {
        for v in &out.verdicts {
            reporter.emit(Event::Verdict {
                version: v.version.to_string(),
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
        reporter.emit(Event::Selected {
            version: sel.release.version.to_string(),
            variant: sel.variant.id.clone(),
            reason: sel.reason.clone(),
        });
    }
}

fn no_variant(m: &Manifest, s: &Settings, out: &Outcome<'_>, hw: &Detected) -> Error {
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

struct Ctx<'a> {
    s: &'a Settings,
    cache: Cache,
    reporter: &'a dyn Reporter,
}

impl Ctx<'_> {
    fn lock(&self) -> Result<CacheLock> {
        let reporter = self.reporter;
        self.cache.lock(self.s.lock_timeout, &|owner| {
            reporter.warn(format!(
                "waiting for another peft-bootstrap{} to finish with the cache",
                owner.map(|o| format!(" ({o})")).unwrap_or_default()
            ))
        })
    }

    fn switch(&self, lock: &CacheLock, dir: &str, rec: &InstallRecord) -> Result<()> {
        let old = self.cache.current()?;
        if old.as_ref().is_some_and(|c| c.dir == dir) {
            return Ok(());
        }
        let cur = Current {
            version: rec.version.clone(),
            variant: rec.variant.clone(),
            dir: dir.to_string(),
            previous: old.map(|c| c.dir),
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
    if let Some(cur) = ctx.cache.current()?
        && let Some(rec) = ctx.cache.record(&cur.dir)?
        && usable(&rec, s)
        && executable(&ctx.cache.versions().join(&cur.dir), &rec.entry).is_file()
    {
        return Ok(ready(reporter, &ctx.cache, &cur.dir, &rec, Source::Cache));
    }
    let hw = detect::detect();
    reporter.emit(Event::Hardware(hw.to_json()));
    let root = match s.require_repo() {
        Ok(r) => r.clone(),
        Err(e) => return fallback_or(&ctx, e),
    };
    let fetcher = Fetcher::new()?;
    let lock = ctx.lock()?;
    let m = match accept_manifest(&fetcher, &root, s, &ctx.cache, &lock, reporter).await {
        Ok(m) => m,
        Err(e @ Error::Network { .. }) => return fallback_or(&ctx, e),
        Err(e) => return Err(e),
    };
    let out = select(&m, &hw.hardware, s.ui_version.as_ref(), &s.choice);
    emit_selection(reporter, &out, false);
    let Some(sel) = &out.selected else {
        return Err(no_variant(&m, s, &out, &hw));
    };
    let mut roots = vec![root.clone()];
    if !s.offline {
        roots.extend(m.mirrors.iter().filter_map(|u| Root::parse(u).ok()));
    }
    let target = Target {
        release: sel.release,
        variant: sel.variant,
        channel: &s.channel,
        serial: m.serial,
    };
    let installed = install(&fetcher, &roots, &ctx.cache, &lock, target, reporter).await;
    let (dir, fresh) = match installed {
        Ok(x) => x,
        Err(e @ Error::Network { .. }) => return fallback_or(&ctx, e),
        Err(e) => return Err(e),
    };
    let rec = ctx
        .cache
        .record(&dir)?
        .ok_or_else(|| Error::Internal(format!("{dir} vanished after install")))?;
    ctx.switch(&lock, &dir, &rec)?;
    let source = match (fresh, s.offline) {
        (false, _) => Source::Cache,
        (true, true) => Source::Offline,
        (true, false) => Source::Network,
    };
    Ok(ready(reporter, &ctx.cache, &dir, &rec, source))
}

/// When the repository cannot be reached, an installed backend still serves.
fn fallback_or(ctx: &Ctx<'_>, e: Error) -> Result<PathBuf> {
    match ctx.best_installed()? {
        Some((dir, rec)) => {
            ctx.reporter.warn(format!(
                "{e}; using the installed backend {} ({})",
                rec.version, rec.variant
            ));
            let lock = ctx.lock()?;
            ctx.switch(&lock, &dir, &rec)?;
            Ok(ready(ctx.reporter, &ctx.cache, &dir, &rec, Source::Cache))
        }
        None => Err(e),
    }
}

/// `detect`: the hardware, every variant's verdict and the choice; installs nothing.
pub async fn detect(s: &Settings, reporter: &dyn Reporter) -> Result<()> {
    let hw = detect::detect();
    reporter.emit(Event::Hardware(hw.to_json()));
    let root = s.require_repo()?.clone();
    let cache = Cache::open(&s.cache_dir)?;
    let lock = cache.lock(s.lock_timeout, &|_| {})?;
    let m = accept_manifest(&Fetcher::new()?, &root, s, &cache, &lock, reporter).await?;
    drop(lock);
    let out = select(&m, &hw.hardware, s.ui_version.as_ref(), &s.choice);
    emit_selection(reporter, &out, true);
    match out.selected {
        Some(_) => Ok(()),
        None => Err(no_variant(&m, s, &out, &hw)),
    }
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
        match hash_file(&p, None) {
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
