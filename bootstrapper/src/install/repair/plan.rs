//! Which bytes of a remote zip a repair needs (pure: bytes and offsets in, ranges out).
//!
//! A zip ends with its end-of-central-directory record (EOCD, 22 bytes plus a comment
//! of up to 64 KiB), preceded for ZIP64 archives by a ZIP64 EOCD record and its
//! locator; those say where the central directory (the table of every entry, with
//! the offset of its local header) is. So a repair reads [`tail`] first,
//! [`central_directory`] says whether the directory lies inside it or which bytes
//! before it are still needed, and [`entry_spans`] and [`coalesce`] turn the entries
//! to repair into as few range requests as are worth making.

use std::ops::Range;

/// The EOCD's signature and fixed size.
const EOCD: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
/// The ZIP64 EOCD locator (20 bytes, just before the EOCD) and record.
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: usize = 56;

/// The first read: enough for the EOCD with the longest comment and the ZIP64
/// records, and at least 1 KiB (the window `zip` searches the EOCD in).
pub const TAIL: u64 = (EOCD_LEN + 0xFFFF + ZIP64_LOCATOR_LEN + ZIP64_EOCD_LEN) as u64;

/// Ranges closer than this are fetched as one (a request costs more than 16 KiB).
pub const GAP: u64 = 16 << 10;

/// The last bytes of an archive of `size` bytes to read first.
pub fn tail(size: u64) -> Range<u64> {
    size.saturating_sub(TAIL)..size
}

fn u16_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}
fn u32_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(i..i + 4)?.try_into().ok()?,
    )))
}
fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// Where the central directory of an archive of `size` bytes is, from its last bytes
/// `tail` (which start at byte `size - tail.len()`). The EOCD is the last one whose
/// comment ends exactly at the end of the archive.
pub fn central_directory(tail: &[u8], size: u64) -> Result<Range<u64>, String> {
    let start = size
        .checked_sub(tail.len() as u64)
        .ok_or("the tail is longer than the archive")?;
    let eocd = (0..=tail.len().saturating_sub(EOCD_LEN))
        .rev()
        .find(|&i| {
            u32_at(tail, i) == Some(u64::from(EOCD))
                && u16_at(tail, i + 20).is_some_and(|c| i + EOCD_LEN + c as usize == tail.len())
        })
        .ok_or("no end-of-central-directory record in its last bytes")?;
    let (entries, mut len, mut offset) = (
        u16_at(tail, eocd + 10).unwrap_or(0),
        u32_at(tail, eocd + 12).unwrap_or(0),
        u32_at(tail, eocd + 16).unwrap_or(0),
    );
    // The directory ends where the records that follow it begin.
    let mut records = start + eocd as u64;
    if entries == 0xFFFF || len == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        let at = eocd
            .checked_sub(ZIP64_LOCATOR_LEN)
            .filter(|&l| u32_at(tail, l) == Some(u64::from(ZIP64_LOCATOR)))
            .ok_or("a ZIP64 archive without its ZIP64 locator")?;
        let record = u64_at(tail, at + 8).ok_or("a short ZIP64 locator")?;
        let r = record
            .checked_sub(start)
            .map(|r| r as usize)
            .filter(|&r| r + ZIP64_EOCD_LEN <= at && u32_at(tail, r) == Some(u64::from(ZIP64_EOCD)))
            .ok_or("the ZIP64 end-of-central-directory record is not where its locator says")?;
        (len, offset) = (
            u64_at(tail, r + 40).unwrap_or(0),
            u64_at(tail, r + 48).unwrap_or(0),
        );
        records = record;
    }
    match offset.checked_add(len) {
        Some(end) if end <= records => Ok(offset..end),
        _ => Err(format!(
            "its central directory ({len} bytes at {offset}) overlaps its end records at {records}"
        )),
    }
}

/// The bytes of each entry (local header, data, any data descriptor), given every
/// entry's local header offset in `starts`, in any order: from its header to the
/// next entry's, the last one to the central directory at `directory`. Returned in
/// the order of `starts`.
pub fn entry_spans(starts: &[u64], directory: u64) -> Result<Vec<Range<u64>>, String> {
    let mut sorted: Vec<u64> = starts.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err("two entries share a local header".into());
    }
    if sorted.last().is_some_and(|&l| l >= directory) {
        return Err("an entry starts inside the central directory".into());
    }
    Ok(starts
        .iter()
        .map(|s| {
            let i = sorted.partition_point(|x| x <= s);
            *s..sorted.get(i).copied().unwrap_or(directory)
        })
        .collect())
}

/// Sorts `ranges` and merges those that overlap or lie within `gap` bytes of
/// each other.
pub fn coalesce(mut ranges: Vec<Range<u64>>, gap: u64) -> Vec<Range<u64>> {
    ranges.retain(|r| !r.is_empty());
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// The parts of `want` not covered by `have` (both sorted, non-overlapping).
pub fn missing(want: &[Range<u64>], have: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for w in want {
        let mut at = w.start;
        for h in have.iter().filter(|h| h.end > w.start && h.start < w.end) {
            if h.start > at {
                out.push(at..h.start);
            }
            at = at.max(h.end);
        }
        if at < w.end {
            out.push(at..w.end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A real zip (written by `zip`, as `peft-release pack` does) with `n` entries of
    /// `len` bytes each, stored or deflated.
    fn archive(n: usize, len: usize, zip64: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(zip64);
        for i in 0..n {
            w.start_file(format!("f{i}"), opts).expect("start");
            w.write_all(&vec![i as u8; len]).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn the_directory_is_found_from_the_tail_alone() {
        for zip64 in [false, true] {
            let a = archive(5, 1000, zip64);
            let size = a.len() as u64;
            let t = tail(size);
            let cd = central_directory(&a[t.start as usize..], size).expect("found");
            let z = zip::ZipArchive::new(std::io::Cursor::new(&a)).expect("zip");
            assert_eq!(cd.start, z.central_directory_start(), "zip64 {zip64}");
            assert_eq!(&a[cd.start as usize..cd.start as usize + 4], b"PK\x01\x02");
            // From only the last bytes: the directory lies before them here.
            let short = &a[a.len() - 200..];
            let cd2 = central_directory(short, size).expect("found in 200 bytes");
            assert_eq!(cd2, cd);
        }
    }

    #[test]
    fn a_tail_without_an_eocd_or_with_a_lying_offset_is_refused() {
        let a = archive(3, 100, false);
        let size = a.len() as u64;
        assert!(central_directory(&a[..a.len() - 30], size).is_err());
        let mut bad = a.clone();
        let eocd = bad.len() - 22;
        bad[eocd + 16..eocd + 20].copy_from_slice(&(size as u32).to_le_bytes());
        let e = central_directory(&bad, size).expect_err("lying offset");
        assert!(e.contains("overlaps"), "{e}");
    }

    #[test]
    fn spans_run_from_each_header_to_the_next_and_coalesce_with_gaps() {
        let spans = entry_spans(&[500, 0, 200], 900).expect("spans");
        assert_eq!(spans, vec![500..900, 0..200, 200..500]);
        assert!(entry_spans(&[0, 0], 10).is_err());
        assert!(entry_spans(&[0, 10], 10).is_err());
        assert_eq!(
            coalesce(vec![500..900, 0..200, 210..300, 5000..6000], 16),
            vec![0..300, 500..900, 5000..6000]
        );
        assert_eq!(
            coalesce(vec![0..10, 20..30], 100_000),
            vec![0..30],
            "a small gap is cheaper fetched than asked for twice"
        );
        assert_eq!(
            missing(&[0..100, 200..300], &[50..60, 250..400]),
            vec![0..50, 60..100, 200..250]
        );
    }

    #[test]
    fn the_spans_of_a_real_archive_hold_exactly_its_entries() {
        let a = archive(4, 3000, false);
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&a)).expect("zip");
        let starts: Vec<u64> = (0..z.len())
            .map(|i| z.by_index_data(i).expect("entry").header_start())
            .collect();
        let spans = entry_spans(&starts, z.central_directory_start()).expect("spans");
        for (i, s) in spans.iter().enumerate() {
            let e = z.by_index(i).expect("entry");
            let data = e.data_start().expect("read");
            assert!(data + e.compressed_size() <= s.end, "{s:?}");
        }
        assert_eq!(
            spans.iter().map(|s| s.end - s.start).sum::<u64>(),
            z.central_directory_start()
        );
    }
}
