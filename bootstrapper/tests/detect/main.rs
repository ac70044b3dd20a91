//! `peft-bootstrap detect` end to end on fake hardware: a stand-in
//! `libnvidia-ml.so.1` compiled from `tests/fixtures/nvml/fake_nvml.c` (so the real
//! NVML loading code runs), fake `nvidia-smi` scripts and fixture `/proc` and `/sys`
//! trees from `tests/fixtures/hardware/`. Without a repository, `detect` judges the
//! built-in variant catalogue, so these are the decision table through the binary.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The fallbacks: `nvidia-smi`, `/proc` and `/sys` trees, forced variants.
mod fallbacks;

const BIN: &str = env!("CARGO_BIN_EXE_peft-bootstrap");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn hw_fixture(name: &str) -> PathBuf {
    fixtures().join("hardware").join(name)
}

/// The fake NVML library, compiled once per test run.
fn stub() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fake-nvml-{}", std::process::id()));
        fs_err::create_dir_all(&dir).expect("mkdir");
        let out = dir.join("libnvidia-ml.so.1");
        let src = fixtures().join("nvml/fake_nvml.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("{cc} is needed to build the fake NVML library: {e}"));
        assert!(status.success(), "compiling {} failed", src.display());
        out
    })
}

struct Run {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Run {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == kind).collect()
    }
    fn one(&self, kind: &str) -> &Value {
        let v = self.all(kind);
        assert_eq!(v.len(), 1, "one {kind} event expected: {:#?}", self.events);
        v[0]
    }
    fn hardware(&self) -> &Value {
        self.one("hardware")
    }
    fn selected(&self) -> String {
        self.one("selected")["variant"]
            .as_str()
            .expect("variant")
            .to_string()
    }
    fn verdict(&self, id: &str) -> &Value {
        self.all("verdict")
            .into_iter()
            .find(|v| v["variant"] == id)
            .unwrap_or_else(|| panic!("no verdict for {id}"))
    }
    fn refused(&self, id: &str, words: &[&str]) {
        let v = self.verdict(id);
        assert_eq!(v["fits"], false, "{id}: {v}");
        let reason = v["reason"].as_str().unwrap_or_default();
        for w in words {
            assert!(reason.contains(w), "{id}: {reason:?} lacks {w:?}");
        }
    }
    fn warnings(&self) -> String {
        self.all("warning")
            .iter()
            .map(|w| w["message"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs `detect` with nothing real to find unless `envs` points at fakes.
fn detect(envs: &[(&str, &str)], args: &[&str]) -> Run {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty");
    fs_err::create_dir_all(&empty).expect("mkdir");
    let mut cmd = Command::new(BIN);
    cmd.arg("detect").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("PEFT_") || k.starts_with("FAKE_NVML_") || k == "CUDA_VISIBLE_DEVICES" {
            cmd.env_remove(k);
        }
    }
    cmd.env("PEFT_CACHE_DIR", tmp.path().join("cache"))
        .env("PEFT_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
        .env("PEFT_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .env("PEFT_SYSFS_ROOT", &empty)
        .env("PEFT_PROCFS_ROOT", &empty)
        .env("ROCM_PATH", &empty);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run peft-bootstrap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = args.contains(&"--json");
    let events = if json {
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    } else {
        Vec::new()
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        events,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `detect --json` with the fake NVML reporting these GPUs ("name,cc,MiB,uuid;...").
fn nvml(driver: &str, cuda: &str, gpus: &str, more: &[(&str, &str)]) -> Run {
    let lib = stub().to_string_lossy().into_owned();
    let mut envs = vec![
        ("PEFT_NVML_LIBRARY", lib.as_str()),
        ("FAKE_NVML_DRIVER", driver),
        ("FAKE_NVML_CUDA", cuda),
        ("FAKE_NVML_GPUS", gpus),
    ];
    envs.extend_from_slice(more);
    let r = detect(&envs, &["--json"]);
    assert!(r.code == 0 || r.code == 5, "exit {}: {}", r.code, r.stderr);
    r
}

const H100: &str = "NVIDIA H100 80GB HBM3,9.0,81559,GPU-4d3c2b1a-0000-4000-8000-0000000000h1";
const RTX3090: &str = "NVIDIA GeForce RTX 3090,8.6,24576,GPU-3090";
const GTX1080TI: &str = "NVIDIA GeForce GTX 1080 Ti,6.1,11264,GPU-1080";
const RTX5090: &str = "NVIDIA GeForce RTX 5090,12.0,32607,GPU-5090";

#[test]
fn this_machine_explains_itself() {
    // Only the cache is redirected: the real probes run on whatever this machine is.
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["detect", "--json"])
        .env_remove("PEFT_MANIFEST_URL")
        .env_remove("PEFT_OFFLINE_DIR")
        .env_remove("PEFT_BACKEND_VARIANT")
        .env("PEFT_CACHE_DIR", tmp.path())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert_eq!(events[0]["event"], "hardware");
    assert_eq!(events[0]["os"], "linux");
    assert!(events[0]["ram_bytes"].as_u64().is_some_and(|r| r > 0));
    assert!(events[0]["tried"].as_array().is_some_and(|t| !t.is_empty()));
    let verdicts: Vec<&Value> = events.iter().filter(|e| e["event"] == "verdict").collect();
    assert_eq!(verdicts.len(), 9, "one per catalogue variant");
    assert!(
        verdicts
            .iter()
            .all(|v| !v["reason"].as_str().unwrap_or_default().is_empty())
    );
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some("selected".into())
    );
    // People get one line per GPU and per verdict on stderr.
    let human = Command::new(BIN)
        .arg("detect")
        .env_remove("PEFT_MANIFEST_URL")
        .env_remove("PEFT_OFFLINE_DIR")
        .env("PEFT_CACHE_DIR", tmp.path())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&human.stderr);
    assert!(text.contains("linux-x86_64-cpu: "), "{text}");
    assert!(text.contains("Selected "), "{text}");
    assert!(human.stdout.is_empty());
}

#[test]
fn h100_on_580_through_nvml_gets_cuda_13() {
    let r = nvml("580.95.05", "13000", H100, &[]);
    let hw = r.hardware();
    assert_eq!(hw["nvidia"]["source"], "nvml");
    assert_eq!(hw["nvidia"]["driver"], "580.95.05");
    assert_eq!(hw["nvidia"]["cuda"], "13.0");
    let g = &hw["nvidia"]["gpus"][0];
    assert_eq!(g["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(g["compute_capability"], "9.0");
    assert_eq!(g["memory_bytes"], 81559u64 << 20);
    assert_eq!(g["uuid"], "GPU-4d3c2b1a-0000-4000-8000-0000000000h1");
    assert_eq!(r.selected(), "linux-x86_64-cuda13.0");
}

#[test]
fn rtx3090_on_535_through_nvml_gets_no_12_8_or_13_0() {
    let r = nvml("535.104.05", "12020", RTX3090, &[]);
    assert_eq!(r.selected(), "linux-x86_64-cuda12.6");
    r.refused(
        "linux-x86_64-cuda12.8",
        &["needs NVIDIA driver ≥ 550 for CUDA 12.8, found 535.104.05"],
    );
    r.refused("linux-x86_64-cuda13.0", &["≥ 580"]);
}

#[test]
fn gtx1080ti_on_565_through_nvml_gets_a_build_with_6_1() {
    let r = nvml("565.57.01", "12070", GTX1080TI, &[]);
    assert_eq!(r.selected(), "linux-x86_64-cuda12.6");
    r.refused("linux-x86_64-cuda12.8", &["sm_61"]);
}

#[test]
fn rtx5090_on_570_through_nvml_gets_sm_120() {
    let r = nvml("570.124.04", "12080", RTX5090, &[]);
    assert_eq!(r.selected(), "linux-x86_64-cuda12.8");
}

#[test]
fn kepler_on_390_through_nvml_gets_the_cpu() {
    let r = nvml(
        "390.157",
        "9010",
        "NVIDIA GeForce GTX 680,3.0,2048,GPU-680",
        &[],
    );
    assert_eq!(r.selected(), "linux-x86_64-cpu");
    r.refused("linux-x86_64-cuda12.6", &["390.157"]);
}

#[test]
fn pascal_and_blackwell_serve_the_blackwell_and_say_so() {
    let r = nvml("580.95.05", "13000", &format!("{GTX1080TI};{RTX5090}"), &[]);
    assert_eq!(r.selected(), "linux-x86_64-cuda13.0");
    assert!(
        r.warnings().contains("CUDA_VISIBLE_DEVICES=GPU-5090"),
        "{}",
        r.warnings()
    );
    assert_eq!(
        r.hardware()["nvidia"]["gpus"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn cuda_visible_devices_is_honoured() {
    let r = nvml(
        "580.95.05",
        "13000",
        H100,
        &[("CUDA_VISIBLE_DEVICES", "-1")],
    );
    assert_eq!(r.selected(), "linux-x86_64-cpu");
    assert_eq!(r.hardware()["cuda_visible_devices"], "-1");
    assert!(
        r.hardware()["hints"]
            .to_string()
            .contains("CUDA_VISIBLE_DEVICES")
    );
    let r = nvml("580.95.05", "13000", H100, &[("CUDA_VISIBLE_DEVICES", "")]);
    assert_eq!(r.selected(), "linux-x86_64-cpu");
    let both = format!("{GTX1080TI};{RTX5090}");
    let r = nvml(
        "580.95.05",
        "13000",
        &both,
        &[("CUDA_VISIBLE_DEVICES", "GPU-5090")],
    );
    assert_eq!(r.selected(), "linux-x86_64-cuda13.0");
    assert!(
        !r.warnings().contains("CUDA_VISIBLE_DEVICES="),
        "already narrowed"
    );
}

#[test]
fn unreadable_compute_capability_gets_the_cpu() {
    let r = nvml("570.124.04", "12080", "Mystery GPU,?,?,GPU-x", &[]);
    assert_eq!(
        r.hardware()["nvidia"]["gpus"][0]["compute_capability"],
        Value::Null
    );
    assert_eq!(r.selected(), "linux-x86_64-cpu");
    r.refused("linux-x86_64-cuda12.8", &["could not be read"]);
}
