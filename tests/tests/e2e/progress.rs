//! Progress that tells the truth: a resumed download says where it resumed
//! (`resumed_from`), every retry is a `retry` event sent before its wait, copying
//! from an offline folder is phase `copy`, the terminal keeps a summary line and
//! says "resuming at", and Ctrl-C says the partial download is kept.

use std::io::Read;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use peft_e2e::server::Server;
use peft_e2e::{MIB, World, assert_installed_equals, events, exit, ready_dir, stderr};
use serde_json::Value;

/// The `progress` events of `phase`.
fn progress(evs: &[Value], phase: &str) -> Vec<Value> {
    evs.iter()
        .filter(|e| e["event"] == "progress" && e["phase"] == phase)
        .cloned()
        .collect()
}

/// The size of the partial download in `cache`, 0 when there is none.
fn partial_len(w: &World) -> u64 {
    fs_err::read_dir(w.path("cache/downloads"))
        .ok()
        .and_then(|d| {
            d.flatten()
                .find(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        })
        .and_then(|e| e.metadata().ok())
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn a_resumed_download_says_where_it_resumed() {
    let w = World::new();
    let input = w.pack("1.0.0", 7, 4 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let kept = 3 * MIB / 2;
    w.seed_partial("cache", kept);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let downloads = progress(&evs, "download");
    assert!(!downloads.is_empty(), "{evs:?}");
    for p in &downloads {
        assert_eq!(p["resumed_from"], kept as u64, "{p}");
        assert!(p["done"].as_u64() >= Some(kept as u64), "{p}");
    }
    // The first says so before any byte moved: done == resumed_from.
    assert_eq!(downloads[0]["done"], kept as u64);
    assert_installed_equals(&ready_dir(&evs), &input);
    // Phases that are not transfers carry no resumed_from.
    assert!(
        progress(&evs, "extract")
            .iter()
            .all(|p| p.get("resumed_from").is_none())
    );
}

#[test]
fn a_fresh_download_resumed_from_stays_zero_when_the_server_cuts_it() {
    let w = World::new();
    w.pack("1.0.0", 8, 3 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    // Bytes moved in this run, across its reconnections, all count as this run's.
    server.faults(|f| f.cut_after = Some(MIB as u64));
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let downloads = progress(&evs, "download");
    assert!(downloads.iter().all(|p| p["resumed_from"] == 0), "{evs:?}");
    assert!(downloads.len() >= 2, "{evs:?}");
    // Reconnecting after a cut that delivered bytes waits for nothing: no retry
    // event, the bar keeps moving.
    assert!(
        server
            .log()
            .iter()
            .filter(|l| l.range_start.is_some())
            .count()
            >= 2
    );
}

#[test]
fn a_server_that_refuses_connections_then_comes_back_gives_retry_events_first() {
    let w = World::new();
    let input = w.pack("1.0.0", 9, MIB);
    w.publish(&[]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/channels/stable/manifest.json");
    let child = w
        .command("ensure", &url, "cache", &[])
        .env("PEFT_RETRY_BASE_MS", "300")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Retries at about 0.6 s and 1.8 s; the server is back after 1 s.
    std::thread::sleep(Duration::from_millis(1000));
    let server = Server::start_on(&w.repo(), port);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let names: Vec<&str> = evs
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default())
        .collect();
    let first_retry = names.iter().position(|n| *n == "retry").expect("a retry");
    let ready = names.iter().position(|n| *n == "ready").expect("ready");
    assert!(first_retry < ready, "{names:?}");
    let r = &evs[first_retry];
    assert_eq!(r["attempt"], 2, "{r}");
    assert_eq!(r["max_attempts"], 5, "{r}");
    assert_eq!(r["reason"], "unreachable", "{r}");
    assert!(r["wait_ms"].as_u64().is_some_and(|ms| ms > 0), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&port.to_string()),
        "{r}"
    );
    assert!(!server.log().is_empty());
    assert_installed_equals(&ready_dir(&evs), &input);
}

#[test]
fn the_terminal_says_it_retries_at_once_and_keeps_a_summary_line() {
    let w = World::new();
    w.pack("1.0.0", 10, 2 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.fail_first = 1);
    let kept = MIB;
    w.seed_partial("cache", kept);
    // Without --json: the lines for people.
    let out = w.run_for_people("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("trying again in"), "{err}");
    assert!(err.contains("(attempt 2 of 5)"), "{err}");
    assert!(err.contains("resuming at 1.0 MB"), "{err}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("Downloaded "))
        .unwrap_or_else(|| panic!("no summary line: {err}"));
    assert!(summary.contains("/s"), "{summary}");
    assert!(summary.contains("resumed at 1.0 MB"), "{summary}");
}

/// The last steps of an install (linking the files whose content the archive
/// carries under another name, empty ones included) report the phase complete
/// again; the terminal still shows one "Installing" and one "Installed" line, not
/// a pair for each such file (the real-library tree printed 25 pairs).
#[test]
fn the_terminal_says_installed_once_when_files_repeat_content() {
    let w = World::new();
    let input = w.path("input-1.0.0");
    peft_e2e::sample_bundle(&input, 3, 2 * MIB);
    let internal = input.join("peft_engine/_internal");
    // Empty files, the last in index order: each one reports the phase complete.
    fs_err::create_dir_all(internal.join("zz")).expect("mkdir");
    for i in 0..5 {
        fs_err::write(internal.join(format!("zz/empty{i}.py")), "").expect("write");
    }
    fs_err::copy(internal.join("libbig.so"), internal.join("libbig.so.1")).expect("copy");
    w.pack_dir("1.0.0", &input, &[]);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run_for_people("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    let count = |start: &str| err.lines().filter(|l| l.starts_with(start)).count();
    assert_eq!(count("Installing "), 1, "{err}");
    assert_eq!(count("Installed "), 1, "{err}");
}

#[test]
fn copying_from_an_offline_folder_is_phase_copy() {
    let w = World::new();
    let input = w.pack("1.0.0", 11, 2 * MIB);
    w.publish(&[]);
    let stick = w.offline("stick", &[]);
    let out = w.run(
        "ensure",
        &peft_e2e::selfbuild::closed_port_url(),
        "cache",
        &["--offline-dir", &stick.to_string_lossy()],
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert!(!progress(&evs, "copy").is_empty(), "{evs:?}");
    assert!(progress(&evs, "download").is_empty(), "{evs:?}");
    assert_installed_equals(&ready_dir(&evs), &input);
}

/// Sends SIGINT (what Ctrl-C sends) to a child.
#[cfg(unix)]
fn interrupt(child: &std::process::Child) {
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(ok.success());
}

#[cfg(unix)]
#[test]
fn ctrl_c_during_a_download_says_the_partial_download_is_kept_and_the_next_run_resumes() {
    let w = World::new();
    let input = w.pack("1.0.0", 12, 4 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let stall = 2 * MIB as u64;
    server.faults(|f| f.stall_after = Some(stall));
    let mut child = w
        .command("ensure", &server.url(), "cache", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while partial_len(&w) < stall {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the download never reached {stall} bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    let status = child.wait().expect("wait");
    let out = Output {
        status,
        stdout: stdout.into_bytes(),
        stderr: Vec::new(),
    };
    assert_eq!(exit(&out), 130, "interrupted");
    let evs = events(&out);
    let said = evs
        .iter()
        .rev()
        .find(|e| e["event"] == "warning")
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        said.contains("interrupted") && said.contains("kept") && said.contains("resume"),
        "{said}"
    );
    let kept = partial_len(&w);
    assert!(kept >= stall, "{kept}");
    server.faults(|f| f.stall_after = None);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let downloads = progress(&evs, "download");
    assert!(
        downloads.iter().all(|p| p["resumed_from"] == kept),
        "{downloads:?}"
    );
    assert_installed_equals(&ready_dir(&evs), &input);
}

#[test]
fn a_server_that_ignores_the_resume_says_so_and_resumed_from_falls_to_zero() {
    let w = World::new();
    let input = w.pack("1.0.0", 13, 2 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.ignore_range = true);
    w.seed_partial("cache", MIB);
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    let downloads = progress(&evs, "download");
    assert_eq!(downloads[0]["resumed_from"], MIB as u64, "{downloads:?}");
    let last = downloads.last().expect("progress");
    assert_eq!(last["resumed_from"], 0, "started over: {last}");
    assert_eq!(last["done"], last["total"]);
    assert_installed_equals(&ready_dir(&evs), &input);
    // For people, the same run says it did not resume.
    fs_err::remove_dir_all(w.path("cache")).expect("rm cache");
    w.seed_partial("cache", MIB);
    let out = w.run_for_people("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("The server did not resume at 1.0 MB"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_while_waiting_for_another_instance_ends_at_once() {
    let w = World::new();
    w.pack("1.0.0", 14, 4 * MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    server.faults(|f| f.stall_after = Some(MIB as u64));
    // The first holds the lock, stalled mid-download.
    let mut first = w
        .command("ensure", &server.url(), "cache", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while partial_len(&w) < MIB as u64 {
        assert!(start.elapsed() < Duration::from_secs(30), "no download");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The second waits for the lock (a blocking wait), and is interrupted there.
    let second = w
        .command("ensure", &server.url(), "cache", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let asked = Instant::now();
    interrupt(&second);
    let out = second.wait_with_output().expect("wait");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "ended {:?} after Ctrl-C",
        asked.elapsed()
    );
    assert_eq!(exit(&out), 130, "{}", stderr(&out));
    let said: Vec<String> = events(&out)
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect();
    assert!(
        said.iter().any(|m| m.contains("waiting for another")),
        "it was waiting: {said:?}"
    );
    assert!(
        said.iter().any(|m| m.starts_with("interrupted")),
        "{said:?}"
    );
    let _ = first.kill();
    let _ = first.wait();
}
