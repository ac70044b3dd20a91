use proptest::prelude::*;
use semver::Version;

use super::*;
use crate::Dotted;
use crate::hardware::{Gpu, GpuSource, Nvidia};
use crate::model::{Arch, CcRange, Os};
use crate::sample::{arb_arch, arb_manifest, arb_os, manifest};

fn linux() -> Hardware {
    Hardware::new(Os::Linux, Arch::X86_64)
}

#[test]
fn picks_newest_release_and_cpu_variant_for_this_platform() {
    let m = manifest();
    let out = select(&m, &linux(), None, &Choice::Auto);
    let s = out.selected.expect("a linux cpu variant exists");
    assert_eq!(s.release.version, Version::new(1, 3, 0));
    assert_eq!(s.variant.id, "linux-x86_64-cpu");
    assert!(s.warning.is_none());
    let cuda = out
        .verdicts
        .iter()
        .find(|v| v.variant == "linux-x86_64-cuda12.8")
        .expect("verdict");
    assert!(
        !cuda.fits && cuda.reason.contains("NVIDIA"),
        "{}",
        cuda.reason
    );
    let win = out
        .verdicts
        .iter()
        .find(|v| v.variant == "windows-x86_64-cpu")
        .expect("verdict");
    assert!(win.reason.contains("windows"), "{}", win.reason);
}

#[test]
fn ui_version_limits_the_releases() {
    let mut m = manifest();
    m.releases[0].ui_compat = "^2".parse().expect("range");
    let ui1 = Version::new(1, 4, 0);
    let s = select(&m, &linux(), Some(&ui1), &Choice::Auto)
        .selected
        .expect("1.2.0 serves UI 1.x");
    assert_eq!(s.release.version, Version::new(1, 2, 0));
    let ui2 = Version::new(2, 0, 1);
    let s = select(&m, &linux(), Some(&ui2), &Choice::Auto)
        .selected
        .expect("1.3.0 serves UI 2.x");
    assert_eq!(s.release.version, Version::new(1, 3, 0));
    let ui3 = Version::new(3, 0, 0);
    let out = select(&m, &linux(), Some(&ui3), &Choice::Auto);
    assert!(out.selected.is_none());
    assert!(
        out.verdicts
            .iter()
            .all(|v| !v.fits && v.reason.contains("serves UI"))
    );
}

#[test]
fn forced_variant_wins_and_warns_when_it_does_not_fit() {
    let m = manifest();
    let forced = Choice::Forced("linux-x86_64-cuda12.8".into());
    let s = select(&m, &linux(), None, &forced)
        .selected
        .expect("forced is selected");
    assert_eq!(s.variant.id, "linux-x86_64-cuda12.8");
    assert!(s.warning.is_some());
    let missing = Choice::Forced("linux-x86_64-rocm9".into());
    assert!(select(&m, &linux(), None, &missing).selected.is_none());
}

#[test]
fn choice_from_setting() {
    assert_eq!(Choice::from_setting(None), Choice::Auto);
    assert_eq!(Choice::from_setting(Some("auto")), Choice::Auto);
    assert_eq!(
        Choice::from_setting(Some(" x ")),
        Choice::Forced("x".into())
    );
}

fn d(s: &str) -> Dotted {
    s.parse().expect("dotted")
}

/// Linux with one NVIDIA GPU.
fn nv(driver: &str, cuda: Option<&str>, cc: Option<&str>) -> Hardware {
    let mut h = linux();
    h.nvidia = Some(Nvidia {
        driver: d(driver),
        cuda: cuda.map(d),
        source: GpuSource::Nvml,
        gpus: vec![Gpu {
            index: 0,
            name: "Test GPU".into(),
            uuid: Some("GPU-test".into()),
            compute_capability: cc.map(d),
            memory_bytes: Some(8 << 30),
        }],
    });
    h
}

fn cuda_variant(cuda: &str, min_driver: Option<&str>, cc: (&str, &str)) -> Variant {
    let mut v = crate::sample::variant("v", Os::Linux, Arch::X86_64, Accelerator::Cuda, 50);
    v.requires.cuda = Some(d(cuda));
    v.requires.min_driver = min_driver.map(d);
    v.requires.compute_capability = Some(CcRange {
        min: d(cc.0),
        max: d(cc.1),
    });
    v
}

#[test]
fn the_table_floor_applies_even_when_min_driver_is_lower() {
    let v = cuda_variant("12.4", Some("400"), ("5.0", "9.0"));
    let err = fits(&v, &nv("520.61.05", Some("12.0"), Some("8.6"))).expect_err("below 525.60.13");
    assert!(
        err.contains("≥ 525.60.13") && err.contains("520.61.05"),
        "{err}"
    );
    assert!(fits(&v, &nv("525.60.13", Some("12.0"), Some("8.6"))).is_ok());
    let mut win = nv("526.98", Some("12.0"), Some("8.6"));
    win.os = Os::Windows;
    let mut wv = v.clone();
    wv.os = Os::Windows;
    let err = fits(&wv, &win).expect_err("Windows needs 527.41");
    assert!(err.contains("527.41"), "{err}");
    // CUDA 13 needs 580 even when the manifest asks less and the driver claims 13.0.
    let v13 = cuda_variant("13.0", Some("550"), ("7.5", "12.1"));
    let err = fits(&v13, &nv("575.51.03", Some("13.0"), Some("9.0"))).expect_err("below 580");
    assert!(err.contains("≥ 580"), "{err}");
    // And 11.x needs 450.80.02.
    let v11 = cuda_variant("11.8", None, ("3.5", "9.0"));
    assert!(fits(&v11, &nv("450.51.06", Some("11.0"), Some("8.0"))).is_err());
    assert!(fits(&v11, &nv("450.80.02", Some("11.0"), Some("8.0"))).is_ok());
}

#[test]
fn min_driver_above_the_table_is_the_floor() {
    let v = cuda_variant("12.8", Some("570.26"), ("7.5", "12.0"));
    let err = fits(&v, &nv("535.104.05", Some("12.2"), Some("8.6"))).expect_err("old driver");
    assert_eq!(
        err,
        "needs NVIDIA driver ≥ 570.26 for CUDA 12.8, found 535.104.05"
    );
}

#[test]
fn the_drivers_cuda_version_is_checked_on_its_own() {
    // A driver past every floor that says it supports only CUDA 12.9.
    let v = cuda_variant("13.0", Some("580"), ("7.5", "12.1"));
    let err = fits(&v, &nv("580.65.06", Some("12.9"), Some("9.0"))).expect_err("cuda 12.9 < 13");
    assert!(err.contains("supports CUDA up to 12.9"), "{err}");
    // Minor-version compatibility: a 12.2 driver runs a 12.6 build.
    let v126 = cuda_variant("12.6", Some("525.60.13"), ("5.0", "9.0"));
    assert!(fits(&v126, &nv("535.104.05", Some("12.2"), Some("8.6"))).is_ok());
    // Unknown CUDA version: inferred from the driver (the /proc fallback).
    assert!(fits(&v, &nv("580.65.06", None, Some("9.0"))).is_ok());
    assert!(fits(&v126, &nv("535.104.05", None, Some("8.6"))).is_ok());
}

#[test]
fn compute_capability_must_be_known_and_in_range() {
    let v = cuda_variant("12.8", Some("550"), ("7.5", "12.0"));
    let err = fits(&v, &nv("570.86.15", Some("12.8"), Some("6.1"))).expect_err("pascal");
    assert!(err.contains("sm_61") && err.contains("7.5–12.0"), "{err}");
    let err = fits(&v, &nv("570.86.15", Some("12.8"), Some("12.1"))).expect_err("above max");
    assert!(err.contains("sm_121"), "{err}");
    let err = fits(&v, &nv("570.86.15", Some("12.8"), None)).expect_err("unknown");
    assert!(err.contains("could not be read"), "{err}");
    assert!(fits(&v, &nv("570.86.15", Some("12.8"), Some("12.0"))).is_ok());
}

#[test]
fn cpu_features_and_os_version_are_required() {
    let mut v = crate::sample::variant("v", Os::Linux, Arch::X86_64, Accelerator::Cpu, 5);
    v.requires.cpu_features = vec!["avx512f".into()];
    let mut h = linux();
    h.cpu.features = vec!["avx2".into()];
    assert!(fits(&v, &h).expect_err("no avx512").contains("avx512f"));
    h.cpu.features.push("AVX512F".into());
    assert!(fits(&v, &h).is_ok());
    v.requires.min_os_version = Some(d("6.1"));
    assert!(
        fits(&v, &h)
            .expect_err("unknown os version")
            .contains("could not be read")
    );
    h.os_version = Some(d("6.1.0"));
    assert!(fits(&v, &h).is_ok());
}

#[test]
fn rocm_needs_the_kernel_driver_and_a_gpu() {
    let v = crate::sample::variant("r", Os::Linux, Arch::X86_64, Accelerator::Rocm, 40);
    let mut h = linux();
    assert!(fits(&v, &h).expect_err("no amd").contains("kfd"));
    h.amd = Some(crate::hardware::Amd {
        kfd: true,
        rocm: None,
        gpus: vec![],
    });
    assert!(fits(&v, &h).is_err());
    if let Some(a) = h.amd.as_mut() {
        a.gpus.push(crate::hardware::AmdGpu {
            node: 1,
            gfx: Some("gfx1100".into()),
            memory_bytes: None,
        });
    }
    assert!(fits(&v, &h).expect("rocm fits").contains("gfx1100"));
}

#[test]
fn bad_variants_are_skipped_with_their_reason_unless_forced() {
    let m = manifest();
    let bad = |_: &Release, v: &Variant| {
        (v.id == "linux-x86_64-cpu").then(|| "probe exited 1".to_string())
    };
    let out = select_excluding(&m, &linux(), None, &Choice::Auto, &bad);
    assert!(out.selected.is_none());
    let v = out
        .verdicts
        .iter()
        .find(|v| v.variant == "linux-x86_64-cpu")
        .expect("verdict");
    assert!(
        !v.fits && v.reason.contains("probe exited 1"),
        "{}",
        v.reason
    );
    let forced = Choice::Forced("linux-x86_64-cpu".into());
    let s = select_excluding(&m, &linux(), None, &forced, &bad)
        .selected
        .expect("forced");
    assert!(s.warning.is_some_and(|w| w.contains("probe")));
}

proptest! {
    #[test]
    fn selected_variant_always_fits_and_every_variant_has_a_verdict(
        m in arb_manifest(), os in arb_os(), arch in arb_arch()
    ) {
        let hw = Hardware::new(os, arch);
        let out = select(&m, &hw, None, &Choice::Auto);
        let total: usize = m.releases.iter().map(|r| r.variants.len()).sum();
        prop_assert_eq!(out.verdicts.len(), total);
        prop_assert!(out.verdicts.iter().all(|v| !v.reason.is_empty()));
        let fitting: Vec<&Verdict> = out.verdicts.iter().filter(|v| v.fits).collect();
        match &out.selected {
            Some(s) => {
                prop_assert!(fits(s.variant, &hw).is_ok());
                // No fitting variant of a newer release, nor a higher priority one in the same release.
                for v in &fitting {
                    prop_assert!(v.version <= s.release.version);
                    if v.version == s.release.version {
                        let other = s.release.variant(&v.variant).expect("verdict names a variant");
                        prop_assert!(other.priority <= s.variant.priority);
                    }
                }
            }
            None => prop_assert!(fitting.is_empty()),
        }
    }

    #[test]
    fn forcing_a_variant_always_selects_it(m in arb_manifest(), pick in any::<prop::sample::Index>()) {
        let all: Vec<&Variant> = m.releases.iter().flat_map(|r| &r.variants).collect();
        let v = all[pick.index(all.len())];
        let out = select(&m, &linux(), None, &Choice::Forced(v.id.clone()));
        let s = out.selected.expect("a forced variant that exists is selected");
        prop_assert_eq!(&s.variant.id, &v.id);
    }
}
