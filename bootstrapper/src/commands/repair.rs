//! `verify --repair`: which sources a repair tries, in which order, and how it ends.
//!
//! The cheapest first: installed files with the same SHA-256 and complete archives
//! in `downloads/` (no network, no manifest); then the repository configured: an
//! offline folder (or `file://` repository), whose archive is found by the SHA-256
//! the install record keeps; or an HTTP repository, for which the channel manifest
//! is accepted the usual way (it gives the archive's size and the mirrors), and the
//! archive is read by ranges ([`mend_from_network`]), or whole when a server ignores
//! `Range`. The mechanics are in [`crate::install::repair`].
//!
//! Exit codes: 0 when every damaged file was rewritten; 4 when a source's bytes did
//! not match the signed index for a file left damaged; 3 when no source had it;
//! 6 on storage errors (also when a folder of the install is a symbolic link: a
//! repair never writes through one).

use peft_manifest::Blob;

use super::{Next, Session};
use crate::cache::{CacheLock, InstallRecord};
use crate::error::{Error, Result, human_bytes};
use crate::install::repair::{Inspection, Network, Repair, mend_from_network};
use crate::install::{SPARE, check_space};
use crate::report::{Event, RepairSource, Repaired};
use crate::source::{Repository, Root};

/// Repairs the install `name` (its record `rec`), found damaged as `found`, and
/// reports it in a `verified` event.
pub(super) async fn run(
    ctx: &Session<'_>,
    lock: &CacheLock,
    name: &str,
    rec: &InstallRecord,
    found: Inspection,
) -> Result<()> {
    let (o, result) = mend(ctx, lock, name, rec, found).await?;
    ctx.reporter.emit(Event::Verified {
        version: rec.version.clone(),
        variant: rec.variant.clone(),
        files: rec.index.files.len(),
        ok: o.ok,
        problems: o.problems,
        extra: o.extra,
        repaired: o.repaired,
        fetched: o.fetched,
    });
    result
}

/// What a repair did: the `verified` event's body.
#[derive(Debug)]
pub(super) struct Mended {
    pub ok: bool,
    pub problems: Vec<String>,
    pub extra: Vec<String>,
    pub repaired: Vec<Repaired>,
    pub fetched: u64,
}

/// Repairs the install `name` without reporting it: what was done, and how the
/// repair ended (`Err` on the outside: it stopped before it could say).
pub(super) async fn mend(
    ctx: &Session<'_>,
    lock: &CacheLock,
    name: &str,
    rec: &InstallRecord,
    found: Inspection,
) -> Result<(Mended, Result<()>)> {
    let cache = ctx.cache()?;
    let dir = cache.versions().join(name);
    if let Some(link) = found.links.first() {
        return Err(Error::unusable(
            format!(
                "{} is a symbolic link or a file where the signed index of {} has a folder; a repair never writes through it",
                dir.join(link).display(),
                rec.version
            ),
            format!(
                "remove {} and run `peft-bootstrap ensure` to install it again",
                dir.display()
            ),
        ));
    }
    let problems = found.problems();
    let mut r = Repair::new(&dir, &found.damaged)?;
    // (a) The cache: installed files, then complete archives.
    let installs = cache.installs()?;
    r.mend_from_installs(
        installs
            .iter()
            .map(|(n, i)| (cache.versions().join(n), &i.index)),
    )?;
    for (_, i) in &installs {
        let archive = cache.downloads().join(&i.archive_sha256);
        if !r.is_done() && archive.is_file() {
            r.mend_from_archive(&archive, &i.index, RepairSource::Cache)?;
        }
    }
    // (b), (c) The repository: an offline folder, or the network.
    let rel = format!("blobs/sha256/{}", rec.archive_sha256);
    let mut unreachable = Vec::new();
    let mut fetched = 0;
    if !r.is_done() {
        match &ctx.s.repo {
            Repository::Unconfigured => {
                unreachable.push("no repository or offline folder is configured".to_string())
            }
            Repository::Offline(d) | Repository::Remote(Root::Dir(d)) => {
                let archive = d.join(&rel);
                if archive.is_file() {
                    r.mend_from_archive(&archive, &rec.index, RepairSource::Offline)?;
                } else {
                    unreachable.push(format!("{} is not there", archive.display()));
                }
            }
            Repository::Remote(root) => {
                fetched = network(ctx, lock, root, rec, &mut r, &mut unreachable).await?
            }
        }
    }
    let ok = r.is_done();
    let mended = Mended {
        ok,
        problems,
        extra: found.extra,
        repaired: r.repaired.clone(),
        fetched,
    };
    if ok {
        return Ok((mended, Ok(())));
    }
    let left = r.left().join(", ");
    if !r.wrong.is_empty() {
        return Ok((
            mended,
            Err(Error::integrity_hint(
                format!(
                    "{left} of {} ({}) could not be repaired: no source has bytes that match the signed index ({}); nothing was written for them",
                    rec.version,
                    rec.variant,
                    r.wrong.join("; ")
                ),
                "the repository, a mirror or the offline folder serves altered files; repair from a trusted source, or remove the version and run `peft-bootstrap ensure`",
            )),
        ));
    }
    let unreached = Error::Network {
        url: ctx
            .s
            .repo
            .root()
            .map_or_else(|| rel.clone(), |root| root.describe(&rel)),
        detail: format!(
            "no source has {left} of {} ({}): {}",
            rec.version,
            rec.variant,
            unreachable.join("; ")
        ),
        hint: None,
    };
    Ok((mended, Err(unreached)))
}

/// Repairs from an HTTP repository and its mirrors; returns the bytes fetched.
async fn network(
    ctx: &Session<'_>,
    lock: &CacheLock,
    root: &Root,
    rec: &InstallRecord,
    r: &mut Repair,
    unreachable: &mut Vec<String>,
) -> Result<u64> {
    let m = match ctx.manifest(root, lock, false).await {
        Ok(Ok(m)) => m,
        Ok(Err(Next::Reexec { otherwise, .. })) => return Err(otherwise),
        Ok(Err(Next::Exit)) => return Ok(0),
        Err(e @ Error::Network { .. }) => {
            unreachable.push(e.to_string());
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    // The archive the install came from, else another archive of the same release
    // and variant (the Deflate one may no longer be listed): every archive of a
    // variant carries the same signed index.
    let listed = |a: &&Blob| a.sha256.hex() == rec.archive_sha256;
    let same = m
        .releases
        .iter()
        .filter(|rel| rel.version.to_string() == rec.version)
        .flat_map(|rel| &rel.variants)
        .find(|v| v.id == rec.variant);
    let Some(blob): Option<Blob> = m
        .releases
        .iter()
        .flat_map(|rel| &rel.variants)
        .flat_map(|v| v.archives())
        .find(listed)
        .or_else(|| same.map(|v| v.archive_to_fetch()))
        .cloned()
    else {
        unreachable.push(format!(
            "the channel {} no longer lists the archive of {} ({})",
            ctx.s.channel, rec.version, rec.variant
        ));
        return Ok(0);
    };
    let (cache, fetcher, reporter) = (ctx.cache()?, ctx.fetcher()?, ctx.reporter);
    let downloads = cache.downloads();
    let roots = ctx.roots(root, &m);
    let mut fetched = 0;
    for root in &roots {
        if r.is_done() {
            break;
        }
        let base = match root {
            Root::Http(base) => base,
            Root::Dir(d) => {
                let archive = d.join(blob.path());
                if archive.is_file() {
                    r.mend_from_archive(&archive, &rec.index, RepairSource::Offline)?;
                }
                continue;
            }
        };
        match mend_from_network(r, fetcher, base, &blob, &rec.index, &downloads, reporter).await {
            Ok(Network::Read { fetched: n }) => fetched += n,
            Ok(Network::Ignored { fetched: n }) => {
                fetched += n;
                reporter.warn(format!(
                    "{base} ignores Range requests: downloading the whole archive ({}) to repair {} file(s)",
                    human_bytes(blob.size),
                    r.left().len()
                ));
                check_space(cache.root(), blob.size + SPARE)?;
                match fetcher.download(&roots, &blob, &downloads, reporter).await {
                    Ok(archive) => {
                        fetched += blob.size;
                        r.mend_from_archive(&archive, &rec.index, RepairSource::Network)?;
                        // Installs are what the cache keeps.
                        let _ = fs_err::remove_file(&archive);
                    }
                    Err(e @ Error::Network { .. }) => unreachable.push(e.to_string()),
                    Err(e @ Error::Integrity { .. }) => r.wrong.push(e.to_string()),
                    Err(e) => return Err(e),
                }
                break;
            }
            Err(e @ Error::Network { .. }) => unreachable.push(e.to_string()),
            Err(e @ Error::Integrity { .. }) => r.wrong.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(fetched)
}
