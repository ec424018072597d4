//! `blockchain.scripthash.*`: history, mempool, balance, unspent outputs, subscriptions.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::electrum::jsonrpc::RpcError;
use crate::electrum::state::SessionState;
use crate::electrum::status::{status, status_json, Item};
use crate::electrum::Electrum;
use crate::types::{push_hex_rev, ScriptHash};

/// `get_history`, written as JSON text (a long history's value tree costs more than the answer).
pub async fn get_history(e: &Arc<Electrum>, sh: ScriptHash) -> Result<String, RpcError> {
    Ok(history_text(&e.history(sh).await?))
}

/// A history as JSON text, in ElectrumX's key order.
pub fn history_text(items: &[Item]) -> String {
    let mut out = String::with_capacity(items.len() * 96 + 2);
    out.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str("{\"tx_hash\":\"");
        push_hex_rev(&mut out, &item.txid.0);
        out.push_str("\",\"height\":");
        out.push_str(&item.height.to_string());
        if let Some(fee) = item.fee {
            out.push_str(",\"fee\":");
            out.push_str(&fee.to_string());
        }
        out.push('}');
    }
    out.push(']');
    out
}

pub async fn get_mempool(e: &Arc<Electrum>, sh: ScriptHash) -> Result<Value, RpcError> {
    let summary = e.script_summary(sh).await?;
    let entries = e.mempool_part(&sh, &summary.history);
    Ok(Value::Array(
        entries
            .iter()
            .map(|m| json!({"tx_hash": m.tx.txid, "height": if m.has_unconfirmed_inputs { -1 } else { 0 }, "fee": m.tx.fee}))
            .collect(),
    ))
}

pub async fn get_balance(e: &Arc<Electrum>, sh: ScriptHash) -> Result<Value, RpcError> {
    let summary = e.script_summary(sh).await?;
    let delta: i128 = e.mempool_part(&sh, &summary.history).iter().map(|m| m.delta(&sh)).sum();
    Ok(json!({"confirmed": summary.balance, "unconfirmed": delta as i64}))
}

pub async fn listunspent(e: &Arc<Electrum>, sh: ScriptHash) -> Result<Value, RpcError> {
    let summary = e.script_summary(sh).await?;
    let mempool = e.mempool_part(&sh, &summary.history);
    let mut out: Vec<Value> = summary
        .unspent
        .iter()
        .filter(|u| e.mempool.spender(&u.txid, u.vout).is_none())
        .map(|u| json!({"tx_hash": u.txid, "tx_pos": u.vout, "height": u.height, "value": u.value}))
        .collect();
    for m in &mempool {
        for (vout, output) in m.tx.outputs.iter().enumerate() {
            if let Some((out_sh, value)) = output {
                if *out_sh == sh && e.mempool.spender(&m.tx.txid, vout as u32).is_none() {
                    out.push(json!({"tx_hash": m.tx.txid, "tx_pos": vout, "height": 0, "value": value}));
                }
            }
        }
    }
    Ok(Value::Array(out))
}

/// `subscribe`: the status now; notifications as it changes. `shown` is the script hash as
/// the client wrote it, repeated in the notifications.
pub async fn subscribe(
    e: &Arc<Electrum>,
    session: &mut SessionState,
    sh: ScriptHash,
    shown: &Value,
) -> Result<Value, RpcError> {
    let s = status(&e.history(sh).await?);
    session.subscribe(sh, shown, s)?;
    Ok(status_json(s))
}

pub fn unsubscribe(session: &mut SessionState, sh: &ScriptHash) -> Value {
    json!(session.unsubscribe(sh))
}
