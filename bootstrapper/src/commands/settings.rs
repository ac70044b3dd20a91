//! Turns flags, environment variables and `release.json` into checked settings.

use std::path::PathBuf;
use std::time::Duration;

use peft_manifest::{Choice, TrustedKeys};
use semver::Version;

use super::release_config::{self, ReleaseConfig};
use crate::cli::SettingsArgs;
use crate::error::{Error, Reason, Result};
use crate::source::{Repository, Root, discover, find_bundles, locate};

/// Everything a command needs to know, checked.
#[derive(Debug)]
pub struct Settings {
    pub channel: String,
    pub cache_dir: PathBuf,
    /// The repository to read: the offline folder when one is set, else the manifest URL's root.
    pub repo: Repository,
    /// Extra roots tried after the repository (release.json's `mirrors`).
    pub mirrors: Vec<Root>,
    pub choice: Choice,
    pub keys: TrustedKeys,
    pub ui_version: Option<Version>,
    pub lock_timeout: Duration,
    /// The release.json read, if any.
    pub config: Option<PathBuf>,
}

/// The default cache: `<data dir>/PEFT Studio/backend`.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("PEFT Studio").join("backend"))
}

impl Settings {
    /// The settings from the flags and variables, then `release.json` beside this
    /// executable, then the built-in defaults.
    pub fn resolve(a: &SettingsArgs) -> Result<Settings> {
        let config = release_config::load_beside_executable()?;
        Settings::resolve_with(a, config.as_ref())
    }

    /// [`Settings::resolve`] with the release configuration given.
    pub fn resolve_with(a: &SettingsArgs, config: Option<&ReleaseConfig>) -> Result<Settings> {
        let given = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let flag_url = given(&a.manifest_url);
        // Precedence per setting: flag or variable, then release.json, then the default.
        // A manifest URL given by flag names its own channel when none is set.
        let channel = given(&a.channel)
            .or_else(|| {
                flag_url
                    .as_deref()
                    .and_then(release_config::channel_of_url)
                    .map(String::from)
            })
            .or_else(|| config.and_then(|c| c.channel.clone()))
            .unwrap_or_else(|| "stable".to_string());
        if !release_config::valid_channel(&channel) {
            return Err(Error::usage(
                format!("{channel:?} is not a channel name"),
                Some("use e.g. stable or beta (--channel, PEFT_CHANNEL)".to_string()),
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
        let mut mirrors = Vec::new();
        let repo = match (&a.offline_dir, &flag_url) {
            (Some(dir), _) => Repository::Offline(find_bundles(dir)?),
            (None, Some(url)) => Repository::Remote(locate(url, &channel)?),
            // Nothing named: a `peft-backend-bundles/` folder beside the app wins over
            // release.json and the built-in repository (docs/OFFLINE.md).
            (None, None) => match discover() {
                Some(dir) => Repository::Offline(dir),
                None => match config {
                    Some(c) => {
                        mirrors.clone_from(&c.mirrors);
                        Repository::Remote(c.root(&channel)?)
                    }
                    // A default compiled in by the build (see docs/RELEASING.md);
                    // release.json is the way a release names its repository.
                    None => match option_env!("PEFT_DEFAULT_MANIFEST_URL") {
                        Some(u) => Repository::Remote(locate(u, &channel)?),
                        None => Repository::Unconfigured,
                    },
                },
            },
        };
        let keys = match (&a.trusted_key, config.and_then(|c| c.keys.as_ref())) {
            (Some(k), _) => {
                let k = k.trim();
                let text = if std::path::Path::new(k).is_file() {
                    fs_err::read_to_string(k)
                        .map_err(|e| Error::storage("reading", std::path::Path::new(k), e))?
                } else {
                    k.to_string()
                };
                TrustedKeys::from_text(&text).map_err(|e| {
                    Error::usage(
                        format!("the trusted key is not usable: {e}"),
                        Some(
                            "pass --trusted-key (PEFT_TRUSTED_KEY) the path of a minisign .pub file or its base64 key line"
                                .to_string(),
                        ),
                    )
                })?
            }
            (None, Some(keys)) => keys.clone(),
            (None, None) => TrustedKeys::builtin(),
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
                    format!("the UI version {v:?} is not a semantic version: {e}"),
                    Some("pass --ui-version (PEFT_UI_VERSION) e.g. 1.4.0".to_string()),
                )
            })?),
        };
        Ok(Settings {
            channel,
            cache_dir,
            repo,
            mirrors,
            choice: Choice::from_setting(a.variant.as_deref()),
            keys,
            ui_version,
            lock_timeout: Duration::from_secs(a.lock_timeout),
            config: config.map(|c| c.path.clone()),
        })
    }

    /// The repository, or a usage error saying how to name one.
    pub fn require_repo(&self) -> Result<Root> {
        self.repo.root().ok_or_else(|| {
            let beside = release_config::beside_executable()
                .map(|p| format!(", or put a release.json at {}", p.display()))
                .unwrap_or_default();
            Error::reasoned(
                Reason::NotConfigured,
                "no release repository is configured and no backend is installed",
                Some(format!(
                    "set --manifest-url (PEFT_MANIFEST_URL) or --offline-dir (PEFT_OFFLINE_DIR){beside} (docs/RELEASING.md)"
                )),
            )
        })
    }
}
