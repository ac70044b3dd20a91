//! Proxies end to end: the real `peft-bootstrap ensure --json` through the support
//! crate's forward proxy on loopback (`CONNECT` tunnels for https, absolute-form
//! forwarding for http), `NO_PROXY` bypassing it, and a proxy that refuses or is
//! down. reqwest does not exempt loopback addresses from proxies, so a test
//! repository on 127.0.0.1 is a fair stand-in for a remote one; `NO_PROXY` matches
//! the URL's host as written (`localhost` does not cover `127.0.0.1`).

use std::path::PathBuf;
use std::process::{Command, Output};

use peft_e2e::proxy::{Proxy, dead_address};
use peft_e2e::server::Server;
use peft_e2e::tls::TestCa;
use peft_e2e::{
    MIB, World, assert_error, assert_installed_equals, event, events, exit, ready_dir, stderr,
};

/// A world with one published release, an HTTPS server for it with a test CA (in
/// `ca.pem`), and the installed input.
fn https_world(seed: u64) -> (World, PathBuf, Server) {
    let w = World::new();
    let input = w.pack("1.0.0", seed, MIB);
    w.publish(&[]);
    let ca = TestCa::new("PEFT proxy test CA");
    ca.write_pem(&w.path("ca.pem"));
    let server = Server::https(&w.repo(), &ca);
    (w, input, server)
}

/// `ensure` against `url` into `cache`, trusting the test CA, with `vars` set.
fn ensure(w: &World, url: &str, cache: &str, vars: &[(&str, &str)]) -> Output {
    let mut c: Command = w.command("ensure", url, cache, &[]);
    c.env("SSL_CERT_FILE", w.path("ca.pem"));
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("run peft-bootstrap")
}

fn assert_installed(out: &Output, input: &std::path::Path) {
    assert_eq!(exit(out), 0, "{}", stderr(out));
    assert_installed_equals(&ready_dir(&events(out)), input);
}

#[test]
fn https_proxy_carries_an_https_install_through_connect() {
    let (w, input, server) = https_world(61);
    let proxy = Proxy::start();
    let out = ensure(&w, &server.url(), "cache", &[("HTTPS_PROXY", &proxy.url())]);
    assert_installed(&out, &input);
    let tunnel = format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.port);
    let log = proxy.log();
    assert!(log.iter().all(|l| *l == tunnel), "{log:?}");
    // The server closes every connection: one tunnel per request it answered.
    assert_eq!(log.len(), server.log().len(), "{log:?}");
    assert!(server.requests(&w.archive_path()).len() == 1);
}

#[test]
fn http_proxy_forwards_an_http_install() {
    let w = World::new();
    let input = w.pack("1.0.0", 62, MIB);
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let proxy = Proxy::start();
    // HTTPS_PROXY (down) is for https:// only: the http install never tries it.
    let out = ensure(
        &w,
        &server.url(),
        "cache",
        &[
            ("HTTP_PROXY", &proxy.url()),
            ("HTTPS_PROXY", &dead_address()),
        ],
    );
    assert_installed(&out, &input);
    let log = proxy.log();
    let archive = format!("GET {}{} HTTP/1.1", server.url(), w.archive_path());
    let manifest = format!("GET {}channels/stable/manifest.json HTTP/1.1", server.url());
    assert!(log.contains(&manifest) && log.contains(&archive), "{log:?}");
    assert_eq!(log.len(), server.log().len(), "{log:?}");
}

#[test]
fn no_proxy_covering_the_host_bypasses_the_proxy() {
    let (w, input, server) = https_world(63);
    let proxy = Proxy::start();
    let via = proxy.url();
    // Matched by name as written in the URL: localhost does not cover 127.0.0.1.
    let out = ensure(
        &w,
        &server.url(),
        "a",
        &[("HTTPS_PROXY", &via), ("NO_PROXY", "localhost")],
    );
    assert_installed(&out, &input);
    let through = proxy.log().len();
    assert!(through > 0, "127.0.0.1 went through the proxy");

    let out = ensure(
        &w,
        &server.url_at("localhost"),
        "b",
        &[("HTTPS_PROXY", &via), ("NO_PROXY", "localhost")],
    );
    assert_installed(&out, &input);
    let out = ensure(
        &w,
        &server.url(),
        "c",
        &[
            ("https_proxy", &via),
            ("no_proxy", "example.org, 127.0.0.0/8"),
        ],
    );
    assert_installed(&out, &input);
    assert_eq!(proxy.log().len(), through, "the proxy saw nothing more");
}

#[test]
fn a_refusing_proxy_is_a_network_error_naming_it() {
    let (w, _, server) = https_world(64);
    let proxy = Proxy::refusing();
    let out = ensure(&w, &server.url(), "cache", &[("HTTPS_PROXY", &proxy.url())]);
    let msg = assert_error(&out, 3, "through the proxy http://127.0.0.1:");
    assert!(
        msg.contains(&format!(":{}", proxy.port)),
        "names the proxy: {msg}"
    );
    assert!(msg.contains("set by HTTPS_PROXY"), "{msg}");
    assert!(
        msg.contains("channels/stable/manifest.json"),
        "names the URL: {msg}"
    );
    let evs = events(&out);
    let hint = event(&evs, "error").expect("error")["hint"].to_string();
    assert!(hint.contains("NO_PROXY"), "{hint}");
    assert!(w.nothing_installed("cache"));
    assert!(!proxy.log().is_empty(), "the proxy was asked");
    assert!(server.log().is_empty(), "and nothing reached the server");
}

#[test]
fn a_proxy_that_is_down_is_a_network_error_naming_it() {
    let (w, _, server) = https_world(65);
    let dead = dead_address();
    let out = ensure(&w, &server.url(), "cache", &[("ALL_PROXY", &dead)]);
    let msg = assert_error(&out, 3, &format!("through the proxy {dead}"));
    assert!(msg.contains("set by ALL_PROXY"), "{msg}");
    assert!(w.nothing_installed("cache"));
    assert!(server.log().is_empty());
}
