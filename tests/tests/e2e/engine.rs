//! The real chain with the frozen engine: a PyInstaller `core` bundle → pack →
//! publish → nginx (or the in-process server) → ensure → start → /health → SIGTERM.
//!
//! Needs a built bundle: `PEFT_TEST_BUNDLE_DIR` names the folder holding
//! `peft_engine/` (made by `backend/build-bundle --profile core`). Without it the
//! test says so and passes, unless `PEFT_E2E_REQUIRE=1` (CI), where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peft_e2e::nginx::{Nginx, required};
use peft_e2e::server::Server;
use peft_e2e::{World, event, events, exit, stderr, tree};

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the engine");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn frozen_engine_installed_by_the_bootstrapper_answers_health() {
    let Some(bundle) = std::env::var_os("PEFT_TEST_BUNDLE_DIR").map(std::path::PathBuf::from)
    else {
        assert!(
            !required(),
            "PEFT_TEST_BUNDLE_DIR must name a built core bundle (PEFT_E2E_REQUIRE=1)"
        );
        eprintln!("skipping: set PEFT_TEST_BUNDLE_DIR to a folder made by backend/build-bundle");
        return;
    };
    assert!(
        bundle.join("peft_engine").is_dir(),
        "{} has no peft_engine/",
        bundle.display()
    );
    let w = World::new();
    let version = "0.1.0";
    w.pack_dir(version, &bundle, &[]);
    w.publish(&[]);
    let v = w.verify_repo(&[]);
    assert_eq!(exit(&v), 0, "{}", stderr(&v));
    let nginx = Nginx::start(&w.repo());
    let server = nginx.is_none().then(|| Server::start(&w.repo()));
    let url = nginx
        .as_ref()
        .map(Nginx::url)
        .or_else(|| server.as_ref().map(Server::url))
        .expect("a server");
    let out = w.run("ensure", &url, "cache", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = events(&out);
    let ready = event(&evs, "ready").expect("ready");
    let dir = std::path::PathBuf::from(ready["dir"].as_str().expect("dir"));
    let mut installed = tree(&dir);
    for f in peft_e2e::BOOTSTRAPPER_FILES {
        installed.remove(f);
    }
    assert_eq!(
        installed,
        tree(&bundle),
        "the install is the bundle, byte for byte"
    );

    let exe = ready["executable"].as_str().expect("executable");
    let mut child = Command::new(exe)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the installed engine");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let listening: serde_json::Value = serde_json::from_str(&line).expect("listening line is JSON");
    assert_eq!(listening["event"], "listening");
    let port = listening["port"].as_u64().expect("port") as u16;
    let (status, body) = http_get(port, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(body.trim()).expect("health JSON");
    assert_eq!(health["variant"], "linux-x86_64-cpu");
    assert_eq!(health["version"], listening["version"]);
    let start = Instant::now();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    child.wait().expect("wait");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        start.elapsed()
    );
}
