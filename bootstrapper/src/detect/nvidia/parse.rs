//! The pure text parsers behind the NVIDIA probes: `nvidia-smi`'s CSV and banner,
//! the kernel module's version file, `/proc/driver/nvidia/gpus/*/information`.

use peft_manifest::{Dotted, Gpu};

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
