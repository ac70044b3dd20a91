//! The smaller promises of the command line: `self-update --check` with nothing
//! offered is an answer (exit 0); `status` shows the staged and the refused
//! installs and how to allow one again (`rollback --allow`); each subcommand's
//! help lists only the options it reads; sizes and dates are written for people.

use peft_e2e::server::Server;
use peft_e2e::{MIB, World, bootstrap, copy_tree, event, events, exit, stderr};
use serde_json::Value;

const CPU: &str = "linux-x86_64-cpu";

/// 1.0.0 installed and current, 1.0.1 published.
fn two_versions(w: &World, server: &Server) {
    w.pack("1.0.0", 21, MIB);
    w.publish(&[]);
    assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    let next = w.path("input-1.0.1");
    copy_tree(&w.path("input-1.0.0"), &next);
    fs_err::write(
        next.join("peft_engine/_internal/pkg/__init__.py"),
        "V = 2\n",
    )
    .expect("w");
    w.pack_dir("1.0.1", &next, &[]);
    w.publish(&[]);
}

/// The `status` event of `status --json`.
fn status(w: &World) -> Value {
    let out = w.cached(&["status", "--json"], "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    event(&events(&out), "status").cloned().expect("status")
}

/// `status` for people (stdout).
fn status_text(w: &World) -> String {
    let out = w.cached(&["status"], "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn self_update_check_with_no_build_offered_exits_0_and_says_so() {
    let w = World::new();
    w.pack("1.0.0", 20, MIB);
    // Published without any --bootstrapper build.
    w.publish(&[]);
    let server = Server::start(&w.repo());
    let out = w.run("self-update", &server.url(), "cache", &["--check"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let e = event(&events(&out), "self_update")
        .cloned()
        .expect("self_update");
    assert_eq!(e["status"], "not_offered", "{e}");
    let people = w.run_for_people("self-update", &server.url(), "cache", &["--check"]);
    assert_eq!(exit(&people), 0, "{}", stderr(&people));
    assert!(
        stderr(&people).contains("nothing to update to"),
        "{}",
        stderr(&people)
    );
    // Asked to replace itself, with nothing to replace it with: still an error.
    let out = w.run("self-update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 5, "{}", stderr(&out));
}

#[test]
fn status_shows_the_staged_install_and_the_refused_ones_with_how_to_allow_them() {
    let w = World::new();
    let server = Server::start(&w.repo());
    two_versions(&w, &server);
    let s = status(&w);
    assert_eq!(s["staged"], Value::Null, "{s}");
    assert_eq!(s["refused"], serde_json::json!([]), "{s}");

    assert_eq!(exit(&w.run("update", &server.url(), "cache", &[])), 0);
    let s = status(&w);
    assert_eq!(s["staged"]["version"], "1.0.1", "{s}");
    assert_eq!(s["staged"]["variant"], CPU, "{s}");
    assert!(
        s["staged"]["dir"]
            .as_str()
            .unwrap_or_default()
            .ends_with("1.0.1-linux-x86_64-cpu"),
        "{s}"
    );
    assert!(
        status_text(&w).contains("Staged for the next start: 1.0.1 (linux-x86_64-cpu)"),
        "{}",
        status_text(&w)
    );

    assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    let out = w.cached(
        &["rollback", "--json", "--reason", "crashed at start"],
        "cache",
    );
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let s = status(&w);
    assert_eq!(s["staged"], Value::Null, "{s}");
    let allow = "peft-bootstrap rollback --allow 1.0.1-linux-x86_64-cpu";
    assert_eq!(
        s["refused"],
        serde_json::json!([{
            "version": "1.0.1",
            "variant": CPU,
            "reason": "crashed at start",
            "allow_command": allow,
        }]),
        "{s}"
    );
    let text = status_text(&w);
    assert!(
        text.contains("Refused (rolled back: crashed at start): 1.0.1 (linux-x86_64-cpu)"),
        "{text}"
    );
    assert!(text.contains(allow), "{text}");

    // The command status gives works, and 1.0.1 is chosen again.
    let args: Vec<&str> = allow.split(' ').skip(1).collect();
    let mut with_json = args.clone();
    with_json.push("--json");
    let out = w.cached(&with_json, "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let a = event(&events(&out), "allowed").cloned().expect("allowed");
    assert_eq!(a["version"], "1.0.1");
    assert_eq!(status(&w)["refused"], serde_json::json!([]));
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert!(
        event(&events(&out), "up_to_date").is_none(),
        "{:?}",
        events(&out)
    );

    // Allowing what is not refused is a usage error that says what is.
    let out = w.cached(&args, "cache");
    assert_eq!(exit(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("is not refused"), "{}", stderr(&out));
}

#[test]
fn status_writes_sizes_and_dates_for_people() {
    let w = World::new();
    let server = Server::start(&w.repo());
    w.pack("1.0.0", 22, 2 * MIB);
    w.publish(&[]);
    assert_eq!(exit(&w.run("ensure", &server.url(), "cache", &[])), 0);
    let text = status_text(&w);
    let line = text
        .lines()
        .find(|l| l.contains("1.0.0 (linux-x86_64-cpu)") && l.contains("installed"))
        .unwrap_or_else(|| panic!("no install line: {text}"));
    assert!(line.contains(" MB, "), "a size in MB: {line}");
    assert!(
        line.contains(" UTC (just now)"),
        "a date for people: {line}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Channel stable: manifest serial") && l.contains(" UTC (")),
        "{text}"
    );
}

/// The long options `peft-bootstrap <sub> --help` lists.
fn options(sub: &str) -> Vec<String> {
    let out = bootstrap().args([sub, "--help"]).output().expect("help");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    // An option line starts with its names: `-h, --help`, `--keep <N>  How many...`.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| {
            l.split_whitespace()
                .map(|w| w.trim_end_matches(','))
                .take_while(|w| w.starts_with('-'))
                .filter_map(|w| w.strip_prefix("--"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn each_subcommand_help_lists_only_the_options_it_reads() {
    let gc = options("gc");
    assert!(gc.contains(&"keep".to_string()), "{gc:?}");
    assert!(gc.contains(&"cache-dir".to_string()), "{gc:?}");
    for unused in [
        "manifest-url",
        "variant",
        "channel",
        "ui-version",
        "offline-dir",
        "trusted-key",
    ] {
        assert!(
            !gc.contains(&unused.to_string()),
            "gc --help lists --{unused}: {gc:?}"
        );
    }
    let status = options("status");
    assert!(status.contains(&"cache-dir".to_string()), "{status:?}");
    assert!(!status.contains(&"lock-timeout".to_string()), "{status:?}");
    assert!(!status.contains(&"manifest-url".to_string()), "{status:?}");
    let rollback = options("rollback");
    assert!(rollback.contains(&"allow".to_string()), "{rollback:?}");
    assert!(!rollback.contains(&"variant".to_string()), "{rollback:?}");
    let ensure = options("ensure");
    for used in [
        "manifest-url",
        "variant",
        "channel",
        "cache-dir",
        "offline-dir",
        "json",
    ] {
        assert!(
            ensure.contains(&used.to_string()),
            "ensure --help lacks --{used}: {ensure:?}"
        );
    }
    let su = options("self-update");
    assert!(su.contains(&"manifest-url".to_string()), "{su:?}");
    assert!(!su.contains(&"variant".to_string()), "{su:?}");
    // Hidden is not refused: a caller may pass the same settings to every command.
    let w = World::new();
    let out = w.cached(&["gc", "--variant", "x", "--json"], "cache");
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
}
