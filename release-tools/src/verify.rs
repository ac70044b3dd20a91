//! `peft-release verify`: check a repository as a bootstrapper would, all at once.
//!
//! The manifest goes through the bootstrapper's own acceptance
//! (`peft_manifest::accept`: signature by a trusted key, parse, schema, structure,
//! retired keys, channel, serial, expiry), with the keys trusted the way the
//! bootstrapper trusts them (the built-in ones, or `--pubkey`/`--trusted-key`) and,
//! with `--state`, what a given machine remembers of the channel (its `state.json`:
//! announced and retired keys, the serial and clock floors). Then, for every variant:
//! the archive and index blobs (present, size, SHA-256), the index's soundness and
//! that it names the release and variant it is listed under, and that the zip's
//! entries are exactly the index's files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use peft_manifest::accept::{judge, open};
use peft_manifest::{ChannelMemory, FileIndex, Manifest, Policy, Refusal, validate_index_for};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::{ReleaseError, Result};
use crate::layout::{Repo, hash_file};
use crate::rotation::{TrustArgs, trusted_keys};

/// The inputs of `verify`, also its command line (`peft-release verify --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The release repository folder, as pack and publish write it (channels/, blobs/).
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// The channel to check (e.g. stable).
    #[arg(long, value_name = "C")]
    pub channel: String,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// A bootstrapper's state.json: judge with what that machine remembers of the
    /// channel (keys announced and retired, serial and clock floors).
    #[arg(long, value_name = "STATE")]
    pub state: Option<PathBuf>,
}

/// The part of a bootstrapper's `state.json` that acceptance reads.
#[derive(Debug, Default, Deserialize)]
struct State {
    #[serde(default)]
    channels: BTreeMap<String, ChannelMemory>,
}

/// What `state` remembers of `channel` (nothing when no state is given).
fn memory(state: Option<&Path>, channel: &str) -> Result<ChannelMemory> {
    let Some(p) = state else {
        return Ok(ChannelMemory::default());
    };
    let bytes = fs_err::read(p).map_err(|e| ReleaseError::io("reading", p, e))?;
    let s: State = serde_json::from_slice(&bytes).map_err(|e| {
        ReleaseError::Usage(format!(
            "{} is not a peft-bootstrap state.json: {e}",
            p.display()
        ))
    })?;
    Ok(s.channels.get(channel).cloned().unwrap_or_default())
}

/// What a sound repository holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub manifest: Manifest,
    pub signed_by: String,
    pub blobs: usize,
    pub bytes: u64,
}

/// Verifies the channel of the repository as a bootstrapper with `args`' keys and
/// state would.
pub fn verify(args: &VerifyArgs) -> Result<Report> {
    let repo = Repo::open(&args.repo)?;
    let memory = memory(args.state.as_deref(), &args.channel)?;
    let Judged {
        manifest: m,
        signed_by,
        mut problems,
        ..
    } = judge_channel(&repo, &args.channel, &args.trust.pubkeys, &memory, false)?;
    let mut blobs = BTreeMap::new();
    for r in &m.releases {
        for v in &r.variants {
            let at = format!("{} {}", v.id, r.version);
            for (what, a) in v.labelled_archives() {
                blobs.insert(a.sha256, (a.size, format!("{at} {what}")));
            }
            if let Some(p) =
                crate::publish::unreadable_by_oldest(&repo, &m.min_bootstrapper, &v.archive)
            {
                problems.push(format!("{at} archive: {p}"));
            }
            blobs.insert(v.index.sha256, (v.index.size, format!("{at} index")));
            for d in &v.deltas {
                blobs.insert(d.sha256, (d.size, format!("{at} delta from {}", d.from)));
            }
            match repo.read_blob(&v.index.blob()) {
                Err(e) => problems.push(format!("{at} index: {e}")),
                Ok(b) => match FileIndex::from_json(&b) {
                    Err(e) => problems.push(format!("{at} index: not an index: {e}")),
                    Ok(idx) => {
                        problems.extend(
                            validate_index_for(&idx, &r.version, v)
                                .iter()
                                .map(|p| format!("{at} index {p}")),
                        );
                        for (what, a) in v.labelled_archives() {
                            if let Some(p) = zip_mismatch(&repo.blob_path(&a.sha256), &idx) {
                                problems.push(format!("{at} {what}: {p}"));
                            }
                        }
                    }
                },
            }
        }
    }
    let mut bytes_total = 0;
    for (sha, (size, what)) in &blobs {
        let p = repo.blob_path(sha);
        match hash_file(&p) {
            Ok((got, n)) if got == *sha && n == *size => bytes_total += n,
            Ok((got, n)) => problems.push(format!(
                "{what}: {} has {n} bytes and SHA-256 {got}",
                p.display()
            )),
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(ReleaseError::Integrity(format!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        )));
    }
    Ok(Report {
        manifest: m,
        signed_by,
        blobs: blobs.len(),
        bytes: bytes_total,
    })
}

/// A channel manifest as a bootstrapper judged it: signed by `signed_by`, with
/// every problem acceptance found (none: a bootstrapper accepts it).
#[derive(Debug)]
pub struct Judged {
    pub manifest: Manifest,
    pub signed_by: String,
    pub problems: Vec<String>,
    /// The exact bytes judged, and their signature.
    pub bytes: Vec<u8>,
    pub signature: String,
}

/// Runs the bootstrapper's own acceptance (`peft_manifest::accept`) on the manifest
/// of `channel` in `repo`, every problem at once: signed by one of `pubkeys` (the
/// built-in keys when none), with `memory` of the channel, judged as online or as
/// from an offline folder (where an expired manifest is accepted with a warning).
/// A signature that no trusted key makes is an error at once.
pub fn judge_channel(
    repo: &Repo,
    channel: &str,
    pubkeys: &[String],
    memory: &ChannelMemory,
    offline: bool,
) -> Result<Judged> {
    let keys = trusted_keys(pubkeys)?;
    let path = repo.manifest_path(channel);
    let bytes = fs_err::read(&path).map_err(|e| ReleaseError::io("reading", &path, e))?;
    let sig_path = path.with_extension("json.minisig");
    let sig =
        fs_err::read_to_string(&sig_path).map_err(|e| ReleaseError::io("reading", &sig_path, e))?;
    let policy = Policy {
        channel,
        keys: &keys,
        offline,
        memory,
        now: OffsetDateTime::now_utc(),
    };
    let (manifest, verified) = open(&bytes, &sig, &policy.trusted_keys())
        .map_err(|e| ReleaseError::Integrity(format!("{}: {e}", path.display())))?;
    let mut problems = Vec::new();
    for r in judge(&manifest, verified.id, &policy) {
        match r {
            Refusal::Malformed(list) => problems.extend(list.iter().map(ToString::to_string)),
            other => problems.push(other.to_string()),
        }
    }
    Ok(Judged {
        manifest,
        signed_by: verified.key,
        problems,
        bytes,
        signature: sig,
    })
}

/// What a bootstrapper would refuse in the zip's entries, by the core's own rules
/// (`peft_manifest::archive::check_entries`: names, kinds, duplicates, case
/// collisions, exactly the index's carriers with their sizes).
fn zip_mismatch(archive: &Path, idx: &FileIndex) -> Option<String> {
    let file = fs_err::File::open(archive).ok()?;
    match zip::ZipArchive::new(file) {
        Ok(mut zip) => peft_manifest::archive::check_entries(&mut zip, idx).err(),
        Err(e) => Some(format!("not a zip: {e}")),
    }
}
