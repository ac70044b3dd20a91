//! `status`: cache folder and size, current install, every install, highest
//! accepted serial per channel.

use serde_json::json;

use super::Session;
use crate::error::{Result, human_bytes};

/// `status`: installed versions, the current one, the cache size.
pub fn run(ctx: &Session<'_>) -> Result<()> {
    let (cache, json_out) = (ctx.cache()?, ctx.json);
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
