//! Trust end to end: key rotation (announced, used, the old key then refused), a
//! built-in key rotated out, fast-forward recovery, rotation and offline folders,
//! legacy minisign signatures, and a clock set back. Real binaries, real loopback
//! HTTP, real minisign keys; the clock is moved for the child process with
//! libfaketime. Every refusal exits 4 and leaves the installed backend current and
//! working.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use peft_e2e::nginx::{required, which};
use peft_e2e::selfbuild::closed_port_url;
use peft_e2e::server::Server;
use peft_e2e::signing::{key_id, resign};
use peft_e2e::{
    MIB, World, assert_error, bin_dir, bootstrap, event, events, exit, release, stderr,
};
use serde_json::Value;

/// `peft-bootstrap <cmd> --json` trusting the key file `key` (relative to the world).
fn trusting(w: &World, key: &str, cmd: &str, url: &str, cache: &str, extra: &[&str]) -> Output {
    bootstrap()
        .arg(cmd)
        .arg("--json")
        .args(["--manifest-url", url, "--trusted-key", &w.s(key)])
        .args(["--cache-dir", &w.s(cache)])
        .args(extra)
        .output()
        .expect("run peft-bootstrap")
}

/// The cache's `state.json` entry of the stable channel.
fn memory(w: &World, cache: &str) -> Value {
    let s: Value = serde_json::from_slice(
        &fs_err::read(w.path(cache).join("state.json")).expect("state.json"),
    )
    .expect("json");
    s["channels"]["stable"].clone()
}

/// Answers from the cache alone: the current version, after checking that its
/// entry runs and is the sample engine of `seed`.
fn current_runs(w: &World, cache: &str, seed: u64) -> String {
    let out = w.cached(&["ensure", "--json"], cache);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let ready = event(&evs, "ready").expect("ready");
    let exe = ready["executable"].as_str().expect("executable");
    let run = Command::new(exe)
        .arg("--health")
        .output()
        .expect("run engine");
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && said.contains(&format!("sample engine {seed}:")),
        "{said}"
    );
    ready["version"].as_str().expect("version").to_string()
}

/// The world's two keys as one file, as a build with both built in trusts them.
fn both_keys(w: &World) -> &'static str {
    let mut text = fs_err::read_to_string(w.path("keys/release.pub")).expect("a");
    text.push_str(&fs_err::read_to_string(w.path("keys-b/release.pub")).expect("b"));
    fs_err::write(w.path("both.pub"), text).expect("write");
    "both.pub"
}

/// A world with key A in `keys/` and key B in `keys-b/`.
fn two_keys() -> World {
    let w = World::new();
    release(&["keygen", "--out", &w.s("keys-b")]);
    w
}

fn serial(m: &mut Value) -> u64 {
    m["serial"].as_u64().expect("serial")
}

#[test]
fn a_key_rotation_is_accepted_end_to_end_then_the_old_key_is_refused() {
    let w = two_keys();
    let (a, b) = (
        key_id(&w.path("keys/release.pub")),
        key_id(&w.path("keys-b/release.pub")),
    );
    w.pack("1.0.0", 31, MIB);
    w.publish(&["--announce-key", &w.s("keys-b/release.pub")]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(memory(&w, "cache")["announced"][0]["id"], b.as_str());
    // B signs the next release and retires A; the machine trusts B by announcement.
    w.pack("1.1.0", 32, MIB);
    w.publish_with(
        "keys-b/release.key",
        &["--retire-key", &w.s("keys/release.pub")],
    );
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(current_runs(&w, "cache", 32), "1.1.0");
    let mem = memory(&w, "cache");
    assert_eq!(mem["retired"][0], a.as_str(), "{mem}");
    assert_eq!(mem["signed_by"], b.as_str(), "{mem}");
    // A manifest signed by A (stolen) is now refused, though A is the trusted key.
    resign(&w.repo(), "stable", &w.path("keys/release.key"), |m| {
        m["serial"] = (serial(m) + 1).into();
        m.as_object_mut().map(|o| o.remove("keys"));
    });
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_error(&out, 4, "rotated out");
    assert_eq!(current_runs(&w, "cache", 32), "1.1.0");
    // `peft-release verify` with that machine's state judges it the same way.
    let v = w.verify_repo(&["--state", &w.s("cache/state.json")]);
    assert_eq!(v.status.code(), Some(4), "{}", stderr(&v));
    assert!(stderr(&v).contains("rotated out"), "{}", stderr(&v));
}

#[test]
fn a_built_in_key_rotated_out_is_refused() {
    let w = two_keys();
    let both = both_keys(&w);
    w.pack("1.0.0", 33, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = trusting(&w, both, "ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    // B (built in too, so never announced) retires A by the id minisign prints.
    let a = key_id(&w.path("keys/release.pub"));
    let a_as_minisign_prints = a.trim_start_matches('0');
    w.pack("1.1.0", 34, MIB);
    w.publish_with(
        "keys-b/release.key",
        &[
            "--allow-unannounced-key",
            "--retire-key",
            a_as_minisign_prints,
        ],
    );
    let out = trusting(&w, both, "update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(current_runs(&w, "cache", 34), "1.1.0");
    resign(&w.repo(), "stable", &w.path("keys/release.key"), |m| {
        m["serial"] = (serial(m) + 1).into();
        m.as_object_mut().map(|o| o.remove("keys"));
    });
    let out = trusting(&w, both, "update", &server.url(), "cache", &[]);
    let msg = assert_error(&out, 4, "rotated out");
    assert!(msg.contains(&a), "{msg}");
    assert_eq!(current_runs(&w, "cache", 34), "1.1.0");
    // The retirement lives in each machine's memory: one that never saw it still
    // trusts its built-in A, which is why a compromised key leaves the app's
    // built-in keys in the next release (docs/RELEASING.md).
    let out = trusting(&w, both, "ensure", &server.url(), "fresh", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_fast_forwarded_serial_is_recovered_from_by_retiring_its_key() {
    let w = two_keys();
    w.pack("1.0.0", 35, MIB);
    w.publish(&["--announce-key", &w.s("keys-b/release.pub")]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let channel = w.path("repo/channels/stable");
    let legit: Vec<(PathBuf, Vec<u8>)> = ["manifest.json", "manifest.json.minisig"]
        .iter()
        .map(|f| {
            (
                channel.join(f),
                fs_err::read(channel.join(f)).expect("read"),
            )
        })
        .collect();
    // An attacker holding A pushes the serial to 1,000,000; the machine accepts it.
    resign(&w.repo(), "stable", &w.path("keys/release.key"), |m| {
        m["serial"] = 1_000_000.into();
    });
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(memory(&w, "cache")["serial"], 1_000_000);
    // The publisher's next manifest (serial 2, by B) is a "replay" to that machine ...
    for (p, bytes) in &legit {
        fs_err::write(p, bytes).expect("restore");
    }
    w.pack("1.1.0", 36, MIB);
    w.publish_with("keys-b/release.key", &[]);
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_error(&out, 4, "serial 1000000");
    assert_eq!(current_runs(&w, "cache", 35), "1.0.0");
    // ... until B retires A: the floor A set is dropped, serial 3 is accepted.
    w.publish_with(
        "keys-b/release.key",
        &["--retire-key", &w.s("keys/release.pub")],
    );
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(
        events(&out)
            .iter()
            .any(|e| e["event"] == "warning" && e.to_string().contains("serial floor")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mem = memory(&w, "cache");
    assert_eq!(mem["serial"], 3);
    assert_eq!(
        mem["signed_by"],
        key_id(&w.path("keys-b/release.pub")).as_str()
    );
    assert_eq!(current_runs(&w, "cache", 36), "1.1.0");
}

#[test]
fn an_offline_folder_signed_by_a_new_key_needs_the_announcement_or_a_trusted_key() {
    let w = two_keys();
    w.pack("1.0.0", 37, MIB);
    w.publish(&["--announce-key", &w.s("keys-b/release.pub")]);
    let server = Server::start(&w.repo());
    let out = w.run("detect", &server.url(), "seen", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    drop(server);
    w.publish_with(
        "keys-b/release.key",
        &["--retire-key", &w.s("keys/release.pub")],
    );
    w.offline("stick", &["--pubkey", &w.s("keys-b/release.pub")]);
    let offline = ["--offline-dir", &w.s("stick")];
    // A machine that saw the announcement online installs it offline.
    let out = w.run("ensure", &closed_port_url(), "seen", &offline);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    // One that never did refuses it, and says why ...
    let out = w.run("ensure", &closed_port_url(), "never", &offline);
    let msg = assert_error(&out, 4, "not trusted");
    assert!(
        msg.contains(&key_id(&w.path("keys-b/release.pub"))),
        "{msg}"
    );
    assert!(w.nothing_installed("never"));
    // ... unless it trusts B (a newer app with B built in, or --trusted-key).
    let out = trusting(
        &w,
        "keys-b/release.pub",
        "ensure",
        &closed_port_url(),
        "never",
        &offline,
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_legacy_signature_made_by_minisign_l_is_accepted() {
    let Some(minisign) = which("minisign") else {
        assert!(!required(), "minisign is required (PEFT_E2E_REQUIRE=1)");
        eprintln!("skipping: minisign is not installed (apt-get install minisign)");
        return;
    };
    let w = World::new();
    w.pack("1.0.0", 38, MIB);
    w.publish(&[]);
    let m = w.s("repo/channels/stable/manifest.json");
    let s = Command::new(&minisign)
        .args(["-S", "-l", "-s", &w.s("keys/release.key"), "-m", &m])
        .args(["-t", "legacy signature by minisign -l"])
        .output()
        .expect("minisign -S -l");
    assert!(s.status.success(), "{}", stderr(&s));
    let sig = fs_err::read_to_string(format!("{m}.minisig")).expect("sig");
    // "Ed" (legacy) encodes as RW..., "ED" (prehashed) as RU...
    assert!(
        sig.lines().nth(1).is_some_and(|l| l.starts_with("RW")),
        "{sig}"
    );
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(current_runs(&w, "cache", 38), "1.0.0");
    let v = w.verify_repo(&[]);
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
}

/// libfaketime, which moves the clock of the process it is preloaded into.
fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The signing time `publish` wrote into the trusted comment of the channel's signature.
fn signed_at(w: &World) -> u64 {
    let sig =
        fs_err::read_to_string(w.path("repo/channels/stable/manifest.json.minisig")).expect("sig");
    sig.split("timestamp:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a timestamp in the trusted comment")
}

/// `cmd` with its clock moved by `offset` (libfaketime syntax: `-15d`).
fn at(mut cmd: Command, lib: &Path, offset: &str) -> Output {
    cmd.env("LD_PRELOAD", lib)
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .output()
        .expect("run with a moved clock")
}

#[test]
fn the_clock_set_back_does_not_revive_an_expired_manifest() {
    let Some(lib) = libfaketime() else {
        assert!(!required(), "libfaketime is required (PEFT_E2E_REQUIRE=1)");
        eprintln!("skipping: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    let w = World::new();
    w.pack("1.0.0", 39, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    // Serial 2, signed by a publisher whose clock read 20 days ago: expired 10 days ago.
    let mut publish = Command::new(bin_dir().join("peft-release"));
    publish.args(["publish", "--repo", &w.s("repo"), "--channel", "stable"]);
    publish.args(["--key", &w.s("keys/release.key"), "--expires-in", "10"]);
    let p = at(publish, &lib, "-20d");
    assert!(p.status.success(), "{}", stderr(&p));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let back = now.saturating_sub(signed_at(&w));
    if !(19 * 86400..21 * 86400).contains(&back) {
        assert!(
            !required(),
            "libfaketime did not move the clock of a Rust program"
        );
        eprintln!("skipping: libfaketime did not move the clock of a Rust program here");
        return;
    }
    // A machine whose clock reads 15 days ago, and that never accepted a manifest of
    // the channel, finds it valid: nothing tells it the time is wrong.
    let fresh = at(
        w.command("ensure", &server.url(), "fresh", &[]),
        &lib,
        "-15d",
    );
    assert_eq!(exit(&fresh), 0, "{}", stderr(&fresh));
    // This machine accepted serial 1, published today: its expiry is judged today.
    let out = at(
        w.command("update", &server.url(), "cache", &[]),
        &lib,
        "-15d",
    );
    let msg = assert_error(&out, 4, "expired");
    assert!(msg.contains("clock reads earlier"), "{msg}");
    assert_eq!(current_runs(&w, "cache", 39), "1.0.0");
    // A sound manifest is accepted with the clock behind, with a warning.
    w.publish(&[]);
    let out = at(
        w.command("update", &server.url(), "cache", &[]),
        &lib,
        "-15d",
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(
        events(&out)
            .iter()
            .any(|e| e["event"] == "warning" && e.to_string().contains("the clock is wrong")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
