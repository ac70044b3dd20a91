//! The `peft-release` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use peft_release::offline::{OfflineArgs, offline};
use peft_release::pack::{PackArgs, pack};
use peft_release::publish::{
    BootstrapperInput, PublishArgs, parse_bootstrapper, parse_duration, publish,
};
use peft_release::{ReleaseError, keys, verify};
use semver::{Version, VersionReq};

/// Release tools for PEFT Studio's backend: keys, bundles, signed channel manifests.
#[derive(Debug, Parser)]
#[command(name = "peft-release", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create DIR/release.key and DIR/release.pub (minisign format).
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Zip a folder, write its index, and record it for the next publish.
    #[command(disable_version_flag = true)]
    Pack {
        #[arg(long, value_name = "REPO")]
        repo: PathBuf,
        /// The folder to ship (e.g. a PyInstaller onedir's parent).
        #[arg(long, value_name = "DIR")]
        input: PathBuf,
        #[arg(long, value_name = "SEMVER")]
        version: Version,
        /// The variant id, from the catalogue.
        #[arg(long, value_name = "ID")]
        variant: String,
        /// The executable's path inside the folder, with '/'.
        #[arg(long, value_name = "REL")]
        entry: String,
        /// A variant catalogue instead of the built-in manifests/variants.json.
        #[arg(long, value_name = "FILE")]
        variants: Option<PathBuf>,
        /// The UI versions this release serves.
        #[arg(long, value_name = "RANGE", default_value = "*")]
        ui_compat: VersionReq,
        /// Release notes.
        #[arg(long)]
        notes: Option<String>,
        /// Make deltas from this many earlier releases of the variant in the repository.
        #[arg(long, value_name = "K", default_value_t = 3)]
        deltas: usize,
    },
    /// Sign and write the channel manifest with everything packed since the last publish.
    Publish {
        #[arg(long, value_name = "REPO")]
        repo: PathBuf,
        #[arg(long, value_name = "C")]
        channel: String,
        /// The secret key (password in PEFT_RELEASE_KEY_PASSWORD if it has one).
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// Days until the manifest expires (or a number with s, m, h, d).
        #[arg(long, value_name = "DAYS", default_value = "30", value_parser = parse_duration)]
        expires_in: std::time::Duration,
        /// The oldest bootstrapper that may read this manifest.
        #[arg(long, value_name = "SEMVER")]
        min_bootstrapper: Option<Version>,
        /// Mirror repository roots, tried in order (replaces the current list).
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
        /// How many releases the manifest keeps.
        #[arg(long, default_value_t = 10)]
        keep: usize,
        /// A peft-bootstrap build to list for self-update (repeatable), e.g.
        /// linux-x86_64=target/release/peft-bootstrap.
        #[arg(long = "bootstrapper", value_name = "OS-ARCH=PATH", value_parser = parse_bootstrapper)]
        bootstrapper: Vec<BootstrapperInput>,
        /// The version of those builds, when they cannot run here to say it.
        #[arg(long, value_name = "SEMVER")]
        bootstrapper_version: Option<Version>,
    },
    /// Make a folder for machines without internet: the channel's signed manifest and
    /// the chosen variants' archives, installable with `peft-bootstrap ensure --offline-dir`.
    Offline {
        #[arg(long, value_name = "REPO")]
        repo: PathBuf,
        #[arg(long, value_name = "C")]
        channel: String,
        /// The folder to write (created; a USB stick or share).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A variant to include (repeatable); all of the channel's when none is named.
        #[arg(long = "variant", value_name = "ID")]
        variants: Vec<String>,
        /// Every kept release of each variant, not only the newest.
        #[arg(long)]
        all_releases: bool,
    },
    /// Check the signature, structure and every blob of a channel.
    Verify {
        #[arg(long, value_name = "REPO")]
        repo: PathBuf,
        #[arg(long, value_name = "C")]
        channel: String,
        #[arg(long, value_name = "PUBFILE")]
        pubkey: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), ReleaseError> {
    match cli.command {
        Command::Keygen { out } => {
            let (sk, pk) = keys::keygen(&out)?;
            eprintln!(
                "wrote {} (keep it secret) and {}",
                sk.display(),
                pk.display()
            );
        }
        Command::Pack {
            repo,
            input,
            version,
            variant,
            entry,
            variants,
            ui_compat,
            notes,
            deltas,
        } => {
            let p = pack(&PackArgs {
                repo,
                input,
                version,
                variant,
                entry,
                variants_file: variants,
                ui_compat,
                notes,
                deltas,
            })?;
            let v = &p.pending.variant;
            eprintln!(
                "packed {} {}: {} files, {} bytes unpacked, archive {} bytes ({}), index {}",
                v.id,
                p.pending.version,
                v.index.files,
                v.index.unpacked_size,
                v.archive.size,
                v.archive.sha256,
                v.index.sha256
            );
            for d in &v.deltas {
                eprintln!(
                    "delta from {}: {} bytes ({:.2}% of the archive)",
                    d.from,
                    d.size,
                    100.0 * d.size as f64 / v.archive.size as f64
                );
            }
            eprintln!("recorded {} for the next publish", p.record.display());
        }
        Command::Publish {
            repo,
            channel,
            key,
            expires_in,
            min_bootstrapper,
            mirrors,
            keep,
            bootstrapper,
            bootstrapper_version,
        } => {
            let mirrors = (!mirrors.is_empty()).then_some(mirrors);
            let m = publish(&PublishArgs {
                repo,
                channel,
                key,
                expires_in,
                min_bootstrapper,
                mirrors,
                keep,
                bootstrapper,
                bootstrapper_version,
            })?;
            let versions: Vec<String> = m.releases.iter().map(|r| r.version.to_string()).collect();
            eprintln!(
                "published {} serial {} ({}), expires {}",
                m.channel,
                m.serial,
                versions.join(", "),
                m.expires_at
            );
        }
        Command::Offline {
            repo,
            channel,
            out,
            variants,
            all_releases,
        } => {
            let r = offline(&OfflineArgs {
                repo,
                channel,
                out: out.clone(),
                variants,
                all_releases,
            })?;
            let installs: Vec<String> = r
                .installs
                .iter()
                .map(|(v, ver)| format!("{v} {ver}"))
                .collect();
            eprintln!(
                "wrote {}: {} serial {}, {} ({} blobs, {} bytes); see its README.txt",
                out.display(),
                r.manifest.channel,
                r.manifest.serial,
                installs.join(", "),
                r.blobs.len(),
                r.bytes
            );
        }
        Command::Verify {
            repo,
            channel,
            pubkey,
        } => {
            let r = verify::verify(&repo, &channel, &pubkey)?;
            eprintln!(
                "ok: {} serial {} signed by {}; {} releases, {} blobs, {} bytes verified",
                r.manifest.channel,
                r.manifest.serial,
                r.signed_by,
                r.manifest.releases.len(),
                r.blobs,
                r.bytes
            );
        }
    }
    Ok(())
}
