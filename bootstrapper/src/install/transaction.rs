//! One install attempt: a private staging folder that becomes `versions/<name>` in a
//! single rename, or disappears.
//!
//! The folder is made with `tempfile` under the cache's `staging/` (same file system
//! as `versions/`, so the rename is atomic) and removed when the transaction is
//! dropped without [`Transaction::commit`]: any error path, and a panic, leave nothing.
//! A `kill -9` leaves the folder behind; the next run under the lock removes it
//! ([`Cache::clean_staging`]). The caller holds the cache lock throughout.

use std::path::Path;

use peft_manifest::index::INSTALL_RECORD;
use tempfile::TempDir;

use crate::cache::{Cache, InstallRecord, sync_dir, write_json_atomic};
use crate::error::{Error, Result};

/// A staged install; see the module documentation.
#[derive(Debug)]
pub struct Transaction<'c> {
    cache: &'c Cache,
    name: String,
    dir: TempDir,
}

impl<'c> Transaction<'c> {
    /// Starts staging the install `name` in a fresh, empty folder.
    pub fn begin(cache: &'c Cache, name: &str) -> Result<Transaction<'c>> {
        let parent = cache.staging();
        fs_err::create_dir_all(&parent).map_err(|e| Error::storage("creating", &parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .tempdir_in(&parent)
            .map_err(|e| Error::storage("creating a staging folder in", &parent, e))?;
        Ok(Transaction {
            cache,
            name: name.to_string(),
            dir,
        })
    }

    /// The staging folder, to be filled by the caller.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the record into the finished, verified and synced tree and renames it
    /// into `versions/<name>`: the moment the install becomes visible.
    pub fn commit(self, record: &InstallRecord) -> Result<()> {
        write_json_atomic(&self.dir.path().join(INSTALL_RECORD), record)?;
        crate::failpoint::hit("before-commit");
        let versions = self.cache.versions();
        let dest = versions.join(&self.name);
        fs_err::rename(self.dir.path(), &dest)
            .map_err(|e| Error::storage("moving the install into", &dest, e))?;
        // The folder is no longer there to clean up.
        let _ = self.dir.keep();
        sync_dir(&versions);
        crate::failpoint::hit("after-commit");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_transaction_leaves_nothing() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(t.path()).expect("cache");
        let staged = {
            let tx = Transaction::begin(&cache, "1.0.0-x").expect("begin");
            fs_err::write(tx.path().join("f"), b"x").expect("write");
            tx.path().to_path_buf()
        };
        assert!(!staged.exists(), "{} must be removed", staged.display());
        assert_eq!(fs_err::read_dir(cache.staging()).expect("ls").count(), 0);
        assert!(!cache.versions().join("1.0.0-x").exists());
    }
}
