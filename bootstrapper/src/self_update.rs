//! `peft-bootstrap self-update`: replace this binary with the newer build the signed
//! manifest lists for this os/arch, and the same step when a manifest's
//! `min_bootstrapper` is above this binary.
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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peft_manifest::{Arch, Blob, BootstrapperBuild, Manifest, Os};
use semver::Version;
use serde_json::json;

use crate::cache::Cache;
use crate::error::{Error, Result, human_bytes};
use crate::events::Reporter;
use crate::fetch::{Fetcher, Root};
use crate::settings::Settings;

/// The version this build reports (`--version`) and compares with `min_bootstrapper`:
/// the crate's, unless the build set `PEFT_BOOTSTRAP_VERSION_OVERRIDE` (the
/// self-update tests build a second, newer copy that way).
pub const VERSION: &str = match option_env!("PEFT_BOOTSTRAP_VERSION_OVERRIDE") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// Set in the environment of a re-executed, freshly updated binary, so that a
/// manifest that still asks for more cannot make it update and re-run forever.
pub const REEXEC_MARK: &str = "PEFT_BOOTSTRAP_UPDATED_FROM";

/// How long a build may take to answer `--version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// [`VERSION`] as a semantic version.
pub fn version() -> Version {
    Version::parse(VERSION).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// The build of `m` for the machine this binary was compiled for.
pub fn build_for_here(m: &Manifest) -> Option<&BootstrapperBuild> {
    m.bootstrapper
        .iter()
        .find(|b| b.os == Os::current() && b.arch == Arch::current())
}

/// `os-arch` of this binary, as the manifest and `peft-release publish` spell it.
pub fn platform() -> String {
    format!("{}-{}", Os::current().as_str(), Arch::current().as_str())
}

fn blob(b: &BootstrapperBuild) -> Blob {
    Blob {
        sha256: b.sha256,
        size: b.size,
    }
}

/// What `self-update` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The manifest's build is not newer than this one.
    UpToDate { version: Version },
    /// `--check`: a newer build is available.
    Available { version: Version },
    /// The binary at `path` was replaced.
    Updated {
        from: Version,
        to: Version,
        path: PathBuf,
    },
}

/// The executable to replace: this process's own, links resolved.
fn own_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Internal(format!("cannot tell where this executable is: {e}")))?;
    Ok(std::fs::canonicalize(&exe).unwrap_or(exe))
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

/// `peft-bootstrap self-update [--check]`.
pub async fn run(s: &Settings, reporter: &dyn Reporter, check: bool) -> Result<Outcome> {
    let root = s.require_repo()?.clone();
    let cache = Cache::open(&s.cache_dir)?;
    let fetcher = Fetcher::new()?;
    let lock = cache.lock(s.lock_timeout, &|_| {
        reporter.warn("waiting for another peft-bootstrap to finish with the cache".into())
    })?;
    let m = crate::repo::accept_signed(&fetcher, &root, s, &cache, &lock, reporter).await?;
    let ours = version();
    let Some(build) = build_for_here(&m) else {
        return Err(Error::NoVariant {
            message: format!(
                "the channel {:?} lists no peft-bootstrap build for {}",
                s.channel,
                platform()
            ),
            hint: Some("this bootstrapper stays as it is; update PEFT Studio to replace it".into()),
        });
    };
    if build.version <= ours {
        return Ok(Outcome::UpToDate { version: ours });
    }
    if check {
        return Ok(Outcome::Available {
            version: build.version.clone(),
        });
    }
    let path = apply(&fetcher, &roots(&root, &m, s), &cache, build, reporter).await?;
    Ok(Outcome::Updated {
        from: ours,
        to: build.version.clone(),
        path,
    })
}

/// The repository roots to fetch from: the offline folder alone, or the root and
/// the manifest's mirrors.
fn roots(root: &Root, m: &Manifest, s: &Settings) -> Vec<Root> {
    let mut roots = vec![root.clone()];
    if !s.offline {
        roots.extend(m.mirrors.iter().filter_map(|u| Root::parse(u).ok()));
    }
    roots
}

/// Prints what `self-update` did: a JSON line with `--json`, a sentence otherwise.
pub fn report(outcome: &Outcome, json_out: bool) {
    let (v, text) = match outcome {
        Outcome::UpToDate { version } => (
            json!({"event": "self_update", "status": "up_to_date", "version": version.to_string()}),
            format!("peft-bootstrap {version} is up to date"),
        ),
        Outcome::Available { version } => (
            json!({"event": "self_update", "status": "available", "from": VERSION, "version": version.to_string()}),
            format!(
                "peft-bootstrap {version} is available (this is {VERSION}); run `peft-bootstrap self-update`"
            ),
        ),
        Outcome::Updated { from, to, path } => (
            json!({"event": "self_update", "status": "updated", "from": from.to_string(), "version": to.to_string(), "path": path.display().to_string()}),
            format!(
                "peft-bootstrap updated from {from} to {to} ({})",
                path.display()
            ),
        ),
    };
    if json_out {
        println!("{v}");
    } else {
        eprintln!("{text}");
    }
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
    let _ = std::fs::remove_file(&downloaded);
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
    std::fs::copy(verified, &staged).map_err(|e| Error::storage("writing", &staged, e))?;
    let cleanup = |e: Error| {
        let _ = std::fs::remove_file(&staged);
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
        std::fs::remove_file(&old).map_err(|e| cleanup(Error::storage("removing", &old, e)))?;
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
            let _ = std::fs::remove_file(&old);
            Ok(())
        }
        other => {
            let why = match other {
                Ok(v) => format!("it reports version {v} once installed"),
                Err(e) => e,
            };
            std::fs::rename(&old, exe).map_err(|e| Error::storage("restoring", exe, e))?;
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
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::storage("writing", p, e))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}

fn sync_file(p: &Path) -> Result<()> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::storage("writing", p, e))
}

/// Whether this command may replace the binary when a manifest needs a newer one.
static UPDATE_FIRST: AtomicBool = AtomicBool::new(false);

/// Lets [`too_old`] update this binary before going on (`ensure`); other commands
/// (`detect` installs nothing) only say how.
pub fn allow_update_first() {
    UPDATE_FIRST.store(true, Ordering::Relaxed);
}

/// The path of the updated executable, once this process replaced itself; `main`
/// then runs it with the same arguments instead of reporting an error.
static UPDATED: OnceLock<PathBuf> = OnceLock::new();

/// The updated executable to re-run, if this process replaced itself and is not
/// itself such a re-run.
pub fn updated_exe() -> Option<&'static PathBuf> {
    UPDATED
        .get()
        .filter(|_| std::env::var_os(REEXEC_MARK).is_none())
}

/// Runs the updated executable with this process's arguments and returns its exit
/// code (on Unix the process is replaced and this returns only if that failed).
pub fn reexec(exe: &Path) -> Option<u8> {
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
/// allowed ([`allow_update_first`]), the manifest's build is installed and the command
/// is marked for a re-run with the new binary ([`updated_exe`]); otherwise, and
/// offline, the error says how to update (from the folder, when it holds the build).
/// Always returns the error the command ends with when no re-run happens.
pub async fn too_old(
    fetcher: &Fetcher,
    root: &Root,
    m: &Manifest,
    s: &Settings,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Error {
    let ours = version();
    let need = &m.min_bootstrapper;
    let message =
        format!("this release channel needs peft-bootstrap {need} or later; this is {ours}");
    let build = build_for_here(m).filter(|b| &b.version >= need);
    let Some(build) = build else {
        return Error::NoVariant {
            message,
            hint: Some(format!(
                "the channel lists no newer peft-bootstrap for {}; update PEFT Studio",
                platform()
            )),
        };
    };
    if s.offline {
        return crate::offline::too_old_offline(root, build, message);
    }
    if !UPDATE_FIRST.load(Ordering::Relaxed) {
        return Error::NoVariant {
            message,
            hint: Some(format!(
                "run `peft-bootstrap self-update` (it installs {}), or `ensure`, which does it first",
                build.version
            )),
        };
    }
    if std::env::var_os(REEXEC_MARK).is_some() {
        return Error::NoVariant {
            message,
            hint: Some(
                "it was just updated and still does not satisfy the manifest; update PEFT Studio"
                    .into(),
            ),
        };
    }
    reporter.warn(format!(
        "{message}: updating peft-bootstrap to {} ({}) first",
        build.version,
        human_bytes(build.size)
    ));
    match apply(fetcher, &roots(root, m, s), cache, build, reporter).await {
        Ok(exe) => {
            let _ = UPDATED.set(exe.clone());
            reporter.warn(format!(
                "peft-bootstrap was updated to {}; running the command again with it",
                build.version
            ));
            Error::NoVariant {
                message: format!(
                    "peft-bootstrap was updated to {} ({}); run the command again",
                    build.version,
                    exe.display()
                ),
                hint: None,
            }
        }
        Err(e) => e,
    }
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
    fn the_version_is_semver() {
        assert_ne!(version(), Version::new(0, 0, 0), "{VERSION}");
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
