//! The two archive formats end to end: `pack` makes a Deflate archive (every
//! bootstrapper) and one with zstd entries (from 0.2.0 on); this bootstrapper
//! fetches the zstd one; `publish` keeps the Deflate one while older bootstrappers
//! are accepted and refuses an archive they could not read; offline folders carry
//! both, or only zstd when asked, or only Deflate (an older `peft-release`).

use std::collections::BTreeSet;
use std::path::Path;

use peft_e2e::selfbuild::closed_port_url;
use peft_e2e::server::Server;
use peft_e2e::{MIB, World, assert_installed_equals, event, events, exit, ready_dir, stderr};
use serde_json::Value;

fn manifest(w: &World) -> Value {
    let bytes = fs_err::read(w.path("repo/channels/stable/manifest.json")).expect("manifest");
    serde_json::from_slice(&bytes).expect("manifest json")
}

fn variant(w: &World) -> Value {
    manifest(w)["releases"][0]["variants"][0].clone()
}

fn blob(w: &World, v: &Value, field: &str) -> std::path::PathBuf {
    let sha = v[field]["sha256"].as_str().expect("sha256");
    w.path(&format!("repo/blobs/sha256/{sha}"))
}

/// The compression methods of a zip's entries.
fn methods(zip: &Path) -> BTreeSet<u16> {
    let mut z = zip::ZipArchive::new(fs_err::File::open(zip).expect("open")).expect("zip");
    (0..z.len())
        .map(|i| match z.by_index_raw(i).expect("entry").compression() {
            zip::CompressionMethod::Stored => 0,
            zip::CompressionMethod::Deflated => 8,
            zip::CompressionMethod::Zstd => 93,
            _ => 1,
        })
        .collect()
}

fn install_record(dir: &Path) -> Value {
    serde_json::from_slice(&fs_err::read(dir.join(".peft-install.json")).expect("record"))
        .expect("record json")
}

#[test]
fn pack_makes_both_archives_and_this_bootstrapper_fetches_only_the_zstd_one() {
    let w = World::new();
    let input = w.path("input");
    peft_e2e::sample_bundle(&input, 31, 2 * MIB);
    // The default level (19), which the other tests lower to 3 to save time.
    w.pack_dir("1.0.0", &input, &["--zstd-level", "19"]);
    w.publish(&[]);
    let v = variant(&w);
    let (deflate, zstd) = (blob(&w, &v, "archive"), blob(&w, &v, "zstd_archive"));
    // Old bootstrappers take `archive`: it must hold nothing but Deflate (or stored).
    assert!(methods(&deflate).is_subset(&BTreeSet::from([0, 8])));
    assert_eq!(methods(&zstd), BTreeSet::from([93]));
    let (dsize, zsize) = (
        fs_err::metadata(&deflate).expect("d").len(),
        fs_err::metadata(&zstd).expect("z").len(),
    );
    assert!(
        zsize < dsize,
        "zstd {zsize} is not smaller than Deflate {dsize}"
    );
    assert_eq!(manifest(&w)["min_bootstrapper"], "0.1.0");
    let v_out = w.verify_repo(&[]);
    assert_eq!(exit(&v_out), 0, "{}", stderr(&v_out));

    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let dir = ready_dir(&events(&out));
    assert_installed_equals(&dir, &input);
    let zsha = v["zstd_archive"]["sha256"].as_str().expect("sha");
    assert_eq!(install_record(&dir)["archive_sha256"], zsha);
    let fetched: Vec<String> = server.log().into_iter().map(|l| l.path).collect();
    let dsha = v["archive"]["sha256"].as_str().expect("sha");
    assert!(fetched.iter().any(|p| p.ends_with(zsha)), "{fetched:?}");
    assert!(!fetched.iter().any(|p| p.ends_with(dsha)), "{fetched:?}");

    // Damage a file: the repair reads the zstd archive's entries by ranges.
    let victim = dir.join("peft_engine/_internal/libbig.so");
    let mut bytes = fs_err::read(&victim).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    fs_err::write(&victim, &bytes).expect("write");
    let out = w.run("verify", &server.url(), "cache", &["--repair"]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&dir, &input);
}

#[test]
fn publish_lists_only_zstd_once_every_accepted_bootstrapper_reads_it() {
    let w = World::new();
    let input = w.pack("1.0.0", 32, MIB);
    w.publish(&[]);
    let before = variant(&w);
    w.publish(&["--min-bootstrapper", "0.2.0"]);
    let after = variant(&w);
    assert_eq!(after["archive"], before["zstd_archive"]);
    assert!(after.get("zstd_archive").is_none(), "{after}");
    assert_eq!(methods(&blob(&w, &after, "archive")), BTreeSet::from([93]));
    // Publishing again (the pending record still names both) is the same release.
    w.publish(&["--min-bootstrapper", "0.2.0"]);
    assert_eq!(variant(&w)["archive"], after["archive"]);
    let v_out = w.verify_repo(&[]);
    assert_eq!(exit(&v_out), 0, "{}", stderr(&v_out));
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
}

#[test]
fn a_zstd_only_archive_is_refused_while_older_bootstrappers_are_accepted() {
    let w = World::new();
    let input = w.path("input");
    peft_e2e::sample_bundle(&input, 33, MIB);
    w.pack_dir("1.0.0", &input, &["--format", "zstd", "--zstd-level", "3"]);
    let out = w.publish_raw("keys/release.key", &[]);
    // Refused like every other problem found before signing (exit 4).
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let why = stderr(&out);
    assert!(
        why.contains("zstd entries") && why.contains("--min-bootstrapper 0.2.0"),
        "{why}"
    );
    assert!(!w.path("repo/channels/stable/manifest.json").exists());
    w.publish(&["--min-bootstrapper", "0.2.0"]);
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
}

#[test]
fn a_deflate_only_release_still_installs_and_updates_to_a_zstd_one_by_delta() {
    let w = World::new();
    let input = w.path("input-1");
    peft_e2e::sample_bundle(&input, 34, 2 * MIB);
    w.pack_dir("1.0.0", &input, &["--format", "deflate"]);
    w.publish(&[]);
    assert!(variant(&w).get("zstd_archive").is_none());
    let server = Server::start(&w.repo());
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input);
    // 1.0.1 in both formats; its delta is made from 1.0.0's Deflate archive.
    let input2 = w.path("input-2");
    peft_e2e::sample_bundle(&input2, 34, 2 * MIB);
    fs_err::write(
        input2.join("peft_engine/_internal/new.py"),
        b"print('new')\n",
    )
    .expect("w");
    w.pack_dir("1.0.1", &input2, &[]);
    w.publish(&[]);
    let out = w.run("update", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    let staged = event(&events(&out), "staged").cloned().expect("staged");
    assert_eq!(
        (staged["version"].as_str(), staged["from"].as_str()),
        (Some("1.0.1"), Some("1.0.0"))
    );
    let out = w.run("ensure", &server.url(), "cache", &[]);
    assert_eq!(exit(&out), 0, "{}", stderr(&out));
    assert_installed_equals(&ready_dir(&events(&out)), &input2);
}

#[test]
fn offline_folders_carry_both_archives_or_zstd_alone_and_a_deflate_only_one_installs() {
    let w = World::new();
    let input = w.pack("1.0.0", 35, MIB);
    w.publish(&[]);
    let v = variant(&w);
    let name = |f: &str| v[f]["sha256"].as_str().expect("sha").to_string();
    let (dname, zname) = (name("archive"), name("zstd_archive"));
    let has = |dir: &Path, n: &str| dir.join("blobs/sha256").join(n).is_file();

    let both = w.offline("both", &[]);
    assert!(has(&both, &dname) && has(&both, &zname));
    let lean = w.offline("lean", &["--skip-deflate"]);
    assert!(!has(&lean, &dname) && has(&lean, &zname));
    // A folder an older peft-release made: the Deflate archive only.
    let old = w.offline("old", &[]);
    fs_err::remove_file(old.join("blobs/sha256").join(&zname)).expect("rm");

    for (dir, cache, want) in [(&lean, "c1", &zname), (&old, "c2", &dname)] {
        let out = w.run(
            "ensure",
            &closed_port_url(),
            cache,
            &["--offline-dir", &dir.to_string_lossy()],
        );
        assert_eq!(exit(&out), 0, "{}: {}", dir.display(), stderr(&out));
        let d = ready_dir(&events(&out));
        assert_installed_equals(&d, &input);
        assert_eq!(install_record(&d)["archive_sha256"], want.as_str());
    }
}
