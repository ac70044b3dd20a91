//! The rules one variant must meet on one machine, each with its reason.
//!
//! 1. os and architecture;
//! 2. the OS version (`requires.min_os_version`: MPS needs macOS 14) and CPU
//!    features (`requires.cpu_features`);
//! 3. the accelerator is there: an NVIDIA driver for `cuda`, Apple Silicon for
//!    `metal`, the ROCm kernel driver and an AMD GPU for `rocm`;
//! 4. `cuda` only: the driver is at least the floor for the build's CUDA version on
//!    this OS ([`driver_floor`]: the larger of `requires.min_driver` and NVIDIA's
//!    table), the driver supports the build's CUDA major (minor-version
//!    compatibility within a major), and every visible GPU's compute capability is
//!    inside `requires.compute_capability`.
//!
//! A CUDA build that serves only some of the visible GPUs is [`Check::Partial`]; the
//! caller decides, across the release, whether to narrow `CUDA_VISIBLE_DEVICES`.

use crate::Dotted;
use crate::hardware::{Gpu, Hardware};
use crate::model::{Accelerator, Arch, Os, Variant};

/// The verdict of the rules on one variant, before release-wide decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Fits; why.
    Fits(String),
    /// Does not fit; why.
    No(String),
    /// A CUDA build that meets every rule for the GPUs in `serves` (indices, a
    /// non-empty strict subset of the visible ones) and not for the others.
    Partial { serves: Vec<u32>, why_not: String },
}

/// NVIDIA's minimum driver for a CUDA major version on an OS (the CUDA
/// compatibility table): 13.x ≥ 580; 12.x ≥ 525.60.13 (Linux) / 527.41 (Windows);
/// 11.x ≥ 450.80.02 / 452.39. Builds with compressed kernels need more (≥ 550),
/// which the variant's `min_driver` says.
pub fn table_floor(os: Os, cuda: &Dotted) -> Option<Dotted> {
    let parts: &[u32] = match (cuda.major(), os) {
        (13, _) => &[580],
        (12, Os::Windows) => &[527, 41],
        (12, _) => &[525, 60, 13],
        (11, Os::Windows) => &[452, 39],
        (11, _) => &[450, 80, 2],
        _ => return None,
    };
    Some(Dotted::new(parts))
}

/// The lowest driver that runs `v` on `os`: the larger of its `min_driver` and the
/// table's floor for its CUDA version.
pub fn driver_floor(v: &Variant, os: Os) -> Option<Dotted> {
    let table = v.requires.cuda.as_ref().and_then(|c| table_floor(os, c));
    match (v.requires.min_driver.clone(), table) {
        (Some(a), Some(b)) => Some(if a >= b { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The newest CUDA major a driver supports, from its reported CUDA version or, when
/// that is unknown (the `/proc` fallback), from the table.
pub fn driver_cuda_major(os: Os, driver: &Dotted, reported: Option<&Dotted>) -> u32 {
    if let Some(c) = reported {
        return c.major();
    }
    (11..=13)
        .rev()
        .find(|m| table_floor(os, &Dotted::new(&[*m])).is_some_and(|f| driver >= &f))
        .unwrap_or(10)
}

/// Applies every rule to `v` on `hw`.
pub fn check(v: &Variant, hw: &Hardware) -> Check {
    if v.os != hw.os {
        return Check::No(format!(
            "built for {}, this is {}",
            v.os.as_str(),
            hw.os.as_str()
        ));
    }
    if v.arch != hw.arch {
        return Check::No(format!(
            "built for {}, this is {}",
            v.arch.as_str(),
            hw.arch.as_str()
        ));
    }
    let r = &v.requires;
    if let Some(min) = &r.min_os_version {
        match &hw.os_version {
            None => {
                return Check::No(format!(
                    "needs {} {min} or later, and the OS version could not be read",
                    os_label(hw.os)
                ));
            }
            Some(have) if have < min => {
                return Check::No(format!(
                    "needs {} {min} or later{}, this is {have}",
                    os_label(hw.os),
                    if v.accelerator == Accelerator::Metal {
                        " for Metal (MPS)"
                    } else {
                        ""
                    }
                ));
            }
            Some(_) => {}
        }
    }
    let missing: Vec<&str> = r
        .cpu_features
        .iter()
        .filter(|f| !hw.cpu.features.iter().any(|h| h.eq_ignore_ascii_case(f)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Check::No(format!(
            "needs the CPU features {}, which this CPU lacks",
            missing.join(", ")
        ));
    }
    match v.accelerator {
        Accelerator::Cpu => Check::Fits(format!(
            "runs on the CPU of this {}-{}",
            hw.os.as_str(),
            hw.arch.as_str()
        )),
        Accelerator::Metal => metal(hw),
        Accelerator::Rocm => rocm(v, hw),
        Accelerator::Cuda => cuda(v, hw),
        Accelerator::Unknown => {
            Check::No("needs an accelerator this bootstrapper does not know".into())
        }
    }
}

fn os_label(os: Os) -> &'static str {
    match os {
        Os::Macos => "macOS",
        Os::Windows => "Windows",
        Os::Linux => "Linux",
        Os::Unknown => "the OS",
    }
}

fn metal(hw: &Hardware) -> Check {
    if hw.os != Os::Macos || hw.arch != Arch::Arm64 {
        return Check::No("Metal needs macOS on Apple Silicon".into());
    }
    let version = hw
        .os_version
        .as_ref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    Check::Fits(format!(
        "Apple Silicon GPU through Metal (MPS) on macOS{version}{}",
        if hw.rosetta {
            "; this bootstrapper runs under Rosetta, the native arm64 build is used"
        } else {
            ""
        }
    ))
}

fn rocm(v: &Variant, hw: &Hardware) -> Check {
    let Some(amd) = hw.amd.as_ref().filter(|a| a.kfd) else {
        return Check::No(
            "needs an AMD GPU with the ROCm kernel driver (/sys/class/kfd); none was found".into(),
        );
    };
    if amd.gpus.is_empty() {
        return Check::No("the ROCm kernel driver lists no AMD GPU".into());
    }
    let gfx: Vec<&str> = amd.gpus.iter().filter_map(|g| g.gfx.as_deref()).collect();
    Check::Fits(format!(
        "AMD GPU {} through ROCm{}",
        if gfx.is_empty() {
            "(target unknown)".to_string()
        } else {
            gfx.join(", ")
        },
        v.requires
            .rocm
            .as_ref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default()
    ))
}

fn no_driver(hw: &Hardware) -> String {
    if hw.nvidia_pci.is_empty() {
        return "needs an NVIDIA GPU and driver; none was found".into();
    }
    let devs: Vec<String> = hw
        .nvidia_pci
        .iter()
        .map(|p| {
            format!(
                "{} ({})",
                p.slot,
                p.driver
                    .as_deref()
                    .map(|d| format!("bound to {d}"))
                    .unwrap_or_else(|| "no driver".into())
            )
        })
        .collect();
    format!(
        "an NVIDIA GPU is on the PCI bus ({}) but no usable NVIDIA driver answered: install or update the NVIDIA driver",
        devs.join(", ")
    )
}

fn cc_label(cc: &Dotted) -> String {
    let p = cc.parts();
    format!(
        "sm_{}{} ({cc})",
        p.first().copied().unwrap_or(0),
        p.get(1).copied().unwrap_or(0)
    )
}

fn cuda(v: &Variant, hw: &Hardware) -> Check {
    let Some(nv) = &hw.nvidia else {
        return Check::No(no_driver(hw));
    };
    let build = v.requires.cuda.as_ref();
    let build_text = build
        .map(|c| format!("CUDA {c}"))
        .unwrap_or("this build".into());
    if let Some(floor) = driver_floor(v, hw.os)
        && nv.driver < floor
    {
        return Check::No(format!(
            "needs NVIDIA driver ≥ {floor} for {build_text}, found {}",
            nv.driver
        ));
    }
    if let Some(b) = build {
        let have = driver_cuda_major(hw.os, &nv.driver, nv.cuda.as_ref());
        if have < b.major() {
            let says = nv
                .cuda
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_else(|| format!("{have}.x"));
            return Check::No(format!(
                "driver {} supports CUDA up to {says}; {build_text} needs a driver for CUDA {}.x",
                nv.driver,
                b.major()
            ));
        }
    }
    let visible = hw.visible_gpus();
    if visible.gpus.is_empty() {
        return Check::No(match visible.note {
            Some(n) => format!("no NVIDIA GPU is visible: {n}"),
            None => format!("the NVIDIA driver {} lists no GPU", nv.driver),
        });
    }
    let mut serves = Vec::new();
    let mut why_not = Vec::new();
    let mut why = Vec::new();
    for g in &visible.gpus {
        match gpu_fits(v, g) {
            Ok(s) => {
                serves.push(g.index);
                why.push(s);
            }
            Err(s) => why_not.push(s),
        }
    }
    let head = format!(
        "driver {} (CUDA {}) meets {}{}",
        nv.driver,
        nv.cuda
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "version unknown".into()),
        build_text,
        driver_floor(v, hw.os)
            .map(|f| format!(" (≥ {f})"))
            .unwrap_or_default()
    );
    if why_not.is_empty() {
        Check::Fits(format!("{head}; {}", why.join("; ")))
    } else if serves.is_empty() {
        Check::No(why_not.join("; "))
    } else {
        Check::Partial {
            serves,
            why_not: why_not.join("; "),
        }
    }
}

fn gpu_fits(v: &Variant, g: &Gpu) -> Result<String, String> {
    let Some(range) = &v.requires.compute_capability else {
        return Ok(format!("{} accepted (the build names no range)", g.label()));
    };
    match &g.compute_capability {
        None => Err(format!(
            "the compute capability of {} could not be read, so the build's {}–{} cannot be confirmed",
            g.label(),
            range.min,
            range.max
        )),
        Some(cc) if cc < &range.min || cc > &range.max => Err(format!(
            "{} is {}, outside this build's {}–{}",
            g.label(),
            cc_label(cc),
            range.min,
            range.max
        )),
        Some(cc) => Ok(format!(
            "{} {} within {}–{}",
            g.label(),
            cc_label(cc),
            range.min,
            range.max
        )),
    }
}
