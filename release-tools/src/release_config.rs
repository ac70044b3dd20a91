//! `peft-release release-config`: writes the `release.json` a built app carries
//! beside `peft-bootstrap` (the packaged app's `resources/bin/release.json`), so
//! that it knows its repository, channel, mirrors and release keys without any flag
//! or variable. The bootstrapper's reader is `bootstrapper/src/commands/release_config.rs`;
//! the format is in docs/RELEASING.md.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{ReleaseError, Result};
use crate::rotation::key_lines;

/// `release-config`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ReleaseConfigArgs {
    /// The channel manifest URL the app reads (https://, http:// or file://), e.g.
    /// https://cdn.example.org/peft/channels/stable/manifest.json, or the repository root.
    #[arg(long, value_name = "URL")]
    pub manifest_url: String,
    /// The release channel [default: the one the manifest URL names, else stable].
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// A mirror repository root tried after the repository (repeatable).
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// A release public key the app trusts instead of the keys built into
    /// peft-bootstrap: a .pub file or its base64 line (repeatable).
    #[arg(long = "pubkey", value_name = "PUBFILE")]
    pub pubkeys: Vec<String>,
    /// The app's UI, loaded once the engine is ready (read by the Electron app only):
    /// an http(s):// or file:// URL, or a path relative to the folder of release.json.
    #[arg(long, value_name = "URL")]
    pub ui_url: Option<String>,
    /// Where to write it: the packaged app's resources/bin/release.json.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

fn url_ok(u: &str) -> bool {
    ["https://", "http://", "file://"]
        .iter()
        .any(|s| u.starts_with(s) && u.len() > s.len())
}

/// The channel a `<root>/channels/<channel>/manifest.json` URL names.
fn channel_of(url: &str) -> Option<&str> {
    url.strip_suffix("/manifest.json")?
        .rsplit_once("/channels/")
        .map(|(_, c)| c)
}

/// The file's JSON for `args` (checked).
pub fn render(args: &ReleaseConfigArgs) -> Result<Value> {
    let usage = |m: String| Err(ReleaseError::Usage(m));
    let url = args.manifest_url.trim();
    if !url_ok(url) {
        return usage(format!(
            "--manifest-url {url:?} is not an https://, http:// or file:// URL"
        ));
    }
    let mut o = Map::new();
    o.insert("manifest_url".into(), json!(url));
    let named = channel_of(url);
    if url.ends_with("/manifest.json") && named.is_none() {
        return usage(format!(
            "--manifest-url {url:?} is not of the form <repository>/channels/<channel>/manifest.json"
        ));
    }
    let channel = match (&args.channel, named) {
        (Some(c), Some(n)) if c != n => {
            return usage(format!(
                "--channel is {c:?} but --manifest-url names the channel {n:?}"
            ));
        }
        (Some(c), _) => c.clone(),
        (None, Some(n)) => n.to_string(),
        (None, None) => "stable".to_string(),
    };
    let valid = !channel.is_empty()
        && channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !valid {
        return usage(format!("{channel:?} is not a channel name"));
    }
    o.insert("channel".into(), json!(channel));
    for m in &args.mirrors {
        if !url_ok(m.trim()) {
            return usage(format!(
                "--mirror {m:?} is not an https://, http:// or file:// URL"
            ));
        }
    }
    if !args.mirrors.is_empty() {
        o.insert("mirrors".into(), json!(args.mirrors));
    }
    let mut keys = Vec::new();
    for k in &args.pubkeys {
        keys.extend(key_lines(k)?);
    }
    if !keys.is_empty() {
        o.insert("trusted_keys".into(), json!(keys));
    }
    if let Some(ui) = &args.ui_url {
        o.insert("ui_url".into(), json!(ui));
    }
    Ok(Value::Object(o))
}

/// Writes `args.out` (through a temporary file beside it) and returns the JSON.
pub fn write(args: &ReleaseConfigArgs) -> Result<Value> {
    let v = render(args)?;
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| ReleaseError::Usage(format!("cannot write the JSON: {e}")))?;
    let out: &Path = &args.out;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(|e| ReleaseError::io("creating", dir, e))?;
    }
    let tmp = out.with_extension("json.tmp");
    fs_err::write(&tmp, format!("{text}\n")).map_err(|e| ReleaseError::io("writing", &tmp, e))?;
    fs_err::rename(&tmp, out).map_err(|e| ReleaseError::io("renaming", &tmp, e))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "RWQyWpbsZtPyCF7sLqUwr7CgzHtZ4/R8FPiBCuXALgmGaZbSsXPxXRct";

    fn args(url: &str) -> ReleaseConfigArgs {
        ReleaseConfigArgs {
            manifest_url: url.into(),
            channel: None,
            mirrors: vec![],
            pubkeys: vec![],
            ui_url: None,
            out: PathBuf::from("release.json"),
        }
    }

    #[test]
    fn the_channel_comes_from_the_url_and_keys_are_lines() {
        let mut a = args("https://h/peft/channels/beta/manifest.json");
        a.pubkeys = vec![format!("untrusted comment: x\n{KEY}\n")];
        let v = render(&a).expect("ok");
        assert_eq!(v["channel"], "beta");
        assert_eq!(v["trusted_keys"], json!([KEY]));
        assert!(v.get("mirrors").is_none());
        a.channel = Some("stable".into());
        assert!(render(&a).is_err(), "a channel that contradicts the URL");
        assert!(render(&args("ftp://h/")).is_err());
        assert!(render(&args("https://h/x/manifest.json")).is_err());
        let mut a = args("https://h/peft");
        a.pubkeys = vec!["RWQ".into()];
        assert!(render(&a).is_err(), "a bad key line");
    }
}
