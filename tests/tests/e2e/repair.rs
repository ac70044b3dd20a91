//! `verify --repair`: only what is wrong is rewritten, from the cheapest source that
//! has it (the cache, an offline folder, ranges of the archive over HTTP, the whole
//! archive when a server ignores `Range`), and bytes that do not match the signed
//! index are never written. Real binaries, real HTTP, real signatures.

use std::path::{Path, PathBuf};
use std::process::Output;

use peft_e2e::selfbuild::{closed_port_url, flip_byte};
use peft_e2e::server::{Logged, Server};
use peft_e2e::{
    MIB, World, assert_installed_equals, copy_tree, event, events, exit, ready_dir, stderr, tree,
};
use serde_json::Value;

const INIT: &str = "peft_engine/_internal/pkg/__init__.py";
const BIG: &str = "peft_engine/_internal/libbig.so";
const ENTRY: &str = "peft_engine/peft_engine";

/// A world with 1.0.0 (a `big`-byte library) installed over `server`; returns the
/// packed input and the install folder.
fn installed(w: &World, server: &Server, big: usize) -> (PathBuf, PathBuf) {
    let input = w.pack("1.0.0", 1, big);
    w.publish(&[]);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    (input, ready_dir(&events(&out)))
}

/// The size of the repository's only archive.
fn archive_size(w: &World) -> u64 {
    fs_err::metadata(w.repo().join(w.archive_path()))
        .expect("archive")
        .len()
}

/// The `verified` event of a run.
fn verified(out: &Output) -> Value {
    event(&events(out), "verified")
        .cloned()
        .unwrap_or_else(|| panic!("no verified event: {}", stderr(out)))
}

/// `(path, from)` of each repaired file, sorted.
fn repaired(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["repaired"]
        .as_array()
        .expect("repaired")
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or_default().to_string(),
                r["from"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Overwrites a file with other bytes of the same length, as a new file (so a hard
/// link to it elsewhere keeps the good bytes).
fn corrupt(path: &Path) {
    let mut bytes = fs_err::read(path).expect("read");
    for b in bytes.iter_mut().take(64) {
        *b ^= 0x5A;
    }
    fs_err::remove_file(path).expect("unlink");
    fs_err::write(path, bytes).expect("write");
}

/// The blob requests the server saw after the first `skip` requests.
fn blob_requests(server: &Server, skip: usize) -> Vec<Logged> {
    server
        .log()
        .into_iter()
        .skip(skip)
        .filter(|l| l.path.starts_with("blobs/"))
        .collect()
}

#[test]
fn a_corrupted_file_fails_verify_and_repair_fetches_only_its_byte_ranges() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server, 20 * MIB);
    corrupt(&dir.join(INIT));
    let out = w.cached(&["verify", "--json"], "cache");
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    let v = verified(&out);
    assert_eq!(v["ok"], false);
    assert!(
        v["problems"][0].as_str().unwrap_or_default().contains(INIT),
        "{v}"
    );
    let err = event(&events(&out), "error").cloned().expect("error");
    assert!(
        err["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("--repair"),
        "{err}"
    );

    let skip = server.log().len();
    let out = w.run("verify", &server.url(), "cache", &["--repair"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let v = verified(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        repaired(&v),
        vec![(INIT.to_string(), "network".to_string())]
    );
    let blobs = blob_requests(&server, skip);
    let archive = archive_size(&w);
    let served: u64 = blobs.iter().map(|l| l.body_bytes).sum();
    eprintln!(
        "repair of one small file: {} ranged requests, {served} bytes served of a {archive}-byte archive",
        blobs.len()
    );
    assert!(
        blobs
            .iter()
            .all(|l| l.range_start.is_some() && l.range_end.is_some() && l.status == 206),
        "only ranged requests: {blobs:?}"
    );
    assert!(
        served < archive / 50 && served < 200 << 10,
        "{served} bytes served for a {archive}-byte archive"
    );
    assert_eq!(v["fetched"].as_u64(), Some(served), "{v}");
    assert_installed_equals(&dir, &input);
    let out = w.cached(&["verify"], "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        fs_err::read_dir(w.path("cache/downloads"))
            .expect("ls")
            .count(),
        0
    );
}

#[test]
fn deleted_files_are_restored_with_their_mode_and_repeated_content_comes_from_the_cache() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server, 2 * MIB);
    fs_err::remove_file(dir.join(ENTRY)).expect("delete the entry");
    // Shipped once, installed under two names: the other name serves.
    fs_err::remove_file(dir.join("peft_engine/_internal/libalias.so.1")).expect("delete");
    fs_err::write(dir.join("peft_engine/_internal/stray.txt"), "not signed").expect("extra");
    let out = w.run("verify", &server.url(), "cache", &["--repair"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let v = verified(&out);
    assert_eq!(
        repaired(&v),
        vec![
            (
                "peft_engine/_internal/libalias.so.1".to_string(),
                "cache".to_string()
            ),
            (ENTRY.to_string(), "network".to_string()),
        ]
    );
    assert_eq!(
        v["extra"],
        serde_json::json!(["peft_engine/_internal/stray.txt"])
    );
    fs_err::remove_file(dir.join("peft_engine/_internal/stray.txt")).expect("rm");
    assert_installed_equals(&dir, &input);
    let run = std::process::Command::new(dir.join(ENTRY))
        .arg("x")
        .output()
        .expect("run");
    assert!(run.status.success(), "the restored entry is executable");
}

#[test]
fn repair_from_an_offline_folder_with_the_server_gone() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server, 4 * MIB);
    drop(server);
    let offline = w.path("stick");
    w.offline("stick", &[]);
    corrupt(&dir.join(BIG));
    fs_err::remove_file(dir.join(INIT)).expect("delete");
    let out = w.run(
        "verify",
        &closed_port_url(),
        "cache",
        &["--repair", "--offline-dir", &offline.to_string_lossy()],
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let v = verified(&out);
    assert_eq!(
        repaired(&v),
        vec![
            (BIG.to_string(), "offline".to_string()),
            (INIT.to_string(), "offline".to_string()),
        ]
    );
    assert_eq!(v["fetched"], 0);
    assert_installed_equals(&dir, &input);
}

#[test]
fn repair_from_another_installed_version_that_shares_the_file_touches_no_network() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (_, old) = installed(&w, &server, 4 * MIB);
    // 1.0.1: the same library, another package file; installed by a delta, then current.
    let input = w.path("input-1.0.1");
    copy_tree(&w.path("input-1.0.0"), &input);
    fs_err::write(input.join(INIT), "VERSION = '1.0.1'\n").expect("write");
    w.pack_dir("1.0.1", &input, &[]);
    w.publish(&[]);
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let dir = ready_dir(&events(&out));
    assert_ne!(dir, old);
    drop(server);
    corrupt(&dir.join(BIG));
    let out = w.run("verify", &closed_port_url(), "cache", &["--repair"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let v = verified(&out);
    assert_eq!(repaired(&v), vec![(BIG.to_string(), "cache".to_string())]);
    assert_eq!(v["fetched"], 0);
    assert!(event(&events(&out), "selected").is_none());
    assert_installed_equals(&dir, &input);
}

#[test]
fn a_server_that_ignores_range_gets_the_whole_archive_and_the_repair_still_works() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (input, dir) = installed(&w, &server, 4 * MIB);
    server.faults(|f| f.ignore_range = true);
    corrupt(&dir.join(BIG));
    let skip = server.log().len();
    let out = w.run("verify", &server.url(), "cache", &["--repair"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let warned = evs.iter().any(|e| {
        e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("ignores Range")
    });
    assert!(warned, "{evs:?}");
    let v = verified(&out);
    assert_eq!(repaired(&v), vec![(BIG.to_string(), "network".to_string())]);
    let whole = blob_requests(&server, skip)
        .iter()
        .any(|l| l.range_start.is_none() && l.body_bytes == archive_size(&w));
    assert!(
        whole,
        "the whole archive was downloaded: {:?}",
        server.log()
    );
    assert_installed_equals(&dir, &input);
    assert_eq!(
        fs_err::read_dir(w.path("cache/downloads"))
            .expect("ls")
            .count(),
        0
    );
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_is_written() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let (_, dir) = installed(&w, &server, 4 * MIB);
    corrupt(&dir.join(BIG));
    let damaged = fs_err::read(dir.join(BIG)).expect("read");
    // The middle of the archive is the middle of the library's entry.
    flip_byte(&w.repo().join(w.archive_path()));
    let out = w.run("verify", &server.url(), "cache", &["--repair"]);
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains(BIG) && msg.contains("signed index"), "{msg}");
    assert!(msg.contains("nothing was written"), "{msg}");
    assert_eq!(verified(&out)["ok"], false);
    assert_eq!(
        fs_err::read(dir.join(BIG)).expect("read"),
        damaged,
        "left as it was"
    );
    let leftovers: Vec<String> = tree(&dir)
        .into_keys()
        .filter(|p| p.contains(".peft-repair-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
