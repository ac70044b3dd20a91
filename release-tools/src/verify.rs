//! `peft-release verify`: check a repository as a bootstrapper would, all at once.
//!
//! The manifest goes through the bootstrapper's own acceptance
//! (`peft_manifest::accept`: signature, parse, schema, structure, channel, expiry),
//! and for every variant: the archive and index blobs (present, size, SHA-256), the
//! index's soundness, and that the zip's entries are exactly the index's files.

use std::collections::BTreeMap;
use std::path::Path;

use peft_manifest::accept::{judge, open};
use peft_manifest::{FileIndex, Manifest, Policy, Refusal, TrustedKeys, validate_index};
use time::OffsetDateTime;

use crate::error::{ReleaseError, Result};
use crate::layout::{Repo, hash_file};

/// What a sound repository holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub manifest: Manifest,
    pub signed_by: String,
    pub blobs: usize,
    pub bytes: u64,
}

/// Verifies the channel of the repository at `root` against `pubkey`.
pub fn verify(root: &Path, channel: &str, pubkey: &Path) -> Result<Report> {
    let repo = Repo::open(root)?;
    let key_text =
        fs_err::read_to_string(pubkey).map_err(|e| ReleaseError::io("reading", pubkey, e))?;
    let keys = TrustedKeys::from_text(&key_text)
        .map_err(|e| ReleaseError::Key(format!("{}: {e}", pubkey.display())))?;
    let path = repo.manifest_path(channel);
    let bytes = fs_err::read(&path).map_err(|e| ReleaseError::io("reading", &path, e))?;
    let sig_path = path.with_extension("json.minisig");
    let sig =
        fs_err::read_to_string(&sig_path).map_err(|e| ReleaseError::io("reading", &sig_path, e))?;
    // The bootstrapper's own checks (`peft_manifest::accept`), every problem at once;
    // no serial has been seen and the folder is judged as online.
    let (m, verified) = open(&bytes, &sig, &keys)
        .map_err(|e| ReleaseError::Integrity(format!("{}: {e}", path.display())))?;
    let policy = Policy {
        channel,
        keys: &keys,
        offline: false,
        highest_serial: 0,
        now: OffsetDateTime::now_utc(),
    };
    let mut problems: Vec<String> = Vec::new();
    for r in judge(&m, &policy) {
        match r {
            Refusal::Malformed(list) => problems.extend(list.iter().map(ToString::to_string)),
            other => problems.push(other.to_string()),
        }
    }
    let mut blobs = BTreeMap::new();
    for r in &m.releases {
        for v in &r.variants {
            let at = format!("{} {}", v.id, r.version);
            blobs.insert(v.archive.sha256, (v.archive.size, format!("{at} archive")));
            blobs.insert(v.index.sha256, (v.index.size, format!("{at} index")));
            for d in &v.deltas {
                blobs.insert(d.sha256, (d.size, format!("{at} delta from {}", d.from)));
            }
            match repo.read_blob(&v.index.blob()) {
                Err(e) => problems.push(format!("{at} index: {e}")),
                Ok(b) => match FileIndex::from_json(&b) {
                    Err(e) => problems.push(format!("{at} index: not an index: {e}")),
                    Ok(idx) => {
                        problems.extend(
                            validate_index(&idx, &v.index, &v.entry)
                                .iter()
                                .map(|p| format!("{at} index {p}")),
                        );
                        if let Some(p) = zip_mismatch(&repo.blob_path(&v.archive.sha256), &idx) {
                            problems.push(format!("{at} archive: {p}"));
                        }
                    }
                },
            }
        }
    }
    let mut bytes_total = 0;
    for (sha, (size, what)) in &blobs {
        let p = repo.blob_path(sha);
        match hash_file(&p) {
            Ok((got, n)) if got == *sha && n == *size => bytes_total += n,
            Ok((got, n)) => problems.push(format!(
                "{what}: {} has {n} bytes and SHA-256 {got}",
                p.display()
            )),
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(ReleaseError::Integrity(format!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        )));
    }
    Ok(Report {
        manifest: m,
        signed_by: verified.key,
        blobs: blobs.len(),
        bytes: bytes_total,
    })
}

/// Whether the zip's entries differ from the files the index says it carries
/// (names and sizes; see `FileIndex::carriers`).
fn zip_mismatch(archive: &Path, idx: &FileIndex) -> Option<String> {
    let file = fs_err::File::open(archive).ok()?;
    let mut zip = match zip::ZipArchive::new(file) {
        Ok(z) => z,
        Err(e) => return Some(format!("not a zip: {e}")),
    };
    let mut in_zip: Vec<(String, u64)> = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        match zip.by_index_raw(i) {
            Ok(e) => in_zip.push((String::from_utf8_lossy(e.name_raw()).into_owned(), e.size())),
            Err(e) => return Some(format!("entry {i}: {e}")),
        }
    }
    in_zip.sort();
    let want: Vec<(String, u64)> = idx
        .carriers()
        .into_iter()
        .map(|f| (f.path.clone(), f.size))
        .collect();
    (in_zip != want).then(|| {
        format!(
            "its {} entries are not the {} files the index says it carries",
            in_zip.len(),
            want.len()
        )
    })
}
