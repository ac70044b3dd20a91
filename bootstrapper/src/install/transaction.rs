//! One install attempt: a private staging folder that becomes `versions/<name>` in a
//! single rename, or disappears.
//!
//! The folder is made with `tempfile` under the cache's `staging/` (same file system
//! as `versions/`, so the rename is atomic) and removed when the transaction is
//! dropped without [`Transaction::commit`]: any error path, and a panic, leave nothing.
//! A `kill -9` leaves the folder behind; the next run under the lock removes it
//! ([`Cache::clean_staging`]). The caller holds the cache lock throughout.

use std::path::Path;

use peft_manifest::index::{INSTALL_INDEX, INSTALL_RECORD};
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

    /// Writes the index and then the record (see [`InstallRecord`]) into the finished,
    /// verified and synced tree and renames it into `versions/<name>`: the moment the
    /// install becomes visible.
    pub fn commit(self, record: &InstallRecord) -> Result<()> {
        write_json_atomic(&self.dir.path().join(INSTALL_INDEX), &record.index)?;
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
    use crate::cache::Skipped;
    use crate::install::fixture::{Item, bundle};

    fn record(index: peft_manifest::FileIndex) -> InstallRecord {
        InstallRecord {
            version: "1.0.0".into(),
            variant: "x".into(),
            channel: "stable".into(),
            entry: "a".into(),
            ui_compat: ">=1".into(),
            archive_sha256: "0".repeat(64),
            manifest_serial: 7,
            installed_at: "2026-12-05T00:00:00Z".into(),
            index,
        }
    }

    #[test]
    fn a_committed_record_keeps_its_index_in_a_file_of_its_own() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(&t.path().join("cache")).expect("cache");
        let (_, index) = bundle(t.path(), &[Item::File("a", b"x"), Item::File("b/c", b"yy")]);
        let rec = record(index);
        let tx = Transaction::begin(&cache, "1.0.0-x").expect("begin");
        tx.commit(&rec).expect("commit");
        let dir = cache.versions().join("1.0.0-x");
        let head = fs_err::read_to_string(dir.join(INSTALL_RECORD)).expect("record");
        assert!(
            !head.contains("\"index\""),
            "no index in the record: {head}"
        );
        assert!(dir.join(INSTALL_INDEX).is_file());
        assert_eq!(cache.record("1.0.0-x").expect("read"), Some(rec.clone()));
        let head: InstallRecord<Skipped> =
            cache.record_head("1.0.0-x").expect("head").expect("some");
        assert_eq!((head.version, head.entry), (rec.version, rec.entry));
        // Without its index file the install is damaged, and says which file is missing.
        fs_err::remove_file(dir.join(INSTALL_INDEX)).expect("rm");
        let err = cache.record("1.0.0-x").expect_err("damaged").to_string();
        assert!(err.contains(INSTALL_INDEX), "{err}");
    }

    #[test]
    fn a_record_written_with_its_index_inside_still_reads() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(&t.path().join("cache")).expect("cache");
        let (_, index) = bundle(t.path(), &[Item::File("a", b"x")]);
        let rec = record(index);
        let mut old = serde_json::to_value(&rec).expect("json");
        old["index"] = serde_json::to_value(&rec.index).expect("json");
        let dir = cache.versions().join("1.0.0-x");
        fs_err::create_dir_all(&dir).expect("mkdir");
        fs_err::write(dir.join(INSTALL_RECORD), old.to_string()).expect("write");
        assert_eq!(cache.record("1.0.0-x").expect("read"), Some(rec));
        assert!(cache.record_head("1.0.0-x").expect("head").is_some());
    }

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
