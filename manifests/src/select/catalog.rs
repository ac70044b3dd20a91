//! A release made from the variant catalogue (`manifests/variants.json`), to judge
//! a machine against every variant the project builds when no repository is at
//! hand (`peft-bootstrap detect` without `--manifest-url`, and the decision-table
//! tests). Its blobs are placeholders: it is for selection only, never installed.

use semver::{Version, VersionReq};
use time::OffsetDateTime;

use crate::model::{IndexRef, Manifest, Release, SCHEMA, Variant};
use crate::variants::VariantCatalog;
use crate::{Blob, Sha256};

/// The release version used for catalogue releases (`0.0.0`).
pub const CATALOG_VERSION: Version = Version::new(0, 0, 0);

/// One release holding every variant of `c`, serving any UI.
pub fn catalog_release(c: &VariantCatalog) -> Release {
    Release {
        version: CATALOG_VERSION,
        ui_compat: VersionReq::STAR,
        notes: Some("the variant catalogue, for judging a machine".into()),
        variants: c
            .variants
            .iter()
            .map(|d| Variant {
                id: d.id.clone(),
                os: d.os,
                arch: d.arch,
                accelerator: d.accelerator,
                requires: d.requires.clone(),
                priority: d.priority,
                entry: "peft_engine/peft_engine".into(),
                probe: d.probe,
                archive: Blob {
                    sha256: Sha256::of(d.id.as_bytes()),
                    size: 1,
                },
                zstd_archive: None,
                index: IndexRef {
                    sha256: Sha256::of(d.id.as_bytes()),
                    size: 1,
                    files: 1,
                    unpacked_size: 1,
                },
                deltas: Vec::new(),
            })
            .collect(),
    }
}

/// A manifest whose only release is [`catalog_release`].
pub fn catalog_manifest(c: &VariantCatalog) -> Manifest {
    Manifest {
        schema: SCHEMA,
        channel: "catalog".into(),
        serial: 1,
        published_at: OffsetDateTime::UNIX_EPOCH,
        expires_at: OffsetDateTime::UNIX_EPOCH + time::Duration::days(1),
        min_bootstrapper: Version::new(0, 0, 0),
        releases: vec![catalog_release(c)],
        bootstrapper: Vec::new(),
        mirrors: Vec::new(),
        keys: Default::default(),
    }
}
