//! `status`: cache folder and size, current install, every install, highest
//! accepted serial per channel.

use super::Session;
use crate::error::Result;
use crate::report::{ChannelSerial, Event, StatusCurrent, StatusInstall};

/// `status`: installed versions, the current one, the cache size.
pub fn run(ctx: &Session<'_>) -> Result<()> {
    let cache = ctx.cache()?;
    let current = cache.current()?;
    let installs = cache.installs()?;
    let state = cache.state()?;
    let size = cache.size();
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
    });
    Ok(())
}
