//! One file per method family. [`dispatch`] routes a request by name, after checking that the
//! session's negotiated protocol version has the method.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod blockchain;
mod mempool;
mod scripthash;
mod server;
mod transaction;

use std::sync::Arc;

use serde_json::Value;

use super::jsonrpc::{Params, RpcError, METHOD_NOT_FOUND};
use super::session::SessionState;
use super::Electrum;

/// One call: the shared state, the calling session and the request.
pub struct Call<'a> {
    pub electrum: &'a Arc<Electrum>,
    pub session: &'a mut SessionState,
    pub method: &'a str,
    pub params: &'a Params,
}

impl Call<'_> {
    /// Binds parameters to the method's signature (see [`Params::bind`]).
    pub fn args(&self, names: &[&str], required: usize) -> Result<Vec<Option<Value>>, RpcError> {
        self.params.bind(self.method, names, required, false)
    }
}

/// A method's result: a JSON value, or JSON text written directly (large answers skip building
/// a value tree, which costs more than computing them).
#[derive(Debug)]
pub enum Answer {
    Value(Value),
    Text(String),
}

/// Whether the negotiated version has this method (ElectrumX's set for each version).
pub fn available(method: &str, version: &[u32]) -> bool {
    match method {
        "blockchain.scripthash.unsubscribe" => version >= [1, 4, 2].as_slice(),
        "blockchain.transaction.broadcast_package" | "mempool.get_info" => version >= [1, 6].as_slice(),
        "blockchain.relayfee" => version < [1, 6].as_slice(),
        "blockchain.block.header"
        | "blockchain.block.headers"
        | "blockchain.estimatefee"
        | "blockchain.headers.subscribe"
        | "blockchain.transaction.broadcast"
        | "blockchain.transaction.get"
        | "blockchain.transaction.get_merkle"
        | "blockchain.transaction.id_from_pos"
        | "mempool.get_fee_histogram"
        | "server.add_peer"
        | "server.banner"
        | "server.donation_address"
        | "server.features"
        | "server.peers.subscribe"
        | "server.ping"
        | "server.version"
        | "blockchain.scripthash.get_balance"
        | "blockchain.scripthash.get_history"
        | "blockchain.scripthash.get_mempool"
        | "blockchain.scripthash.listunspent"
        | "blockchain.scripthash.subscribe" => true,
        _ => false,
    }
}

/// The index tip as a header event.
pub fn tip_event(e: &Electrum) -> Option<(u32, [u8; 80])> {
    blockchain::tip_header(e).ok()
}

/// `server.version`, which comes before any version is negotiated.
pub fn server_version(mut call: Call<'_>) -> Result<Value, RpcError> {
    server::version(&mut call)
}

/// Runs a method for a session that has negotiated a version.
pub async fn dispatch(mut call: Call<'_>) -> Result<Answer, RpcError> {
    let version = call.session.version.clone().unwrap_or_default();
    if !available(call.method, &version) {
        return Err(RpcError::new(METHOD_NOT_FOUND, format!("unknown method \"{}\"", call.method)));
    }
    match call.method {
        m if m.starts_with("server.") => server::call(&mut call).await.map(Answer::Value),
        m if m.starts_with("blockchain.scripthash.") => scripthash::call(&mut call).await,
        m if m.starts_with("blockchain.transaction.") => transaction::call(&mut call).await.map(Answer::Value),
        m if m.starts_with("mempool.") => mempool::call(&mut call).await.map(Answer::Value),
        _ => blockchain::call(&mut call).await.map(Answer::Value),
    }
}
