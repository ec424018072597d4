//! Clients of the servers under test and of the node: the Electrum protocol
//! ([`electrum::Client`]), bitcoind's JSON-RPC and REST ([`rpc::Rpc`]), and one plain HTTP
//! request ([`http::request`]).

pub mod electrum;
pub mod http;
pub mod rpc;
