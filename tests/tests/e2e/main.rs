//! The end-to-end tests: one binary over the support crate (`peft_e2e`), one
//! module per area. They run the built binaries: `cargo build --workspace --bins`
//! first (the test script does).

mod backbone;
mod engine;
mod offline;
mod refusals;
mod release;
mod self_update;
mod transport;
mod trust;
mod updates;
