//! The cache keeps no symbolic links: what it finds of one is refused, never
//! followed.
//!
//! The cache folder itself may be a link (a user moving it to a larger disk): it is
//! followed. Inside it, every path the bootstrapper writes through or deletes under
//! (`versions/`, `downloads/`, `staging/`, `lock`, and each entry of the three
//! folders) must be what it looks like: a planted `staging -> ~` would make the
//! cleanup of leftover staging folders delete a home folder, a planted
//! `downloads/<sha>.partial -> ~/.bashrc` would have a download truncate and
//! overwrite it, and `versions/<x> -> /elsewhere` would have `ensure` run and `verify
//! --repair` write outside the cache. So [`refuse_links`] runs whenever the cache is
//! opened (a few `lstat`s and three short listings) and any such link is exit 6,
//! naming it; nothing is written. `current.json`, `state.json` and the other small
//! files are replaced by rename, which replaces a link instead of following it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The cache's own folders, created on open.
pub(super) const FOLDERS: [&str; 3] = ["versions", "downloads", "staging"];

/// Fails (exit 6) when `path` is a symbolic link.
pub(super) fn refuse_link(root: &Path, path: &Path) -> Result<()> {
    match fs_err::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs_err::read_link(path)
                .map(|t| format!(" (to {})", t.display()))
                .unwrap_or_default();
            Err(Error::unusable(
                format!(
                    "{} is a symbolic link{target}; the cache {} keeps none and will not write through one",
                    path.display(),
                    root.display()
                ),
                format!(
                    "remove the link {} (its target is left alone), or set PEFT_CACHE_DIR to another folder",
                    path.display()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Refuses a link among the cache's folders, its lock, and the folders' entries.
pub(super) fn refuse_links(root: &Path) -> Result<()> {
    let mut check: Vec<PathBuf> = vec![root.join("lock")];
    for sub in FOLDERS {
        let dir = root.join(sub);
        refuse_link(root, &dir)?;
        if let Ok(rd) = fs_err::read_dir(&dir) {
            check.extend(rd.flatten().map(|e| e.path()));
        }
    }
    check.iter().try_for_each(|p| refuse_link(root, p))
}

#[cfg(all(test, unix))]
mod tests {
    use crate::cache::Cache;

    #[test]
    fn links_inside_the_cache_are_refused_and_the_cache_folder_itself_is_followed() {
        let t = tempfile::tempdir().expect("tempdir");
        let outside = t.path().join("outside");
        fs_err::create_dir_all(&outside).expect("mkdir");
        let real = t.path().join("real");
        fs_err::create_dir_all(&real).expect("mkdir");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        Cache::open(&link).expect("a linked cache folder is followed");
        assert!(real.join("versions").is_dir());
        for planted in [
            "staging",
            "versions/1.0.0-x",
            "downloads/abc.partial",
            "lock",
        ] {
            let c = t.path().join(format!("c-{}", planted.replace('/', "-")));
            let p = c.join(planted);
            fs_err::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::os::unix::fs::symlink(&outside, &p).expect("symlink");
            let e = Cache::open(&c).expect_err(planted);
            assert_eq!(e.exit_code(), 6, "{e}");
            assert!(e.to_string().contains(planted), "{e}");
        }
        assert_eq!(fs_err::read_dir(&outside).expect("ls").count(), 0);
    }
}
