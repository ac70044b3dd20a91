//! The NVIDIA driver and its GPUs, from the best source that answers:
//!
//! 1. NVML loaded at run time (`libnvidia-ml.so.1` / `nvml.dll`, or
//!    `PEFT_NVML_LIBRARY`): driver version, the CUDA version the driver supports,
//!    and every GPU's name, UUID, compute capability and memory;
//! 2. `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` (every line; on
//!    PATH or in the usual places, or `PEFT_NVIDIA_SMI`), plus its banner for the
//!    CUDA version;
//! 3. `/proc/driver/nvidia/version` or `/sys/module/nvidia/version`, with the GPUs
//!    named in `/proc/driver/nvidia/gpus/*/information` (no compute capability).
//!
//! Each probe is thin; the text parsers are pure and tested on fixtures.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "windows"))]
use nvml_wrapper::Nvml;
#[cfg(any(target_os = "linux", target_os = "windows"))]
use peft_manifest::hardware::cuda_from_int;
use peft_manifest::{Dotted, Gpu, GpuSource, Nvidia};

use super::Config;
use crate::process::run_limited;

const SMI_TIMEOUT: Duration = Duration::from_secs(15);
const SMI_FIELDS: &str = "index,name,uuid,compute_cap,memory.total,driver_version";
const SMI_FIELDS_OLD: &str = "index,name,uuid,memory.total,driver_version";

/// Tries NVML, then `nvidia-smi`, then `/proc`; notes what each said in `tried`.
pub fn probe(cfg: &Config, tried: &mut Vec<String>) -> Option<Nvidia> {
    for (name, result) in [
        ("nvml", nvml(cfg)),
        ("nvidia-smi", smi(cfg)),
        ("procfs", procfs(&cfg.procfs, &cfg.sysfs)),
    ] {
        match result {
            Ok(n) => {
                tried.push(format!(
                    "{name}: driver {} with {} GPU(s)",
                    n.driver,
                    n.gpus.len()
                ));
                return Some(n);
            }
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    None
}

#[cfg(any(target_os = "linux", target_os = "windows"))]
fn nvml_candidates(cfg: &Config) -> Vec<PathBuf> {
    if let Some(p) = &cfg.nvml_library {
        return vec![p.clone()];
    }
    let names: &[&str] = if cfg!(windows) {
        &[
            "nvml.dll",
            r"C:\Windows\System32\nvml.dll",
            r"C:\Program Files\NVIDIA Corporation\NVSMI\nvml.dll",
        ]
    } else {
        &[
            "libnvidia-ml.so.1",
            "/usr/lib/wsl/lib/libnvidia-ml.so.1",
            "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
            "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
            "/usr/lib64/libnvidia-ml.so.1",
            "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
        ]
    };
    names.iter().map(PathBuf::from).collect()
}

#[cfg(not(any(target_os = "linux", target_os = "windows")))]
fn nvml(_cfg: &Config) -> Result<Nvidia, String> {
    Err("NVML is not used on this OS".into())
}

#[cfg(any(target_os = "linux", target_os = "windows"))]
fn nvml(cfg: &Config) -> Result<Nvidia, String> {
    let mut errors: Vec<String> = Vec::new();
    for path in nvml_candidates(cfg) {
        // Absolute candidates that do not exist are not worth a dlopen error each.
        if path.is_absolute() && !path.exists() && cfg.nvml_library.is_none() {
            continue;
        }
        match Nvml::builder().lib_path(path.as_os_str()).init() {
            Ok(n) => return read_nvml(&n, &path),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    Err(if errors.is_empty() {
        "no NVML library found".into()
    } else {
        errors.join("; ")
    })
}

#[cfg(any(target_os = "linux", target_os = "windows"))]
fn read_nvml(n: &Nvml, path: &Path) -> Result<Nvidia, String> {
    let raw = n
        .sys_driver_version()
        .map_err(|e| format!("{}: driver version: {e}", path.display()))?;
    let driver: Dotted = raw
        .parse()
        .map_err(|_| format!("NVML reports the driver version {raw:?}, which is not a version"))?;
    let cuda = n.sys_cuda_driver_version().ok().and_then(cuda_from_int);
    let count = n
        .device_count()
        .map_err(|e| format!("{}: device count: {e}", path.display()))?;
    let mut gpus = Vec::new();
    for index in 0..count {
        let Ok(dev) = n.device_by_index(index) else {
            // A GPU that NVML cannot open (lost, no permission) is not usable by CUDA either.
            continue;
        };
        gpus.push(Gpu {
            index,
            name: dev.name().unwrap_or_else(|_| "unknown NVIDIA GPU".into()),
            uuid: dev.uuid().ok(),
            compute_capability: dev
                .cuda_compute_capability()
                .ok()
                .filter(|c| c.major >= 0 && c.minor >= 0)
                .map(|c| Dotted::new(&[c.major as u32, c.minor as u32])),
            memory_bytes: dev.memory_info().ok().map(|m| m.total),
        });
    }
    Ok(Nvidia {
        driver,
        cuda,
        source: GpuSource::Nvml,
        gpus,
    })
}

fn smi_candidates(cfg: &Config) -> Vec<PathBuf> {
    if let Some(p) = &cfg.nvidia_smi {
        return vec![p.clone()];
    }
    let names: &[&str] = if cfg!(windows) {
        &[
            "nvidia-smi",
            r"C:\Windows\System32\nvidia-smi.exe",
            r"C:\Program Files\NVIDIA Corporation\NVSMI\nvidia-smi.exe",
        ]
    } else {
        &[
            "nvidia-smi",
            "/usr/bin/nvidia-smi",
            "/usr/lib/wsl/lib/nvidia-smi",
            "/usr/local/nvidia/bin/nvidia-smi",
        ]
    };
    names.iter().map(PathBuf::from).collect()
}

fn run_smi(exe: &Path, args: &[&str]) -> Result<(bool, String), String> {
    let done = run_limited(Command::new(exe).args(args), SMI_TIMEOUT)
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let out = String::from_utf8_lossy(&done.stdout).into_owned();
    match done.status {
        None => Err(format!(
            "{} did not answer within {} s",
            exe.display(),
            SMI_TIMEOUT.as_secs()
        )),
        Some(s) if s.success() => Ok((true, out)),
        Some(s) => {
            let err = String::from_utf8_lossy(&done.stderr);
            let said = format!("{out}\n{err}");
            let first = said
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            Ok((
                false,
                format!(
                    "{} exited with {}: {}",
                    exe.display(),
                    s.code()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "a signal".into()),
                    first.chars().take(200).collect::<String>()
                ),
            ))
        }
    }
}

fn smi(cfg: &Config) -> Result<Nvidia, String> {
    let mut errors = Vec::new();
    for exe in smi_candidates(cfg) {
        if exe.is_absolute() && !exe.exists() && cfg.nvidia_smi.is_none() {
            continue;
        }
        let query = |fields: &str| {
            run_smi(
                &exe,
                &[
                    &format!("--query-gpu={fields}"),
                    "--format=csv,noheader,nounits",
                ],
            )
        };
        let (with_cc, (ok, text)) = match query(SMI_FIELDS) {
            Err(e) => {
                errors.push(e);
                continue;
            }
            // Drivers before 510 do not know the compute_cap field.
            Ok((false, t)) if t.contains("compute_cap") => match query(SMI_FIELDS_OLD) {
                Ok(r) => (false, r),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
            Ok(r) => (true, r),
        };
        if !ok {
            errors.push(text);
            continue;
        }
        match parse_smi_csv(&text, with_cc) {
            Ok((driver, gpus)) => {
                let cuda = run_smi(&exe, &[])
                    .ok()
                    .filter(|(ok, _)| *ok)
                    .and_then(|(_, banner)| parse_smi_cuda(&banner));
                return Ok(Nvidia {
                    driver,
                    cuda,
                    source: GpuSource::NvidiaSmi,
                    gpus,
                });
            }
            Err(e) => errors.push(format!("{}: {e}", exe.display())),
        }
    }
    Err(if errors.is_empty() {
        "not found".into()
    } else {
        errors.join("; ")
    })
}

/// `[N/A]`, `[Not Supported]` and empty fields are unknown.
fn field(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty() && !s.starts_with('[') && s != "N/A").then_some(s)
}

/// Parses `nvidia-smi --query-gpu=index,name,uuid[,compute_cap],memory.total,driver_version
/// --format=csv,noheader,nounits`: one GPU a line; memory in MiB.
pub fn parse_smi_csv(text: &str, with_cc: bool) -> Result<(Dotted, Vec<Gpu>), String> {
    let want = if with_cc { 6 } else { 5 };
    let mut driver: Option<Dotted> = None;
    let mut gpus = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || {
            format!(
                "unexpected line {:?}",
                line.chars().take(80).collect::<String>()
            )
        };
        if f.len() != want {
            return Err(bad());
        }
        let index: u32 = f[0].parse().map_err(|_| bad())?;
        let (cc, mem, drv) = if with_cc {
            (field(f[3]), f[4], f[5])
        } else {
            (None, f[3], f[4])
        };
        let d: Dotted = drv.parse().map_err(|_| bad())?;
        driver.get_or_insert(d);
        gpus.push(Gpu {
            index,
            name: f[1].to_string(),
            uuid: field(f[2]).map(String::from),
            compute_capability: match cc {
                Some(c) => Some(c.parse().map_err(|_| bad())?),
                None => None,
            },
            memory_bytes: field(mem)
                .and_then(|m| m.parse::<u64>().ok())
                .map(|m| m << 20),
        });
    }
    match driver {
        Some(d) => Ok((d, gpus)),
        None => Err("no GPU lines".into()),
    }
}

/// The `CUDA Version: 12.2` of `nvidia-smi`'s banner.
pub fn parse_smi_cuda(banner: &str) -> Option<Dotted> {
    let at = banner.find("CUDA Version:")?;
    banner[at + "CUDA Version:".len()..]
        .split_whitespace()
        .next()?
        .trim_end_matches('|')
        .parse()
        .ok()
}

/// The driver version in `/proc/driver/nvidia/version` (`NVRM version: NVIDIA UNIX
/// x86_64 Kernel Module  535.104.05  ...`) or `/sys/module/nvidia/version`.
pub fn parse_driver_version(text: &str) -> Option<Dotted> {
    let line = text
        .lines()
        .find(|l| l.starts_with("NVRM version:"))
        .or_else(|| text.lines().next())?;
    line.split_whitespace()
        .filter(|t| t.contains('.'))
        .find_map(|t| t.parse::<Dotted>().ok().filter(|d| d.parts().len() >= 2))
}

/// `Model:` and `GPU UUID:` of `/proc/driver/nvidia/gpus/<bus>/information`.
pub fn parse_gpu_information(text: &str) -> (Option<String>, Option<String>) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && !v.starts_with('?'))
    };
    (get("Model:"), get("GPU UUID:"))
}

fn procfs(procfs: &Path, sysfs: &Path) -> Result<Nvidia, String> {
    let sources = [
        procfs.join("driver/nvidia/version"),
        sysfs.join("module/nvidia/version"),
    ];
    let driver = sources
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| parse_driver_version(&t))
        })
        .ok_or_else(|| {
            format!(
                "no NVIDIA kernel module ({} and {} are absent)",
                sources[0].display(),
                sources[1].display()
            )
        })?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(procfs.join("driver/nvidia/gpus"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    let gpus = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (name, uuid) = std::fs::read_to_string(d.join("information"))
                .map(|t| parse_gpu_information(&t))
                .unwrap_or((None, None));
            Gpu {
                index: i as u32,
                name: name.unwrap_or_else(|| {
                    format!(
                        "NVIDIA GPU at {}",
                        d.file_name().unwrap_or(OsStr::new("?")).to_string_lossy()
                    )
                }),
                uuid,
                compute_capability: None,
                memory_bytes: None,
            }
        })
        .collect();
    Ok(Nvidia {
        driver,
        cuda: None,
        source: GpuSource::Procfs,
        gpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smi_csv_one_and_many_gpus() {
        let (d, g) = parse_smi_csv(
            "0, NVIDIA H100 80GB HBM3, GPU-4d3c, 9.0, 81559, 580.95.05\n",
            true,
        )
        .expect("parses");
        assert_eq!(d.to_string(), "580.95.05");
        assert_eq!(g[0].compute_capability, Some(Dotted::new(&[9, 0])));
        assert_eq!(g[0].memory_bytes, Some(81559 << 20));
        let (_, g) = parse_smi_csv(
            "0, NVIDIA GeForce GTX 1080 Ti, GPU-a, 6.1, 11264, 570.86.15\n1, NVIDIA GeForce RTX 5090, GPU-b, 12.0, 32607, 570.86.15\n",
            true,
        )
        .expect("parses");
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].compute_capability, Some(Dotted::new(&[12, 0])));
        let (_, g) = parse_smi_csv("0, Tesla K80, [N/A], 11441, 470.256.02", false).expect("old");
        assert_eq!(
            (g[0].uuid.as_deref(), g[0].compute_capability.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn smi_garbage_is_refused() {
        for bad in [
            "",
            "No devices were found",
            "0, x, y, z, 1, 2\n1, a",
            "a, b, c, 9.0, 1, 580",
        ] {
            assert!(parse_smi_csv(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn smi_banner_cuda_version() {
        let banner =
            "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2     |";
        assert_eq!(parse_smi_cuda(banner), Some(Dotted::new(&[12, 2])));
        assert_eq!(parse_smi_cuda("nothing"), None);
    }

    #[test]
    fn proc_and_sys_driver_versions() {
        let proc = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
        assert_eq!(
            parse_driver_version(proc).map(|d| d.to_string()).as_deref(),
            Some("535.104.05")
        );
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jan 16 00:22:25 UTC 2025\n";
        assert_eq!(
            parse_driver_version(open).map(|d| d.to_string()).as_deref(),
            Some("570.86.15")
        );
        assert_eq!(
            parse_driver_version("550.54.14\n")
                .map(|d| d.to_string())
                .as_deref(),
            Some("550.54.14")
        );
        assert_eq!(parse_driver_version("garbage"), None);
        let info = "Model: \t\t NVIDIA GeForce RTX 3090\nIRQ:   \t\t 140\nGPU UUID: \t GPU-9a3f\nBus Location: \t 0000:01:00.0\n";
        assert_eq!(
            parse_gpu_information(info),
            (
                Some("NVIDIA GeForce RTX 3090".into()),
                Some("GPU-9a3f".into())
            )
        );
    }
}
