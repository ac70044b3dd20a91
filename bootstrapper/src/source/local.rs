//! Copying a blob from a local folder (an offline folder or a `file://` repository)
//! into the `.partial` file, hashing as it goes and never past the signed size.

use fs_err::File;
use std::path::Path;

use peft_manifest::{Blob, CopyError, copy_capped};

use super::Watch;
use super::failure::Failure;
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
    let mut buf = vec![0u8; 1 << 20];
    let copied = copy_capped(&mut input, &mut out, blob.size, &mut buf, |n| {
        watch.grew(n);
        reporter.progress(Phase::Copy, n, blob.size);
    });
    let (got, n) = match copied {
        Ok(done) => done,
        Err(CopyError::Write(e)) => return Err(storage(e)),
        Err(CopyError::Read(e)) => return Err(Failure::Network(e.to_string())),
        Err(e @ CopyError::TooLong { .. }) => {
            let _ = fs_err::remove_file(partial);
            return Err(Failure::Integrity(format!("{}: {e}", src.display())));
        }
    };
    if n != blob.size || got != blob.sha256 {
        let _ = fs_err::remove_file(partial);
        return Err(Failure::Integrity(format!(
            "SHA-256 is {got}, the manifest says {}",
            blob.sha256
        )));
    }
    Ok(())
}
