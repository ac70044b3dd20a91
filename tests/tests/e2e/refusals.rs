//! Refusals end to end: every trust check (archive, manifest, trusted comment, key,
//! serial, expiry, channel, an old bundle as a new version, size) exits 4 with
//! nothing installed or the installed backend unchanged; no repository is a usage
//! error (2), an unreachable one with nothing installed a network error (3). Key
//! rotation and the clock are in `trust`.

use std::time::Duration;

use peft_e2e::server::Server;
use peft_e2e::signing::resign;
use peft_e2e::{MIB, World, assert_error, bootstrap, event, events, exit, release, stderr};

/// Exit 4 with `reason`, a message naming `needle`, nothing installed.
fn assert_refused(w: &World, out: &std::process::Output, cache: &str, needle: &str, reason: &str) {
    assert_eq!(exit(out), 4, "{}", stderr(out));
    let evs = events(out);
    let err = event(&evs, "error").expect("error event");
    assert_eq!(err["exit_code"], 4);
    assert_eq!(err["reason"], reason, "{err}");
    assert_eq!(err["code"], "integrity");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    assert!(event(&evs, "ready").is_none());
    assert!(w.nothing_installed(cache), "something was installed");
}

#[test]
fn one_flipped_byte_in_the_archive_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 8, 2 * MIB);
    w.publish(&[]);
    let blob = w.repo().join(w.archive_path());
    let mut bytes = fs_err::read(&blob).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs_err::write(&blob, bytes).expect("write");
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_refused(&w, &out, "cache", "SHA-256", "tampered");
    assert_eq!(
        fs_err::read_dir(w.path("cache/downloads"))
            .expect("ls")
            .count(),
        0,
        "bad bytes are not kept"
    );
}

#[test]
fn one_changed_byte_in_the_manifest_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 9, MIB);
    w.publish(&[]);
    let p = w.path("repo/channels/stable/manifest.json");
    let text = fs_err::read_to_string(&p).expect("read");
    fs_err::write(&p, text.replacen("\"priority\": 10", "\"priority\": 90", 1)).expect("write");
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_refused(&w, &out, "cache", "not trusted", "tampered");
}

#[test]
fn an_edited_trusted_comment_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 16, MIB);
    w.publish(&[]);
    let p = w.path("repo/channels/stable/manifest.json.minisig");
    let sig = fs_err::read_to_string(&p).expect("read");
    assert!(sig.contains("serial:1"), "{sig}");
    fs_err::write(&p, sig.replace("serial:1", "serial:9")).expect("write");
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_refused(&w, &out, "cache", "trusted comment", "tampered");
}

#[test]
fn a_manifest_of_another_channel_served_at_this_channels_path_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 17, MIB);
    release(&[
        "publish",
        "--repo",
        &w.s("repo"),
        "--channel",
        "beta",
        "--key",
        &w.s("keys/release.key"),
    ]);
    let (beta, stable) = (w.path("repo/channels/beta"), w.path("repo/channels/stable"));
    fs_err::create_dir_all(&stable).expect("mkdir");
    for f in ["manifest.json", "manifest.json.minisig"] {
        fs_err::copy(beta.join(f), stable.join(f)).expect("copy");
    }
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_refused(
        &w,
        &out,
        "cache",
        "for the channel \"beta\", not \"stable\"",
        "tampered",
    );
}

#[test]
fn an_old_bundle_announced_as_a_new_version_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 18, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    // Signed (a stolen key, or a publishing mistake): 2.0.0 with 1.0.0's archive and index.
    resign(&w.repo(), "stable", &w.path("keys/release.key"), |m| {
        let mut old = m["releases"][0].clone();
        old["version"] = "2.0.0".into();
        m["releases"]
            .as_array_mut()
            .expect("releases")
            .insert(0, old);
        m["serial"] = (m["serial"].as_u64().expect("serial") + 1).into();
    });
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_error(&out, 4, "describes linux-x86_64-cpu 1.0.0");
    let out = w.cached(&["ensure", "--json"], "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["version"],
        "1.0.0"
    );
    let v = w.verify_repo(&[]);
    assert_eq!(v.status.code(), Some(4), "{}", stderr(&v));
    assert!(stderr(&v).contains("an old bundle"), "{}", stderr(&v));
}

#[test]
fn a_manifest_signed_by_another_key_is_refused() {
    let w = World::new();
    release(&["keygen", "--out", &w.s("other")]);
    w.pack("1.0.0", 10, MIB);
    w.publish_with("other/release.key", &[]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_refused(&w, &out, "cache", "not trusted", "untrusted_key");
    // The built-in keys do not trust it either.
    let out = bootstrap()
        .args([
            "ensure",
            "--json",
            "--manifest-url",
            &server.url(),
            "--cache-dir",
            &w.s("cache2"),
        ])
        .output()
        .expect("run");
    assert_refused(&w, &out, "cache2", "peft-studio-release-1", "untrusted_key");
}

#[test]
fn a_replayed_older_manifest_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 11, MIB);
    w.publish(&[]);
    let m = w.path("repo/channels/stable/manifest.json");
    let sig = w.path("repo/channels/stable/manifest.json.minisig");
    let (old_m, old_sig) = (
        fs_err::read(&m).expect("m"),
        fs_err::read(&sig).expect("sig"),
    );
    w.publish(&[]);
    let server = Server::start(&w.repo());
    // `detect` accepts serial 2 without installing anything.
    let out = w.run("detect", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    fs_err::write(&m, old_m).expect("restore");
    fs_err::write(&sig, old_sig).expect("restore");
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_refused(&w, &out, "cache", "serial 1", "downgrade");
}

#[test]
fn an_expired_manifest_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 12, MIB);
    w.publish(&["--expires-in", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_refused(&w, &out, "cache", "expired", "expired");
}

#[test]
fn a_server_that_sends_more_than_the_signed_size_is_refused() {
    let w = World::new();
    w.pack("1.0.0", 13, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.extra_bytes = 4096);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    assert!(w.nothing_installed("cache"));
}

#[test]
fn no_repository_and_nothing_installed_is_a_usage_error() {
    let w = World::new();
    let out = w.cached(&["ensure", "--json"], "cache");
    assert_eq!(exit(&out), 2, "{}", stderr(&out));
    let evs = events(&out);
    assert_eq!(
        event(&evs, "error").expect("error")["reason"],
        "not_configured"
    );
    assert!(
        event(&evs, "error").expect("error")["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("PEFT_MANIFEST_URL")
    );
}

#[test]
fn an_unreachable_repository_with_nothing_installed_exits_3() {
    let w = World::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let out = w.run("ensure", &format!("http://127.0.0.1:{port}/"), "cache", &[]);
    assert_eq!(exit(&out), 3, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "error").expect("error")["reason"],
        "unreachable"
    );
    assert!(
        event(&events(&out), "error").expect("error")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("refused")
    );
}
