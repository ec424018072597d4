//! Ferrum: an Electrum server that indexes a Bitcoin Core node.
//!
//! The modules follow the data flow: `daemon` (bitcoind client) → `index` (the only writer) →
//! `store` (RocksDB and the txid file) → `query` (answers from one consistent snapshot) →
//! `mempool` → `electrum` (the protocol) → `server` (transports and sessions). `config` builds
//! the settings every stage reads.

// Outside input never panics the server (the workspace's Cargo.toml says why here).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod admin;
pub mod app;
pub mod chain;
pub mod config;
pub mod cost;
pub mod daemon;
pub mod electrum;
pub mod index;
pub mod inspect;
pub mod mempool;
pub mod merkle;
pub mod metrics;
pub mod monitor;
pub mod network;
pub mod query;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod sync;
pub mod web;

pub use ferrum_codec::{parse, types};
