//! `peft-release offline`: a folder for machines without internet (a USB stick, a
//! share) that is itself a release repository (docs/CONTRACT.md §2, §6).
//!
//! It holds the channel's manifest and its `.minisig` copied byte for byte, so it
//! stays signed and `peft-bootstrap ensure --offline-dir` checks it exactly as it
//! checks the network (signature, serial, size, SHA-256). Of the blobs it holds only
//! those of the chosen variants (archive and index of the newest release that has
//! each, or of every kept release with `--all-releases`) and the bootstrapper's own
//! builds (for `self-update --offline-dir`); the manifest may still list other
//! variants, which the bootstrapper then treats as absent. Every blob is hashed
//! while it is copied, so a damaged source repository is refused, and the manifest
//! is written last. A `README.txt` says what the folder is and how to use it.

use fs_err::File;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use peft_manifest::{Blob, ChannelMemory, CopyError, Manifest, copy_capped};

use crate::error::{ReleaseError, Result};
use crate::layout::{Repo, write_atomic};
use crate::rotation::TrustArgs;
use crate::verify::judge_channel;

/// The inputs of `offline`, also its command line (`peft-release offline --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct OfflineArgs {
    /// The release repository folder, as pack and publish write it (channels/, blobs/).
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// The channel whose manifest and archives are copied (e.g. stable).
    #[arg(long, value_name = "C")]
    pub channel: String,
    /// The folder to write (created; a USB stick or share).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A variant to include (repeatable); all of the channel's when none is named.
    #[arg(long = "variant", value_name = "ID")]
    pub variants: Vec<String>,
    /// Every kept release of each variant, not only the newest.
    #[arg(long)]
    pub all_releases: bool,
    /// Leave out the Deflate archive of a variant that also has a zstd one: the
    /// folder is then about a third smaller but needs peft-bootstrap 0.2.0 or later
    /// (older ones read only Deflate archives).
    #[arg(long)]
    pub skip_deflate: bool,
    /// The channel's manifest must be one a bootstrapper trusting these keys
    /// accepts from an offline folder, as `peft-release verify` judges it, or no
    /// folder is made.
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// One blob chosen for the folder, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub blob: Blob,
    pub what: String,
}

/// What `offline` wrote.
#[derive(Debug, Clone)]
pub struct OfflineReport {
    pub manifest: Manifest,
    pub blobs: Vec<Chosen>,
    pub bytes: u64,
    pub installs: Installs,
}

/// `(variant, version)` pairs a folder can install.
pub type Installs = Vec<(String, String)>;

/// The blobs the folder needs (pure): archives and index of each chosen variant
/// (newest release holding it, or all), and every bootstrapper build. A variant's
/// Deflate archive is left out when it has a zstd one and `skip_deflate` is set.
pub fn choose(
    m: &Manifest,
    variants: &[String],
    all_releases: bool,
    skip_deflate: bool,
) -> Result<(Vec<Chosen>, Installs)> {
    let known: Vec<&str> = {
        let mut ids: Vec<&str> = m
            .releases
            .iter()
            .flat_map(|r| r.variants.iter().map(|v| v.id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let unknown: Vec<&String> = variants
        .iter()
        .filter(|v| !known.contains(&v.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(ReleaseError::Usage(format!(
            "the channel {:?} has no variant {}; it has {}",
            m.channel,
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
    let wanted: Vec<&str> = if variants.is_empty() {
        known.clone()
    } else {
        variants.iter().map(String::as_str).collect()
    };
    let mut releases: Vec<_> = m.releases.iter().collect();
    releases.sort_by(|a, b| b.version.cmp(&a.version));
    let mut blobs = BTreeMap::new();
    let mut installs = Vec::new();
    for id in wanted {
        for r in &releases {
            let Some(v) = r.variant(id) else { continue };
            let at = format!("{id} {}", r.version);
            let mut archives = v.labelled_archives();
            if skip_deflate {
                archives.truncate(1);
            }
            for (what, a) in archives {
                blobs
                    .entry(a.sha256)
                    .or_insert_with(|| (a.clone(), format!("{at} {what}")));
            }
            blobs
                .entry(v.index.sha256)
                .or_insert_with(|| (v.index.blob(), format!("{at} index")));
            installs.push((id.to_string(), r.version.to_string()));
            if !all_releases {
                break;
            }
        }
    }
    for b in &m.bootstrapper {
        let blob = Blob {
            sha256: b.sha256,
            size: b.size,
        };
        let what = format!(
            "peft-bootstrap {} for {}-{}",
            b.version,
            b.os.as_str(),
            b.arch.as_str()
        );
        blobs.entry(b.sha256).or_insert((blob, what));
    }
    let chosen = blobs
        .into_values()
        .map(|(blob, what)| Chosen { blob, what })
        .collect();
    Ok((chosen, installs))
}

/// Makes the offline folder.
pub fn offline(args: &OfflineArgs) -> Result<OfflineReport> {
    let src = Repo::open(&args.repo)?;
    let path = src.manifest_path(&args.channel);
    // The folder must hold what the app accepts: the bootstrapper's own judgement,
    // as from an offline folder (an expired manifest passes, with the app's warning).
    let judged = judge_channel(
        &src,
        &args.channel,
        &args.trust.pubkeys,
        &ChannelMemory::default(),
        true,
    )?;
    if !judged.problems.is_empty() {
        return Err(ReleaseError::Integrity(format!(
            "{} would be refused by the app, so no folder was made: {}",
            path.display(),
            judged.problems.join("; ")
        )));
    }
    let (m, bytes, sig) = (judged.manifest, judged.bytes, judged.signature);
    if same_place(&args.repo, &args.out) {
        return Err(ReleaseError::Usage(
            "--out must be another folder than --repo".into(),
        ));
    }
    let (chosen, installs) = choose(&m, &args.variants, args.all_releases, args.skip_deflate)?;
    let out = Repo::open(&args.out)?;
    // Only `channels/` and `blobs/` belong in the folder.
    let _ = fs_err::remove_dir(out.pending());
    let mut bytes_total = 0;
    for c in &chosen {
        copy_blob(&src, &out, &c.blob, &c.what)?;
        bytes_total += c.blob.size;
    }
    let dest = out.manifest_path(&args.channel);
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(|e| ReleaseError::io("creating", dir, e))?;
    write_atomic(&dest.with_extension("json.minisig"), sig.as_bytes())?;
    write_atomic(&dest, &bytes)?;
    let report = OfflineReport {
        manifest: m,
        blobs: chosen,
        bytes: bytes_total,
        installs,
    };
    write_atomic(
        &args.out.join("README.txt"),
        readme(&report, &args.channel).as_bytes(),
    )?;
    Ok(report)
}

fn same_place(a: &Path, b: &Path) -> bool {
    match (fs_err::canonicalize(a), fs_err::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Copies one blob, hashing as it goes; an existing correct copy is kept.
fn copy_blob(src: &Repo, out: &Repo, blob: &Blob, what: &str) -> Result<()> {
    let from = src.blob_path(&blob.sha256);
    let to = out.blob_path(&blob.sha256);
    if fs_err::metadata(&to).is_ok_and(|m| m.len() == blob.size)
        && crate::layout::hash_file(&to).is_ok_and(|(h, n)| h == blob.sha256 && n == blob.size)
    {
        return Ok(());
    }
    let tmp = out.temp_path(&blob.sha256.hex()[..12]);
    let mut input = File::open(&from).map_err(|e| ReleaseError::io("opening", &from, e))?;
    let mut output = BufWriter::with_capacity(
        1 << 20,
        File::create(&tmp).map_err(|e| ReleaseError::io("creating", &tmp, e))?,
    );
    let mut buf = vec![0u8; 1 << 20];
    let copied = copy_capped(&mut input, &mut output, blob.size, &mut buf, |_| {});
    let sound = match copied {
        Ok((got, n)) => got == blob.sha256 && n == blob.size,
        Err(CopyError::Read(e)) => return Err(ReleaseError::io("reading", &from, e)),
        Err(CopyError::Write(e)) => return Err(ReleaseError::io("writing", &tmp, e)),
        Err(CopyError::TooLong { .. }) => false,
    };
    output
        .flush()
        .and_then(|()| output.get_ref().sync_all())
        .map_err(|e| ReleaseError::io("writing", &tmp, e))?;
    drop(output);
    if !sound {
        let _ = fs_err::remove_file(&tmp);
        return Err(ReleaseError::Integrity(format!(
            "{} ({what}) does not match the manifest's size and SHA-256; the repository is damaged",
            from.display()
        )));
    }
    fs_err::rename(&tmp, &to).map_err(|e| ReleaseError::io("renaming", &to, e))
}

/// The folder's `README.txt`.
pub fn readme(r: &OfflineReport, channel: &str) -> String {
    let m = &r.manifest;
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let mut s = format!(
        "PEFT Studio backend: offline folder\n\
         ====================================\n\n\
         This folder is a signed PEFT Studio release repository for machines without\n\
         internet: channel {channel}, serial {}, published {}, expires {}.\n\n\
         It can install:\n",
        m.serial,
        rfc(m.published_at),
        rfc(m.expires_at)
    );
    for (variant, version) in &r.installs {
        s.push_str(&format!("  - {variant} {version}\n"));
    }
    if !m.bootstrapper.is_empty() {
        s.push_str("and holds these peft-bootstrap builds:\n");
        for b in &m.bootstrapper {
            s.push_str(&format!(
                "  - {} for {}-{}\n",
                b.version,
                b.os.as_str(),
                b.arch.as_str()
            ));
        }
    }
    s.push_str(&format!(
        "\nHow to use it\n-------------\n\
         Either name it when installing:\n\n    \
         peft-bootstrap ensure --offline-dir /path/to/this/folder\n    \
         (or set PEFT_OFFLINE_DIR=/path/to/this/folder)\n\n\
         naming this folder itself, or the drive or folder that holds it at most two\n\
         levels up (e.g. the stick's root when this folder is /stick/peft-backend-bundles\n\
         or /stick/<any folder>/peft-backend-bundles); nothing deeper is searched.\n\
         Or keep this folder's name, `peft-backend-bundles`, and put it in the folder\n\
         of the peft-bootstrap program, or one or two folders above it (for the\n\
         packaged app: resources/bin/, resources/, or the app's own folder), or beside\n\
         PEFT Studio.app on a Mac: the app then installs from it by itself.\n\
         No network is used. Everything is checked as if\n\
         downloaded: the manifest's signature, that it is not older than what this\n\
         machine already accepted, and every file's size and SHA-256. A manifest past\n\
         its expiry date is still accepted from an offline folder, with a warning.\n\n\
         If the machine needs a build this folder lacks, the message names the file\n\
         to copy from the release repository into blobs/sha256/. To update the\n\
         bootstrapper itself from here: peft-bootstrap self-update --offline-dir <this folder>.\n\n\
         Do not edit or rename files here: a changed byte makes the install refuse it.\n\
         Channel manifest: channels/{channel}/manifest.json; {} blobs, {} bytes.\n",
        r.blobs.len(),
        r.bytes
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use peft_manifest::Sha256;

    fn manifest() -> Manifest {
        let variant = |id: &str, seed: &str| {
            serde_json::json!({
                "id": id, "os": "linux", "arch": "x86_64", "accelerator": "cpu", "priority": 1,
                "entry": "e/e",
                "archive": {"sha256": Sha256::of(format!("a{seed}").as_bytes()).hex(), "size": 10},
                "index": {"sha256": Sha256::of(format!("i{seed}").as_bytes()).hex(), "size": 2, "files": 1, "unpacked_size": 1},
            })
        };
        serde_json::from_value(serde_json::json!({
            "schema": 1, "channel": "stable", "serial": 3,
            "published_at": "2026-01-01T00:00:00Z", "expires_at": "2026-02-01T00:00:00Z",
            "min_bootstrapper": "0.1.0",
            "releases": [
                {"version": "1.0.0", "ui_compat": "*", "variants": [variant("linux-x86_64-cpu", "1"), variant("linux-x86_64-cuda12.8", "2")]},
                {"version": "1.1.0", "ui_compat": "*", "variants": [variant("linux-x86_64-cpu", "3")]},
            ],
            "bootstrapper": [{"os": "linux", "arch": "x86_64", "version": "0.2.0", "sha256": Sha256::of(b"b").hex(), "size": 5}],
        }))
        .expect("manifest")
    }

    #[test]
    fn newest_release_of_each_chosen_variant_plus_the_bootstrappers() {
        let m = manifest();
        let (c, installs) = choose(&m, &["linux-x86_64-cpu".into()], false, false).expect("ok");
        assert_eq!(
            installs,
            vec![("linux-x86_64-cpu".to_string(), "1.1.0".to_string())]
        );
        let what: Vec<&str> = c.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(c.len(), 3, "{what:?}");
        assert!(what.contains(&"linux-x86_64-cpu 1.1.0 archive"));
        assert!(what.contains(&"peft-bootstrap 0.2.0 for linux-x86_64"));

        let (c, installs) = choose(&m, &[], true, false).expect("ok");
        assert_eq!(installs.len(), 3);
        assert_eq!(c.len(), 7);
        let (_, installs) = choose(&m, &[], false, false).expect("ok");
        assert_eq!(installs.len(), 2);
    }

    #[test]
    fn an_unknown_variant_is_named() {
        let e =
            choose(&manifest(), &["macos-arm64-metal".into()], false, false).expect_err("unknown");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("macos-arm64-metal") && msg.contains("linux-x86_64-cpu"),
            "{msg}"
        );
    }
}
