//! Hardware detection: thin OS probes feeding pure parsers, producing the facts
//! that [`peft_manifest::select`] decides on.
//!
//! This first version knows the os/arch only; the hardware issue adds NVIDIA (NVML,
//! `nvidia-smi`, `/proc`), PCI scanning, macOS and ROCm probes here.

use peft_manifest::Hardware;
use serde_json::json;

/// What detection found, with notes for the user.
#[derive(Debug, Clone)]
pub struct Detected {
    pub hardware: Hardware,
    /// Things the user should know (e.g. a GPU without a usable driver).
    pub hints: Vec<String>,
}

impl Detected {
    /// The `hardware` event's body.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "os": self.hardware.os.as_str(),
            "arch": self.hardware.arch.as_str(),
            "hints": self.hints,
        })
    }
}

/// Probes this machine.
pub fn detect() -> Detected {
    Detected {
        hardware: Hardware::this_platform(),
        hints: Vec::new(),
    }
}
