//! The regtest harness shared by Ferrum's tests and benchmarks.
//!
//! - [`keys`]: output scripts of every common kind, the signer, seeded keys and burn addresses;
//!   it imports nothing else from the harness.
//! - [`client`]: the Electrum protocol client and bitcoind's JSON-RPC and REST client.
//! - [`process`]: what runs as a child process, each stopped on drop: a real `bitcoind` per test
//!   ([`Node`]), the Bitcoin Core 29 front, Ferrum, ElectrumX, the Electrum wallets, Docker.
//! - [`chain`]: chains built on a node and what is expected of them: mining and reorgs, the
//!   harness's coins and transactions ([`Wallet`]), seeded scenarios, the truth of an index.
//! - [`btcpay`]: the rules of BTCPay Server's docker-compose generator.
//!
//! Modules depend in that order (`keys` and [`wait`] on nothing, `client` on `wait`, `process`
//! on both and on `keys`, `chain` on all of them), never back.

pub mod btcpay;
pub mod chain;
pub mod client;
pub mod keys;
pub mod process;
pub mod wait;

pub use chain::wallet::{Inputs, TxSpec, Wallet};
pub use keys::{scripthash, scripthash_hex, Kind, Receiver, Utxo};
pub use process::electrumx::ElectrumX;
pub use process::ferrum::Ferrum;
pub use process::node::{bitcoin_cli_exe, bitcoind_exe, rpcauth, Node, NodeOptions};
pub use process::spawn::free_port;
pub use wait::wait_for;
