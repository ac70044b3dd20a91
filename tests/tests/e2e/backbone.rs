//! The backbone end to end: peft-release → static HTTP server → peft-bootstrap.
//!
//! Every test runs the real binaries against a real HTTP server on loopback (an
//! in-process one that can misbehave, or Debian's nginx) with real minisign keys.

use std::process::Stdio;
use std::time::{Duration, Instant};

use peft_e2e::nginx::Nginx;
use peft_e2e::server::Server;
use peft_e2e::{MIB, World, assert_installed_equals, event, events, exit, ready_dir, stderr};

#[test]
fn install_over_http_then_answer_from_cache_with_the_server_gone() {
    let w = World::new();
    let input = w.pack("1.0.0", 1, 5 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let url = format!("{}channels/stable/manifest.json", server.url());
    let out = w.run("ensure", &url, "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let names: Vec<&str> = evs.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names.first(), Some(&"hardware"));
    assert!(names.contains(&"selected") && names.contains(&"progress"));
    let ready = event(&evs, "ready").expect("ready");
    assert_eq!(ready["source"], "network");
    assert_eq!(ready["version"], "1.0.0");
    assert_eq!(ready["variant"], "linux-x86_64-cpu");
    let dir = ready_dir(&evs);
    assert_installed_equals(&dir, &input);
    // Repeated content ships once and installs as one file under two names.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let a = fs_err::metadata(dir.join("peft_engine/_internal/libalias.so.1")).expect("alias");
        let b = fs_err::metadata(dir.join("peft_engine/_internal/nvidia/lib/libalias.so.1"))
            .expect("lib");
        assert_eq!(a.ino(), b.ino(), "a hard link, not a second copy");
        assert!(
            !fs_err::symlink_metadata(dir.join("peft_engine/_internal/libalias.so.1"))
                .expect("meta")
                .file_type()
                .is_symlink()
        );
    }
    let m: serde_json::Value = serde_json::from_slice(
        &fs_err::read(w.path("repo/channels/stable/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let v = &m["releases"][0]["variants"][0];
    let archive = w.path(&format!(
        "repo/blobs/sha256/{}",
        v["archive"]["sha256"].as_str().expect("sha")
    ));
    let entries = zip::ZipArchive::new(fs_err::File::open(archive).expect("archive"))
        .expect("zip")
        .len() as u64;
    assert_eq!(
        entries + 2,
        v["index"]["files"].as_u64().expect("files"),
        "two repeated files are not stored twice"
    );
    // The executable runs.
    let exe = ready["executable"].as_str().expect("executable");
    let run = std::process::Command::new(exe)
        .arg("hi")
        .output()
        .expect("run entry");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "sample engine 1: hi"
    );
    // Downloads were cleaned up; nothing half-done is left behind.
    assert_eq!(
        fs_err::read_dir(w.path("cache/downloads"))
            .expect("ls")
            .count(),
        0
    );
    assert_eq!(
        fs_err::read_dir(w.path("cache/staging"))
            .expect("ls")
            .count(),
        0
    );

    drop(server);
    let start = Instant::now();
    let out = w.run("ensure", &url, "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert_eq!(event(&evs, "ready").expect("ready")["source"], "cache");
    assert!(
        event(&evs, "selected").is_none(),
        "a cached answer consults no manifest"
    );
    assert!(start.elapsed() < Duration::from_secs(5));

    // status and verify see the install.
    let st = w.cached(&["status", "--json"], "cache");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    assert_eq!(st["current"]["version"], "1.0.0");
    assert_eq!(st["channels"]["stable"]["serial"], 1);
    let v = w.cached(&["verify"], "cache");
    assert!(v.status.success(), "{}", stderr(&v));
    // A damaged file is found by verify (exit 4).
    fs_err::write(
        dir.join("peft_engine/_internal/pkg/__init__.py"),
        "tampered\n",
    )
    .expect("tamper");
    let v = w.cached(&["verify", "--json"], "cache");
    assert_eq!(exit(&v), 4);
    assert!(String::from_utf8_lossy(&v.stdout).contains("__init__.py"));
}

#[test]
fn install_from_nginx() {
    let w = World::new();
    let input = w.pack("2.1.0", 7, 3 * MIB);
    w.publish(&[]);
    let Some(nginx) = Nginx::start(&w.repo()) else {
        return;
    };
    let out = w.run("ensure", &nginx.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    assert!(
        nginx
            .access_log()
            .iter()
            .any(|l| l.contains("GET /blobs/sha256/"))
    );
}

#[test]
fn a_server_that_cuts_every_response_still_delivers_the_bundle() {
    let w = World::new();
    let input = w.pack("1.0.0", 2, 6 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.cut_after = Some(MIB as u64 + 12345));
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    let ranges: Vec<u64> = server
        .log()
        .iter()
        .filter(|l| l.path.starts_with("blobs/"))
        .filter_map(|l| l.range_start)
        .collect();
    assert!(ranges.len() >= 5, "resumed with Range requests: {ranges:?}");
    assert!(
        ranges.windows(2).all(|p| p[0] < p[1]),
        "each resume starts further on: {ranges:?}"
    );
}

#[test]
fn retries_on_5xx() {
    let w = World::new();
    w.pack("1.0.0", 3, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.fail_first = 3);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(server.log().iter().filter(|l| l.status == 503).count() == 3);
}

/// Starts an ensure against a server that stalls after `stall` bytes, kills it
/// once they were sent, and returns the partial download's size.
fn kill_mid_download(w: &World, server: &Server, stall: u64) -> u64 {
    server.faults(|f| f.stall_after = Some(stall));
    let mut child = w
        .command("ensure", &server.url(), "cache", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let partial = || {
        fs_err::read_dir(w.path("cache/downloads"))
            .ok()
            .and_then(|d| {
                d.flatten()
                    .find(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            })
            .and_then(|e| e.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0)
    };
    while partial() < stall {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the download never reached {stall} bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    server.faults(|f| f.stall_after = None);
    partial()
}

#[test]
fn a_killed_download_resumes_with_range() {
    let w = World::new();
    let input = w.pack("1.0.0", 4, 4 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let have = kill_mid_download(&w, &server, 2 * MIB as u64);
    assert!(have >= 2 * MIB as u64);
    assert!(w.nothing_installed("cache"));
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    let last = server
        .log()
        .into_iter()
        .rfind(|l| l.path.starts_with("blobs/") && l.body_bytes > 0)
        .expect("blob request");
    assert_eq!(
        last.range_start,
        Some(have),
        "resumed where the killed run stopped"
    );
    assert_eq!(last.status, 206);
}

#[test]
fn a_server_that_ignores_range_restarts_from_zero_and_never_appends() {
    let w = World::new();
    let input = w.pack("1.0.0", 5, 4 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    kill_mid_download(&w, &server, MIB as u64);
    server.faults(|f| f.ignore_range = true);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    let last = server
        .log()
        .into_iter()
        .rfind(|l| l.path.starts_with("blobs/") && l.body_bytes > 0)
        .expect("blob request");
    assert!(last.range_start.is_some() && last.status == 200, "{last:?}");
}

#[test]
fn mirrors_are_tried_when_the_primary_fails() {
    let w = World::new();
    let input = w.pack("1.0.0", 6, MIB);
    let mirror = Server::start(&w.repo());
    w.publish(&["--mirror", &mirror.url()]);
    let primary = Server::start(&w.repo());
    primary.faults(|f| f.hide_prefix = Some("blobs/".into()));
    let out = w.run("ensure", &primary.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    assert!(primary.log().iter().any(|l| l.status == 404));
    assert!(
        mirror.blob_bytes() > MIB as u64,
        "the mirror served the archive"
    );
}

#[test]
fn installs_from_a_file_url() {
    let w = World::new();
    let input = w.pack("1.0.0", 16, MIB);
    w.publish(&[]);
    let url = format!(
        "file://{}/channels/stable/manifest.json",
        w.repo().display()
    );
    let out = w.run("ensure", &url, "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
}

#[test]
fn two_instances_never_write_at_once() {
    let w = World::new();
    let input = w.pack("1.0.0", 17, 4 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.stall_after = Some(MIB as u64));
    let spawn = || {
        w.command("ensure", &server.url(), "cache", &[])
            .env("PEFT_READ_TIMEOUT", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let first = spawn();
    let start = Instant::now();
    while server.blob_bytes() < MIB as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first download never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first instance holds the lock and is stuck mid-download; the second must wait.
    let second = spawn();
    std::thread::sleep(Duration::from_millis(500));
    server.faults(|f| f.stall_after = None);
    let (a, b) = (
        first.wait_with_output().expect("first"),
        second.wait_with_output().expect("second"),
    );
    assert_eq!(
        (exit(&a), exit(&b)),
        (0, 0),
        "{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    let (ea, eb) = (events(&a), events(&b));
    assert_eq!(event(&ea, "ready").expect("ready")["source"], "network");
    assert_eq!(event(&eb, "ready").expect("ready")["source"], "cache");
    let waited = eb.iter().any(|e| {
        e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("waiting for another")
    });
    assert!(waited, "the second instance says it waits: {eb:?}");
    assert_eq!(ready_dir(&ea), ready_dir(&eb));
    assert_installed_equals(&ready_dir(&ea), &input);
    let archive = w.archive_size();
    let index_bytes: u64 = server
        .log()
        .iter()
        .filter(|l| l.path.starts_with("blobs/") && l.body_bytes < 100_000)
        .map(|l| l.body_bytes)
        .sum();
    assert_eq!(
        server.blob_bytes() - index_bytes,
        archive,
        "the archive crossed the network exactly once"
    );
}
