//! The byte formats Ferrum reads from outside: blocks, transactions and spent outputs from
//! bitcoind, the rows of its own index, and JSON-RPC from clients with the Electrum protocol's
//! requests in it. Pure functions over bytes, no I/O, so that every parser can be fuzzed on its
//! own. `ferrum` re-exports each module where it is used (`ferrum::parse`, `ferrum::types`,
//! `ferrum::store::rows`, `ferrum::electrum::{jsonrpc, protocol, request, coerce}`).

// Outside input never panics the server (the workspace's Cargo.toml says why here).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod coerce;
pub mod jsonrpc;
pub mod parse;
pub mod protocol;
pub mod request;
pub mod rows;
pub mod types;
