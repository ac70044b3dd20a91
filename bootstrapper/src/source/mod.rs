//! Where bytes come from: repository roots (URL or folder), the download protocol,
//! manifest acceptance and offline folders. Nothing here decides what to install.

mod accept;
mod client;
mod failure;
mod fetch;
mod local;
mod offline;
mod retry;
mod watch;

pub use accept::{Trust, accept_signed};
pub use fetch::range::Ranged;
pub use fetch::{Fetcher, hash_file, interrupted_download};
pub use offline::{Shelf, discover, find_bundles, too_old_offline};
pub use watch::{NoWatch, Watch};

use std::path::PathBuf;

use url::Url;

use crate::error::{Error, Result};

/// Where a repository's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// An `http://` or `https://` URL ending in `/`.
    Http(Url),
    /// A local folder (`file://` URL or offline folder).
    Dir(PathBuf),
}

/// Where a command reads releases from. One answer to "which repository, and is it an
/// offline folder" (an offline folder is read as it is: no network, no mirrors, and an
/// expired manifest passes; a `file://` URL is a repository like any other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repository {
    /// Nothing named: no flag, variable, folder beside the app, release.json or
    /// built-in default.
    Unconfigured,
    /// A repository reached by URL (`https://`, `http://` or `file://`).
    Remote(Root),
    /// An offline folder (`--offline-dir`, or `peft-backend-bundles/` beside the app).
    Offline(PathBuf),
}

impl Repository {
    /// The root to read from, if any.
    pub fn root(&self) -> Option<Root> {
        match self {
            Repository::Unconfigured => None,
            Repository::Remote(root) => Some(root.clone()),
            Repository::Offline(dir) => Some(Root::Dir(dir.clone())),
        }
    }

    /// Whether this is an offline folder.
    pub fn is_offline(&self) -> bool {
        matches!(self, Repository::Offline(_))
    }
}

impl Root {
    /// Parses a repository root URL (`https://`, `http://`, `file://`).
    pub fn parse(s: &str) -> Result<Root> {
        let bad = |why: String| {
            Error::usage(
                format!("{s:?} is not a usable repository URL: {why}"),
                Some("use an https://, http:// or file:// URL".to_string()),
            )
        };
        let mut url = Url::parse(s).map_err(|e| bad(e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {
                if !url.path().ends_with('/') {
                    let p = format!("{}/", url.path());
                    url.set_path(&p);
                }
                Ok(Root::Http(url))
            }
            "file" => url
                .to_file_path()
                .map(Root::Dir)
                .map_err(|_| bad("not a local path".into())),
            other => Err(bad(format!("the scheme {other}: is not supported"))),
        }
    }

    /// A person-readable location of `rel` under this root.
    pub fn describe(&self, rel: &str) -> String {
        match self {
            Root::Http(u) => u
                .join(rel)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| format!("{u}{rel}")),
            Root::Dir(d) => d.join(rel).display().to_string(),
        }
    }
}

/// Splits a manifest URL into the repository root and the channel it names.
///
/// Accepts `<root>/channels/<channel>/manifest.json` or the root itself.
pub fn locate(manifest_url: &str, channel: &str) -> Result<Root> {
    let trimmed = manifest_url.trim();
    if let Some(prefix) = trimmed.strip_suffix("/manifest.json") {
        let Some((root, url_channel)) = prefix.rsplit_once("/channels/") else {
            return Err(Error::usage(
                format!(
                    "the manifest URL {trimmed} is not of the form <repository>/channels/<channel>/manifest.json"
                ),
                Some(
                    "point --manifest-url at a channel manifest or at the repository root"
                        .to_string(),
                ),
            ));
        };
        if url_channel != channel {
            return Err(Error::usage(
                format!(
                    "the manifest URL names the channel {url_channel:?} but the channel setting is {channel:?}"
                ),
                Some(format!(
                    "set --channel {url_channel} (or PEFT_CHANNEL), or use that channel's URL"
                )),
            ));
        }
        return Root::parse(&format!("{root}/"));
    }
    Root::parse(trimmed)
}

/// The path of a channel's manifest below the root.
pub fn manifest_path(channel: &str) -> String {
    format!("channels/{channel}/manifest.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_splits_manifest_urls_and_checks_the_channel() {
        let r = locate(
            "http://127.0.0.1:8080/repo/channels/stable/manifest.json",
            "stable",
        )
        .expect("ok");
        assert_eq!(
            r,
            Root::Http(Url::parse("http://127.0.0.1:8080/repo/").expect("url"))
        );
        let r = locate("https://cdn.example.org/peft", "beta").expect("root form");
        assert_eq!(r.describe("x"), "https://cdn.example.org/peft/x");
        let e =
            locate("http://h/channels/beta/manifest.json", "stable").expect_err("channel mismatch");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            locate("ftp://h/", "stable")
                .expect_err("scheme")
                .exit_code(),
            2
        );
        assert_eq!(
            locate("http://h/x/manifest.json", "stable")
                .expect_err("shape")
                .exit_code(),
            2
        );
        let r = locate("file:///srv/repo/channels/stable/manifest.json", "stable").expect("file");
        assert_eq!(r, Root::Dir(PathBuf::from("/srv/repo")));
    }
}
