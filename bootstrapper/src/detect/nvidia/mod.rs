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
//! Each probe is thin; the text parsers ([`parse`]) are pure and tested on fixtures.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "windows"))]
use nvml_wrapper::Nvml;
#[cfg(any(target_os = "linux", target_os = "windows"))]
use peft_manifest::hardware::cuda_from_int;
use peft_manifest::{Dotted, Gpu, GpuSource, Nvidia};

mod parse;

pub use parse::{parse_driver_version, parse_gpu_information, parse_smi_csv, parse_smi_cuda};

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

fn procfs(procfs: &Path, sysfs: &Path) -> Result<Nvidia, String> {
    let sources = [
        procfs.join("driver/nvidia/version"),
        sysfs.join("module/nvidia/version"),
    ];
    let driver = sources
        .iter()
        .find_map(|p| {
            fs_err::read_to_string(p)
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
    let mut dirs: Vec<PathBuf> = fs_err::read_dir(procfs.join("driver/nvidia/gpus"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    let gpus = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (name, uuid) = fs_err::read_to_string(d.join("information"))
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
