//! Tests of [`super`]: the order of the checks, and key rotation, fast-forward
//! recovery and the clock floor with real minisign signatures.

use std::io::Cursor;

use time::Duration;

use super::*;
use crate::memory::ChannelMemory;
use crate::sample;
use crate::trust::public_key_id;

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-11-02 00:00 UTC)
}

/// A release key: a real minisign key pair.
struct Key {
    kp: minisign::KeyPair,
    line: String,
    id: KeyId,
}

fn key() -> Key {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().expect("keypair");
    let line = kp.pk.to_base64();
    let id = public_key_id(&line).expect("id");
    Key { kp, line, id }
}

fn keys(k: &[&Key]) -> TrustedKeys {
    let text: Vec<&str> = k.iter().map(|k| k.line.as_str()).collect();
    TrustedKeys::from_text(&text.join("\n")).expect("keys")
}

/// `m` as `publish` writes it, and its signature by `k`.
fn signed(m: &Manifest, k: &Key) -> (Vec<u8>, String) {
    let bytes = m.to_json();
    let sig = minisign::sign(Some(&k.kp.pk), &k.kp.sk, Cursor::new(&bytes), None, None)
        .expect("sign")
        .to_string();
    (bytes, sig)
}

/// The sample manifest with serial `serial`, announcing `next`, retiring `retired`.
fn manifest(serial: u64, next: &[&Key], retired: &[&Key]) -> Manifest {
    let mut m = sample::manifest();
    m.serial = serial;
    m.keys.next = next.iter().map(|k| k.line.clone()).collect();
    m.keys.retired = retired.iter().map(|k| k.id).collect();
    m
}

/// Accepts `m` signed by `k` with base keys `base` and `memory`.
fn run(
    m: &Manifest,
    k: &Key,
    base: &TrustedKeys,
    memory: &ChannelMemory,
) -> Result<Accepted, Refusal> {
    let (bytes, sig) = signed(m, k);
    let policy = Policy {
        channel: "stable",
        keys: base,
        offline: false,
        memory,
        now: now(),
    };
    accept(&bytes, &sig, &policy)
}

#[test]
fn judge_lists_every_problem_in_order() {
    let mut m = sample::manifest();
    m.channel = "beta".into();
    m.serial = 3;
    m.expires_at = now() - Duration::days(1);
    m.releases[0].variants[0].archive.size = 0;
    let keys = TrustedKeys::builtin();
    let signer = KeyId(7);
    m.keys.retired = vec![signer];
    let memory = ChannelMemory {
        serial: 7,
        retired: vec![signer],
        ..ChannelMemory::default()
    };
    let p = Policy {
        channel: "stable",
        keys: &keys,
        offline: false,
        memory: &memory,
        now: now(),
    };
    let got = judge(&m, signer, &p);
    assert!(matches!(got[0], Refusal::Malformed(_)), "{got:?}");
    assert!(matches!(got[1], Refusal::RetiredKey { .. }), "{got:?}");
    assert!(
        matches!(got[2], Refusal::RetiresItsSigner { .. }),
        "{got:?}"
    );
    assert!(matches!(got[3], Refusal::WrongChannel { .. }), "{got:?}");
    assert!(
        matches!(
            got[4],
            Refusal::Replayed {
                got: 3,
                highest: 7,
                ..
            }
        ),
        "{got:?}"
    );
    assert!(matches!(got[5], Refusal::Expired { .. }), "{got:?}");
    assert_eq!(got.len(), 6);
    assert!(
        got[5]
            .to_string()
            .starts_with("the manifest expired at 2026-11-01")
    );
}

#[test]
fn an_offline_manifest_may_be_expired_but_nothing_else() {
    let m = sample::manifest();
    let keys = TrustedKeys::builtin();
    let memory = ChannelMemory::default();
    let p = Policy {
        channel: "stable",
        keys: &keys,
        offline: true,
        memory: &memory,
        now: m.expires_at + Duration::days(1),
    };
    assert_eq!(judge(&m, KeyId(1), &p), vec![]);
    let replayed = ChannelMemory {
        serial: m.serial + 1,
        ..memory.clone()
    };
    let p = Policy {
        memory: &replayed,
        ..p
    };
    assert!(matches!(
        judge(&m, KeyId(1), &p)[..],
        [Refusal::Replayed { .. }]
    ));
}

#[test]
fn unsigned_bytes_are_refused_before_parsing() {
    let keys = TrustedKeys::builtin();
    let memory = ChannelMemory::default();
    let p = Policy {
        channel: "stable",
        keys: &keys,
        offline: false,
        memory: &memory,
        now: now(),
    };
    let got = accept(b"not json at all", "not a signature", &p);
    assert!(matches!(got, Err(Refusal::Untrusted(_))), "{got:?}");
}

#[test]
fn a_rotation_announced_then_used_then_the_old_key_is_refused() {
    let (a, b) = (key(), key());
    let base = keys(&[&a]);
    let fresh = ChannelMemory::default();
    // B alone is not trusted before an announcement.
    let got = run(&manifest(1, &[], &[]), &b, &base, &fresh);
    assert!(
        matches!(
            got,
            Err(Refusal::Untrusted(TrustError::UnknownSigner { .. }))
        ),
        "{got:?}"
    );
    // A announces B.
    let one = run(&manifest(1, &[&b], &[]), &a, &base, &fresh).expect("A announcing B");
    assert_eq!(one.memory.announced.len(), 1);
    assert_eq!(
        (one.memory.announced[0].id, one.memory.announced[0].by),
        (b.id, a.id)
    );
    assert_eq!(one.memory.signed_by, Some(a.id));
    // B signs and retires A.
    let two = run(&manifest(2, &[], &[&a]), &b, &base, &one.memory).expect("B retiring A");
    assert_eq!(two.verified.id, b.id);
    assert_eq!(two.memory.retired, vec![a.id]);
    assert_eq!(two.memory.announced[0].id, b.id, "the signer survives");
    // A is built in (base) but rotated out.
    let got = run(&manifest(3, &[], &[]), &a, &base, &two.memory);
    assert!(
        matches!(got, Err(Refusal::RetiredKey { key, .. }) if key == a.id),
        "{got:?}"
    );
    // B keeps signing.
    run(&manifest(3, &[], &[&a]), &b, &base, &two.memory).expect("B again");
    // A machine that never saw the announcement does not trust B.
    let got = run(&manifest(3, &[], &[&a]), &b, &base, &fresh);
    assert!(matches!(got, Err(Refusal::Untrusted(_))), "{got:?}");
}

#[test]
fn rotation_only_moves_forward() {
    let (a, b) = (key(), key());
    let base = keys(&[&a]);
    let one = run(
        &manifest(1, &[&b], &[]),
        &a,
        &base,
        &ChannelMemory::default(),
    )
    .expect("1");
    let got = run(&manifest(2, &[], &[&b]), &a, &base, &one.memory);
    assert!(
        matches!(got, Err(Refusal::RetiresSuccessor { signer, retired }) if signer == a.id && retired == b.id),
        "{got:?}"
    );
    let got = run(&manifest(2, &[], &[&a]), &a, &base, &one.memory);
    assert!(
        matches!(got, Err(Refusal::RetiresItsSigner { .. })),
        "{got:?}"
    );
}

#[test]
fn a_fast_forwarded_serial_is_dropped_when_its_key_is_retired() {
    let (a, b) = (key(), key());
    let base = keys(&[&a]);
    let one = run(
        &manifest(1, &[&b], &[]),
        &a,
        &base,
        &ChannelMemory::default(),
    )
    .expect("1");
    // An attacker holding A pushes the serial far ahead.
    let ff = run(&manifest(1_000_000, &[], &[]), &a, &base, &one.memory).expect("ff");
    assert_eq!(
        (ff.memory.serial, ff.memory.signed_by),
        (1_000_000, Some(a.id))
    );
    // The publisher's next manifest is locked out while A is not retired ...
    let got = run(&manifest(2, &[], &[]), &b, &base, &ff.memory);
    assert!(
        matches!(
            got,
            Err(Refusal::Replayed {
                highest: 1_000_000,
                ..
            })
        ),
        "{got:?}"
    );
    // ... and accepted once it retires A.
    let two = run(&manifest(2, &[], &[&a]), &b, &base, &ff.memory).expect("recovery");
    assert_eq!(
        two.dropped_floor,
        Some(Dropped {
            serial: 1_000_000,
            key: a.id
        })
    );
    assert_eq!((two.memory.serial, two.memory.signed_by), (2, Some(b.id)));
    // The new floor holds: an older manifest of B is a replay.
    let got = run(&manifest(1, &[], &[&a]), &b, &base, &two.memory);
    assert!(
        matches!(got, Err(Refusal::Replayed { highest: 2, .. })),
        "{got:?}"
    );
}

#[test]
fn keys_announced_by_a_retired_key_are_forgotten_with_their_floor() {
    let (a, b, x) = (key(), key(), key());
    let base = keys(&[&a]);
    let one = run(
        &manifest(1, &[&b], &[]),
        &a,
        &base,
        &ChannelMemory::default(),
    )
    .expect("1");
    // The attacker (holding A) announces X, then signs serial 1,000,000 with it.
    let two = run(&manifest(2, &[&x], &[]), &a, &base, &one.memory).expect("2");
    let ff = run(&manifest(1_000_000, &[], &[]), &x, &base, &two.memory).expect("ff");
    assert_eq!(ff.memory.signed_by, Some(x.id));
    // B retires A: X goes with it, and so does the floor X set.
    let rec = run(&manifest(3, &[], &[&a]), &b, &base, &ff.memory).expect("recovery");
    assert_eq!(rec.dropped_floor.map(|d| d.key), Some(x.id));
    let ids: Vec<KeyId> = rec.memory.announced.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![b.id]);
    let got = run(&manifest(4, &[], &[]), &x, &base, &rec.memory);
    assert!(
        matches!(
            got,
            Err(Refusal::Untrusted(TrustError::UnknownSigner { .. }))
        ),
        "{got:?}"
    );
}

#[test]
fn an_expired_manifest_stays_expired_when_the_clock_is_set_back() {
    let a = key();
    let base = keys(&[&a]);
    // Serial 1 was published (and accepted) at `now`.
    let mut m1 = manifest(1, &[], &[]);
    m1.published_at = now();
    m1.expires_at = now() + Duration::days(30);
    let one = run(&m1, &a, &base, &ChannelMemory::default()).expect("1");
    assert_eq!(one.memory.published_at, Some(now()));
    // Serial 2 expired ten days before that.
    let mut m2 = manifest(2, &[], &[]);
    m2.published_at = now() - Duration::days(11);
    m2.expires_at = now() - Duration::days(10);
    let (bytes, sig) = signed(&m2, &a);
    let back = now() - Duration::days(10) - Duration::hours(12);
    let policy = Policy {
        channel: "stable",
        keys: &base,
        offline: false,
        memory: &one.memory,
        now: back,
    };
    let got = accept(&bytes, &sig, &policy);
    match got {
        Err(Refusal::Expired {
            clock_behind: Some(t),
            ..
        }) => assert_eq!(t, now()),
        other => panic!("{other:?}"),
    }
    assert!(
        judge(&m2, a.id, &policy)[0]
            .to_string()
            .contains("clock reads earlier"),
    );
    // Without the memory, the clock set back would revive it.
    let fresh = ChannelMemory::default();
    let policy = Policy {
        memory: &fresh,
        ..policy
    };
    assert!(accept(&bytes, &sig, &policy).is_ok());
    // A sound manifest is accepted with the clock behind, and the caller told.
    let (bytes, sig) = signed(&m1, &a);
    let policy = Policy {
        memory: &one.memory,
        ..policy
    };
    let ok = accept(&bytes, &sig, &policy).expect("still valid at its publish time");
    assert_eq!(ok.clock_behind, Some(now()));
    assert_eq!(ok.expired, None);
}
