//! The tests of [`super`]: every invariant broken once, reported where it is.

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
        ("releases[0].variants[0].zstd_archive.size", |m| {
            let mut z = m.releases[0].variants[0].archive.clone();
            z.sha256 = crate::Sha256::of(b"another blob");
            z.size = 0;
            m.releases[0].variants[0].zstd_archive = Some(z)
        }),
        ("releases[0].variants[0].zstd_archive", |m| {
            m.releases[0].variants[0].zstd_archive = Some(m.releases[0].variants[0].archive.clone())
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
        ("keys.next[0]", |m| m.keys.next[0] = "RWQ".into()),
        ("keys.next[1]", |m| m.keys.next.push(m.keys.next[0].clone())),
        ("keys.next[0]", |m| {
            let id = crate::trust::public_key_id(&m.keys.next[0]).expect("id");
            m.keys.retired.push(id)
        }),
        ("keys.retired[1]", |m| {
            m.keys.retired.push(m.keys.retired[0])
        }),
        ("keys.next", |m| {
            m.keys.next = (1..=5).map(crate::sample::key_line).collect()
        }),
        ("keys.retired", |m| {
            m.keys.retired = (1..=33).map(crate::KeyId).collect()
        }),
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

#[test]
fn an_index_whose_sizes_wrap_around_is_refused() {
    // u64::MAX + 2 wraps to 1: in a release build (no overflow checks) the index
    // would have matched a manifest promising 1 unpacked byte.
    let mut big = entry("e/big", 0o644);
    big.size = u64::MAX;
    let mut run = entry("e/run", 0o755);
    run.size = 2;
    let (idx, mut r) = index(vec![big, run]);
    assert_eq!(idx.unpacked_size(), u64::MAX);
    r.unpacked_size = 1;
    let found = validate_index(&idx, &r, "e/run");
    assert!(
        found.iter().any(|p| p.message.contains("past 2^64")),
        "{found:?}"
    );
}

#[test]
fn an_index_must_name_the_release_and_variant_it_is_listed_under() {
    let (idx, r) = index(vec![entry("e/run", 0o755)]);
    let mut v = manifest().releases[0].variants[0].clone();
    v.index = r;
    v.entry = "e/run".into();
    v.id = idx.variant.clone();
    let packed_as = idx.version.clone();
    assert_eq!(validate_index_for(&idx, &packed_as, &v), vec![]);
    let newer: semver::Version = "2.0.0".parse().expect("v");
    let found = validate_index_for(&idx, &newer, &v);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("an old bundle"), "{found:?}");
    v.id = "other-variant".into();
    assert_eq!(validate_index_for(&idx, &packed_as, &v).len(), 1);
}

/// Found by the `index` fuzz target: adding up the sizes of an index whose files
/// total more than `u64::MAX` bytes overflowed (a panic with overflow checks).
/// It is a problem, also when the manifest names the saturated sum.
#[test]
fn an_index_whose_sizes_overflow_u64_is_refused() {
    let mut huge = entry("e/run", 0o755);
    huge.size = u64::MAX;
    let (idx, mut r) = index(vec![huge, entry("e/z.py", 0o644)]);
    assert_eq!(idx.unpacked_size(), u64::MAX, "saturates");
    r.unpacked_size = u64::MAX;
    let problems = validate_index(&idx, &r, "e/run");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.contains("past 2^64"), "{problems:?}");
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
