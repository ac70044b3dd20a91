//! Every `error` event's `reason` (docs/BOOTSTRAPPER.md, "Error reasons"), provoked
//! for real: a served 404, a stopped server, an expired manifest, an unknown
//! variant, offline folders as people pick them (the stick's root), a missing and an
//! invalid `release.json`; and the packaged layout, where `bin/release.json` beside
//! `bin/peft-bootstrap` is all the app needs. A cache this user cannot write and a
//! full disk are in `storage` (`permission`, `disk_full`), signature refusals in
//! `refusals` (`tampered`, `untrusted_key`, `downgrade`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use peft_e2e::selfbuild::{closed_port_url, current_bootstrapper, place};
use peft_e2e::server::Server;
use peft_e2e::{MIB, World, event, events, exit, release, stderr};
use serde_json::Value;

/// The `error` event of a run that failed with `exit_code` and `reason`; also
/// checks that no `ready` event came.
fn failed(out: &Output, exit_code: i32, reason: &str) -> Value {
    assert_eq!(exit(out), exit_code, "{}", stderr(out));
    let evs = events(out);
    let err = event(&evs, "error")
        .cloned()
        .unwrap_or_else(|| panic!("no error event in {evs:?}"));
    assert_eq!(err["reason"], reason, "{err}");
    assert_eq!(err["exit_code"], exit_code, "{err}");
    assert!(event(&evs, "ready").is_none(), "{evs:?}");
    err
}

fn message(err: &Value) -> &str {
    err["message"].as_str().unwrap_or_default()
}

/// 1.0.0 installed (current) in `cache` from a served repository, then 1.0.1
/// published; returns the server and the installed folder.
fn installed_then_published(w: &World, cache: &str) -> (Server, PathBuf) {
    w.pack("1.0.0", 61, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), cache, &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let dir = peft_e2e::ready_dir(&events(&out));
    let input = w.path("input-1.0.0");
    fs_err::write(input.join("peft_engine/_internal/pkg/new.py"), "X = 2\n").expect("write");
    w.pack_dir("1.0.1", &input, &["--deltas", "0"]);
    w.publish(&[]);
    (server, dir)
}

/// The install of 1.0.0 is still current and verifies.
fn still_current(w: &World, cache: &str, dir: &Path) {
    assert!(dir.join(peft_e2e::ENTRY).is_file(), "{}", dir.display());
    let st = w.cached(&["status", "--json"], cache);
    let st: Value = serde_json::from_slice(&st.stdout).expect("status json");
    assert_eq!(st["current"]["version"], "1.0.0", "{st}");
    let v = w.cached(&["verify"], cache);
    assert_eq!(exit(&v), 0, "{}", stderr(&v));
}

#[test]
fn a_served_404_is_not_found_not_unreachable() {
    let w = World::new();
    w.pack("1.0.0", 62, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.hide_prefix = Some("channels/".into()));
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let err = failed(&out, 3, "not_found");
    assert_eq!(err["code"], "network");
    assert!(message(&err).contains("404"), "{err}");
    let hint = err["hint"].as_str().unwrap_or_default();
    assert!(
        !hint.contains("internet connection") && hint.contains("does not have"),
        "{hint}"
    );
    assert!(w.nothing_installed("cache"));

    // A blob the manifest lists but the server lacks, with a backend installed:
    // `update` says not_found and the installed backend stays.
    let w = World::new();
    let (server, dir) = installed_then_published(&w, "cache");
    server.faults(|f| f.hide_prefix = Some("blobs/".into()));
    let out = w.run("update", &server.url(), "cache", &[]);
    failed(&out, 3, "not_found");
    still_current(&w, "cache", &dir);
}

#[test]
fn a_stopped_server_is_unreachable_and_the_installed_backend_stays() {
    let w = World::new();
    let (server, dir) = installed_then_published(&w, "cache");
    let url = server.url();
    drop(server);
    let out = w.run("update", &url, "cache", &[]);
    let err = failed(&out, 3, "unreachable");
    assert!(message(&err).contains("refused"), "{err}");
    still_current(&w, "cache", &dir);
    // Nothing installed: ensure has nothing to fall back on.
    let out = w.run("ensure", &url, "fresh", &[]);
    failed(&out, 3, "unreachable");
    assert!(w.nothing_installed("fresh"));
}

#[test]
fn an_expired_manifest_is_expired_not_tampered() {
    let w = World::new();
    let (server, dir) = installed_then_published(&w, "cache");
    w.publish(&["--expires-in", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = w.run("update", &server.url(), "cache", &[]);
    let err = failed(&out, 4, "expired");
    assert_eq!(err["code"], "integrity");
    let hint = err["hint"].as_str().unwrap_or_default();
    assert!(!hint.contains("alter"), "{hint}");
    still_current(&w, "cache", &dir);
    let out = w.run("ensure", &server.url(), "fresh", &[]);
    failed(&out, 4, "expired");
    assert!(w.nothing_installed("fresh"));
}

#[test]
fn an_unknown_variant_is_a_usage_error_listing_the_offered_ids() {
    let w = World::new();
    w.pack("1.0.0", 63, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run(
        "ensure",
        &server.url(),
        "cache",
        &["--variant", "linux-x86_64-cdua12.8"],
    );
    let err = failed(&out, 2, "unknown_variant");
    assert_eq!(err["code"], "usage");
    let m = message(&err);
    assert!(
        m.contains("linux-x86_64-cdua12.8") && m.contains(peft_e2e::CPU_VARIANT),
        "{m}"
    );
    assert!(w.nothing_installed("cache"));
    // `detect` says the same.
    let out = w.run(
        "detect",
        &server.url(),
        "cache",
        &["--variant", "macos-x86_64-cpu"],
    );
    failed(&out, 2, "unknown_variant");
}

/// `ensure --offline-dir <dir>` with the network closed.
fn ensure_offline(w: &World, dir: &Path, cache: &str) -> Output {
    w.run(
        "ensure",
        &closed_port_url(),
        cache,
        &["--offline-dir", &dir.to_string_lossy()],
    )
}

#[test]
fn the_sticks_root_works_one_and_two_levels_up_and_deeper_or_empty_says_so() {
    let w = World::new();
    w.pack("1.0.0", 64, MIB);
    w.publish(&[]);
    // The stick's root: peft-backend-bundles one level down.
    let bundles = w.offline("stick/peft-backend-bundles", &[]);
    let out = ensure_offline(&w, &w.path("stick"), "c1");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["source"],
        "offline"
    );
    // Two levels down, under a folder of another name (e.g. `PEFT Studio/`).
    let two = w.path("stick2/PEFT Studio");
    fs_err::create_dir_all(&two).expect("mkdir");
    fs_err::rename(&bundles, two.join("peft-backend-bundles")).expect("move");
    let out = ensure_offline(&w, &w.path("stick2"), "c2");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    // Three levels down is too deep.
    let three = w.path("stick3/a/b");
    fs_err::create_dir_all(&three).expect("mkdir");
    fs_err::rename(
        two.join("peft-backend-bundles"),
        three.join("peft-backend-bundles"),
    )
    .expect("move");
    let out = ensure_offline(&w, &w.path("stick3"), "c3");
    let err = failed(&out, 2, "not_a_bundle_folder");
    assert!(message(&err).contains(&w.s("stick3")), "{err}");
    assert!(
        !message(&err).contains("reach"),
        "not a network problem: {err}"
    );
    assert!(w.nothing_installed("c3"));
    // An empty folder, and one that does not exist.
    fs_err::create_dir_all(w.path("empty")).expect("mkdir");
    let out = ensure_offline(&w, &w.path("empty"), "c4");
    failed(&out, 2, "not_a_bundle_folder");
    let out = ensure_offline(&w, &w.path("gone"), "c4");
    failed(&out, 2, "not_a_bundle_folder");
    // An installed backend is not lost by pointing at the wrong folder.
    let out = ensure_offline(&w, &w.path("empty"), "c1");
    let err = event(&events(&out), "error").cloned();
    assert!(w.path("c1/current.json").is_file(), "{err:?}");
}

/// A folder `app/bin/` holding a copy of the built `peft-bootstrap`; returns it.
fn app_bin(w: &World) -> PathBuf {
    let bin = w.path("app/bin");
    place(&current_bootstrapper(), &bin.join("peft-bootstrap"));
    bin
}

/// `bin/peft-bootstrap <args>` with an environment holding only HOME and PATH.
fn packaged(w: &World, bin: &Path, args: &[&str]) -> Output {
    let home = w.path("home");
    fs_err::create_dir_all(&home).expect("mkdir home");
    Command::new(bin.join("peft-bootstrap"))
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run the packaged bootstrapper")
}

#[test]
fn the_packaged_layout_installs_with_release_json_and_nothing_else() {
    let w = World::new();
    let input = w.pack("1.0.0", 65, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let bin = app_bin(&w);
    // Written as a release build writes it.
    let manifest_url = format!("{}channels/stable/manifest.json", server.url());
    release(&[
        "release-config",
        "--manifest-url",
        &manifest_url,
        "--pubkey",
        &w.s("keys/release.pub"),
        "--out",
        &bin.join("release.json").to_string_lossy(),
    ]);
    let written: Value =
        serde_json::from_slice(&fs_err::read(bin.join("release.json")).expect("read"))
            .expect("json");
    assert_eq!(written["channel"], "stable", "{written}");
    let out = packaged(&w, &bin, &["ensure", "--json"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let ready = event(&evs, "ready").expect("ready");
    assert_eq!(ready["source"], "network", "{ready}");
    assert_eq!(ready["version"], "1.0.0", "{ready}");
    let dir = PathBuf::from(ready["dir"].as_str().expect("dir"));
    assert!(
        dir.starts_with(w.path("home")),
        "the default cache is under HOME: {}",
        dir.display()
    );
    peft_e2e::assert_installed_equals(&dir, &input);
    // A link to the binary (as a package manager might make) reads the same file.
    #[cfg(unix)]
    {
        let link = w.path("peft-bootstrap-link");
        std::os::unix::fs::symlink(bin.join("peft-bootstrap"), &link).expect("symlink");
        let out = Command::new(&link)
            .args(["status", "--json"])
            .env_clear()
            .env("HOME", w.path("home"))
            .output()
            .expect("run");
        assert_eq!(exit(&out), 0, "{}", stderr(&out));
    }
    // A flag still wins over the file: another channel of the same repository.
    let out = packaged(&w, &bin, &["detect", "--json", "--channel", "beta"]);
    let err = failed(&out, 3, "not_found");
    assert!(message(&err).contains("channels/beta"), "{err}");
}

#[test]
fn no_repository_is_not_configured_and_a_bad_release_json_is_config_invalid() {
    let w = World::new();
    let bin = app_bin(&w);
    let out = packaged(&w, &bin, &["ensure", "--json"]);
    let err = failed(&out, 2, "not_configured");
    assert!(
        err["hint"]
            .as_str()
            .unwrap_or_default()
            .contains(&bin.join("release.json").to_string_lossy().into_owned()),
        "the hint says where release.json goes: {err}"
    );
    let file = bin.join("release.json");
    for (text, needle) in [
        ("{\"manifest_url\": ", "JSON"),
        ("{\"channel\": \"stable\"}", "manifest_url"),
        (
            "{\"manifest_url\": \"https://example.org/peft\", \"trusted_keys\": [\"RWQnotakey\"]}",
            "trusted_keys",
        ),
    ] {
        fs_err::write(&file, text).expect("write");
        let out = packaged(&w, &bin, &["ensure", "--json"]);
        let err = failed(&out, 2, "config_invalid");
        let m = message(&err);
        assert!(
            m.contains(&file.to_string_lossy().into_owned()) && m.contains(needle),
            "{m}"
        );
    }
}

#[test]
fn a_server_that_keeps_failing_is_server_error() {
    let w = World::new();
    w.pack("1.0.0", 66, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| {
        f.target = Some("channels/".into());
        f.status = Some(500);
    });
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let err = failed(&out, 3, "server_error");
    assert!(message(&err).contains("500"), "{err}");
    assert!(
        server.requests("channels/stable/manifest.json").len() > 1,
        "retried before giving up"
    );
    assert!(w.nothing_installed("cache"));
}

#[test]
fn releases_for_another_ui_only_are_incompatible_not_no_variant() {
    let w = World::new();
    let input = w.path("input-2.0.0");
    peft_e2e::sample_bundle(&input, 67, MIB);
    w.pack_dir("2.0.0", &input, &["--ui-compat", ">=2.0.0"]);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &["--ui-version", "1.4.0"]);
    let err = failed(&out, 5, "incompatible");
    assert_eq!(err["code"], "no_variant");
    assert!(w.nothing_installed("cache"));
    let out = w.run("ensure", &server.url(), "cache", &["--ui-version", "2.1.0"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
}
