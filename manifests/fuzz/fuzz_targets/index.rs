//! Fuzz target: a bundle's index as the bootstrapper reads it (after its hash
//! matched the signed manifest): parse, `validate_index` against what a manifest
//! promised (taken from the index itself, so the checks past the counts are reached),
//! the path rules, and the lookups the install uses. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peft_manifest::{FileIndex, IndexRef, Sha256, check_entry_path, validate_index};

fuzz_target!(|data: &[u8]| {
    let Ok(idx) = FileIndex::from_json(data) else {
        return;
    };
    let promised = IndexRef {
        sha256: Sha256::of(data),
        size: data.len() as u64,
        files: idx.files.len() as u64,
        unpacked_size: idx.unpacked_size(),
    };
    let entry = idx
        .files
        .first()
        .map(|f| f.path.clone())
        .unwrap_or_default();
    for p in validate_index(&idx, &promised, &entry) {
        let _ = p.to_string();
    }
    for f in &idx.files {
        let _ = check_entry_path(&f.path);
        let _ = idx.get(&f.path);
    }
    let _ = idx.carriers();
    let back = FileIndex::from_json(&idx.to_json()).expect("the index's own JSON parses");
    assert_eq!(back, idx);
});
