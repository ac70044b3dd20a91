//! Sample bundles for the tests: deterministic bytes, a folder shaped like a
//! PyInstaller onedir, and a tree read back for comparison.

use std::collections::BTreeMap;
use std::path::Path;

/// A deterministic pseudo-random byte stream (no rand dependency needed).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes a sample bundle shaped like a PyInstaller onedir: an executable entry that
/// echoes its arguments, a large incompressible library, and nested small files.
pub fn sample_bundle(dir: &Path, seed: u64, big: usize) {
    let e = dir.join("peft_engine");
    fs_err::create_dir_all(e.join("_internal/pkg/sub")).expect("mkdir");
    let script = format!("#!/bin/sh\necho \"sample engine {seed}: $*\"\n");
    fs_err::write(e.join("peft_engine"), script).expect("write entry");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(
            e.join("peft_engine"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }
    fs_err::write(e.join("_internal/libbig.so"), noise(seed, big)).expect("write big");
    fs_err::write(
        e.join("_internal/pkg/__init__.py"),
        format!("VERSION = {seed}\n"),
    )
    .expect("write");
    fs_err::write(
        e.join("_internal/pkg/sub/data.json"),
        "{\"a\": [1, 2, 3]}\n",
    )
    .expect("write");
    fs_err::write(e.join("_internal/empty.txt"), "").expect("write");
    // PyInstaller links libraries under a second name, and repeats some files.
    fs_err::create_dir_all(e.join("_internal/nvidia/lib")).expect("mkdir");
    fs_err::write(
        e.join("_internal/nvidia/lib/libalias.so.1"),
        noise(seed + 1000, 64 << 10),
    )
    .expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        "nvidia/lib/libalias.so.1",
        e.join("_internal/libalias.so.1"),
    )
    .expect("symlink");
    fs_err::write(
        e.join("_internal/pkg/sub/data-copy.json"),
        "{\"a\": [1, 2, 3]}\n",
    )
    .expect("write");
}

/// Every file under `root`: relative path → (bytes, executable).
pub fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .replace('\\', "/");
                #[cfg(unix)]
                let exec = {
                    use std::os::unix::fs::PermissionsExt;
                    fs_err::metadata(&p).expect("meta").permissions().mode() & 0o111 != 0
                };
                #[cfg(not(unix))]
                let exec = false;
                out.insert(rel, (fs_err::read(&p).expect("read"), exec));
            }
        }
    }
    out
}
