//! Transport faults end to end: the real `peft-bootstrap ensure --json` against the
//! loopback server misbehaving one way at a time (short bodies, endless bodies, a
//! drip, 5xx with `Retry-After`, 404, wrong `Content-Range`, redirects). Each test
//! checks the exit code, the message, what is on disk and the server's request log.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use peft_e2e::server::{Logged, Server};
use peft_e2e::{
    MIB, World, assert_error, assert_installed_equals, event, events, exit, ready_dir, stderr,
};

/// A world with one packed and published release of `big` bytes of noise.
fn world(seed: u64, big: usize) -> (World, std::path::PathBuf) {
    let w = World::new();
    let input = w.pack("1.0.0", seed, big);
    w.publish(&[]);
    (w, input)
}

/// Waits for `child`, killing it and failing the test after `limit`.
fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn spawn(mut c: std::process::Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peft-bootstrap")
}

/// The files left in the cache's `downloads/`.
fn downloads(w: &World, cache: &str) -> Vec<(String, u64)> {
    fs_err::read_dir(w.path(cache).join("downloads"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), len)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ranges(log: &[Logged]) -> Vec<Option<u64>> {
    log.iter().map(|l| l.range_start).collect()
}

#[test]
fn a_truncated_body_is_resumed_or_refused() {
    let (w, input) = world(31, 3 * MIB);
    let archive = w.archive_path();
    let server = Server::start(&w.repo());
    let cut = MIB as u64;
    // A damaged copy: every answer stops at byte 1 MiB of the file, whatever
    // Content-Length said.
    server.faults(|f| {
        f.target = Some(archive.clone());
        f.truncate_at = Some(cut);
    });
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let msg = assert_error(&out, 3, "gave up after 5 failed attempts");
    assert!(msg.contains(&format!("byte {cut}")), "{msg}");
    assert!(w.nothing_installed("cache"));
    let log = server.requests(&archive);
    assert_eq!(log[0].range_start, None, "{log:?}");
    assert_eq!(log[0].body_bytes, cut);
    assert!(
        log.len() == 6 && log[1..].iter().all(|l| l.range_start == Some(cut)),
        "one full request, then five resumes at the cut: {:?}",
        ranges(&log)
    );
    let partial: Vec<_> = downloads(&w, "cache")
        .into_iter()
        .filter(|(n, _)| n.ends_with(".partial"))
        .collect();
    assert_eq!(partial.len(), 1, "{partial:?}");
    assert_eq!(partial[0].1, cut, "the bytes that came are kept");

    // The repository repaired: the next run resumes at the cut.
    server.faults(|f| f.truncate_at = None);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    let last = server.requests(&archive).pop().expect("request");
    assert_eq!((last.range_start, last.status), (Some(cut), 206));
}

#[test]
fn an_endless_body_is_capped_at_the_signed_size() {
    let (w, _) = world(32, MIB);
    let archive = w.archive_path();
    let size = fs_err::metadata(w.repo().join(&archive))
        .expect("archive")
        .len();
    let server = Server::start(&w.repo());
    server.faults(|f| {
        f.target = Some(archive.clone());
        f.endless = true;
    });
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let msg = assert_error(&out, 4, "more than the signed size");
    assert!(msg.contains(&size.to_string()), "{msg}");
    assert!(w.nothing_installed("cache"));
    assert_eq!(downloads(&w, "cache"), vec![], "the bad bytes are not kept");
    let log = server.requests(&archive);
    assert_eq!(log.len(), 1, "wrong bytes are not asked for again");
    // The client hung up: socket buffers aside, the stream stopped near the size.
    assert!(
        log[0].body_bytes < size + 32 * MIB as u64,
        "sent {} bytes",
        log[0].body_bytes
    );
}

#[test]
fn a_slow_drip_hits_the_deadline_and_releases_the_lock() {
    let (w, input) = world(33, MIB);
    let archive = w.archive_path();
    let drip = Server::start(&w.repo());
    drip.faults(|f| {
        f.target = Some(archive.clone());
        f.drip = Some(Duration::from_millis(200));
    });
    // 5 bytes a second against a floor of 1 KiB a second.
    let mut slow = w.command("ensure", &drip.url(), "cache", &[]);
    slow.env("PEFT_MIN_RATE_BYTES", "1024")
        .env("PEFT_MIN_RATE_SECS", "1");
    let first = spawn(slow);
    drip.await_request(&archive, Duration::from_secs(20));
    // The first instance holds the lock while the archive drips; a second one,
    // against a good server, waits for it.
    let good = Server::start(&w.repo());
    let mut c = w.command("ensure", &good.url(), "cache", &[]);
    c.env("PEFT_LOCK_TIMEOUT", "60");
    let second = spawn(c);
    let a = finish_within(first, Duration::from_secs(30), "the dripping download");
    let msg = assert_error(&a, 3, "below the minimum of 1024 bytes");
    assert!(msg.contains("PEFT_MIN_RATE_BYTES"), "{msg}");
    let log = drip.requests(&archive);
    assert_eq!(log.len(), 5, "five slow attempts: {:?}", ranges(&log));
    assert!(
        log[1..].iter().all(|l| l.range_start.is_some()),
        "each slow attempt resumes where the last stopped: {:?}",
        ranges(&log)
    );
    let b = finish_within(second, Duration::from_secs(30), "the waiting ensure");
    assert_eq!(exit(&b), 0, "{}", stderr(&b));
    let eb = events(&b);
    assert!(
        eb.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("waiting for another")),
        "the second instance waited for the first: {eb:?}"
    );
    assert_installed_equals(&ready_dir(&eb), &input);
    let resumed = good.requests(&archive);
    assert!(
        resumed[0].range_start.is_some_and(|n| n > 0),
        "the dripped bytes were kept and resumed: {:?}",
        ranges(&resumed)
    );
}

#[test]
fn a_drip_just_above_the_minimum_rate_hits_the_total_deadline_and_releases_the_lock() {
    let (w, input) = world(42, MIB);
    let archive = w.archive_path();
    let drip = Server::start(&w.repo());
    drip.faults(|f| {
        f.target = Some(archive.clone());
        f.drip = Some(Duration::from_millis(50));
    });
    // About 20 bytes a second against a floor of 4 a second: never too slow, only
    // the deadline of 3 s (the size adds nothing) can stop it.
    let mut slow = w.command("ensure", &drip.url(), "cache", &[]);
    slow.env("PEFT_MIN_RATE_BYTES", "4")
        .env("PEFT_MIN_RATE_SECS", "1")
        .env("PEFT_DEADLINE_SECS", "3")
        .env("PEFT_DEADLINE_RATE_BYTES", "0");
    let first = spawn(slow);
    drip.await_request(&archive, Duration::from_secs(20));
    let good = Server::start(&w.repo());
    let mut c = w.command("ensure", &good.url(), "cache", &[]);
    c.env("PEFT_LOCK_TIMEOUT", "60");
    let second = spawn(c);
    let a = finish_within(first, Duration::from_secs(30), "the dripping download");
    let msg = assert_error(&a, 3, "did not finish within its deadline of 3 s");
    assert!(msg.contains("PEFT_DEADLINE_SECS"), "{msg}");
    assert!(msg.contains("kept for the next run"), "{msg}");
    let hint = event(&events(&a), "error").expect("error")["hint"].to_string();
    assert!(hint.contains("resume"), "{hint}");
    assert!(
        !msg.contains("below the minimum"),
        "the rate rule never fired: {msg}"
    );
    let log = drip.requests(&archive);
    assert_eq!(
        log.len(),
        1,
        "one attempt, cut by the deadline: {:?}",
        ranges(&log)
    );
    assert!(log[0].body_bytes > 4, "it kept dripping: {log:?}");
    let b = finish_within(second, Duration::from_secs(30), "the waiting ensure");
    assert_eq!(exit(&b), 0, "{}", stderr(&b));
    assert_installed_equals(&ready_dir(&events(&b)), &input);
    let resumed = good.requests(&archive);
    assert!(
        resumed[0].range_start.is_some_and(|n| n > 0),
        "the dripped bytes were kept and resumed: {:?}",
        ranges(&resumed)
    );
}

#[test]
fn server_errors_are_retried_with_backoff_then_fail_cleanly() {
    let (w, _) = world(34, MIB);
    let archive = w.archive_path();
    let server = Server::start(&w.repo());
    server.faults(|f| {
        f.target = Some(archive.clone());
        f.status = Some(500);
    });
    let mut c = w.command("ensure", &server.url(), "cache", &[]);
    c.env("PEFT_RETRY_BASE_MS", "100");
    let out = c.output().expect("run");
    let msg = assert_error(&out, 3, "gave up after 5 failed attempts: HTTP 500");
    assert!(msg.contains(&archive), "names the file: {msg}");
    assert_eq!(
        event(&events(&out), "error").expect("error")["code"],
        "network"
    );
    assert!(w.nothing_installed("cache"));
    let log = server.requests(&archive);
    assert_eq!(log.len(), 5, "five attempts");
    assert!(log.iter().all(|l| l.status == 500));
    // Waits of 200, 400, 800 and 1600 ms: a sleep is never shorter, so only the lower
    // bound is checked.
    for (i, pair) in log.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let least = Duration::from_millis(180 << i);
        assert!(
            gap >= least,
            "gap {i} is {gap:?}, at least {least:?} expected"
        );
    }
}

#[test]
fn retry_after_is_honoured() {
    let (w, _) = world(35, MIB);
    let server = Server::start(&w.repo());
    server.faults(|f| {
        f.fail_first = 2;
        f.retry_after = Some(1);
    });
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let log = server.requests("channels/stable/manifest.json");
    assert_eq!(
        log.iter().map(|l| l.status).collect::<Vec<_>>(),
        vec![503, 503, 200]
    );
    // The backoff base is 20 ms in tests; the server asked for a second.
    for pair in log.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    }
}

#[test]
fn a_404_is_not_retried() {
    let (w, _) = world(36, MIB);
    let archive = w.archive_path();
    let server = Server::start(&w.repo());
    server.faults(|f| f.hide_prefix = Some(archive.clone()));
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let msg = assert_error(&out, 3, "HTTP 404");
    assert!(msg.contains(&archive), "names the file: {msg}");
    assert!(w.nothing_installed("cache"));
    assert_eq!(server.requests(&archive).len(), 1, "asked once");
}

#[test]
fn a_wrong_content_range_is_refused_or_restarted() {
    let (w, input) = world(37, 2 * MIB);
    let archive = w.archive_path();
    let have = MIB;
    w.seed_partial("cache", have);
    let server = Server::start(&w.repo());
    // Asked for bytes=1048576-, the server answers with a range 4 KiB earlier.
    server.faults(|f| {
        f.target = Some(archive.clone());
        f.range_shift = Some(4096);
    });
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    let log = server.requests(&archive);
    assert_eq!(
        log.iter()
            .map(|l| (l.range_start, l.status))
            .collect::<Vec<_>>(),
        vec![(Some(have as u64), 206), (None, 200)],
        "the shifted range is dropped and the file asked for whole"
    );
}

#[test]
fn a_redirect_loop_is_refused() {
    let (w, _) = world(38, MIB);
    let manifest = "channels/stable/manifest.json";
    let looping = Server::start(&w.repo());
    looping.faults(|f| {
        f.redirects = vec![
            (manifest.into(), "/loop/a".into()),
            ("loop/a".into(), "/loop/b".into()),
            ("loop/b".into(), "/loop/a".into()),
        ]
    });
    let out = w.run("ensure", &looping.url(), "cache", &[]);
    let msg = assert_error(&out, 3, "redirect loop");
    assert!(msg.contains("/loop/a"), "{msg}");
    let paths: Vec<String> = looping.log().into_iter().map(|l| l.path).collect();
    assert_eq!(paths, [manifest, "loop/a", "loop/b"], "refused at once");

    let to_itself = Server::start(&w.repo());
    to_itself.faults(|f| f.redirects = vec![(manifest.into(), format!("/{manifest}"))]);
    let out = w.run("ensure", &to_itself.url(), "cache", &[]);
    assert_error(&out, 3, "redirect loop");
    assert_eq!(to_itself.log().len(), 1);
    assert!(w.nothing_installed("cache"));
}

#[test]
fn a_redirect_to_another_scheme_is_refused() {
    // The repository itself, as file://: following it would install.
    let (w, _) = world(39, MIB);
    let manifest = "channels/stable/manifest.json";
    let server = Server::start(&w.repo());
    let target = format!("file://{}/{manifest}", w.repo().display());
    server.faults(|f| f.redirects = vec![(manifest.into(), target)]);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let msg = assert_error(&out, 3, "was not followed");
    assert!(msg.contains("to file://"), "names the target: {msg}");
    assert_eq!(server.log().len(), 1, "not asked again");
    assert!(w.nothing_installed("cache"));
}

#[test]
fn a_redirect_to_another_server_is_followed() {
    let (w, input) = world(40, MIB);
    let archive = w.archive_path();
    let cdn = Server::start(&w.repo());
    let primary = Server::start(&w.repo());
    let location = format!("{}{archive}", cdn.url());
    primary.faults(|f| f.redirects = vec![(archive.clone(), location)]);
    let out = w.run("ensure", &primary.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    assert_eq!(primary.requests(&archive)[0].status, 302);
    assert_eq!(cdn.requests(&archive).len(), 1);
    assert_eq!(cdn.blob_bytes(), cdn.requests(&archive)[0].body_bytes);
}

#[test]
fn a_server_that_cuts_and_ignores_range_is_given_up_on() {
    // Every answer restarts from zero and stops at 512 KiB: no attempt gets further.
    let (w, _) = world(41, 2 * MIB);
    let archive = w.archive_path();
    let server = Server::start(&w.repo());
    server.faults(|f| {
        f.cut_after = Some(512 << 10);
        f.ignore_range = true;
    });
    let child = spawn(w.command("ensure", &server.url(), "cache", &[]));
    let out = finish_within(child, Duration::from_secs(30), "the restarting download");
    assert_error(&out, 3, "gave up after 5 failed attempts");
    assert!(w.nothing_installed("cache"));
    let log = server.requests(&archive);
    assert_eq!(log.len(), 6, "one attempt with progress, five without");
    assert!(
        log[1..]
            .iter()
            .all(|l| l.range_start == Some(512 << 10) && l.status == 200)
    );
}
