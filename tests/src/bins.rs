//! The binaries under test: where the build put them, and commands for them with the
//! environment a test needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PEFT_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/debug/deps/<test binary>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .to_path_buf()
}

fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// Every variable the bootstrapper reads at run time, read from its `env.rs` (the one
/// list of them), so a new setting is cleared here without anyone remembering to.
pub fn bootstrapper_vars() -> Vec<&'static str> {
    include_str!("../../bootstrapper/src/env.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split('"').nth(1))
        .collect()
}

/// A command for `peft-bootstrap` with every variable it reads cleared (a
/// developer's `PEFT_LOG`, `CUDA_VISIBLE_DEVICES` or `https_proxy` must not change a
/// test; loopback is not exempt from proxies), then fast retries and a short read
/// timeout.
pub fn bootstrap() -> Command {
    let mut c = Command::new(bin("peft-bootstrap"));
    for v in bootstrapper_vars() {
        c.env_remove(v);
    }
    // The lower-case spellings the proxy settings also go by, and CGI's switch.
    for v in [
        "https_proxy",
        "http_proxy",
        "all_proxy",
        "no_proxy",
        "REQUEST_METHOD",
    ] {
        c.env_remove(v);
    }
    c.env("PEFT_RETRY_BASE_MS", "20")
        .env("PEFT_READ_TIMEOUT", "5");
    c
}

/// Runs `peft-release` with `args` and asserts success.
pub fn release(args: &[&str]) -> Output {
    let out = Command::new(bin("peft-release"))
        .args(args)
        .output()
        .expect("run peft-release");
    assert!(
        out.status.success(),
        "peft-release {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `peft-release` with `args`, whatever the outcome.
pub fn release_raw(args: &[&str]) -> Output {
    Command::new(bin("peft-release"))
        .args(args)
        .output()
        .expect("run peft-release")
}

/// Variables the tests set that are not the bootstrapper's run-time settings, and why.
#[cfg(test)]
const NOT_SETTINGS: &[&str] = &[
    // The test harness's own: fail instead of skip; the frozen engine; the binaries.
    "PEFT_E2E_REQUIRE",
    "PEFT_TEST_BUNDLE_DIR",
    "PEFT_BIN_DIR",
    // Read at build time (`option_env!`) to make a newer bootstrapper.
    "PEFT_BOOTSTRAP_VERSION_OVERRIDE",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrapper_variables_come_from_env_rs() {
        let vars = super::bootstrapper_vars();
        for v in [
            "PEFT_MANIFEST_URL",
            "PEFT_READ_TIMEOUT",
            "PEFT_LOG",
            "CUDA_VISIBLE_DEVICES",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
        assert!(
            vars.iter()
                .all(|v| v.chars().all(|c| c.is_ascii_uppercase() || c == '_')),
            "{vars:?}"
        );
    }

    /// A misspelt variable would be ignored by the bootstrapper and the test that
    /// sets it would pass without testing anything: every `PEFT_*` name in the test
    /// sources must be one `env.rs` declares, or a listed harness variable.
    #[test]
    fn every_peft_variable_the_tests_name_is_one_the_bootstrapper_reads() {
        let known = bootstrapper_vars();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut unknown = Vec::new();
        let mut seen = 0;
        for dir in [
            "src",
            "tests/e2e",
            "../bootstrapper/tests",
            "../bootstrapper/tests/detect",
        ] {
            for e in fs_err::read_dir(root.join(dir)).expect("ls").flatten() {
                let path = e.path();
                if path.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let text = fs_err::read_to_string(&path).expect("read");
                for (i, _) in text.match_indices("\"PEFT_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if name == "PEFT_" {
                        continue; // a prefix, as in `starts_with("PEFT_")`
                    }
                    seen += 1;
                    if !known.contains(&name.as_str()) && !NOT_SETTINGS.contains(&name.as_str()) {
                        unknown.push(format!("{}: {name}", path.display()));
                    }
                }
            }
        }
        assert!(
            seen > 20,
            "only {seen} PEFT_ names found: is the scan looking in the right place?"
        );
        assert!(
            unknown.is_empty(),
            "not variables of bootstrapper/src/env.rs: {unknown:?}"
        );
    }
}
