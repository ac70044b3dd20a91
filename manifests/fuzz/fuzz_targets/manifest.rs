//! Fuzz target: a manifest's bytes as the bootstrapper parses them after the
//! signature passed: parse, `validate`, `judge` against a remembered channel, and the
//! memory an acceptance would leave. Whatever parses must write and parse back equal,
//! and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peft_manifest::accept::judge;
use peft_manifest::{ChannelMemory, KeyId, Manifest, Policy, TrustedKeys, validate};
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::from_json(data) else {
        return;
    };
    let problems = validate(&m);
    for p in &problems {
        let _ = p.to_string();
    }
    let back = Manifest::from_json(&m.to_json()).expect("the manifest's own JSON parses");
    assert_eq!(back, m, "a manifest does not survive writing and reading");
    let keys = TrustedKeys::builtin();
    let memory = ChannelMemory {
        serial: 5,
        published_at: Some(OffsetDateTime::UNIX_EPOCH),
        signed_by: Some(KeyId(1)),
        ..ChannelMemory::default()
    };
    let policy = Policy {
        channel: "stable",
        keys: &keys,
        offline: false,
        memory: &memory,
        now: m.published_at,
    };
    for r in judge(&m, KeyId(2), &policy) {
        let _ = r.to_string();
    }
    let after = memory.after(&m, KeyId(2));
    let _ = after.floor(&m, KeyId(3));
    let _ = after.trusted(&keys);
});
