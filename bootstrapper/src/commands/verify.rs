//! `verify`: re-hash every file of the current install against the index kept in
//! its record; exit 4 naming each damaged file.

use super::Session;
use crate::error::{Error, Result};
use crate::install::executable;
use crate::report::Event;
use crate::source::hash_file;

/// `verify`: re-hash the current install against its index.
pub fn run(ctx: &Session<'_>) -> Result<()> {
    let cache = ctx.cache()?;
    let cur = ctx.current_or("no backend is installed")?;
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
    ctx.reporter.emit(Event::Verified {
        version: rec.version.clone(),
        variant: rec.variant.clone(),
        files: rec.index.files.len(),
        ok: problems.is_empty(),
        problems: problems.clone(),
    });
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
