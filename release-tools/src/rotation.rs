//! Keys on the release engineer's side: reading the public keys given on the command
//! line (`verify --pubkey`, `publish --announce-key/--retire-key`), and what the next
//! manifest announces and retires (`publish`), refusing before signing the mistakes
//! that every bootstrapper would refuse after it.
//!
//! What the new manifest's `keys` hold: the current manifest's `retired` (carried for
//! ever, so a machine that skipped manifests still learns of every retirement) plus
//! the `--retire-key`s; the current manifest's `next` less the key now signing (it
//! has taken over) and less the retired ones, plus the `--announce-key`s. The
//! procedure is in docs/RELEASING.md, the rules in `peft_manifest::memory`.

use std::path::Path;

use peft_manifest::trust::public_key_id;
use peft_manifest::{KeyId, KeyRotation, TrustedKeys};

use crate::error::{ReleaseError, Result};

/// The text of a key argument: the file's text when it names a file, else itself.
fn key_text(value: &str) -> Result<String> {
    let p = Path::new(value.trim());
    if p.is_file() {
        fs_err::read_to_string(p).map_err(|e| ReleaseError::io("reading", p, e))
    } else {
        Ok(value.to_string())
    }
}

/// The minisign public key lines of a `.pub` file or of the value itself.
pub fn key_lines(value: &str) -> Result<Vec<String>> {
    let text = key_text(value)?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .map(String::from)
        .collect();
    if lines.is_empty() {
        return Err(ReleaseError::Key(format!(
            "{value:?} holds no minisign public key: pass a .pub file or its base64 line"
        )));
    }
    for l in &lines {
        public_key_id(l).map_err(|e| ReleaseError::Key(format!("{value}: {e}")))?;
    }
    Ok(lines)
}

/// The keys a command judges a manifest with, as the app would (`verify`, `offline`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrustArgs {
    /// A trusted public key: a .pub file or its base64 line (repeatable). Without
    /// one, the keys built into peft-bootstrap, as the bootstrapper does.
    #[arg(
        long = "pubkey",
        visible_alias = "trusted-key",
        value_name = "PUBFILE",
        env = "PEFT_TRUSTED_KEY"
    )]
    pub pubkeys: Vec<String>,
}

/// The trusted keys of `--pubkey` values (each a `.pub` file or key lines); the keys
/// built into `peft-bootstrap` when there are none, as the bootstrapper does.
pub fn trusted_keys(values: &[String]) -> Result<TrustedKeys> {
    let mut out: Option<TrustedKeys> = None;
    for v in values {
        let keys = TrustedKeys::from_text(&key_text(v)?)
            .map_err(|e| ReleaseError::Key(format!("{v}: {e}")))?;
        out = Some(match out {
            None => keys,
            Some(o) => o.union(keys),
        });
    }
    Ok(out.unwrap_or_else(TrustedKeys::builtin))
}

/// The key ids of a `--retire-key` value: a `.pub` file, a key line, or a key id as
/// `minisign` prints it.
pub fn key_ids(value: &str) -> Result<Vec<KeyId>> {
    if !Path::new(value.trim()).is_file()
        && let Ok(id) = value.parse::<KeyId>()
    {
        return Ok(vec![id]);
    }
    key_lines(value)?
        .iter()
        .map(|l| public_key_id(l).map_err(|e| ReleaseError::Key(e.to_string())))
        .collect()
}

/// The `keys` of the next manifest, signed by `signer`, after the current one
/// (`current`, signed by `current_signer`).
pub fn next_keys(
    current: Option<(&KeyRotation, Option<KeyId>)>,
    signer: KeyId,
    announce: &[String],
    retire: &[KeyId],
    allow_unannounced: bool,
) -> Result<KeyRotation> {
    let (mut keys, current_signer) = match current {
        Some((k, s)) => (k.clone(), s),
        None => (KeyRotation::default(), None),
    };
    let refuse = |m: String| Err(ReleaseError::Usage(m));
    let announced = |keys: &KeyRotation, id: KeyId| {
        keys.next
            .iter()
            .any(|l| public_key_id(l).is_ok_and(|x| x == id))
    };
    if keys.retired.contains(&signer) || retire.contains(&signer) {
        return refuse(format!(
            "--key is key {signer}, which {}: every bootstrapper that knows it would refuse the manifest; sign with its successor",
            if retire.contains(&signer) {
                "--retire-key retires"
            } else {
                "the channel's current manifest retires"
            }
        ));
    }
    if let Some(cur) = current_signer
        && cur != signer
        && !announced(&keys, signer)
        && !allow_unannounced
    {
        return refuse(format!(
            "--key is key {signer}, but the channel's current manifest is signed by {cur} and does not announce {signer}: bootstrappers that trust only {cur} would refuse it. Publish once with the current key and --announce-key first, or pass --allow-unannounced-key when the new key is built into a new release of the app"
        ));
    }
    for &r in retire {
        if current_signer == Some(signer) && announced(&keys, r) {
            return refuse(format!(
                "key {signer} announced key {r} as its successor and cannot retire it (rotation only moves forward): announce another key, sign with that one, and retire {r} there"
            ));
        }
    }
    keys.next
        .retain(|l| public_key_id(l).is_ok_and(|id| id != signer && !retire.contains(&id)));
    for &r in retire {
        if !keys.retired.contains(&r) {
            keys.retired.push(r);
        }
    }
    for line in announce {
        let id = public_key_id(line).map_err(|e| ReleaseError::Key(e.to_string()))?;
        if id == signer {
            return refuse(format!(
                "--announce-key announces key {id}, the key signing this manifest: announce the successor, sign with the current key"
            ));
        }
        if keys.retired.contains(&id) {
            return refuse(format!(
                "--announce-key announces key {id}, which is retired: a retired key is never trusted again; make a new key"
            ));
        }
        if !announced(&keys, id) {
            keys.next.push(line.trim().to_string());
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u64) -> String {
        use base64::Engine as _;
        let mut bin = b"Ed".to_vec();
        bin.extend(id.to_le_bytes());
        bin.extend([7u8; 32]);
        base64::engine::general_purpose::STANDARD.encode(bin)
    }

    #[test]
    fn a_rotation_from_a_to_b() {
        let (a, b) = (KeyId(0xA), KeyId(0xB));
        // A announces B.
        let one = next_keys(None, a, &[line(0xB)], &[], false).expect("announce");
        assert_eq!(one.next, vec![line(0xB)]);
        // Carried while A signs.
        let two = next_keys(Some((&one, Some(a))), a, &[], &[], false).expect("carry");
        assert_eq!(two, one);
        // B signs and retires A: B is no longer "next", A is retired for ever.
        let three = next_keys(Some((&two, Some(a))), b, &[], &[a], false).expect("retire");
        assert_eq!((three.next.len(), three.retired.clone()), (0, vec![a]));
        let four = next_keys(Some((&three, Some(b))), b, &[], &[], false).expect("carry");
        assert_eq!(four.retired, vec![a]);
    }

    #[test]
    fn mistakes_every_bootstrapper_would_refuse_are_refused_before_signing() {
        let (a, b, c) = (KeyId(0xA), KeyId(0xB), KeyId(0xC));
        let one = next_keys(None, a, &[line(0xB)], &[], false).expect("announce");
        // Signing with an unannounced key.
        assert!(next_keys(Some((&one, Some(a))), c, &[], &[], false).is_err());
        assert!(next_keys(Some((&one, Some(a))), c, &[], &[], true).is_ok());
        // Retiring the signing key, or its own successor.
        assert!(next_keys(Some((&one, Some(a))), a, &[], &[a], false).is_err());
        assert!(next_keys(Some((&one, Some(a))), a, &[], &[b], false).is_err());
        // Announcing itself or a retired key.
        assert!(next_keys(Some((&one, Some(a))), a, &[line(0xA)], &[], false).is_err());
        let retired = next_keys(Some((&one, Some(a))), b, &[], &[a], false).expect("ok");
        assert!(next_keys(Some((&retired, Some(b))), b, &[line(0xA)], &[], false).is_err());
        // Signing with a retired key.
        assert!(next_keys(Some((&retired, Some(b))), a, &[], &[], true).is_err());
    }

    #[test]
    fn key_arguments_read_as_files_lines_or_ids() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("k.pub");
        fs_err::write(&p, format!("untrusted comment: x\n{}\n", line(0xB))).expect("write");
        let path = p.to_string_lossy().into_owned();
        assert_eq!(key_lines(&path).expect("file"), vec![line(0xB)]);
        assert_eq!(key_ids(&path).expect("file"), vec![KeyId(0xB)]);
        assert_eq!(key_ids("b").expect("id"), vec![KeyId(0xB)]);
        assert_eq!(key_ids(&line(0xC)).expect("line"), vec![KeyId(0xC)]);
        assert!(key_ids("not a key").is_err());
        assert!(key_lines("").is_err());
        assert_eq!(trusted_keys(&[]).expect("builtin").ids().len(), 1);
        assert_eq!(
            trusted_keys(&[path, line(0xC)]).expect("two").ids(),
            vec![KeyId(0xB), KeyId(0xC)]
        );
    }
}
