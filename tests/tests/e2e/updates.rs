//! Backend updates apart from the UI: deltas, staged switch, rollback, gc, ui_compat,
//! disk space. Real binaries, real HTTP, real signatures.

use std::path::Path;

use peft_e2e::server::Server;
use peft_e2e::{
    MIB, World, assert_installed_equals, copy_tree, event, events, exit, noise, ready_dir,
    sample_bundle, stderr,
};

/// 1.0.1 from 1.0.0: one small file changed, one added, 64 KiB rewritten in the middle of the big library.
fn next_version(w: &World, from: &str, to: &str, seed: u64) -> std::path::PathBuf {
    let src = w.path(&format!("input-{from}"));
    let dst = w.path(&format!("input-{to}"));
    copy_tree(&src, &dst);
    fs_err::write(
        dst.join("peft_engine/_internal/pkg/__init__.py"),
        format!("VERSION = '{to}'\n"),
    )
    .expect("write");
    fs_err::write(
        dst.join(format!("peft_engine/_internal/pkg/new_{seed}.py")),
        "ADDED = True\n",
    )
    .expect("write");
    let lib = dst.join("peft_engine/_internal/libbig.so");
    let mut bytes = fs_err::read(&lib).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid..mid + 65536].copy_from_slice(&noise(seed, 65536));
    fs_err::write(&lib, bytes).expect("write");
    w.pack_dir(to, &dst, &[]);
    dst
}

fn archive_size(w: &World, version: &str) -> u64 {
    let m = w.manifest();
    let r = m
        .release(&version.parse().expect("version"))
        .expect("release");
    r.variants[0].archive_to_fetch().size
}

#[test]
fn a_delta_update_moves_under_5_percent_and_gives_exactly_the_new_version() {
    let w = World::new();
    w.pack("1.0.0", 1, 100 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let input = next_version(&w, "1.0.0", "1.0.1", 2);
    w.publish(&[]);
    // The 100 MiB library is patched in 8 MiB frames, each against its own window of
    // the old library, so applying it needs memory for one frame, not the library.
    let entries = w.delta_entries();
    let big = entries
        .iter()
        .find(|e| e["path"] == "peft_engine/_internal/libbig.so")
        .expect("the library is in the delta");
    assert_eq!(big["kind"], "zstd_patch");
    assert_eq!(big["frames"].as_array().map(Vec::len), Some(13), "{big}");
    let before = server.blob_bytes();
    let check = w.run("update", &server.url(), "cache", &["--check"]);
    assert_eq!(exit(&check), 0, "{}", stderr(&check));
    let avail = event(&events(&check), "update_available")
        .cloned()
        .expect("update_available");
    assert_eq!(avail["from"], "1.0.0");
    assert_eq!(server.blob_bytes(), before, "--check downloads nothing");
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let staged = event(&events(&out), "staged").cloned().expect("staged");
    assert_eq!(
        (staged["version"].as_str(), staged["from"].as_str()),
        (Some("1.0.1"), Some("1.0.0"))
    );
    let moved = server.blob_bytes() - before;
    let full = archive_size(&w, "1.0.1");
    assert!(
        moved * 20 <= full,
        "moved {moved} bytes, more than 5% of the {full}-byte archive"
    );
    assert_eq!(avail["bytes"].as_u64(), staged["bytes"].as_u64());
    // Still 1.0.0 until the next ensure; then exactly 1.0.1, from the cache.
    let st = w.cached(&["status", "--json"], "cache");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&st.stdout).expect("json")["current"]["version"],
        "1.0.0"
    );
    drop(server);
    let out = w.run("ensure", "http://127.0.0.1:9/", "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert_eq!(event(&evs, "ready").expect("ready")["version"], "1.0.1");
    assert_installed_equals(&ready_dir(&evs), &input);
    let v = w.cached(&["verify"], "cache");
    assert!(v.status.success(), "{}", stderr(&v));
}

#[test]
fn a_corrupted_delta_falls_back_to_the_full_archive() {
    let w = World::new();
    w.pack("1.0.0", 3, 8 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    let input = next_version(&w, "1.0.0", "1.0.1", 4);
    w.publish(&[]);
    let m: serde_json::Value = serde_json::from_slice(
        &fs_err::read(w.path("repo/channels/stable/manifest.json")).expect("m"),
    )
    .expect("json");
    let d = &m["releases"][0]["variants"][0]["deltas"][0];
    let delta = w.path(&format!(
        "repo/blobs/sha256/{}",
        d["sha256"].as_str().expect("delta sha")
    ));
    let mut bytes = fs_err::read(&delta).expect("read");
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    fs_err::write(&delta, bytes).expect("write");
    let before = server.blob_bytes();
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert!(
        evs.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("full archive")),
        "{evs:?}"
    );
    let staged = event(&evs, "staged").expect("staged");
    assert!(staged["from"].is_null());
    assert!(
        server.blob_bytes() - before >= archive_size(&w, "1.0.1"),
        "the full archive was downloaded"
    );
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_installed_equals(&ready_dir(&events(&out)), &input);
}

#[test]
fn rollback_returns_to_the_previous_version_and_it_stays_chosen() {
    let w = World::new();
    w.pack("1.0.0", 5, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    next_version(&w, "1.0.0", "1.0.1", 6);
    w.publish(&[]);
    assert_eq!(exit(&w.run("update", &server.url(), "cache", &[])), 0);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["version"],
        "1.0.1"
    );
    let out = w.cached(
        &["rollback", "--json", "--reason", "health check failed"],
        "cache",
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert_eq!(
        event(&evs, "rolled_back").expect("rolled_back")["to"],
        "1.0.0-linux-x86_64-cpu"
    );
    let exe = event(&evs, "ready").expect("ready")["executable"]
        .as_str()
        .expect("exe")
        .to_string();
    let run = std::process::Command::new(&exe)
        .arg("ok")
        .output()
        .expect("run the rolled-back engine");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "sample engine 5: ok"
    );
    // The rolled-back release is not offered again.
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(
        event(&events(&out), "up_to_date").is_some(),
        "{:?}",
        events(&out)
    );
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["version"],
        "1.0.0"
    );
    // Nothing earlier to roll back to from here.
    let out = w.cached(&["rollback"], "cache");
    assert_eq!(exit(&out), 0, "previous is 1.0.1 now: {}", stderr(&out));
}

#[test]
fn gc_keeps_the_current_and_previous_installs() {
    let w = World::new();
    w.pack("1.0.0", 7, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    for (from, to, seed) in [("1.0.0", "1.0.1", 8), ("1.0.1", "1.0.2", 9)] {
        next_version(&w, from, to, seed);
        w.publish(&[]);
        let out = w.run("update", &server.url(), "cache", &[]);
        assert_eq!(exit(&out), 0, "{}", stderr(&out));
        assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    }
    fs_err::write(w.path("cache/downloads/leftover"), b"x").expect("leftover");
    let out = w.cached(&["gc", "--json"], "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let mut left: Vec<String> = fs_err::read_dir(w.path("cache/versions"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec!["1.0.1-linux-x86_64-cpu", "1.0.2-linux-x86_64-cpu"]
    );
    assert!(!w.path("cache/downloads/leftover").exists());
    let v = w.cached(&["verify"], "cache");
    assert!(
        v.status.success(),
        "the current install survives gc: {}",
        stderr(&v)
    );
}

#[test]
fn an_old_ui_keeps_an_engine_that_a_new_ui_leaves_behind() {
    let w = World::new();
    let input = w.path("in1");
    sample_bundle(&input, 10, MIB);
    w.pack_dir("1.0.0", &input, &["--ui-compat", "^1"]);
    let input2 = w.path("in2");
    sample_bundle(&input2, 11, MIB);
    w.pack_dir("2.0.0", &input2, &["--ui-compat", "^2"]);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let ui1 = ["--ui-version", "1.4.0"];
    let ui2 = ["--ui-version", "2.1.0"];
    let out = w.run("ensure", &server.url(), "cache", &ui1);
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["version"],
        "1.0.0"
    );
    let out = w.run("update", &server.url(), "cache", &ui1);
    assert!(
        event(&events(&out), "up_to_date").is_some(),
        "UI 1.x stays on 1.0.0: {}",
        stderr(&out)
    );
    let out = w.run("ensure", &server.url(), "cache", &ui2);
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["version"],
        "2.0.0"
    );
    drop(server);
    let out = w.run("ensure", "http://127.0.0.1:9/", "cache", &ui1);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let ready = event(&events(&out), "ready").cloned().expect("ready");
    assert_eq!(
        ready["version"], "1.0.0",
        "UI 1.x gets its engine back without the network"
    );
    assert_installed_equals(Path::new(ready["dir"].as_str().expect("dir")), &input);
}

#[test]
fn too_little_disk_is_exit_6_and_the_installed_backend_stays() {
    let w = World::new();
    w.pack("1.0.0", 12, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let cache = w.path("small");
    fs_err::create_dir_all(&cache).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=80m",
            "tmpfs",
            &cache.to_string_lossy(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            !peft_e2e::nginx::required() || !peft_e2e::running_as_root(),
            "root could not mount a tmpfs"
        );
        eprintln!("skipping: cannot mount a small tmpfs here (not root?)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(cache.clone());
    let out = w.run("ensure", &server.url(), "small", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    // 1.0.1 carries a 100 MiB library: it cannot fit beside 1.0.0 on an 80 MiB disk.
    let big = w.path("input-big");
    sample_bundle(&big, 13, 100 * MIB);
    w.pack_dir("1.0.1", &big, &["--deltas", "0"]);
    w.publish(&[]);
    let out = w.run("update", &server.url(), "small", &[]);
    assert_eq!(exit(&out), 6, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bytes are needed"),
        "{err}"
    );
    assert!(
        err["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("PEFT_CACHE_DIR"),
        "{err}"
    );
    let out = w.run("ensure", &server.url(), "small", &[]);
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["version"],
        "1.0.0",
        "the working backend is untouched"
    );
}

#[test]
fn a_recompiled_library_travels_as_a_bsdiff_patch_and_applies_exactly() {
    let w = World::new();
    let input = w.pack("1.0.0", 14, MIB);
    fs_err::write(
        input.join("peft_engine/_internal/libscatter.so"),
        noise(99, 2 * MIB),
    )
    .expect("write");
    let repack = w.path("input-1.0.0b");
    copy_tree(&input, &repack);
    // Repack 1.0.0 with the extra library (the first pack had none).
    fs_err::remove_dir_all(w.path("repo")).expect("reset repo");
    w.pack_dir("1.0.0", &repack, &[]);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    // 1.0.1: one byte in every 4 KiB of the library moves, like code after a recompile.
    let next = w.path("input-1.0.1");
    copy_tree(&repack, &next);
    let lib = next.join("peft_engine/_internal/libscatter.so");
    let mut bytes = fs_err::read(&lib).expect("read");
    for i in (0..bytes.len()).step_by(4096) {
        bytes[i] = bytes[i].wrapping_add(1);
    }
    fs_err::write(&lib, bytes).expect("write");
    w.pack_dir("1.0.1", &next, &[]);
    w.publish(&[]);
    assert_eq!(
        w.delta_kinds(),
        vec!["bsdiff".to_string()],
        "only the library changed, and bsdiff encodes it best"
    );
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "staged").expect("staged")["from"],
        "1.0.0"
    );
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_installed_equals(&ready_dir(&events(&out)), &next);
}
