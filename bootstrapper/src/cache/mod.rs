//! The cache directory (docs/CONTRACT.md §5): its layout, its lock, and the small JSON
//! files that say what is installed and current.
//!
//! ```text
//! versions/<version>-<variant>/   complete, verified installs; never modified in place
//! current.json                    which one is current; replaced atomically
//! pending.json                    an install `update` staged for the next `ensure`
//! state.json                      per channel: serial and clock floors, announced and retired keys
//! presence.json                   folder times of installs found whole (the cached `ensure`'s quick check)
//! downloads/                      partial downloads, resumed by later runs
//! staging/                        unpacking in progress; never read as an install
//! lock                            one writer at a time
//! ```
//!
//! The cache folder may be a symbolic link (followed); links inside it are refused
//! ([`links`]).
//!
//! Readers never take the lock: every file they read is replaced by an atomic rename,
//! and an install directory appears in `versions/` only once complete. Writers hold
//! the exclusive lock on `lock` for the whole transaction.

mod atomic;
mod bad;
mod gc;
mod links;
mod presence;

pub use atomic::{read_json, sync_dir, write_json_atomic};
pub use bad::BadVariants;
pub use gc::collect;
pub use presence::Gap;

use fs_err::{File, OpenOptions};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peft_manifest::index::{INSTALL_INDEX, INSTALL_RECORD};
use peft_manifest::{ChannelMemory, FileIndex};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// `current.json`: the install the UI should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    pub version: String,
    pub variant: String,
    /// The install directory's name under `versions/`.
    pub dir: String,
    /// The previous current install, kept until the new one has proven itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Environment the engine must start with (e.g. a narrowed `CUDA_VISIBLE_DEVICES`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// `pending.json`: an install `update` staged, and the environment it was selected with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub dir: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// `state.json`: what this cache has accepted from each channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// What each channel's manifests established: the serial and clock floors, the
    /// keys announced and retired (the core's [`ChannelMemory`], so that
    /// `peft-release verify --state` reads it the same way).
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelMemory>,
    /// Installs (`<version>-<variant>`) rolled back on this machine, with why; never
    /// chosen again (a newer release is).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected: BTreeMap<String, String>,
}

/// `versions/<dir>/.peft-install.json`: what an install is, and its full index so
/// `verify` can re-check it without the network.
///
/// On disk the index is a file of its own, `.peft-index.json`, written before the
/// record and renamed into `versions/` with it: the record stays a few hundred bytes,
/// so the cached `ensure` reads it at once whatever the bundle's size (inside the
/// record, the 5,800-file index of the 3 GiB bench bundle made it 1.37 MB, and the
/// cached `ensure` took 2.95 ms there against 1.3 ms with the index apart). Records
/// written before carry the index inside; both are read.
///
/// `I` is the index's type: [`FileIndex`], or [`Skipped`] where only the head is
/// wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord<I = FileIndex> {
    pub version: String,
    pub variant: String,
    pub channel: String,
    pub entry: String,
    /// The `ui_compat` range of the release, so `ensure` can answer offline.
    pub ui_compat: String,
    pub archive_sha256: String,
    pub manifest_serial: u64,
    pub installed_at: String,
    /// Never written into the record (see above); read from it when an older
    /// record has it.
    #[serde(
        default,
        skip_serializing,
        bound(deserialize = "I: Deserialize<'de> + Default")
    )]
    pub index: I,
}

impl<I> InstallRecord<I> {
    fn with_index<J>(self, index: J) -> InstallRecord<J> {
        InstallRecord {
            version: self.version,
            variant: self.variant,
            channel: self.channel,
            entry: self.entry,
            ui_compat: self.ui_compat,
            archive_sha256: self.archive_sha256,
            manifest_serial: self.manifest_serial,
            installed_at: self.installed_at,
            index,
        }
    }
}

/// An index read past without being built.
pub type Skipped = serde::de::IgnoredAny;

/// The exclusive writer lock; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl Cache {
    /// Opens (and creates) the cache at `root`; refuses a symbolic link inside it
    /// ([`links`]).
    pub fn open(root: &Path) -> Result<Cache> {
        for sub in links::FOLDERS {
            let p = root.join(sub);
            links::refuse_link(root, &p)?;
            fs_err::create_dir_all(&p).map_err(|e| Error::storage("creating", &p, e))?;
        }
        links::refuse_links(root)?;
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn versions(&self) -> PathBuf {
        self.root.join("versions")
    }
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// The directory name of an install.
    pub fn install_name(version: &str, variant: &str) -> String {
        format!("{version}-{variant}")
    }

    /// Takes the writer lock, waiting up to `timeout` while another instance holds it.
    pub fn lock(&self, timeout: Duration, on_wait: &dyn Fn(Option<&str>)) -> Result<CacheLock> {
        let path = self.root.join("lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::storage("opening", &path, e))?;
        let start = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let owner = read_owner(&path);
                    if !told {
                        on_wait(owner.as_deref());
                        told = true;
                    }
                    if start.elapsed() >= timeout {
                        return Err(Error::Busy {
                            path,
                            waited_s: timeout.as_secs(),
                            owner,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::storage("locking", &path, e));
                }
            }
        }
        // Record who holds it, for the message another instance shows while waiting.
        let _ = file.set_len(0);
        let _ = write!(file, "pid {}", std::process::id());
        self.remove_stale_temporaries();
        Ok(CacheLock { _file: file })
    }

    /// Removes the temporary files of atomic writes (`current.tmp-<pid>`) that a
    /// crashed run left in the cache root. Every atomic write there holds the lock,
    /// so with the lock taken no writer is using one.
    fn remove_stale_temporaries(&self) {
        let Ok(rd) = fs_err::read_dir(&self.root) else {
            return;
        };
        for p in rd.flatten().map(|e| e.path()) {
            let temporary = p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.starts_with("tmp-"));
            if temporary && p.is_file() {
                let _ = fs_err::remove_file(&p);
            }
        }
    }

    /// The current install, if `current.json` exists and names a complete install.
    pub fn current(&self) -> Result<Option<Current>> {
        let cur: Option<Current> = read_json(&self.root.join("current.json"))?;
        Ok(cur.filter(|c| self.versions().join(&c.dir).join(INSTALL_RECORD).is_file()))
    }

    /// Takes the writer lock only if it is free right now.
    pub fn try_lock(&self) -> Result<Option<CacheLock>> {
        match self.lock(Duration::ZERO, &|_| {}) {
            Ok(l) => Ok(Some(l)),
            Err(Error::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The install `update` staged for the next `ensure`, if complete.
    pub fn pending(&self) -> Result<Option<Pending>> {
        let p: Option<Pending> = read_json(&self.root.join("pending.json"))?;
        Ok(p.filter(|p| self.versions().join(&p.dir).join(INSTALL_RECORD).is_file()))
    }

    /// Stages an install for the next `ensure`.
    pub fn set_pending(&self, pending: &Pending, _lock: &CacheLock) -> Result<()> {
        write_json_atomic(&self.root.join("pending.json"), pending)
    }

    /// Forgets the staged install.
    pub fn clear_pending(&self, _lock: &CacheLock) -> Result<()> {
        let p = self.root.join("pending.json");
        match fs_err::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::storage("removing", &p, e)),
        }
    }

    /// Makes `cur` current (atomically).
    pub fn set_current(&self, cur: &Current, _lock: &CacheLock) -> Result<()> {
        write_json_atomic(&self.root.join("current.json"), cur)?;
        crate::failpoint::hit("after-pointer");
        Ok(())
    }

    pub fn state(&self) -> Result<State> {
        Ok(read_json(&self.root.join("state.json"))?.unwrap_or_default())
    }

    pub fn save_state(&self, state: &State, _lock: &CacheLock) -> Result<()> {
        write_json_atomic(&self.root.join("state.json"), state)
    }

    /// The record of the install in `versions/<dir>`, with its index, if it is complete.
    pub fn record(&self, dir: &str) -> Result<Option<InstallRecord>> {
        let dir = self.versions().join(dir);
        let Some(mut rec) =
            read_json::<InstallRecord<Option<FileIndex>>>(&dir.join(INSTALL_RECORD))?
        else {
            return Ok(None);
        };
        let index = match rec.index.take() {
            Some(inside) => inside,
            None => {
                // Written before the record and renamed with it: missing only if
                // removed by hand.
                let path = dir.join(INSTALL_INDEX);
                read_json(&path)?.ok_or_else(|| {
                    Error::storage("reading", &path, std::io::ErrorKind::NotFound.into())
                })?
            }
        };
        Ok(Some(rec.with_index(index)))
    }

    /// [`Cache::record`] without its index.
    pub fn record_head(&self, dir: &str) -> Result<Option<InstallRecord<Skipped>>> {
        read_json(&self.versions().join(dir).join(INSTALL_RECORD))
    }

    /// The files of the install `dir` that are missing or not of their signed size
    /// (no hashing: one `stat` per folder while the folders are unchanged since the
    /// install was last found whole, else one per file; see [`presence`]); empty
    /// when it is whole.
    pub fn gaps(&self, dir: &str, entry: &str) -> Vec<Gap> {
        presence::gaps(&self.root, dir, entry)
    }

    /// Every complete install, by directory name.
    pub fn installs(&self) -> Result<Vec<(String, InstallRecord)>> {
        let dir = self.versions();
        let rd = fs_err::read_dir(&dir).map_err(|e| Error::storage("listing", &dir, e))?;
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(Some(rec)) = self.record(&name) {
                out.push((name, rec));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes staging folders left by interrupted runs (the caller holds the lock).
    pub fn clean_staging(&self) {
        if let Ok(rd) = fs_err::read_dir(self.staging()) {
            for e in rd.flatten() {
                let _ = fs_err::remove_dir_all(e.path());
            }
        }
    }

    /// Total bytes under the cache directory.
    pub fn size(&self) -> u64 {
        dir_size(&self.root)
    }
}

fn read_owner(path: &Path) -> Option<String> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Total bytes of the files under `p`.
/// The suffix of a blob whose download is not finished: `downloads/<sha256>.partial`.
/// The one place that names it; the fetcher, the streaming unpack and `gc` ask here.
const PARTIAL_SUFFIX: &str = ".partial";

/// Where the blob with this SHA-256 (hex) is written while it downloads, under the
/// cache's `downloads/` folder.
pub fn partial_path(downloads: &Path, sha256_hex: &str) -> PathBuf {
    downloads.join(format!("{sha256_hex}{PARTIAL_SUFFIX}"))
}

/// Whether a file name in `downloads/` is an unfinished download.
pub fn is_partial(file_name: &str) -> bool {
    file_name.ends_with(PARTIAL_SUFFIX)
}

pub fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = fs_err::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_partial_download_is_named_and_recognised_in_one_place() {
        let downloads = Path::new("/c/downloads");
        let p = super::partial_path(downloads, "ab12");
        assert_eq!(p, Path::new("/c/downloads/ab12.partial"));
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(super::is_partial(name.as_deref().unwrap_or_default()));
        assert!(!super::is_partial("ab12"));
        assert!(!super::is_partial("ab12.partial.tmp"));
    }
    use super::*;

    #[test]
    fn current_is_only_reported_for_a_complete_install() {
        let t = tempfile::tempdir().expect("tempdir");
        let c = Cache::open(t.path()).expect("open");
        let lock = c.lock(Duration::from_secs(1), &|_| {}).expect("lock");
        let cur = Current {
            version: "1.0.0".into(),
            variant: "v".into(),
            dir: "1.0.0-v".into(),
            previous: None,
            env: BTreeMap::new(),
        };
        c.set_current(&cur, &lock).expect("write");
        assert_eq!(c.current().expect("read"), None, "no install dir yet");
        fs_err::create_dir_all(c.versions().join("1.0.0-v")).expect("mkdir");
        fs_err::write(c.versions().join("1.0.0-v").join(INSTALL_RECORD), "{}").expect("write");
        assert_eq!(c.current().expect("read"), Some(cur));
    }

    #[test]
    fn a_second_writer_waits_then_reports_busy_with_the_owner() {
        let t = tempfile::tempdir().expect("tempdir");
        let c = Cache::open(t.path()).expect("open");
        let _held = c.lock(Duration::from_secs(1), &|_| {}).expect("first lock");
        let waited = std::cell::Cell::new(false);
        let err = c
            .lock(Duration::from_millis(300), &|_| waited.set(true))
            .expect_err("second lock is refused");
        assert!(waited.get());
        assert_eq!(err.exit_code(), 7);
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("state.json");
        write_json_atomic(&p, &State::default()).expect("write");
        let mut s = State::default();
        s.channels.insert(
            "stable".into(),
            ChannelMemory {
                serial: 3,
                ..ChannelMemory::default()
            },
        );
        write_json_atomic(&p, &s).expect("write");
        assert_eq!(read_json::<State>(&p).expect("read"), Some(s));
        assert_eq!(fs_err::read_dir(t.path()).expect("ls").count(), 1);
    }

    #[test]
    fn a_state_file_written_before_key_rotation_still_reads() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("state.json");
        fs_err::write(
            &p,
            r#"{"channels":{"stable":{"serial":7,"published_at":"2026-11-01T00:00:00Z"}},"rejected":{"1.0.1-x":"health check failed"}}"#,
        )
        .expect("write");
        let s = read_json::<State>(&p).expect("read").expect("some");
        let stable = &s.channels["stable"];
        assert_eq!(stable.serial, 7);
        assert!(stable.published_at.is_some());
        assert_eq!(stable.signed_by, None);
        assert_eq!(s.rejected.len(), 1);
    }
}
