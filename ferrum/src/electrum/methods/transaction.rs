//! `blockchain.transaction.*`: broadcast (single and package), raw and verbose transactions,
//! merkle proofs, txid by position.

use serde_json::{json, Value};

use super::Call;
use crate::daemon::DaemonError;
use crate::electrum::jsonrpc::RpcError;
use crate::electrum::values::{boolean, commas, height, hex_bytes, non_negative, py_str, txid};
use crate::electrum::{daemon_error, Electrum};
use crate::merkle;

fn arg(a: &[Option<Value>], i: usize) -> Value {
    a.get(i).cloned().flatten().unwrap_or(Value::Null)
}

pub async fn call(call: &mut Call<'_>) -> Result<Value, RpcError> {
    let e = call.electrum;
    match call.method {
        "blockchain.transaction.broadcast" => {
            let a = call.args(&["raw_tx"], 1)?;
            let raw = arg(&a, 0);
            hex_bytes(&raw)?;
            let hex = raw.as_str().unwrap_or_default().to_string();
            match e.daemon.rpc().call::<String>("sendrawtransaction", json!([hex])).await {
                Ok(txid) => {
                    tracing::info!(%txid, session = call.session.id, "sent transaction");
                    e.mempool_trigger.notify_one();
                    Ok(json!(txid))
                }
                Err(DaemonError::Rejected { message, .. }) => {
                    tracing::info!(session = call.session.id, "transaction rejected: {message}");
                    Err(RpcError::bad_request(format!(
                        "the transaction was rejected by network rules.\n\n{message}\n[{hex}]"
                    )))
                }
                Err(other) => Err(daemon_error(other)),
            }
        }
        "blockchain.transaction.broadcast_package" => {
            let a = call.args(&["raw_txs", "verbose"], 1)?;
            let raws = arg(&a, 0);
            let Value::Array(list) = &raws else {
                return Err(RpcError::bad_request(format!("{} should be a list", py_str(&raws))));
            };
            for r in list {
                hex_bytes(r)?;
            }
            let verbose = match a.get(1).cloned().flatten() {
                None => false,
                Some(v) => boolean(&v, &format!("{} should be a boolean value", py_str(&v)))?,
            };
            let result = match e.daemon.rpc().call_value("submitpackage", json!([list])).await {
                Ok(r) => r,
                Err(DaemonError::Rejected { message, .. }) => {
                    return Err(RpcError::bad_request(format!(
                        "the tx package was rejected by network rules.\n\n{message}."
                    )))
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
        "blockchain.transaction.get" => {
            let a = call.args(&["tx_hash", "verbose"], 1)?;
            let id = txid(&arg(&a, 0))?;
            let verbose = match a.get(1).cloned().flatten() {
                None => false,
                Some(v) => boolean(&v, "\"verbose\" must be a boolean")?,
            };
            if verbose {
                e.verbose_tx(id).await
            } else {
                Ok(json!(hex::encode(e.raw_tx(id).await?)))
            }
        }
        "blockchain.transaction.get_merkle" => {
            let a = call.args(&["tx_hash", "height"], 2)?;
            let id = txid(&arg(&a, 0))?;
            let h = height(&arg(&a, 1))?;
            let txids = block_txids(e, h).await?;
            let pos = txids.iter().position(|t| *t == id).ok_or_else(|| {
                RpcError::bad_request(format!("tx {id} not in block at height {}", commas(u64::from(h))))
            })?;
            Ok(json!({"block_height": h, "merkle": branch(&txids, pos), "pos": pos}))
        }
        "blockchain.transaction.id_from_pos" => {
            let a = call.args(&["height", "tx_pos", "merkle"], 2)?;
            let h = height(&arg(&a, 0))?;
            let pos = non_negative(&arg(&a, 1))?;
            let want_merkle = match a.get(2).cloned().flatten() {
                None => false,
                Some(v) => boolean(&v, "\"merkle\" must be a boolean")?,
            };
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
        other => Err(RpcError::internal(format!("unrouted method {other}"))),
    }
}

async fn block_txids(e: &std::sync::Arc<Electrum>, h: u32) -> Result<Vec<crate::types::Txid>, RpcError> {
    e.blocking(move |s| s.query.block_txids(h).map_err(|err| RpcError::internal(err.to_string())))
        .await?
        .ok_or_else(|| RpcError::bad_request(format!("height {} out of range", commas(u64::from(h)))))
}

fn branch(txids: &[crate::types::Txid], pos: usize) -> Vec<String> {
    let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
    merkle::branch(&leaves, pos).map(|(b, _)| b.iter().map(merkle::hex_display).collect()).unwrap_or_default()
}
