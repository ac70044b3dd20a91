//! Release keys in minisign's own format, so the `minisign` CLI can use them too.
//!
//! `keygen` writes an unencrypted secret key unless `PEFT_RELEASE_KEY_PASSWORD` is
//! set; `publish` reads either kind (the password from the same variable) and never
//! prompts, so it runs in CI.

use fs_err::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox};

use crate::error::{ReleaseError, Result};

/// The environment variable holding the secret key's password, if it has one.
pub const PASSWORD_ENV: &str = "PEFT_RELEASE_KEY_PASSWORD";

fn password() -> Option<String> {
    std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty())
}

/// Creates `DIR/release.key` and `DIR/release.pub`; refuses to overwrite either.
pub fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    fs_err::create_dir_all(dir).map_err(|e| ReleaseError::io("creating", dir, e))?;
    let sk_path = dir.join("release.key");
    let pk_path = dir.join("release.pub");
    for p in [&sk_path, &pk_path] {
        if p.exists() {
            return Err(ReleaseError::Usage(format!(
                "{} already exists; refusing to overwrite a release key (move it away first)",
                p.display()
            )));
        }
    }
    let kp = match password() {
        Some(pw) => KeyPair::generate_encrypted_keypair(Some(pw)),
        None => KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| ReleaseError::Key(format!("cannot generate a key pair: {e}")))?;
    let sk_text = kp
        .sk
        .to_box(Some("PEFT Studio release secret key"))
        .map_err(|e| ReleaseError::Key(e.to_string()))?
        .to_string();
    let pk_text = kp
        .pk
        .to_box()
        .map_err(|e| ReleaseError::Key(e.to_string()))?
        .to_string();
    write_new(&sk_path, sk_text.as_bytes(), 0o600)?;
    write_new(&pk_path, pk_text.as_bytes(), 0o644)?;
    Ok((sk_path, pk_path))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use fs_err::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(path)
        .map_err(|e| ReleaseError::io("creating", path, e))?;
    f.write_all(bytes)
        .map_err(|e| ReleaseError::io("writing", path, e))?;
    f.sync_all()
        .map_err(|e| ReleaseError::io("writing", path, e))
}

/// Reads a secret key file (minisign format), decrypting it with
/// `PEFT_RELEASE_KEY_PASSWORD` when set.
pub fn load_secret(path: &Path) -> Result<(SecretKey, PublicKey)> {
    let text = fs_err::read_to_string(path).map_err(|e| ReleaseError::io("reading", path, e))?;
    let sk_box = SecretKeyBox::from_string(&text).map_err(|e| {
        ReleaseError::Key(format!(
            "{} is not a minisign secret key: {e}",
            path.display()
        ))
    })?;
    let sk = match password() {
        Some(pw) => SecretKey::from_box(sk_box, Some(pw)),
        None => SecretKey::from_unencrypted_box(sk_box),
    }
    .map_err(|e| {
        ReleaseError::Key(format!(
            "cannot use the secret key {}: {e} (if it has a password, set {PASSWORD_ENV})",
            path.display()
        ))
    })?;
    let pk = PublicKey::from_secret_key(&sk).map_err(|e| ReleaseError::Key(e.to_string()))?;
    Ok((sk, pk))
}

/// Signs `bytes`; the result is the text of a `.minisig` file.
pub fn sign(sk: &SecretKey, pk: &PublicKey, bytes: &[u8], trusted_comment: &str) -> Result<String> {
    let sig = minisign::sign(
        Some(pk),
        sk,
        bytes,
        Some(trusted_comment),
        Some("signature from peft-release"),
    )
    .map_err(|e| ReleaseError::Key(format!("cannot sign: {e}")))?;
    Ok(sig.to_string())
}
