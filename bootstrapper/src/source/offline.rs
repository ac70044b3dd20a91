//! Offline folders: a release repository on a USB stick or a share, made by
//! `peft-release offline` (docs/CONTRACT.md §6), read with `--offline-dir` /
//! `PEFT_OFFLINE_DIR` or found beside the app.
//!
//! The folder holds the channel's signed manifest byte for byte and the blobs of
//! some variants only. Everything is checked as online (signature, serial, size,
//! SHA-256); an expired manifest is accepted with a warning ([`super::accept_signed`]).
//! Selection sees only the variants whose blobs are in the folder: [`Shelf`] is a
//! predicate handed to the pure `select_excluding`; when the build that fits this
//! machine best is not in the folder, the error or warning names the files to fetch.
//!
//! A folder named with `--offline-dir` may be the repository itself or a folder
//! holding it up to two levels below ([`find_bundles`]), such as the stick's root.
//!
//! Discovery ([`discover`]): with neither `--offline-dir` nor `--manifest-url` (nor
//! their variables) set, a folder named [`FOLDER_NAME`] beside the running
//! executable, beside its parent folder, or beside a macOS `.app` bundle holding it
//! is used as the offline folder. An explicit manifest URL always wins, so a
//! stick left in a machine never hides a configured repository.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use peft_manifest::select::Outcome;
use peft_manifest::{Blob, BootstrapperBuild, Manifest, Selection, Variant};

use super::{Repository, Root};
use crate::error::{Error, Reason, Result, human_bytes};
use crate::report::Reporter;

/// The name of an offline folder found by [`discover`].
pub const FOLDER_NAME: &str = "peft-backend-bundles";

/// Where [`discover`] looks, nearest first, for the executable at `exe` (pure).
pub fn candidates(exe: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dir = exe.parent();
    // Beside the binary, beside its folder (e.g. Electron's resources/), and one
    // more level up (e.g. <app>/resources/bin/).
    for _ in 0..3 {
        let Some(d) = dir else { break };
        out.push(d.join(FOLDER_NAME));
        dir = d.parent();
    }
    // A macOS bundle: beside `PEFT Studio.app` (on the disk image or the stick).
    if let Some(app) = exe
        .ancestors()
        .find(|a| a.extension().is_some_and(|e| e == "app"))
        && let Some(parent) = app.parent()
    {
        let p = parent.join(FOLDER_NAME);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Whether `dir` looks like a release repository (it has `channels/`).
pub fn is_repository(dir: &Path) -> bool {
    dir.join("channels").is_dir()
}

/// The offline folder beside the running executable, if there is one.
pub fn discover() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = fs_err::canonicalize(&exe).unwrap_or(exe);
    let found = candidates(&exe).into_iter().find(|d| is_repository(d));
    if let Some(d) = &found {
        tracing::info!(
            "using the offline folder {} found beside the app",
            d.display()
        );
    }
    found
}

/// How deep below a folder named with `--offline-dir` [`find_bundles`] looks.
pub const SEARCH_DEPTH: usize = 2;

/// At most this many entries of one folder are looked at (a stick's root may hold
/// thousands of files).
const MAX_ENTRIES: usize = 4096;

/// The repository a folder picked by a person holds: the folder itself when it is
/// one (it has `channels/`), else a `peft-backend-bundles/` folder, or any folder
/// with `channels/`, up to [`SEARCH_DEPTH`] levels below it (a USB stick's root,
/// or the folder holding the stick's folder), nearest first, a
/// `peft-backend-bundles` before other names, then by name. Hidden folders are
/// skipped. A folder that does not exist or holds none is `not_a_bundle_folder`.
pub fn find_bundles(dir: &Path) -> Result<PathBuf> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let hint = || {
        Some(format!(
            "choose the folder made by `peft-release offline` (named {FOLDER_NAME}), or the drive or folder holding it at most two levels down (--offline-dir, PEFT_OFFLINE_DIR)"
        ))
    };
    if !dir.is_dir() {
        return Err(Error::reasoned(
            Reason::NotABundleFolder,
            format!("the offline folder {} does not exist", dir.display()),
            hint(),
        ));
    }
    if is_repository(&dir) {
        return Ok(dir);
    }
    let mut level = vec![dir.clone()];
    for _ in 0..SEARCH_DEPTH {
        let mut next = Vec::new();
        for parent in &level {
            next.extend(subfolders(parent));
        }
        let mut found: Vec<&PathBuf> = next.iter().filter(|d| is_repository(d)).collect();
        found.sort_by_key(|d| (d.file_name().is_none_or(|n| n != FOLDER_NAME), (*d).clone()));
        if let Some(d) = found.first() {
            tracing::info!(
                "using the offline folder {} found in {}",
                d.display(),
                dir.display()
            );
            return Ok((*d).clone());
        }
        level = next;
    }
    Err(Error::reasoned(
        Reason::NotABundleFolder,
        format!(
            "the folder {} holds no PEFT Studio backend bundles: there is no {FOLDER_NAME} folder (or release repository) in it or up to two levels below",
            dir.display()
        ),
        hint(),
    ))
}

/// The visible subfolders of `dir`, sorted (at most [`MAX_ENTRIES`] entries read).
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .take(MAX_ENTRIES)
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// The blobs an offline folder holds, by hex digest, with their sizes.
#[derive(Debug, Clone)]
pub struct Shelf {
    dir: PathBuf,
    present: HashMap<String, u64>,
}

/// Starts the reason given to `select_excluding` for a variant the folder lacks.
const NOT_HERE: &str = "not in the offline folder";

impl Shelf {
    /// The shelf of the repository `repo` when it is an offline folder; `None`
    /// when not offline.
    pub fn for_repo(repo: &Repository) -> Option<Shelf> {
        match repo {
            Repository::Offline(dir) => Some(Shelf::scan(dir)),
            Repository::Remote(_) | Repository::Unconfigured => None,
        }
    }

    /// Lists `dir/blobs/sha256/`. Sizes only: every byte is hashed when copied.
    pub fn scan(dir: &Path) -> Shelf {
        let mut present = HashMap::new();
        if let Ok(rd) = fs_err::read_dir(dir.join("blobs").join("sha256")) {
            for e in rd.flatten() {
                if let (Some(name), Ok(meta)) = (e.file_name().to_str(), e.metadata())
                    && meta.is_file()
                {
                    present.insert(name.to_string(), meta.len());
                }
            }
        }
        Shelf {
            dir: dir.to_path_buf(),
            present,
        }
    }

    /// A shelf holding exactly `blobs` (for tests).
    #[cfg(test)]
    pub fn of(dir: &Path, blobs: &[Blob]) -> Shelf {
        Shelf {
            dir: dir.to_path_buf(),
            present: blobs.iter().map(|b| (b.sha256.hex(), b.size)).collect(),
        }
    }

    pub fn has(&self, b: &Blob) -> bool {
        self.present.get(&b.sha256.hex()) == Some(&b.size)
    }

    /// The blobs of `v` this folder lacks (of its archives, the one to fetch).
    pub fn lacking(&self, v: &Variant) -> Vec<Blob> {
        [v.archive_to_fetch().clone(), v.index.blob()]
            .into_iter()
            .filter(|b| !self.has(b))
            .collect()
    }

    /// Makes each variant of `m` fetch the archive this folder holds: a folder made
    /// with only the Deflate archive of a variant that also has a zstd one still
    /// installs (the zstd one is then forgotten for this run; both carry the same
    /// signed index).
    pub fn fit(&self, m: &mut Manifest) {
        for v in m.releases.iter_mut().flat_map(|r| r.variants.iter_mut()) {
            if v.zstd_archive.as_ref().is_some_and(|z| !self.has(z)) && self.has(&v.archive) {
                v.zstd_archive = None;
            }
        }
    }

    /// Why `v` cannot be installed from this folder, or `None` when it can: the
    /// predicate for `select_excluding`.
    pub fn missing(&self, v: &Variant) -> Option<String> {
        let lacking = self.lacking(v);
        (!lacking.is_empty()).then(|| format!("{NOT_HERE}: fetch {}", files(&lacking)))
    }

    /// After selecting among the variants present (`out`), given `best`, what
    /// would be chosen if the folder held everything: when nothing present fits,
    /// the error names the build this machine needs and its files; when something
    /// present fits but a better build is missing, a warning says what to fetch.
    pub fn review(
        &self,
        best: Option<&Selection<'_>>,
        out: &Outcome<'_>,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let Some(want) = best else {
            return Ok(());
        };
        let lacking = self.lacking(want.variant);
        if lacking.is_empty() {
            return Ok(());
        }
        let fetch = format!(
            "copy {} from the release repository into {}, or make the folder again with `peft-release offline --variant {}`",
            files(&lacking),
            self.dir.display(),
            want.variant.id
        );
        match &out.selected {
            None => Err(Error::NoVariant {
                message: format!(
                    "the offline folder {} does not hold {} {}, the build for this machine",
                    self.dir.display(),
                    want.variant.id,
                    want.release.version
                ),
                hint: Some(fetch),
            }),
            Some(got) => {
                reporter.warn(format!(
                    "the offline folder does not hold {} {}, the best build for this machine; installing {} {} from it instead. For the better build, {fetch}",
                    want.variant.id, want.release.version, got.variant.id, got.release.version
                ));
                Ok(())
            }
        }
    }
}

/// `blobs/sha256/<hex> (12.3 MB) and ...`
fn files(blobs: &[Blob]) -> String {
    let list: Vec<String> = blobs
        .iter()
        .map(|b| format!("{} ({})", b.path(), human_bytes(b.size)))
        .collect();
    list.join(" and ")
}

/// The error for an offline folder whose manifest needs a newer bootstrapper than
/// this one: where the newer build is, or which file to fetch.
pub fn too_old_offline(root: &Root, build: &BootstrapperBuild, message: String) -> Error {
    let dir = match root {
        Root::Dir(d) => d.clone(),
        Root::Http(u) => PathBuf::from(u.as_str()),
    };
    let blob = Blob {
        sha256: build.sha256,
        size: build.size,
    };
    let path = dir.join(blob.path());
    let hint = if Shelf::scan(&dir).has(&blob) {
        format!(
            "the folder holds peft-bootstrap {} at {}: run `peft-bootstrap self-update --offline-dir {}`, then this command again",
            build.version,
            path.display(),
            dir.display()
        )
    } else {
        format!(
            "copy {} (peft-bootstrap {}, {}) from the release repository into {}, run `peft-bootstrap self-update --offline-dir {}`, then this command again",
            blob.path(),
            build.version,
            human_bytes(build.size),
            dir.display(),
            dir.display()
        )
    };
    Error::reasoned(Reason::Incompatible, message, Some(hint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peft_manifest::Sha256;

    fn variant() -> Variant {
        let (a, i) = (Sha256::of(b"archive"), Sha256::of(b"index"));
        serde_json::from_value(serde_json::json!({
            "id": "linux-x86_64-cpu", "os": "linux", "arch": "x86_64", "accelerator": "cpu",
            "priority": 10, "entry": "peft_engine/peft_engine",
            "archive": {"sha256": a.hex(), "size": 5_000_000},
            "index": {"sha256": i.hex(), "size": 3_000, "files": 3, "unpacked_size": 9_000_000},
        }))
        .expect("a variant")
    }

    #[test]
    fn find_bundles_looks_two_levels_down_nearest_and_named_first() {
        let t = tempfile::tempdir().expect("tempdir");
        let repo = |rel: &str| {
            let d = t.path().join(rel);
            fs_err::create_dir_all(d.join("channels")).expect("mkdir");
            d
        };
        let root = t.path();
        let deep = repo("a/b/peft-backend-bundles");
        let e = find_bundles(root).expect_err("three levels down is too deep");
        assert_eq!(e.reason(), Reason::NotABundleFolder);
        assert!(e.to_string().contains(&root.display().to_string()), "{e}");
        let two = repo("a/peft-backend-bundles");
        assert_eq!(find_bundles(root).expect("two levels"), two);
        let other = repo("aaa-repo");
        assert_eq!(find_bundles(root).expect("nearest"), other);
        let named = repo("peft-backend-bundles");
        assert_eq!(find_bundles(root).expect("named first"), named);
        repo(".hidden-repo");
        assert_eq!(find_bundles(root).expect("hidden skipped"), named);
        assert_eq!(find_bundles(&deep).expect("itself"), deep);
        let gone = find_bundles(&root.join("gone")).expect_err("missing");
        assert_eq!(gone.reason(), Reason::NotABundleFolder);
    }

    #[test]
    fn candidates_are_beside_the_binary_and_the_app() {
        let c = candidates(Path::new(
            "/Volumes/PEFT/PEFT Studio.app/Contents/MacOS/peft-bootstrap",
        ));
        assert_eq!(
            c.first(),
            Some(&PathBuf::from(
                "/Volumes/PEFT/PEFT Studio.app/Contents/MacOS/peft-backend-bundles"
            ))
        );
        assert!(c.contains(&PathBuf::from("/Volumes/PEFT/peft-backend-bundles")));
        let c = candidates(Path::new("/opt/PEFT Studio/resources/bin/peft-bootstrap"));
        assert_eq!(
            c,
            vec![
                PathBuf::from("/opt/PEFT Studio/resources/bin/peft-backend-bundles"),
                PathBuf::from("/opt/PEFT Studio/resources/peft-backend-bundles"),
                PathBuf::from("/opt/PEFT Studio/peft-backend-bundles"),
            ]
        );
    }

    #[test]
    fn a_variant_is_missing_until_both_its_blobs_are_present() {
        let v = &variant();
        let dir = Path::new("/stick");
        let none = Shelf::of(dir, &[]);
        let why = none.missing(v).expect("missing");
        assert!(why.starts_with(NOT_HERE), "{why}");
        assert!(why.contains(&v.archive.path()) && why.contains(&v.index.blob().path()));
        let half = Shelf::of(dir, std::slice::from_ref(&v.archive));
        let why = half.missing(v).expect("index missing");
        assert!(!why.contains(&v.archive.path()), "{why}");
        let wrong_size = Blob {
            size: v.index.size + 1,
            ..v.index.blob()
        };
        assert!(
            Shelf::of(dir, &[v.archive.clone(), wrong_size])
                .missing(v)
                .is_some()
        );
        assert!(
            Shelf::of(dir, &[v.archive.clone(), v.index.blob()])
                .missing(v)
                .is_none()
        );
    }
}
