//! This binary's own version and platform, as `--version`, `min_bootstrapper` and
//! the manifest's `bootstrapper` builds see them.

use peft_manifest::{Arch, BootstrapperBuild, Manifest, Os};
use semver::Version;

/// The version this build reports (`--version`) and compares with `min_bootstrapper`:
/// the crate's, unless the build set `PEFT_BOOTSTRAP_VERSION_OVERRIDE` (the
/// self-update tests build a second, newer copy that way).
pub const VERSION: &str = match option_env!("PEFT_BOOTSTRAP_VERSION_OVERRIDE") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// Set in the environment of a re-executed, freshly updated binary, so that a
/// manifest that still asks for more cannot make it update and re-run forever.
pub const REEXEC_MARK: &str = "PEFT_BOOTSTRAP_UPDATED_FROM";

/// [`VERSION`] as a semantic version.
pub fn version() -> Version {
    Version::parse(VERSION).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// Whether an accepted manifest asks for a newer bootstrapper than this one.
pub fn needs_newer(m: &Manifest) -> bool {
    m.min_bootstrapper > version()
}

/// The build of `m` for the machine this binary was compiled for.
pub fn build_for_here(m: &Manifest) -> Option<&BootstrapperBuild> {
    m.bootstrapper
        .iter()
        .find(|b| b.os == Os::current() && b.arch == Arch::current())
}

/// `os-arch` of this binary, as the manifest and `peft-release publish` spell it.
pub fn platform() -> String {
    format!("{}-{}", Os::current().as_str(), Arch::current().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_semver() {
        assert_ne!(version(), Version::new(0, 0, 0), "{VERSION}");
    }
}
