//! `peft-release pack`: turn a folder (a PyInstaller onedir, or any test folder) into
//! a content-addressed archive and index, and record the release for `publish`.
//!
//! The zip is reproducible: entries sorted by path, one fixed timestamp
//! (1980-01-01, the zip epoch), modes normalised to 0755/0644, no directory entries,
//! Deflate at a fixed level. The same folder always gives the same bytes, so the
//! same digest, so an unchanged variant costs nothing to re-upload.

use fs_err::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, HashMap};

use peft_manifest::{
    Blob, CopyError, Delta, FileEntry, FileIndex, IndexRef, Manifest, Release, Variant,
    VariantCatalog, check_entry_path, copy_capped, validate_index,
};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::error::{ReleaseError, Result};
use crate::layout::{Repo, write_atomic};

/// What `pack` records for `publish`: one variant of one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRelease {
    pub version: Version,
    pub ui_compat: VersionReq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub variant: Variant,
}

impl PendingRelease {
    /// A release holding just this variant.
    pub fn to_release(&self) -> Release {
        Release {
            version: self.version.clone(),
            ui_compat: self.ui_compat.clone(),
            notes: self.notes.clone(),
            variants: vec![self.variant.clone()],
        }
    }
}

/// The inputs of `pack`, also its command line (`peft-release pack --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct PackArgs {
    /// The release repository folder (channels/, blobs/); created by the first pack.
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// The folder to ship (e.g. a PyInstaller onedir's parent).
    #[arg(long, value_name = "DIR")]
    pub input: PathBuf,
    /// The release version (semver, e.g. 1.4.0); one release may have several variants.
    #[arg(long, value_name = "SEMVER")]
    pub version: Version,
    /// The variant id, from the catalogue.
    #[arg(long, value_name = "ID")]
    pub variant: String,
    /// The executable's path inside the folder, with '/'.
    #[arg(long, value_name = "REL")]
    pub entry: String,
    /// A variant catalogue instead of the built-in manifests/variants.json.
    #[arg(long = "variants", value_name = "FILE")]
    pub variants_file: Option<PathBuf>,
    /// The UI versions this release serves.
    #[arg(long, value_name = "RANGE", default_value = "*")]
    pub ui_compat: VersionReq,
    /// Release notes.
    #[arg(long)]
    pub notes: Option<String>,
    /// Make deltas from this many earlier releases of the variant in the repository.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub deltas: usize,
}

/// What `pack` made.
#[derive(Debug, Clone)]
pub struct Packed {
    pub pending: PendingRelease,
    pub record: PathBuf,
}

/// A file found in the input folder.
struct Found {
    rel: String,
    path: PathBuf,
    executable: bool,
}

/// Lists every file under `root` (following symlinks to their content), sorted.
fn walk(root: &Path) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let rd = fs_err::read_dir(&dir).map_err(|e| ReleaseError::io("listing", &dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| ReleaseError::io("listing", &dir, e))?;
            let name = entry.file_name().into_string().map_err(|n| {
                ReleaseError::Usage(format!(
                    "{} has a name that is not UTF-8: {n:?}",
                    dir.display()
                ))
            })?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            let meta = fs_err::metadata(&path)
                .map_err(|e| ReleaseError::io("reading (dangling link?)", &path, e))?;
            if meta.is_dir() {
                stack.push((path, rel));
            } else if meta.is_file() {
                out.push(Found {
                    rel,
                    executable: is_executable(&meta),
                    path,
                });
            } else {
                return Err(ReleaseError::Usage(format!(
                    "{} is neither a file nor a folder",
                    path.display()
                )));
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_m: &std::fs::Metadata) -> bool {
    false
}

/// Packs `args.input` into the repository and records it for the next publish.
pub fn pack(args: &PackArgs) -> Result<Packed> {
    let catalog = match &args.variants_file {
        Some(p) => {
            let bytes = fs_err::read(p).map_err(|e| ReleaseError::io("reading", p, e))?;
            VariantCatalog::from_json(&bytes).map_err(|e| {
                ReleaseError::Usage(format!("{} is not a variant catalogue: {e}", p.display()))
            })?
        }
        None => VariantCatalog::builtin()
            .map_err(|e| ReleaseError::Usage(format!("built-in catalogue: {e}")))?,
    };
    let def = catalog.get(&args.variant).ok_or_else(|| {
        ReleaseError::Usage(format!(
            "unknown variant {:?}; the catalogue has: {}",
            args.variant,
            catalog.ids().join(", ")
        ))
    })?;
    if !args.input.is_dir() {
        return Err(ReleaseError::Usage(format!(
            "the input {} is not a folder",
            args.input.display()
        )));
    }
    let found = walk(&args.input)?;
    if found.is_empty() {
        return Err(ReleaseError::Usage(format!(
            "the input {} has no files",
            args.input.display()
        )));
    }
    let bad: Vec<String> = found
        .iter()
        .filter_map(|f| {
            check_entry_path(&f.rel)
                .err()
                .map(|p| format!("{:?} {p}", f.rel))
        })
        .collect();
    if !bad.is_empty() {
        return Err(ReleaseError::Usage(format!(
            "these paths cannot be shipped: {}",
            bad.join("; ")
        )));
    }
    let repo = Repo::open(&args.repo)?;
    let tmp = repo.temp_path("archive");
    let files = write_zip(&tmp, &found, &args.entry).inspect_err(|_| {
        let _ = fs_err::remove_file(&tmp);
    })?;
    let index = FileIndex {
        schema: peft_manifest::SCHEMA,
        version: args.version.clone(),
        variant: def.id.clone(),
        files,
    };
    // The index's own counts: the checks on paths, order, collisions and the entry are what matter here.
    let index_ref_self = IndexRef {
        sha256: peft_manifest::Sha256([0; 32]),
        size: 1,
        files: index.files.len() as u64,
        unpacked_size: index.unpacked_size(),
    };
    let problems = validate_index(&index, &index_ref_self, &args.entry);
    if !problems.is_empty() {
        let _ = fs_err::remove_file(&tmp);
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ReleaseError::Usage(format!(
            "the bundle cannot be shipped: {}",
            list.join("; ")
        )));
    }
    let archive = repo.adopt(&tmp)?;
    let index_blob: Blob = repo.put_bytes(&index.to_json())?;
    let sources: HashMap<String, PathBuf> = found
        .iter()
        .map(|f| (f.rel.clone(), f.path.clone()))
        .collect();
    let mut deltas = Vec::new();
    for (version, base_variant) in earlier_releases(&repo, &def.id, &args.version)?
        .into_iter()
        .take(args.deltas)
    {
        let base_archive = repo.blob_path(&base_variant.archive.sha256);
        if !base_archive.is_file() {
            continue;
        }
        let base_index = crate::delta::load_index(&repo, &base_variant.index.blob())?;
        let blob = crate::delta::make(
            &repo,
            &crate::delta::Base {
                index: &base_index,
                archive: base_archive,
            },
            &index,
            &sources,
        )?;
        if blob.size < archive.size {
            deltas.push(Delta {
                from: version,
                sha256: blob.sha256,
                size: blob.size,
            });
        }
    }
    let variant = Variant {
        id: def.id.clone(),
        os: def.os,
        arch: def.arch,
        accelerator: def.accelerator,
        requires: def.requires.clone(),
        priority: def.priority,
        entry: args.entry.clone(),
        probe: def.probe,
        archive,
        index: IndexRef {
            sha256: index_blob.sha256,
            size: index_blob.size,
            files: index.files.len() as u64,
            unpacked_size: index.unpacked_size(),
        },
        deltas,
    };
    let pending = PendingRelease {
        version: args.version.clone(),
        ui_compat: args.ui_compat.clone(),
        notes: args.notes.clone(),
        variant,
    };
    let record = repo
        .pending()
        .join(format!("{}+{}.json", args.version, def.id));
    let json =
        serde_json::to_vec_pretty(&pending).map_err(|e| ReleaseError::Usage(e.to_string()))?;
    write_atomic(&record, &json)?;
    Ok(Packed { pending, record })
}

/// Writes the reproducible zip and returns the index entries. Each distinct content
/// is stored once, under its first path (`FileIndex::carriers`); the index lists
/// every path.
fn write_zip(dest: &Path, found: &[Found], entry: &str) -> Result<Vec<FileEntry>> {
    let mut buf = vec![0u8; 1 << 20];
    let mut entries = Vec::with_capacity(found.len());
    for f in found {
        let (sha256, size) = crate::layout::hash_file(&f.path)?;
        let mode = if f.executable || f.rel == entry {
            0o755
        } else {
            0o644
        };
        entries.push(FileEntry {
            path: f.rel.clone(),
            size,
            mode,
            sha256,
        });
    }
    let carriers: std::collections::HashSet<String> = {
        let all = FileIndex {
            schema: 1,
            version: Version::new(0, 0, 0),
            variant: String::new(),
            files: entries.clone(),
        };
        all.carriers().into_iter().map(|f| f.path.clone()).collect()
    };
    let out = File::create(dest).map_err(|e| ReleaseError::io("creating", dest, e))?;
    let mut zip = ZipWriter::new(BufWriter::with_capacity(1 << 20, out));
    let zerr =
        |e: zip::result::ZipError| ReleaseError::io("writing", dest, std::io::Error::other(e));
    for (f, e) in found.iter().zip(&entries) {
        if !carriers.contains(&e.path) {
            continue;
        }
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(DateTime::default())
            .unix_permissions(e.mode)
            .large_file(e.size >= u64::from(u32::MAX) - (1 << 20));
        zip.start_file(e.path.as_str(), options).map_err(zerr)?;
        let mut input =
            File::open(&f.path).map_err(|err| ReleaseError::io("reading", &f.path, err))?;
        let changed = || {
            ReleaseError::Usage(format!(
                "{} changed while it was being packed",
                f.path.display()
            ))
        };
        match copy_capped(&mut input, &mut zip, e.size, &mut buf, |_| {}) {
            Ok((sha, n)) if sha == e.sha256 && n == e.size => {}
            Ok(_) | Err(CopyError::TooLong { .. }) => return Err(changed()),
            Err(CopyError::Read(err)) => return Err(ReleaseError::io("reading", &f.path, err)),
            Err(CopyError::Write(err)) => return Err(ReleaseError::io("writing", dest, err)),
        }
    }
    let out = zip.finish().map_err(zerr)?;
    let file = out
        .into_inner()
        .map_err(|e| ReleaseError::io("writing", dest, e.into_error()))?;
    file.sync_all()
        .map_err(|e| ReleaseError::io("writing", dest, e))?;
    Ok(entries)
}

/// Earlier releases of `variant` in the repository (published on any channel, or
/// pending), newest first.
fn earlier_releases(
    repo: &Repo,
    variant: &str,
    before: &Version,
) -> Result<Vec<(Version, Variant)>> {
    let mut found: BTreeMap<Version, Variant> = BTreeMap::new();
    let channels = repo.root().join("channels");
    for dir in fs_err::read_dir(&channels)
        .map_err(|e| ReleaseError::io("listing", &channels, e))?
        .flatten()
    {
        let p = dir.path().join("manifest.json");
        if let Ok(bytes) = fs_err::read(&p) {
            let m = Manifest::from_json(&bytes)
                .map_err(|e| ReleaseError::Integrity(format!("{}: {e}", p.display())))?;
            for r in m.releases {
                if let Some(v) = r.variants.into_iter().find(|v| v.id == variant) {
                    found.insert(r.version, v);
                }
            }
        }
    }
    let pending = repo.pending();
    for e in fs_err::read_dir(&pending)
        .map_err(|e| ReleaseError::io("listing", &pending, e))?
        .flatten()
    {
        if let Ok(rec) = fs_err::read(e.path())
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<PendingRelease>(&b).map_err(|_| ()))
            && rec.variant.id == variant
        {
            found.insert(rec.version, rec.variant);
        }
    }
    Ok(found
        .into_iter()
        .rev()
        .filter(|(v, _)| v < before)
        .collect())
}
