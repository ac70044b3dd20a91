//! What a bootstrapper remembers of a channel between runs (one entry of its
//! `state.json`), and how accepting a manifest changes it. Pure, so that
//! `peft-release verify --state` judges with a user's memory exactly as that user's
//! bootstrapper does.
//!
//! - **The high-water mark**: the serial, `published_at` and signing key of the
//!   newest manifest accepted. A lower serial is a replay. A clock that reads earlier
//!   than that `published_at` is wrong: expiry is judged at `published_at` instead.
//! - **Announced keys**: every successor key a manifest of the channel announced
//!   (`keys.next`), with the key that signed the announcement. They verify later
//!   manifests of the channel as if built in.
//! - **Retired keys**: every key a manifest of the channel retired (`keys.retired`).
//!   A manifest signed by one is refused, even when the key is built in.
//!
//! Retiring a key also forgets the keys it announced (unless the retiring manifest is
//! signed by one of them), so a key that an attacker holding the retired key
//! announced does not outlive it. When the high-water mark was set by a key that a
//! manifest's retirements take away, the mark is dropped (TUF's fast-forward
//! recovery): an attacker's serial 1,000,000 signed with a stolen key no longer locks
//! out the publisher's serial 12 once the publisher's new key retires the stolen one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::limits::{MAX_ANNOUNCED_REMEMBERED, MAX_RETIRED_REMEMBERED};
use crate::model::Manifest;
use crate::trust::{KeyId, TrustedKeys, public_key_id};

/// What has been accepted from one channel. The default is "nothing yet".
///
/// Backwards compatible: a `state.json` entry written before key rotation existed
/// (`{"serial": 7, "published_at": "..."}`) reads as a memory without a signing key,
/// announced or retired keys; an unreadable `published_at` reads as none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMemory {
    /// The highest serial accepted (0: none).
    pub serial: u64,
    /// The `published_at` of the manifest with that serial: a signed lower bound on
    /// the current time.
    #[serde(
        default,
        with = "lenient_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub published_at: Option<OffsetDateTime>,
    /// The key that signed the manifest with that serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<KeyId>,
    /// Successor keys announced by the channel's manifests, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announced: Vec<Announced>,
    /// Keys retired by the channel's manifests, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<KeyId>,
}

/// A successor key a manifest announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    pub id: KeyId,
    /// The minisign public key line (base64).
    pub key: String,
    /// The key that signed the manifest announcing it.
    pub by: KeyId,
}

/// What a manifest's serial and expiry are judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    /// The lowest serial accepted (a lower one is a replay).
    pub serial: u64,
    /// The earliest time the clock may read (expiry is judged at it when the clock
    /// reads earlier).
    pub published_at: Option<OffsetDateTime>,
    /// Set when the high-water mark was dropped because its key was retired.
    pub dropped: Option<Dropped>,
}

/// A high-water mark dropped because the manifest retires the key that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub serial: u64,
    pub key: KeyId,
}

impl ChannelMemory {
    /// The keys a manifest of this channel is verified with: `base` (built in or
    /// `--trusted-key`) and every announced key. Retired keys stay in the set so that
    /// a manifest signed by one is refused by name ([`ChannelMemory::is_retired`]).
    pub fn trusted(&self, base: &TrustedKeys) -> TrustedKeys {
        base.with_announced(
            self.announced
                .iter()
                .map(|a| (a.key.as_str(), format!("{} (announced by {})", a.id, a.by))),
        )
    }

    pub fn is_retired(&self, id: KeyId) -> bool {
        self.retired.contains(&id)
    }

    /// Whether `key` was announced by `ancestor`, directly or through keys it announced.
    pub fn descends_from(&self, key: KeyId, ancestor: KeyId) -> bool {
        let mut cur = key;
        for _ in 0..=self.announced.len() {
            match self.announced.iter().find(|a| a.id == cur) {
                Some(a) if a.by == ancestor => return true,
                Some(a) => cur = a.by,
                None => return false,
            }
        }
        false
    }

    /// The keys `m` (signed by `signer`) takes away: those it newly retires, and the
    /// announced keys that only they vouched for (transitively), except `signer`.
    fn taken_away(&self, m: &Manifest, signer: KeyId) -> Vec<KeyId> {
        let mut gone: Vec<KeyId> = m
            .keys
            .retired
            .iter()
            .copied()
            .filter(|r| !self.retired.contains(r))
            .collect();
        loop {
            let more: Vec<KeyId> = self
                .announced
                .iter()
                .filter(|a| a.id != signer && !gone.contains(&a.id) && gone.contains(&a.by))
                .map(|a| a.id)
                .collect();
            if more.is_empty() {
                return gone;
            }
            gone.extend(more);
        }
    }

    /// What `m`, signed by `signer`, is judged against: the high-water mark, unless
    /// `m` retires the key that set it.
    pub fn floor(&self, m: &Manifest, signer: KeyId) -> Floor {
        let dropped = self.signed_by.filter(|k| {
            *k != signer && (m.keys.retired.contains(k) || self.taken_away(m, signer).contains(k))
        });
        match dropped {
            Some(key) => Floor {
                serial: 0,
                published_at: None,
                dropped: Some(Dropped {
                    serial: self.serial,
                    key,
                }),
            },
            None => Floor {
                serial: self.serial,
                published_at: self.published_at,
                dropped: None,
            },
        }
    }

    /// This memory after accepting `m`, signed by `signer` (the caller has judged it).
    pub fn after(&self, m: &Manifest, signer: KeyId) -> ChannelMemory {
        let floor = self.floor(m, signer);
        let gone = self.taken_away(m, signer);
        let mut next = self.clone();
        next.announced.retain(|a| !gone.contains(&a.id));
        for r in &m.keys.retired {
            if !next.retired.contains(r) {
                next.retired.push(*r);
            }
        }
        if floor.dropped.is_some() || m.serial > self.serial {
            next.serial = m.serial;
            next.published_at = Some(m.published_at);
            next.signed_by = Some(signer);
        } else if m.serial == self.serial && self.signed_by.is_none() {
            // The same manifest again, remembered by a bootstrapper before rotation existed.
            next.published_at = Some(m.published_at);
            next.signed_by = Some(signer);
        }
        for line in &m.keys.next {
            let Ok(id) = public_key_id(line) else {
                continue;
            };
            let known = next.announced.iter().any(|a| a.id == id);
            if id != signer && !known && !next.retired.contains(&id) {
                next.announced.push(Announced {
                    id,
                    key: line.trim().to_string(),
                    by: signer,
                });
            }
        }
        let extra = next
            .announced
            .len()
            .saturating_sub(MAX_ANNOUNCED_REMEMBERED);
        next.announced.drain(..extra);
        let extra = next.retired.len().saturating_sub(MAX_RETIRED_REMEMBERED);
        next.retired.drain(..extra);
        next
    }
}

/// RFC 3339, read leniently: a `published_at` this build cannot read is "none"
/// rather than a cache that no command can open.
mod lenient_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::option::serialize(t, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        Ok(s.and_then(|s| OffsetDateTime::parse(&s, &Rfc3339).ok()))
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
