//! `peft-bootstrap self-update` end to end: the workspace's build (the older one)
//! is replaced by a second build reporting a newer version, published with
//! `peft-release publish --bootstrapper`, over HTTP and from an offline folder; a
//! tampered build is refused and the old binary keeps running; a manifest whose
//! `min_bootstrapper` is above the binary makes `ensure` update it first.
//!
//! The newer build is made by the test itself (`peft_e2e::selfbuild`), cached under
//! `target/selfbuild/`: the first run takes a few minutes, later ones seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use peft_e2e::selfbuild::{
    CURRENT, current_bootstrapper, flip_byte, newer_bootstrapper, newer_version, place, platform,
    version_of,
};
use peft_e2e::server::Server;
use peft_e2e::{MIB, World, event, events, exit, stderr};
use serde_json::Value;

/// A world with a packed release, the newer bootstrapper published with `extra`
/// publish flags, and the older binary installed at `app/peft-bootstrap`.
fn world(extra: &[&str]) -> (World, PathBuf) {
    let newer = newer_bootstrapper();
    let w = World::new();
    w.pack("1.0.0", 1, MIB);
    let flag = format!("{}={}", platform(), newer.display());
    let mut args = vec!["--bootstrapper", flag.as_str()];
    args.extend_from_slice(extra);
    w.publish(&args);
    let app = w.path("app/peft-bootstrap");
    place(&current_bootstrapper(), &app);
    (w, app)
}

/// Runs the app's bootstrapper with the world's key and cache.
fn app_run(w: &World, app: &Path, cache: &str, args: &[&str]) -> Output {
    Command::new(app)
        .args(args)
        .args(["--trusted-key", &w.s("keys/release.pub")])
        .args(["--cache-dir", &w.s(cache)])
        .env_remove("PEFT_MANIFEST_URL")
        .env_remove("PEFT_OFFLINE_DIR")
        .env("PEFT_RETRY_BASE_MS", "20")
        .output()
        .expect("run the app's bootstrapper")
}

/// The manifest's bootstrapper entry for this machine.
fn listed_build(w: &World) -> Value {
    let bytes = fs_err::read(w.path("repo/channels/stable/manifest.json")).expect("manifest");
    let m: Value = serde_json::from_slice(&bytes).expect("json");
    m["bootstrapper"]
        .as_array()
        .expect("bootstrapper list")
        .iter()
        .find(|b| {
            format!(
                "{}-{}",
                b["os"].as_str().unwrap_or(""),
                b["arch"].as_str().unwrap_or("")
            ) == platform()
        })
        .cloned()
        .expect("a build for this machine")
}

/// The names in the app's folder: the binary alone, no backup or staged copy left.
fn app_folder(app: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(app.parent().expect("folder"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn self_update_event(out: &Output) -> Value {
    event(&events(out), "self_update")
        .cloned()
        .unwrap_or_else(|| panic!("no self_update event: {}", stderr(out)))
}

#[test]
fn self_update_replaces_the_older_binary_which_then_reports_the_new_version() {
    let (w, app) = world(&[]);
    let newer = newer_version();
    assert_eq!(
        listed_build(&w)["version"],
        newer.as_str(),
        "publish read --version"
    );
    assert_eq!(version_of(&app).as_deref(), Some(CURRENT));
    let server = Server::start(&w.repo());
    let url = server.url();

    let out = app_run(
        &w,
        &app,
        "cache",
        &["self-update", "--check", "--json", "--manifest-url", &url],
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(self_update_event(&out)["status"], "available");
    assert_eq!(
        version_of(&app).as_deref(),
        Some(CURRENT),
        "--check changes nothing"
    );

    let out = app_run(
        &w,
        &app,
        "cache",
        &["self-update", "--json", "--manifest-url", &url],
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let ev = self_update_event(&out);
    assert_eq!(ev["status"], "updated");
    assert_eq!(ev["from"], CURRENT);
    assert_eq!(ev["version"], newer.as_str());
    assert_eq!(version_of(&app).as_deref(), Some(newer.as_str()));
    assert_eq!(app_folder(&app), vec!["peft-bootstrap"]);

    let out = app_run(
        &w,
        &app,
        "cache",
        &["self-update", "--json", "--manifest-url", &url],
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(self_update_event(&out)["status"], "up_to_date");

    // From an offline folder, with the network closed.
    let stick = w.path("stick");
    w.offline("stick", &[]);
    let app2 = w.path("app2/peft-bootstrap");
    place(&current_bootstrapper(), &app2);
    let closed = peft_e2e::selfbuild::closed_port_url();
    let out = app_run(
        &w,
        &app2,
        "cache",
        &[
            "self-update",
            "--json",
            "--manifest-url",
            &closed,
            "--offline-dir",
            &stick.to_string_lossy(),
        ],
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(self_update_event(&out)["status"], "updated");
    assert_eq!(version_of(&app2).as_deref(), Some(newer.as_str()));
}

#[test]
fn a_tampered_new_binary_is_refused_and_the_old_one_still_runs() {
    let (w, app) = world(&[]);
    let hex = listed_build(&w)["sha256"]
        .as_str()
        .expect("sha256")
        .to_string();
    flip_byte(&w.repo().join("blobs/sha256").join(&hex));
    let server = Server::start(&w.repo());
    let out = app_run(
        &w,
        &app,
        "cache",
        &["self-update", "--json", "--manifest-url", &server.url()],
    );
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error event");
    assert_eq!(err["code"], "integrity");
    assert_eq!(
        version_of(&app).as_deref(),
        Some(CURRENT),
        "the old binary still runs"
    );
    assert_eq!(app_folder(&app), vec!["peft-bootstrap"]);

    // A signed build that does not answer --version as promised is refused before the swap.
    let fake = w.path("fake-bootstrap");
    fs_err::write(&fake, "#!/bin/sh\necho peft-bootstrap 0.0.1\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let flag = format!("{}={}", platform(), fake.display());
    w.publish(&["--bootstrapper", &flag, "--bootstrapper-version", "99.0.0"]);
    let out = app_run(
        &w,
        &app,
        "cache",
        &["self-update", "--json", "--manifest-url", &server.url()],
    );
    assert_eq!(exit(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("0.0.1"), "{}", stderr(&out));
    assert_eq!(version_of(&app).as_deref(), Some(CURRENT));
    assert_eq!(app_folder(&app), vec!["peft-bootstrap"]);
}

#[test]
fn ensure_updates_the_bootstrapper_first_when_the_manifest_needs_a_newer_one() {
    let newer = newer_version();
    let (w, app) = world(&["--min-bootstrapper", &newer]);
    let server = Server::start(&w.repo());
    // detect installs nothing, the bootstrapper included: it says what to run.
    let out = app_run(
        &w,
        &app,
        "cache",
        &["detect", "--json", "--manifest-url", &server.url()],
    );
    assert_eq!(exit(&out), 5, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error");
    assert!(
        err["hint"]
            .as_str()
            .is_some_and(|h| h.contains("self-update")),
        "{err}"
    );
    assert_eq!(version_of(&app).as_deref(), Some(CURRENT));
    let out = app_run(
        &w,
        &app,
        "cache",
        &["ensure", "--json", "--manifest-url", &server.url()],
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let evs = events(&out);
    assert!(
        evs.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("updating peft-bootstrap"))),
        "{evs:?}"
    );
    assert_eq!(event(&evs, "ready").expect("ready")["source"], "network");
    assert_eq!(version_of(&app).as_deref(), Some(newer.as_str()));
    // The format moved with it: a manifest that needs 0.2.0 or later lists only the
    // zstd archive, which the updated binary just installed.
    let m: Value = serde_json::from_slice(
        &fs_err::read(w.path("repo/channels/stable/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let v = &m["releases"][0]["variants"][0];
    assert!(v.get("zstd_archive").is_none(), "{v}");
    let archive = w.repo().join(format!(
        "blobs/sha256/{}",
        v["archive"]["sha256"].as_str().expect("sha")
    ));
    let mut zip = zip::ZipArchive::new(fs_err::File::open(&archive).expect("open")).expect("zip");
    for i in 0..zip.len() {
        let e = zip.by_index_raw(i).expect("entry");
        assert_eq!(
            e.compression(),
            zip::CompressionMethod::Zstd,
            "{}",
            String::from_utf8_lossy(e.name_raw())
        );
    }

    // Offline, the error says how: the newer build is in the folder.
    let stick = w.path("stick");
    w.offline("stick", &[]);
    let app2 = w.path("app2/peft-bootstrap");
    place(&current_bootstrapper(), &app2);
    let stick_s = stick.to_string_lossy().into_owned();
    let offline = ["--offline-dir", stick_s.as_str()];
    let mut args = vec!["ensure", "--json"];
    args.extend_from_slice(&offline);
    let out = app_run(&w, &app2, "cache2", &args);
    assert_eq!(exit(&out), 5, "{}", stderr(&out));
    let err = event(&events(&out), "error").cloned().expect("error");
    let hint = err["hint"].as_str().expect("hint");
    assert!(hint.contains("self-update --offline-dir"), "{hint}");
    let hex = listed_build(&w)["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    assert!(hint.contains(&hex), "{hint}");
    assert_eq!(version_of(&app2).as_deref(), Some(CURRENT));
    let mut args = vec!["self-update"];
    args.extend_from_slice(&offline);
    let out = app_run(&w, &app2, "cache2", &args);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let mut args = vec!["ensure", "--json"];
    args.extend_from_slice(&offline);
    let out = app_run(&w, &app2, "cache2", &args);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_eq!(
        event(&events(&out), "ready").expect("ready")["source"],
        "offline"
    );
}
