//! The facts about a machine that variant selection decides on.
//!
//! `peft-bootstrap detect` gathers them (NVML, `nvidia-smi`, `/proc`, `/sys`,
//! `sysctl`); this module only holds them and answers pure questions about them:
//! which NVIDIA GPUs CUDA will see under `CUDA_VISIBLE_DEVICES`
//! ([`Hardware::visible_gpus`]), and a fingerprint of the parts a probe result
//! depends on ([`Hardware::machine_key`]). The types serialize as the body of the
//! `hardware` JSON event, so a person reading it sees the same facts the rules saw.

use serde::{Deserialize, Serialize};

use crate::Dotted;
use crate::model::{Arch, Os};

/// Everything selection knows about a machine. Unknown facts are `None` or empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    pub os: Os,
    /// The machine's architecture: `arm64` on Apple Silicon even when this process
    /// runs as x86_64 under Rosetta.
    pub arch: Arch,
    /// macOS `14.5`, Windows `10.0.22631`, the Linux kernel `6.1.0`.
    #[serde(default)]
    pub os_version: Option<Dotted>,
    /// A readable OS name (`Debian GNU/Linux 12 (bookworm)`, `macOS 14.5`).
    #[serde(default)]
    pub os_name: Option<String>,
    /// This process is an x86_64 binary translated by Rosetta 2.
    #[serde(default)]
    pub rosetta: bool,
    #[serde(default)]
    pub cpu: Cpu,
    #[serde(default)]
    pub ram_bytes: Option<u64>,
    /// Free bytes on the disk holding the cache.
    #[serde(default)]
    pub disk_free_bytes: Option<u64>,
    /// The NVIDIA driver and its GPUs, when a driver answered.
    #[serde(default)]
    pub nvidia: Option<Nvidia>,
    /// NVIDIA display devices on the PCI bus (Linux), driver or not.
    #[serde(default)]
    pub nvidia_pci: Vec<PciDevice>,
    /// AMD GPUs known to the ROCm kernel driver (Linux).
    #[serde(default)]
    pub amd: Option<Amd>,
    /// The raw `CUDA_VISIBLE_DEVICES`, when set (an empty value hides every GPU).
    #[serde(default)]
    pub cuda_visible_devices: Option<String>,
}

/// The CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// Lower-case feature names as variants name them: `avx2`, `avx512f`, `neon`.
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub cores: Option<u32>,
    #[serde(default)]
    pub model: Option<String>,
}

/// Which probe found the NVIDIA driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GpuSource {
    #[serde(rename = "nvml")]
    Nvml,
    #[serde(rename = "nvidia-smi")]
    NvidiaSmi,
    /// `/proc/driver/nvidia` or `/sys/module/nvidia`: the driver version and GPU
    /// names only, no compute capability.
    #[serde(rename = "procfs")]
    Procfs,
}

impl GpuSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuSource::Nvml => "nvml",
            GpuSource::NvidiaSmi => "nvidia-smi",
            GpuSource::Procfs => "procfs",
        }
    }
}

/// An NVIDIA driver that answered, and its GPUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nvidia {
    /// The driver version, e.g. `580.95.05`.
    pub driver: Dotted,
    /// The newest CUDA version the driver supports, e.g. `13.0`.
    #[serde(default)]
    pub cuda: Option<Dotted>,
    pub source: GpuSource,
    #[serde(default)]
    pub gpus: Vec<Gpu>,
}

/// One NVIDIA GPU as the driver enumerates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// The driver's index (NVML and `nvidia-smi` order: PCI bus order).
    pub index: u32,
    pub name: String,
    #[serde(default)]
    pub uuid: Option<String>,
    /// e.g. `8.6` for sm_86.
    #[serde(default)]
    pub compute_capability: Option<Dotted>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

impl Gpu {
    /// `GPU 0 (NVIDIA GeForce RTX 3090)`, for messages.
    pub fn label(&self) -> String {
        format!("GPU {} ({})", self.index, self.name)
    }

    /// What `CUDA_VISIBLE_DEVICES` should say to keep this GPU: its UUID when known
    /// (stable whatever order CUDA enumerates in), else its index.
    pub fn cuda_id(&self) -> String {
        self.uuid.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// A display-class device on the PCI bus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// `0000:01:00.0`.
    pub slot: String,
    /// `0x10de` (NVIDIA), `0x1002` (AMD).
    pub vendor: String,
    pub device: String,
    /// The kernel driver bound to it (`nvidia`, `nouveau`, `vfio-pci`), if any.
    #[serde(default)]
    pub driver: Option<String>,
}

/// AMD GPUs seen through the ROCm kernel driver (`/sys/class/kfd`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amd {
    /// `/sys/class/kfd` exists: the amdgpu driver offers compute.
    pub kfd: bool,
    /// The ROCm user-space version installed (`/opt/rocm/.info/version`), if any.
    #[serde(default)]
    pub rocm: Option<Dotted>,
    #[serde(default)]
    pub gpus: Vec<AmdGpu>,
}

/// One AMD GPU node of the KFD topology.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmdGpu {
    pub node: u32,
    /// The LLVM target, e.g. `gfx1100`.
    #[serde(default)]
    pub gfx: Option<String>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// The NVIDIA GPUs CUDA will use, after `CUDA_VISIBLE_DEVICES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visible<'a> {
    pub gpus: Vec<&'a Gpu>,
    /// Why some or all GPUs are hidden, for a person.
    pub note: Option<String>,
}

impl Hardware {
    /// A machine with this os/arch and no other known facts.
    pub fn new(os: Os, arch: Arch) -> Hardware {
        Hardware {
            os,
            arch,
            os_version: None,
            os_name: None,
            rosetta: false,
            cpu: Cpu::default(),
            ram_bytes: None,
            disk_free_bytes: None,
            nvidia: None,
            nvidia_pci: Vec::new(),
            amd: None,
            cuda_visible_devices: None,
        }
    }

    /// The os/arch this binary was compiled for, with no accelerator facts.
    pub fn this_platform() -> Hardware {
        Hardware::new(Os::current(), Arch::current())
    }

    /// The NVIDIA GPUs CUDA will see, following CUDA's rules for
    /// `CUDA_VISIBLE_DEVICES`: a comma-separated list of indices or (prefixes of)
    /// `GPU-` UUIDs, in that order; the first entry that names no GPU (such as `-1`)
    /// ends the list; an empty value hides every GPU. `MIG-` entries cannot be mapped
    /// to a GPU here, so every GPU is kept (the compute-capability rule then checks
    /// them all).
    pub fn visible_gpus(&self) -> Visible<'_> {
        let all: Vec<&Gpu> = self
            .nvidia
            .as_ref()
            .map(|n| n.gpus.iter().collect())
            .unwrap_or_default();
        let Some(raw) = &self.cuda_visible_devices else {
            return Visible {
                gpus: all,
                note: None,
            };
        };
        let value = raw.trim();
        if value.is_empty() {
            return Visible {
                gpus: Vec::new(),
                note: Some("CUDA_VISIBLE_DEVICES is set and empty, which hides every GPU".into()),
            };
        }
        let mut kept: Vec<&Gpu> = Vec::new();
        let mut note = None;
        for entry in value.split(',').map(str::trim) {
            if entry.starts_with("MIG-") {
                return Visible {
                    gpus: all,
                    note: Some(format!(
                        "CUDA_VISIBLE_DEVICES names the MIG instance {entry}; every GPU is checked"
                    )),
                };
            }
            let found = match entry.parse::<u32>() {
                Ok(i) => all.iter().find(|g| g.index == i).copied(),
                Err(_) => {
                    let want = entry.to_ascii_lowercase();
                    let mut m = all.iter().filter(|g| {
                        g.uuid.as_ref().is_some_and(|u| {
                            !want.is_empty() && u.to_ascii_lowercase().starts_with(&want)
                        })
                    });
                    match (m.next(), m.next()) {
                        (Some(g), None) => Some(*g),
                        _ => None,
                    }
                }
            };
            match found {
                Some(g) => {
                    if !kept.iter().any(|k| k.index == g.index) {
                        kept.push(g);
                    }
                }
                None => {
                    note = Some(if kept.is_empty() {
                        format!(
                            "CUDA_VISIBLE_DEVICES={value} hides every GPU ({entry:?} names none)"
                        )
                    } else {
                        format!(
                            "CUDA_VISIBLE_DEVICES={value}: {entry:?} names no GPU, so CUDA ignores it and what follows"
                        )
                    });
                    break;
                }
            }
        }
        if note.is_none() && kept.len() < all.len() {
            let shown: Vec<String> = kept.iter().map(|g| g.index.to_string()).collect();
            note = Some(format!(
                "CUDA_VISIBLE_DEVICES={value} keeps GPU {} of {}",
                shown.join(", "),
                all.len()
            ));
        }
        Visible { gpus: kept, note }
    }

    /// A fingerprint of what a probe's result depends on: the OS and its version,
    /// the NVIDIA driver and GPU UUIDs, the AMD targets. A driver update or a new GPU
    /// changes it, which clears the variants a probe marked bad.
    pub fn machine_key(&self) -> String {
        let mut key = format!("{}-{}", self.os.as_str(), self.arch.as_str());
        if self.os == Os::Macos
            && let Some(v) = &self.os_version
        {
            key.push_str(&format!(" macos {v}"));
        }
        if let Some(n) = &self.nvidia {
            let mut ids: Vec<String> = n
                .gpus
                .iter()
                .map(|g| {
                    g.uuid
                        .clone()
                        .unwrap_or_else(|| format!("{}#{}", g.name, g.index))
                })
                .collect();
            ids.sort();
            key.push_str(&format!(" nvidia {} [{}]", n.driver, ids.join(",")));
        }
        if let Some(a) = &self.amd {
            let gfx: Vec<&str> = a.gpus.iter().filter_map(|g| g.gfx.as_deref()).collect();
            let rocm = a.rocm.as_ref().map(|r| r.to_string()).unwrap_or_default();
            key.push_str(&format!(" amd {rocm} [{}]", gfx.join(",")));
        }
        key
    }
}

/// The CUDA version NVML reports as an integer (`12020`) as `12.2`.
pub fn cuda_from_int(v: i32) -> Option<Dotted> {
    (v > 0).then(|| Dotted::new(&[(v / 1000) as u32, ((v % 1000) / 10) as u32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, uuid: &str) -> Gpu {
        Gpu {
            index,
            name: format!("G{index}"),
            uuid: Some(uuid.into()),
            compute_capability: None,
            memory_bytes: None,
        }
    }

    fn hw(cvd: Option<&str>) -> Hardware {
        let mut h = Hardware::new(Os::Linux, Arch::X86_64);
        h.nvidia = Some(Nvidia {
            driver: Dotted::new(&[580, 95, 5]),
            cuda: None,
            source: GpuSource::Nvml,
            gpus: vec![
                gpu(0, "GPU-aaa111"),
                gpu(1, "GPU-bbb222"),
                gpu(2, "GPU-ccc333"),
            ],
        });
        h.cuda_visible_devices = cvd.map(String::from);
        h
    }

    fn kept(cvd: Option<&str>) -> Vec<u32> {
        hw(cvd)
            .visible_gpus()
            .gpus
            .iter()
            .map(|g| g.index)
            .collect()
    }

    #[test]
    fn cuda_visible_devices_follows_cuda() {
        assert_eq!(kept(None), vec![0, 1, 2]);
        assert_eq!(kept(Some("")), Vec::<u32>::new());
        assert_eq!(kept(Some("-1")), Vec::<u32>::new());
        assert_eq!(kept(Some("2,0")), vec![2, 0]);
        assert_eq!(
            kept(Some("1,7,0")),
            vec![1],
            "an invalid entry ends the list"
        );
        assert_eq!(kept(Some("GPU-bbb")), vec![1], "uuid prefixes");
        assert_eq!(kept(Some("GPU-")), Vec::<u32>::new(), "ambiguous prefix");
        assert_eq!(kept(Some("0,0")), vec![0]);
        assert_eq!(kept(Some("MIG-xyz")), vec![0, 1, 2]);
        assert!(hw(Some("-1")).visible_gpus().note.is_some());
        assert!(hw(Some("1")).visible_gpus().note.is_some());
    }

    #[test]
    fn machine_key_changes_with_driver_and_gpus() {
        let a = hw(None);
        let mut b = a.clone();
        assert_eq!(a.machine_key(), b.machine_key());
        if let Some(n) = b.nvidia.as_mut() {
            n.driver = Dotted::new(&[580, 105, 8]);
        }
        assert_ne!(a.machine_key(), b.machine_key());
        let mut c = a.clone();
        if let Some(n) = c.nvidia.as_mut() {
            n.gpus.pop();
        }
        assert_ne!(a.machine_key(), c.machine_key());
        assert!(a.machine_key().contains("GPU-aaa111"));
    }

    #[test]
    fn cuda_integer_versions() {
        assert_eq!(cuda_from_int(12020), Some(Dotted::new(&[12, 2])));
        assert_eq!(cuda_from_int(13000), Some(Dotted::new(&[13, 0])));
        assert_eq!(cuda_from_int(0), None);
    }
}
