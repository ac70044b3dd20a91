//! Detection without NVML: `nvidia-smi` scripts, fixture `/proc` and `/sys`
//! trees, and the decisions taken on them.

use super::*;

fn smi(script: &str, more: &[(&str, &str)]) -> Run {
    let path = hw_fixture("nvidia-smi")
        .join(script)
        .to_string_lossy()
        .into_owned();
    let mut envs = vec![("PEFT_NVIDIA_SMI", path.as_str())];
    envs.extend_from_slice(more);
    let r = detect(&envs, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

#[test]
fn nvml_failure_falls_back_to_nvidia_smi() {
    let lib = stub().to_string_lossy().into_owned();
    let r = smi(
        "one-gpu",
        &[("PEFT_NVML_LIBRARY", &lib), ("FAKE_NVML_FAIL", "9")],
    );
    let hw = r.hardware();
    assert_eq!(hw["nvidia"]["source"], "nvidia-smi");
    assert_eq!(hw["nvidia"]["driver"], "535.104.05");
    assert_eq!(hw["nvidia"]["cuda"], "12.2");
    assert_eq!(hw["nvidia"]["gpus"][0]["compute_capability"], "8.6");
    assert!(
        hw["tried"][0]
            .as_str()
            .is_some_and(|t| t.starts_with("nvml: "))
    );
    assert_eq!(r.selected(), "linux-x86_64-cuda12.6");
}

#[test]
fn nvidia_smi_with_many_gpus_reads_every_line() {
    let r = smi("many-gpus", &[]);
    let gpus = r.hardware()["nvidia"]["gpus"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(gpus.len(), 8);
    assert_eq!(gpus[7]["index"], 7);
    assert_eq!(r.selected(), "linux-x86_64-cuda13.0");
}

#[test]
fn nvidia_smi_of_an_old_driver_without_compute_cap() {
    let r = smi("old-driver", &[]);
    assert_eq!(r.hardware()["nvidia"]["driver"], "390.157");
    assert_eq!(r.selected(), "linux-x86_64-cpu");
}

#[test]
fn nvidia_smi_garbage_or_failure_is_not_a_gpu() {
    let r = smi("garbage", &[]);
    assert_eq!(r.hardware()["nvidia"], Value::Null);
    assert!(
        r.hardware()["tried"]
            .to_string()
            .contains("unexpected line")
    );
    assert_eq!(r.selected(), "linux-x86_64-cpu");
    let r = smi("exit-9", &[]);
    assert!(r.hardware()["tried"].to_string().contains("exited with 9"));
    assert_eq!(r.selected(), "linux-x86_64-cpu");
}

fn tree(name: &str, more: &[(&str, &str)]) -> Run {
    let root = hw_fixture(name);
    let sys = root.join("sys").to_string_lossy().into_owned();
    let proc = root.join("proc").to_string_lossy().into_owned();
    let rocm = root.join("rocm").to_string_lossy().into_owned();
    let mut envs = vec![
        ("PEFT_SYSFS_ROOT", sys.as_str()),
        ("PEFT_PROCFS_ROOT", proc.as_str()),
        ("ROCM_PATH", rocm.as_str()),
    ];
    envs.extend_from_slice(more);
    let r = detect(&envs, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

#[test]
fn nvidia_on_pci_without_a_driver_gets_the_cpu_and_the_hint() {
    let smi9 = hw_fixture("nvidia-smi/exit-9")
        .to_string_lossy()
        .into_owned();
    let r = tree("pci-no-driver", &[("PEFT_NVIDIA_SMI", &smi9)]);
    let hw = r.hardware();
    assert_eq!(hw["nvidia"], Value::Null);
    let pci = hw["nvidia_pci"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        pci.len(),
        1,
        "only the display-class NVIDIA function: {pci:?}"
    );
    assert_eq!(pci[0]["device"], "0x2204");
    assert_eq!(hw["ram_bytes"], 32768000u64 * 1024);
    let hints = hw["hints"].to_string();
    assert!(
        hints.contains("install or update the NVIDIA driver"),
        "{hints}"
    );
    assert_eq!(r.selected(), "linux-x86_64-cpu");
    r.refused(
        "linux-x86_64-cuda12.6",
        &["PCI bus", "install or update the NVIDIA driver"],
    );
    // People see the hint too.
    let root = hw_fixture("pci-no-driver");
    let human = detect(
        &[
            ("PEFT_SYSFS_ROOT", &root.join("sys").to_string_lossy()),
            ("PEFT_PROCFS_ROOT", &root.join("proc").to_string_lossy()),
        ],
        &[],
    );
    assert!(
        human
            .stderr
            .contains("hint: An NVIDIA GPU is on the PCI bus"),
        "{}",
        human.stderr
    );
}

#[test]
fn driver_seen_only_in_proc_gets_the_cpu_and_says_why() {
    let r = tree("procfs-driver", &[]);
    let nv = &r.hardware()["nvidia"];
    assert_eq!(nv["source"], "procfs");
    assert_eq!(nv["driver"], "570.86.15");
    assert_eq!(nv["gpus"][0]["name"], "NVIDIA GeForce RTX 3090");
    assert_eq!(
        nv["gpus"][0]["uuid"],
        "GPU-9a3f2c1e-0000-4000-8000-000000003090"
    );
    assert!(
        r.hardware()["hints"]
            .to_string()
            .contains("neither NVML nor nvidia-smi")
    );
    assert_eq!(r.selected(), "linux-x86_64-cpu");
    let r = tree("sysfs-driver", &[]);
    assert_eq!(r.hardware()["nvidia"]["driver"], "550.54.14");
}

#[test]
fn amd_gpus_are_recorded_from_the_kfd_topology() {
    let r = tree("amd-rocm", &[]);
    let amd = &r.hardware()["amd"];
    assert_eq!(amd["kfd"], true);
    assert_eq!(amd["rocm"], "6.2.4");
    assert_eq!(
        amd["gpus"].as_array().map(Vec::len),
        Some(1),
        "the CPU node is not a GPU"
    );
    assert_eq!(amd["gpus"][0]["gfx"], "gfx1100");
    assert_eq!(amd["gpus"][0]["memory_bytes"], 25753026560u64);
    // The catalogue offers no ROCm build yet.
    assert_eq!(r.selected(), "linux-x86_64-cpu");
}

#[test]
fn a_forced_variant_wins_with_a_warning() {
    let r = detect(
        &[("PEFT_BACKEND_VARIANT", "linux-x86_64-cuda13.0")],
        &["--json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.selected(), "linux-x86_64-cuda13.0");
    assert!(
        r.warnings().contains("was forced but does not fit"),
        "{}",
        r.warnings()
    );
    let r = detect(&[], &["--json", "--variant", "linux-x86_64-cuda12.8"]);
    assert_eq!(r.selected(), "linux-x86_64-cuda12.8");
    // An id the catalogue does not offer is a usage error naming the offered ids.
    let r = detect(&[], &["--json", "--variant", "linux-x86_64-rocm9"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.one("error")["exit_code"], 2);
    assert_eq!(r.one("error")["reason"], "unknown_variant");
    assert!(
        r.one("error")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("linux-x86_64-cpu"),
        "{}",
        r.one("error")
    );
}

#[test]
fn a_driver_library_mismatch_asks_for_a_reboot() {
    let r = nvml("580.95.05", "13000", H100, &[("FAKE_NVML_FAIL", "18")]);
    assert_eq!(r.hardware()["nvidia"], Value::Null);
    assert!(
        r.hardware()["hints"].to_string().contains("reboot"),
        "{}",
        r.hardware()
    );
    assert_eq!(r.selected(), "linux-x86_64-cpu");
}
