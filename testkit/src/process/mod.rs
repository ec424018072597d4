//! Everything the harness runs as a child process, each stopped when its handle is dropped and
//! killed by the kernel if the test process dies: the regtest node ([`node::Node`]) and the
//! front that makes it answer as Bitcoin Core 29 ([`core29::Core29Proxy`], a thread rather
//! than a process, stopped on drop as well), Ferrum ([`ferrum::Ferrum`]), the reference server
//! ElectrumX ([`electrumx::ElectrumX`]), the Electrum wallets
//! ([`electrum_wallet::ElectrumWallet`]), and Docker containers and Compose projects
//! ([`docker`]).

pub mod core29;
pub mod docker;
pub mod electrum_wallet;
pub mod electrumx;
pub mod ferrum;
pub mod node;
pub mod spawn;

pub use spawn::{checked, die_with_parent, free_port, run};
