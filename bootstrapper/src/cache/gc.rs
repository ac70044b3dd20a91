//! Garbage collection: which installs, downloads and staging folders may go.

use std::collections::HashSet;

use semver::Version;

use super::{Cache, CacheLock, dir_size, sync_dir};
use crate::error::{Error, Result};
use crate::report::{Event, Reporter};

/// Partial downloads untouched this long are stale.
const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Keeps the current, previous and staged installs and the newest others up to
/// `keep` installs; removes the rest, leftover downloads and staging folders.
pub fn collect(
    cache: &Cache,
    lock: &CacheLock,
    keep: usize,
    reporter: &dyn Reporter,
) -> Result<()> {
    let _ = lock;
    let cur = cache.current()?;
    let mut kept: HashSet<String> = HashSet::new();
    if let Some(c) = &cur {
        kept.insert(c.dir.clone());
        kept.extend(c.previous.clone());
    }
    kept.extend(cache.pending()?.map(|p| p.dir));
    let mut installs = cache.installs()?;
    installs.sort_by(|a, b| {
        b.1.version
            .parse::<Version>()
            .ok()
            .cmp(&a.1.version.parse::<Version>().ok())
    });
    for (dir, _) in &installs {
        if kept.len() >= keep.max(1) {
            break;
        }
        kept.insert(dir.clone());
    }
    let (mut removed, mut freed) = (Vec::new(), 0u64);
    for (dir, _) in installs.iter().filter(|(d, _)| !kept.contains(d)) {
        let from = cache.versions().join(dir);
        // Out of versions/ first, in one rename, so no half-deleted install is ever visible.
        let trash = cache
            .staging()
            .join(format!("{dir}.gc.{}", std::process::id()));
        fs_err::rename(&from, &trash).map_err(|e| Error::storage("moving", &from, e))?;
        freed += dir_size(&trash);
        fs_err::remove_dir_all(&trash).map_err(|e| Error::storage("removing", &trash, e))?;
        removed.push(dir.clone());
    }
    sync_dir(&cache.versions());
    if let Ok(rd) = fs_err::read_dir(cache.downloads()) {
        for e in rd.flatten() {
            let partial = super::is_partial(&e.file_name().to_string_lossy());
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if !partial || age > STALE {
                freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                if fs_err::remove_file(e.path()).is_ok() {
                    removed.push(format!("downloads/{}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    cache.clean_staging();
    // A damaged install `ensure` set aside while installing it again, left by a run
    // that was stopped then.
    if let Ok(rd) = fs_err::read_dir(cache.root()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("damaged-") && e.file_type().is_ok_and(|t| t.is_dir()) {
                let size = dir_size(&e.path());
                if fs_err::remove_dir_all(e.path()).is_ok() {
                    freed += size;
                    removed.push(name);
                }
            }
        }
    }
    reporter.emit(Event::Collected { removed, freed });
    Ok(())
}
