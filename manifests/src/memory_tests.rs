//! Tests of [`super`]: reading old `state.json` entries, and how a manifest changes
//! the memory (keys by id only; signatures are `accept_tests`' business).

use time::macros::datetime;

use super::*;
use crate::sample::{key_line, manifest};

fn m(serial: u64, next: &[u64], retired: &[u64]) -> Manifest {
    let mut m = manifest();
    m.serial = serial;
    m.keys.next = next.iter().map(|&k| key_line(k)).collect();
    m.keys.retired = retired.iter().map(|&k| KeyId(k)).collect();
    m
}

fn ids(mem: &ChannelMemory) -> Vec<(u64, u64)> {
    mem.announced.iter().map(|a| (a.id.0, a.by.0)).collect()
}

#[test]
fn an_entry_written_before_rotation_still_reads() {
    let old: ChannelMemory =
        serde_json::from_str(r#"{"serial":7,"published_at":"2026-11-01T00:00:00Z"}"#)
            .expect("old entry");
    assert_eq!(old.serial, 7);
    assert_eq!(old.published_at, Some(datetime!(2026-11-01 00:00 UTC)));
    assert_eq!((old.signed_by, old.announced.len()), (None, 0));
    let odd: ChannelMemory =
        serde_json::from_str(r#"{"serial":7,"published_at":"x"}"#).expect("odd time");
    assert_eq!(odd.published_at, None);
    let bare: ChannelMemory = serde_json::from_str(r#"{"serial":7}"#).expect("no time");
    assert_eq!(bare.serial, 7);
    // What older bootstrappers need is still written: serial and published_at.
    let after = old.after(&m(8, &[], &[]), KeyId(1));
    let json = serde_json::to_value(&after).expect("json");
    assert_eq!(json["serial"], 8);
    assert_eq!(json["published_at"], "2026-11-01T00:00:00Z");
    assert_eq!(json["signed_by"], "0000000000000001");
}

#[test]
fn the_same_manifest_again_fills_in_an_old_entry() {
    let old = ChannelMemory {
        serial: 7,
        ..ChannelMemory::default()
    };
    let after = old.after(&m(7, &[], &[]), KeyId(1));
    assert_eq!(after.signed_by, Some(KeyId(1)));
    assert!(after.published_at.is_some());
    // A lower serial (judged acceptable only offline or when the floor dropped)
    // never lowers the mark by itself.
    let lower = after.after(&m(6, &[], &[]), KeyId(1));
    assert_eq!(lower.serial, 7);
}

#[test]
fn announcements_are_remembered_once_and_never_for_the_signer_or_a_retired_key() {
    let mem = ChannelMemory::default().after(&m(1, &[2, 1, 3], &[]), KeyId(1));
    assert_eq!(ids(&mem), vec![(2, 1), (3, 1)]);
    let mem = mem.after(&m(2, &[2], &[4]), KeyId(1));
    assert_eq!(ids(&mem), vec![(2, 1), (3, 1)], "no second entry");
    let mem = mem.after(&m(3, &[4], &[]), KeyId(1));
    assert_eq!(ids(&mem), vec![(2, 1), (3, 1)], "4 is retired");
    assert_eq!(mem.retired, vec![KeyId(4)]);
}

#[test]
fn retiring_a_key_forgets_what_it_announced_but_not_the_retiring_signer() {
    // 1 announced 2 and 3; 3 announced 5 (so 5 descends from 1).
    let mem = ChannelMemory::default()
        .after(&m(1, &[2, 3], &[]), KeyId(1))
        .after(&m(2, &[5], &[]), KeyId(3));
    assert!(mem.descends_from(KeyId(5), KeyId(1)));
    assert!(mem.descends_from(KeyId(2), KeyId(1)));
    assert!(!mem.descends_from(KeyId(1), KeyId(2)));
    // 2 retires 1: 3 and 5 (vouched for only through 1) are forgotten; 2 stays.
    let after = mem.after(&m(3, &[], &[1]), KeyId(2));
    assert_eq!(ids(&after), vec![(2, 1)]);
    // A later manifest repeating the retirement (publish carries it) forgets no more.
    let again = after.after(&m(4, &[], &[1]), KeyId(2));
    assert_eq!(ids(&again), vec![(2, 1)]);
}

#[test]
fn the_floor_drops_only_for_the_key_that_set_it() {
    let mem = ChannelMemory {
        serial: 1_000_000,
        published_at: Some(datetime!(2099-01-01 00:00 UTC)),
        signed_by: Some(KeyId(1)),
        ..ChannelMemory::default()
    };
    let kept = mem.floor(&m(2, &[], &[9]), KeyId(2));
    assert_eq!((kept.serial, kept.dropped), (1_000_000, None));
    let dropped = mem.floor(&m(2, &[], &[1]), KeyId(2));
    assert_eq!(dropped.serial, 0);
    assert_eq!(dropped.published_at, None, "its future date goes too");
    assert_eq!(
        dropped.dropped,
        Some(Dropped {
            serial: 1_000_000,
            key: KeyId(1)
        })
    );
    let after = mem.after(&m(2, &[], &[1]), KeyId(2));
    assert_eq!((after.serial, after.signed_by), (2, Some(KeyId(2))));
    assert_eq!(after.published_at, Some(manifest().published_at));
}

#[test]
fn the_memory_is_bounded() {
    let mut mem = ChannelMemory::default();
    for i in 0..40u64 {
        let next = [1000 + 2 * i, 1001 + 2 * i];
        let retired: Vec<u64> = (0..10).map(|r| 100_000 + i * 10 + r).collect();
        mem = mem.after(&m(i + 1, &next, &retired), KeyId(1));
    }
    assert_eq!(mem.announced.len(), MAX_ANNOUNCED_REMEMBERED);
    assert_eq!(mem.announced.last().map(|a| a.id), Some(KeyId(1079)));
    assert_eq!(mem.retired.len(), MAX_RETIRED_REMEMBERED);
}
