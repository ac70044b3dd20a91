//! `release.json`: the release configuration a built app carries beside the
//! `peft-bootstrap` executable (in the packaged app `resources/bin/release.json`),
//! so that it knows its repository without a flag or a variable.
//!
//! ```json
//! {"manifest_url": "https://example.org/peft/channels/stable/manifest.json",
//!  "channel": "stable", "mirrors": ["https://mirror.example.org/peft"],
//!  "trusted_keys": ["RWS..."], "ui_url": "read by Electron only"}
//! ```
//!
//! `manifest_url` is required, the rest optional; unknown keys are ignored. Each
//! setting is read only when neither its flag nor its variable gives it
//! ([`super::Settings::resolve`]). A present but invalid file is a usage error with
//! the reason `config_invalid`, naming the file and the problem.

use std::path::{Path, PathBuf};

use peft_manifest::TrustedKeys;
use serde::Deserialize;

use crate::error::{Error, Reason, Result};
use crate::source::{Root, locate};

/// The file's name, beside the executable.
pub const FILE_NAME: &str = "release.json";

/// The file as written.
#[derive(Debug, Deserialize)]
struct Raw {
    manifest_url: Option<String>,
    channel: Option<String>,
    #[serde(default)]
    mirrors: Vec<String>,
    #[serde(default)]
    trusted_keys: Vec<String>,
}

/// A checked `release.json`.
#[derive(Debug)]
pub struct ReleaseConfig {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// The manifest URL as written.
    pub manifest_url: String,
    /// The channel the file names (its `channel`, else the one in its manifest URL).
    pub channel: Option<String>,
    /// Extra repository roots tried after the repository.
    pub mirrors: Vec<Root>,
    /// Replaces the built-in keys when not empty.
    pub keys: Option<TrustedKeys>,
}

/// Where `release.json` is for the running executable (its real path, links
/// resolved), whether or not it exists.
pub fn beside_executable() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = fs_err::canonicalize(&exe).unwrap_or(exe);
    Some(exe.parent()?.join(FILE_NAME))
}

/// Reads the `release.json` beside the running executable; `None` when there is none.
pub fn load_beside_executable() -> Result<Option<ReleaseConfig>> {
    match beside_executable() {
        Some(p) if p.exists() => ReleaseConfig::load(&p).map(Some),
        _ => Ok(None),
    }
}

/// A channel name as the settings accept it.
pub fn valid_channel(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The channel a `<root>/channels/<channel>/manifest.json` URL names.
pub fn channel_of_url(url: &str) -> Option<&str> {
    let prefix = url.trim().strip_suffix("/manifest.json")?;
    let (_, channel) = prefix.rsplit_once("/channels/")?;
    Some(channel)
}

impl ReleaseConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ReleaseConfig> {
        let bad = |problem: String| invalid(path, problem);
        let text = fs_err::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let raw: Raw = serde_json::from_str(&text)
            .map_err(|e| bad(format!("it is not the expected JSON object: {e}")))?;
        let manifest_url = raw
            .manifest_url
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("it has no \"manifest_url\", which is required".into()))?;
        let url_channel = channel_of_url(&manifest_url).map(str::to_string);
        let channel = match raw.channel.map(|c| c.trim().to_string()) {
            Some(c) if !valid_channel(&c) => {
                return Err(bad(format!(
                    "\"channel\" {c:?} is not a channel name (lower-case letters, digits, '.', '_' and '-')"
                )));
            }
            Some(c) => {
                if let Some(u) = &url_channel
                    && u != &c
                {
                    return Err(bad(format!(
                        "\"channel\" is {c:?} but \"manifest_url\" names the channel {u:?}"
                    )));
                }
                Some(c)
            }
            None => url_channel,
        };
        // The URL is checked as the settings will use it: its channel part (if any)
        // decides nothing here, the channel setting does.
        let check_channel = channel.clone().unwrap_or_else(|| "stable".into());
        locate(&manifest_url, &check_channel).map_err(|e| {
            bad(format!(
                "\"manifest_url\" {manifest_url:?} is not a usable repository URL: {e}"
            ))
        })?;
        let mut mirrors = Vec::new();
        for m in &raw.mirrors {
            let root = Root::parse(m.trim())
                .map_err(|e| bad(format!("\"mirrors\" holds {m:?}, which is not usable: {e}")))?;
            mirrors.push(root);
        }
        let mut keys: Option<TrustedKeys> = None;
        for (i, k) in raw.trusted_keys.iter().enumerate() {
            let one = TrustedKeys::from_text(k).map_err(|e| {
                bad(format!(
                    "\"trusted_keys\"[{i}] is not a minisign public key line: {e}"
                ))
            })?;
            keys = Some(match keys {
                None => one,
                Some(all) => all.union(one),
            });
        }
        Ok(ReleaseConfig {
            path: path.to_path_buf(),
            manifest_url,
            channel,
            mirrors,
            keys,
        })
    }

    /// The repository root for `channel`: the file's URL with its channel part
    /// replaced by the channel asked for (a flag may choose another channel of the
    /// same repository).
    pub fn root(&self, channel: &str) -> Result<Root> {
        let url = match channel_of_url(&self.manifest_url) {
            Some(c) => {
                let prefix = self
                    .manifest_url
                    .trim()
                    .strip_suffix(&format!("/channels/{c}/manifest.json"))
                    .unwrap_or(&self.manifest_url);
                format!("{prefix}/")
            }
            None => self.manifest_url.clone(),
        };
        locate(&url, channel).map_err(|e| invalid(&self.path, e.to_string()))
    }
}

/// The `config_invalid` error for the file at `path`.
fn invalid(path: &Path, problem: String) -> Error {
    Error::reasoned(
        Reason::ConfigInvalid,
        format!(
            "the release configuration {} is not valid: {problem}",
            path.display()
        ),
        Some(format!(
            "this app's installation is damaged or was built wrongly: reinstall it, or fix {} (docs/RELEASING.md describes the file)",
            path.display()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "RWQyWpbsZtPyCF7sLqUwr7CgzHtZ4/R8FPiBCuXALgmGaZbSsXPxXRct";

    fn load(text: &str) -> Result<ReleaseConfig> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(FILE_NAME);
        fs_err::write(&p, text).expect("write");
        ReleaseConfig::load(&p)
    }

    #[test]
    fn a_full_file_is_read_and_unknown_keys_are_ignored() {
        let c = load(&format!(
            r#"{{"manifest_url": "https://h.example/peft/channels/beta/manifest.json",
                "mirrors": ["https://m.example/peft"], "trusted_keys": ["{KEY}"],
                "ui_url": "ui/index.html", "later": 1}}"#
        ))
        .expect("valid");
        assert_eq!(c.channel.as_deref(), Some("beta"));
        assert_eq!(c.mirrors.len(), 1);
        assert_eq!(c.keys.as_ref().expect("keys").ids().len(), 1);
        assert_eq!(
            c.root("stable").expect("root").describe("x"),
            "https://h.example/peft/x",
            "another channel of the same repository"
        );
        let c = load(r#"{"manifest_url": "https://h.example/peft"}"#).expect("root form");
        assert_eq!(c.channel, None);
        assert!(c.keys.is_none());
    }

    #[test]
    fn each_problem_is_config_invalid_naming_the_file() {
        for (text, needle) in [
            ("{", "not the expected JSON"),
            (r#"{"channel": "stable"}"#, "manifest_url"),
            (
                r#"{"manifest_url": "ftp://h/x"}"#,
                "not a usable repository URL",
            ),
            (
                r#"{"manifest_url": "https://h/channels/beta/manifest.json", "channel": "stable"}"#,
                "names the channel",
            ),
            (
                r#"{"manifest_url": "https://h/", "channel": "Bad Name"}"#,
                "not a channel name",
            ),
            (
                r#"{"manifest_url": "https://h/", "mirrors": ["nope"]}"#,
                "mirrors",
            ),
            (
                r#"{"manifest_url": "https://h/", "trusted_keys": ["RWQ"]}"#,
                "trusted_keys",
            ),
            (
                r#"{"manifest_url": "https://h/", "mirrors": "x"}"#,
                "not the expected JSON",
            ),
        ] {
            let e = load(text).expect_err(text);
            assert_eq!(e.reason(), Reason::ConfigInvalid, "{text}");
            assert_eq!(e.exit_code(), 2);
            let m = e.to_string();
            assert!(m.contains(FILE_NAME) && m.contains(needle), "{text}: {m}");
        }
    }
}
