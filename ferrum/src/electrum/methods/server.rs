//! `server.*`: version negotiation, banner, donation address, features, peers, ping.

use serde_json::{json, Map, Value};

use crate::electrum::coerce::{py_repr, py_str};
use crate::electrum::jsonrpc::RpcError;
use crate::electrum::protocol::ProtocolVersion;
use crate::electrum::state::SessionState;
use crate::electrum::{server_version, Electrum};

/// `server.version`: the first message of a session. Sets the session's version, or asks for
/// the session to be closed after the error reply.
pub(super) fn version(
    session: &mut SessionState,
    client_name: Option<Value>,
    requested: Option<Value>,
) -> Result<Value, RpcError> {
    if session.version_seen {
        return Err(RpcError::bad_request("server.version already sent"));
    }
    session.version_seen = true;
    if let Some(name) = client_name {
        let name = py_str(&name);
        if !name.is_empty() {
            session.client = name.chars().take(100).collect();
        }
    }
    match ProtocolVersion::negotiate(requested.as_ref()) {
        Some(v) => {
            let answer = json!([server_version(), v.to_string()]);
            session.version = Some(v);
            Ok(answer)
        }
        None => {
            session.close_after_reply = true;
            let shown = match &requested {
                None => "None".to_string(),
                Some(v @ Value::Array(_)) => py_repr(v),
                Some(v) => py_str(v),
            };
            Err(RpcError::bad_request(format!("unsupported protocol version: {shown}")))
        }
    }
}

pub(super) fn donation_address(e: &Electrum) -> Value {
    json!(e.config.donation_address)
}

/// Ferrum does no peer discovery: it knows of no other servers.
pub(super) fn peers_subscribe() -> Value {
    json!([])
}

pub(super) fn add_peer() -> Value {
    json!(false)
}

pub(super) fn ping() -> Value {
    Value::Null
}

/// `server.features`, truthful: genesis hash, the announced services, protocol range.
pub(super) fn features(e: &Electrum) -> Value {
    let mut hosts: Map<String, Value> = Map::new();
    for s in &e.config.report_services {
        let entry = hosts.entry(s.host.clone()).or_insert_with(|| json!({}));
        if let Some(obj) = entry.as_object_mut() {
            let key = format!("{}_port", s.protocol);
            obj.entry(key).or_insert(json!(s.port));
        }
    }
    let services: Vec<String> =
        e.config.report_services.iter().map(|s| format!("{}://{}:{}", s.protocol, s.host, s.port)).collect();
    json!({
        "hosts": hosts,
        "pruning": null,
        "server_version": server_version(),
        "protocol_min": ProtocolVersion::MIN.to_string(),
        "protocol_max": ProtocolVersion::MAX.to_string(),
        "genesis_hash": e.config.network.genesis_hash_hex(),
        "hash_function": "sha256",
        "services": services,
    })
}

/// The banner file with ElectrumX's substitutions, or a default line.
pub(super) async fn banner(e: &Electrum) -> Result<Value, RpcError> {
    let default = format!("You are connected to a {} server.", server_version());
    let Some(path) = &e.config.banner_file else { return Ok(json!(default)) };
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(err) => {
            tracing::error!("reading banner file {}: {err}", path.display());
            return Ok(json!(default));
        }
    };
    let info = e.daemon.recent_network_info().await?;
    let v = info.version;
    let daemon_version = format!("{}.{}.{}", v / 10_000, v % 10_000 / 100, v % 100);
    let text = text
        .replace("$SERVER_VERSION", env!("CARGO_PKG_VERSION"))
        .replace("$SERVER_SUBVERSION", &server_version())
        .replace("$DAEMON_VERSION", &daemon_version)
        .replace("$DAEMON_SUBVERSION", &info.subversion)
        .replace("$DONATION_ADDRESS", &e.config.donation_address);
    Ok(json!(text))
}
