//! Fetching and accepting a channel manifest: the decisions are the core's
//! ([`peft_manifest::accept`]); this file fetches the two files (once more when a
//! publish lands between them), reports a refusal with a hint, warns about an
//! expired offline manifest, a clock set back and a dropped serial floor, and
//! remembers what the core says to remember of the channel (`state.json`).

use peft_manifest::accept::rfc3339;
use peft_manifest::{Manifest, Policy, Refusal, TrustError, TrustedKeys, accept};
use time::OffsetDateTime;

use super::{Fetcher, Root, manifest_path};
use crate::cache::{Cache, CacheLock};
use crate::error::{Error, Reason, Result};
use crate::report::Reporter;

/// The largest manifest accepted; real ones are a few kB.
pub const MAX_MANIFEST: u64 = 4 << 20;
const MAX_SIGNATURE: u64 = 64 << 10;

/// What a manifest is accepted for: the channel asked for, the keys trusted, and
/// whether it comes from an offline folder (an expired one is then accepted with a
/// warning).
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    pub channel: &'a str,
    pub keys: &'a TrustedKeys,
    pub offline: bool,
    /// Roots tried for the manifest after `root` when it cannot be fetched there
    /// (release.json's `mirrors`; none offline).
    pub mirrors: &'a [Root],
}

/// Fetches, verifies and accepts the channel manifest from `root`. Its
/// `min_bootstrapper` is not judged here: the command asks
/// [`crate::version::needs_newer`] and decides (`self-update` reads a manifest that
/// needs a newer bootstrapper, since that is exactly what it is after).
pub async fn accept_signed(
    fetcher: &Fetcher,
    root: &Root,
    s: Trust<'_>,
    cache: &Cache,
    lock: &CacheLock,
    reporter: &dyn Reporter,
) -> Result<Manifest> {
    let path = manifest_path(s.channel);
    let sig_path = format!("{path}.minisig");
    let mut roots = vec![root.clone()];
    if !s.offline {
        roots.extend(s.mirrors.iter().filter(|m| *m != root).cloned());
    }
    let roots = &roots[..];
    let mut state = cache.state()?;
    let memory = state.channels.get(s.channel).cloned().unwrap_or_default();
    let policy = Policy {
        channel: s.channel,
        keys: s.keys,
        offline: s.offline,
        memory: &memory,
        now: OffsetDateTime::now_utc(),
    };
    let mut attempt = 0;
    let accepted = loop {
        attempt += 1;
        let bytes = fetcher
            .get_small(roots, &path, MAX_MANIFEST, reporter)
            .await?;
        let sig = fetcher
            .get_small(roots, &sig_path, MAX_SIGNATURE, reporter)
            .await?;
        match accept(&bytes, &String::from_utf8_lossy(&sig), &policy) {
            Ok(a) => break a,
            // A publish may land between our two requests: fetch both once more.
            Err(Refusal::Untrusted(e)) if attempt == 1 && matches!(root, Root::Http(_)) => {
                tracing::debug!("manifest signature check failed ({e}); fetching both again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(Refusal::Untrusted(e)) => {
                let reason = match e {
                    TrustError::UnknownSigner { .. } => Reason::UntrustedKey,
                    _ => Reason::Tampered,
                };
                return Err(Error::reasoned(
                    reason,
                    format!("the manifest {} is not trusted: {e}", root.describe(&path)),
                    Some("nothing was installed; check that the app and the repository use the same release key (after a key rotation, a machine that never saw the announcement needs a newer PEFT Studio or --trusted-key)".to_string()),
                ));
            }
            Err(r) => return Err(refused(r)),
        }
    };
    tracing::debug!("manifest signed by {}", accepted.verified.key);
    if let Some(at) = accepted.expired {
        reporter.warn(format!(
            "the offline folder's manifest expired at {}; installing from it anyway because it is offline",
            rfc3339(&at)
        ));
    }
    if let Some(at) = accepted.clock_behind {
        reporter.warn(format!(
            "this machine's clock reads {}, earlier than {} when the newest manifest of {:?} accepted here was published: the clock is wrong; expiry was judged at that time instead",
            rfc3339(&policy.now),
            rfc3339(&at),
            s.channel
        ));
    }
    if let Some(d) = accepted.dropped_floor {
        reporter.warn(format!(
            "the manifest retires key {}, which had set the serial floor of {:?} to {}; the floor is now serial {} (recovery from a compromised key)",
            d.key, s.channel, d.serial, accepted.manifest.serial
        ));
    }
    if accepted.memory != memory {
        state
            .channels
            .insert(s.channel.to_string(), accepted.memory);
        cache.save_state(&state, lock)?;
    }
    Ok(accepted.manifest)
}

/// The error, reason and hint a refused manifest is reported with.
fn refused(r: Refusal) -> Error {
    let (reason, hint) = match &r {
        Refusal::NewerSchema { .. } => (Reason::Incompatible, "update PEFT Studio"),
        Refusal::Replayed { .. } => (
            Reason::Downgrade,
            "the repository or a mirror serves an outdated manifest; the installed backend is unchanged",
        ),
        Refusal::Expired {
            clock_behind: Some(_),
            ..
        } => (
            Reason::Expired,
            "set this machine's clock to the right time; the installed backend is unchanged",
        ),
        Refusal::Expired { .. } => (
            Reason::Expired,
            "the repository has not been republished since; ask its publisher to publish again (an offline folder made from it still installs); the installed backend is unchanged",
        ),
        Refusal::RetiredKey { .. } => (
            Reason::UntrustedKey,
            "the repository or a mirror serves a manifest signed with a release key that was rotated out (possibly stolen); the installed backend is unchanged",
        ),
        Refusal::Untrusted(TrustError::UnknownSigner { .. }) => (
            Reason::UntrustedKey,
            "nothing was installed; check that the app and the repository use the same release key",
        ),
        _ => (
            Reason::Tampered,
            "nothing was installed; the repository, a mirror or a proxy serves an altered or broken manifest",
        ),
    };
    Error::reasoned(reason, r.to_string(), Some(hint.to_string()))
}
