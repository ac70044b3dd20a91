//! Probe and fall back, end to end: a signed repository built at test time whose
//! sample bundles' `peft_engine --probe` succeeds, fails or hangs, on fake NVIDIA
//! hardware (the stand-in NVML library from `tests/fixtures/nvml/fake_nvml.c`).
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use peft_manifest::{
    Blob, FileEntry, FileIndex, IndexRef, Manifest, Release, SCHEMA, Sha256, Variant,
    VariantCatalog,
};
use semver::{Version, VersionReq};
use serde_json::Value;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_peft-bootstrap");
const ENTRY: &str = "peft_engine/peft_engine";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The fake NVML library, compiled once per test run.
fn stub() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fake-nvml-probe-{}", std::process::id()));
        fs_err::create_dir_all(&dir).expect("mkdir");
        let out = dir.join("libnvidia-ml.so.1");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&out)
            .arg(fixtures().join("nvml/fake_nvml.c"))
            .status()
            .unwrap_or_else(|e| panic!("{cc} is needed to build the fake NVML library: {e}"));
        assert!(status.success());
        out
    })
}

/// A probe that passes.
const PASSES: &str =
    r#"[ "$1" = --probe ] && echo '{"event":"probe","ok":true,"reason":null}'; exit 0"#;
/// A probe that fails the way a build without this GPU's kernels does.
const FAILS: &str = r#"if [ "$1" = --probe ]; then echo '{"event":"probe","ok":false,"reason":"CUDA error: no kernel image is available for execution on the device"}'; exit 1; fi"#;
/// A probe that never answers.
const HANGS: &str = r#"[ "$1" = --probe ] && exec sleep 60"#;

/// A release repository on disk with one release and a trusted key.
struct Repo {
    dir: tempfile::TempDir,
    pubkey: PathBuf,
}

/// Builds a signed repository whose release 1.0.0 has these catalogue variants,
/// each bundle a shell script whose behaviour under `--probe` is given.
fn repo(bundles: &[(&str, &str)]) -> Repo {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let blobs = root.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| -> Sha256 {
        let h = Sha256::of(bytes);
        fs_err::write(blobs.join(h.hex()), bytes).expect("write blob");
        h
    };
    let catalog = VariantCatalog::builtin().expect("catalogue");
    let version = Version::new(1, 0, 0);
    let variants: Vec<Variant> = bundles
        .iter()
        .map(|(id, probe_body)| {
            let def = catalog
                .get(id)
                .unwrap_or_else(|| panic!("{id} is not in the catalogue"));
            let script =
                format!("#!/bin/sh\n# sample bundle {id}\n{probe_body}\necho serving {id}\n");
            let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .unix_permissions(0o755);
            zip.start_file(ENTRY, opts).expect("zip entry");
            zip.write_all(script.as_bytes()).expect("zip write");
            let archive = zip.finish().expect("zip").into_inner();
            let index = FileIndex {
                schema: SCHEMA,
                version: version.clone(),
                variant: (*id).to_string(),
                files: vec![FileEntry {
                    path: ENTRY.into(),
                    size: script.len() as u64,
                    mode: 0o755,
                    sha256: Sha256::of(script.as_bytes()),
                }],
            };
            let index_json = index.to_json();
            Variant {
                id: (*id).to_string(),
                os: def.os,
                arch: def.arch,
                accelerator: def.accelerator,
                requires: def.requires.clone(),
                priority: def.priority,
                entry: ENTRY.into(),
                probe: def.probe,
                archive: Blob {
                    sha256: put(&archive),
                    size: archive.len() as u64,
                },
                zstd_archive: None,
                index: IndexRef {
                    sha256: put(&index_json),
                    size: index_json.len() as u64,
                    files: 1,
                    unpacked_size: script.len() as u64,
                },
                deltas: Vec::new(),
            }
        })
        .collect();
    let now = OffsetDateTime::now_utc();
    let m = Manifest {
        schema: SCHEMA,
        channel: "stable".into(),
        serial: 1,
        published_at: now - time::Duration::hours(1),
        expires_at: now + time::Duration::days(30),
        min_bootstrapper: Version::new(0, 0, 0),
        releases: vec![Release {
            version,
            ui_compat: VersionReq::STAR,
            notes: None,
            variants,
        }],
        bootstrapper: Vec::new(),
        mirrors: Vec::new(),
        keys: Default::default(),
    };
    let bytes = m.to_json();
    let channel = root.join("channels/stable");
    fs_err::create_dir_all(&channel).expect("mkdir");
    fs_err::write(channel.join("manifest.json"), &bytes).expect("write manifest");
    let kp = minisign::KeyPair::generate_unencrypted_keypair().expect("keypair");
    let sig = minisign::sign(
        Some(&kp.pk),
        &kp.sk,
        Cursor::new(&bytes),
        Some("test"),
        None,
    )
    .expect("sign");
    fs_err::write(channel.join("manifest.json.minisig"), sig.into_string()).expect("write sig");
    let pubkey = root.join("release.pub");
    fs_err::write(&pubkey, kp.pk.to_box().expect("pk box").into_string()).expect("write pub");
    Repo { dir, pubkey }
}

struct Run {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Run {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == kind).collect()
    }
    fn selected(&self) -> Vec<String> {
        self.of("selected")
            .iter()
            .map(|e| e["variant"].as_str().unwrap_or_default().to_string())
            .collect()
    }
    fn ready(&self) -> &Value {
        let r = self.of("ready");
        assert_eq!(
            r.len(),
            1,
            "exit {}: {:#?}\n{}",
            self.code,
            self.events,
            self.stderr
        );
        r[0]
    }
    fn warnings(&self) -> String {
        self.of("warning")
            .iter()
            .map(|w| w["message"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `peft-bootstrap <cmd> --json` against `repo` with `cache` and the fake
/// NVML reporting `gpus` on driver `driver`.
fn run(
    cmd: &str,
    repo: &Repo,
    cache: &Path,
    driver: &str,
    gpus: &str,
    more: &[(&str, &str)],
) -> Run {
    let url = format!(
        "file://{}/channels/stable/manifest.json",
        repo.dir.path().display()
    );
    let mut c = Command::new(BIN);
    c.args([cmd, "--json"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("PEFT_") || k.starts_with("FAKE_NVML_") || k == "CUDA_VISIBLE_DEVICES" {
            c.env_remove(k);
        }
    }
    let empty = cache.with_extension("empty");
    fs_err::create_dir_all(&empty).expect("mkdir");
    c.env("PEFT_MANIFEST_URL", url)
        .env("PEFT_TRUSTED_KEY", &repo.pubkey)
        .env("PEFT_CACHE_DIR", cache)
        .env("PEFT_NVML_LIBRARY", stub())
        .env("PEFT_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .env("PEFT_SYSFS_ROOT", &empty)
        .env("PEFT_PROCFS_ROOT", &empty)
        .env("FAKE_NVML_DRIVER", driver)
        .env("FAKE_NVML_CUDA", "13000")
        .env("FAKE_NVML_GPUS", gpus);
    for (k, v) in more {
        c.env(k, v);
    }
    let out = c.output().expect("run peft-bootstrap");
    Run {
        code: out.status.code().unwrap_or(-1),
        events: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const H100: &str = "NVIDIA H100 80GB HBM3,9.0,81559,GPU-h100-0001";
const DRIVER: &str = "580.95.05";

fn bad_variants(cache: &Path) -> Value {
    let text = fs_err::read_to_string(cache.join("bad-variants.json")).expect("bad-variants.json");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn a_failed_probe_falls_back_to_the_next_variant_and_is_remembered() {
    let repo = repo(&[
        ("linux-x86_64-cpu", PASSES),
        ("linux-x86_64-cuda12.8", PASSES),
        ("linux-x86_64-cuda13.0", FAILS),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("cache");
    let r = run("ensure", &repo, &cache, DRIVER, H100, &[]);
    assert_eq!(r.code, 0, "{:#?}\n{}", r.events, r.stderr);
    assert_eq!(
        r.selected(),
        ["linux-x86_64-cuda13.0", "linux-x86_64-cuda12.8"]
    );
    let w = r.warnings();
    assert!(
        w.contains("linux-x86_64-cuda13.0 1.0.0 failed its probe"),
        "{w}"
    );
    assert!(w.contains("no kernel image is available"), "{w}");
    assert_eq!(r.ready()["variant"], "linux-x86_64-cuda12.8");
    assert!(
        !cache.join("versions/1.0.0-linux-x86_64-cuda13.0").exists(),
        "the failed install is removed"
    );
    assert!(cache.join("versions/1.0.0-linux-x86_64-cuda12.8").is_dir());
    let bad = bad_variants(&cache);
    let e = &bad["entries"][0];
    assert_eq!(e["variant"], "linux-x86_64-cuda13.0");
    assert_eq!(e["version"], "1.0.0");
    let machine = e["machine"].as_str().unwrap_or_default();
    assert!(
        machine.contains(DRIVER) && machine.contains("GPU-h100-0001"),
        "{machine}"
    );

    // detect agrees and explains.
    let d = run("detect", &repo, &cache, DRIVER, H100, &[]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert_eq!(d.selected(), ["linux-x86_64-cuda12.8"]);
    let v13 = d
        .of("verdict")
        .into_iter()
        .find(|v| v["variant"] == "linux-x86_64-cuda13.0")
        .cloned();
    let reason = v13.map(|v| v["reason"].to_string()).unwrap_or_default();
    assert!(
        reason.contains("failed its probe on this machine"),
        "{reason}"
    );

    // A driver update clears the mark.
    let d = run("detect", &repo, &cache, "580.105.08", H100, &[]);
    assert_eq!(d.selected(), ["linux-x86_64-cuda13.0"]);

    // The next ensure answers from the cache without probing again.
    let again = run("ensure", &repo, &cache, DRIVER, H100, &[]);
    assert_eq!(again.ready()["source"], "cache");
    assert_eq!(again.ready()["variant"], "linux-x86_64-cuda12.8");
}

#[test]
fn a_probe_that_hangs_is_cut_off_and_counts_as_failed() {
    let repo = repo(&[
        ("linux-x86_64-cuda12.8", PASSES),
        ("linux-x86_64-cuda13.0", HANGS),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let start = Instant::now();
    let r = run(
        "ensure",
        &repo,
        &tmp.path().join("c"),
        DRIVER,
        H100,
        &[("PEFT_PROBE_TIMEOUT", "1")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.ready()["variant"], "linux-x86_64-cuda12.8");
    assert!(
        r.warnings().contains("did not finish within 1 s"),
        "{}",
        r.warnings()
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn when_every_gpu_build_fails_the_cpu_build_serves() {
    let repo = repo(&[
        ("linux-x86_64-cpu", PASSES),
        ("linux-x86_64-cuda12.6", FAILS),
        ("linux-x86_64-cuda12.8", FAILS),
        ("linux-x86_64-cuda13.0", FAILS),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("c");
    let r = run("ensure", &repo, &cache, DRIVER, H100, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.selected(),
        [
            "linux-x86_64-cuda13.0",
            "linux-x86_64-cuda12.8",
            "linux-x86_64-cuda12.6",
            "linux-x86_64-cpu"
        ]
    );
    assert_eq!(r.ready()["variant"], "linux-x86_64-cpu");
    assert_eq!(
        bad_variants(&cache)["entries"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn with_nothing_left_ensure_exits_5_with_every_reason() {
    let repo = repo(&[("linux-x86_64-cuda13.0", FAILS)]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = run("ensure", &repo, &tmp.path().join("c"), DRIVER, H100, &[]);
    assert_eq!(r.code, 5, "{:#?}", r.events);
    let err = r.of("error");
    assert!(
        err[0]["hint"].to_string().contains("failed its probe"),
        "{:#?}",
        err
    );
}

#[test]
fn a_forced_variant_is_kept_even_when_its_probe_fails() {
    let repo = repo(&[
        ("linux-x86_64-cuda12.8", PASSES),
        ("linux-x86_64-cuda13.0", FAILS),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let forced = [("PEFT_BACKEND_VARIANT", "linux-x86_64-cuda13.0")];
    let r = run(
        "ensure",
        &repo,
        &tmp.path().join("c"),
        DRIVER,
        H100,
        &forced,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.ready()["variant"], "linux-x86_64-cuda13.0");
    assert!(r.warnings().contains("using it anyway"), "{}", r.warnings());
}

#[test]
fn the_probe_runs_with_the_narrowed_cuda_visible_devices() {
    // Passes only when it sees just the RTX 5090.
    let picky = r#"if [ "$1" = --probe ]; then [ "$CUDA_VISIBLE_DEVICES" = GPU-5090 ] && exit 0; echo "{\"reason\":\"saw $CUDA_VISIBLE_DEVICES\"}"; exit 1; fi"#;
    let repo = repo(&[
        ("linux-x86_64-cpu", PASSES),
        ("linux-x86_64-cuda13.0", picky),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let gpus =
        "NVIDIA GeForce GTX 1080 Ti,6.1,11264,GPU-1080;NVIDIA GeForce RTX 5090,12.0,32607,GPU-5090";
    let r = run("ensure", &repo, &tmp.path().join("c"), DRIVER, gpus, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.ready()["variant"],
        "linux-x86_64-cuda13.0",
        "{}",
        r.warnings()
    );
    assert!(
        r.warnings().contains("CUDA_VISIBLE_DEVICES=GPU-5090"),
        "{}",
        r.warnings()
    );
    // Electron starts the engine with the ready event's env, now and from the cache.
    assert_eq!(r.ready()["env"]["CUDA_VISIBLE_DEVICES"], "GPU-5090");
    let again = run("ensure", &repo, &tmp.path().join("c"), DRIVER, gpus, &[]);
    assert_eq!(again.ready()["source"], "cache");
    assert_eq!(again.ready()["env"]["CUDA_VISIBLE_DEVICES"], "GPU-5090");
}
