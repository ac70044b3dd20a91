//! Turns flags and environment variables into checked settings.

use std::path::PathBuf;
use std::time::Duration;

use peft_manifest::{Choice, TrustedKeys};
use semver::Version;

use crate::cli::SettingsArgs;
use crate::error::{Error, Result};
use crate::source::{Root, discover, locate};

/// Everything a command needs to know, checked.
#[derive(Debug)]
pub struct Settings {
    pub channel: String,
    pub cache_dir: PathBuf,
    /// The repository to read: the offline folder when one is set, else the manifest URL's root.
    pub repo: Option<Root>,
    pub offline: bool,
    pub choice: Choice,
    pub keys: TrustedKeys,
    pub ui_version: Option<Version>,
    pub lock_timeout: Duration,
}

/// The default cache: `<data dir>/PEFT Studio/backend`.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("PEFT Studio").join("backend"))
}

impl Settings {
    pub fn resolve(a: &SettingsArgs) -> Result<Settings> {
        let channel = a.channel.trim().to_string();
        if channel.is_empty()
            || !channel
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(Error::usage(
                format!("{channel:?} is not a channel name"),
                Some("use e.g. stable or beta".to_string()),
            ));
        }
        let cache_dir = match &a.cache_dir {
            Some(d) => d.clone(),
            None => default_cache_dir().ok_or_else(|| {
                Error::usage(
                    "this system has no data directory for the cache",
                    Some("set PEFT_CACHE_DIR".to_string()),
                )
            })?,
        };
        let cache_dir = std::path::absolute(&cache_dir).unwrap_or(cache_dir);
        let (repo, offline) = match (&a.offline_dir, &a.manifest_url) {
            (Some(dir), _) => {
                if !dir.is_dir() {
                    return Err(Error::usage(
                        format!("the offline folder {} does not exist", dir.display()),
                        Some("point --offline-dir (PEFT_OFFLINE_DIR) at a folder made by `peft-release offline`".to_string()),
                    ));
                }
                (
                    Some(Root::Dir(std::path::absolute(dir).unwrap_or(dir.clone()))),
                    true,
                )
            }
            (None, Some(url)) if !url.trim().is_empty() => (Some(locate(url, &channel)?), false),
            // Nothing named: a `peft-backend-bundles/` folder beside the app wins over
            // the built-in repository (docs/OFFLINE.md).
            _ => match discover() {
                Some(dir) => (Some(Root::Dir(dir)), true),
                None => (
                    option_env!("PEFT_DEFAULT_MANIFEST_URL")
                        .map(|u| locate(u, &channel))
                        .transpose()?,
                    false,
                ),
            },
        };
        let keys = match &a.trusted_key {
            None => TrustedKeys::builtin(),
            Some(k) => {
                let k = k.trim();
                let text = if std::path::Path::new(k).is_file() {
                    fs_err::read_to_string(k)
                        .map_err(|e| Error::storage("reading", std::path::Path::new(k), e))?
                } else {
                    k.to_string()
                };
                TrustedKeys::from_text(&text).map_err(|e| {
                    Error::usage(
                        format!("--trusted-key: {e}"),
                        Some(
                            "pass the path of a minisign .pub file or its base64 key line"
                                .to_string(),
                        ),
                    )
                })?
            }
        };
        let ui_version = match a
            .ui_version
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(v) => Some(Version::parse(v).map_err(|e| {
                Error::usage(
                    format!("--ui-version {v:?} is not a semantic version: {e}"),
                    Some("e.g. 1.4.0".to_string()),
                )
            })?),
        };
        Ok(Settings {
            channel,
            cache_dir,
            repo,
            offline,
            choice: Choice::from_setting(a.variant.as_deref()),
            keys,
            ui_version,
            lock_timeout: Duration::from_secs(a.lock_timeout),
        })
    }

    /// The repository, or a usage error saying how to name one.
    pub fn require_repo(&self) -> Result<&Root> {
        self.repo.as_ref().ok_or_else(|| {
            Error::usage(
                "no release repository is configured and no backend is installed",
                Some(
                    "set --manifest-url (PEFT_MANIFEST_URL) or --offline-dir (PEFT_OFFLINE_DIR)"
                        .to_string(),
                ),
            )
        })
    }
}
