//! Clients of the servers under test and of the node: the Electrum protocol
//! ([`electrum::Client`]) and bitcoind's JSON-RPC and REST ([`rpc::Rpc`]).

pub mod electrum;
pub mod rpc;
