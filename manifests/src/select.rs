//! Which release and variant a machine gets, and a reason for every verdict.
//!
//! Pure: the hardware facts, the UI version and the user's override come in; the
//! choice and one [`Verdict`] per variant come out. The rules, in order:
//! 1. releases whose `ui_compat` admits the UI, newest first;
//! 2. within a release, variants for this os/arch whose requirements the machine
//!    meets ([`fits`]), highest `priority` first;
//! 3. a forced variant id wins over detection, with a warning when it does not fit.
//!
//! The hardware issue extends [`Hardware`] and [`fits`] with GPUs, drivers and
//! compute capabilities; the shape of the outcome stays.

use semver::Version;

use crate::model::{Accelerator, Arch, Manifest, Os, Release, Variant};

/// The facts about a machine that selection uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hardware {
    pub os: Os,
    pub arch: Arch,
}

impl Hardware {
    /// The os/arch this binary runs on, with no accelerator facts.
    pub fn this_platform() -> Hardware {
        Hardware {
            os: Os::current(),
            arch: Arch::current(),
        }
    }
}

/// Automatic choice, or a variant id the user forced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Forced(String),
}

impl Choice {
    /// `auto` (or nothing) means automatic; anything else is a variant id.
    pub fn from_setting(s: Option<&str>) -> Choice {
        match s.map(str::trim) {
            None | Some("") | Some("auto") => Choice::Auto,
            Some(id) => Choice::Forced(id.to_string()),
        }
    }
}

/// The verdict on one variant of one release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub version: Version,
    pub variant: String,
    pub fits: bool,
    /// Why it fits or not, for a person.
    pub reason: String,
}

/// The chosen release and variant.
#[derive(Clone, Debug)]
pub struct Selection<'m> {
    pub release: &'m Release,
    pub variant: &'m Variant,
    pub reason: String,
    /// Set when a forced variant does not fit this machine.
    pub warning: Option<String>,
}

/// What [`select`] decided.
#[derive(Clone, Debug)]
pub struct Outcome<'m> {
    pub selected: Option<Selection<'m>>,
    pub verdicts: Vec<Verdict>,
}

/// Whether `v` can run on `hw`; `Err` says why not.
pub fn fits(v: &Variant, hw: &Hardware) -> Result<String, String> {
    if v.os != hw.os {
        return Err(format!(
            "built for {}, this is {}",
            v.os.as_str(),
            hw.os.as_str()
        ));
    }
    if v.arch != hw.arch {
        return Err(format!(
            "built for {}, this is {}",
            v.arch.as_str(),
            hw.arch.as_str()
        ));
    }
    match v.accelerator {
        Accelerator::Cpu => Ok(format!(
            "runs on the CPU of this {}-{}",
            hw.os.as_str(),
            hw.arch.as_str()
        )),
        other => Err(format!(
            "needs {} and GPU detection is not available yet, so only CPU builds are chosen",
            other.as_str()
        )),
    }
}

/// Chooses a release and variant from `m` for `hw`, serving `ui` (any UI when `None`).
pub fn select<'m>(
    m: &'m Manifest,
    hw: &Hardware,
    ui: Option<&Version>,
    choice: &Choice,
) -> Outcome<'m> {
    let mut releases: Vec<&Release> = m.releases.iter().collect();
    releases.sort_by(|a, b| b.version.cmp(&a.version));
    let mut verdicts = Vec::new();
    let mut selected: Option<Selection<'m>> = None;
    for r in releases {
        let compatible = ui.is_none_or(|u| r.ui_compat.matches(u));
        let mut candidates: Vec<(&Variant, String)> = Vec::new();
        for v in &r.variants {
            let verdict = if !compatible {
                Err(format!(
                    "release {} serves UI {}, not {}",
                    r.version,
                    r.ui_compat,
                    ui.map(Version::to_string).unwrap_or_default()
                ))
            } else {
                match choice {
                    Choice::Forced(id) if id != &v.id => {
                        Err(format!("the variant {id} was asked for"))
                    }
                    _ => fits(v, hw),
                }
            };
            let forced_here = matches!(choice, Choice::Forced(id) if id == &v.id) && compatible;
            match &verdict {
                Ok(why) => candidates.push((v, why.clone())),
                Err(why) if forced_here && selected.is_none() => {
                    selected = Some(Selection {
                        release: r,
                        variant: v,
                        reason: format!("forced by the user ({why})"),
                        warning: Some(format!(
                            "{} was forced but does not fit this machine: {why}",
                            v.id
                        )),
                    });
                }
                Err(_) => {}
            }
            verdicts.push(Verdict {
                version: r.version.clone(),
                variant: v.id.clone(),
                fits: verdict.is_ok(),
                reason: match verdict {
                    Ok(s) | Err(s) => s,
                },
            });
        }
        if selected.is_none() {
            candidates.sort_by_key(|c| std::cmp::Reverse(c.0.priority));
            if let Some((v, why)) = candidates.into_iter().next() {
                let reason = match choice {
                    Choice::Forced(_) => format!("forced by the user; {why}"),
                    Choice::Auto => format!(
                        "newest compatible release; highest priority variant that fits: {why}"
                    ),
                };
                selected = Some(Selection {
                    release: r,
                    variant: v,
                    reason,
                    warning: None,
                });
            }
        }
    }
    Outcome { selected, verdicts }
}

#[cfg(test)]
mod tests;
