//! Accepting a signed channel manifest: every decision `peft-bootstrap` makes before
//! it believes a manifest, in the order it makes them, so that `peft-release verify`
//! checks a repository exactly as a bootstrapper would. Pure: the caller passes the
//! bytes, the signature, the keys, what it remembers of the channel
//! ([`ChannelMemory`]) and the time.
//!
//! [`open`] is what no manifest survives failing: the signature over the raw bytes
//! (before one byte of JSON is parsed) by a trusted key (built in or given, or
//! announced by an earlier manifest of the channel), the parse, and a schema this
//! build reads. [`judge`] lists everything else that is wrong with an opened
//! manifest, all at once: its structure ([`validate`]), a signing key the channel has
//! retired, a retirement that rotation forbids, the channel it names, a serial lower
//! than the floor (a replay), and expiry, judged at the later of the clock and the
//! floor's `published_at` (so setting the clock back does not revive an expired
//! manifest; an offline folder's expired manifest is let through, and
//! [`Accepted::expired`] says so the caller can warn). [`accept`] is both, refusing
//! with the first problem, and returns the memory to keep. `min_bootstrapper` is not
//! judged here: whether this build is too old is the caller's decision (self-update
//! reads exactly such manifests).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::memory::{ChannelMemory, Dropped};
use crate::model::{Manifest, SCHEMA};
use crate::trust::{KeyId, TrustError, TrustedKeys, Verified};
use crate::validate::{Problem, validate};

/// What a manifest is accepted for, and what the caller has seen before.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The channel asked for; the manifest must name the same one.
    pub channel: &'a str,
    /// The keys this build trusts: built in, or `--trusted-key`. The memory adds the
    /// keys the channel announced and takes away those it retired.
    pub keys: &'a TrustedKeys,
    /// From an offline folder: an expired manifest is then accepted.
    pub offline: bool,
    /// What was accepted from this channel before (the default for nothing).
    pub memory: &'a ChannelMemory,
    pub now: OffsetDateTime,
}

impl Policy<'_> {
    /// The keys a manifest of the channel is verified with.
    pub fn trusted_keys(&self) -> TrustedKeys {
        self.memory.trusted(self.keys)
    }
}

/// A manifest that passed every check.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub manifest: Manifest,
    pub verified: Verified,
    /// Set when the manifest has expired and was accepted only because it is offline.
    pub expired: Option<OffsetDateTime>,
    /// Set when the clock reads earlier than the newest `published_at` accepted
    /// before (that time): the clock is wrong, and expiry was judged at that time.
    pub clock_behind: Option<OffsetDateTime>,
    /// Set when the manifest retired the key that set the serial floor, which was
    /// therefore dropped (fast-forward recovery).
    pub dropped_floor: Option<Dropped>,
    /// What to remember of the channel from now on.
    pub memory: ChannelMemory,
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
        "the manifest is signed by key {key}, which a manifest of {channel:?} retired (rotated out): refusing it even though the key is trusted here"
    )]
    RetiredKey { key: KeyId, channel: String },
    #[error("the manifest retires key {key}, the key that signed it")]
    RetiresItsSigner { key: KeyId },
    #[error(
        "the manifest signed by key {signer} retires key {retired}, which {signer} announced as its successor: rotation only moves forward"
    )]
    RetiresSuccessor { signer: KeyId, retired: KeyId },
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
    #[error("the manifest expired at {}{}", rfc3339(.at), clock_note(.clock_behind))]
    Expired {
        at: OffsetDateTime,
        /// Set when the clock read earlier than this time (the newest `published_at`
        /// accepted before), at which expiry was judged instead.
        clock_behind: Option<OffsetDateTime>,
    },
}

fn clock_note(behind: &Option<OffsetDateTime>) -> String {
    match behind {
        None => String::new(),
        Some(t) => format!(
            " (judged at {}, when the newest manifest accepted from this channel was published: this machine's clock reads earlier than that and is wrong)",
            rfc3339(t)
        ),
    }
}

fn list(problems: &[Problem]) -> String {
    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
    all.join("; ")
}

/// A time as RFC 3339, the way the manifest writes it.
pub fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Verifies the signature over `bytes` with `keys` (see [`Policy::trusted_keys`]),
/// then parses them as a manifest of a schema this build reads.
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

/// The time expiry is judged at: the clock, or the floor's `published_at` when the
/// clock reads earlier (then also returned as the second value).
fn judged_at(
    now: OffsetDateTime,
    floor: Option<OffsetDateTime>,
) -> (OffsetDateTime, Option<OffsetDateTime>) {
    match floor {
        Some(p) if p > now => (p, Some(p)),
        _ => (now, None),
    }
}

/// Everything wrong with an opened manifest signed by `signer` under `policy`, in
/// the order a bootstrapper checks it; empty when it is acceptable.
pub fn judge(m: &Manifest, signer: KeyId, policy: &Policy<'_>) -> Vec<Refusal> {
    let mut out = Vec::new();
    let memory = policy.memory;
    let problems = validate(m);
    if !problems.is_empty() {
        out.push(Refusal::Malformed(problems));
    }
    if memory.is_retired(signer) {
        out.push(Refusal::RetiredKey {
            key: signer,
            channel: policy.channel.to_string(),
        });
    }
    for &retired in &m.keys.retired {
        if retired == signer {
            out.push(Refusal::RetiresItsSigner { key: signer });
        } else if memory.descends_from(retired, signer) {
            out.push(Refusal::RetiresSuccessor { signer, retired });
        }
    }
    if m.channel != policy.channel {
        out.push(Refusal::WrongChannel {
            got: m.channel.clone(),
            want: policy.channel.to_string(),
        });
    }
    let floor = memory.floor(m, signer);
    if m.serial < floor.serial {
        out.push(Refusal::Replayed {
            got: m.serial,
            highest: floor.serial,
            channel: policy.channel.to_string(),
        });
    }
    let (at, clock_behind) = judged_at(policy.now, floor.published_at);
    if at > m.expires_at && !policy.offline {
        out.push(Refusal::Expired {
            at: m.expires_at,
            clock_behind,
        });
    }
    out
}

/// [`open`] then [`judge`]: the manifest and what to remember, or the first reason
/// to refuse it.
pub fn accept(bytes: &[u8], signature: &str, policy: &Policy<'_>) -> Result<Accepted, Refusal> {
    let (manifest, verified) = open(bytes, signature, &policy.trusted_keys())?;
    if let Some(first) = judge(&manifest, verified.id, policy).into_iter().next() {
        return Err(first);
    }
    let floor = policy.memory.floor(&manifest, verified.id);
    let (at, clock_behind) = judged_at(policy.now, floor.published_at);
    let expired = (at > manifest.expires_at).then_some(manifest.expires_at);
    let memory = policy.memory.after(&manifest, verified.id);
    Ok(Accepted {
        manifest,
        verified,
        expired,
        clock_behind,
        dropped_floor: floor.dropped,
        memory,
    })
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
