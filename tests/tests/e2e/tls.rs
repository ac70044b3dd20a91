//! HTTPS end to end: the real `peft-bootstrap ensure --json` against the test
//! server speaking real TLS on loopback with a certificate authority made at test
//! time. Which roots are trusted (none of ours, `SSL_CERT_FILE`, `SSL_CERT_DIR`, the
//! system store seen through a private mount namespace), a refused certificate's
//! message, and an https → http redirect refused with a real TLS server.

use std::path::{Path, PathBuf};
use std::process::Command;

use peft_e2e::nginx::required;
use peft_e2e::server::Server;
use peft_e2e::tls::{SYSTEM_BUNDLE, TestCa};
use peft_e2e::{
    MIB, World, assert_error, assert_installed_equals, event, events, exit, ready_dir,
    running_as_root, stderr,
};

/// A world with one published release, and a CA whose PEM is in `ca.pem`.
fn tls_world(seed: u64) -> (World, PathBuf, TestCa) {
    let w = World::new();
    let input = w.pack("1.0.0", seed, MIB);
    w.publish(&[]);
    let ca = TestCa::new(&format!("PEFT test CA {seed}"));
    ca.write_pem(&w.path("ca.pem"));
    (w, input, ca)
}

/// A successful `--json` run installed exactly `input`, from the network.
fn assert_installed(out: &std::process::Output, input: &Path) {
    assert_eq!(exit(out), 0, "{}", stderr(out));
    let evs = events(out);
    assert_eq!(event(&evs, "ready").expect("ready")["source"], "network");
    assert_installed_equals(&ready_dir(&evs), input);
}

/// The `hint` of the `error` event.
fn hint(out: &std::process::Output) -> String {
    let evs = events(out);
    let err = event(&evs, "error").expect("error event");
    err["hint"].as_str().unwrap_or_default().to_string()
}

#[test]
fn an_untrusted_certificate_authority_is_refused() {
    let (w, _, ca) = tls_world(51);
    let server = Server::https(&w.repo(), &ca);
    let manifest = format!("{}channels/stable/manifest.json", server.url());

    // The system store does not hold the test CA.
    let out = w.run("ensure", &server.url(), "cache", &[]);
    let msg = assert_error(&out, 3, "is not trusted");
    assert!(msg.contains(&manifest), "names the URL: {msg}");
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    assert!(msg.contains("the system's trust store"), "{msg}");
    let h = hint(&out);
    assert!(
        h.contains("SSL_CERT_FILE") && h.contains("trust store"),
        "{h}"
    );
    assert_eq!(
        event(&events(&out), "error").expect("error")["code"],
        "network"
    );
    assert!(w.nothing_installed("cache"));
    assert!(
        server.log().is_empty(),
        "no request got through the handshake"
    );
    let refused = server.settled_handshake_errors();
    assert_eq!(
        refused.len(),
        1,
        "refused at once, never retried: {refused:?}"
    );
    assert!(
        refused[0].contains("alert"),
        "the client said why: {refused:?}"
    );

    // SSL_CERT_FILE naming another CA replaces the store and trusts only that one.
    let other = TestCa::new("another CA").write_pem(&w.path("other.pem"));
    let mut c = w.command("ensure", &server.url(), "cache", &[]);
    c.env("SSL_CERT_FILE", &other);
    let out = c.output().expect("run");
    let msg = assert_error(&out, 3, "is not trusted");
    assert!(
        msg.contains(&format!("only those of SSL_CERT_FILE={}", other.display())),
        "{msg}"
    );
    assert!(w.nothing_installed("cache"));

    // SSL_CERT_FILE naming nothing usable: still a network error, not a crash.
    let mut c = w.command("ensure", &server.url(), "cache", &[]);
    c.env("SSL_CERT_FILE", w.path("missing.pem"));
    let out = c.output().expect("run");
    let msg = assert_error(&out, 3, "is not trusted");
    assert!(msg.contains("none could be loaded"), "{msg}");
    assert!(hint(&out).contains("ca-certificates"), "{}", hint(&out));
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let (w, _, ca) = tls_world(52);
    let server = Server::https_for(&w.repo(), &ca, &["localhost"]);
    let mut c = w.command("ensure", &server.url(), "cache", &[]);
    c.env("SSL_CERT_FILE", w.path("ca.pem"));
    let out = c.output().expect("run");
    let msg = assert_error(&out, 3, "is not valid for the name asked for");
    assert!(msg.contains("127.0.0.1"), "{msg}");
    assert!(hint(&out).contains("host name"), "{}", hint(&out));
    assert!(w.nothing_installed("cache"));
}

#[test]
fn the_test_ca_in_ssl_cert_file_or_ssl_cert_dir_is_trusted() {
    let (w, input, ca) = tls_world(53);
    let server = Server::https(&w.repo(), &ca);
    let mut c = w.command("ensure", &server.url(), "by-file", &[]);
    c.env("SSL_CERT_FILE", w.path("ca.pem"));
    assert_installed(&c.output().expect("run"), &input);
    let archive = w.archive_path();
    assert_eq!(
        server.requests(&archive).len(),
        1,
        "the archive came over TLS"
    );

    let dir = w.path("certs");
    fs_err::create_dir_all(&dir).expect("mkdir");
    ca.write_pem(&dir.join("peft-test-ca.pem"));
    let mut c = w.command("ensure", &server.url_at("localhost"), "by-dir", &[]);
    c.env("SSL_CERT_DIR", &dir);
    assert_installed(&c.output().expect("run"), &input);
    assert_eq!(server.requests(&archive).len(), 2);
    assert!(server.handshake_errors().is_empty());
}

/// Whether a private mount namespace with a bind mount can be made here; the reason
/// when not.
fn private_mounts_work(w: &World) -> Result<(), String> {
    if !running_as_root() {
        return Err("not root: cannot mount".into());
    }
    if !Path::new(SYSTEM_BUNDLE).is_file() {
        return Err(format!("no system CA bundle at {SYSTEM_BUNDLE}"));
    }
    let (a, b) = (w.path("probe-a"), w.path("probe-b"));
    fs_err::write(&a, "a").expect("write");
    fs_err::write(&b, "b").expect("write");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "mount",
            "--bind",
        ])
        .args([&a, &b])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !out.status.success() {
        return Err(format!("unshare --mount: {}", stderr(&out).trim()));
    }
    Ok(())
}

/// `cmd`, run in a private mount namespace where `bundle` is mounted over the
/// system's CA bundle: the machine's store is untouched, the child sees another.
fn with_system_bundle(cmd: &Command, bundle: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            "mount --bind \"$0\" {SYSTEM_BUNDLE} && exec \"$@\""
        ))
        .arg(bundle)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

#[test]
fn the_test_ca_in_the_system_store_is_trusted() {
    let (w, input, ca) = tls_world(54);
    if let Err(why) = private_mounts_work(&w) {
        assert!(!required(), "PEFT_E2E_REQUIRE=1 but {why}");
        eprintln!("skipping: {why}");
        return;
    }
    let server = Server::https(&w.repo(), &ca);
    let before = fs_err::read(SYSTEM_BUNDLE).expect("system bundle");
    let bundle = ca.system_bundle_with(&w.path("system-plus-test-ca.crt"));
    let cmd = w.command("ensure", &server.url(), "cache", &[]);
    // Without the mount the same run is refused: the store is what decides.
    let out = with_system_bundle(&cmd, Path::new(SYSTEM_BUNDLE))
        .output()
        .expect("run");
    assert_error(&out, 3, "is not trusted");
    let out = with_system_bundle(&cmd, &bundle).output().expect("run");
    assert_installed(&out, &input);
    assert_eq!(
        fs_err::read(SYSTEM_BUNDLE).expect("system bundle"),
        before,
        "the machine's store is untouched"
    );
}

#[test]
fn an_https_to_http_redirect_is_refused_end_to_end() {
    let (w, input, ca) = tls_world(55);
    let archive = w.archive_path();
    let plain = Server::start(&w.repo());
    let secure = Server::https(&w.repo(), &ca);
    secure.faults(|f| f.redirects = vec![(archive.clone(), format!("{}{archive}", plain.url()))]);
    let mut c = w.command("ensure", &secure.url(), "cache", &[]);
    c.env("SSL_CERT_FILE", w.path("ca.pem"));
    let out = c.output().expect("run");
    let msg = assert_error(&out, 3, "refused a redirect from https to http://");
    assert!(msg.contains("drop TLS"), "{msg}");
    assert!(
        msg.contains(&secure.url()),
        "names the URL asked for: {msg}"
    );
    assert!(w.nothing_installed("cache"));
    assert!(plain.log().is_empty(), "the plain server was never asked");
    assert_eq!(secure.requests(&archive).len(), 1, "not retried");
    assert_eq!(secure.requests(&archive)[0].status, 302);

    // The same redirect to another TLS server is followed.
    let cdn = Server::https(&w.repo(), &ca);
    secure.faults(|f| f.redirects = vec![(archive.clone(), format!("{}{archive}", cdn.url()))]);
    let mut c = w.command("ensure", &secure.url(), "cache", &[]);
    c.env("SSL_CERT_FILE", w.path("ca.pem"));
    assert_installed(&c.output().expect("run"), &input);
    assert_eq!(cdn.requests(&archive).len(), 1);
}
