//! Schema 1 of the channel manifest: `channels/<channel>/manifest.json`.
//!
//! The manifest is signed as a whole; everything the bootstrapper downloads besides
//! it is named here by SHA-256 and size ([`Blob`]) and fetched from
//! `blobs/sha256/<hex>` under the repository root or one of its mirrors.
//!
//! Unknown fields are ignored and unknown `os`, `arch` and `accelerator` values parse
//! as `Unknown`, so a newer release repository never breaks an older bootstrapper: it
//! only skips what it does not understand. The JSON Schema is
//! `manifests/manifest.schema.json`; keep the two in step.

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::trust::KeyId;
use crate::{Dotted, Sha256};

/// The schema version this crate reads and writes.
pub const SCHEMA: u32 = 1;

/// A signed channel manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`SCHEMA`] for this crate.
    pub schema: u32,
    /// The channel this manifest was published for (`stable`, `beta`, ...). A
    /// bootstrapper refuses a manifest whose channel is not the one it asked for.
    pub channel: String,
    /// Grows by at least one with every publish; a lower one than already accepted is
    /// a replay and refused.
    pub serial: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// Past this instant the manifest is refused (online), so a frozen mirror cannot
    /// keep users on old releases forever.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The oldest bootstrapper that understands this manifest.
    pub min_bootstrapper: Version,
    /// Recent backend releases, newest first.
    pub releases: Vec<Release>,
    /// Builds of the bootstrapper itself, for self-update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrapper: Vec<BootstrapperBuild>,
    /// Repository roots tried in order when the primary one fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Key rotation: successor keys announced and keys retired (docs/SECURITY.md).
    #[serde(default, skip_serializing_if = "KeyRotation::is_empty")]
    pub keys: KeyRotation,
}

/// Key rotation, announced by a manifest and therefore signed by a key the reader
/// already trusts. A bootstrapper that accepts the manifest remembers it for the
/// channel ([`crate::memory::ChannelMemory`]): it trusts the `next` keys for later
/// manifests, and no longer trusts the `retired` ones, even when they are built in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// Successor keys: minisign public key lines (the base64 line of a `.pub` file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<String>,
    /// The ids of keys that no longer sign this channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<KeyId>,
}

impl KeyRotation {
    pub fn is_empty(&self) -> bool {
        self.next.is_empty() && self.retired.is_empty()
    }
}

/// One backend release and its hardware variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub version: Version,
    /// The UI versions this release can serve, as a semver range (`>=1.0.0, <2.0.0`).
    pub ui_compat: VersionReq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub variants: Vec<Variant>,
}

/// One frozen bundle of a release, for one os/arch/accelerator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// e.g. `linux-x86_64-cuda12.8`; unique within a release.
    pub id: String,
    pub os: Os,
    pub arch: Arch,
    pub accelerator: Accelerator,
    #[serde(default)]
    pub requires: Requirements,
    /// Higher wins among the variants that fit a machine.
    pub priority: i32,
    /// The executable inside the bundle, relative, `/`-separated.
    pub entry: String,
    /// When true, a fresh install runs `entry --probe` and falls back when it fails.
    #[serde(default)]
    pub probe: bool,
    /// The whole bundle as one zip that every bootstrapper this manifest accepts
    /// (`min_bootstrapper` and later) can read: Deflate entries while bootstrappers
    /// older than [`ZSTD_SINCE`] are accepted, zstd entries after that.
    pub archive: Blob,
    /// The same bundle as a zip whose entries are compressed with zstd (method 93):
    /// smaller, and far cheaper to unpack. Bootstrappers from [`ZSTD_SINCE`] on
    /// download it when it is present; older ones ignore the field and take
    /// `archive`. `peft-release publish` drops it (making it the `archive`) once
    /// `min_bootstrapper` reaches [`ZSTD_SINCE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_archive: Option<Blob>,
    /// The per-file index ([`crate::FileIndex`] as JSON).
    pub index: IndexRef,
    /// Patches from earlier versions of the same variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<Delta>,
}

impl Variant {
    /// The archive a bootstrapper of this crate downloads: the zstd one when the
    /// variant has it, else [`Variant::archive`].
    pub fn archive_to_fetch(&self) -> &Blob {
        self.zstd_archive.as_ref().unwrap_or(&self.archive)
    }

    /// Every archive of the variant, the one to fetch first.
    pub fn archives(&self) -> Vec<&Blob> {
        self.labelled_archives()
            .into_iter()
            .map(|(_, b)| b)
            .collect()
    }

    /// Every archive of the variant with how messages name it (`zstd archive`,
    /// `archive`), the one to fetch first.
    pub fn labelled_archives(&self) -> Vec<(&'static str, &Blob)> {
        let mut out = Vec::with_capacity(2);
        if let Some(z) = &self.zstd_archive {
            out.push(("zstd archive", z));
        }
        out.push(("archive", &self.archive));
        out
    }
}

/// The first bootstrapper version that reads zip entries compressed with zstd
/// (method 93). A manifest whose `min_bootstrapper` is below it must keep a Deflate
/// `archive` for the bootstrappers in the field.
pub const ZSTD_SINCE: Version = Version::new(0, 2, 0);

/// What a machine needs for a variant to be usable. Absent fields ask nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    /// The CUDA runtime the build was made with; the driver must support at least it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<Dotted>,
    /// The lowest NVIDIA driver that runs this build on its OS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_driver: Option<Dotted>,
    /// The compute capabilities the build carries kernels for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<CcRange>,
    /// The lowest OS version (macOS 14 for MPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_os_version: Option<Dotted>,
    /// The ROCm version of the build, for `rocm` variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rocm: Option<Dotted>,
    /// CPU features the build needs (`avx2`, `neon`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_features: Vec<String>,
}

/// An inclusive range of CUDA compute capabilities, e.g. `7.5`..=`12.0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CcRange {
    pub min: Dotted,
    pub max: Dotted,
}

/// Downloadable bytes named by content: `blobs/sha256/<sha256>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub sha256: Sha256,
    pub size: u64,
}

impl Blob {
    /// The path of the blob below the repository root.
    pub fn path(&self) -> String {
        blob_path(&self.sha256)
    }
}

/// The blob path of a digest below the repository root.
pub fn blob_path(sha256: &Sha256) -> String {
    format!("blobs/sha256/{}", sha256.hex())
}

/// The per-file index of a bundle, plus what it promises about the unpacked tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRef {
    pub sha256: Sha256,
    pub size: u64,
    /// Number of files in the bundle.
    pub files: u64,
    /// Sum of the files' sizes.
    pub unpacked_size: u64,
}

impl IndexRef {
    pub fn blob(&self) -> Blob {
        Blob {
            sha256: self.sha256,
            size: self.size,
        }
    }
}

/// A patch from an earlier version of the same variant (format in the delta issue).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub from: Version,
    pub sha256: Sha256,
    pub size: u64,
}

/// A build of `peft-bootstrap` itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapperBuild {
    pub os: Os,
    pub arch: Arch,
    pub version: Version,
    pub sha256: Sha256,
    pub size: u64,
}

/// Operating systems, as variant ids spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
    Windows,
    Macos,
    /// A value from a newer schema; never selected.
    #[serde(other)]
    Unknown,
}

/// CPU architectures, as variant ids spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
    #[serde(other)]
    Unknown,
}

/// What runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Cpu,
    Cuda,
    Metal,
    Rocm,
    #[serde(other)]
    Unknown,
}

impl Os {
    /// The OS this code was compiled for.
    pub fn current() -> Os {
        match std::env::consts::OS {
            "linux" => Os::Linux,
            "windows" => Os::Windows,
            "macos" => Os::Macos,
            _ => Os::Unknown,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
            Os::Macos => "macos",
            Os::Unknown => "unknown",
        }
    }
}

impl Arch {
    /// The architecture this code was compiled for.
    pub fn current() -> Arch {
        match std::env::consts::ARCH {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Arm64,
            _ => Arch::Unknown,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
            Arch::Unknown => "unknown",
        }
    }
}

impl Accelerator {
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Cpu => "cpu",
            Accelerator::Cuda => "cuda",
            Accelerator::Metal => "metal",
            Accelerator::Rocm => "rocm",
            Accelerator::Unknown => "unknown",
        }
    }
}

impl Manifest {
    /// Parses manifest JSON. Call only on bytes whose signature was verified.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Pretty JSON with a trailing newline, as `peft-release publish` writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// The release with this version.
    pub fn release(&self, version: &Version) -> Option<&Release> {
        self.releases.iter().find(|r| &r.version == version)
    }
}

impl Release {
    pub fn variant(&self, id: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id == id)
    }
}
