//! `blockchain.scripthash.*`: history, mempool, balance, unspent outputs, subscriptions.

use serde_json::{json, Value};

use super::{Answer, Call};
use crate::electrum::jsonrpc::RpcError;
use crate::electrum::status::Item;
use crate::electrum::status::{status, status_json};
use crate::electrum::values::scripthash;
use crate::types::push_hex_rev;

pub async fn call(call: &mut Call<'_>) -> Result<Answer, RpcError> {
    let e = call.electrum;
    let a = call.args(&["scripthash"], 1)?;
    let raw = a.first().cloned().flatten().unwrap_or(Value::Null);
    let sh = scripthash(&raw)?;
    if call.method == "blockchain.scripthash.get_history" {
        let items = e.history(sh).await?;
        return Ok(Answer::Text(history_text(&items)));
    }
    other(call, e, sh, raw).await.map(Answer::Value)
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

async fn other(
    call: &mut Call<'_>,
    e: &std::sync::Arc<crate::electrum::Electrum>,
    sh: crate::types::ScriptHash,
    raw: Value,
) -> Result<Value, RpcError> {
    match call.method {
        "blockchain.scripthash.get_mempool" => {
            let summary = e.script_summary(sh).await?;
            let entries = e.mempool_part(&sh, &summary.history);
            Ok(Value::Array(
                entries
                    .iter()
                    .map(|m| {
                        json!({"tx_hash": m.tx.txid, "height": if m.has_unconfirmed_inputs { -1 } else { 0 }, "fee": m.tx.fee})
                    })
                    .collect(),
            ))
        }
        "blockchain.scripthash.get_balance" => {
            let summary = e.script_summary(sh).await?;
            let delta: i128 = e.mempool_part(&sh, &summary.history).iter().map(|m| m.delta(&sh)).sum();
            Ok(json!({"confirmed": summary.balance, "unconfirmed": delta as i64}))
        }
        "blockchain.scripthash.listunspent" => {
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
        "blockchain.scripthash.subscribe" => {
            let items = e.history(sh).await?;
            let s = status(&items);
            call.session.subscribe(sh, &raw, s)?;
            Ok(status_json(s))
        }
        "blockchain.scripthash.unsubscribe" => Ok(json!(call.session.unsubscribe(&sh))),
        other => Err(RpcError::internal(format!("unrouted method {other}"))),
    }
}
