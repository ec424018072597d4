//! Everything the harness runs as a child process, each stopped when its handle is dropped and
//! killed by the kernel if the test process dies: the regtest node ([`node::Node`]) and the
//! front that makes it answer as Bitcoin Core 29 ([`core29::Core29Proxy`], a thread rather
//! than a process, stopped on drop as well), Ferrum ([`ferrum::Ferrum`]), the reference server
//! ElectrumX ([`electrumx::ElectrumX`]), the Electrum wallets
//! ([`electrum_wallet::ElectrumWallet`]), Docker containers and Compose projects ([`docker`]),
//! HAProxy in front of replicas ([`haproxy::Haproxy`]), a SOCKS5 proxy standing in for Tor
//! ([`socks::Socks5Proxy`], a thread),
//! and the commands the tests run to completion: headless Chromium ([`chromium`]) and
//! `openssl` ([`openssl`]). [`served::Served`] is a Ferrum serving every transport, as most
//! tests want it.

pub mod chromium;
pub mod core29;
pub mod docker;
pub mod electrum_wallet;
pub mod electrumx;
pub mod ferrum;
pub mod haproxy;
pub mod node;
pub mod openssl;
pub mod served;
pub mod socks;
pub mod spawn;

pub use spawn::{checked, die_with_parent, free_port, run};
