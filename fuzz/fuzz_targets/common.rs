//! What the two unpacking targets (`zip_entries`, `zip_stream`) share: their
//! temporary folder, LeakSanitizer's one suppression, and the check that an unpack
//! wrote nothing but folders and files of the index, inside its destination.

use std::collections::HashSet;
use std::path::Path;

use peft_manifest::FileIndex;
use tempfile::TempDir;

/// LeakSanitizer ignores one allocation: glibc's node for a thread's thread-local
/// destructors (`__cxa_thread_atexit_impl`). `std::thread::scope` returns once its
/// threads' closures have returned, which can be before those threads finish
/// exiting, and a leak check in that moment reports the node of a thread that is
/// still running its destructors. Anything else a thread still holds (as when the
/// syncing threads outlived a failed unpack) is still reported. LeakSanitizer reads
/// this at start-up. (The only unsafe attribute of the fuzz crate: an unmangled symbol.)
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn __lsan_default_suppressions() -> *const std::ffi::c_char {
    c"leak:__cxa_thread_atexit_impl\n".as_ptr()
}

/// A fresh temporary folder, under `/dev/shm` when it exists (the unpack's `fsync`s
/// then cost nothing).
pub fn temp_dir() -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary folder")
}

/// Every path under `dir`, relative, with whether it is a folder; panics on a link.
fn tree(dir: &Path, prefix: &str, out: &mut Vec<(String, bool)>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let name = e.file_name().into_string().expect("UTF-8 names only");
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = e.file_type().expect("file type");
        assert!(!kind.is_symlink(), "{rel:?} is a link");
        assert!(
            kind.is_dir() || kind.is_file(),
            "{rel:?} is neither file nor folder"
        );
        out.push((rel.clone(), kind.is_dir()));
        if kind.is_dir() {
            tree(&e.path(), &rel, out);
        }
    }
}

/// After an unpack of the file `input` (in `tmp`) into `tmp/dest`, whatever its
/// outcome: `tmp` holds only those two, and `dest` only folders and regular files
/// the index names (a folder only when it holds an indexed file).
pub fn assert_only_indexed_files_in_dest(tmp: &Path, input: &str, index: &FileIndex) {
    let mut top = Vec::new();
    tree(tmp, "", &mut top);
    let mut top: Vec<&str> = top
        .iter()
        .filter(|(p, _)| !p.contains('/'))
        .map(|(p, _)| p.as_str())
        .collect();
    top.sort_unstable();
    assert_eq!(top, [input, "dest"], "something was written outside dest");

    let listed: HashSet<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
    let mut found = Vec::new();
    tree(&tmp.join("dest"), "", &mut found);
    for (p, is_dir) in &found {
        if *is_dir {
            let inside = format!("{p}/");
            assert!(
                listed.iter().any(|f| f.starts_with(&inside)),
                "the folder {p:?} holds no indexed file"
            );
        } else {
            assert!(listed.contains(p.as_str()), "{p:?} is not in the index");
        }
    }
}
