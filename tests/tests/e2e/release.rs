//! `peft-release` end to end: reproducible packs, `verify` catching a damaged
//! blob, and interoperation with the `minisign` CLI in both directions.

use std::time::Duration;

use peft_e2e::nginx::{required, which};
use peft_e2e::server::Server;
use peft_e2e::{
    CPU_VARIANT, ENTRY, MIB, World, assert_installed_equals, bootstrap, events, exit, pack_args,
    ready_dir, release, release_raw, stderr,
};

#[test]
fn pack_is_reproducible() {
    let w = World::new();
    peft_e2e::sample_bundle(&w.path("in"), 42, MIB);
    let mut digests = Vec::new();
    for repo in ["r1", "r2"] {
        let args = pack_args(&w.path(repo), &w.path("in"), "1.0.0", CPU_VARIANT, ENTRY);
        let out = release(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        let sha = text
            .split("archive ")
            .nth(1)
            .and_then(|s| s.split('(').nth(1))
            .and_then(|s| s.split(')').next())
            .expect("digest");
        digests.push(sha.to_string());
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(digests[0], digests[1]);
    // Unknown variants and bad entries are usage errors naming the problem.
    let args = pack_args(
        &w.path("r3"),
        &w.path("in"),
        "1.0.0",
        "linux-riscv-cpu",
        ENTRY,
    );
    let bad = release_raw(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("linux-x86_64-cuda12.8"),
        "lists the known ids"
    );
    let args = pack_args(&w.path("r3"), &w.path("in"), "1.0.0", CPU_VARIANT, "nope");
    let bad = release_raw(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"nope\""));
}

#[test]
fn release_verify_catches_a_damaged_blob() {
    let w = World::new();
    w.pack("1.0.0", 14, MIB);
    w.publish(&[]);
    let v = w.verify_repo(&[]);
    assert_eq!(exit(&v), 0, "{}", stderr(&v));
    let blobs: Vec<_> = fs_err::read_dir(w.path("repo/blobs/sha256"))
        .expect("ls")
        .flatten()
        .collect();
    let big = blobs
        .iter()
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .expect("blob")
        .path();
    let mut bytes = fs_err::read(&big).expect("read");
    bytes[100] ^= 0xff;
    fs_err::write(&big, bytes).expect("write");
    let out = w.verify_repo(&[]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn minisign_cli_interop() {
    let Some(minisign) = which("minisign") else {
        assert!(
            !required(),
            "minisign is required (PEFT_E2E_REQUIRE=1) but not installed"
        );
        eprintln!("skipping: minisign is not installed");
        return;
    };
    let w = World::new();
    let input = w.pack("1.0.0", 15, MIB);
    w.publish(&[]);
    let m = w.s("repo/channels/stable/manifest.json");
    // Ours verifies with the CLI.
    let v = std::process::Command::new(&minisign)
        .args(["-V", "-m", &m, "-p", &w.s("keys/release.pub")])
        .output()
        .expect("minisign -V");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // The CLI's verifies with ours: a key it made, a signature it made.
    let g = std::process::Command::new(&minisign)
        .args(["-G", "-W", "-p", &w.s("cli.pub"), "-s", &w.s("cli.key")])
        .output()
        .expect("minisign -G");
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let s = std::process::Command::new(&minisign)
        .args(["-S", "-s", &w.s("cli.key"), "-m", &m])
        .output()
        .expect("minisign -S");
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let server = Server::start(&w.repo());
    let out = bootstrap()
        .args([
            "ensure",
            "--json",
            "--manifest-url",
            &server.url(),
            "--trusted-key",
            &w.s("cli.pub"),
            "--cache-dir",
            &w.s("cache"),
        ])
        .output()
        .expect("ensure");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    // And the release key no longer verifies it.
    let out = w.run("ensure", &server.url(), "cache-b", &[]);
    assert_eq!(exit(&out), 4);
}
