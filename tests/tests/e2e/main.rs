//! The end-to-end tests: one binary over the support crate (`peft_e2e`), one
//! module per area. They run the built binaries: `cargo build --workspace --bins`
//! first (the test script does).

mod backbone;
mod commands;
mod concurrency;
mod crash;
mod engine;
mod formats;
mod heal;
mod offline;
mod progress;
mod proxy;
mod reasons;
mod refusals;
mod release;
mod repair;
mod self_update;
mod storage;
mod tls;
mod transport;
mod trust;
mod updates;
