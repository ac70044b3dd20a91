//! macOS facts: Apple Silicon even under Rosetta (`sysctl hw.optional.arm64`,
//! `sysctl.proc_translated`), the macOS version (`sw_vers`; MPS needs 14), RAM and
//! the CPU's name. The parsers are pure and compiled everywhere so they are tested
//! on every OS; the probes run only on macOS.

use peft_manifest::Arch;

/// The machine's architecture and whether this process is translated by Rosetta,
/// from what this binary was compiled for and the two `sysctl` answers (`1`, `0`,
/// or nothing when the key does not exist, as on Intel Macs).
pub fn apple_arch(compiled: Arch, arm64: Option<&str>, translated: Option<&str>) -> (Arch, bool) {
    let yes = |v: Option<&str>| v.map(str::trim) == Some("1");
    let rosetta = compiled == Arch::X86_64 && yes(translated);
    if compiled == Arch::Arm64 || rosetta || yes(arm64) {
        (Arch::Arm64, rosetta)
    } else {
        (compiled, false)
    }
}

/// What the probes found.
#[derive(Debug, Clone, Default)]
pub struct MacFacts {
    pub arch: Option<Arch>,
    pub rosetta: bool,
    pub version: Option<String>,
    pub ram: Option<u64>,
    pub cpu: Option<String>,
}

#[cfg(target_os = "macos")]
pub fn probe() -> MacFacts {
    use std::process::Command;
    use std::time::Duration;

    let run = |cmd: &str, args: &[&str]| -> Option<String> {
        let done =
            crate::process::run_limited(Command::new(cmd).args(args), Duration::from_secs(5))
                .ok()?;
        done.status
            .filter(|s| s.success())
            .map(|_| String::from_utf8_lossy(&done.stdout).trim().to_string())
    };
    let sysctl = |key: &str| run("/usr/sbin/sysctl", &["-n", key]);
    let (arch, rosetta) = apple_arch(
        Arch::current(),
        sysctl("hw.optional.arm64").as_deref(),
        sysctl("sysctl.proc_translated").as_deref(),
    );
    MacFacts {
        arch: Some(arch),
        rosetta,
        version: run("/usr/bin/sw_vers", &["-productVersion"]),
        ram: sysctl("hw.memsize").and_then(|s| s.parse().ok()),
        cpu: sysctl("machdep.cpu.brand_string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_silicon_native_under_rosetta_and_intel() {
        assert_eq!(
            apple_arch(Arch::Arm64, Some("1"), Some("0")),
            (Arch::Arm64, false)
        );
        assert_eq!(
            apple_arch(Arch::X86_64, Some("1"), Some("1")),
            (Arch::Arm64, true)
        );
        // Under Rosetta hw.optional.arm64 may read 0; proc_translated still says so.
        assert_eq!(
            apple_arch(Arch::X86_64, Some("0"), Some("1")),
            (Arch::Arm64, true)
        );
        assert_eq!(apple_arch(Arch::X86_64, None, None), (Arch::X86_64, false));
        assert_eq!(
            apple_arch(Arch::X86_64, Some("0"), Some("0")),
            (Arch::X86_64, false)
        );
    }
}
