//! The bounds every signed number must stay within before anything is fetched or
//! unpacked: a defence in depth against a zip bomb or an endless download that a
//! signing mistake (or a stolen key) would otherwise let through. The archive and
//! index sizes are also the caps of their downloads, and every entry is written
//! through a writer capped at its signed size, so these bounds are what the whole
//! install is bounded by.
//!
//! The numbers are far above any real bundle (PEFT Studio's CUDA build is about
//! 3 GiB in 20,000 files, packed at about 2:1) and far below what would exhaust a
//! machine.

use crate::model::Variant;
use crate::problem::Problem;

/// At most this many files in one bundle.
pub const MAX_FILES: u64 = 1_000_000;
/// At most this many bytes in one unpacked bundle (256 GiB).
pub const MAX_UNPACKED: u64 = 256 << 30;
/// At most this many bytes in one archive, delta or bootstrapper build (256 GiB).
pub const MAX_BLOB: u64 = 256 << 30;
/// At most this many bytes in one index (about 250 bytes a file).
pub const MAX_INDEX: u64 = 256 << 20;
/// The unpacked bundle may be at most this many times its archive. Deflate and
/// zstd reach about 1000:1 only on long runs of one byte; a real bundle is near 2:1.
pub const MAX_RATIO: u64 = 1000;
/// At most this many successor keys announced by one manifest (`keys.next`).
pub const MAX_NEXT_KEYS: usize = 4;
/// At most this many keys retired by one manifest (`keys.retired`).
pub const MAX_RETIRED_KEYS: usize = 32;
/// A channel's memory keeps at most this many announced keys (the newest).
pub const MAX_ANNOUNCED_REMEMBERED: usize = 16;
/// A channel's memory keeps at most this many retired keys (the newest).
pub const MAX_RETIRED_REMEMBERED: usize = 256;

/// Every bound `v` breaks, located under `at` (`releases[0].variants[1]`).
pub fn variant(at: &str, v: &Variant) -> Vec<Problem> {
    let mut bounds = vec![
        ("index.files".to_string(), v.index.files, MAX_FILES, "files"),
        (
            "index.unpacked_size".to_string(),
            v.index.unpacked_size,
            MAX_UNPACKED,
            "bytes",
        ),
        ("index.size".to_string(), v.index.size, MAX_INDEX, "bytes"),
        (
            "archive.size".to_string(),
            v.archive.size,
            MAX_BLOB,
            "bytes",
        ),
    ];
    if let Some(z) = &v.zstd_archive {
        bounds.push(("zstd_archive.size".to_string(), z.size, MAX_BLOB, "bytes"));
    }
    for (i, d) in v.deltas.iter().enumerate() {
        bounds.push((format!("deltas[{i}].size"), d.size, MAX_BLOB, "bytes"));
    }
    let mut out: Vec<Problem> = bounds
        .into_iter()
        .filter(|(_, value, max, _)| value > max)
        .map(|(field, value, max, unit)| Problem {
            at: format!("{at}.{field}"),
            message: format!("is {value} {unit}, above the limit of {max}"),
        })
        .collect();
    for a in v.archives() {
        if a.size > 0 && v.index.unpacked_size / a.size >= MAX_RATIO {
            out.push(Problem {
                at: format!("{at}.index.unpacked_size"),
                message: format!(
                    "is {} bytes from a {}-byte archive: more than {MAX_RATIO} times, a zip bomb",
                    v.index.unpacked_size, a.size
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::manifest;
    use crate::validate::validate;

    fn at_of(m: &crate::Manifest) -> Vec<String> {
        validate(m).into_iter().map(|p| p.at).collect()
    }

    #[test]
    fn the_sample_is_within_bounds() {
        let m = manifest();
        for r in &m.releases {
            for v in &r.variants {
                assert_eq!(variant("v", v), vec![]);
            }
        }
    }

    #[test]
    fn a_bundle_of_too_many_files_is_refused_by_entry_count() {
        let mut m = manifest();
        m.releases[0].variants[0].index.files = MAX_FILES + 1;
        assert_eq!(at_of(&m), vec!["releases[0].variants[0].index.files"]);
        m.releases[0].variants[0].index.files = MAX_FILES;
        assert_eq!(at_of(&m), Vec::<String>::new());
    }

    #[test]
    fn a_zip_bomb_by_ratio_is_refused_before_download() {
        let mut m = manifest();
        let v = &mut m.releases[0].variants[0];
        v.index.unpacked_size = v.archive.size * MAX_RATIO;
        let problems = validate(&m);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("zip bomb"), "{problems:?}");
        let v = &mut m.releases[0].variants[0];
        v.index.unpacked_size = v.archive.size * (MAX_RATIO - 1);
        assert_eq!(at_of(&m), Vec::<String>::new());
    }

    #[test]
    fn oversized_blobs_are_refused() {
        let mut m = manifest();
        let v = &mut m.releases[0].variants[0];
        v.archive.size = MAX_BLOB + 1;
        v.index.size = MAX_INDEX + 1;
        v.index.unpacked_size = MAX_UNPACKED + 1;
        let mut at = at_of(&m);
        at.sort();
        assert_eq!(
            at,
            vec![
                "releases[0].variants[0].archive.size",
                "releases[0].variants[0].index.size",
                "releases[0].variants[0].index.unpacked_size",
            ]
        );
    }
}
