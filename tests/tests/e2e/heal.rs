//! `ensure` never answers "ready" for an install that lost files: it checks every
//! indexed file is there (a stat each, no hashing), repairs what is missing from
//! the cache, the offline folder or the repository, and says so; with nothing to
//! repair from it fails clearly and keeps the install. Real binaries, real HTTP.

use std::path::{Path, PathBuf};
use std::process::Output;

use peft_e2e::selfbuild::closed_port_url;
use peft_e2e::server::Server;
use peft_e2e::{
    MIB, World, assert_error, assert_installed_equals, event, events, exit, ready_dir, stderr,
};
use serde_json::Value;

const ENTRY: &str = "peft_engine/peft_engine";
const INTERNAL: &str = "peft_engine/_internal";

/// A world with 1.0.0 installed over `server`; returns the packed input and the
/// install folder.
fn installed(w: &World, server: &Server) -> (PathBuf, PathBuf) {
    let input = w.pack("1.0.0", 1, 2 * MIB);
    w.publish(&[]);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    (input, ready_dir(&events(&out)))
}

/// The messages of a run's `warning` events.
fn warnings(out: &Output) -> Vec<String> {
    events(out)
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The `ready` event, asserting the run succeeded.
fn ready(out: &Output) -> Value {
    assert_eq!(exit(out), 0, "{}", stderr(out));
    event(&events(out), "ready")
        .cloned()
        .unwrap_or_else(|| panic!("no ready event: {}", stderr(out)))
}

/// Runs the engine's entry: it must start.
fn runs(dir: &Path) {
    let run = std::process::Command::new(dir.join(ENTRY))
        .arg("x")
        .output()
        .expect("run the entry");
    assert!(run.status.success(), "the restored entry runs");
}

#[test]
fn a_deleted_entry_executable_is_restored_by_the_next_ensure() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    fs_err::remove_file(dir.join(ENTRY)).expect("delete the entry");
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let r = ready(&out);
    assert_eq!(PathBuf::from(r["dir"].as_str().expect("dir")), dir);
    let said = warnings(&out);
    assert!(
        said.iter()
            .any(|m| m.contains(ENTRY) && m.contains("missing") && m.contains("repaired")),
        "a warning says what was missing and that it was repaired: {said:?}"
    );
    assert_installed_equals(&dir, &input);
    runs(&dir);
}

#[test]
fn a_deleted_internal_folder_is_restored_by_the_next_ensure() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    fs_err::remove_dir_all(dir.join(INTERNAL)).expect("delete _internal");
    let out = w.run("ensure", &server.url(), "cache", &[]);
    ready(&out);
    let said = warnings(&out);
    assert!(
        said.iter()
            .any(|m| m.contains("_internal/") && m.contains("repaired")),
        "{said:?}"
    );
    assert_installed_equals(&dir, &input);
    runs(&dir);
    // Whole again: the next start is the cached answer, with no request.
    let before = server.log().len();
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(ready(&out)["source"], "cache");
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    assert_eq!(server.log().len(), before, "{:?}", server.log());
}

#[test]
fn a_file_emptied_in_place_is_found_without_hashing_and_repaired() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    // What a quarantine that truncates does: the file is there, of another size.
    fs_err::write(dir.join(INTERNAL).join("libbig.so"), b"").expect("empty it");
    let out = w.run("ensure", &server.url(), "cache", &[]);
    ready(&out);
    assert!(
        warnings(&out).iter().any(|m| m.contains("libbig.so")),
        "{:?}",
        warnings(&out)
    );
    assert_installed_equals(&dir, &input);
}

#[test]
fn a_healthy_cached_ensure_touches_no_network() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    let before = server.log().len();
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let r = ready(&out);
    assert_eq!(r["source"], "cache");
    assert_eq!(server.log().len(), before, "{:?}", server.log());
    assert!(event(&events(&out), "hardware").is_none());
    assert_installed_equals(&dir, &input);
}

#[test]
fn with_nothing_to_repair_from_ensure_fails_clearly_and_keeps_the_install() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (_, dir) = installed(&w, &server);
    drop(server);
    fs_err::remove_file(dir.join(ENTRY)).expect("delete the entry");
    let out = w.run("ensure", &closed_port_url(), "cache", &[]);
    let msg = assert_error(&out, 3, ENTRY);
    assert!(
        msg.contains("missing") && msg.contains("left as it is"),
        "{msg}"
    );
    assert!(dir.join(INTERNAL).join("libbig.so").is_file(), "kept");
    assert!(dir.join(".peft-install.json").is_file(), "kept");
}

#[test]
fn an_offline_folder_repairs_a_deleted_entry_with_the_network_gone() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    drop(server);
    let stick = w.offline("stick", &[]);
    fs_err::remove_file(dir.join(ENTRY)).expect("delete the entry");
    let out = w.run(
        "ensure",
        &closed_port_url(),
        "cache",
        &["--offline-dir", &stick.to_string_lossy()],
    );
    ready(&out);
    assert!(
        warnings(&out)
            .iter()
            .any(|m| m.contains("offline folder") && m.contains(ENTRY)),
        "{:?}",
        warnings(&out)
    );
    assert_installed_equals(&dir, &input);
}

#[test]
fn when_the_channel_no_longer_lists_the_damaged_release_ensure_installs_its_successor() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    fs_err::remove_file(dir.join(ENTRY)).expect("delete the entry");
    // The repository now lists a release whose archive no longer holds 1.0.0's
    // files: 1.0.1 replaces it, and is what `ensure` installs.
    let newer = w.path("input-1.0.1");
    peft_e2e::copy_tree(&input, &newer);
    fs_err::write(
        newer.join("peft_engine/_internal/pkg/__init__.py"),
        "V = 2\n",
    )
    .expect("w");
    w.pack_dir("1.0.1", &newer, &[]);
    w.publish(&["--keep", "1"]);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let r = ready(&out);
    let got = PathBuf::from(r["dir"].as_str().expect("dir"));
    assert_ne!(got, dir, "the newer release was installed");
    assert_eq!(r["version"], "1.0.1");
    assert_installed_equals(&got, &newer);
    runs(&got);
}

#[test]
fn an_install_whose_index_is_gone_is_installed_again_in_its_place() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    fs_err::remove_file(dir.join(".peft-index.json")).expect("delete the index");
    fs_err::remove_file(dir.join(ENTRY)).expect("delete the entry");
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let r = ready(&out);
    assert_eq!(PathBuf::from(r["dir"].as_str().expect("dir")), dir);
    assert_eq!(r["source"], "network");
    assert_installed_equals(&dir, &input);
    runs(&dir);
    let leftovers: Vec<String> = fs_err::read_dir(w.path("cache"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("damaged-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn gc_removes_a_damaged_install_a_stopped_run_left_set_aside() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server);
    let aside = w.path("cache/damaged-1.0.0-linux-x86_64-cpu");
    fs_err::create_dir_all(aside.join("peft_engine")).expect("mkdir");
    fs_err::write(aside.join("peft_engine/x"), b"left").expect("write");
    let out = w.cached(&["gc", "--json"], "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let removed = event(&events(&out), "collected")
        .cloned()
        .expect("collected");
    assert!(
        removed["removed"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "damaged-1.0.0-linux-x86_64-cpu")),
        "{removed}"
    );
    assert!(!aside.exists());
    assert_installed_equals(&dir, &input);
}
