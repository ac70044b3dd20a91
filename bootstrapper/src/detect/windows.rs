//! Windows facts: the version from `cmd /c ver` (NVIDIA comes through `nvml.dll`
//! and `nvidia-smi.exe` in [`super::nvidia`]). The parser is pure and compiled
//! everywhere; the probe runs only on Windows.

use peft_manifest::Dotted;

/// `Microsoft Windows [Version 10.0.22631.4460]` → `10.0.22631.4460`.
pub fn parse_ver(text: &str) -> Option<Dotted> {
    let at = text.find("Version ")?;
    let rest = &text[at + "Version ".len()..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    rest[..end].parse().ok()
}

#[cfg(windows)]
pub fn version() -> Option<Dotted> {
    use std::process::Command;
    use std::time::Duration;
    let done = crate::process::run_limited(
        Command::new("cmd").args(["/C", "ver"]),
        Duration::from_secs(5),
    )
    .ok()?;
    parse_ver(&String::from_utf8_lossy(&done.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ver_output() {
        let v = parse_ver("\r\nMicrosoft Windows [Version 10.0.22631.4460]\r\n");
        assert_eq!(v.map(|d| d.to_string()).as_deref(), Some("10.0.22631.4460"));
        assert_eq!(parse_ver("nothing"), None);
    }
}
