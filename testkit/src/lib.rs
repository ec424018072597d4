//! The regtest harness shared by Ferrum's tests and benchmarks: a real `bitcoind` per test
//! ([`Node`]), keys and transactions of every common kind without the node's wallet
//! ([`Wallet`]), chain surgery (mining, reorgs, restarts), seeded scenarios ([`scenario`]) and the
//! expected index contents computed from the node's own data ([`truth`]), and the reference
//! server ElectrumX run against a node ([`electrumx`]).

pub mod btcpay;
pub mod chaingen;
pub mod core29;
pub mod docker;
pub mod electrum;
pub mod electrum_wallet;
pub mod electrumx;
pub mod ferrum;
pub mod keys;
pub mod node;
pub mod rpc;
pub mod scenario;
pub mod truth;
pub mod wallet;

pub use electrumx::ElectrumX;
pub use ferrum::Ferrum;
pub use keys::{scripthash, scripthash_hex, Kind, Receiver, Utxo};
pub use node::{bitcoin_cli_exe, bitcoind_exe, free_port, Node, NodeOptions};
pub use wallet::{Inputs, TxSpec, Wallet};

/// Polls `f` until it returns `Some`, at most `timeout`; the error names what was awaited.
pub fn wait_for<T>(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An `rpcauth` value (`user:salt$hmac`) for `password`, as Bitcoin Core's
/// share/rpcauth/rpcauth.py writes it: HMAC-SHA256 keyed by the salt's text.
pub fn rpcauth(user: &str, salt: &str, password: &str) -> String {
    use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(salt.as_bytes());
    engine.input(password.as_bytes());
    let mac = hmac::Hmac::<sha256::Hash>::from_engine(engine);
    format!("{user}:{salt}${}", hex::encode(mac.to_byte_array()))
}
