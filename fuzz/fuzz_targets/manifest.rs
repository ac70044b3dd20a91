//! Fuzz target `manifest`: untrusted bytes as a signed channel manifest.
//!
//! For any input, nothing panics and:
//! - `Manifest::from_json` then `validate` (what runs on every manifest whose
//!   signature verified) return normally;
//! - the input as a body and a signature text (split at the first NUL) is refused by
//!   `accept::open` as untrusted, with a key made once per process and with the
//!   built-in keys: a garbled or forged signature is an error, never a panic;
//! - an input that parses is signed with that key, so `open` and `judge` run over
//!   it; `open` agrees with the parse, `judge` reports `Malformed` exactly when
//!   `validate` finds a problem, and `accept` refuses exactly when `judge` does;
//! - round trip: a manifest that parses and validates serializes (`to_json`) and
//!   parses back equal.
//!
//! Signing costs about 100 µs, so only inputs that parse are signed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peft_manifest::accept::{Policy, Refusal, accept, judge, open};
use peft_manifest::{ChannelMemory, Manifest, SCHEMA, TrustedKeys, validate};

/// A test key pair, made once per process; trusted by nothing outside this target.
struct TestKey {
    sk: minisign::SecretKey,
    keys: TrustedKeys,
}

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().expect("a key pair");
        let text = kp.pk.to_box().expect("a public key box").to_string();
        let keys = TrustedKeys::from_text(&text).expect("the test key is a minisign key");
        TestKey { sk: kp.sk, keys }
    })
}

fn sign(body: &[u8]) -> String {
    minisign::sign(None, &key().sk, body, Some("fuzz"), None)
        .expect("signing")
        .to_string()
}

/// What a machine remembers of the channel: a serial of 1 accepted before.
fn memory() -> &'static ChannelMemory {
    static MEMORY: OnceLock<ChannelMemory> = OnceLock::new();
    MEMORY.get_or_init(|| ChannelMemory {
        serial: 1,
        ..ChannelMemory::default()
    })
}

fn policy(keys: &TrustedKeys) -> Policy<'_> {
    Policy {
        channel: "stable",
        keys,
        offline: false,
        memory: memory(),
        now: time::macros::datetime!(2026-06-01 00:00 UTC),
    }
}

fuzz_target!(|data: &[u8]| {
    // A body and a signature that no key here made: always untrusted.
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        let (body, sig) = (&data[..nul], String::from_utf8_lossy(&data[nul + 1..]));
        for keys in [&key().keys, &TrustedKeys::builtin()] {
            let got = open(body, &sig, keys);
            assert!(matches!(got, Err(Refusal::Untrusted(_))), "{got:?}");
        }
        let _ = TrustedKeys::from_text(&sig);
    }

    let parsed = Manifest::from_json(data);
    let Ok(m) = parsed else {
        return;
    };
    let problems = validate(&m);

    let sig = sign(data);
    let keys = &key().keys;
    let signer = match open(data, &sig, keys) {
        Ok((opened, verified)) => {
            assert!(m.schema <= SCHEMA);
            assert_eq!(opened, m);
            Some(verified.id)
        }
        Err(Refusal::NewerSchema { got }) => {
            assert!(got > SCHEMA && got == m.schema);
            None
        }
        Err(other) => panic!("a signed manifest that parses was refused: {other}"),
    };
    let Some(signer) = signer else {
        return;
    };
    let p = policy(keys);
    let refusals = judge(&m, signer, &p);
    assert_eq!(
        refusals.iter().any(|r| matches!(r, Refusal::Malformed(_))),
        !problems.is_empty(),
        "{refusals:?} {problems:?}"
    );
    {
        let accepted = accept(data, &sig, &p);
        match refusals.first() {
            None => assert!(accepted.is_ok(), "{accepted:?}"),
            Some(first) => assert_eq!(accepted.err().as_ref(), Some(first)),
        }
    }

    if problems.is_empty() {
        let json = m.to_json();
        let back = Manifest::from_json(&json).expect("a valid manifest parses back");
        assert_eq!(back, m, "{}", String::from_utf8_lossy(&json));
    }
});
