//! The cache lock under real processes: a lock left by a killed process never
//! blocks, and three `ensure`s started together download the archive once and all
//! answer with the same install.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use peft_e2e::server::Server;
use peft_e2e::{MIB, World, assert_installed_equals, event, events, exit, ready_dir, stderr};

/// Spawns `ensure` with a short read timeout, its output piped.
fn spawn_ensure(w: &World, server: &Server, cache: &str) -> Child {
    w.command("ensure", &server.url(), cache, &[])
        .env("PEFT_READ_TIMEOUT", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits until the server has sent at least `n` bytes of `path`.
fn wait_for_bytes(server: &Server, path: &str, n: u64) {
    let start = Instant::now();
    while server
        .requests(path)
        .iter()
        .map(|l| l.body_bytes)
        .sum::<u64>()
        < n
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the download of {path} never reached {n} bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn waited(evs: &[serde_json::Value]) -> bool {
    evs.iter().any(|e| {
        e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("waiting for another")
    })
}

#[test]
fn a_lock_left_by_a_killed_process_does_not_block() {
    let w = World::new();
    let input = w.pack("1.0.0", 41, 4 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.stall_after = Some(MIB as u64));
    let mut holder = spawn_ensure(&w, &server, "cache");
    let archive = w.archive_path();
    wait_for_bytes(&server, &archive, MIB as u64);
    let pid = holder.id();
    let lock = fs_err::read_to_string(w.path("cache/lock")).expect("the lock file");
    assert_eq!(
        lock.trim(),
        format!("pid {pid}"),
        "the holder wrote its pid"
    );
    holder.kill().expect("kill -9");
    let _ = holder.wait();
    server.faults(|f| f.stall_after = None);
    // The file still names the dead holder; the OS lock died with it.
    assert!(w.path("cache/lock").is_file());
    let start = Instant::now();
    let out = w.run("ensure", &server.url(), "cache", &["--lock-timeout", "1"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert!(!waited(&evs), "a dead holder is not waited for: {evs:?}");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_installed_equals(&ready_dir(&evs), &input);
}

#[test]
fn three_concurrent_ensures_download_the_archive_once_and_agree() {
    let w = World::new();
    let input = w.pack("1.0.0", 42, 6 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    // The first download stalls, so the other two certainly wait for the lock.
    server.faults(|f| f.stall_after = Some(MIB as u64));
    let children: Vec<Child> = (0..3).map(|_| spawn_ensure(&w, &server, "cache")).collect();
    let archive = w.archive_path();
    wait_for_bytes(&server, &archive, MIB as u64);
    std::thread::sleep(Duration::from_millis(800));
    server.faults(|f| f.stall_after = None);
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for o in &outs {
        assert_eq!(exit(o), 0, "{}", stderr(o));
    }
    let evs: Vec<_> = outs.iter().map(events).collect();
    let dirs: Vec<_> = evs.iter().map(|e| ready_dir(e)).collect();
    assert!(dirs.iter().all(|d| *d == dirs[0]), "{dirs:?}");
    assert_installed_equals(&dirs[0], &input);
    let sources: Vec<String> = evs
        .iter()
        .map(|e| event(e, "ready").expect("ready")["source"].to_string())
        .collect();
    assert_eq!(
        sources.iter().filter(|s| s.contains("network")).count(),
        1,
        "one installed, the others found it: {sources:?}"
    );
    assert!(evs.iter().filter(|e| waited(e)).count() >= 2, "two waited");
    let requests = server.requests(&archive);
    let size = fs_err::metadata(w.repo().join(&archive))
        .expect("archive")
        .len();
    assert_eq!(
        requests.iter().filter(|l| l.range_start.is_none()).count(),
        1,
        "one download of the archive (then its resumption): {requests:?}"
    );
    assert_eq!(
        requests.iter().map(|l| l.body_bytes).sum::<u64>(),
        size,
        "every byte of the archive crossed the network once"
    );
}
