//! Crash points for the fault tests: named steps of an install where a test build
//! can be made to die on the spot, so the tests can prove that a crash at each of
//! them leaves the cache with a complete old or new install and nothing half-made.
//!
//! `PEFT_FAILPOINT=<name>` aborts the process the first time the step `<name>` is
//! reached; `<name>:<n>` at the `n`-th time, or for a counting step (bytes
//! downloaded, files unpacked) once the count reaches `n`. The process prints one
//! line, `peft-bootstrap: failpoint <name> reached`, to stderr and then calls
//! [`std::process::abort`]: no destructor runs, no buffer is flushed, no staging
//! folder is removed, exactly as after `kill -9` (the tests see `SIGABRT`).
//!
//! The mechanism exists only in debug builds (what the tests run); in a release
//! build every call is an empty inline function and the variable is not read.
//!
//! | step | where |
//! | --- | --- |
//! | `download-bytes` (counting) | a download has written this many bytes of a blob |
//! | `unpack-files` (counting) | this many files have been unpacked and verified in staging |
//! | `before-sync` | every file is in staging, before waiting for their fsyncs |
//! | `after-sync` | the staged tree is durable, before its record is written |
//! | `before-rename` | an atomic file (record, `current.json`, `pending.json`, `state.json`) is written and synced under its temporary name, not yet renamed |
//! | `before-commit` | the staged tree has its record, before it is renamed into `versions/` |
//! | `after-commit` | the install is in `versions/`, before `current.json` names it |
//! | `after-pointer` | `current.json` names the new install, before the command reports it |

/// The step `name` is reached (once more).
#[cfg(debug_assertions)]
pub fn hit(name: &str) {
    imp::hit(name);
}

/// A counting step `name` has reached `count`.
#[cfg(debug_assertions)]
pub fn count(name: &str, count: u64) {
    imp::count(name, count);
}

/// The step `name` is reached (release builds: nothing).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// A counting step (release builds: nothing).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn count(_name: &str, _count: u64) {}

#[cfg(debug_assertions)]
mod imp {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The armed point: its name and the hit or count that fires it.
    struct Armed {
        name: String,
        at: u64,
        hits: AtomicU64,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let spec = std::env::var(crate::env::FAILPOINT).ok()?;
                let (name, at) = parse(&spec)?;
                Some(Armed {
                    name,
                    at,
                    hits: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    /// `name` or `name:n` (n ≥ 1; default 1).
    pub(super) fn parse(spec: &str) -> Option<(String, u64)> {
        let spec = spec.trim();
        let (name, at) = match spec.split_once(':') {
            Some((n, at)) => (n, at.trim().parse().ok().filter(|&a| a >= 1)?),
            None => (spec, 1),
        };
        (!name.is_empty()).then(|| (name.to_string(), at))
    }

    fn fire(name: &str) -> ! {
        eprintln!("peft-bootstrap: failpoint {name} reached");
        std::process::abort()
    }

    pub(super) fn hit(name: &str) {
        if let Some(a) = armed().filter(|a| a.name == name)
            && a.hits.fetch_add(1, Ordering::SeqCst) + 1 >= a.at
        {
            fire(name)
        }
    }

    pub(super) fn count(name: &str, count: u64) {
        if let Some(a) = armed().filter(|a| a.name == name)
            && count >= a.at
        {
            fire(name)
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn specs_parse() {
            assert_eq!(
                super::parse("after-commit"),
                Some(("after-commit".into(), 1))
            );
            assert_eq!(
                super::parse("download-bytes:4096"),
                Some(("download-bytes".into(), 4096))
            );
            assert_eq!(super::parse("x:0"), None);
            assert_eq!(super::parse("x:many"), None);
            assert_eq!(super::parse(""), None);
        }
    }
}
