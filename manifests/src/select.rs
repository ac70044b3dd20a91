//! Which release and variant a machine gets, and a reason for every verdict.
//!
//! Pure: the hardware facts ([`Hardware`]), the UI version, the user's override and
//! the variants already proven bad on this machine come in; the choice and one
//! [`Verdict`] per variant come out. The rules, in order:
//! 1. releases whose `ui_compat` admits the UI, newest first;
//! 2. within a release, variants whose requirements the machine meets
//!    ([`rules::check`]: os/arch, OS version, CPU features, the accelerator, the
//!    driver floor, the driver's CUDA version, every visible GPU's compute
//!    capability) and that no probe has marked bad here, highest `priority` first;
//! 3. when no CUDA build of a release serves every visible GPU, the GPU with the
//!    most memory is served: builds that serve it fit, with `CUDA_VISIBLE_DEVICES`
//!    narrowed to the GPUs they serve ([`Selection::cuda_visible_devices`]);
//! 4. a forced variant id wins over detection, with a warning when it does not fit.

mod catalog;
pub mod rules;

use semver::Version;

pub use crate::hardware::Hardware;
use crate::model::{Accelerator, Manifest, Release, Variant};
pub use catalog::{CATALOG_VERSION, catalog_manifest, catalog_release};
use rules::Check;

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
    /// When the build serves only some of the visible GPUs: the value
    /// `CUDA_VISIBLE_DEVICES` must have for the backend (UUIDs, comma-separated).
    pub cuda_visible_devices: Option<String>,
    /// The GPU indices the build serves when narrowed.
    pub serves: Option<Vec<u32>>,
}

/// What [`select`] decided.
#[derive(Clone, Debug)]
pub struct Outcome<'m> {
    pub selected: Option<Selection<'m>>,
    pub verdicts: Vec<Verdict>,
}

/// Whether `v` can run on `hw` by itself; `Err` says why not. A CUDA build that
/// serves only some of the visible GPUs is `Err` here (see [`select`] for narrowing).
pub fn fits(v: &Variant, hw: &Hardware) -> Result<String, String> {
    match rules::check(v, hw) {
        Check::Fits(s) => Ok(s),
        Check::No(s) | Check::Partial { why_not: s, .. } => Err(s),
    }
}

/// A variant's standing within its release, before priorities.
enum Judged {
    No(String),
    Fits {
        why: String,
        narrow: Option<Vec<u32>>,
    },
}

/// Chooses a release and variant from `m` for `hw`, serving `ui` (any UI when `None`).
pub fn select<'m>(
    m: &'m Manifest,
    hw: &Hardware,
    ui: Option<&Version>,
    choice: &Choice,
) -> Outcome<'m> {
    select_excluding(m, hw, ui, choice, &|_, _| None)
}

/// [`select`], skipping the variants `bad` names (with its reason), such as those
/// whose probe failed on this machine.
pub fn select_excluding<'m>(
    m: &'m Manifest,
    hw: &Hardware,
    ui: Option<&Version>,
    choice: &Choice,
    bad: &dyn Fn(&Release, &Variant) -> Option<String>,
) -> Outcome<'m> {
    let mut releases: Vec<&Release> = m.releases.iter().collect();
    releases.sort_by(|a, b| b.version.cmp(&a.version));
    let mut verdicts = Vec::new();
    let mut selected: Option<Selection<'m>> = None;
    for r in releases {
        let compatible = ui.is_none_or(|u| r.ui_compat.matches(u));
        let checks: Vec<Check> = r
            .variants
            .iter()
            .map(|v| {
                if !compatible {
                    return Check::No(format!(
                        "release {} serves UI {}, not {}",
                        r.version,
                        r.ui_compat,
                        ui.map(Version::to_string).unwrap_or_default()
                    ));
                }
                if let Choice::Forced(id) = choice
                    && id != &v.id
                {
                    return Check::No(format!("the variant {id} was asked for"));
                }
                if let Some(why) = bad(r, v) {
                    // The caller words its own reason (a failed probe, a rollback, an
                    // offline folder that lacks the files).
                    return Check::No(why);
                }
                rules::check(v, hw)
            })
            .collect();
        let judged = resolve_partials(r, hw, checks);
        let mut candidates: Vec<(&'m Variant, String, Option<Vec<u32>>)> = Vec::new();
        for (v, j) in r.variants.iter().zip(judged) {
            let forced_here = compatible && matches!(choice, Choice::Forced(id) if id == &v.id);
            let (ok, reason) = match j {
                Judged::Fits { why, narrow } => {
                    candidates.push((v, why.clone(), narrow));
                    (true, why)
                }
                Judged::No(why) => {
                    if forced_here && selected.is_none() {
                        selected = Some(Selection {
                            release: r,
                            variant: v,
                            reason: format!("forced by the user ({why})"),
                            warning: Some(format!(
                                "{} was forced but does not fit this machine: {why}",
                                v.id
                            )),
                            cuda_visible_devices: None,
                            serves: None,
                        });
                    }
                    (false, why)
                }
            };
            verdicts.push(Verdict {
                version: r.version.clone(),
                variant: v.id.clone(),
                fits: ok,
                reason,
            });
        }
        if selected.is_none() {
            candidates.sort_by_key(|c| std::cmp::Reverse(c.0.priority));
            if let Some((v, why, narrow)) = candidates.into_iter().next() {
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
                    cuda_visible_devices: narrow.as_ref().map(|n| cuda_ids(hw, n)),
                    serves: narrow,
                });
            }
        }
    }
    Outcome { selected, verdicts }
}

/// `CUDA_VISIBLE_DEVICES` for these GPU indices.
fn cuda_ids(hw: &Hardware, indices: &[u32]) -> String {
    let gpus = hw.nvidia.as_ref().map(|n| n.gpus.as_slice()).unwrap_or(&[]);
    indices
        .iter()
        .map(|i| {
            gpus.iter()
                .find(|g| g.index == *i)
                .map(|g| g.cuda_id())
                .unwrap_or_else(|| i.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Lowest common denominator first: a partial CUDA build fits only when no CUDA
/// build of the release serves every visible GPU, and then only if it serves the
/// GPU with the most memory among those any build serves.
fn resolve_partials(r: &Release, hw: &Hardware, checks: Vec<Check>) -> Vec<Judged> {
    let full_cuda = r
        .variants
        .iter()
        .zip(&checks)
        .any(|(v, c)| v.accelerator == Accelerator::Cuda && matches!(c, Check::Fits(_)));
    let served: Vec<u32> = checks
        .iter()
        .filter_map(|c| match c {
            Check::Partial { serves, .. } => Some(serves.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    let gpus = hw.nvidia.as_ref().map(|n| n.gpus.as_slice()).unwrap_or(&[]);
    let target = gpus
        .iter()
        .filter(|g| served.contains(&g.index))
        .max_by(|a, b| {
            a.memory_bytes
                .unwrap_or(0)
                .cmp(&b.memory_bytes.unwrap_or(0))
                .then(b.index.cmp(&a.index))
        });
    checks
        .into_iter()
        .map(|c| match c {
            Check::Fits(why) => Judged::Fits { why, narrow: None },
            Check::No(why) => Judged::No(why),
            Check::Partial { why_not, .. } if full_cuda => Judged::No(format!(
                "{why_not}; another build serves every visible GPU"
            )),
            Check::Partial { serves, why_not } => match target {
                Some(t) if serves.contains(&t.index) => Judged::Fits {
                    why: format!(
                        "no build serves every visible GPU ({why_not}); serving {}, the one with the most memory{}, with CUDA_VISIBLE_DEVICES={}",
                        served_labels(gpus, &serves),
                        t.memory_bytes
                            .map(|b| format!(" ({} GiB)", b >> 30))
                            .unwrap_or_default(),
                        cuda_ids(hw, &serves)
                    ),
                    narrow: Some(serves),
                },
                _ => Judged::No(format!(
                    "{why_not}; and it does not serve {}, the GPU with the most memory",
                    target.map(|t| t.label()).unwrap_or_else(|| "any GPU".into())
                )),
            },
        })
        .collect()
}

fn served_labels(gpus: &[crate::hardware::Gpu], serves: &[u32]) -> String {
    gpus.iter()
        .filter(|g| serves.contains(&g.index))
        .map(|g| g.label())
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod table;
#[cfg(test)]
mod tests;
