//! Crashes at every step of an install and an update. A debug build of
//! `peft-bootstrap` aborts at a named step when `PEFT_FAILPOINT` names it
//! (`bootstrapper/src/failpoint.rs`), as if killed there; 100 real `kill -9` land at
//! random moments. After each crash the cache must hold a complete old or new
//! install and nothing that looks like one but is not; the next `ensure` finishes the
//! job, and `verify` passes.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use peft_e2e::server::Server;
use peft_e2e::wire::Event;
use peft_e2e::{MIB, World, assert_installed_equals, copy_tree, exit, noise, stderr, typed_events};

/// The steps of a fresh install, in the order they are reached. `before-rename:n`
/// is the n-th atomic file written: the accepted serial (`state.json`), the
/// install's record, then `current.json`.
const INSTALL_POINTS: &[&str] = &[
    "download-bytes:1",
    "download-bytes:1500000",
    "unpack-files:1",
    "unpack-files:4",
    "before-sync",
    "after-sync",
    "before-rename:1",
    "before-rename:2",
    "before-commit",
    "after-commit",
    "before-rename:3",
    "after-pointer",
];

/// The steps of `update` staging a delta: the download, the patched files, the
/// commit and the `pending.json` written for the next `ensure`.
const UPDATE_POINTS: &[&str] = &[
    "download-bytes:1",
    "unpack-files:1",
    "unpack-files:3",
    "before-sync",
    "after-sync",
    "before-rename:1",
    "before-rename:2",
    "before-commit",
    "after-commit",
    "before-rename:3",
];

/// The steps of the `ensure` that switches to a staged update.
const SWITCH_POINTS: &[&str] = &["before-rename:1", "after-pointer"];

/// Runs `cmd` with the crash point armed; asserts it died there.
fn crash(w: &World, cmd: &str, url: &str, cache: &str, point: &str) {
    let out = w
        .command(cmd, url, cache, &[])
        .env("PEFT_FAILPOINT", point)
        .output()
        .expect("run peft-bootstrap");
    let name = point.split(':').next().unwrap_or(point);
    assert!(
        stderr(&out).contains(&format!("failpoint {name} reached")),
        "{cmd} never reached {point} (exit {:?}): {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(out.status.signal(), Some(6), "{cmd} at {point}: aborted");
}

/// What a crash may leave: every folder under `versions/` is a complete install
/// with its record, `current.json` (if any) names one of them, and `verify` passes
/// on it.
fn assert_sound(w: &World, cache: &str, context: &str) {
    let root = w.path(cache);
    if let Ok(rd) = fs_err::read_dir(root.join("versions")) {
        for e in rd.flatten() {
            assert!(
                e.path().join(".peft-install.json").is_file(),
                "{context}: {} is in versions/ without its record",
                e.path().display()
            );
        }
    }
    if root.join("current.json").exists() {
        let v = w.cached(&["verify"], cache);
        assert_eq!(exit(&v), 0, "{context}: verify: {}", stderr(&v));
    }
}

/// The cache holds no leftovers of interrupted runs.
fn assert_clean(w: &World, cache: &str, context: &str) {
    let root = w.path(cache);
    let staging: Vec<_> = fs_err::read_dir(root.join("staging"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "{context}: staging left: {staging:?}");
    let temporaries: Vec<_> = fs_err::read_dir(&root)
        .expect("ls cache")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(
        temporaries.is_empty(),
        "{context}: temporaries left: {temporaries:?}"
    );
}

/// `ensure` succeeds, with `version`'s exact tree, and `verify` passes.
fn assert_ensures(w: &World, url: &str, cache: &str, version: &str, context: &str) -> Output {
    let out = w.run("ensure", url, cache, &[]);
    assert_eq!(exit(&out), 0, "{context}: ensure: {}", stderr(&out));
    let (got_version, dir) = typed_events(&out)
        .into_iter()
        .find_map(|e| match e {
            Event::Ready { version, dir, .. } => Some((version, dir)),
            _ => None,
        })
        .expect("a ready event");
    assert_eq!(got_version, version, "{context}");
    assert_installed_equals(Path::new(&dir), &w.path(&format!("input-{version}")));
    let v = w.cached(&["verify"], cache);
    assert_eq!(exit(&v), 0, "{context}: verify: {}", stderr(&v));
    out
}

#[test]
fn a_crash_at_every_step_of_a_fresh_install_leaves_nothing_broken() {
    let w = World::new();
    w.pack("1.0.0", 1, 3 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let url = server.url();
    for (i, point) in INSTALL_POINTS.iter().enumerate() {
        let cache = format!("cache-{i}");
        crash(&w, "ensure", &url, &cache, point);
        assert_sound(&w, &cache, point);
        assert_ensures(&w, &url, &cache, "1.0.0", point);
        assert_clean(&w, &cache, point);
    }
}

/// 1.0.1: the same tree with a changed module, a new one and 64 KiB of the big
/// library rewritten, published with a delta from 1.0.0.
fn publish_next(w: &World) {
    let (from, to) = (w.path("input-1.0.0"), w.path("input-1.0.1"));
    copy_tree(&from, &to);
    fs_err::write(to.join("peft_engine/_internal/pkg/__init__.py"), "V = 2\n").expect("write");
    fs_err::write(to.join("peft_engine/_internal/pkg/added.py"), "A = 1\n").expect("write");
    let lib = to.join("peft_engine/_internal/libbig.so");
    let mut bytes = fs_err::read(&lib).expect("read");
    bytes[4096..4096 + 65536].copy_from_slice(&noise(7, 65536));
    fs_err::write(&lib, bytes).expect("write");
    w.pack_dir("1.0.1", &to, &[]);
    w.publish(&[]);
}

/// A copy of the cache at `from` (modes and hard links kept).
fn clone_cache(w: &World, from: &str, to: &str) {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(w.path(from))
        .arg(w.path(to))
        .status()
        .expect("cp")
        .success();
    assert!(ok, "cp -a {from} {to}");
}

#[test]
fn a_crash_at_every_step_of_an_update_keeps_the_old_backend_or_gives_the_new_one() {
    let w = World::new();
    w.pack("1.0.0", 1, 3 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let url = server.url();
    assert_ensures(&w, &url, "base", "1.0.0", "the first install");
    publish_next(&w);
    for (i, point) in UPDATE_POINTS.iter().enumerate() {
        let cache = format!("update-{i}");
        clone_cache(&w, "base", &cache);
        let context = format!("update at {point}");
        crash(&w, "update", &url, &cache, point);
        assert_sound(&w, &cache, &context);
        // The old backend still answers from the cache, whatever was staged.
        assert_ensures(&w, &url, &cache, "1.0.0", &context);
        let out = w.run("update", &url, &cache, &[]);
        assert_eq!(exit(&out), 0, "{context}: update: {}", stderr(&out));
        assert_ensures(&w, &url, &cache, "1.0.1", &context);
        assert_clean(&w, &cache, &context);
    }
    let staged = "staged";
    clone_cache(&w, "base", staged);
    let out = w.run("update", &url, staged, &[]);
    assert_eq!(exit(&out), 0, "update: {}", stderr(&out));
    for (i, point) in SWITCH_POINTS.iter().enumerate() {
        let cache = format!("switch-{i}");
        clone_cache(&w, staged, &cache);
        let context = format!("the switching ensure at {point}");
        crash(&w, "ensure", &url, &cache, point);
        assert_sound(&w, &cache, &context);
        assert_ensures(&w, &url, &cache, "1.0.1", &context);
        assert_clean(&w, &cache, &context);
    }
}

/// A small deterministic generator for the kill moments (xorshift64*).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Removes what a finished install left, so the next run installs from scratch
/// (staging leftovers of earlier kills stay, for the next run to clean).
fn forget_install(cache: &Path) {
    let _ = fs_err::remove_file(cache.join("current.json"));
    let _ = fs_err::remove_dir_all(cache.join("versions"));
    let _ = fs_err::remove_dir_all(cache.join("downloads"));
}

#[test]
fn a_hundred_kill_9_at_random_moments_never_leave_a_broken_install() {
    let w = World::new();
    w.pack("1.0.0", 3, 24 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let url = server.url();
    // How long an uninterrupted install takes here: the kills spread over it.
    let start = Instant::now();
    assert_ensures(&w, &url, "timing", "1.0.0", "the timed install");
    let mut span = start.elapsed().as_micros().max(1000) as u64;
    let cache = "cache";
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let (mut interrupted, mut finished) = (0, 0);
    for i in 0..100 {
        let delay = Duration::from_micros(next(&mut seed) % span);
        let mut child = w
            .command("ensure", &url, cache, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        // The window follows the machine's speed: it shrinks after a kill that came
        // too late and grows after one that interrupted.
        if child.try_wait().expect("poll").is_none() {
            interrupted += 1;
            span = span * 21 / 20;
        } else {
            span = span * 9 / 10;
        }
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let context = format!("kill {i} after {delay:?}");
        assert_sound(&w, cache, &context);
        if w.path(cache).join("current.json").exists() {
            finished += 1;
            forget_install(&w.path(cache));
        }
    }
    eprintln!(
        "{interrupted} of 100 kills interrupted a running install; {finished} installs finished"
    );
    // A run after a kill resumes the download, so it is shorter than the timed one
    // and some kills come too late; most must still land mid-install.
    assert!(
        interrupted >= 30,
        "only {interrupted} of 100 kills landed while the install ran; the test proves little"
    );
    assert_ensures(&w, &url, cache, "1.0.0", "after 100 kills");
    assert_clean(&w, cache, "after 100 kills");
}
