//! Fuzz target: `accept::open` and `accept::accept`, the first code that sees a
//! downloaded manifest and its signature. The input is split at its first NUL byte
//! into the manifest's bytes and the `.minisig` text. Those are checked against a
//! fixed public key (the signature decoder and verifier); then the bytes are signed
//! with a fixed key pair and accepted through the whole path (signature, parse,
//! schema, judge, memory), as the bootstrapper would. Nothing may panic.
#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peft_manifest::accept::{accept, open};
use peft_manifest::{ChannelMemory, Policy, TrustedKeys};
use time::OffsetDateTime;

fn signer() -> &'static (minisign::KeyPair, TrustedKeys) {
    static KEY: OnceLock<(minisign::KeyPair, TrustedKeys)> = OnceLock::new();
    KEY.get_or_init(|| {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().expect("keypair");
        let keys = TrustedKeys::from_text(&kp.pk.to_base64()).expect("key");
        (kp, keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let (bytes, sig) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let builtin = TrustedKeys::builtin();
    let _ = open(bytes, &String::from_utf8_lossy(sig), &builtin);
    let (kp, keys) = signer();
    let Ok(sig) = minisign::sign(Some(&kp.pk), &kp.sk, Cursor::new(bytes), None, None) else {
        return;
    };
    let memory = ChannelMemory::default();
    let policy = Policy {
        channel: "stable",
        keys,
        offline: true,
        memory: &memory,
        now: OffsetDateTime::UNIX_EPOCH,
    };
    match accept(bytes, &sig.to_string(), &policy) {
        Ok(a) => assert!(a.memory.serial >= memory.serial),
        Err(r) => {
            let _ = r.to_string();
        }
    }
});
