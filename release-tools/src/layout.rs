//! The release repository on disk (docs/CONTRACT.md §2) and the writes that keep it
//! consistent for readers: blobs are written under a temporary name and renamed into
//! `blobs/sha256/<hex>`; the channel manifest is written last.

use fs_err::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use peft_manifest::{Blob, Sha256};

use crate::error::{ReleaseError, Result};

/// A release repository folder.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

impl Repo {
    /// Opens (creating the folders of) the repository at `root`.
    pub fn open(root: &Path) -> Result<Repo> {
        for sub in ["blobs/sha256", "channels", ".pending"] {
            let p = root.join(sub);
            fs_err::create_dir_all(&p).map_err(|e| ReleaseError::io("creating", &p, e))?;
        }
        Ok(Repo {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where release records wait for the next `publish`.
    pub fn pending(&self) -> PathBuf {
        self.root.join(".pending")
    }

    pub fn blob_path(&self, sha256: &Sha256) -> PathBuf {
        self.root.join("blobs").join("sha256").join(sha256.hex())
    }

    pub fn manifest_path(&self, channel: &str) -> PathBuf {
        self.root
            .join("channels")
            .join(channel)
            .join("manifest.json")
    }

    /// A temporary path inside the repository, on the blobs' file system.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(format!(".tmp-{what}-{}", std::process::id()))
    }

    /// Stores `bytes` as a blob and returns its reference.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Blob> {
        let tmp = self.temp_path("bytes");
        write_synced(&tmp, bytes)?;
        self.adopt(&tmp)
    }

    /// Moves the file at `tmp` into the blob store under its digest.
    pub fn adopt(&self, tmp: &Path) -> Result<Blob> {
        let (sha256, size) = hash_file(tmp)?;
        let dest = self.blob_path(&sha256);
        if dest.is_file() {
            fs_err::remove_file(tmp).map_err(|e| ReleaseError::io("removing", tmp, e))?;
        } else {
            fs_err::rename(tmp, &dest).map_err(|e| ReleaseError::io("renaming", &dest, e))?;
        }
        Ok(Blob { sha256, size })
    }

    /// Reads a blob, checking its digest and size.
    pub fn read_blob(&self, blob: &Blob) -> Result<Vec<u8>> {
        let p = self.blob_path(&blob.sha256);
        let bytes = fs_err::read(&p).map_err(|e| ReleaseError::io("reading", &p, e))?;
        if bytes.len() as u64 != blob.size || Sha256::of(&bytes) != blob.sha256 {
            return Err(ReleaseError::Integrity(format!(
                "{} does not match its name or size",
                p.display()
            )));
        }
        Ok(bytes)
    }
}

/// Writes `bytes` to `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| ReleaseError::io("creating", path, e))?;
    f.write_all(bytes)
        .map_err(|e| ReleaseError::io("writing", path, e))?;
    f.sync_all()
        .map_err(|e| ReleaseError::io("writing", path, e))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    write_synced(&tmp, bytes)?;
    fs_err::rename(&tmp, path).map_err(|e| ReleaseError::io("renaming", path, e))
}

/// The digest and size of a file.
pub fn hash_file(path: &Path) -> Result<(Sha256, u64)> {
    let file = File::open(path).map_err(|e| ReleaseError::io("opening", path, e))?;
    Sha256::of_reader(file).map_err(|e| ReleaseError::io("reading", path, e))
}
