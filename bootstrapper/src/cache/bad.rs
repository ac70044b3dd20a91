//! `bad-variants.json`: the variants whose probe failed on this machine, keyed by
//! the release version, the variant id and [`Hardware::machine_key`] (OS, NVIDIA
//! driver version, GPU UUIDs), so a driver update or a new GPU clears them.

use std::path::{Path, PathBuf};

use peft_manifest::Hardware;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CacheLock, read_json, write_json_atomic};
use crate::error::Result;

/// The file under the cache directory.
pub const BAD_VARIANTS: &str = "bad-variants.json";

/// `bad-variants.json`: variants whose probe failed, per machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadVariants {
    #[serde(default)]
    pub entries: Vec<BadEntry>,
}

/// One variant that failed its probe on one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadEntry {
    /// [`Hardware::machine_key`] when it failed.
    pub machine: String,
    pub version: String,
    pub variant: String,
    pub reason: String,
    pub at: String,
}

impl BadVariants {
    pub fn path(cache_root: &Path) -> PathBuf {
        cache_root.join(BAD_VARIANTS)
    }

    /// Reads the file; a missing or unreadable one remembers nothing.
    pub fn load(cache_root: &Path) -> BadVariants {
        match read_json(&Self::path(cache_root)) {
            Ok(Some(b)) => b,
            Ok(None) => BadVariants::default(),
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", Self::path(cache_root).display());
                BadVariants::default()
            }
        }
    }

    /// Why `variant` of `version` is bad on `hw`, if it is.
    pub fn reason(&self, hw: &Hardware, version: &str, variant: &str) -> Option<String> {
        let key = hw.machine_key();
        self.entries
            .iter()
            .find(|e| e.machine == key && e.version == version && e.variant == variant)
            .map(|e| {
                format!(
                    "failed its probe on this machine: {} (at {})",
                    e.reason, e.at
                )
            })
    }

    /// Marks `variant` of `version` bad on `hw`; entries of other machine keys (an
    /// older driver, other GPUs) are dropped, since they no longer describe it.
    pub fn mark(&mut self, hw: &Hardware, version: &str, variant: &str, reason: &str) {
        let key = hw.machine_key();
        self.entries
            .retain(|e| e.machine == key && !(e.version == version && e.variant == variant));
        self.entries.push(BadEntry {
            machine: key,
            version: version.into(),
            variant: variant.into(),
            reason: reason.into(),
            at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        });
    }

    /// Writes the file atomically (the caller holds the cache lock).
    pub fn save(&self, cache_root: &Path, _lock: &CacheLock) -> Result<()> {
        write_json_atomic(&Self::path(cache_root), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peft_manifest::{Arch, Dotted, GpuSource, Nvidia, Os};

    #[test]
    fn bad_variants_are_per_machine() {
        let mut hw = Hardware::new(Os::Linux, Arch::X86_64);
        hw.nvidia = Some(Nvidia {
            driver: Dotted::new(&[580, 95]),
            cuda: None,
            source: GpuSource::Nvml,
            gpus: vec![],
        });
        let mut b = BadVariants::default();
        b.mark(&hw, "1.0.0", "v", "the probe failed");
        assert!(b.reason(&hw, "1.0.0", "v").is_some());
        assert!(b.reason(&hw, "1.1.0", "v").is_none());
        let mut updated = hw.clone();
        if let Some(n) = updated.nvidia.as_mut() {
            n.driver = Dotted::new(&[580, 105]);
        }
        assert!(
            b.reason(&updated, "1.0.0", "v").is_none(),
            "a driver update clears it"
        );
        b.mark(&updated, "1.0.0", "w", "x");
        assert_eq!(b.entries.len(), 1, "entries of the old driver are dropped");
    }
}
