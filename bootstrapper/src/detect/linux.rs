//! Linux facts read from `/sys` and `/proc` (their roots come from [`super::Config`],
//! so tests read fixture trees): display devices on the PCI bus, AMD GPUs in the
//! KFD topology (ROCm), RAM, the kernel version and the distribution's name.

use std::path::Path;

use peft_manifest::{Amd, AmdGpu, Dotted, PciDevice};

/// PCI vendor ids.
pub const NVIDIA: &str = "0x10de";
pub const AMD: &str = "0x1002";

fn read_trim(p: &Path) -> Option<String> {
    fs_err::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Display-class devices (class `0x03....`: VGA, 3D, display controllers).
pub fn pci_display_devices(sysfs: &Path) -> Vec<PciDevice> {
    let Ok(rd) = fs_err::read_dir(sysfs.join("bus/pci/devices")) else {
        return Vec::new();
    };
    let mut out: Vec<PciDevice> = rd
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let class = read_trim(&dir.join("class"))?;
            if !class.to_ascii_lowercase().starts_with("0x03") {
                return None;
            }
            Some(PciDevice {
                slot: e.file_name().to_string_lossy().into_owned(),
                vendor: read_trim(&dir.join("vendor"))?.to_ascii_lowercase(),
                device: read_trim(&dir.join("device")).unwrap_or_default(),
                driver: fs_err::read_link(dir.join("driver"))
                    .ok()
                    .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned())),
            })
        })
        .collect();
    out.sort_by(|a, b| a.slot.cmp(&b.slot));
    out
}

/// `key value` lines of a KFD `properties` file.
pub fn kfd_property(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// `gfx_target_version` 90010 → `gfx90a`, 110000 → `gfx1100`.
pub fn gfx_name(v: u64) -> String {
    format!("gfx{}{:x}{:x}", v / 10000, (v / 100) % 100, v % 100)
}

/// AMD GPUs of the KFD topology, when the amdgpu driver offers compute or an AMD
/// display device is on the bus.
pub fn amd(sysfs: &Path, rocm_path: &Path, pci: &[PciDevice]) -> Option<Amd> {
    let kfd_dir = sysfs.join("class/kfd");
    let kfd = kfd_dir.exists();
    let mut gpus = Vec::new();
    if let Ok(rd) = fs_err::read_dir(kfd_dir.join("kfd/topology/nodes")) {
        let mut nodes: Vec<(u32, std::path::PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        nodes.sort();
        for (node, dir) in nodes {
            let Ok(props) = fs_err::read_to_string(dir.join("properties")) else {
                continue;
            };
            let target = kfd_property(&props, "gfx_target_version").unwrap_or(0);
            let simds = kfd_property(&props, "simd_count").unwrap_or(0);
            let vendor = kfd_property(&props, "vendor_id").unwrap_or(0x1002);
            // CPU nodes have no SIMDs; other vendors' nodes are not ours.
            if simds == 0 || vendor != 0x1002 {
                continue;
            }
            let memory: u64 = fs_err::read_dir(dir.join("mem_banks"))
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|b| fs_err::read_to_string(b.path().join("properties")).ok())
                        .filter_map(|t| kfd_property(&t, "size_in_bytes"))
                        .sum()
                })
                .unwrap_or(0);
            gpus.push(AmdGpu {
                node,
                gfx: (target > 0).then(|| gfx_name(target)),
                memory_bytes: (memory > 0).then_some(memory),
            });
        }
    }
    let on_bus = pci.iter().any(|p| p.vendor == AMD);
    if !kfd && !on_bus {
        return None;
    }
    let rocm = read_trim(&rocm_path.join(".info/version")).and_then(|v| numeric_prefix(&v));
    Some(Amd { kfd, rocm, gpus })
}

/// The leading `N.N.N` of a version such as `6.1.0-18-amd64` or `6.2.4-120`.
pub fn numeric_prefix(s: &str) -> Option<Dotted> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s[..end].trim_end_matches('.').parse().ok()
}

/// `MemTotal:  16318192 kB` of `/proc/meminfo`, in bytes.
pub fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `PRETTY_NAME` of `/etc/os-release`.
pub fn os_release_name(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// RAM, kernel version and distribution name.
pub fn system(procfs: &Path) -> (Option<u64>, Option<Dotted>, Option<String>) {
    let ram = fs_err::read_to_string(procfs.join("meminfo"))
        .ok()
        .and_then(|t| meminfo_total(&t));
    let kernel = read_trim(&procfs.join("sys/kernel/osrelease")).and_then(|v| numeric_prefix(&v));
    let name = fs_err::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| os_release_name(&t));
    (ram, kernel, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gfx_names() {
        assert_eq!(gfx_name(90010), "gfx90a");
        assert_eq!(gfx_name(110000), "gfx1100");
        assert_eq!(gfx_name(100300), "gfx1030");
        assert_eq!(gfx_name(90402), "gfx942");
    }

    #[test]
    fn small_parsers() {
        assert_eq!(
            meminfo_total("MemTotal:       16318192 kB\nMemFree: 1 kB\n"),
            Some(16318192 * 1024)
        );
        assert_eq!(meminfo_total("garbage"), None);
        assert_eq!(
            numeric_prefix("6.1.0-18-amd64")
                .map(|d| d.to_string())
                .as_deref(),
            Some("6.1.0")
        );
        assert_eq!(
            numeric_prefix("6.2.4-120")
                .map(|d| d.to_string())
                .as_deref(),
            Some("6.2.4")
        );
        assert_eq!(numeric_prefix("x"), None);
        assert_eq!(
            os_release_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            kfd_property(
                "simd_count 0\ngfx_target_version 110000\n",
                "gfx_target_version"
            ),
            Some(110000)
        );
    }
}
