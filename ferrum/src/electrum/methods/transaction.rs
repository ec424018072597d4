//! `blockchain.transaction.*`: broadcast (single and package), raw and verbose transactions,
//! merkle proofs, txid by position.

use serde_json::{json, Value};

use crate::daemon::DaemonError;
use crate::electrum::coerce::commas;
use crate::electrum::jsonrpc::RpcError;
use crate::electrum::state::SessionState;
use crate::electrum::{daemon_error, Electrum};
use crate::merkle;
use crate::types::Txid;

pub(super) async fn broadcast(e: &Electrum, session: &SessionState, hex: String) -> Result<Value, RpcError> {
    match e.daemon.send_raw_transaction(&hex).await {
        Ok(txid) => {
            tracing::info!(%txid, session = session.id, "sent transaction");
            e.mempool_trigger.notify_one();
            Ok(json!(txid))
        }
        Err(DaemonError::Rejected { message, .. }) => {
            tracing::info!(session = session.id, "transaction rejected: {message}");
            Err(RpcError::bad_request(format!("the transaction was rejected by network rules.\n\n{message}\n[{hex}]")))
        }
        Err(other) => Err(daemon_error(other)),
    }
}

/// `broadcast_package`: bitcoind's `submitpackage` answer when `verbose`, else ElectrumX's
/// summary of it.
pub(super) async fn broadcast_package(e: &Electrum, raw_txs: Vec<String>, verbose: bool) -> Result<Value, RpcError> {
    let result = match e.daemon.submit_package(&raw_txs).await {
        Ok(r) => r,
        Err(DaemonError::Rejected { message, .. }) => {
            return Err(RpcError::bad_request(format!("the tx package was rejected by network rules.\n\n{message}.")))
        }
        Err(other) => return Err(daemon_error(other)),
    };
    e.mempool_trigger.notify_one();
    if verbose {
        return Ok(result);
    }
    let mut out = json!({"success": result.get("package_msg").and_then(Value::as_str) == Some("success")});
    let errors: Vec<Value> = result
        .get("tx-results")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(|t| {
                    let err = t.get("error").filter(|v| !v.is_null())?;
                    Some(json!({"txid": t.get("txid").cloned().unwrap_or(Value::Null), "error": err}))
                })
                .collect()
        })
        .unwrap_or_default();
    if !errors.is_empty() {
        if let Some(obj) = out.as_object_mut() {
            obj.insert("errors".into(), Value::Array(errors));
        }
    }
    Ok(out)
}

/// `testmempoolaccept` (1.7): whether the node would take each transaction, in ElectrumX's
/// form of the node's answer (`txid`, `wtxid`, `allowed`, and a `reason` for a refusal).
pub(super) async fn test_mempool_accept(e: &Electrum, raw_txs: Vec<String>) -> Result<Value, RpcError> {
    let answer = e.daemon.test_mempool_accept(&raw_txs).await?;
    let items = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(Value::Array(
        items
            .iter()
            .map(|item| {
                let field = |k: &str| item.get(k).cloned().unwrap_or(Value::Null);
                let mut out = json!({"txid": field("txid"), "wtxid": field("wtxid")});
                if let Some(obj) = out.as_object_mut() {
                    if let Some(allowed) = item.get("allowed").filter(|v| v.is_boolean()) {
                        obj.insert("allowed".into(), allowed.clone());
                    }
                    let reason = ["package-error", "reject-details", "reject-reason"]
                        .iter()
                        .filter_map(|k| item.get(*k).filter(|v| truthy(v)))
                        .next();
                    if let Some(reason) = reason {
                        obj.insert("reason".into(), reason.clone());
                    }
                }
                out
            })
            .collect(),
    ))
}

/// Python's truth of a JSON value, as `a or b` picks.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

pub(super) async fn get(e: &Electrum, id: Txid, verbose: bool) -> Result<Value, RpcError> {
    if verbose {
        Ok(e.reader.verbose_tx(id).await?)
    } else {
        Ok(json!(hex::encode(e.reader.raw_tx(id).await?)))
    }
}

pub(super) async fn get_merkle(e: &Electrum, id: Txid, h: u32) -> Result<Value, RpcError> {
    let txids = block_txids(e, h).await?;
    let pos = txids
        .iter()
        .position(|t| *t == id)
        .ok_or_else(|| RpcError::bad_request(format!("tx {id} not in block at height {}", commas(u64::from(h)))))?;
    Ok(json!({"block_height": h, "merkle": branch(&txids, pos), "pos": pos}))
}

pub(super) async fn id_from_pos(e: &Electrum, h: u32, pos: u64, want_merkle: bool) -> Result<Value, RpcError> {
    let txids = match block_txids(e, h).await {
        // ElectrumX reports its database's error here.
        Err(_) if h > e.index.tip().height.unwrap_or(0) => {
            return Err(RpcError::bad_request(format!(
                "db error: DBError('block {h} not on disk (>{})')",
                e.index.tip().height.unwrap_or(0)
            )))
        }
        other => other?,
    };
    let found = usize::try_from(pos).ok().and_then(|p| txids.get(p).map(|t| (p, *t)));
    let Some((pos, id)) = found else {
        return Err(RpcError::bad_request(format!(
            "no tx at position {} in block at height {}",
            commas(pos),
            commas(u64::from(h))
        )));
    };
    if want_merkle {
        Ok(json!({"tx_hash": id, "merkle": branch(&txids, pos)}))
    } else {
        Ok(json!(id))
    }
}

async fn block_txids(e: &Electrum, h: u32) -> Result<Vec<Txid>, RpcError> {
    e.reader
        .block_txids(h)
        .await?
        .ok_or_else(|| RpcError::bad_request(format!("height {} out of range", commas(u64::from(h)))))
}

fn branch(txids: &[Txid], pos: usize) -> Vec<String> {
    let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
    merkle::branch(&leaves, pos).map(|(b, _)| b.iter().map(merkle::hex_display).collect()).unwrap_or_default()
}
