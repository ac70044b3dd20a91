//! Structural checks of manifests and indexes that serde cannot express.
//!
//! [`validate`] and [`validate_index`] return every problem found, each with the
//! place it was found at (`releases[0].variants[2].entry`), so a release engineer
//! fixes them in one go. The bootstrapper runs the same code on what it downloads;
//! `peft-release publish` refuses to sign a manifest with any problem.

use std::collections::HashSet;

use semver::Version;

use crate::index::{FileIndex, RESERVED, collisions};
use crate::limits::{MAX_NEXT_KEYS, MAX_RETIRED_KEYS};
use crate::model::{Accelerator, KeyRotation, Manifest, SCHEMA, Variant};
use crate::trust::public_key_id;
use crate::{IndexRef, check_entry_path};

pub use crate::problem::Problem;

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            at: at.into(),
            message: message.into(),
        });
    }
}

/// Whether `s` is a usable identifier: channel names and variant ids.
fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// Every structural problem of `m`; empty when it is sound.
pub fn validate(m: &Manifest) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if m.schema != SCHEMA {
        p.add(
            "schema",
            format!("is {}, this code reads schema {SCHEMA}", m.schema),
        );
    }
    if !is_ident(&m.channel) {
        p.add(
            "channel",
            format!(
                "{:?} is not a channel name (a-z, 0-9, '.', '_', '-')",
                m.channel
            ),
        );
    }
    if m.serial == 0 {
        p.add("serial", "must be at least 1");
    }
    if m.expires_at <= m.published_at {
        p.add("expires_at", "must be later than published_at");
    }
    if m.releases.is_empty() {
        p.add("releases", "is empty: a channel needs at least one release");
    }
    let mut versions = HashSet::new();
    for (ri, r) in m.releases.iter().enumerate() {
        let at = format!("releases[{ri}]");
        if !versions.insert(&r.version) {
            p.add(
                format!("{at}.version"),
                format!("{} appears twice", r.version),
            );
        }
        if r.variants.is_empty() {
            p.add(format!("{at}.variants"), "is empty");
        }
        let mut ids = HashSet::new();
        for (vi, v) in r.variants.iter().enumerate() {
            let vat = format!("{at}.variants[{vi}]");
            if !ids.insert(v.id.as_str()) {
                p.add(
                    format!("{vat}.id"),
                    format!("{:?} appears twice in release {}", v.id, r.version),
                );
            }
            validate_variant(&mut p, &vat, v, &r.version);
        }
    }
    let mut builds = HashSet::new();
    for (bi, b) in m.bootstrapper.iter().enumerate() {
        if !builds.insert((b.os, b.arch)) {
            p.add(
                format!("bootstrapper[{bi}]"),
                format!("a second build for {}-{}", b.os.as_str(), b.arch.as_str()),
            );
        }
        if b.size == 0 {
            p.add(format!("bootstrapper[{bi}].size"), "is 0");
        }
        if b.size > crate::limits::MAX_BLOB {
            p.add(
                format!("bootstrapper[{bi}].size"),
                format!(
                    "is {} bytes, above the limit of {}",
                    b.size,
                    crate::limits::MAX_BLOB
                ),
            );
        }
    }
    validate_keys(&mut p, &m.keys);
    for (i, u) in m.mirrors.iter().enumerate() {
        if !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with("file://")) {
            p.add(
                format!("mirrors[{i}]"),
                format!("{u:?} is not an https://, http:// or file:// URL"),
            );
        }
    }
    p.0
}

/// Key rotation: every announced key is a minisign public key, none twice, none
/// also retired; within the bounds of [`crate::limits`].
fn validate_keys(p: &mut Problems, keys: &KeyRotation) {
    if keys.next.len() > MAX_NEXT_KEYS {
        p.add(
            "keys.next",
            format!(
                "announces {} keys, above the limit of {MAX_NEXT_KEYS}",
                keys.next.len()
            ),
        );
    }
    if keys.retired.len() > MAX_RETIRED_KEYS {
        p.add(
            "keys.retired",
            format!(
                "retires {} keys, above the limit of {MAX_RETIRED_KEYS}",
                keys.retired.len()
            ),
        );
    }
    let mut seen = HashSet::new();
    for (i, line) in keys.next.iter().enumerate() {
        match public_key_id(line) {
            Err(e) => p.add(format!("keys.next[{i}]"), e.to_string()),
            Ok(id) if !seen.insert(id) => p.add(
                format!("keys.next[{i}]"),
                format!("announces key {id} twice"),
            ),
            Ok(id) if keys.retired.contains(&id) => p.add(
                format!("keys.next[{i}]"),
                format!("announces key {id}, which keys.retired retires"),
            ),
            Ok(_) => {}
        }
    }
    let mut seen = HashSet::new();
    for (i, id) in keys.retired.iter().enumerate() {
        if !seen.insert(id) {
            p.add(
                format!("keys.retired[{i}]"),
                format!("retires key {id} twice"),
            );
        }
    }
}

fn validate_variant(p: &mut Problems, at: &str, v: &Variant, version: &semver::Version) {
    if !is_ident(&v.id) {
        p.add(
            format!("{at}.id"),
            format!("{:?} is not a variant id (a-z, 0-9, '.', '_', '-')", v.id),
        );
    }
    if let Err(e) = check_entry_path(&v.entry) {
        p.add(format!("{at}.entry"), format!("{:?} {e}", v.entry));
    }
    if v.archive.size == 0 {
        p.add(format!("{at}.archive.size"), "is 0");
    }
    if let Some(z) = &v.zstd_archive {
        if z.size == 0 {
            p.add(format!("{at}.zstd_archive.size"), "is 0");
        }
        if z.sha256 == v.archive.sha256 {
            p.add(
                format!("{at}.zstd_archive"),
                "is the same blob as archive: leave it out instead",
            );
        }
    }
    if v.index.size == 0 {
        p.add(format!("{at}.index.size"), "is 0");
    }
    p.0.extend(crate::limits::variant(at, v));
    if v.index.files == 0 {
        p.add(
            format!("{at}.index.files"),
            "is 0: a bundle needs at least its entry",
        );
    }
    let r = &v.requires;
    if v.accelerator == Accelerator::Cuda {
        if r.cuda.is_none() {
            p.add(
                format!("{at}.requires.cuda"),
                "a cuda variant must name its CUDA version",
            );
        }
        if r.min_driver.is_none() {
            p.add(
                format!("{at}.requires.min_driver"),
                "a cuda variant must name its driver floor",
            );
        }
        if r.compute_capability.is_none() {
            p.add(
                format!("{at}.requires.compute_capability"),
                "a cuda variant must name its compute-capability range",
            );
        }
    }
    if let Some(cc) = &r.compute_capability
        && cc.min > cc.max
    {
        p.add(
            format!("{at}.requires.compute_capability"),
            format!("min {} is above max {}", cc.min, cc.max),
        );
    }

    let mut froms = HashSet::new();
    for (di, d) in v.deltas.iter().enumerate() {
        if &d.from >= version {
            p.add(
                format!("{at}.deltas[{di}].from"),
                format!("{} is not older than {version}", d.from),
            );
        }
        if !froms.insert(&d.from) {
            p.add(
                format!("{at}.deltas[{di}].from"),
                format!("a second delta from {}", d.from),
            );
        }
        if d.size == 0 {
            p.add(format!("{at}.deltas[{di}].size"), "is 0");
        }
    }
}

/// Every problem of an index against what the manifest promised about it
/// (`expect`) and the variant's entry. Empty when sound.
pub fn validate_index(index: &FileIndex, expect: &IndexRef, entry: &str) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if index.schema != SCHEMA {
        p.add(
            "schema",
            format!("is {}, this code reads schema {SCHEMA}", index.schema),
        );
    }
    if index.files.len() as u64 != expect.files {
        p.add(
            "files",
            format!(
                "has {} entries, the manifest says {}",
                index.files.len(),
                expect.files
            ),
        );
    }
    let total = index
        .files
        .iter()
        .try_fold(0u64, |total, f| total.checked_add(f.size));
    match total {
        None => p.add("files", "sizes add up past 2^64 bytes"),
        Some(total) if total != expect.unpacked_size => p.add(
            "files",
            format!(
                "add up to {total} bytes, the manifest says {}",
                expect.unpacked_size
            ),
        ),
        Some(_) => {}
    }
    for (i, f) in index.files.iter().enumerate() {
        if let Err(e) = check_entry_path(&f.path) {
            p.add(format!("files[{i}].path"), format!("{:?} {e}", f.path));
        }
        if f.mode & !0o777 != 0 {
            p.add(
                format!("files[{i}].mode"),
                format!("{:o} has bits beyond 0777", f.mode),
            );
        }
        if i > 0 && index.files[i - 1].path.as_str() >= f.path.as_str() {
            p.add(
                format!("files[{i}].path"),
                format!("{:?} is out of order or repeated", f.path),
            );
        }
    }
    for c in collisions(&index.files) {
        p.add(
            "files",
            format!("{c:?} collides with another path when case is ignored or with a directory"),
        );
    }
    match index.get(entry) {
        None => p.add("files", format!("the entry {entry:?} is not in the bundle")),
        Some(e) if !e.is_executable() && !entry.ends_with(".exe") => p.add(
            "files",
            format!("the entry {entry:?} is not executable (mode {:o})", e.mode),
        ),
        Some(_) => {}
    }
    for name in RESERVED.iter().filter(|n| index.get(n).is_some()) {
        p.add("files", format!("{name} is reserved for the bootstrapper"));
    }
    p.0
}

/// [`validate_index`] for the index of `variant` in the release `version`, plus that
/// the index names that version and variant: a manifest announcing a new version
/// with an old bundle's archive and index is refused, because the signed index
/// names the version it was packed as.
pub fn validate_index_for(index: &FileIndex, version: &Version, variant: &Variant) -> Vec<Problem> {
    let mut p = Problems(validate_index(index, &variant.index, &variant.entry));
    if &index.version != version || index.variant != variant.id {
        p.add(
            "version",
            format!(
                "the index describes {} {}, not {} {}: an old bundle announced as a new release",
                index.variant, index.version, variant.id, version
            ),
        );
    }
    p.0
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
