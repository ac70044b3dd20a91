//! The decision table: real machines against the real variant catalogue
//! (`manifests/variants.json`), one test each.

use super::*;
use crate::Dotted;
use crate::hardware::{Gpu, GpuSource, Nvidia, PciDevice};
use crate::model::{Arch, Os};
use crate::variants::VariantCatalog;

fn d(s: &str) -> Dotted {
    s.parse().expect("dotted")
}

fn catalog() -> Manifest {
    catalog_manifest(&VariantCatalog::builtin().expect("variants.json parses"))
}

/// (name, compute capability, GiB, uuid)
type G<'a> = (&'a str, &'a str, u64, &'a str);

fn nvidia(os: Os, driver: &str, cuda: &str, gpus: &[G<'_>]) -> Hardware {
    let mut h = Hardware::new(os, Arch::X86_64);
    h.nvidia = Some(Nvidia {
        driver: d(driver),
        cuda: Some(d(cuda)),
        source: GpuSource::Nvml,
        gpus: gpus
            .iter()
            .enumerate()
            .map(|(i, (name, cc, gib, uuid))| Gpu {
                index: i as u32,
                name: (*name).into(),
                uuid: Some((*uuid).into()),
                compute_capability: Some(d(cc)),
                memory_bytes: Some(gib << 30),
            })
            .collect(),
    });
    h
}

struct Decided {
    id: Option<String>,
    cvd: Option<String>,
    reason: String,
    verdicts: Vec<Verdict>,
}

fn decide(hw: &Hardware) -> Decided {
    let m = catalog();
    let out = select(&m, hw, None, &Choice::Auto);
    let total: usize = m.releases.iter().map(|r| r.variants.len()).sum();
    assert_eq!(out.verdicts.len(), total, "one verdict per variant");
    for v in &out.verdicts {
        assert!(!v.reason.is_empty(), "{} has no reason", v.variant);
    }
    Decided {
        id: out.selected.as_ref().map(|s| s.variant.id.clone()),
        cvd: out
            .selected
            .as_ref()
            .and_then(|s| s.cuda_visible_devices.clone()),
        reason: out
            .selected
            .as_ref()
            .map(|s| s.reason.clone())
            .unwrap_or_default(),
        verdicts: out.verdicts,
    }
}

impl Decided {
    fn verdict(&self, id: &str) -> &Verdict {
        self.verdicts
            .iter()
            .find(|v| v.variant == id)
            .unwrap_or_else(|| panic!("no verdict for {id}"))
    }
    fn rejected_because(&self, id: &str, words: &[&str]) {
        let v = self.verdict(id);
        assert!(!v.fits, "{id} should not fit: {}", v.reason);
        for w in words {
            assert!(v.reason.contains(w), "{id}: {:?} lacks {w:?}", v.reason);
        }
    }
}

const H100: G<'static> = ("NVIDIA H100 80GB HBM3", "9.0", 80, "GPU-h100");
const RTX3090: G<'static> = ("NVIDIA GeForce RTX 3090", "8.6", 24, "GPU-3090");
const GTX1080TI: G<'static> = ("NVIDIA GeForce GTX 1080 Ti", "6.1", 11, "GPU-1080ti");
const RTX5090: G<'static> = ("NVIDIA GeForce RTX 5090", "12.0", 32, "GPU-5090");

#[test]
fn h100_on_580_gets_the_newest_cuda_build() {
    let r = decide(&nvidia(Os::Linux, "580.95.05", "13.0", &[H100]));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda13.0"));
    assert!(r.reason.contains("sm_90"), "{}", r.reason);
    assert!(r.verdict("linux-x86_64-cuda12.8").fits);
    assert!(r.verdict("linux-x86_64-cuda12.6").fits);
    assert!(r.verdict("linux-x86_64-cpu").fits);
    r.rejected_because("windows-x86_64-cuda13.0", &["built for windows"]);
    assert_eq!(r.cvd, None);
}

#[test]
fn rtx3090_on_535_gets_no_12_8_or_13_0_build() {
    let r = decide(&nvidia(Os::Linux, "535.104.05", "12.2", &[RTX3090]));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda12.6"));
    r.rejected_because(
        "linux-x86_64-cuda12.8",
        &["needs NVIDIA driver ≥ 550 for CUDA 12.8, found 535.104.05"],
    );
    r.rejected_because("linux-x86_64-cuda13.0", &["≥ 580", "535.104.05"]);
}

#[test]
fn gtx1080ti_on_565_gets_a_build_whose_range_includes_6_1() {
    let r = decide(&nvidia(Os::Linux, "565.57.01", "12.7", &[GTX1080TI]));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda12.6"));
    r.rejected_because("linux-x86_64-cuda12.8", &["sm_61", "7.5–12.0"]);
}

#[test]
fn rtx5090_on_570_gets_a_build_with_sm_120() {
    let r = decide(&nvidia(Os::Linux, "570.124.04", "12.8", &[RTX5090]));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda12.8"));
    r.rejected_because("linux-x86_64-cuda12.6", &["sm_120", "5.0–9.0"]);
    r.rejected_because("linux-x86_64-cuda13.0", &["≥ 580", "570.124.04"]);
}

#[test]
fn kepler_on_390_gets_the_cpu() {
    let kepler = ("NVIDIA GeForce GTX 780", "3.5", 3, "GPU-780");
    let r = decide(&nvidia(Os::Linux, "390.157", "9.1", &[kepler]));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cpu"));
    r.rejected_because("linux-x86_64-cuda12.6", &["≥ 525.60.13", "390.157"]);
    let sm30 = ("NVIDIA GeForce GTX 680", "3.0", 2, "GPU-680");
    let r = decide(&nvidia(Os::Linux, "390.157", "9.1", &[sm30]));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cpu"));
}

#[test]
fn nvidia_on_pci_without_a_driver_gets_the_cpu_and_the_hint() {
    let mut h = Hardware::new(Os::Linux, Arch::X86_64);
    h.nvidia_pci = vec![PciDevice {
        slot: "0000:01:00.0".into(),
        vendor: "0x10de".into(),
        device: "0x2204".into(),
        driver: Some("nouveau".into()),
    }];
    let r = decide(&h);
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cpu"));
    r.rejected_because(
        "linux-x86_64-cuda13.0",
        &["PCI bus", "nouveau", "install or update the NVIDIA driver"],
    );
}

#[test]
fn pascal_and_blackwell_serve_the_blackwell_with_narrowed_devices() {
    let r = decide(&nvidia(
        Os::Linux,
        "580.95.05",
        "13.0",
        &[GTX1080TI, RTX5090],
    ));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda13.0"));
    assert_eq!(r.cvd.as_deref(), Some("GPU-5090"));
    assert!(
        r.reason.contains("most memory") && r.reason.contains("CUDA_VISIBLE_DEVICES=GPU-5090"),
        "{}",
        r.reason
    );
    // On 570 the 12.8 build serves the 5090; the 12.6 build serves only the smaller 1080 Ti.
    let r = decide(&nvidia(
        Os::Linux,
        "570.124.04",
        "12.8",
        &[GTX1080TI, RTX5090],
    ));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda12.8"));
    assert_eq!(r.cvd.as_deref(), Some("GPU-5090"));
    r.rejected_because("linux-x86_64-cuda12.6", &["most memory"]);
}

#[test]
fn pascal_and_ampere_share_the_lowest_common_denominator() {
    let r = decide(&nvidia(
        Os::Linux,
        "565.57.01",
        "12.7",
        &[GTX1080TI, RTX3090],
    ));
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda12.6"));
    assert_eq!(r.cvd, None, "no narrowing when one build serves both");
    r.rejected_because(
        "linux-x86_64-cuda12.8",
        &["sm_61", "another build serves every"],
    );
}

#[test]
fn cuda_visible_devices_decides_which_gpus_count() {
    let both = [GTX1080TI, RTX5090];
    let mut h = nvidia(Os::Linux, "580.95.05", "13.0", &both);
    h.cuda_visible_devices = Some("1".into());
    let r = decide(&h);
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cuda13.0"));
    assert_eq!(r.cvd, None, "the user already narrowed");
    h.cuda_visible_devices = Some("-1".into());
    let r = decide(&h);
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cpu"));
    r.rejected_because("linux-x86_64-cuda13.0", &["CUDA_VISIBLE_DEVICES"]);
    h.cuda_visible_devices = Some(String::new());
    assert_eq!(decide(&h).id.as_deref(), Some("linux-x86_64-cpu"));
}

#[test]
fn windows_rtx4090_on_566_gets_cuda_12_8() {
    let rtx4090 = ("NVIDIA GeForce RTX 4090", "8.9", 24, "GPU-4090");
    let r = decide(&nvidia(Os::Windows, "566.36", "12.7", &[rtx4090]));
    assert_eq!(r.id.as_deref(), Some("windows-x86_64-cuda12.8"));
    r.rejected_because("windows-x86_64-cuda13.0", &["≥ 580"]);
}

#[test]
fn apple_silicon_under_rosetta_gets_metal() {
    let mut h = Hardware::new(Os::Macos, Arch::Arm64);
    h.rosetta = true;
    h.os_version = Some(d("14.5"));
    let r = decide(&h);
    assert_eq!(r.id.as_deref(), Some("macos-arm64-metal"));
    assert!(r.reason.contains("Rosetta"), "{}", r.reason);
    r.rejected_because("macos-x86_64-cpu", &["built for x86_64"]);
}

#[test]
fn apple_silicon_on_macos_13_has_no_variant_and_says_why() {
    let mut h = Hardware::new(Os::Macos, Arch::Arm64);
    h.os_version = Some(d("13.6.1"));
    let r = decide(&h);
    assert_eq!(r.id, None);
    r.rejected_because("macos-arm64-metal", &["macOS 14.0 or later", "13.6.1"]);
}

#[test]
fn intel_mac_gets_the_cpu() {
    let mut h = Hardware::new(Os::Macos, Arch::X86_64);
    h.os_version = Some(d("13.6"));
    let r = decide(&h);
    assert_eq!(r.id.as_deref(), Some("macos-x86_64-cpu"));
    r.rejected_because("macos-arm64-metal", &["built for arm64"]);
}

#[test]
fn driver_found_through_proc_only_gets_the_cpu_and_says_why() {
    let mut h = nvidia(Os::Linux, "550.54.14", "12.4", &[RTX3090]);
    if let Some(n) = h.nvidia.as_mut() {
        n.source = GpuSource::Procfs;
        n.cuda = None;
        n.gpus[0].compute_capability = None;
    }
    let r = decide(&h);
    assert_eq!(r.id.as_deref(), Some("linux-x86_64-cpu"));
    r.rejected_because("linux-x86_64-cuda12.6", &["could not be read"]);
}

#[test]
fn forcing_a_variant_that_does_not_fit_selects_it_with_a_warning() {
    let m = catalog();
    let h = nvidia(Os::Linux, "535.104.05", "12.2", &[RTX3090]);
    let forced = Choice::Forced("linux-x86_64-cuda13.0".into());
    let s = select(&m, &h, None, &forced).selected.expect("forced");
    assert_eq!(s.variant.id, "linux-x86_64-cuda13.0");
    assert!(s.warning.is_some_and(|w| w.contains("535.104.05")));
}
