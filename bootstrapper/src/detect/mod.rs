//! Hardware detection: thin OS probes feeding pure parsers, producing the
//! [`Hardware`] facts that [`peft_manifest::select`] decides on, plus hints for the
//! user and a log of what each probe said.
//!
//! - [`nvidia`]: NVML at run time, then `nvidia-smi`, then `/proc` and `/sys`;
//! - [`linux`]: display devices on the PCI bus (an NVIDIA GPU without a usable
//!   driver is reported, never silently ignored), AMD GPUs of the ROCm KFD
//!   topology, RAM, kernel and distribution;
//! - [`macos`]: Apple Silicon even under Rosetta, the macOS version, RAM;
//! - [`windows`]: the Windows version;
//! - here: CPU features, free disk at the cache, `CUDA_VISIBLE_DEVICES`, and the
//!   `hardware` event's body ([`Detected::to_event`]) and human lines
//!   ([`Detected::lines`]).
//!
//! Every root and tool can be redirected for tests: `PEFT_NVML_LIBRARY`,
//! `PEFT_NVIDIA_SMI`, `PEFT_SYSFS_ROOT`, `PEFT_PROCFS_ROOT`, `ROCM_PATH`.

pub mod linux;
// The macOS and Windows parsers are compiled everywhere so that their tests run on
// every OS; off their platform only those tests use them.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub mod macos;
pub mod nvidia;
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
pub mod windows;

use std::path::{Path, PathBuf};

use peft_manifest::{Arch, Hardware, Os};

use crate::env;
use crate::error::human_bytes;
use crate::report::{Event, HardwareEvent};

/// Where detection looks; [`Config::from_env`] gives the real places.
#[derive(Debug, Clone)]
pub struct Config {
    /// Only this NVML library, instead of the usual names and places.
    pub nvml_library: Option<PathBuf>,
    /// Only this `nvidia-smi`, instead of PATH and the usual places.
    pub nvidia_smi: Option<PathBuf>,
    pub sysfs: PathBuf,
    pub procfs: PathBuf,
    pub rocm_path: PathBuf,
    /// The raw `CUDA_VISIBLE_DEVICES` (set and empty is not unset).
    pub cuda_visible_devices: Option<String>,
    /// Free space is measured here.
    pub cache_dir: Option<PathBuf>,
}

impl Config {
    /// The settings of this process's environment, measuring free space at `cache_dir`.
    pub fn from_env(cache_dir: Option<&Path>) -> Config {
        let path = |name: &str, default: &str| {
            PathBuf::from(env::var(name).unwrap_or_else(|| default.to_string()))
        };
        Config {
            nvml_library: env::var(env::NVML_LIBRARY).map(PathBuf::from),
            nvidia_smi: env::var(env::NVIDIA_SMI).map(PathBuf::from),
            sysfs: path(env::SYSFS_ROOT, "/sys"),
            procfs: path(env::PROCFS_ROOT, "/proc"),
            rocm_path: path(env::ROCM_PATH, "/opt/rocm"),
            cuda_visible_devices: std::env::var(env::CUDA_VISIBLE_DEVICES).ok(),
            cache_dir: cache_dir.map(Path::to_path_buf),
        }
    }
}

/// What detection found, with notes for the user.
#[derive(Debug, Clone)]
pub struct Detected {
    pub hardware: Hardware,
    /// Things the user should act on (e.g. a GPU without a usable driver).
    pub hints: Vec<String>,
    /// What each probe said, for diagnosis.
    pub tried: Vec<String>,
}

/// Probes this machine.
pub fn detect(cfg: &Config) -> Detected {
    let mut hw = Hardware::this_platform();
    let mut tried = Vec::new();
    hw.cpu.features = cpu_features();
    hw.cpu.cores = std::thread::available_parallelism()
        .ok()
        .map(|n| n.get() as u32);
    hw.cuda_visible_devices = cfg.cuda_visible_devices.clone();
    hw.disk_free_bytes = cfg.cache_dir.as_deref().and_then(free_space);
    match hw.os {
        Os::Linux => {
            let (ram, kernel, name) = linux::system(&cfg.procfs);
            hw.ram_bytes = ram;
            hw.os_version = kernel;
            hw.os_name = name;
            let pci = linux::pci_display_devices(&cfg.sysfs);
            hw.amd = linux::amd(&cfg.sysfs, &cfg.rocm_path, &pci);
            hw.nvidia_pci = pci
                .into_iter()
                .filter(|p| p.vendor == linux::NVIDIA)
                .collect();
            hw.nvidia = nvidia::probe(cfg, &mut tried);
        }
        Os::Windows => {
            #[cfg(windows)]
            {
                hw.os_version = windows::version();
            }
            hw.os_name = Some("Windows".into());
            hw.nvidia = nvidia::probe(cfg, &mut tried);
        }
        Os::Macos => {
            #[cfg(target_os = "macos")]
            {
                let m = macos::probe();
                hw.arch = m.arch.unwrap_or(hw.arch);
                hw.rosetta = m.rosetta;
                hw.os_version = m.version.as_deref().and_then(|v| v.parse().ok());
                hw.os_name = m.version.map(|v| format!("macOS {v}"));
                hw.ram_bytes = m.ram;
                hw.cpu.model = m.cpu;
            }
            tried.push("nvidia: not probed on macOS (no CUDA)".into());
        }
        Os::Unknown => {}
    }
    let hints = hints(&hw, &tried);
    Detected {
        hardware: hw,
        hints,
        tried,
    }
}

/// Free bytes on the disk holding `dir` (or its nearest existing ancestor).
fn free_space(dir: &Path) -> Option<u64> {
    dir.ancestors()
        .find(|p| p.exists())
        .and_then(|p| fs4::available_space(p).ok())
}

/// The CPU features variants may ask for, as this CPU has them.
fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut f: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! x86 {
            ($($name:tt),*) => {$( if std::arch::is_x86_feature_detected!($name) { f.push($name); } )*};
        }
        x86!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! arm {
            ($($name:tt),*) => {$( if std::arch::is_aarch64_feature_detected!($name) { f.push($name); } )*};
        }
        arm!("neon", "fp16", "dotprod", "sve");
    }
    f.into_iter().map(String::from).collect()
}

/// What a person should know or do, from the facts and the probes' log.
pub fn hints(hw: &Hardware, tried: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    match &hw.nvidia {
        None if !hw.nvidia_pci.is_empty() => {
            let devs: Vec<String> = hw
                .nvidia_pci
                .iter()
                .map(|p| match &p.driver {
                    Some(d) => format!("{} device {} bound to {d}", p.slot, p.device),
                    None => format!("{} device {} with no driver bound", p.slot, p.device),
                })
                .collect();
            out.push(format!(
                "An NVIDIA GPU is on the PCI bus ({}) but no NVIDIA driver answered (NVML, nvidia-smi and /proc all failed; see `tried`): install or update the NVIDIA driver (580 or newer for CUDA 13 builds, 550 or newer for CUDA 12.8) to use it; the CPU build is used until then.",
                devs.join("; ")
            ));
        }
        Some(n) if n.source == peft_manifest::GpuSource::Procfs => out.push(format!(
            "The NVIDIA driver {} is loaded but neither NVML nor nvidia-smi answered (see `tried`), so the GPUs' compute capability is unknown and no CUDA build can be chosen: reinstall the NVIDIA driver, or reboot if it was just updated.",
            n.driver
        )),
        Some(n) if n.gpus.is_empty() => out.push(format!(
            "The NVIDIA driver {} answered but lists no GPU.",
            n.driver
        )),
        _ => {}
    }
    if tried
        .iter()
        .any(|t| t.to_ascii_lowercase().contains("mismatch"))
    {
        out.push(
            "NVML reports a driver/library version mismatch: reboot after a driver update.".into(),
        );
    }
    if let Some(note) = hw.visible_gpus().note {
        out.push(format!("{note}."));
    }
    if hw.rosetta {
        out.push("This bootstrapper runs under Rosetta on Apple Silicon; the native arm64 backend is chosen.".into());
    }
    if let Some(a) = &hw.amd
        && !a.kfd
    {
        out.push("An AMD GPU is on the PCI bus but the ROCm kernel driver (/sys/class/kfd) is missing; ROCm builds cannot use it.".into());
    }
    out
}

impl Detected {
    /// The `hardware` event: the facts, plus `visible_gpus`, `machine_key`,
    /// `hints`, `tried` and `summary` (the human lines).
    pub fn to_event(&self) -> Event {
        let visible = self
            .hardware
            .visible_gpus()
            .gpus
            .iter()
            .map(|g| g.index)
            .collect();
        Event::Hardware(Box::new(HardwareEvent {
            profile: self.hardware.clone(),
            visible_gpus: visible,
            machine_key: self.hardware.machine_key(),
            hints: self.hints.clone(),
            tried: self.tried.clone(),
            summary: self.lines(),
        }))
    }

    /// One line for the machine, one for the driver, one per GPU.
    pub fn lines(&self) -> Vec<String> {
        let h = &self.hardware;
        let mut out = vec![format!(
            "{}-{}{}{}; CPU: {} cores{}; RAM {}; {} free for the cache",
            h.os.as_str(),
            h.arch.as_str(),
            h.os_name
                .as_deref()
                .map(|n| format!(", {n}"))
                .unwrap_or_default(),
            if h.rosetta { " (under Rosetta)" } else { "" },
            h.cpu
                .cores
                .map(|c| c.to_string())
                .unwrap_or_else(|| "?".into()),
            if h.cpu.features.is_empty() {
                String::new()
            } else {
                format!(" ({})", h.cpu.features.join(" "))
            },
            h.ram_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "unknown".into()),
            h.disk_free_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "unknown".into()),
        )];
        match &h.nvidia {
            Some(n) => {
                out.push(format!(
                    "NVIDIA driver {} (CUDA {}), found by {}",
                    n.driver,
                    n.cuda
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    n.source.as_str()
                ));
                let visible = h.visible_gpus().gpus;
                for g in &n.gpus {
                    out.push(format!(
                        "  GPU {}: {}, compute capability {}, {}{}{}",
                        g.index,
                        g.name,
                        g.compute_capability
                            .as_ref()
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "unknown".into()),
                        g.memory_bytes
                            .map(human_bytes)
                            .unwrap_or_else(|| "memory unknown".into()),
                        g.uuid
                            .as_deref()
                            .map(|u| format!(", {u}"))
                            .unwrap_or_default(),
                        if visible.iter().any(|v| v.index == g.index) {
                            ""
                        } else {
                            " (hidden by CUDA_VISIBLE_DEVICES)"
                        }
                    ));
                }
            }
            None if h.os != Os::Macos => out.push("NVIDIA: no driver answered".into()),
            None => {}
        }
        if let Some(a) = &h.amd {
            out.push(format!(
                "AMD: ROCm kernel driver {}, ROCm {}, {} GPU(s){}",
                if a.kfd { "present" } else { "absent" },
                a.rocm
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "not installed".into()),
                a.gpus.len(),
                a.gpus
                    .iter()
                    .filter_map(|g| g.gfx.as_deref())
                    .map(|g| format!(" {g}"))
                    .collect::<String>()
            ));
        }
        if h.os == Os::Macos && h.arch == Arch::Arm64 {
            out.push("Apple Silicon GPU (Metal)".into());
        }
        out.extend(self.hints.iter().map(|h| format!("hint: {h}")));
        out
    }
}
