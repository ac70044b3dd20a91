//! Fetching and accepting a channel manifest: the decisions are the core's
//! ([`peft_manifest::accept`]); this file fetches the two files (once more when a
//! publish lands between them), reports a refusal with a hint, warns about an
//! expired offline manifest, and remembers the serial.

use peft_manifest::accept::rfc3339;
use peft_manifest::{Manifest, Policy, Refusal, TrustedKeys, accept};
use time::OffsetDateTime;

use super::{Fetcher, Root, manifest_path};
use crate::cache::{Cache, CacheLock, ChannelState};
use crate::error::{Error, Result};
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
    let roots = std::slice::from_ref(root);
    let mut state = cache.state()?;
    let highest = state.channels.get(s.channel).map(|c| c.serial).unwrap_or(0);
    let policy = Policy {
        channel: s.channel,
        keys: s.keys,
        offline: s.offline,
        highest_serial: highest,
        now: OffsetDateTime::now_utc(),
    };
    let mut attempt = 0;
    let accepted = loop {
        attempt += 1;
        let bytes = fetcher.get_small(roots, &path, MAX_MANIFEST).await?;
        let sig = fetcher.get_small(roots, &sig_path, MAX_SIGNATURE).await?;
        match accept(&bytes, &String::from_utf8_lossy(&sig), &policy) {
            Ok(a) => break a,
            // A publish may land between our two requests: fetch both once more.
            Err(Refusal::Untrusted(e)) if attempt == 1 && matches!(root, Root::Http(_)) => {
                tracing::debug!("manifest signature check failed ({e}); fetching both again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(Refusal::Untrusted(e)) => {
                return Err(Error::integrity_hint(
                    format!("the manifest {} is not trusted: {e}", root.describe(&path)),
                    "nothing was installed; check that the app and the repository use the same release key",
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
    let m = accepted.manifest;
    if m.serial > highest {
        let published_at = rfc3339(&m.published_at);
        state.channels.insert(
            s.channel.to_string(),
            ChannelState {
                serial: m.serial,
                published_at,
            },
        );
        cache.save_state(&state, lock)?;
    }
    Ok(m)
}

/// The error and hint a refused manifest is reported with.
fn refused(r: Refusal) -> Error {
    match r {
        Refusal::NewerSchema { .. } => Error::NoVariant {
            message: r.to_string(),
            hint: Some("update PEFT Studio".into()),
        },
        Refusal::Replayed { .. } => Error::integrity_hint(
            r.to_string(),
            "the repository or a mirror serves an outdated manifest; the installed backend is unchanged",
        ),
        Refusal::Expired { .. } => Error::integrity_hint(
            r.to_string(),
            "the repository has not been republished; the installed backend is unchanged",
        ),
        _ => Error::integrity(r.to_string()),
    }
}
