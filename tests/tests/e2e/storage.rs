//! Local storage faults with their exact documented behaviour (docs/BOOTSTRAPPER.md,
//! "Storage faults"): a disk that fills up during the download or during the
//! extraction, a cache that cannot be written, symbolic links in and as the cache.
//! Each is exit 6 with a message naming the path and a hint, and the installed
//! backend stays current and verifying. Mounting needs root: without it these
//! tests print why and skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use peft_e2e::server::Server;
use peft_e2e::{
    MIB, World, event, events, exit, ready_dir, running_as_root, sample_bundle, stderr,
};
use serde_json::Value;

/// Unmounts when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `mount args... path`; `None` (with the reason printed) when that is not
/// allowed here.
fn mount(path: &Path, args: &[&str]) -> Option<Mounted> {
    fs_err::create_dir_all(path).expect("mkdir");
    let ok = Command::new("mount")
        .args(args)
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !peft_e2e::nginx::required() || !running_as_root(),
            "root could not mount {args:?} on {}",
            path.display()
        );
        eprintln!("skipping: cannot mount {args:?} here (not root?)");
        return None;
    }
    Some(Mounted(path.to_path_buf()))
}

/// Writes zeros into `path` until the disk is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = fs_err::File::create(path).expect("create filler");
    let chunk = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as u64,
        }
    }
    let _ = f.flush();
    n
}

/// 1.0.0 installed (current) in the cache `small` on a tmpfs of `size`, and 1.0.1
/// (a 24 MiB library, full archive only) published; `None` when mounting is not allowed.
fn old_installed_new_published(w: &World, server: &Server, size: &str) -> Option<Mounted> {
    w.pack("1.0.0", 31, MIB);
    w.publish(&[]);
    let guard = mount(
        &w.path("small"),
        &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
    )?;
    let out = w.run("ensure", &server.url(), "small", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let big = w.path("input-1.0.1");
    sample_bundle(&big, 32, 24 * MIB);
    w.pack_dir("1.0.1", &big, &["--deltas", "0"]);
    w.publish(&[]);
    Some(guard)
}

/// The error event of a run that must have failed with exit 6 naming `needle`.
/// Its `reason` must be `reason` (`disk_full`, `permission`, `storage`).
fn storage_error(out: &Output, needle: &str, reason: &str) -> Value {
    assert_eq!(exit(out), 6, "{}", stderr(out));
    let err = event(&events(out), "error").cloned().expect("error event");
    assert_eq!(err["reason"], reason, "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{msg:?} should name {needle:?}");
    assert_eq!(err["code"], "storage", "{err}");
    err
}

/// The old backend is still current, and verifies.
fn old_backend_stays(w: &World, cache: &str) {
    let st = w.cached(&["status", "--json"], cache);
    let st: Value = serde_json::from_slice(&st.stdout).expect("status json");
    assert_eq!(st["current"]["version"], "1.0.0", "{st}");
    let v = w.cached(&["verify"], cache);
    assert_eq!(exit(&v), 0, "{}", stderr(&v));
    let staging = fs_err::read_dir(w.path(cache).join("staging"))
        .expect("ls")
        .count();
    assert_eq!(staging, 0, "the staging space is reclaimed");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs_err::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn disk_full_during_the_download_is_exit_6_keeps_the_partial_for_resume_and_the_old_backend() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let Some(_tmpfs) = old_installed_new_published(&w, &server, "160m") else {
        return;
    };
    // The space check passes (24 MiB archive + 24 MiB unpacked + 64 MiB spare fit);
    // the download stalls after 4 MiB, and then the disk is filled.
    server.faults(|f| f.stall_after = Some(4 * MIB as u64));
    let child = w
        .command("update", &server.url(), "small", &[])
        .env("PEFT_READ_TIMEOUT", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let archive = w.archive_path();
    let start = Instant::now();
    while server
        .requests(&archive)
        .iter()
        .map(|l| l.body_bytes)
        .sum::<u64>()
        < 4 * MIB as u64
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the download never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let filled = fill(&w.path("small/filler"));
    server.faults(|f| f.stall_after = None);
    let out = child.wait_with_output().expect("wait");
    let err = storage_error(&out, "No space left on device", "disk_full");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains(".partial"), "names the download: {msg}");
    let hint = err["hint"].as_str().unwrap_or_default();
    assert!(
        hint.contains("free space") && hint.contains("PEFT_CACHE_DIR"),
        "{hint}"
    );
    eprintln!("filled {filled} bytes; {msg}");
    old_backend_stays(&w, "small");
    let kept = entries(&w.path("small/downloads"));
    assert!(
        kept.len() == 1 && kept[0].ends_with(".partial"),
        "kept for resume: {kept:?}"
    );
    // With the space back, the next run resumes where this one stopped.
    fs_err::remove_file(w.path("small/filler")).expect("free");
    let before = server.requests(&archive).len();
    let out = w.run("update", &server.url(), "small", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let resumed = &server.requests(&archive)[before..];
    assert!(resumed[0].range_start.is_some_and(|n| n > 0), "{resumed:?}");
}

#[test]
fn disk_full_during_the_extraction_is_exit_6_keeps_the_archive_and_the_old_backend() {
    let w = World::new();
    let server = Server::start(&w.repo());
    let Some(_tmpfs) = old_installed_new_published(&w, &server, "160m") else {
        return;
    };
    // A complete archive from an earlier run: no download, the unpack starts at once.
    let rel = w.archive_path();
    let hex = rel.rsplit('/').next().expect("hex").to_string();
    fs_err::copy(w.repo().join(&rel), w.path("small/downloads").join(&hex)).expect("seed");
    let mut child = w
        .command("update", &server.url(), "small", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The space check has passed once the staging folder exists: hold the process
    // there, fill the disk, and let it go on.
    let start = Instant::now();
    while entries(&w.path("small/staging")).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no staging folder"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "it ended before staging"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("stop")
            .success()
    );
    fill(&w.path("small/filler"));
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .expect("cont")
            .success()
    );
    let out = child.wait_with_output().expect("wait");
    let err = storage_error(&out, "No space left on device", "disk_full");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("/staging/"),
        "names the file being unpacked: {msg}"
    );
    old_backend_stays(&w, "small");
    assert_eq!(
        entries(&w.path("small/downloads")),
        vec![hex],
        "the archive is kept"
    );
    fs_err::remove_file(w.path("small/filler")).expect("free");
    let before = server.requests(&rel).len();
    let out = w.run("update", &server.url(), "small", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        server.requests(&rel).len(),
        before,
        "the kept archive is reused"
    );
}

#[test]
fn a_cache_this_user_cannot_write_is_exit_6_naming_it() {
    let w = World::new();
    w.pack("1.0.0", 33, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    if !running_as_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipping: needs root and setpriv to run as another user");
        return;
    }
    // A folder owned by `nobody` with mode 0500, used by `nobody`.
    let cache = w.path("mine");
    fs_err::create_dir_all(&cache).expect("mkdir");
    for (p, mode) in [(w.dir.path(), "0755"), (cache.as_path(), "0500")] {
        Command::new("chmod")
            .arg(mode)
            .arg(p)
            .status()
            .expect("chmod");
    }
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(w.path("keys"))
        .status()
        .expect("chmod");
    Command::new("chown")
        .arg("65534:65534")
        .arg(&cache)
        .status()
        .expect("chown");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(peft_e2e::bin_dir().join("peft-bootstrap"));
    for v in peft_e2e::bootstrapper_vars() {
        cmd.env_remove(v);
    }
    let out = cmd
        .args(["ensure", "--json", "--manifest-url", &server.url()])
        .args([
            "--trusted-key",
            &w.s("keys/release.pub"),
            "--cache-dir",
            &w.s("mine"),
        ])
        .output()
        .expect("run as nobody");
    let err = storage_error(&out, "Permission denied", "permission");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&w.s("mine")),
        "{err}"
    );
    let hint = err["hint"].as_str().unwrap_or_default();
    assert!(
        hint.contains("writable") && hint.contains("PEFT_CACHE_DIR"),
        "{hint}"
    );
    assert!(entries(&cache).is_empty());
}

#[test]
fn a_read_only_cache_still_serves_its_backend_and_every_writer_is_exit_6() {
    let w = World::new();
    w.pack("1.0.0", 34, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let dir = ready_dir(&events(&out));
    let cache = w.path("cache");
    let Some(_bind) = mount(&cache, &["--bind", &w.s("cache")]) else {
        return;
    };
    let Some(_ro) = mount(&cache, &["-o", "remount,bind,ro"]) else {
        return;
    };
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "reading needs no write: {}", stderr(&out));
    assert_eq!(ready_dir(&events(&out)), dir);
    fs_err::write(
        w.path("input-1.0.0/peft_engine/_internal/pkg/new.py"),
        "X = 1\n",
    )
    .expect("w");
    w.pack_dir("1.0.1", &w.path("input-1.0.0"), &[]);
    w.publish(&[]);
    let out = w.run("update", &server.url(), "cache", &[]);
    let err = storage_error(&out, "Read-only file system", "permission");
    assert!(
        err["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("writable"),
        "{err}"
    );
    let out = w.run("verify", &server.url(), "cache", &["--repair"]);
    storage_error(&out, "Read-only file system", "permission");
}

#[cfg(unix)]
#[test]
fn a_cache_folder_that_is_a_link_is_followed_and_links_inside_it_are_refused() {
    let w = World::new();
    let input = w.pack("1.0.0", 35, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    // The cache folder itself: followed (e.g. moved to a larger disk).
    fs_err::create_dir_all(w.path("big-disk/cache")).expect("mkdir");
    std::os::unix::fs::symlink(w.path("big-disk/cache"), w.path("cache")).expect("link");
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(
        w.path("big-disk/cache/versions/1.0.0-linux-x86_64-cpu/.peft-install.json")
            .is_file()
    );
    peft_e2e::assert_installed_equals(&ready_dir(&events(&out)), &input);
    // Links planted inside a cache: refused, and nothing is written through them.
    let outside = w.path("outside");
    fs_err::create_dir_all(&outside).expect("mkdir");
    fs_err::write(outside.join("precious"), "keep me").expect("write");
    let rel = w.archive_path();
    let partial = format!("downloads/{}.partial", rel.rsplit('/').next().expect("hex"));
    let cases = [
        ("staging", outside.clone()),
        ("versions/1.0.0-linux-x86_64-cpu", outside.clone()),
        (partial.as_str(), outside.join("precious")),
        ("lock", outside.join("precious")),
    ];
    for (i, (planted, target)) in cases.iter().enumerate() {
        let cache = format!("planted-{i}");
        let p = w.path(&cache).join(planted);
        fs_err::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &p).expect("plant");
        let out = w.run("ensure", &server.url(), &cache, &[]);
        let err = storage_error(&out, planted, "storage");
        assert!(
            err["message"]
                .as_str()
                .unwrap_or_default()
                .contains("symbolic link"),
            "{err}"
        );
        assert_eq!(entries(&outside), vec!["precious".to_string()], "{planted}");
        assert_eq!(
            fs_err::read_to_string(outside.join("precious")).expect("read"),
            "keep me"
        );
    }
}
