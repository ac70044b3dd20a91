//! Replacing this binary with the newer build the signed manifest lists for this
//! os/arch: for `self-update`, and for `ensure`/`update` when a manifest's
//! `min_bootstrapper` is above this binary ([`catch_up`], which returns the new
//! executable for the command to run again: [`reexec`]).
//!
//! The build is fetched like any blob ([`Fetcher::download`]: size and SHA-256 from
//! the signed manifest, refused otherwise, exit 4), copied beside the running
//! executable, and must answer `--version` with the version the manifest promises
//! before anything is replaced. The swap is `self_update`'s [`Move`] with a kept
//! backup: the running binary is renamed to `<exe>.old`, the new one renamed into its
//! place (restored on failure); the installed binary must then answer `--version`
//! from its real path, else `<exe>.old` is put back. Only then is `<exe>.old`
//! deleted.
//!
//! [`Move`]: ::self_update::Move

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peft_manifest::{Blob, BootstrapperBuild, Manifest};
use semver::Version;

use crate::cache::Cache;
use crate::error::{Error, Result, human_bytes};
use crate::report::Reporter;
use crate::source::{Fetcher, Root, too_old_offline};
use crate::version::{REEXEC_MARK, VERSION, build_for_here, platform, version};

/// How long a build may take to answer `--version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

fn blob(b: &BootstrapperBuild) -> Blob {
    Blob {
        sha256: b.sha256,
        size: b.size,
    }
}

/// The executable to replace: this process's own, links resolved.
fn own_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Internal(format!("cannot tell where this executable is: {e}")))?;
    Ok(fs_err::canonicalize(&exe).unwrap_or(exe))
}

/// Runs `exe --version` and returns the version it names.
pub fn answers_version(exe: &Path) -> std::result::Result<Version, String> {
    let mut child = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove(REEXEC_MARK)
        .spawn()
        .map_err(|e| format!("it does not start: {e}"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < VERSION_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it did not answer --version within {} s",
                    VERSION_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(format!("--version exited with {status}"));
    }
    parse_version_line(&out).ok_or_else(|| format!("--version printed {:?}", out.trim()))
}

/// The version in a `--version` line such as `peft-bootstrap 1.2.3`.
pub fn parse_version_line(out: &str) -> Option<Version> {
    let line = out.lines().find(|l| !l.trim().is_empty())?;
    let word = line.split_whitespace().last()?;
    Version::parse(word.trim_start_matches('v')).ok()
}

/// Downloads `build`, proves it, and swaps it in for this executable.
pub async fn apply(
    fetcher: &Fetcher,
    roots: &[Root],
    cache: &Cache,
    build: &BootstrapperBuild,
    reporter: &dyn Reporter,
) -> Result<PathBuf> {
    let exe = own_exe()?;
    let downloaded = fetcher
        .download(roots, &blob(build), &cache.downloads(), reporter)
        .await?;
    let result = swap_in(&downloaded, &exe, &build.version);
    let _ = fs_err::remove_file(&downloaded);
    result.map(|()| exe)
}

/// `<dir>/.<name>.<what>` beside `exe`, on its file system.
fn beside(exe: &Path, what: &str) -> PathBuf {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "peft-bootstrap".into());
    exe.with_file_name(format!(".{name}.{what}"))
}

/// The backup kept while a swap is unproven: `<exe>.old`.
pub fn backup_path(exe: &Path) -> PathBuf {
    let mut s = exe.as_os_str().to_os_string();
    s.push(".old");
    PathBuf::from(s)
}

/// Copies the verified download beside `exe`, checks its `--version`, swaps it in,
/// checks again from the real path, and restores the old binary on any failure.
fn swap_in(verified: &Path, exe: &Path, want: &Version) -> Result<()> {
    let staged = beside(exe, &format!("new-{}", std::process::id()));
    let old = backup_path(exe);
    fs_err::copy(verified, &staged).map_err(|e| Error::storage("writing", &staged, e))?;
    let cleanup = |e: Error| {
        let _ = fs_err::remove_file(&staged);
        e
    };
    make_executable(&staged).map_err(cleanup)?;
    sync_file(&staged).map_err(cleanup)?;
    match answers_version(&staged) {
        Ok(v) if &v == want => {}
        Ok(v) => {
            return Err(cleanup(refused(format!(
                "it reports version {v}, the manifest says {want}"
            ))));
        }
        Err(why) => return Err(cleanup(refused(why))),
    }
    if old.exists() {
        // A backup left by an interrupted earlier run: the running binary is the
        // one that answered, so the backup is not needed.
        fs_err::remove_file(&old).map_err(|e| cleanup(Error::storage("removing", &old, e)))?;
    }
    ::self_update::Move::from_source(&staged)
        .replace_using_temp(&old)
        .to_dest(exe)
        .map_err(|e| {
            cleanup(Error::Storage {
                action: "replacing",
                path: exe.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })
        })?;
    if let Some(dir) = exe.parent() {
        crate::cache::sync_dir(dir);
    }
    match answers_version(exe) {
        Ok(v) if &v == want => {
            // Proven: the backup can go. A running Windows binary cannot be deleted;
            // the next self-update removes it.
            let _ = fs_err::remove_file(&old);
            Ok(())
        }
        other => {
            let why = match other {
                Ok(v) => format!("it reports version {v} once installed"),
                Err(e) => e,
            };
            fs_err::rename(&old, exe).map_err(|e| Error::storage("restoring", exe, e))?;
            Err(refused(format!("{why}; the previous binary was restored")))
        }
    }
}

fn refused(why: String) -> Error {
    Error::integrity_hint(
        format!("the new peft-bootstrap build was refused: {why}"),
        "this binary is unchanged; the release may be broken for this machine, report it",
    )
}

#[cfg(unix)]
fn make_executable(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::storage("writing", p, e))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}

fn sync_file(p: &Path) -> Result<()> {
    fs_err::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::storage("writing", p, e))
}

/// Runs the updated executable with this process's arguments and returns its exit
/// code (on Unix the process is replaced and this returns only if that failed).
/// Never from a process that is itself such a re-run ([`REEXEC_MARK`]).
pub fn reexec(exe: &Path) -> Option<u8> {
    if std::env::var_os(REEXEC_MARK).is_some() {
        return None;
    }
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(REEXEC_MARK, VERSION);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        tracing::warn!("could not run the updated {}: {e}", exe.display());
        None
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().ok()?;
        Some(status.code().map_or(1, |c| c.clamp(0, 255) as u8))
    }
}

/// `min_bootstrapper` of an accepted manifest is above this binary. Online and when
/// `allowed` (`ensure`, `update`), the manifest's build is installed and its path
/// returned: the command then ends by running it with the same arguments
/// ([`reexec`]). Otherwise, and offline, the error says how to update (from the
/// folder, when it holds the build).
pub async fn catch_up(
    fetcher: &Fetcher,
    roots: &[Root],
    m: &Manifest,
    offline: bool,
    allowed: bool,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<(PathBuf, Version)> {
    let ours = version();
    let need = &m.min_bootstrapper;
    let message =
        format!("this release channel needs peft-bootstrap {need} or later; this is {ours}");
    let build = build_for_here(m).filter(|b| &b.version >= need);
    let Some(build) = build else {
        return Err(Error::reasoned(
            crate::error::Reason::Incompatible,
            message,
            Some(format!(
                "the channel lists no newer peft-bootstrap for {}; update PEFT Studio",
                platform()
            )),
        ));
    };
    if offline {
        let root = roots
            .first()
            .ok_or_else(|| Error::Internal("no repository root".into()))?;
        return Err(too_old_offline(root, build, message));
    }
    if !allowed {
        return Err(Error::reasoned(
            crate::error::Reason::Incompatible,
            message,
            Some(format!(
                "run `peft-bootstrap self-update` (it installs {}), or `ensure`, which does it first",
                build.version
            )),
        ));
    }
    if std::env::var_os(REEXEC_MARK).is_some() {
        return Err(Error::reasoned(
            crate::error::Reason::Incompatible,
            message,
            Some(
                "it was just updated and still does not satisfy the manifest; update PEFT Studio"
                    .into(),
            ),
        ));
    }
    reporter.warn(format!(
        "{message}: updating peft-bootstrap to {} ({}) first",
        build.version,
        human_bytes(build.size)
    ));
    let exe = apply(fetcher, roots, cache, build, reporter).await?;
    reporter.warn(format!(
        "peft-bootstrap was updated to {}; running the command again with it",
        build.version
    ));
    Ok((exe, build.version.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        assert_eq!(
            parse_version_line("peft-bootstrap 1.2.3\n"),
            Some(Version::new(1, 2, 3))
        );
        assert_eq!(
            parse_version_line("\nx v0.4.0"),
            Some(Version::new(0, 4, 0))
        );
        assert_eq!(parse_version_line("peft-bootstrap"), None);
        assert_eq!(parse_version_line(""), None);
    }

    #[test]
    fn the_backup_sits_beside_the_binary() {
        let exe = Path::new("/opt/peft/peft-bootstrap");
        assert_eq!(
            backup_path(exe),
            PathBuf::from("/opt/peft/peft-bootstrap.old")
        );
        assert_eq!(
            beside(exe, "new-7"),
            PathBuf::from("/opt/peft/.peft-bootstrap.new-7")
        );
    }
}
