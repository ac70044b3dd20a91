//! Which public keys are trusted, and minisign verification against them.
//!
//! The manifest is verified as raw bytes before a single byte of JSON is parsed. The
//! built-in keys live in `manifests/keys/*.pub` and are compiled in; `--trusted-key`
//! replaces them with the key(s) of a `.pub` file's text or base64 lines. A channel's
//! memory ([`crate::memory`]) adds the successor keys its manifests announced.
//! Both prehashed (`ED`, the default of minisign ≥ 0.10) and legacy (`Ed`, what
//! `minisign -l` makes) signatures are accepted: the manifest is small, and both are
//! Ed25519 over its bytes (the legacy one directly, the prehashed one over its
//! BLAKE2b-512 hash); the trusted comment is covered by the global signature either way.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use minisign_verify::{PublicKey, Signature};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The keys compiled into this build: (name, `.pub` file text).
const BUILTIN: &[(&str, &str)] = &[(
    "peft-studio-release-1",
    include_str!("../keys/peft-studio-release-1.pub"),
)];

/// A minisign key id: bytes 2..10 of a public key or a signature, a little-endian
/// integer. Written as 16 upper-case hex digits; parsed from 1 to 16 hex digits of
/// either case, because `minisign` itself prints it without leading zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u64);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<KeyId, TrustError> {
        let s = s.trim();
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TrustError::BadKeyId(s.to_string()));
        }
        u64::from_str_radix(s, 16)
            .map(KeyId)
            .map_err(|_| TrustError::BadKeyId(s.to_string()))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl KeyId {
    /// The id of a base64 key line or signature line (`RW...`).
    pub fn of_line(b64_line: &str) -> Option<KeyId> {
        let bin = base64::engine::general_purpose::STANDARD
            .decode(b64_line.trim())
            .ok()?;
        let id: [u8; 8] = bin.get(2..10)?.try_into().ok()?;
        Some(KeyId(u64::from_le_bytes(id)))
    }

    /// The key that made a `.minisig` file's signature, read without verifying it.
    pub fn of_signature(sig_text: &str) -> Option<KeyId> {
        sig_text.lines().nth(1).and_then(KeyId::of_line)
    }
}

/// The id of a minisign public key line (base64, `RW...`), if it is one.
pub fn public_key_id(line: &str) -> Result<KeyId, TrustError> {
    let line = line.trim();
    PublicKey::from_base64(line).map_err(|e| TrustError::BadKey(format!("{line:?}: {e}")))?;
    KeyId::of_line(line).ok_or_else(|| TrustError::BadKey(line.to_string()))
}

/// One trusted key.
#[derive(Clone)]
struct Key {
    id: KeyId,
    /// For messages: `peft-studio-release-1 (ID)`, or the id.
    name: String,
    key: PublicKey,
}

/// A set of trusted minisign public keys.
#[derive(Clone)]
pub struct TrustedKeys {
    keys: Vec<Key>,
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.name))
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
    #[error("{0:?} is not a minisign key id (1 to 16 hex digits, as `minisign` prints it)")]
    BadKeyId(String),
    #[error("the signature file is not a minisign signature: {0}")]
    BadSignature(String),
    #[error("the signature was made by key {signer}, which is not trusted (trusted: {trusted})")]
    UnknownSigner { signer: String, trusted: String },
    #[error(
        "the signature does not match the signed bytes or its trusted comment (key {signer}): the file was altered or truncated"
    )]
    Mismatch { signer: String },
}

/// What a successful verification proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The name of the key that verified it, for messages.
    pub key: String,
    /// The id of that key.
    pub id: KeyId,
    /// The signed trusted comment.
    pub trusted_comment: String,
}

/// The base64 key lines of a `.pub` file's text (or of several, or of bare lines):
/// every non-empty line that is not an `untrusted comment:`.
fn key_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
}

impl TrustedKeys {
    /// The keys compiled into this build.
    pub fn builtin() -> TrustedKeys {
        let mut out = TrustedKeys { keys: Vec::new() };
        for (name, text) in BUILTIN {
            for line in key_lines(text) {
                if let (Ok(key), Some(id)) = (PublicKey::from_base64(line), KeyId::of_line(line)) {
                    out.push(Key {
                        id,
                        name: format!("{name} ({id})"),
                        key,
                    });
                }
            }
        }
        out
    }

    /// The key(s) of a `.pub` file's text, of several such files concatenated, or of
    /// bare base64 lines; at least one.
    pub fn from_text(text: &str) -> Result<TrustedKeys, TrustError> {
        let mut out = TrustedKeys { keys: Vec::new() };
        for line in key_lines(text) {
            let id = public_key_id(line)?;
            let key =
                PublicKey::from_base64(line).map_err(|e| TrustError::BadKey(e.to_string()))?;
            out.push(Key {
                id,
                name: id.to_string(),
                key,
            });
        }
        if out.keys.is_empty() {
            return Err(TrustError::BadKey("no key line in the text".into()));
        }
        Ok(out)
    }

    fn push(&mut self, k: Key) {
        if !self.contains(k.id) {
            self.keys.push(k);
        }
    }

    /// Both sets (for several `--pubkey` files).
    pub fn union(mut self, other: TrustedKeys) -> TrustedKeys {
        for k in other.keys {
            self.push(k);
        }
        self
    }

    /// This set plus the announced key lines (`(line, name)`); lines that are not
    /// keys are skipped (the memory holds only lines that validated).
    pub fn with_announced<'a>(
        &self,
        announced: impl IntoIterator<Item = (&'a str, String)>,
    ) -> TrustedKeys {
        let mut out = self.clone();
        for (line, name) in announced {
            if let (Ok(key), Some(id)) = (PublicKey::from_base64(line), KeyId::of_line(line)) {
                out.push(Key { id, name, key });
            }
        }
        out
    }

    /// Whether a key with this id is in the set.
    pub fn contains(&self, id: KeyId) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// The ids of the trusted keys.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// The names of the trusted keys, for messages.
    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.name.clone()).collect()
    }

    /// Checks that `sig_text` (a `.minisig` file) signs exactly `bytes` with a trusted key.
    pub fn verify(&self, bytes: &[u8], sig_text: &str) -> Result<Verified, TrustError> {
        let sig =
            Signature::decode(sig_text).map_err(|e| TrustError::BadSignature(e.to_string()))?;
        let signer = KeyId::of_signature(sig_text)
            .map(|id| id.to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let mut any_key_matched = false;
        for k in &self.keys {
            match k.key.verify(bytes, &sig, true) {
                Ok(()) => {
                    return Ok(Verified {
                        key: k.name.clone(),
                        id: k.id,
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

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN_LINE: &str = "RWQyWpbsZtPyCF7sLqUwr7CgzHtZ4/R8FPiBCuXALgmGaZbSsXPxXRct";

    #[test]
    fn key_ids_read_as_minisign_prints_them_and_write_with_16_digits() {
        let id = KeyId::of_line(BUILTIN_LINE).expect("id");
        // `minisign` prints this key as 8F2D366EC965A32 (no leading zero).
        assert_eq!(id.to_string(), "08F2D366EC965A32");
        assert_eq!("8F2D366EC965A32".parse::<KeyId>(), Ok(id));
        assert_eq!("08f2d366ec965a32".parse::<KeyId>(), Ok(id));
        for bad in ["", "XYZ", "00000000000000000", "-1", "+1"] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&id).expect("json");
        assert_eq!(json, "\"08F2D366EC965A32\"");
        assert_eq!(serde_json::from_str::<KeyId>(&json).expect("back"), id);
        assert_eq!(public_key_id(BUILTIN_LINE), Ok(id));
        assert!(public_key_id("RWQ").is_err());
    }

    #[test]
    fn the_builtin_key_is_named_with_its_id() {
        let keys = TrustedKeys::builtin();
        assert_eq!(
            keys.names(),
            vec!["peft-studio-release-1 (08F2D366EC965A32)"]
        );
        assert!(keys.contains(KeyId(0x08F2_D366_EC96_5A32)));
    }

    #[test]
    fn several_keys_read_from_one_text_and_unite() {
        let a = format!("untrusted comment: minisign public key\n{BUILTIN_LINE}\n");
        let other = "RWQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let both = TrustedKeys::from_text(&format!("{a}\n{other}\n")).expect("two keys");
        assert_eq!(both.ids().len(), 2);
        let one = TrustedKeys::from_text(BUILTIN_LINE).expect("one");
        assert_eq!(one.clone().union(both).ids().len(), 2, "duplicates merge");
        assert!(TrustedKeys::from_text("untrusted comment: x\n").is_err());
        assert!(TrustedKeys::from_text(&format!("{BUILTIN_LINE}\nnot a key")).is_err());
        let more = one.with_announced([(other, "announced".to_string()), ("junk", "x".into())]);
        assert_eq!(more.names(), vec!["08F2D366EC965A32", "announced"]);
    }

    #[test]
    fn a_signature_of_an_unknown_key_names_both_sides() {
        let keys = TrustedKeys::builtin();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut bin1 = b"ED".to_vec();
        bin1.extend([0u8; 72]);
        let sig = format!(
            "untrusted comment: x\n{}\ntrusted comment: t\n{}\n",
            b64(&bin1),
            b64(&[0u8; 64])
        );
        match keys.verify(b"x", &sig) {
            Err(TrustError::UnknownSigner { signer, trusted }) => {
                assert_eq!(signer, "0000000000000000");
                assert!(trusted.contains("peft-studio-release-1"), "{trusted}");
            }
            other => panic!("{other:?}"),
        }
    }
}
