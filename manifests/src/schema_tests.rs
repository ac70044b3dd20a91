//! The JSON Schema (`manifest.schema.json`), the examples and the Rust types agree.

use proptest::prelude::*;

use crate::sample::{arb_manifest, manifest};
use crate::{Manifest, validate};

const SCHEMA: &str = include_str!("../manifest.schema.json");
const EXAMPLE: &str = include_str!("../examples/stable.json");

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn schema_errors(v: &jsonschema::Validator, json: &serde_json::Value) -> Vec<String> {
    v.iter_errors(json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_example_is_valid_by_the_schema_and_the_types() {
    let v = validator();
    let json: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example is JSON");
    assert_eq!(schema_errors(&v, &json), Vec::<String>::new());
    let m = Manifest::from_json(EXAMPLE.as_bytes()).expect("example parses");
    assert_eq!(validate(&m), vec![]);
}

#[test]
fn the_schema_rejects_what_the_types_reject() {
    let v = validator();
    let good: serde_json::Value = serde_json::from_slice(&manifest().to_json()).expect("json");
    for (pointer, bad) in [
        ("/serial", serde_json::json!(0)),
        ("/schema", serde_json::json!(2)),
        (
            "/releases/0/variants/0/archive/sha256",
            serde_json::json!("XYZ"),
        ),
        (
            "/releases/0/variants/1/requires/min_driver",
            serde_json::json!("five-fifty"),
        ),
        ("/releases/0/version", serde_json::json!("1.3")),
        ("/keys/next/0", serde_json::json!("RWQ")),
        ("/keys/retired/0", serde_json::json!("not-a-key-id")),
    ] {
        let mut j = good.clone();
        *j.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} exists")) = bad;
        assert!(
            !schema_errors(&v, &j).is_empty(),
            "schema accepted a bad {pointer}"
        );
        let parsed = Manifest::from_json(&serde_json::to_vec(&j).expect("json"));
        assert!(
            parsed.map(|m| !validate(&m).is_empty()).unwrap_or(true),
            "types accepted a bad {pointer}"
        );
    }
}

proptest! {
    #[test]
    fn every_manifest_the_types_write_is_valid_by_the_schema(m in arb_manifest()) {
        let v = validator();
        let json: serde_json::Value = serde_json::from_slice(&m.to_json()).expect("json");
        prop_assert_eq!(schema_errors(&v, &json), Vec::<String>::new());
    }
}
