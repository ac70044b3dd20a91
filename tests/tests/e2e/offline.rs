//! Offline installs end to end: `peft-release offline` makes a folder, and
//! `peft-bootstrap ensure --offline-dir` installs from it with the network closed
//! (the manifest URL points at a port nothing listens on), with every online check.

use std::path::{Path, PathBuf};
use std::process::Output;

use peft_e2e::selfbuild::{closed_port_url, current_bootstrapper, flip_byte, place};
use peft_e2e::server::Server;
use peft_e2e::{MIB, World, event, events, exit, release, sample_bundle, stderr, tree};

/// `peft-release offline` of the stable channel into `w/<out>`.
fn make_offline(w: &World, out: &str, variants: &[&str]) -> PathBuf {
    let extra: Vec<&str> = variants.iter().flat_map(|v| ["--variant", v]).collect();
    w.offline(out, &extra)
}

/// `ensure --json --offline-dir DIR` with the manifest URL on a closed port.
fn ensure_offline(w: &World, dir: &Path, cache: &str) -> Output {
    w.run(
        "ensure",
        &closed_port_url(),
        cache,
        &["--offline-dir", &dir.to_string_lossy()],
    )
}

/// Packs a sample bundle as `variant` of `version`, with an optional catalogue.
fn pack_variant(w: &World, version: &str, variant: &str, seed: u64, catalog: Option<&Path>) {
    let input = w.path(&format!("input-{version}-{variant}"));
    sample_bundle(&input, seed, MIB);
    let catalog = catalog.map(|c| c.to_string_lossy().into_owned());
    let extra: Vec<&str> = catalog
        .iter()
        .flat_map(|c| ["--variants", c.as_str()])
        .collect();
    w.pack_as(version, &input, variant, &extra);
}

/// `blobs/sha256/<hex>` of the archive this bootstrapper fetches for `variant` in
/// the newest release (its zstd archive when it has one).
fn archive_path(w: &World, variant: &str) -> String {
    let m = w.manifest();
    m.releases[0]
        .variant(variant)
        .unwrap_or_else(|| panic!("{variant} not in the manifest"))
        .archive_to_fetch()
        .path()
}

fn blob_count(dir: &Path) -> usize {
    fs_err::read_dir(dir.join("blobs/sha256"))
        .expect("ls blobs")
        .count()
}

#[test]
fn an_offline_folder_installs_with_the_network_closed() {
    let w = World::new();
    let input = w.pack("1.0.0", 1, 3 * MIB);
    w.publish(&[]);
    let stick = make_offline(&w, "stick", &[]);
    // The signed pair is copied byte for byte; only the variant's blobs come along:
    // its two archives (Deflate for older bootstrappers, zstd) and its index.
    for f in ["manifest.json", "manifest.json.minisig"] {
        assert_eq!(
            fs_err::read(stick.join("channels/stable").join(f)).expect("copied"),
            fs_err::read(w.path("repo/channels/stable").join(f)).expect("original"),
            "{f} differs"
        );
    }
    assert_eq!(blob_count(&stick), 3);
    assert!(!stick.join(".pending").exists());
    let readme = fs_err::read_to_string(stick.join("README.txt")).expect("README.txt");
    assert!(readme.contains("--offline-dir") && readme.contains("linux-x86_64-cpu 1.0.0"));

    let out = ensure_offline(&w, &stick, "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let ready = event(&evs, "ready").expect("ready");
    assert_eq!(ready["source"], "offline");
    assert_eq!(ready["version"], "1.0.0");
    assert!(
        evs.iter()
            .any(|e| e["event"] == "progress" && e["phase"] == "copy"),
        "copying shows progress: {evs:?}"
    );
    let mut got = tree(Path::new(ready["dir"].as_str().expect("dir")));
    for f in peft_e2e::BOOTSTRAPPER_FILES {
        got.remove(f);
    }
    assert_eq!(got, tree(&input));
    // Once installed, neither the folder nor the network is needed.
    let out = w.run("ensure", &closed_port_url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["source"],
        "cache"
    );
    let out = ensure_offline(&w, &stick, "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["source"],
        "cache"
    );
}

#[test]
fn one_flipped_byte_in_the_folder_is_refused_and_nothing_is_installed() {
    let w = World::new();
    w.pack("1.0.0", 2, 2 * MIB);
    w.publish(&[]);
    let stick = make_offline(&w, "stick", &[]);
    flip_byte(&stick.join(archive_path(&w, "linux-x86_64-cpu")));
    let out = ensure_offline(&w, &stick, "cache");
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error event");
    assert_eq!(err["code"], "integrity");
    assert!(w.nothing_installed("cache"));

    let stick2 = make_offline(&w, "stick2", &[]);
    flip_byte(&stick2.join("channels/stable/manifest.json"));
    let out = ensure_offline(&w, &stick2, "cache");
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    assert!(w.nothing_installed("cache"));

    // peft-release refuses to copy a damaged blob out of the repository.
    flip_byte(&w.repo().join(archive_path(&w, "linux-x86_64-cpu")));
    let out = w.offline_raw("stick3", &[]);
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    assert!(!w.path("stick3/channels/stable/manifest.json").exists());
}

#[test]
fn no_folder_is_made_from_a_manifest_the_app_would_refuse() {
    let w = World::new();
    w.pack("1.0.0", 21, MIB);
    w.publish(&[]);
    // Judged with another key than the one that signed it.
    release(&["keygen", "--out", &w.s("other")]);
    let out = w.offline_raw("stick", &["--pubkey", &w.s("other/release.pub")]);
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    assert!(!w.path("stick/channels").exists());
    // A manifest changed after signing.
    flip_byte(&w.repo().join("channels/stable/manifest.json"));
    let out = w.offline_raw("stick", &[]);
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    assert!(!w.path("stick/channels").exists());
}

#[test]
fn a_missing_variant_is_named_with_the_file_to_fetch() {
    let w = World::new();
    pack_variant(&w, "1.0.0", "linux-x86_64-cpu", 3, None);
    pack_variant(&w, "1.0.0", "windows-x86_64-cpu", 4, None);
    w.publish(&[]);
    let stick = make_offline(&w, "stick", &["windows-x86_64-cpu"]);
    assert_eq!(blob_count(&stick), 3);
    let out = ensure_offline(&w, &stick, "cache");
    assert_eq!(exit(&out), 5, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error event");
    let message = err["message"].as_str().expect("message");
    let hint = err["hint"].as_str().expect("hint");
    assert!(message.contains("linux-x86_64-cpu"), "{message}");
    assert!(
        hint.contains(&archive_path(&w, "linux-x86_64-cpu")),
        "the hint names the file to fetch: {hint}"
    );
    assert!(w.nothing_installed("cache"));
    // update from the folder names the same file instead of failing on it.
    let out = w.run(
        "update",
        &closed_port_url(),
        "cache",
        &["--offline-dir", &stick.to_string_lossy()],
    );
    assert_eq!(exit(&out), 5, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error event");
    assert!(
        err["hint"]
            .as_str()
            .unwrap_or_default()
            .contains(&archive_path(&w, "linux-x86_64-cpu")),
        "{err}"
    );
    // detect explains each variant the same way.
    let out = w.run(
        "detect",
        &closed_port_url(),
        "cache",
        &["--offline-dir", &stick.to_string_lossy()],
    );
    assert_eq!(exit(&out), 5, "{}", stderr(&out));
    let evs = events(&out);
    let verdict = evs
        .iter()
        .find(|e| e["event"] == "verdict" && e["variant"] == "linux-x86_64-cpu")
        .expect("verdict");
    let reason = verdict["reason"].as_str().expect("reason");
    assert!(reason.starts_with("not in the offline folder"), "{reason}");

    // Naming an unknown variant when making the folder is a usage error naming it.
    let out = w.offline_raw("stick2", &["--variant", "macos-arm64-metal"]);
    assert_eq!(exit(&out), 2);
    assert!(stderr(&out).contains("macos-arm64-metal"));
}

#[test]
fn a_better_build_missing_from_the_folder_is_named_and_the_one_present_installs() {
    let w = World::new();
    let catalog = w.path("variants.json");
    let def = |id: &str, priority: i32| serde_json::json!({"id": id, "os": "linux", "arch": "x86_64", "accelerator": "cpu", "priority": priority, "requires": {}});
    let cat = serde_json::json!({"schema": 1, "variants": [def("linux-x86_64-cpu", 10), def("linux-x86_64-cpu-fast", 20)]});
    fs_err::write(&catalog, cat.to_string()).expect("catalogue");
    pack_variant(&w, "1.0.0", "linux-x86_64-cpu", 5, Some(&catalog));
    pack_variant(&w, "1.0.0", "linux-x86_64-cpu-fast", 6, Some(&catalog));
    w.publish(&[]);
    let stick = make_offline(&w, "stick", &["linux-x86_64-cpu"]);
    let out = ensure_offline(&w, &stick, "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert_eq!(
        event(&evs, "ready").expect("ready")["variant"],
        "linux-x86_64-cpu"
    );
    let warned = evs
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str())
        .any(|m| {
            m.contains("linux-x86_64-cpu-fast")
                && m.contains(&archive_path(&w, "linux-x86_64-cpu-fast"))
        });
    assert!(warned, "a warning names the better build's file: {evs:?}");
}

#[test]
fn an_expired_manifest_installs_offline_with_a_warning_but_not_online() {
    let w = World::new();
    w.pack("1.0.0", 7, MIB);
    w.publish(&["--expires-in", "1s"]);
    let stick = make_offline(&w, "stick", &[]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Expired, it still makes a folder: the app accepts it offline (with a warning).
    make_offline(&w, "stick-late", &[]);
    let out = ensure_offline(&w, &stick, "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert!(
        evs.iter().any(|e| e["event"] == "warning"
            && e["message"].as_str().is_some_and(|m| m.contains("expired"))),
        "{evs:?}"
    );
    assert_eq!(event(&evs, "ready").expect("ready")["source"], "offline");
    // The same manifest from a server is refused.
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache-online", &[]);
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    assert!(w.nothing_installed("cache-online"));
}

#[test]
fn an_older_serial_than_already_accepted_is_refused_offline() {
    let w = World::new();
    w.pack("1.0.0", 8, MIB);
    w.publish(&[]);
    let old = make_offline(&w, "stick-old", &[]);
    w.pack("1.1.0", 9, MIB);
    w.publish(&[]);
    let new = make_offline(&w, "stick-new", &[]);
    let out = ensure_offline(&w, &new, "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["version"],
        "1.1.0"
    );
    // A machine that accepted serial 2 (its state, without the install) meets the
    // older folder: a replay, refused.
    fs_err::create_dir_all(w.path("cache2")).expect("mkdir");
    fs_err::copy(w.path("cache/state.json"), w.path("cache2/state.json")).expect("state");
    let out = ensure_offline(&w, &old, "cache2");
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("serial 1")),
        "{err}"
    );
    assert!(w.nothing_installed("cache2"));
}

#[test]
fn a_folder_beside_the_app_is_found_without_flags() {
    let w = World::new();
    w.pack("1.0.0", 10, MIB);
    w.publish(&[]);
    make_offline(&w, "app/peft-backend-bundles", &[]);
    let exe = w.path("app/peft-bootstrap");
    place(&current_bootstrapper(), &exe);
    let out = std::process::Command::new(&exe)
        .args([
            "ensure",
            "--json",
            "--trusted-key",
            &w.s("keys/release.pub"),
        ])
        .args(["--cache-dir", &w.s("cache")])
        .env_remove("PEFT_MANIFEST_URL")
        .env_remove("PEFT_OFFLINE_DIR")
        .output()
        .expect("run the app's bootstrapper");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert_eq!(event(&evs, "ready").expect("ready")["source"], "offline");
}
