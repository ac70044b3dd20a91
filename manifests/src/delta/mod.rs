//! Deltas between two builds of a variant, and the update planner. Pure.
//!
//! A delta blob is a small container ([`container`]: `PEFTDLT2`, written by
//! `peft-release pack`, read by `peft-bootstrap update`). Every file of the target
//! whose content (SHA-256) the base install already has is reused by reference: it
//! costs no bytes and is not listed. Every other file has one [`DeltaEntry`]: `whole`
//! (the file as a zstd frame), `zstd_patch` (zstd frames, each compressed against a
//! window of the base file as a reference prefix, with long distance matching) or
//! `bsdiff` (a BSDIFF40 patch against the base file, for files small enough to
//! suffix-sort; it wins on recompiled libraries). Each entry carries the target's
//! size and SHA-256, so the bootstrapper verifies every file it writes against the
//! signed index as well.
//!
//! [`plan`] chooses between the offered deltas and the full archive by bytes;
//! [`needs`] says which target files a delta must carry; [`actions`] tells the
//! bootstrapper how to produce every target file, or why the delta cannot.

use std::collections::{HashMap, HashSet};

use semver::Version;

pub mod container;

pub use container::{
    ContainerError, DeltaEntry, DeltaHeader, DeltaKind, Frame, MAGIC, check_entry, patch_frames,
    read_header, write_header,
};

use crate::index::FileEntry;
use crate::model::{Blob, Delta, Variant};
use crate::{FileIndex, Sha256};

/// What to download for an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// A delta from an installed version.
    Delta { from: Version, blob: Blob },
    /// The full archive.
    Full { blob: Blob },
}

impl Plan {
    /// The bytes this plan downloads.
    pub fn bytes(&self) -> u64 {
        match self {
            Plan::Delta { blob, .. } | Plan::Full { blob } => blob.size,
        }
    }
}

/// The cheapest way to get `target` given the versions of the same variant that are
/// installed: the smallest delta whose `from` is installed, unless the full archive
/// is no larger.
pub fn plan(installed: &[Version], target: &Variant) -> Plan {
    let have: HashSet<&Version> = installed.iter().collect();
    let best: Option<&Delta> = target
        .deltas
        .iter()
        .filter(|d| have.contains(&d.from))
        .min_by_key(|d| d.size);
    match best {
        Some(d) if d.size < target.archive_to_fetch().size => Plan::Delta {
            from: d.from.clone(),
            blob: Blob {
                sha256: d.sha256,
                size: d.size,
            },
        },
        _ => Plan::Full {
            blob: target.archive_to_fetch().clone(),
        },
    }
}

/// The target files a delta from `base` must carry: those whose content `base` lacks.
pub fn needs<'t>(base: &FileIndex, target: &'t FileIndex) -> Vec<&'t FileEntry> {
    let have: HashSet<&Sha256> = base.files.iter().map(|f| &f.sha256).collect();
    target
        .files
        .iter()
        .filter(|f| !have.contains(&f.sha256))
        .collect()
}

/// How to produce one target file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Link or copy this base file (same content).
    Reuse(&'a FileEntry),
    /// Decode this delta entry.
    Decode(&'a DeltaEntry),
}

/// Why a delta cannot produce a target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("the delta is from {found}, the installed base is {expected}")]
    WrongBase { expected: Version, found: Version },
    #[error("the delta is for {found}, the target is {expected}")]
    WrongTarget { expected: String, found: String },
    #[error("the delta neither carries nor can reuse {0:?}")]
    Missing(String),
    #[error("the delta entry {path:?} disagrees with the signed index")]
    Disagrees { path: String },
    #[error("the patch for {path:?} needs the base file {base:?}, which the base install lacks")]
    NoBaseFile { path: String, base: String },
    #[error("the delta lists {0:?}, which is not in the target")]
    Extra(String),
    #[error("{0}")]
    OutOfBounds(String),
}

/// One action per target file (in the target's order), or why the delta is unusable.
pub fn actions<'a>(
    base: &'a FileIndex,
    target: &'a FileIndex,
    header: &'a DeltaHeader,
) -> Result<Vec<(&'a FileEntry, Action<'a>)>, DeltaError> {
    if header.from != base.version {
        return Err(DeltaError::WrongBase {
            expected: base.version.clone(),
            found: header.from.clone(),
        });
    }
    if header.to != target.version || header.variant != target.variant {
        return Err(DeltaError::WrongTarget {
            expected: format!("{} {}", target.variant, target.version),
            found: format!("{} {}", header.variant, header.to),
        });
    }
    let by_sha: HashMap<&Sha256, &FileEntry> = base.files.iter().map(|f| (&f.sha256, f)).collect();
    let by_path: HashMap<&str, &DeltaEntry> = header
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    for e in &header.entries {
        if target.get(&e.path).is_none() {
            return Err(DeltaError::Extra(e.path.clone()));
        }
        let base_size = match &e.base {
            Some(b) => match base.get(b) {
                Some(f) => Some(f.size),
                None => {
                    return Err(DeltaError::NoBaseFile {
                        path: e.path.clone(),
                        base: b.clone(),
                    });
                }
            },
            None => None,
        };
        check_entry(e, base_size).map_err(|why| DeltaError::OutOfBounds(why.to_string()))?;
    }
    target
        .files
        .iter()
        .map(
            |t| match (by_path.get(t.path.as_str()), by_sha.get(&t.sha256)) {
                (Some(e), _) if e.sha256 != t.sha256 || e.size != t.size => {
                    Err(DeltaError::Disagrees {
                        path: t.path.clone(),
                    })
                }
                (Some(e), _) => Ok((t, Action::Decode(e))),
                (None, Some(b)) => Ok((t, Action::Reuse(b))),
                (None, None) => Err(DeltaError::Missing(t.path.clone())),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::sample::variant;
    use crate::{Accelerator, Arch, Os};

    fn entry(path: &str, content: u8, size: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            mode: 0o644,
            sha256: Sha256::of(&[content]),
        }
    }

    fn index(version: &str, mut files: Vec<FileEntry>) -> FileIndex {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        FileIndex {
            schema: 1,
            version: version.parse().expect("v"),
            variant: "v".into(),
            files,
        }
    }

    /// What `peft-release` writes: an entry for each needed file, patched against the
    /// base file of the same path when there is one.
    fn make_delta(base: &FileIndex, target: &FileIndex) -> DeltaHeader {
        let entries = needs(base, target)
            .into_iter()
            .map(|f| {
                let patched = base.get(&f.path).filter(|_| f.size > 0);
                DeltaEntry {
                    path: f.path.clone(),
                    kind: if patched.is_some() {
                        DeltaKind::ZstdPatch
                    } else {
                        DeltaKind::Whole
                    },
                    base: patched.map(|b| b.path.clone()),
                    offset: 0,
                    len: 1,
                    size: f.size,
                    sha256: f.sha256,
                    frames: match patched {
                        Some(b) => {
                            let mut frames = patch_frames(b.size, f.size);
                            frames[0].len = 1;
                            frames
                        }
                        None => vec![],
                    },
                }
            })
            .collect();
        DeltaHeader {
            schema: 1,
            variant: "v".into(),
            from: base.version.clone(),
            to: target.version.clone(),
            entries,
        }
    }

    fn arb_files() -> impl Strategy<Value = Vec<FileEntry>> {
        // Same content, same size: a digest names one size.
        prop::collection::vec(("[a-e]/[a-e]{1,2}", 0u8..12), 0..25).prop_map(|v| {
            v.into_iter()
                .map(|(p, c)| entry(&p, c, u64::from(c) * 100))
                .collect()
        })
    }

    proptest! {
        /// Applying the actions reproduces the target index exactly.
        #[test]
        fn a_delta_always_reproduces_the_target(base in arb_files(), target in arb_files()) {
            let base = index("1.0.0", base);
            let target = index("1.0.1", target);
            let header = make_delta(&base, &target);
            let acts = actions(&base, &target, &header).expect("a complete delta is usable");
            let produced: Vec<FileEntry> = acts
                .iter()
                .map(|(t, a)| {
                    let (sha, size) = match a {
                        Action::Reuse(b) => (b.sha256, b.size),
                        Action::Decode(e) => (e.sha256, e.size),
                    };
                    FileEntry { path: t.path.clone(), size, mode: t.mode, sha256: sha }
                })
                .collect();
            prop_assert_eq!(produced, target.files.clone());
            // Nothing the base has by content is carried again.
            let have: HashSet<Sha256> = base.files.iter().map(|f| f.sha256).collect();
            prop_assert!(header.entries.iter().all(|e| !have.contains(&e.sha256)));
        }

        /// Dropping any carried entry makes the delta unusable (never a wrong tree).
        #[test]
        fn an_incomplete_delta_is_refused(base in arb_files(), target in arb_files(), pick in any::<prop::sample::Index>()) {
            let base = index("1.0.0", base);
            let target = index("1.0.1", target);
            let mut header = make_delta(&base, &target);
            prop_assume!(!header.entries.is_empty());
            header.entries.remove(pick.index(header.entries.len()));
            prop_assert!(matches!(actions(&base, &target, &header), Err(DeltaError::Missing(_))));
        }

        /// With a zstd archive listed, the plan compares deltas with it and falls back
        /// to it: this bootstrapper never fetches the Deflate archive then.
        #[test]
        fn the_plan_weighs_and_fetches_the_zstd_archive(deflate in 2u64..1_000_000, zstd in 1u64..1_000_000, delta in 1u64..1_000_000) {
            prop_assume!(zstd < deflate);
            let mut v = variant("v", Os::Linux, Arch::X86_64, Accelerator::Cpu, 1);
            v.archive.size = deflate;
            let z = Blob { sha256: Sha256::of(b"zstd"), size: zstd };
            v.zstd_archive = Some(z.clone());
            v.deltas = vec![Delta { from: Version::new(0, 1, 0), sha256: Sha256::of(b"d"), size: delta }];
            match plan(&[Version::new(0, 1, 0)], &v) {
                Plan::Delta { blob, .. } => prop_assert!(blob.size == delta && delta < zstd),
                Plan::Full { blob } => {
                    prop_assert_eq!(blob, z);
                    prop_assert!(delta >= zstd);
                }
            }
        }

        /// The plan never moves more than the full archive, and takes the cheapest delta.
        #[test]
        fn the_plan_is_the_cheapest(full in 1u64..1_000_000, sizes in prop::collection::vec(1u64..2_000_000, 0..5), installed_mask in any::<u8>()) {
            let mut v = variant("v", Os::Linux, Arch::X86_64, Accelerator::Cpu, 1);
            v.archive.size = full;
            v.deltas = sizes.iter().enumerate().map(|(i, s)| Delta {
                from: Version::new(0, i as u64, 0), sha256: Sha256::of(&[i as u8]), size: *s,
            }).collect();
            let installed: Vec<Version> = (0..sizes.len()).filter(|i| installed_mask & (1 << i) != 0).map(|i| Version::new(0, i as u64, 0)).collect();
            let p = plan(&installed, &v);
            prop_assert!(p.bytes() <= full);
            let cheapest = v.deltas.iter().filter(|d| installed.contains(&d.from)).map(|d| d.size).min();
            match (&p, cheapest) {
                (Plan::Delta { blob, from }, Some(c)) => {
                    prop_assert_eq!(blob.size, c);
                    prop_assert!(installed.contains(from));
                }
                (Plan::Full { .. }, Some(c)) => prop_assert!(c >= full),
                (Plan::Full { .. }, None) => {}
                (Plan::Delta { .. }, None) => prop_assert!(false, "a delta from nothing installed"),
            }
        }
    }

    #[test]
    fn mismatches_are_named() {
        let base = index("1.0.0", vec![entry("a", 1, 1)]);
        let target = index("1.0.1", vec![entry("a", 2, 1), entry("b", 1, 1)]);
        let mut h = make_delta(&base, &target);
        assert_eq!(h.entries.len(), 1, "b reuses a's old content");
        h.entries[0].sha256 = Sha256::of(b"x");
        assert!(matches!(
            actions(&base, &target, &h),
            Err(DeltaError::Disagrees { .. })
        ));
        let mut h = make_delta(&base, &target);
        h.from = "0.9.0".parse().expect("v");
        assert!(matches!(
            actions(&base, &target, &h),
            Err(DeltaError::WrongBase { .. })
        ));
        let mut h = make_delta(&base, &target);
        h.entries[0].base = Some("zz".into());
        assert!(matches!(
            actions(&base, &target, &h),
            Err(DeltaError::NoBaseFile { .. })
        ));
    }
}
