//! The `peft-release` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use peft_release::offline::{OfflineArgs, offline};
use peft_release::pack::{PackArgs, pack};
use peft_release::publish::{PublishArgs, publish};
use peft_release::release_config::{self, ReleaseConfigArgs};
use peft_release::verify::VerifyArgs;
use peft_release::{ReleaseError, keys, verify};

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
        /// The folder to write the key pair into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Zip a folder, write its index, and record it for the next publish.
    #[command(disable_version_flag = true)]
    Pack(PackArgs),
    /// Sign and write the channel manifest with everything packed since the last publish.
    Publish(PublishArgs),
    /// Make a folder for machines without internet: the channel's signed manifest and
    /// the chosen variants' archives, installable with `peft-bootstrap ensure --offline-dir`.
    Offline(OfflineArgs),
    /// Check the signature, structure and every blob of a channel, as a bootstrapper would.
    Verify(VerifyArgs),
    /// Write the release.json a built app carries beside peft-bootstrap
    /// (resources/bin/release.json): its repository, channel, mirrors and keys.
    ReleaseConfig(ReleaseConfigArgs),
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
        Command::Pack(args) => {
            let p = pack(&args)?;
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
            let deflated = p
                .archives
                .iter()
                .find(|w| w.method == peft_release::pack::Method::Deflate)
                .map(|w| w.blob.size);
            for w in &p.archives {
                let versus = match (w.method, deflated) {
                    (peft_release::pack::Method::Zstd(_), Some(d)) => {
                        format!(
                            ", {:.3}x the Deflate archive",
                            w.blob.size as f64 / d as f64
                        )
                    }
                    _ => String::new(),
                };
                eprintln!(
                    "{} archive: {} bytes ({}){versus}, compressed in {:.1} s",
                    w.method.name(),
                    w.blob.size,
                    w.blob.sha256,
                    w.took.as_secs_f64()
                );
            }
            let fetched = v.archive_to_fetch().size;
            for d in &v.deltas {
                eprintln!(
                    "delta from {}: {} bytes ({:.2}% of the archive)",
                    d.from,
                    d.size,
                    100.0 * d.size as f64 / fetched as f64
                );
            }
            eprintln!("recorded {} for the next publish", p.record.display());
        }
        Command::Publish(args) => {
            let m = publish(&args)?;
            let versions: Vec<String> = m.releases.iter().map(|r| r.version.to_string()).collect();
            eprintln!(
                "published {} serial {} ({}), expires {}",
                m.channel,
                m.serial,
                versions.join(", "),
                m.expires_at
            );
            if !m.keys.is_empty() {
                let next: Vec<String> = m
                    .keys
                    .next
                    .iter()
                    .map(|l| {
                        peft_manifest::trust::public_key_id(l)
                            .map(|id| id.to_string())
                            .unwrap_or_else(|_| l.clone())
                    })
                    .collect();
                let retired: Vec<String> = m.keys.retired.iter().map(|k| k.to_string()).collect();
                eprintln!(
                    "keys: announces [{}], retires [{}]",
                    next.join(", "),
                    retired.join(", ")
                );
            }
        }
        Command::Offline(args) => {
            let r = offline(&args)?;
            let installs: Vec<String> = r
                .installs
                .iter()
                .map(|(v, ver)| format!("{v} {ver}"))
                .collect();
            eprintln!(
                "wrote {}: {} serial {}, {} ({} blobs, {} bytes); see its README.txt",
                args.out.display(),
                r.manifest.channel,
                r.manifest.serial,
                installs.join(", "),
                r.blobs.len(),
                r.bytes
            );
        }
        Command::ReleaseConfig(args) => {
            let v = release_config::write(&args)?;
            eprintln!(
                "wrote {}: {} (channel {})",
                args.out.display(),
                v["manifest_url"].as_str().unwrap_or_default(),
                v["channel"].as_str().unwrap_or_default()
            );
        }
        Command::Verify(args) => {
            let r = verify::verify(&args)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_flag_of_every_subcommand_has_help_text() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{} --{id}", sub.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }
}
