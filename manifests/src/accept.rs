//! Accepting a signed channel manifest: every decision `peft-bootstrap` makes before
//! it believes a manifest, in the order it makes them, so that `peft-release verify`
//! checks a repository exactly as a bootstrapper would. Pure: the caller passes the
//! bytes, the signature, the keys, the highest serial it has accepted before and the
//! time.
//!
//! [`open`] is what no manifest survives failing: the signature over the raw bytes
//! (before one byte of JSON is parsed), the parse, and a schema this build reads.
//! [`judge`] lists everything else that is wrong with an opened manifest, all at
//! once: its structure ([`validate`]), the channel it names, a serial lower than one
//! already accepted (a replay), and expiry (an offline folder's expired manifest is
//! let through, and [`Accepted::expired`] says so the caller can warn). [`accept`]
//! is both, refusing with the first problem. `min_bootstrapper` is not judged here:
//! whether this build is too old is the caller's decision (self-update reads exactly
//! such manifests).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::{Manifest, SCHEMA};
use crate::trust::{TrustError, TrustedKeys, Verified};
use crate::validate::{Problem, validate};

/// What a manifest is accepted for, and what the caller has seen before.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The channel asked for; the manifest must name the same one.
    pub channel: &'a str,
    pub keys: &'a TrustedKeys,
    /// From an offline folder: an expired manifest is then accepted.
    pub offline: bool,
    /// The highest serial accepted before for this channel (0 for none).
    pub highest_serial: u64,
    pub now: OffsetDateTime,
}

/// A manifest that passed every check.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub manifest: Manifest,
    pub verified: Verified,
    /// Set when the manifest has expired and was accepted only because it is offline.
    pub expired: Option<OffsetDateTime>,
}

/// Why a manifest is not believed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    #[error("the signed manifest is not a schema-1 manifest this bootstrapper reads: {0}")]
    Unreadable(String),
    #[error("the manifest uses schema {got}, this bootstrapper reads schema {SCHEMA}")]
    NewerSchema { got: u32 },
    #[error("the signed manifest is malformed: {}", list(.0))]
    Malformed(Vec<Problem>),
    #[error(
        "the manifest is for the channel {got:?}, not {want:?}: refusing a manifest served in the wrong place"
    )]
    WrongChannel { got: String, want: String },
    #[error(
        "the manifest has serial {got}, lower than serial {highest} already accepted for {channel:?}: a replayed old manifest"
    )]
    Replayed {
        got: u64,
        highest: u64,
        channel: String,
    },
    #[error("the manifest expired at {}", rfc3339(.at))]
    Expired { at: OffsetDateTime },
}

fn list(problems: &[Problem]) -> String {
    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
    all.join("; ")
}

/// A time as RFC 3339, the way the manifest writes it.
pub fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Verifies the signature over `bytes`, then parses them as a manifest of a schema
/// this build reads.
pub fn open(
    bytes: &[u8],
    signature: &str,
    keys: &TrustedKeys,
) -> Result<(Manifest, Verified), Refusal> {
    let verified = keys.verify(bytes, signature)?;
    let m = Manifest::from_json(bytes).map_err(|e| Refusal::Unreadable(e.to_string()))?;
    if m.schema > SCHEMA {
        return Err(Refusal::NewerSchema { got: m.schema });
    }
    Ok((m, verified))
}

/// Everything wrong with an opened manifest under `policy`, in the order a
/// bootstrapper checks it; empty when it is acceptable.
pub fn judge(m: &Manifest, policy: &Policy<'_>) -> Vec<Refusal> {
    let mut out = Vec::new();
    let problems = validate(m);
    if !problems.is_empty() {
        out.push(Refusal::Malformed(problems));
    }
    if m.channel != policy.channel {
        out.push(Refusal::WrongChannel {
            got: m.channel.clone(),
            want: policy.channel.to_string(),
        });
    }
    if m.serial < policy.highest_serial {
        out.push(Refusal::Replayed {
            got: m.serial,
            highest: policy.highest_serial,
            channel: policy.channel.to_string(),
        });
    }
    if policy.now > m.expires_at && !policy.offline {
        out.push(Refusal::Expired { at: m.expires_at });
    }
    out
}

/// [`open`] then [`judge`]: the manifest, or the first reason to refuse it.
pub fn accept(bytes: &[u8], signature: &str, policy: &Policy<'_>) -> Result<Accepted, Refusal> {
    let (manifest, verified) = open(bytes, signature, policy.keys)?;
    if let Some(first) = judge(&manifest, policy).into_iter().next() {
        return Err(first);
    }
    let expired = (policy.now > manifest.expires_at).then_some(manifest.expires_at);
    Ok(Accepted {
        manifest,
        verified,
        expired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-06-01 00:00 UTC)
    }

    #[test]
    fn judge_lists_every_problem_in_order() {
        let mut m = sample::manifest();
        m.channel = "beta".into();
        m.serial = 3;
        m.expires_at = now() - time::Duration::days(1);
        m.releases[0].variants[0].archive.size = 0;
        let keys = TrustedKeys::builtin();
        let p = Policy {
            channel: "stable",
            keys: &keys,
            offline: false,
            highest_serial: 7,
            now: now(),
        };
        let got = judge(&m, &p);
        assert!(matches!(got[0], Refusal::Malformed(_)), "{got:?}");
        assert!(matches!(got[1], Refusal::WrongChannel { .. }), "{got:?}");
        assert!(
            matches!(
                got[2],
                Refusal::Replayed {
                    got: 3,
                    highest: 7,
                    ..
                }
            ),
            "{got:?}"
        );
        assert!(matches!(got[3], Refusal::Expired { .. }), "{got:?}");
        assert_eq!(got.len(), 4);
        assert!(
            got[3]
                .to_string()
                .starts_with("the manifest expired at 2026-05-31")
        );
    }

    #[test]
    fn an_offline_manifest_may_be_expired_but_nothing_else() {
        let m = sample::manifest();
        let keys = TrustedKeys::builtin();
        let mut p = Policy {
            channel: "stable",
            keys: &keys,
            offline: true,
            highest_serial: 0,
            now: m.expires_at + time::Duration::days(1),
        };
        assert_eq!(judge(&m, &p), vec![]);
        p.highest_serial = m.serial + 1;
        assert!(matches!(judge(&m, &p)[..], [Refusal::Replayed { .. }]));
    }

    #[test]
    fn unsigned_bytes_are_refused_before_parsing() {
        let keys = TrustedKeys::builtin();
        let p = Policy {
            channel: "stable",
            keys: &keys,
            offline: false,
            highest_serial: 0,
            now: now(),
        };
        let got = accept(b"not json at all", "not a signature", &p);
        assert!(matches!(got, Err(Refusal::Untrusted(_))), "{got:?}");
    }
}
