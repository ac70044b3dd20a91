//! A second build of `peft-bootstrap` that reports a newer version, for the
//! self-update tests, and small helpers the offline and self-update tests share (a
//! test's own copy of a binary, a closed port, a flipped byte).
//!
//! The version a build reports is its crate version unless the build sets
//! `PEFT_BOOTSTRAP_VERSION_OVERRIDE` (read with `option_env!`), so no tracked file
//! changes. The build goes to its own target folder, `target/selfbuild/` (beside the
//! folder holding the workspace's binaries), so the main build is never invalidated;
//! dependencies are built without optimisation or debug info there to keep the first
//! build short (a few minutes on two cores), and later runs reuse it (seconds).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::bin_dir;

/// The version of the workspace's own build (`target/debug/peft-bootstrap`).
pub const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// The version the second build reports: the next major version.
pub fn newer_version() -> String {
    let major: u64 = CURRENT
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    format!("{}.0.0", major + 1)
}

/// `os-arch` of this machine, as the manifest spells it (`linux-x86_64`).
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        a => a,
    };
    format!("{}-{arch}", std::env::consts::OS)
}

/// The workspace root (the parent of this crate's folder).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Builds (once per test process; cached under `target/selfbuild/`) a
/// `peft-bootstrap` reporting [`newer_version`] and returns its path.
pub fn newer_bootstrapper() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let target = bin_dir()
        .parent()
        .map(|t| t.join("selfbuild"))
        .expect("the target folder");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let version = newer_version();
    let out = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "-p", "peft-bootstrap", "--bin", "peft-bootstrap"])
        .args(["--config", "profile.dev.package.\"*\".opt-level=0"])
        .args(["--config", "profile.dev.debug=0"])
        .env("CARGO_TARGET_DIR", &target)
        .env("PEFT_BOOTSTRAP_VERSION_OVERRIDE", &version)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building peft-bootstrap {version} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = target
        .join("debug")
        .join(format!("peft-bootstrap{}", std::env::consts::EXE_SUFFIX));
    assert_eq!(
        version_of(&exe).as_deref(),
        Some(version.as_str()),
        "{} does not report {version}",
        exe.display()
    );
    *built = Some(exe.clone());
    exe
}

/// The workspace's own `peft-bootstrap`.
pub fn current_bootstrapper() -> PathBuf {
    bin_dir().join(format!("peft-bootstrap{}", std::env::consts::EXE_SUFFIX))
}

/// Puts a copy of `src` at `dest` (a hard link when possible: self-update renames,
/// it never writes into the file, so the original stays as it is).
pub fn place(src: &Path, dest: &Path) {
    if let Some(d) = dest.parent() {
        fs_err::create_dir_all(d).expect("mkdir");
    }
    if fs_err::hard_link(src, dest).is_err() {
        fs_err::copy(src, dest).expect("copy the binary");
    }
}

/// What `exe --version` names (`peft-bootstrap 1.2.3` → `1.2.3`).
pub fn version_of(exe: &Path) -> Option<String> {
    let out = Command::new(exe).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .map(String::from)
}

/// A loopback URL nothing listens on: a port just bound and released.
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}/channels/stable/manifest.json")
}

/// Flips one byte in the middle of a file.
pub fn flip_byte(path: &Path) {
    let mut bytes = fs_err::read(path).expect("read");
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    fs_err::write(path, bytes).expect("write");
}
