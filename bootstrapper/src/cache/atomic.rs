//! Files that readers see whole or not at all: JSON read with "missing" as `None`,
//! and writes that replace a file by a synced temporary renamed over it, then sync
//! the folder.

use fs_err::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// Reads JSON from `path`; `None` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs_err::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::storage(
                "parsing",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage("reading", path, e)),
    }
}

/// Writes `value` as JSON to `path` so that readers see the old or the new file,
/// never a mix: write a temporary file, fsync it, rename it over, fsync the folder.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Atomically replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        // Never through a link planted under the temporary's name: remove whatever
        // is there (a link itself, not its target) and create the file exclusively.
        let _ = fs_err::remove_file(&tmp);
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        crate::failpoint::hit("before-rename");
        fs_err::rename(&tmp, path)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs_err::remove_file(&tmp);
        return Err(Error::storage("writing", path, e));
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Flushes a directory's entries to disk (a no-op where the OS has no such call).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn an_atomic_write_never_writes_through_a_planted_link() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        fs_err::write(&victim, b"keep me").expect("write");
        let p = t.path().join("current.json");
        let tmp = p.with_extension(format!("tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).expect("plant a link");
        write_atomic(&p, b"{}").expect("write");
        assert_eq!(fs_err::read(&victim).expect("read"), b"keep me");
        assert_eq!(fs_err::read(&p).expect("read"), b"{}");
        assert!(!tmp.exists() && fs_err::symlink_metadata(&tmp).is_err());
    }
}
