//! Signed manifests the publishing tools would never write, for the trust tests:
//! what an attacker holding a release key, or a publishing mistake, produces. The
//! manifest is edited as JSON and signed with the `minisign` crate (the same
//! signature `peft-release publish` makes), and a key's id is read as the
//! bootstrapper reads it.

use std::io::Cursor;
use std::path::Path;

use serde_json::Value;

/// Edits `channel`'s manifest in the repository at `repo` with `edit`, then signs it
/// with the (unencrypted) minisign secret key at `key`, replacing both files.
pub fn resign(repo: &Path, channel: &str, key: &Path, edit: impl FnOnce(&mut Value)) {
    let path = repo.join(format!("channels/{channel}/manifest.json"));
    let mut m: Value =
        serde_json::from_slice(&fs_err::read(&path).expect("read manifest")).expect("json");
    edit(&mut m);
    let mut bytes = serde_json::to_vec_pretty(&m).expect("json");
    bytes.push(b'\n');
    let comment = format!(
        "timestamp:0 channel:{} serial:{}",
        m["channel"].as_str().unwrap_or_default(),
        m["serial"]
    );
    fs_err::write(
        path.with_extension("json.minisig"),
        sign(key, &bytes, &comment),
    )
    .expect("sig");
    fs_err::write(&path, bytes).expect("write manifest");
}

/// A `.minisig` text: `bytes` signed (prehashed) by the secret key at `key`.
pub fn sign(key: &Path, bytes: &[u8], trusted_comment: &str) -> String {
    let text = fs_err::read_to_string(key).expect("read key");
    let sk = minisign::SecretKeyBox::from_string(&text)
        .and_then(minisign::SecretKey::from_unencrypted_box)
        .expect("an unencrypted minisign secret key");
    minisign::sign(None, &sk, Cursor::new(bytes), Some(trusted_comment), None)
        .expect("sign")
        .to_string()
}

/// The id of the public key in the `.pub` file at `path`, as `state.json` writes it.
pub fn key_id(path: &Path) -> String {
    let text = fs_err::read_to_string(path).expect("read pub");
    let line = text
        .lines()
        .find(|l| !l.starts_with("untrusted comment:") && !l.trim().is_empty())
        .expect("a key line");
    peft_manifest::trust::public_key_id(line)
        .expect("a public key")
        .to_string()
}
