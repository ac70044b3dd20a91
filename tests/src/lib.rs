//! Helpers for the end-to-end tests: the real binaries, a test repository builder,
//! a fault-injecting HTTP server ([`server`]) that also speaks HTTPS with a test CA
//! ([`tls`]), a forward proxy ([`proxy`]) and a real nginx ([`nginx`]).
//!
//! The tests run the built `peft-release` and `peft-bootstrap` binaries, so build
//! them first: `cargo build --workspace --bins` (the test script does).

mod bins;
mod bundle;
pub mod nginx;
pub mod proxy;
pub mod selfbuild;
pub mod server;
pub mod signing;
pub mod tls;
pub mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub use bins::{bin_dir, bootstrap, bootstrapper_vars, release, release_raw};
pub use bundle::{noise, sample_bundle, tree};

/// A MiB, for bundle sizes.
pub const MIB: usize = 1 << 20;

/// The exit code of a finished run (-1 when killed by a signal).
/// Whether the tests run as root (mounting a tmpfs needs it).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The variant the sample bundles are packed as unless a test says otherwise.
pub const CPU_VARIANT: &str = "linux-x86_64-cpu";
/// The entry executable of the sample bundles and the frozen engine.
pub const ENTRY: &str = "peft_engine/peft_engine";

/// The one spelling of `peft-release pack`: `input` as `variant` of `version` into `repo`.
pub fn pack_args(
    repo: &Path,
    input: &Path,
    version: &str,
    variant: &str,
    entry: &str,
) -> Vec<String> {
    [
        "pack",
        "--repo",
        &repo.to_string_lossy(),
        "--input",
        &input.to_string_lossy(),
        "--version",
        version,
        "--variant",
        variant,
        "--entry",
        entry,
    ]
    .map(String::from)
    .to_vec()
}

pub fn exit(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A run's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that a `--json` run failed with exit `code`, an `error` event with that
/// exit code whose message mentions `needle`, and no `ready` event; returns the
/// message.
pub fn assert_error(out: &Output, code: i32, needle: &str) -> String {
    assert_eq!(exit(out), code, "{}", stderr(out));
    let evs = events(out);
    let err = event(&evs, "error").unwrap_or_else(|| panic!("no error event in {evs:?}"));
    assert_eq!(err["exit_code"], code, "{err}");
    let msg = err["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    assert!(event(&evs, "ready").is_none(), "{evs:?}");
    msg
}

/// The `dir` of the `ready` event.
pub fn ready_dir(evs: &[Value]) -> PathBuf {
    let r = event(evs, "ready").unwrap_or_else(|| panic!("no ready event in {evs:?}"));
    PathBuf::from(r["dir"].as_str().expect("dir"))
}

/// The bootstrapper's own files in an install: its record and its copy of the index.
pub const BOOTSTRAPPER_FILES: [&str; 2] = [".peft-install.json", ".peft-index.json"];

/// The install tree (minus the bootstrapper's own files) equals the packed folder.
pub fn assert_installed_equals(dir: &Path, input: &Path) {
    let mut got = tree(dir);
    for f in BOOTSTRAPPER_FILES {
        assert!(
            got.remove(f).is_some(),
            "{f} missing from {}",
            dir.display()
        );
    }
    assert_eq!(
        got,
        tree(input),
        "the installed tree {} differs from the packed folder {}",
        dir.display(),
        input.display()
    );
}

/// Copies the tree under `from` (files and their executable bit) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for (rel, (bytes, exec)) in tree(from) {
        let p = to.join(&rel);
        fs_err::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs_err::write(&p, bytes).expect("write");
        #[cfg(unix)]
        if exec {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        #[cfg(not(unix))]
        let _ = exec;
    }
}

/// The JSON events of a `--json` run; panics if stdout holds anything else, or a
/// line that is not one of the documented events ([`wire::Event`]).
pub fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"));
            wire::parse(l);
            v
        })
        .collect()
}

/// The events of a `--json` run, typed.
pub fn typed_events(out: &Output) -> Vec<wire::Event> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(wire::parse)
        .collect()
}

/// The first event named `name`.
pub fn event<'a>(evs: &'a [Value], name: &str) -> Option<&'a Value> {
    evs.iter().find(|e| e["event"] == name)
}

/// A temporary world: keys, a repository, inputs and caches.
#[derive(Debug)]
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    /// A new world with a release key pair in `keys/`.
    pub fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        release(&["keygen", "--out", w.path("keys").to_str().expect("utf8")]);
        w
    }

    /// The entries of the newest release's first delta, read with the core's
    /// container decoder (so the blob must be a `PEFTDLT2` container), as JSON.
    pub fn delta_entries(&self) -> Vec<Value> {
        let m: Value = serde_json::from_slice(
            &fs_err::read(self.path("repo/channels/stable/manifest.json")).expect("m"),
        )
        .expect("json");
        let sha = m["releases"][0]["variants"][0]["deltas"][0]["sha256"]
            .as_str()
            .expect("a delta")
            .to_string();
        let bytes = fs_err::read(self.path(&format!("repo/blobs/sha256/{sha}"))).expect("delta");
        let (header, _) =
            peft_manifest::delta::read_header(&mut &bytes[..]).expect("a PEFTDLT2 delta");
        header
            .entries
            .iter()
            .map(|e| serde_json::to_value(e).expect("json"))
            .collect()
    }

    /// The kinds of [`World::delta_entries`].
    pub fn delta_kinds(&self) -> Vec<String> {
        self.delta_entries()
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn s(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// Makes a sample bundle for `version` in `input-<version>` and packs it.
    pub fn pack(&self, version: &str, seed: u64, big: usize) -> PathBuf {
        let input = self.path(&format!("input-{version}"));
        sample_bundle(&input, seed, big);
        self.pack_dir(version, &input, &[]);
        input
    }

    /// Packs the folder `input` as the CPU variant of `version` with extra `pack` flags.
    pub fn pack_dir(&self, version: &str, input: &Path, extra: &[&str]) {
        self.pack_as(version, input, CPU_VARIANT, extra);
    }

    /// Packs the folder `input` as `variant` of `version` into the world's repository.
    /// The zstd level is 3 unless `extra` names one: level 19, the default, takes
    /// seconds per MiB of these sample libraries, and the format is the same.
    pub fn pack_as(&self, version: &str, input: &Path, variant: &str, extra: &[&str]) -> Output {
        let mut args = pack_args(&self.repo(), input, version, variant, ENTRY);
        args.extend(extra.iter().map(|e| e.to_string()));
        if !extra.contains(&"--zstd-level") {
            args.extend(["--zstd-level".to_string(), "3".to_string()]);
        }
        release(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `peft-release offline` of the stable channel into `out` (whatever the
    /// outcome), trusting the world's key unless `extra` names `--pubkey`.
    pub fn offline_raw(&self, out: &str, extra: &[&str]) -> Output {
        let (repo, dir, key) = (self.s("repo"), self.s(out), self.s("keys/release.pub"));
        let mut args = vec![
            "offline",
            "--repo",
            &repo,
            "--channel",
            "stable",
            "--out",
            &dir,
        ];
        if !extra.contains(&"--pubkey") {
            args.extend(["--pubkey", &key]);
        }
        args.extend_from_slice(extra);
        release_raw(&args)
    }

    /// [`World::offline_raw`], which must succeed; returns the folder.
    pub fn offline(&self, out: &str, extra: &[&str]) -> PathBuf {
        let o = self.offline_raw(out, extra);
        assert!(o.status.success(), "peft-release offline: {}", stderr(&o));
        self.path(out)
    }

    /// `peft-release verify` of the stable channel (whatever the outcome), trusting
    /// the world's key unless `extra` names `--pubkey`.
    pub fn verify_repo(&self, extra: &[&str]) -> Output {
        let (repo, key) = (self.s("repo"), self.s("keys/release.pub"));
        let mut args = vec!["verify", "--repo", &repo, "--channel", "stable"];
        if !extra.contains(&"--pubkey") {
            args.extend(["--pubkey", &key]);
        }
        args.extend_from_slice(extra);
        release_raw(&args)
    }

    /// Publishes the stable channel with the world's key.
    pub fn publish(&self, extra: &[&str]) {
        self.publish_with("keys/release.key", extra);
    }

    /// Publishes the stable channel signed with `key` (relative to the world).
    pub fn publish_with(&self, key: &str, extra: &[&str]) {
        let out = self.publish_raw(key, extra);
        assert!(
            out.status.success(),
            "peft-release publish: {}",
            stderr(&out)
        );
    }

    /// `peft-release publish` of the stable channel signed with `key` (relative to
    /// the world), whatever the outcome.
    pub fn publish_raw(&self, key: &str, extra: &[&str]) -> Output {
        let (repo, key) = (self.s("repo"), self.s(key));
        let mut args = vec![
            "publish",
            "--repo",
            &repo,
            "--channel",
            "stable",
            "--key",
            &key,
        ];
        args.extend_from_slice(extra);
        release_raw(&args)
    }

    /// `peft-bootstrap <cmd> --json` against `url` with the world's key and a cache.
    pub fn run(&self, cmd: &str, url: &str, cache: &str, extra: &[&str]) -> Output {
        self.command(cmd, url, cache, extra)
            .output()
            .expect("run peft-bootstrap")
    }

    /// `peft-bootstrap <args> --cache-dir <cache>`: a command that needs no repository.
    pub fn cached(&self, args: &[&str], cache: &str) -> Output {
        bootstrap()
            .args(args)
            .args(["--cache-dir", &self.s(cache)])
            .output()
            .expect("run peft-bootstrap")
    }

    /// The command [`World::run`] runs, to add environment or spawn it.
    pub fn command(&self, cmd: &str, url: &str, cache: &str, extra: &[&str]) -> Command {
        self.command_as(cmd, true, url, cache, extra)
    }

    /// [`World::run`] without `--json`: stderr holds the lines a person reads.
    pub fn run_for_people(&self, cmd: &str, url: &str, cache: &str, extra: &[&str]) -> Output {
        self.command_as(cmd, false, url, cache, extra)
            .output()
            .expect("run peft-bootstrap")
    }

    fn command_as(&self, cmd: &str, json: bool, url: &str, cache: &str, extra: &[&str]) -> Command {
        let mut c = bootstrap();
        c.arg(cmd);
        if json {
            c.arg("--json");
        }
        c.args([
            "--manifest-url",
            url,
            "--trusted-key",
            &self.s("keys/release.pub"),
            "--cache-dir",
            &self.s(cache),
        ])
        .args(extra);
        c
    }

    /// The repository path (`blobs/sha256/<hex>`) of the archive this bootstrapper
    /// fetches for the published manifest's first variant: its zstd archive when
    /// it has one, else `archive`.
    pub fn archive_path(&self) -> String {
        self.manifest().releases[0].variants[0]
            .archive_to_fetch()
            .path()
    }

    /// The published stable manifest.
    pub fn manifest(&self) -> peft_manifest::Manifest {
        let bytes =
            fs_err::read(self.path("repo/channels/stable/manifest.json")).expect("manifest");
        peft_manifest::Manifest::from_json(&bytes).expect("a manifest")
    }

    /// The size of that archive.
    pub fn archive_size(&self) -> u64 {
        fs_err::metadata(self.repo().join(self.archive_path()))
            .expect("archive")
            .len()
    }

    /// Leaves the first `n` bytes of that archive in `cache` as a partial download,
    /// as an interrupted run would; returns the partial file.
    pub fn seed_partial(&self, cache: &str, n: usize) -> PathBuf {
        let rel = self.archive_path();
        let bytes = fs_err::read(self.repo().join(&rel)).expect("archive");
        let hex = rel.rsplit('/').next().expect("hex");
        let downloads = self.path(cache).join("downloads");
        fs_err::create_dir_all(&downloads).expect("mkdir downloads");
        let p = downloads.join(format!("{hex}.partial"));
        fs_err::write(&p, &bytes[..n.min(bytes.len())]).expect("write partial");
        p
    }

    /// Whether the cache holds no install and no current pointer.
    pub fn nothing_installed(&self, cache: &str) -> bool {
        let versions = self.path(cache).join("versions");
        let empty = fs_err::read_dir(&versions)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true);
        empty && !self.path(cache).join("current.json").exists()
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
