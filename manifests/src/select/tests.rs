use proptest::prelude::*;
use semver::Version;

use super::*;
use crate::sample::{arb_arch, arb_manifest, arb_os, manifest};

fn linux() -> Hardware {
    Hardware {
        os: Os::Linux,
        arch: Arch::X86_64,
    }
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
        !cuda.fits && cuda.reason.contains("cuda"),
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

proptest! {
    #[test]
    fn selected_variant_always_fits_and_every_variant_has_a_verdict(
        m in arb_manifest(), os in arb_os(), arch in arb_arch()
    ) {
        let hw = Hardware { os, arch };
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
