//! Which public keys the bootstrapper trusts, and minisign verification against them.
//!
//! The manifest is verified as raw bytes before a single byte of JSON is parsed. The
//! built-in keys live in `manifests/keys/*.pub` and are compiled in; `--trusted-key`
//! replaces them with one key given as a `.pub` file's text or its base64 line.
//! Both prehashed (`ED`, the default of minisign ≥ 0.10) and legacy (`Ed`) signatures
//! are accepted: the manifest is small, and both are Ed25519 over its bytes.

use std::fmt;

use base64::Engine as _;
use minisign_verify::{PublicKey, Signature};

/// The keys compiled into this build: (name, `.pub` file text).
const BUILTIN: &[(&str, &str)] = &[(
    "peft-studio-release-1",
    include_str!("../keys/peft-studio-release-1.pub"),
)];

/// A set of trusted minisign public keys.
#[derive(Clone)]
pub struct TrustedKeys {
    keys: Vec<(String, PublicKey)>,
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(n, _)| n))
            .finish()
    }
}

/// Why a signature or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error(
        "the public key is not a minisign public key (expected a .pub file or its base64 line): {0}"
    )]
    BadKey(String),
    #[error("the signature file is not a minisign signature: {0}")]
    BadSignature(String),
    #[error("the signature was made by key {signer}, which is not trusted (trusted: {trusted})")]
    UnknownSigner { signer: String, trusted: String },
    #[error(
        "the signature does not match the signed bytes (key {signer}): the file was altered or truncated"
    )]
    Mismatch { signer: String },
}

/// What a successful verification proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The name of the key that verified it.
    pub key: String,
    /// The signed trusted comment.
    pub trusted_comment: String,
}

/// The key id minisign prints (`minisign public key 1A2B...`) of a base64 key or
/// signature line: bytes 2..10, little-endian, as upper-case hex.
fn key_id_of(b64_line: &str) -> Option<String> {
    let bin = base64::engine::general_purpose::STANDARD
        .decode(b64_line.trim())
        .ok()?;
    let id = bin.get(2..10)?;
    Some(id.iter().rev().map(|b| format!("{b:02X}")).collect())
}

/// The base64 key line of a `.pub` file's text, or the text itself when it is one line.
fn key_line(text: &str) -> &str {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [one] => one,
        [first, second, ..] if first.starts_with("untrusted comment:") => second,
        _ => text.trim(),
    }
}

impl TrustedKeys {
    /// The keys compiled into this build.
    pub fn builtin() -> TrustedKeys {
        let keys = BUILTIN
            .iter()
            .filter_map(|(name, text)| {
                let line = key_line(text);
                PublicKey::from_base64(line).ok().map(|k| {
                    (
                        format!("{name} ({})", key_id_of(line).unwrap_or_default()),
                        k,
                    )
                })
            })
            .collect();
        TrustedKeys { keys }
    }

    /// One key from a `.pub` file's text or its base64 line.
    pub fn from_text(text: &str) -> Result<TrustedKeys, TrustError> {
        let line = key_line(text);
        let key = PublicKey::from_base64(line).map_err(|e| TrustError::BadKey(e.to_string()))?;
        let id = key_id_of(line).unwrap_or_default();
        Ok(TrustedKeys {
            keys: vec![(id, key)],
        })
    }

    /// The names of the trusted keys, for messages.
    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Checks that `sig_text` (a `.minisig` file) signs exactly `bytes` with a trusted key.
    pub fn verify(&self, bytes: &[u8], sig_text: &str) -> Result<Verified, TrustError> {
        let sig =
            Signature::decode(sig_text).map_err(|e| TrustError::BadSignature(e.to_string()))?;
        let signer = sig_text
            .lines()
            .nth(1)
            .and_then(key_id_of)
            .unwrap_or_else(|| "unknown".to_string());
        let mut any_key_matched = false;
        for (name, key) in &self.keys {
            match key.verify(bytes, &sig, true) {
                Ok(()) => {
                    return Ok(Verified {
                        key: name.clone(),
                        trusted_comment: sig.trusted_comment().to_string(),
                    });
                }
                Err(minisign_verify::Error::UnexpectedKeyId) => {}
                Err(_) => any_key_matched = true,
            }
        }
        if any_key_matched {
            Err(TrustError::Mismatch { signer })
        } else {
            Err(TrustError::UnknownSigner {
                signer,
                trusted: self.names().join(", "),
            })
        }
    }
}
