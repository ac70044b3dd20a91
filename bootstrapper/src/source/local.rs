//! Copying a blob from a local folder (an offline folder or a `file://` repository)
//! into the `.partial` file, hashing as it goes.

use fs_err::File;
use std::io::{Read, Write};
use std::path::Path;

use peft_manifest::{Blob, Sha256Hasher};

use super::Watch;
use super::fetch::Failure;
use crate::error::Error;
use crate::report::{Phase, Reporter};

/// Copies a blob from a local folder (offline folder or `file://` repository),
/// hashing as it goes, with progress for slow media.
pub(super) fn copy_local(
    src: &Path,
    blob: &Blob,
    partial: &Path,
    reporter: &dyn Reporter,
    watch: &dyn Watch,
) -> Result<(), Failure> {
    let mut input = File::open(src).map_err(|e| Failure::Network(e.to_string()))?;
    let len = input
        .metadata()
        .map_err(|e| Failure::Network(e.to_string()))?
        .len();
    if len != blob.size {
        return Err(Failure::Integrity(format!(
            "{} is {len} bytes, the manifest says {}",
            src.display(),
            blob.size
        )));
    }
    let storage = |e| Failure::Fatal(Error::storage("writing", partial, e));
    let mut out = File::create(partial).map_err(storage)?;
    watch.attempt(0);
    let mut h = Sha256Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = input
            .read(&mut buf)
            .map_err(|e| Failure::Network(e.to_string()))?;
        if k == 0 {
            break;
        }
        if n + k as u64 > blob.size {
            break;
        }
        h.update(&buf[..k]);
        out.write_all(&buf[..k]).map_err(storage)?;
        n += k as u64;
        watch.grew(n);
        reporter.progress(Phase::Download, n, blob.size);
    }
    let got = h.finish();
    if n != blob.size || got != blob.sha256 {
        let _ = fs_err::remove_file(partial);
        return Err(Failure::Integrity(format!(
            "SHA-256 is {got}, the manifest says {}",
            blob.sha256
        )));
    }
    Ok(())
}
