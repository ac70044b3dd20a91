//! The repair engine on local sources: what it rewrites, what it refuses, and
//! that it leaves no temporary file either way.

use super::*;
use crate::install::extract;
use crate::install::fixture::{Item, Quiet, bundle};

/// An install of `items` in `<tmp>/install` (unpacked the ordinary way) and its archive.
fn installed(t: &Path, items: &[Item<'_>]) -> (PathBuf, PathBuf, FileIndex) {
    let (archive, index) = bundle(t, items);
    let dir = t.join("install");
    fs_err::create_dir_all(&dir).expect("mkdir");
    extract(&archive, &index, &dir, &Quiet).expect("unpack");
    (dir, archive, index)
}

/// Every name under `dir` starting with the repair's temporary prefix.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).expect("ls").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                out.push(e.path());
            }
        }
    }
    out
}

const ITEMS: &[Item<'_>] = &[
    Item::File("a/one.txt", b"one"),
    Item::File("a/b/two.bin", b"two two two"),
    Item::File("three", b"3"),
];

#[test]
fn damaged_and_missing_files_are_rewritten_from_the_archive_and_nothing_else_is_touched() {
    let t = tempfile::tempdir().expect("tempdir");
    let (dir, archive, index) = installed(t.path(), ITEMS);
    fs_err::write(dir.join("a/one.txt"), b"ONE").expect("damage");
    fs_err::remove_file(dir.join("a/b/two.bin")).expect("delete");
    fs_err::write(dir.join("extra.txt"), b"mine").expect("extra");
    let untouched = fs_err::metadata(dir.join("three"))
        .expect("meta")
        .modified()
        .ok();
    let found = inspect(&dir, &index, &Quiet).expect("inspect");
    assert_eq!(found.damaged.len(), 2, "{:?}", found.problems());
    let faults: Vec<(&str, &Fault)> = found
        .damaged
        .iter()
        .map(|d| (d.entry.path.as_str(), &d.fault))
        .collect();
    assert_eq!(faults[0], ("a/b/two.bin", &Fault::Missing));
    assert!(matches!(faults[1], ("a/one.txt", Fault::Content(_))));
    assert_eq!(found.extra, vec!["extra.txt".to_string()]);
    let mut r = Repair::new(&dir, &found.damaged).expect("repair");
    r.mend_from_archive(&archive, &index, RepairSource::Offline)
        .expect("from the archive");
    assert!(r.is_done(), "left: {:?}", r.left());
    assert_eq!(r.repaired.len(), 2);
    assert_eq!(fs_err::read(dir.join("a/one.txt")).expect("read"), b"one");
    assert_eq!(
        fs_err::read(dir.join("a/b/two.bin")).expect("read"),
        b"two two two"
    );
    assert_eq!(
        fs_err::metadata(dir.join("three"))
            .expect("meta")
            .modified()
            .ok(),
        untouched
    );
    assert!(
        inspect(&dir, &index, &Quiet)
            .expect("again")
            .damaged
            .is_empty()
    );
    assert!(temporaries(&dir).is_empty());
}

#[test]
fn wrong_bytes_are_refused_and_the_damaged_file_stays_as_it_was() {
    let t = tempfile::tempdir().expect("tempdir");
    let (dir, _, index) = installed(t.path(), ITEMS);
    fs_err::write(dir.join("a/one.txt"), b"ONE").expect("damage");
    // Another archive whose entry has other bytes under the same name.
    let other = tempfile::tempdir().expect("tempdir");
    let (lying, _) = bundle(other.path(), &[Item::File("a/one.txt", b"eno")]);
    let found = inspect(&dir, &index, &Quiet).expect("inspect");
    let mut r = Repair::new(&dir, &found.damaged).expect("repair");
    r.mend_from_archive(&lying, &index, RepairSource::Network)
        .expect("a refusal is not an error here");
    assert!(!r.is_done());
    assert_eq!(r.left(), vec!["a/one.txt".to_string()]);
    assert!(r.wrong[0].contains("a/one.txt"), "{:?}", r.wrong);
    assert_eq!(fs_err::read(dir.join("a/one.txt")).expect("read"), b"ONE");
    assert!(temporaries(&dir).is_empty());
}

#[test]
fn another_install_with_the_same_content_serves_first_and_a_damaged_copy_is_skipped() {
    let t = tempfile::tempdir().expect("tempdir");
    let (dir, _, index) = installed(t.path(), ITEMS);
    let other = t.path().join("other");
    let bad = t.path().join("bad");
    for d in [&other, &bad] {
        fs_err::create_dir_all(d.join("a")).expect("mkdir");
    }
    fs_err::write(bad.join("a/one.txt"), b"0ne").expect("write");
    fs_err::write(other.join("a/one.txt"), b"one").expect("write");
    fs_err::remove_file(dir.join("a/one.txt")).expect("delete");
    let found = inspect(&dir, &index, &Quiet).expect("inspect");
    let mut r = Repair::new(&dir, &found.damaged).expect("repair");
    r.mend_from_installs([(bad, &index), (other, &index)])
        .expect("from installs");
    assert!(r.is_done());
    assert_eq!(r.repaired[0].from, RepairSource::Cache);
    assert!(
        r.wrong.is_empty(),
        "a bad cache copy is no integrity failure"
    );
    assert_eq!(fs_err::read(dir.join("a/one.txt")).expect("read"), b"one");
}

#[cfg(unix)]
#[test]
fn a_lost_execute_bit_is_restored_without_rewriting() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().expect("tempdir");
    let (dir, _, mut index) = installed(t.path(), ITEMS);
    index.files.iter_mut().for_each(|f| f.mode = 0o755);
    let p = dir.join("three");
    fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    fs_err::set_permissions(
        dir.join("a/one.txt"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    fs_err::set_permissions(
        dir.join("a/b/two.bin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let found = inspect(&dir, &index, &Quiet).expect("inspect");
    assert_eq!(found.damaged.len(), 1);
    assert_eq!(found.damaged[0].fault, Fault::Mode);
    let r = Repair::new(&dir, &found.damaged).expect("repair");
    assert!(r.is_done());
    let mode = fs_err::metadata(&p).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}
