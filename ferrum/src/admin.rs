//! The admin interface: newline-delimited JSON-RPC over TCP, as ElectrumX's `rpc://` service,
//! meant for loopback only; and `ferrum rpc`, its command-line client.
//!
//! Commands: `getinfo`, `sessions`, `groups`, `peers`, `disconnect <id|ip>...`, `log <filter>`,
//! `query <address|scripthash> [limit]`, `reorg-check [depth]`, `stop`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::electrum::jsonrpc::{self, RpcError};
use crate::monitor::{resident_bytes, Monitor};
use crate::server::framing::{Inbound, LineReader, LineWriter, MessageReader, MessageWriter};
use crate::server::SessionInfo;
use crate::sync::Locked;
use crate::types::ScriptHash;

/// Largest admin request, bytes.
const MAX_REQUEST: usize = 64 * 1024;

/// Blocks compared by `reorg-check` when no depth is given.
const DEFAULT_REORG_DEPTH: u32 = 100;

/// Entries listed by `query` when no limit is given.
const DEFAULT_QUERY_LIMIT: usize = 1000;

/// Serves admin connections on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, monitor: Arc<Monitor>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("serving the admin RPC on {addr}");
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the admin RPC is reachable from other hosts; anyone who can connect can stop the server and write snapshots of the index (with the TLS key) anywhere it may write");
        }
    }
    loop {
        let (stream, peer) = crate::server::accept(&listener, "admin").await;
        let monitor = monitor.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &monitor).await {
                tracing::debug!(%peer, "admin connection ended: {e}");
            }
        });
    }
}

async fn connection(stream: TcpStream, monitor: &Arc<Monitor>) -> Result<()> {
    let (r, w) = tokio::io::split(stream);
    let mut reader = LineReader::new(r, MAX_REQUEST);
    let mut writer = LineWriter::new(w);
    loop {
        let answer = match reader.next().await? {
            Inbound::Closed => return Ok(()),
            Inbound::TooLarge => {
                jsonrpc::error_value(&Value::Null, &RpcError::new(jsonrpc::INVALID_REQUEST, "request too large"), true)
            }
            Inbound::Message(bytes) => answer(&bytes, monitor).await,
        };
        writer.send(&answer.to_string().into()).await?;
    }
}

async fn answer(bytes: &[u8], monitor: &Arc<Monitor>) -> Value {
    let request: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => {
            return jsonrpc::error_value(&Value::Null, &RpcError::new(jsonrpc::PARSE_ERROR, "invalid JSON"), true)
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return jsonrpc::error_value(&id, &RpcError::new(jsonrpc::INVALID_REQUEST, "no method"), true);
    };
    let args: Vec<String> = match request.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect()
        }
        Some(_) => {
            return jsonrpc::error_value(&id, &RpcError::invalid_params("params must be a list"), true);
        }
    };
    match command(method, &args, monitor).await {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => jsonrpc::error_value(&id, &e, true),
    }
}

/// Runs one admin command.
pub(crate) async fn command(method: &str, args: &[String], m: &Arc<Monitor>) -> Result<Value, RpcError> {
    let arity = |min: usize, max: usize| {
        if args.len() < min || args.len() > max {
            Err(RpcError::invalid_params(format!("{method} takes {min} to {max} arguments, not {}", args.len())))
        } else {
            Ok(())
        }
    };
    match method {
        "getinfo" => {
            arity(0, 0)?;
            Ok(getinfo(m))
        }
        "sessions" => {
            arity(0, 0)?;
            Ok(Value::Array(m.parts.server.sessions().iter().map(|s| session_json(s)).collect()))
        }
        "groups" => {
            arity(0, 0)?;
            Ok(groups(&m.parts.server.sessions(), &m.parts.server.ledger().groups()))
        }
        "peers" => {
            arity(0, 0)?;
            Ok(m.parts.electrum.peers.table())
        }
        "disconnect" => {
            if args.is_empty() {
                return Err(RpcError::invalid_params("disconnect takes session ids or IP addresses"));
            }
            disconnect(m, args)
        }
        "log" => {
            arity(1, 1)?;
            let filter = args.first().map(String::as_str).unwrap_or_default();
            let control =
                m.parts.log.as_ref().ok_or_else(|| RpcError::internal("the log filter cannot be changed here"))?;
            control(filter).map_err(|e| RpcError::invalid_params(format!("bad log filter {filter:?}: {e}")))?;
            tracing::info!("log filter set to {filter:?} by the admin");
            Ok(json!({"log": filter}))
        }
        "query" => {
            arity(1, 2)?;
            let limit = match args.get(1) {
                Some(l) => l.parse().map_err(|_| RpcError::invalid_params(format!("bad limit {l:?}")))?,
                None => DEFAULT_QUERY_LIMIT,
            };
            query(m, args.first().map(String::as_str).unwrap_or_default(), limit).await
        }
        "reorg-check" | "reorg_check" => {
            arity(0, 1)?;
            let depth = match args.first() {
                Some(d) => d
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=100_000).contains(d))
                    .ok_or_else(|| RpcError::invalid_params(format!("bad depth {d:?} (1 to 100000)")))?,
                None => DEFAULT_REORG_DEPTH,
            };
            reorg_check(m, depth).await
        }
        "snapshot" => {
            arity(1, 1)?;
            snapshot(m, args.first().map(String::as_str).unwrap_or_default()).await
        }
        "stop" => {
            arity(0, 0)?;
            tracing::info!("stop requested over the admin RPC");
            m.parts.stop.stop();
            Ok(json!("stopping"))
        }
        other => Err(RpcError::new(
            jsonrpc::METHOD_NOT_FOUND,
            format!(
                "unknown command {other:?} (getinfo, sessions, groups, peers, disconnect, log, query, reorg-check, \
                 snapshot, stop)"
            ),
        )),
    }
}

fn getinfo(m: &Monitor) -> Value {
    let mut info = m.status();
    if let Value::Object(map) = &mut info {
        map.insert("memory".into(), json!({"resident_bytes": resident_bytes()}));
        map.insert("groups".into(), json!(group_map(&m.parts.server.sessions()).len()));
        let methods: serde_json::Map<String, Value> =
            m.parts.electrum.metrics.methods().into_iter().map(|f| (f.method.to_string(), json!(f.count))).collect();
        if let Some(Value::Object(requests)) = map.get_mut("requests") {
            requests.remove("per_second");
            requests.insert("by_method".into(), Value::Object(methods));
        }
    }
    info
}

fn session_json(s: &SessionInfo) -> Value {
    let (client, version) = s.client.locked().clone();
    json!({
        "id": s.id,
        "peer": s.peer.to_string(),
        "protocol": s.protocol.name(),
        "client": client,
        "protocol_version": version,
        "age_s": s.started.elapsed().as_secs(),
        "requests": s.requests.load(Ordering::Relaxed),
        "subscriptions": s.subscriptions.load(Ordering::Relaxed),
    })
}

fn group_map(sessions: &[Arc<SessionInfo>]) -> BTreeMap<String, Vec<&Arc<SessionInfo>>> {
    let mut groups: BTreeMap<String, Vec<&Arc<SessionInfo>>> = BTreeMap::new();
    for s in sessions {
        groups.entry(crate::cost::group_of(s.peer.ip())).or_default().push(s);
    }
    groups
}

fn groups(sessions: &[Arc<SessionInfo>], costs: &[(String, f64)]) -> Value {
    Value::Array(
        group_map(sessions)
            .into_iter()
            .map(|(group, members)| {
                let cost = costs.iter().find(|(g, _)| *g == group).map_or(0.0, |(_, c)| *c);
                json!({
                    "group": group,
                    "cost": (cost * 10.0).round() / 10.0,
                    "sessions": members.len(),
                    "session_ids": members.iter().map(|s| s.id).collect::<Vec<_>>(),
                    "requests": members.iter().map(|s| s.requests.load(Ordering::Relaxed)).sum::<u64>(),
                    "subscriptions": members.iter().map(|s| s.subscriptions.load(Ordering::Relaxed)).sum::<usize>(),
                })
            })
            .collect(),
    )
}

/// Closes the sessions named by id or by client IP address.
fn disconnect(m: &Monitor, targets: &[String]) -> Result<Value, RpcError> {
    let sessions = m.parts.server.sessions();
    let mut out = Vec::new();
    for target in targets {
        let chosen: Vec<&Arc<SessionInfo>> = if let Ok(id) = target.parse::<u64>() {
            sessions.iter().filter(|s| s.id == id).collect()
        } else if let Ok(ip) = target.parse::<IpAddr>() {
            sessions.iter().filter(|s| s.peer.ip() == ip).collect()
        } else {
            return Err(RpcError::invalid_params(format!("{target:?} is neither a session id nor an IP address")));
        };
        if chosen.is_empty() {
            out.push(format!("no session matches {target}"));
        }
        for s in chosen {
            s.close();
            tracing::info!(session = s.id, peer = %s.peer, "disconnecting by the admin's request");
            out.push(format!("disconnected session {} ({})", s.id, s.peer));
        }
    }
    Ok(json!(out))
}

async fn query(m: &Arc<Monitor>, target: &str, limit: usize) -> Result<Value, RpcError> {
    let sh: ScriptHash =
        crate::inspect::parse_target(m.network(), target).map_err(|e| RpcError::invalid_params(format!("{e:#}")))?;
    let (summary, mempool, balance) = m.parts.electrum.reader().balance(sh).await?;
    Ok(json!({
        "scripthash": sh.to_hex(),
        "transactions": summary.history.len(),
        "mempool_transactions": mempool.len(),
        "balance": {"confirmed": balance.confirmed, "unconfirmed": balance.unconfirmed},
        "history": summary.history.iter().take(limit)
            .map(|h| json!({"height": h.height, "txid": h.txid.to_hex()})).collect::<Vec<_>>(),
        "mempool": mempool.iter().take(limit)
            .map(|e| json!({"txid": e.tx.txid.to_hex(), "delta": e.delta(&sh) as i64})).collect::<Vec<_>>(),
        "unspent": summary.unspent.iter().take(limit)
            .map(|u| json!({"height": u.height, "txid": u.txid.to_hex(), "vout": u.vout, "value": u.value}))
            .collect::<Vec<_>>(),
        "unspent_count": summary.unspent.len(),
        "limit": limit,
    }))
}

/// Compares the last `depth` indexed blocks with the node's active chain: where they part, the
/// node has reorganised and the index will follow at its next sync.
async fn reorg_check(m: &Monitor, depth: u32) -> Result<Value, RpcError> {
    let tip = m.parts.electrum.index.tip();
    let Some(height) = tip.height else {
        return Ok(json!({"height": null, "checked": 0, "consistent": true}));
    };
    let from = height.saturating_sub(depth - 1);
    let ours: Vec<_> = {
        let chain = m.parts.electrum.index.chain();
        (from..=height).map(|h| chain.hash(h)).collect()
    };
    let theirs = m
        .parts
        .daemon
        .block_hashes(from, height - from + 1)
        .await
        .map_err(|e| RpcError::daemon(format!("daemon error: {e}")))?;
    let mut fork = None;
    for (i, ours) in ours.iter().enumerate() {
        let h = from + i as u32;
        if ours.is_none() || theirs.get(i) != ours.as_ref() {
            fork = Some(h);
            break;
        }
    }
    Ok(json!({
        "height": height,
        "checked": height - from + 1,
        "from": from,
        "consistent": fork.is_none(),
        "first_difference": fork,
        "node_height": m.parts.electrum.index.status().node_height,
    }))
}

/// `snapshot DIR`: a consistent copy of the index in `DIR` (absolute, new, on this machine),
/// with the self-signed certificate and its key when Ferrum made them: a replica's `--db-dir`,
/// from which it only catches up. The server serves and follows the chain meanwhile.
async fn snapshot(m: &Monitor, dir: &str) -> Result<Value, RpcError> {
    let dir = std::path::PathBuf::from(dir);
    if !dir.is_absolute() {
        return Err(RpcError::invalid_params("snapshot takes an absolute directory on the server's machine"));
    }
    if dir.exists() {
        return Err(RpcError::invalid_params(format!("{} exists: name a new directory", dir.display())));
    }
    let started = std::time::Instant::now();
    let index = m.parts.electrum.index.clone();
    let db_dir = m.parts.index_dir.parent().map(std::path::Path::to_path_buf);
    let target = dir.clone();
    let tip = tokio::task::spawn_blocking(move || -> Result<_, String> {
        // Fails if it exists: two snapshots cannot share a directory.
        std::fs::create_dir(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
        let written = (|| {
            let tip = index.store().snapshot(&target.join("index")).map_err(|e| e.to_string())?;
            // Wallets pinned this certificate: the replica serves the same one.
            for name in [crate::server::tls::CERT_FILE, crate::server::tls::KEY_FILE] {
                let Some(from) = db_dir.as_ref().map(|d| d.join(name)).filter(|p| p.exists()) else { continue };
                std::fs::copy(&from, target.join(name)).map_err(|e| format!("copying {}: {e}", from.display()))?;
            }
            Ok(tip)
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&target);
        }
        written
    })
    .await
    .map_err(|e| RpcError::internal(e.to_string()))?
    .map_err(|e| RpcError::internal(format!("snapshot: {e}")))?;
    tracing::info!(dir = %dir.display(), height = ?tip.map(|t| t.height), "snapshot written");
    Ok(json!({
        "dir": dir.display().to_string(),
        "height": tip.map(|t| t.height),
        "tip_hash": tip.map(|t| t.hash.to_hex()),
        "transactions": tip.map_or(0, |t| t.tx_count),
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

/// `ferrum rpc`: sends one command and returns the result, or the server's error.
pub async fn call(addr: SocketAddr, method: &str, args: &[String]) -> Result<Value> {
    call_waiting(addr, method, args, Duration::from_secs(120)).await
}

/// [`call`], waiting up to `wait` for the answer.
pub async fn call_waiting(addr: SocketAddr, method: &str, args: &[String], wait: Duration) -> Result<Value> {
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to the admin RPC at {addr}: timed out"))?
        .with_context(|| {
            format!("connecting to the admin RPC at {addr} (is ferrum running with --rpc or rpc:// in SERVICES?)")
        })?;
    let (r, mut w) = stream.into_split();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": args});
    w.write_all(format!("{request}\n").as_bytes()).await?;
    let mut line = String::new();
    let n = tokio::time::timeout(wait, BufReader::new(r).read_line(&mut line))
        .await
        .with_context(|| format!("no answer from the admin RPC within {} s", wait.as_secs()))??;
    anyhow::ensure!(n > 0, "the admin RPC closed the connection without answering");
    let mut reply: Value = serde_json::from_str(&line).context("the admin RPC answered something that is not JSON")?;
    if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("unknown error");
        anyhow::bail!("{message}");
    }
    Ok(reply.get_mut("result").map(Value::take).unwrap_or(Value::Null))
}

/// A human rendering of a command's result: tables for lists of objects, `key: value` lines for
/// objects, the text itself for strings.
pub fn render(result: &Value) -> String {
    let mut out = String::new();
    render_into(&mut out, result, 0);
    out
}

fn render_into(out: &mut String, v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        render_into(out, v, indent + 2);
                    }
                    Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
                        out.push_str(&format!("{pad}{k}: ({} entries)\n", items.len()));
                        render_into(out, v, indent + 2);
                    }
                    other => out.push_str(&format!("{pad}{k}: {}\n", scalar(other))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(map) => {
                        let line: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect();
                        out.push_str(&format!("{pad}{}\n", line.join(" ")));
                    }
                    other => out.push_str(&format!("{pad}{}\n", scalar(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_lists_and_objects() {
        let text = render(&json!({"a": 1, "b": {"c": "x"}, "d": [{"id": 1, "peer": "p"}]}));
        assert_eq!(text, "a: 1\nb:\n  c: x\nd: (1 entries)\n  id=1 peer=p\n");
        assert_eq!(render(&json!("stopping")), "stopping\n");
        assert_eq!(render(&json!([])), "");
    }
}
