//! Ferrum: an Electrum server that indexes a Bitcoin Core node.
//!
//! The modules follow the data flow: `daemon` (bitcoind client) → `index` (the only writer) →
//! `store` (RocksDB and the txid file) → `query` (answers from one consistent snapshot) →
//! `mempool` → `electrum` (the protocol) → `server` (transports and sessions). `config` builds
//! the settings every stage reads.

// Outside input never panics the server (the workspace's Cargo.toml says why here).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// Items are `pub(crate)` unless the surface below re-exports them: a `pub` that nothing outside
// the crate can reach is an error.
#![deny(unreachable_pub)]

mod admin;
mod app;
mod chain;
mod config;
mod connect;
mod cost;
mod daemon;
mod electrum;
mod hostport;
mod index;
mod inspect;
mod mempool;
pub mod merkle;
mod metrics;
mod monitor;
mod network;
mod peers;
mod query;
mod server;
mod shutdown;
mod store;
mod sync;
mod web;

// The library's surface: what the `ferrum` binary, the integration tests, the fuzz targets and the
// benchmark reach. Everything else is the crate's own.

// The binary: its command line, start-up and the admin RPC client.
pub use admin::{call as admin_call, call_waiting as admin_call_waiting, render as admin_render};
pub use app::{choose_mode, run};
pub use config::{
    check_log_filter, reference as config_reference, Cli, Command, Config, Options, ProcessEnv, DEFAULT_LOG,
    DEFAULT_RPC_PORT,
};
pub use connect::report as connect_report;
pub use daemon::{zmq::Subscriber as ZmqSubscriber, Auth, Daemon, DaemonConfig, DaemonError, NodeInfo, NodeTip};
pub use inspect::run as inspect;
pub use monitor::LogControl;
pub use shutdown::StopSignal;

// The pipeline, driven stage by stage by the tests, the fuzz targets and the scale benchmark.
pub use electrum::{session::Session, state::SessionState, Electrum, ElectrumConfig};
pub use index::{build, share_cache_mb, BlockSource, DaemonSource, Index, IndexConfig, Indexer, DEFAULT_CACHE_MB};
pub use mempool::Mempool;
pub use network::Network;
pub use query::{Query, ScriptCacheConfig, ScriptCacheStats};
pub use store::{DiskUsage, Level, PrevoutMode, RawRow, Store, StoreConfig, Table};

pub use ferrum_codec::{parse, protocol::Method, rows::sh_prefix, types};
