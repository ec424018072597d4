//! `server.*`: version negotiation, banner, donation address, features, peers, ping.

use serde_json::{json, Map, Value};

use crate::electrum::coerce::{non_negative, py_repr, py_str};
use crate::electrum::jsonrpc::RpcError;
use crate::electrum::protocol::ProtocolVersion;
use crate::electrum::state::SessionState;
use crate::electrum::{server_version, Electrum, ElectrumConfig};
use crate::hostport;

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

/// The peers verified recently (`[]` without peer discovery).
pub(super) fn peers_subscribe(e: &Electrum) -> Value {
    e.peers.subscribe_answer()
}

/// `server.add_peer`: whether the peer was taken (never without peer discovery).
pub(super) async fn add_peer(e: &Electrum, session: &SessionState, features: &Value) -> Value {
    json!(e.peers.add_peer(features, session.client_ip).await)
}

/// `server.ping`: nothing before 1.7; from 1.7, `pong_len` zeros back (padding a client may
/// ask for against traffic analysis), after checking `data` (hex, its padding) as ElectrumX.
pub(super) fn ping(
    e: &Electrum,
    session: &SessionState,
    pong_len: Option<Value>,
    data: Option<Value>,
) -> Result<Value, RpcError> {
    if !session.speaks(&ProtocolVersion::V1_7) {
        return Ok(Value::Null);
    }
    if let Some(data) = data {
        let whole = data.as_str().map(|s| if s.len() % 2 == 1 { format!("0{s}") } else { s.to_string() });
        if whole.is_none_or(|s| hex::decode(s).is_err()) {
            return Err(RpcError::bad_request(format!("{} should be a hex string", py_str(&data))));
        }
    }
    let len = pong_len.map_or(Ok(0), |v| non_negative(&v))?;
    if len > e.config.max_send as u64 {
        return Err(RpcError::bad_request("pong_len value too high"));
    }
    Ok(json!({"data": "0".repeat(len as usize)}))
}

/// `server.features`, truthful: genesis hash, the announced services, protocol range. From 1.7
/// without `hash_function` (ElectrumX 2.0 drops it there).
pub(super) fn features(e: &Electrum, session: &SessionState) -> Value {
    features_json(&e.config, session.speaks(&ProtocolVersion::V1_7))
}

/// The features of a server with `config`, as a session at 1.7 (`v1_7`) or before sees them;
/// also what this server registers itself with at its peers.
pub(crate) fn features_json(config: &ElectrumConfig, v1_7: bool) -> Value {
    let mut hosts: Map<String, Value> = Map::new();
    for s in &config.report_services {
        let entry = hosts.entry(s.host.clone()).or_insert_with(|| json!({}));
        if let Some(obj) = entry.as_object_mut() {
            let key = format!("{}_port", s.protocol);
            obj.entry(key).or_insert(json!(s.port));
        }
    }
    let services: Vec<String> = config
        .report_services
        .iter()
        .map(|s| format!("{}://{}", s.protocol, hostport::join(&s.host, s.port)))
        .collect();
    let mut features = json!({
        "hosts": hosts,
        "pruning": null,
        "server_version": server_version(),
        "protocol_min": ProtocolVersion::MIN.to_string(),
        "protocol_max": ProtocolVersion::MAX.to_string(),
        "genesis_hash": config.network.genesis_hash_hex(),
        "hash_function": "sha256",
        "services": services,
    });
    if v1_7 {
        if let Some(obj) = features.as_object_mut() {
            obj.remove("hash_function");
        }
    }
    features
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
