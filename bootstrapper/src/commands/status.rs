//! `status`: cache folder and size, current install, every install, the install
//! staged for the next start, the installs rolled back (and how to allow one
//! again), highest accepted serial per channel.

use super::Session;
use crate::cache::Cache;
use crate::error::Result;
use crate::report::{
    ChannelSerial, Event, StatusCurrent, StatusInstall, StatusRefused, StatusStaged,
};

/// `status`: installed versions, the current one, the cache size.
pub fn run(ctx: &Session<'_>) -> Result<()> {
    let cache = ctx.cache()?;
    let current = cache.current()?;
    let installs = cache.installs()?;
    let state = cache.state()?;
    let size = cache.size();
    let staged = cache.pending()?.map(|p| {
        let (version, variant) = name_parts(cache, &p.dir);
        (p.dir, version, variant)
    });
    let refused = state
        .rejected
        .iter()
        .map(|(name, why)| {
            let (version, variant) = name_parts(cache, name);
            StatusRefused {
                version,
                variant,
                reason: why.clone(),
                allow_command: allow_command(name),
            }
        })
        .collect();
    let is_current = |d: &str| current.as_ref().is_some_and(|c| c.dir == d);
    let dir = |d: &str| cache.versions().join(d).display().to_string();
    ctx.reporter.emit(Event::Status {
        cache_dir: cache.root().display().to_string(),
        current: current.as_ref().map(|c| StatusCurrent {
            version: c.version.clone(),
            variant: c.variant.clone(),
            dir: dir(&c.dir),
            previous: c.previous.clone(),
        }),
        installed: installs
            .iter()
            .map(|(d, r)| StatusInstall {
                version: r.version.clone(),
                variant: r.variant.clone(),
                dir: dir(d),
                installed_at: r.installed_at.clone(),
                files: r.index.files.len(),
                bytes: r.index.unpacked_size(),
                current: is_current(d),
            })
            .collect(),
        channels: state
            .channels
            .into_iter()
            .map(|(name, c)| {
                let serial = ChannelSerial {
                    serial: c.serial,
                    published_at: c
                        .published_at
                        .map(|t| peft_manifest::accept::rfc3339(&t))
                        .unwrap_or_default(),
                };
                (name, serial)
            })
            .collect(),
        cache_bytes: size,
        staged: staged.map(|(d, version, variant)| StatusStaged {
            version,
            variant,
            dir: dir(&d),
        }),
        refused,
    });
    Ok(())
}

/// The version and variant of the install named `name` (`<version>-<variant>`):
/// from its record when it is still there, else from the name (the version is the
/// shortest leading part that is a version).
pub(super) fn name_parts(cache: &Cache, name: &str) -> (String, String) {
    if let Ok(Some(r)) = cache.record_head(name) {
        return (r.version, r.variant);
    }
    name.match_indices('-')
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .find(|(v, _)| semver::Version::parse(v).is_ok())
        .map(|(v, id)| (v.to_string(), id.to_string()))
        .unwrap_or_else(|| (name.to_string(), String::new()))
}

/// The command that lets `rollback` choose the refused install `name` again.
pub(super) fn allow_command(name: &str) -> String {
    format!("peft-bootstrap rollback --allow {name}")
}
