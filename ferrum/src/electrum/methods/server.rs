//! `server.*`: version negotiation, banner, donation address, features, peers, ping.

use serde_json::{json, Map, Value};

use super::Call;
use crate::electrum::jsonrpc::{Params, RpcError};
use crate::electrum::values::{py_repr, py_str};
use crate::electrum::{server_version, Electrum, PROTOCOL_MAX, PROTOCOL_MIN};

/// `"1.4.2"` → `[1, 4, 2]`; anything unparsable → `[0]` (ElectrumX's `protocol_tuple`).
pub fn protocol_tuple(v: &Value) -> Vec<u32> {
    v.as_str()
        .and_then(|s| s.split('.').map(|p| p.trim().parse::<u32>().ok()).collect::<Option<Vec<u32>>>())
        .unwrap_or_else(|| vec![0])
}

/// `[1]` → `"1.0"`, `[1, 4, 2]` → `"1.4.2"`.
pub fn version_string(v: &[u32]) -> String {
    let mut parts: Vec<String> = v.iter().map(u32::to_string).collect();
    while parts.len() < 2 {
        parts.push("0".into());
    }
    parts.join(".")
}

/// The highest version both sides speak, or `None`.
pub fn negotiate(requested: Option<&Value>) -> Option<Vec<u32>> {
    let (client_min, client_max) = match requested {
        None | Some(Value::Null) => (PROTOCOL_MIN.to_vec(), PROTOCOL_MIN.to_vec()),
        Some(Value::Array(pair)) if pair.len() == 2 => {
            (protocol_tuple(pair.first().unwrap_or(&Value::Null)), protocol_tuple(pair.get(1).unwrap_or(&Value::Null)))
        }
        Some(v) => (protocol_tuple(v), protocol_tuple(v)),
    };
    let result = client_max.min(PROTOCOL_MAX.to_vec());
    let floor = client_min.max(PROTOCOL_MIN.to_vec());
    if result < floor || result == [0] {
        None
    } else {
        Some(result)
    }
}

/// `server.version`: the first message of a session. Sets the session's version, or asks for
/// the session to be closed after the error reply.
pub fn version(call: &mut Call<'_>) -> Result<Value, RpcError> {
    // Extra positional and named arguments must be tolerated (protocol 1.6).
    let args = match call.params {
        Params::Positional(_) => call.params.bind(call.method, &["client_name", "protocol_version"], 0, true)?,
        Params::Named(map) => vec![map.get("client_name").cloned(), map.get("protocol_version").cloned()],
    };
    if call.session.version_seen {
        return Err(RpcError::bad_request("server.version already sent"));
    }
    call.session.version_seen = true;
    if let Some(name) = args.first().cloned().flatten() {
        let name = py_str(&name);
        if !name.is_empty() {
            call.session.client = name.chars().take(100).collect();
        }
    }
    let requested = args.get(1).cloned().flatten();
    match negotiate(requested.as_ref()) {
        Some(v) => {
            let s = version_string(&v);
            call.session.version = Some(v);
            Ok(json!([server_version(), s]))
        }
        None => {
            call.session.close_after_reply = true;
            let shown = requested.as_ref().map_or_else(|| "None".to_string(), py_str_version);
            Err(RpcError::bad_request(format!("unsupported protocol version: {shown}")))
        }
    }
}

fn py_str_version(v: &Value) -> String {
    match v {
        Value::Array(_) => py_repr(v),
        other => py_str(other),
    }
}

pub async fn call(call: &mut Call<'_>) -> Result<Value, RpcError> {
    let e = call.electrum;
    match call.method {
        "server.version" => version(call),
        "server.banner" => {
            call.args(&[], 0)?;
            banner(e).await
        }
        "server.donation_address" => {
            call.args(&[], 0)?;
            Ok(json!(e.config.donation_address))
        }
        "server.features" => {
            call.args(&[], 0)?;
            Ok(features(e))
        }
        "server.peers.subscribe" => {
            call.args(&[], 0)?;
            // Ferrum does no peer discovery: it knows of no other servers.
            Ok(json!([]))
        }
        "server.add_peer" => {
            call.args(&["features"], 1)?;
            Ok(json!(false))
        }
        "server.ping" => {
            call.args(&["pong_len", "data"], 0)?;
            Ok(Value::Null)
        }
        _ => Err(RpcError::internal("unrouted server method")),
    }
}

/// `server.features`, truthful: genesis hash, the announced services, protocol range.
pub fn features(e: &Electrum) -> Value {
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
        "protocol_min": version_string(PROTOCOL_MIN),
        "protocol_max": version_string(PROTOCOL_MAX),
        "genesis_hash": e.config.network.genesis_hash_hex(),
        "hash_function": "sha256",
        "services": services,
    })
}

/// The banner file with ElectrumX's substitutions, or a default line.
async fn banner(e: &Electrum) -> Result<Value, RpcError> {
    let default = format!("You are connected to a {} server.", server_version());
    let Some(path) = &e.config.banner_file else { return Ok(json!(default)) };
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(err) => {
            tracing::error!("reading banner file {}: {err}", path.display());
            return Ok(json!(default));
        }
    };
    let info = e.network_info().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_as_specified() {
        assert_eq!(negotiate(Some(&json!("1.4"))), Some(vec![1, 4]));
        assert_eq!(negotiate(Some(&json!(["1.4", "1.6"]))), Some(vec![1, 6]));
        assert_eq!(negotiate(Some(&json!(["1.4", "1.7"]))), Some(vec![1, 6]));
        assert_eq!(negotiate(Some(&json!("1.4.2"))), Some(vec![1, 4, 2]));
        assert_eq!(negotiate(None), Some(vec![1, 4]));
        assert_eq!(negotiate(Some(&json!("1.3"))), None);
        assert_eq!(negotiate(Some(&json!(["1.7", "2.0"]))), None);
        assert_eq!(negotiate(Some(&json!("garbage"))), None);
        assert_eq!(negotiate(Some(&json!(1.4))), None, "numbers are not version strings");
        assert_eq!(negotiate(Some(&json!(["1.4", "1.5", "1.6"]))), None);
        assert_eq!(version_string(&[1]), "1.0");
        assert_eq!(version_string(&[1, 4, 2]), "1.4.2");
    }
}
