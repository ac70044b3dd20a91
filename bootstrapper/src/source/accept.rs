//! Accepting a channel manifest: signature first, then parse, validate, channel,
//! rollback (serial) and expiry checks, then the serial is remembered.

use peft_manifest::{Manifest, TrustedKeys, validate};
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
    let mut attempt = 0;
    let (bytes, verified) = loop {
        attempt += 1;
        let bytes = fetcher.get_small(roots, &path, MAX_MANIFEST).await?;
        let sig = fetcher.get_small(roots, &sig_path, MAX_SIGNATURE).await?;
        let sig = String::from_utf8_lossy(&sig);
        match s.keys.verify(&bytes, &sig) {
            Ok(v) => break (bytes, v),
            // A publish may land between our two requests: fetch both once more.
            Err(e) if attempt == 1 && matches!(root, Root::Http(_)) => {
                tracing::debug!("manifest signature check failed ({e}); fetching both again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(Error::integrity_hint(
                    format!("the manifest {} is not trusted: {e}", root.describe(&path)),
                    "nothing was installed; check that the app and the repository use the same release key",
                ));
            }
        }
    };
    tracing::debug!("manifest signed by {}", verified.key);
    let m = Manifest::from_json(&bytes).map_err(|e| {
        Error::integrity(format!(
            "the signed manifest is not a schema-1 manifest this bootstrapper reads: {e}"
        ))
    })?;
    if m.schema > peft_manifest::SCHEMA {
        return Err(Error::NoVariant {
            message: format!(
                "the manifest uses schema {}, this bootstrapper reads schema {}",
                m.schema,
                peft_manifest::SCHEMA
            ),
            hint: Some("update PEFT Studio".into()),
        });
    }
    let problems = validate(&m);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Error::integrity(format!(
            "the signed manifest is malformed: {}",
            list.join("; ")
        )));
    }
    if m.channel != s.channel {
        return Err(Error::integrity(format!(
            "the manifest is for the channel {:?}, not {:?}: refusing a manifest served in the wrong place",
            m.channel, s.channel
        )));
    }
    let mut state = cache.state()?;
    let highest = state.channels.get(s.channel).map(|c| c.serial).unwrap_or(0);
    if m.serial < highest {
        return Err(Error::integrity_hint(
            format!(
                "the manifest has serial {}, lower than serial {highest} already accepted for {:?}: a replayed old manifest",
                m.serial, s.channel
            ),
            "the repository or a mirror serves an outdated manifest; the installed backend is unchanged",
        ));
    }
    let now = OffsetDateTime::now_utc();
    if now > m.expires_at {
        let when = m
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if s.offline {
            reporter.warn(format!("the offline folder's manifest expired at {when}; installing from it anyway because it is offline"));
        } else {
            return Err(Error::integrity_hint(
                format!("the manifest expired at {when}"),
                "the repository has not been republished; the installed backend is unchanged",
            ));
        }
    }
    if m.serial > highest {
        let published_at = m
            .published_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
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
