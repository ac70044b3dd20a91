//! Property tests of selection against an independent statement of the rules
//! ([`violations`]): arbitrary machines, arbitrary requirements.

use proptest::prelude::*;

use super::*;
use crate::Dotted;
use crate::hardware::{Amd, AmdGpu, Gpu, GpuSource, Nvidia, PciDevice};
use crate::model::{Arch, CcRange, Os, Requirements};
use crate::sample::{arb_arch, arb_manifest, arb_os};

fn d(s: &str) -> Dotted {
    s.parse().expect("dotted")
}

/// NVIDIA's table, written out again on purpose.
fn table(os: Os, major: u32) -> Option<Dotted> {
    match (major, os) {
        (13, _) => Some(d("580")),
        (12, Os::Windows) => Some(d("527.41")),
        (12, _) => Some(d("525.60.13")),
        (11, Os::Windows) => Some(d("452.39")),
        (11, _) => Some(d("450.80.02")),
        _ => None,
    }
}

/// Every rule `v` breaks on `hw` when serving `gpus`.
fn violations(v: &Variant, hw: &Hardware, gpus: &[&Gpu]) -> Vec<&'static str> {
    let mut out = Vec::new();
    let r = &v.requires;
    if v.os != hw.os {
        out.push("os");
    }
    if v.arch != hw.arch {
        out.push("arch");
    }
    if let Some(min) = &r.min_os_version
        && hw.os_version.as_ref().is_none_or(|have| have < min)
    {
        out.push("os version");
    }
    for f in &r.cpu_features {
        if !hw.cpu.features.iter().any(|h| h.eq_ignore_ascii_case(f)) {
            out.push("cpu feature");
        }
    }
    match v.accelerator {
        Accelerator::Cpu => {}
        Accelerator::Metal => {
            if hw.os != Os::Macos || hw.arch != Arch::Arm64 {
                out.push("metal");
            }
        }
        Accelerator::Rocm => {
            if !hw.amd.as_ref().is_some_and(|a| a.kfd && !a.gpus.is_empty()) {
                out.push("rocm");
            }
        }
        Accelerator::Unknown => out.push("unknown accelerator"),
        Accelerator::Cuda => match &hw.nvidia {
            None => out.push("no driver"),
            Some(nv) => {
                if r.min_driver.as_ref().is_some_and(|m| nv.driver < *m) {
                    out.push("min_driver");
                }
                if let Some(c) = &r.cuda {
                    if table(hw.os, c.major()).is_some_and(|t| nv.driver < t) {
                        out.push("table floor");
                    }
                    let supports = match &nv.cuda {
                        Some(x) => x.major(),
                        None => [13, 12, 11]
                            .into_iter()
                            .find(|m| table(hw.os, *m).is_some_and(|t| nv.driver >= t))
                            .unwrap_or(10),
                    };
                    if supports < c.major() {
                        out.push("driver cuda");
                    }
                }
                if gpus.is_empty() {
                    out.push("no gpu");
                }
                if let Some(range) = &r.compute_capability {
                    for g in gpus {
                        match &g.compute_capability {
                            None => out.push("cc unknown"),
                            Some(cc) if *cc < range.min || *cc > range.max => out.push("cc range"),
                            Some(_) => {}
                        }
                    }
                }
            }
        },
    }
    out
}

fn pick(xs: &'static [&'static str]) -> impl Strategy<Value = Dotted> {
    prop::sample::select(xs).prop_map(d)
}

fn arb_requires() -> impl Strategy<Value = Requirements> {
    let ccs: &'static [&'static str] = &["3.0", "5.0", "6.1", "7.5", "8.6", "9.0", "12.0", "12.1"];
    (
        prop::option::of(pick(&["11.8", "12.4", "12.6", "12.8", "13.0"])),
        prop::option::of(pick(&["450", "525.60.13", "550", "570.26", "580"])),
        prop::option::of((0..ccs.len(), 0..ccs.len())),
        prop::option::of(pick(&["13.0", "14.0", "6.1"])),
        prop::sample::subsequence(vec!["avx2", "avx512f", "neon"], 0..2),
    )
        .prop_map(move |(cuda, min_driver, cc, os_v, feats)| Requirements {
            cuda,
            min_driver,
            compute_capability: cc.map(|(a, b)| CcRange {
                min: d(ccs[a.min(b)]),
                max: d(ccs[a.max(b)]),
            }),
            min_os_version: os_v,
            rocm: None,
            cpu_features: feats.into_iter().map(String::from).collect(),
        })
}

/// Manifests whose variants carry arbitrary requirements.
fn arb_manifest_reqs() -> impl Strategy<Value = Manifest> {
    arb_manifest()
        .prop_flat_map(|m| {
            let n: usize = m.releases.iter().map(|r| r.variants.len()).sum();
            (Just(m), prop::collection::vec(arb_requires(), n))
        })
        .prop_map(|(mut m, reqs)| {
            let all = m.releases.iter_mut().flat_map(|r| r.variants.iter_mut());
            for (v, r) in all.zip(reqs) {
                v.requires = r;
            }
            m
        })
}

fn arb_gpu() -> impl Strategy<Value = (Option<Dotted>, u64)> {
    (
        prop::option::weighted(
            0.9,
            pick(&["3.0", "6.1", "7.5", "8.6", "8.9", "9.0", "12.0", "12.1"]),
        ),
        1u64..96,
    )
}

fn arb_hardware() -> impl Strategy<Value = Hardware> {
    let drivers = &[
        "390.157",
        "470.256.02",
        "520.61.05",
        "525.60.13",
        "527.41",
        "535.104.05",
        "550.54.14",
        "565.57.01",
        "570.124.04",
        "580.95.05",
    ];
    let nvidia = (
        pick(drivers),
        prop::option::of(pick(&["11.4", "12.0", "12.2", "12.8", "12.9", "13.0"])),
        prop::collection::vec(arb_gpu(), 0..4),
        prop::sample::select(vec![
            GpuSource::Nvml,
            GpuSource::NvidiaSmi,
            GpuSource::Procfs,
        ]),
    )
        .prop_map(|(driver, cuda, gpus, source)| Nvidia {
            driver,
            cuda,
            source,
            gpus: gpus
                .into_iter()
                .enumerate()
                .map(|(i, (cc, gib))| Gpu {
                    index: i as u32,
                    name: format!("GPU{i}"),
                    uuid: Some(format!("GPU-u{i}")),
                    compute_capability: cc,
                    memory_bytes: Some(gib << 30),
                })
                .collect(),
        });
    let amd = (any::<bool>(), 0usize..2).prop_map(|(kfd, n)| Amd {
        kfd,
        rocm: None,
        gpus: (0..n)
            .map(|i| AmdGpu {
                node: i as u32 + 1,
                gfx: Some("gfx1100".into()),
                memory_bytes: None,
            })
            .collect(),
    });
    (
        (
            arb_os(),
            arb_arch(),
            prop::option::of(pick(&["13.6", "14.0", "14.5", "6.1.0"])),
        ),
        prop::sample::subsequence(vec!["avx2", "avx512f", "neon"], 0..3),
        prop::option::of(nvidia),
        any::<bool>(),
        prop::option::of(amd),
        prop::option::of(prop::sample::select(vec![
            "", "-1", "0", "1", "1,0", "GPU-u2", "0,9",
        ])),
    )
        .prop_map(|((os, arch, os_version), feats, nvidia, pci, amd, cvd)| {
            let mut h = Hardware::new(os, arch);
            h.os_version = os_version;
            h.rosetta = os == Os::Macos && arch == Arch::Arm64 && pci;
            h.cpu.features = feats.into_iter().map(String::from).collect();
            h.nvidia = nvidia;
            if pci {
                h.nvidia_pci = vec![PciDevice {
                    slot: "0000:01:00.0".into(),
                    vendor: "0x10de".into(),
                    device: "0x2204".into(),
                    driver: None,
                }];
            }
            h.amd = amd;
            h.cuda_visible_devices = cvd.map(String::from);
            h
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_selected_variant_satisfies_every_rule(m in arb_manifest_reqs(), hw in arb_hardware()) {
        let out = select(&m, &hw, None, &Choice::Auto);
        let visible = hw.visible_gpus().gpus;
        if let Some(s) = &out.selected {
            prop_assert!(s.warning.is_none());
            let served: Vec<&Gpu> = match &s.serves {
                None => visible.clone(),
                Some(ix) => visible.iter().copied().filter(|g| ix.contains(&g.index)).collect(),
            };
            let broken = violations(s.variant, &hw, &served);
            prop_assert!(broken.is_empty(), "{} breaks {:?}", s.variant.id, broken);
            if let Some(ix) = &s.serves {
                prop_assert_eq!(s.variant.accelerator, Accelerator::Cuda);
                prop_assert!(!ix.is_empty() && ix.len() < visible.len());
                prop_assert_eq!(served.len(), ix.len());
                prop_assert!(s.cuda_visible_devices.is_some());
                // Narrowing only when no CUDA build of the release serves every GPU.
                for v in s.release.variants.iter().filter(|v| v.accelerator == Accelerator::Cuda) {
                    prop_assert!(!violations(v, &hw, &visible).is_empty(), "{} serves all", v.id);
                }
                // And the GPU with the most memory any build serves is among those served.
                let best = served.iter().filter_map(|g| g.memory_bytes).max();
                for v in s.release.variants.iter() {
                    for g in &visible {
                        if violations(v, &hw, &[g]).is_empty() && v.accelerator == Accelerator::Cuda {
                            prop_assert!(g.memory_bytes <= best);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_verdict_agrees_with_the_rules(m in arb_manifest_reqs(), hw in arb_hardware()) {
        let out = select(&m, &hw, None, &Choice::Auto);
        let visible = hw.visible_gpus().gpus;
        let total: usize = m.releases.iter().map(|r| r.variants.len()).sum();
        prop_assert_eq!(out.verdicts.len(), total);
        for verdict in &out.verdicts {
            prop_assert!(!verdict.reason.trim().is_empty(), "{} has no reason", verdict.variant);
            let r = m.release(&verdict.version).expect("verdict names a release");
            let v = r.variant(&verdict.variant).expect("verdict names a variant");
            let all = violations(v, &hw, &visible);
            if all.is_empty() {
                prop_assert!(verdict.fits, "{} fits every rule but was refused: {}", v.id, verdict.reason);
            }
            if verdict.fits {
                let some_gpu = visible.iter().any(|g| violations(v, &hw, &[g]).is_empty());
                prop_assert!(all.is_empty() || some_gpu, "{} breaks {:?}: {}", v.id, all, verdict.reason);
            }
        }
        if out.selected.is_none() {
            prop_assert!(out.verdicts.iter().all(|v| !v.fits));
        }
    }

    #[test]
    fn forcing_a_variant_always_selects_it_on_any_machine(
        m in arb_manifest_reqs(), hw in arb_hardware(), pick in any::<prop::sample::Index>()
    ) {
        let all: Vec<&Variant> = m.releases.iter().flat_map(|r| &r.variants).collect();
        let v = all[pick.index(all.len())];
        let out = select(&m, &hw, None, &Choice::Forced(v.id.clone()));
        let s = out.selected.expect("a forced variant that exists is selected");
        prop_assert_eq!(&s.variant.id, &v.id);
        if s.warning.is_none() {
            let visible = hw.visible_gpus().gpus;
            let served: Vec<&Gpu> = match &s.serves {
                None => visible.clone(),
                Some(ix) => visible.iter().copied().filter(|g| ix.contains(&g.index)).collect(),
            };
            prop_assert!(violations(s.variant, &hw, &served).is_empty());
        }
    }

    #[test]
    fn a_variant_marked_bad_is_never_chosen_automatically(
        m in arb_manifest_reqs(), hw in arb_hardware(), pick in any::<prop::sample::Index>()
    ) {
        let all: Vec<&Variant> = m.releases.iter().flat_map(|r| &r.variants).collect();
        let bad_id = all[pick.index(all.len())].id.clone();
        let bad = |_: &Release, v: &Variant| (v.id == bad_id).then(|| "probe failed: sentinel".to_string());
        let out = select_excluding(&m, &hw, None, &Choice::Auto, &bad);
        if let Some(s) = &out.selected {
            prop_assert_ne!(&s.variant.id, &bad_id);
        }
        for v in out.verdicts.iter().filter(|v| v.variant == bad_id) {
            prop_assert!(!v.fits && v.reason.contains("sentinel"), "{}", v.reason);
        }
    }
}
