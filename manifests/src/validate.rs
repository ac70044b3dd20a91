//! Structural checks of manifests and indexes that serde cannot express.
//!
//! [`validate`] and [`validate_index`] return every problem found, each with the
//! place it was found at (`releases[0].variants[2].entry`), so a release engineer
//! fixes them in one go. The bootstrapper runs the same code on what it downloads;
//! `peft-release publish` refuses to sign a manifest with any problem.

use std::collections::HashSet;
use std::fmt;

use crate::index::{FileIndex, INSTALL_RECORD, collisions};
use crate::model::{Accelerator, Manifest, SCHEMA, Variant};
use crate::{IndexRef, check_entry_path};

/// One problem, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where, as a path into the JSON (`releases[1].version`).
    pub at: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

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
    }
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
    if v.index.size == 0 {
        p.add(format!("{at}.index.size"), "is 0");
    }
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
    let total = index.unpacked_size();
    if total != expect.unpacked_size {
        p.add(
            "files",
            format!(
                "add up to {total} bytes, the manifest says {}",
                expect.unpacked_size
            ),
        );
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
    if index.get(INSTALL_RECORD).is_some() {
        p.add(
            "files",
            format!("{INSTALL_RECORD} is reserved for the bootstrapper"),
        );
    }
    p.0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{Accelerator, Manifest};
    use crate::sample::{arb_manifest, manifest};
    use crate::{FileEntry, Sha256};

    fn problems_at(m: &Manifest) -> Vec<String> {
        validate(m).into_iter().map(|p| p.at).collect()
    }

    #[test]
    fn the_sample_is_sound() {
        assert_eq!(validate(&manifest()), vec![]);
    }

    #[test]
    fn each_broken_invariant_is_reported_where_it_is() {
        type Breaker = fn(&mut Manifest);
        let cases: Vec<(&str, Breaker)> = vec![
            ("schema", |m| m.schema = 2),
            ("channel", |m| m.channel = "Stable Channel".into()),
            ("serial", |m| m.serial = 0),
            ("expires_at", |m| m.expires_at = m.published_at),
            ("releases", |m| m.releases.clear()),
            ("releases[1].version", |m| {
                m.releases[1].version = m.releases[0].version.clone()
            }),
            ("releases[0].variants", |m| m.releases[0].variants.clear()),
            ("releases[0].variants[1].id", |m| {
                m.releases[0].variants[1].id = m.releases[0].variants[0].id.clone()
            }),
            ("releases[0].variants[0].id", |m| {
                m.releases[0].variants[0].id = "Linux CPU".into()
            }),
            ("releases[0].variants[0].entry", |m| {
                m.releases[0].variants[0].entry = "../evil".into()
            }),
            ("releases[0].variants[0].archive.size", |m| {
                m.releases[0].variants[0].archive.size = 0
            }),
            ("releases[0].variants[0].index.files", |m| {
                m.releases[0].variants[0].index.files = 0
            }),
            ("releases[0].variants[1].requires.cuda", |m| {
                m.releases[0].variants[1].requires.cuda = None
            }),
            ("releases[0].variants[1].requires.min_driver", |m| {
                m.releases[0].variants[1].requires.min_driver = None
            }),
            ("releases[0].variants[1].requires.compute_capability", |m| {
                if let Some(cc) = m.releases[0].variants[1]
                    .requires
                    .compute_capability
                    .as_mut()
                {
                    std::mem::swap(&mut cc.min, &mut cc.max);
                }
            }),
            ("releases[0].variants[0].deltas[0].from", |m| {
                m.releases[0].variants[0].deltas.push(crate::Delta {
                    from: "9.0.0".parse().expect("v"),
                    sha256: Sha256::of(b"d"),
                    size: 1,
                })
            }),
            ("bootstrapper[1]", |m| {
                let b = m.bootstrapper[0].clone();
                m.bootstrapper.push(b)
            }),
            ("mirrors[0]", |m| m.mirrors[0] = "ftp://example.org/".into()),
        ];
        for (at, breaker) in cases {
            let mut m = manifest();
            breaker(&mut m);
            let found = problems_at(&m);
            assert!(
                found.iter().any(|p| p == at),
                "breaking {at} gave {found:?}"
            );
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let mut m = manifest();
        m.schema = 9;
        m.serial = 0;
        m.releases[0].variants[0].entry = "/abs".into();
        assert!(validate(&m).len() >= 3);
    }

    #[test]
    fn cuda_requirements_are_only_demanded_of_cuda_variants() {
        let mut m = manifest();
        m.releases[0].variants[0].accelerator = Accelerator::Cuda;
        assert!(
            problems_at(&m)
                .iter()
                .any(|p| p.starts_with("releases[0].variants[0].requires"))
        );
    }

    fn entry(path: &str, mode: u32) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 10,
            mode,
            sha256: Sha256::of(path.as_bytes()),
        }
    }

    fn index(files: Vec<FileEntry>) -> (FileIndex, IndexRef) {
        let idx = FileIndex {
            schema: 1,
            version: "1.0.0".parse().expect("v"),
            variant: "x".into(),
            files,
        };
        let r = IndexRef {
            sha256: Sha256::of(b"i"),
            size: 1,
            files: idx.files.len() as u64,
            unpacked_size: idx.unpacked_size(),
        };
        (idx, r)
    }

    #[test]
    fn index_checks() {
        let (good, r) = index(vec![entry("e/run", 0o755), entry("e/z.py", 0o644)]);
        assert_eq!(validate_index(&good, &r, "e/run"), vec![]);
        assert!(
            !validate_index(&good, &r, "e/z.py").is_empty(),
            "entry not executable"
        );
        assert!(
            !validate_index(&good, &r, "e/missing").is_empty(),
            "entry missing"
        );
        let mut wrong_count = r.clone();
        wrong_count.files = 3;
        assert!(!validate_index(&good, &wrong_count, "e/run").is_empty());
        let mut wrong_size = r.clone();
        wrong_size.unpacked_size += 1;
        assert!(!validate_index(&good, &wrong_size, "e/run").is_empty());
        for bad in [
            vec![entry("e/run", 0o755), entry("e/run", 0o755)],
            vec![entry("e/z.py", 0o644), entry("e/run", 0o755)],
            vec![entry("E/RUN", 0o755), entry("e/run", 0o755)],
            vec![entry("e", 0o644), entry("e/run", 0o755)],
            vec![entry("../e/run", 0o755), entry("e/run", 0o755)],
            vec![entry("e/run", 0o4755)],
        ] {
            let (idx, r) = index(bad.clone());
            assert!(!validate_index(&idx, &r, "e/run").is_empty(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_sound_manifests_round_trip_and_validate(m in arb_manifest()) {
            prop_assert_eq!(validate(&m), vec![]);
            let back = Manifest::from_json(&m.to_json()).expect("own output parses");
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.to_json(), m.to_json());
        }

        #[test]
        fn unknown_fields_and_enum_values_do_not_break_parsing(extra in "[a-z]{1,8}") {
            let m = manifest();
            let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).expect("json");
            v[format!("x_{extra}")] = serde_json::json!({"future": true});
            v["releases"][0]["variants"][0]["accelerator"] = serde_json::json!(format!("npu{extra}"));
            let back = Manifest::from_json(&serde_json::to_vec(&v).expect("json")).expect("parses");
            prop_assert_eq!(back.releases[0].variants[0].accelerator, Accelerator::Unknown);
        }
    }
}
