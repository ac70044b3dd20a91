//! Test fixtures: a small, sound manifest and strategies for property tests.

use proptest::prelude::*;
use semver::{Version, VersionReq};
use time::macros::datetime;

use crate::model::*;
use crate::{Dotted, KeyId, Sha256};

pub fn blob(seed: &str, size: u64) -> Blob {
    Blob {
        sha256: Sha256::of(seed.as_bytes()),
        size,
    }
}

pub fn variant(id: &str, os: Os, arch: Arch, acc: Accelerator, priority: i32) -> Variant {
    let requires = if acc == Accelerator::Cuda {
        Requirements {
            cuda: Some(Dotted::new(&[12, 8])),
            min_driver: Some(Dotted::new(&[550])),
            compute_capability: Some(CcRange {
                min: Dotted::new(&[7, 5]),
                max: Dotted::new(&[12, 0]),
            }),
            ..Requirements::default()
        }
    } else {
        Requirements::default()
    };
    Variant {
        id: id.to_string(),
        os,
        arch,
        accelerator: acc,
        requires,
        priority,
        entry: "peft_engine/peft_engine".into(),
        probe: false,
        archive: blob(&format!("{id}-zip"), 1000),
        zstd_archive: None,
        index: IndexRef {
            sha256: Sha256::of(id.as_bytes()),
            size: 100,
            files: 3,
            unpacked_size: 3000,
        },
        deltas: vec![],
    }
}

pub fn release(version: &str, ui: &str, variants: Vec<Variant>) -> Release {
    Release {
        version: Version::parse(version).expect("test version"),
        ui_compat: VersionReq::parse(ui).expect("test range"),
        notes: None,
        variants,
    }
}

/// A sound manifest with two releases for Linux, Windows and macOS.
pub fn manifest() -> Manifest {
    let vs = |_: &str| {
        vec![
            variant(
                "linux-x86_64-cpu",
                Os::Linux,
                Arch::X86_64,
                Accelerator::Cpu,
                10,
            ),
            variant(
                "linux-x86_64-cuda12.8",
                Os::Linux,
                Arch::X86_64,
                Accelerator::Cuda,
                70,
            ),
            variant(
                "windows-x86_64-cpu",
                Os::Windows,
                Arch::X86_64,
                Accelerator::Cpu,
                10,
            ),
            variant(
                "macos-arm64-metal",
                Os::Macos,
                Arch::Arm64,
                Accelerator::Metal,
                50,
            ),
        ]
    };
    Manifest {
        schema: SCHEMA,
        channel: "stable".into(),
        serial: 7,
        published_at: datetime!(2026-11-01 00:00 UTC),
        expires_at: datetime!(2026-12-01 00:00 UTC),
        min_bootstrapper: Version::new(0, 1, 0),
        releases: vec![
            release("1.3.0", ">=1.0.0, <2.0.0", vs("1.3.0")),
            release("1.2.0", "^1", vs("1.2.0")),
        ],
        bootstrapper: vec![BootstrapperBuild {
            os: Os::Linux,
            arch: Arch::X86_64,
            version: Version::new(0, 2, 0),
            sha256: Sha256::of(b"boot"),
            size: 5,
        }],
        mirrors: vec!["https://mirror.example.org/peft/".into()],
        keys: KeyRotation {
            next: vec![key_line(0xB)],
            retired: vec![KeyId(0xA)],
        },
    }
}

/// A minisign public key line with key id `id` (its key bytes are not a real key:
/// enough for everything but verifying).
pub fn key_line(id: u64) -> String {
    use base64::Engine as _;
    let mut bin = b"Ed".to_vec();
    bin.extend(id.to_le_bytes());
    bin.extend([id as u8; 32]);
    base64::engine::general_purpose::STANDARD.encode(bin)
}

pub fn arb_os() -> impl Strategy<Value = Os> {
    prop_oneof![Just(Os::Linux), Just(Os::Windows), Just(Os::Macos)]
}

pub fn arb_arch() -> impl Strategy<Value = Arch> {
    prop_oneof![Just(Arch::X86_64), Just(Arch::Arm64)]
}

pub fn arb_acc() -> impl Strategy<Value = Accelerator> {
    prop_oneof![
        Just(Accelerator::Cpu),
        Just(Accelerator::Cuda),
        Just(Accelerator::Metal),
        Just(Accelerator::Rocm)
    ]
}

/// Arbitrary (sound) manifests: 1-4 releases, 1-6 variants each.
pub fn arb_manifest() -> impl Strategy<Value = Manifest> {
    let arb_variant = (arb_os(), arb_arch(), arb_acc(), -5i32..100, 8u64..1 << 37);
    let arb_release = (
        0u64..5,
        0u64..20,
        prop::collection::vec(arb_variant, 1..6),
        1u64..3,
    );
    // Key rotation: distinct ids, the first `n` announced and the rest retired.
    let arb_keys = (
        prop::collection::btree_set(any::<u64>(), 0..8),
        0usize..=crate::limits::MAX_NEXT_KEYS,
    );
    (
        prop::collection::vec(arb_release, 1..4),
        1u64..1_000_000,
        arb_keys,
    )
        .prop_map(|(rels, serial, (ids, n))| {
            let mut m = manifest();
            m.serial = serial;
            let ids: Vec<u64> = ids.into_iter().collect();
            let (next, retired) = ids.split_at(n.min(ids.len()));
            m.keys = KeyRotation {
                next: next.iter().copied().map(key_line).collect(),
                retired: retired.iter().copied().map(KeyId).collect(),
            };
            m.releases = rels
                .into_iter()
                .enumerate()
                .map(|(ri, (minor, patch, vars, ui_major))| {
                    let version = format!("{ri}.{minor}.{patch}");
                    let variants = vars
                        .into_iter()
                        .enumerate()
                        .map(|(vi, (os, arch, acc, prio, size))| {
                            let id =
                                format!("{}-{}-{}-{vi}", os.as_str(), arch.as_str(), acc.as_str());
                            let mut v = variant(&id, os, arch, acc, prio);
                            v.archive.size = size;
                            v
                        })
                        .collect();
                    release(&version, &format!("^{ui_major}"), variants)
                })
                .collect();
            m
        })
}
