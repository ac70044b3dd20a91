//! `peft-release publish`: fold the packed releases into the channel manifest, sign
//! it, and write it last.
//!
//! The new manifest keeps the channel's earlier releases (newest `keep` of them),
//! adds the pending ones, takes `serial` one above the last, and is refused unless
//! [`peft_manifest::validate`] finds nothing and every blob it names is in the
//! repository with its size. The signature is written before the manifest, each
//! through a temporary file and a rename, so a reader sees either the old pair or,
//! for the instant between the two renames, a pair it refuses and fetches again.
//!
//! `--bootstrapper os-arch=PATH` stores a build of `peft-bootstrap` as a blob and
//! lists it in the manifest's `bootstrapper` (replacing that os/arch's entry), with
//! the version the build prints for `--version` or `--bootstrapper-version`; builds
//! not named carry over from the previous manifest.
//!
//! `--announce-key PUBFILE` and `--retire-key PUBFILE|KEYID` rotate the release key
//! ([`crate::rotation`]; the procedure is in docs/RELEASING.md): the key that signs
//! must be the one that signed the current manifest, or one it announced, and never a
//! retired one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use peft_manifest::trust::public_key_id;
use peft_manifest::{
    Arch, Blob, BootstrapperBuild, KeyId, Manifest, Os, SCHEMA, ZSTD_SINCE, validate,
};
use semver::Version;
use time::OffsetDateTime;

use crate::error::{ReleaseError, Result};
use crate::keys::{load_secret, sign};
use crate::layout::{Repo, write_atomic};
use crate::pack::PendingRelease;
use crate::rotation::{key_ids, key_lines, next_keys};

/// The inputs of `publish`, also its command line (`peft-release publish --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The release repository folder, as pack and publish write it (channels/, blobs/).
    #[arg(long, value_name = "REPO")]
    pub repo: PathBuf,
    /// The channel to publish (e.g. stable, beta).
    #[arg(long, value_name = "C")]
    pub channel: String,
    /// The secret key (password in PEFT_RELEASE_KEY_PASSWORD if it has one).
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// Days until the manifest expires (or a number with s, m, h, d).
    #[arg(long, value_name = "DAYS", default_value = "30", value_parser = parse_duration)]
    pub expires_in: Duration,
    /// The oldest bootstrapper that may read this manifest.
    #[arg(long, value_name = "SEMVER")]
    pub min_bootstrapper: Option<Version>,
    /// Mirror repository roots, tried in order (replaces the current list).
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Option<Vec<String>>,
    /// How many releases the manifest keeps.
    #[arg(long, default_value_t = 10)]
    pub keep: usize,
    /// A peft-bootstrap build to list for self-update (repeatable), e.g.
    /// linux-x86_64=target/release/peft-bootstrap.
    #[arg(long = "bootstrapper", value_name = "OS-ARCH=PATH", value_parser = parse_bootstrapper)]
    pub bootstrapper: Vec<BootstrapperInput>,
    /// The version of those builds, when they cannot run here to say it.
    #[arg(long, value_name = "SEMVER")]
    pub bootstrapper_version: Option<Version>,
    /// Announce a successor release key (a .pub file or its base64 line;
    /// repeatable): bootstrappers that accept this manifest trust it for the channel.
    #[arg(long = "announce-key", value_name = "PUBFILE")]
    pub announce_keys: Vec<String>,
    /// Retire a release key (a .pub file, or its key id as minisign prints it;
    /// repeatable): bootstrappers that accept this manifest refuse the channel's
    /// manifests signed by it, even where it is built in.
    #[arg(long = "retire-key", value_name = "PUBFILE|KEYID")]
    pub retire_keys: Vec<String>,
    /// Sign with a key the current manifest neither is signed by nor announces (only
    /// bootstrappers that trust it already, built in or --trusted-key, accept it).
    #[arg(long)]
    pub allow_unannounced_key: bool,
}

/// A build of `peft-bootstrap` for one os/arch: `--bootstrapper linux-x86_64=PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapperInput {
    pub os: Os,
    pub arch: Arch,
    pub path: PathBuf,
}

/// Parses `--bootstrapper OS-ARCH=PATH` (e.g. `linux-x86_64=target/release/peft-bootstrap`).
pub fn parse_bootstrapper(s: &str) -> Result<BootstrapperInput, String> {
    let usage =
        || format!("{s:?} is not OS-ARCH=PATH, e.g. linux-x86_64=target/release/peft-bootstrap");
    let (platform, path) = s.split_once('=').ok_or_else(usage)?;
    let (os, arch) = platform.split_once('-').ok_or_else(usage)?;
    let word = |w: &str| serde_json::Value::String(w.to_string());
    let os: Os = serde_json::from_value(word(os)).map_err(|_| usage())?;
    let arch: Arch = serde_json::from_value(word(arch)).map_err(|_| usage())?;
    if os == Os::Unknown || arch == Arch::Unknown || path.is_empty() {
        return Err(format!(
            "{s:?}: the platform must be one of linux, windows, macos and x86_64, arm64"
        ));
    }
    Ok(BootstrapperInput {
        os,
        arch,
        path: PathBuf::from(path),
    })
}

/// The version a build reports for `--version` (`peft-bootstrap 1.2.3`).
fn build_version(path: &Path) -> Result<Version> {
    let hint = "pass --bootstrapper-version for a build that cannot run here";
    let out = std::process::Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| {
            ReleaseError::Usage(format!(
                "cannot run {} --version ({e}); {hint}",
                path.display()
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .and_then(|w| Version::parse(w.trim_start_matches('v')).ok())
        .filter(|_| out.status.success())
        .ok_or_else(|| {
            ReleaseError::Usage(format!(
                "{} --version printed {:?}, not a version; {hint}",
                path.display(),
                text.trim()
            ))
        })
}

/// Stores the named builds as blobs and lists them in `m`.
fn list_bootstrappers(repo: &Repo, m: &mut Manifest, args: &PublishArgs) -> Result<()> {
    for b in &args.bootstrapper {
        let version = match &args.bootstrapper_version {
            Some(v) => v.clone(),
            None => build_version(&b.path)?,
        };
        let bytes = fs_err::read(&b.path).map_err(|e| ReleaseError::io("reading", &b.path, e))?;
        let blob = repo.put_bytes(&bytes)?;
        m.bootstrapper.retain(|x| (x.os, x.arch) != (b.os, b.arch));
        m.bootstrapper.push(BootstrapperBuild {
            os: b.os,
            arch: b.arch,
            version,
            sha256: blob.sha256,
            size: blob.size,
        });
    }
    m.bootstrapper
        .sort_by(|a, b| (a.os.as_str(), a.arch.as_str()).cmp(&(b.os.as_str(), b.arch.as_str())));
    Ok(())
}

/// Parses `--expires-in`: a number of days, or a number with `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "d"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 30 or 12h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("the expiry must be in the future".into());
    }
    Ok(Duration::from_secs(secs))
}

fn read_pending(repo: &Repo) -> Result<Vec<(PathBuf, PendingRelease)>> {
    let dir = repo.pending();
    let rd = fs_err::read_dir(&dir).map_err(|e| ReleaseError::io("listing", &dir, e))?;
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let bytes = fs_err::read(&p).map_err(|e| ReleaseError::io("reading", &p, e))?;
            let rec: PendingRelease = serde_json::from_slice(&bytes).map_err(|e| {
                ReleaseError::Usage(format!("{} is not a pending release: {e}", p.display()))
            })?;
            out.push((p, rec));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Once every accepted bootstrapper reads zstd entries (`min_bootstrapper` at
/// [`ZSTD_SINCE`] or later), the zstd archive of each variant becomes its `archive`
/// and the Deflate one is no longer listed (its blob stays in the repository).
fn drop_deflate(m: &mut Manifest) {
    if m.min_bootstrapper < ZSTD_SINCE {
        return;
    }
    for v in m.releases.iter_mut().flat_map(|r| r.variants.iter_mut()) {
        if let Some(z) = v.zstd_archive.take() {
            v.archive = z;
        }
    }
}

/// Why the oldest accepted bootstrapper could not read `archive`: it has zstd
/// entries while `min_bootstrapper` is below [`ZSTD_SINCE`]. `None` when it can (or
/// the blob is missing, which is reported on its own).
pub fn unreadable_by_oldest(repo: &Repo, min: &Version, archive: &Blob) -> Option<String> {
    if *min >= ZSTD_SINCE {
        return None;
    }
    let file = fs_err::File::open(repo.blob_path(&archive.sha256)).ok()?;
    let mut zip = zip::ZipArchive::new(file).ok()?;
    match peft_manifest::archive::has_zstd_entries(&mut zip) {
        Ok(true) => Some(format!(
            "has zstd entries, which bootstrappers before {ZSTD_SINCE} cannot read, \
             but min_bootstrapper is {min}: publish with --min-bootstrapper {ZSTD_SINCE} \
             or pack the variant again with --format both"
        )),
        Ok(false) => None,
        Err(e) => Some(e),
    }
}

/// Folds `pending` into `releases`; a variant already published for a version must
/// be byte-identical (releases are immutable).
fn merge(m: &mut Manifest, pending: &[(PathBuf, PendingRelease)]) -> Result<()> {
    for (_, p) in pending {
        match m.releases.iter_mut().find(|r| r.version == p.version) {
            None => m.releases.push(p.to_release()),
            Some(r) => match r.variants.iter().find(|v| v.id == p.variant.id) {
                // A published variant may since have dropped its Deflate archive
                // (below), so the zstd archive, when there is one, is what names it.
                Some(v) if v.archive_to_fetch() == p.variant.archive_to_fetch() => {}
                Some(_) => {
                    return Err(ReleaseError::Usage(format!(
                        "{} {} is already published with different content; releases are immutable, use a new version",
                        p.variant.id, p.version
                    )));
                }
                None => {
                    r.variants.push(p.variant.clone());
                    r.ui_compat = p.ui_compat.clone();
                }
            },
        }
    }
    m.releases.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(())
}

/// Publishes the channel; returns the new manifest.
pub fn publish(args: &PublishArgs) -> Result<Manifest> {
    let repo = Repo::open(&args.repo)?;
    let (sk, pk) = load_secret(&args.key)?;
    let path = repo.manifest_path(&args.channel);
    let old = match fs_err::read(&path) {
        Ok(bytes) => Some(Manifest::from_json(&bytes).map_err(|e| {
            ReleaseError::Integrity(format!(
                "the current manifest {} cannot be read: {e}",
                path.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ReleaseError::io("reading", &path, e)),
    };
    let signer = public_key_id(&pk.to_base64())
        .map_err(|e| ReleaseError::Key(format!("{}: {e}", args.key.display())))?;
    let old_signer = fs_err::read_to_string(path.with_extension("json.minisig"))
        .ok()
        .and_then(|sig| KeyId::of_signature(&sig));
    let mut announce = Vec::new();
    for a in &args.announce_keys {
        announce.extend(key_lines(a)?);
    }
    let mut retire = Vec::new();
    for r in &args.retire_keys {
        retire.extend(key_ids(r)?);
    }
    let keys = next_keys(
        old.as_ref().map(|o| (&o.keys, old_signer)),
        signer,
        &announce,
        &retire,
        args.allow_unannounced_key,
    )?;
    let pending = read_pending(&repo)?;
    if pending.is_empty() && old.is_none() {
        return Err(ReleaseError::Usage(format!(
            "nothing to publish to {:?}: pack a bundle into {} first",
            args.channel,
            args.repo.display()
        )));
    }
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let mut m = match old {
        Some(o) => Manifest {
            serial: o.serial + 1,
            ..o
        },
        None => Manifest {
            schema: SCHEMA,
            channel: args.channel.clone(),
            serial: 1,
            published_at: now,
            expires_at: now,
            min_bootstrapper: Version::new(0, 1, 0),
            releases: Vec::new(),
            bootstrapper: Vec::new(),
            mirrors: Vec::new(),
            keys: Default::default(),
        },
    };
    m.channel = args.channel.clone();
    m.keys = keys;
    m.published_at = now;
    m.expires_at = now + args.expires_in;
    if let Some(v) = &args.min_bootstrapper {
        m.min_bootstrapper = v.clone();
    }
    if let Some(mirrors) = &args.mirrors {
        m.mirrors = mirrors.clone();
    }
    merge(&mut m, &pending)?;
    drop_deflate(&mut m);
    list_bootstrappers(&repo, &mut m, args)?;
    m.releases.truncate(args.keep.max(1));
    let mut problems: Vec<String> = validate(&m).iter().map(ToString::to_string).collect();
    for r in &m.releases {
        for v in &r.variants {
            let index = v.index.blob();
            let mut blobs = v.labelled_archives();
            blobs.push(("index", &index));
            for (what, blob) in blobs {
                if let Some(p) = missing_blob(&repo, blob) {
                    problems.push(format!("{} {} {what}: {p}", v.id, r.version));
                }
            }
            if let Some(p) = unreadable_by_oldest(&repo, &m.min_bootstrapper, &v.archive) {
                problems.push(format!("{} {} archive: {p}", v.id, r.version));
            }
        }
    }
    for b in &m.bootstrapper {
        let blob = Blob {
            sha256: b.sha256,
            size: b.size,
        };
        if let Some(p) = missing_blob(&repo, &blob) {
            problems.push(format!(
                "peft-bootstrap {} for {}-{}: {p}",
                b.version,
                b.os.as_str(),
                b.arch.as_str()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ReleaseError::Integrity(format!(
            "refusing to sign: {}",
            problems.join("; ")
        )));
    }
    let bytes = m.to_json();
    let comment = format!(
        "timestamp:{} channel:{} serial:{}",
        now.unix_timestamp(),
        m.channel,
        m.serial
    );
    let sig = sign(&sk, &pk, &bytes, &comment)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(|e| ReleaseError::io("creating", dir, e))?;
    write_atomic(&path.with_extension("json.minisig"), sig.as_bytes())?;
    write_atomic(&path, &bytes)?;
    for (p, _) in &pending {
        fs_err::remove_file(p).map_err(|e| ReleaseError::io("removing", p, e))?;
    }
    Ok(m)
}

fn missing_blob(repo: &Repo, blob: &Blob) -> Option<String> {
    let p = repo.blob_path(&blob.sha256);
    match fs_err::metadata(&p) {
        Ok(meta) if meta.len() == blob.size => None,
        Ok(meta) => Some(format!(
            "{} is {} bytes, expected {}",
            p.display(),
            meta.len(),
            blob.size
        )),
        Err(_) => Some(format!("{} is missing", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn bootstrapper_flags() {
        let b = parse_bootstrapper("macos-arm64=dist/peft-bootstrap").expect("ok");
        assert_eq!((b.os, b.arch), (Os::Macos, Arch::Arm64));
        assert_eq!(b.path, PathBuf::from("dist/peft-bootstrap"));
        let b = parse_bootstrapper("windows-x86_64=C:/a=b.exe").expect("ok");
        assert_eq!(b.path, PathBuf::from("C:/a=b.exe"));
        assert!(parse_bootstrapper("linux=x").is_err());
        assert!(parse_bootstrapper("beos-x86_64=x").is_err());
        assert!(parse_bootstrapper("linux-x86_64=").is_err());
        assert!(parse_bootstrapper("linux-x86_64").is_err());
    }
}
