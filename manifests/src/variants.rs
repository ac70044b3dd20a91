//! The variant catalogue: `manifests/variants.json`, the hardware variants a
//! release can ship and what each needs. `peft-release pack --variant ID` copies a
//! definition into the release; the bootstrapper only ever reads the manifest.

use serde::{Deserialize, Serialize};

use crate::model::{Accelerator, Arch, Os, Requirements};

/// The catalogue compiled into this crate (the repository's `manifests/variants.json`).
pub const BUILTIN_CATALOG: &str = include_str!("../variants.json");

/// A set of variant definitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantCatalog {
    pub schema: u32,
    pub variants: Vec<VariantDef>,
}

/// What a variant is and needs, without any particular build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantDef {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub os: Os,
    pub arch: Arch,
    pub accelerator: Accelerator,
    pub priority: i32,
    #[serde(default)]
    pub probe: bool,
    #[serde(default)]
    pub requires: Requirements,
}

impl VariantCatalog {
    /// Parses a catalogue file.
    pub fn from_json(bytes: &[u8]) -> Result<VariantCatalog, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The catalogue this crate was built with.
    pub fn builtin() -> Result<VariantCatalog, serde_json::Error> {
        Self::from_json(BUILTIN_CATALOG.as_bytes())
    }

    /// The definition with this id.
    pub fn get(&self, id: &str) -> Option<&VariantDef> {
        self.variants.iter().find(|v| v.id == id)
    }

    /// All ids, for "did you mean" messages.
    pub fn ids(&self) -> Vec<&str> {
        self.variants.iter().map(|v| v.id.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_real_variants_and_sound_requirements() {
        let c = VariantCatalog::builtin().expect("variants.json parses");
        for id in [
            "linux-x86_64-cpu",
            "linux-x86_64-cuda12.6",
            "linux-x86_64-cuda12.8",
            "linux-x86_64-cuda13.0",
            "windows-x86_64-cpu",
            "windows-x86_64-cuda12.8",
            "windows-x86_64-cuda13.0",
            "macos-arm64-metal",
            "macos-x86_64-cpu",
        ] {
            let v = c.get(id).unwrap_or_else(|| panic!("{id} missing"));
            assert!(
                id.starts_with(&format!("{}-{}-", v.os.as_str(), v.arch.as_str())),
                "{id}"
            );
            assert!(
                id.ends_with(v.accelerator.as_str()) || id.contains("cuda"),
                "{id}"
            );
            if v.accelerator == Accelerator::Cuda {
                let r = &v.requires;
                let cc = r
                    .compute_capability
                    .as_ref()
                    .expect("cuda variant has a cc range");
                assert!(cc.min <= cc.max, "{id}");
                assert!(r.min_driver.is_some() && r.cuda.is_some(), "{id}");
                assert!(
                    id.ends_with(&r.cuda.as_ref().map(|c| c.to_string()).unwrap_or_default()),
                    "{id}"
                );
            }
        }
        let mut ids = c.ids();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), c.variants.len(), "ids are unique");
    }
}
