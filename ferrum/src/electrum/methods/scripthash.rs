//! `blockchain.scripthash.*`, and from protocol 1.7 `blockchain.scriptpubkey.*`, which answer
//! the same for the script's hash: history, mempool, balance, unspent outputs, subscriptions.

use serde_json::{json, Value};

use crate::electrum::jsonrpc::{RpcError, Text};
use crate::electrum::state::SessionState;
use crate::electrum::status::status_json;
use crate::electrum::Electrum;
use crate::query::HistoryEntry;
use crate::types::ScriptHash;

/// `get_history`, written as JSON text (a long history's value tree costs more than the answer;
/// a busy script's confirmed part is written once and kept).
pub(super) async fn get_history(e: &Electrum, sh: ScriptHash) -> Result<Text, RpcError> {
    Ok(e.history(sh).await?.json())
}

pub(super) async fn get_mempool(e: &Electrum, sh: ScriptHash) -> Result<Value, RpcError> {
    let summary = e.reader.summary(sh).await?;
    let pending = e.reader.mempool_part(&sh, &summary.history);
    Ok(Value::Array(
        pending
            .iter()
            .map(HistoryEntry::pending)
            .map(|h| json!({"tx_hash": h.txid, "height": h.height, "fee": h.fee}))
            .collect(),
    ))
}

pub(super) async fn get_balance(e: &Electrum, sh: ScriptHash) -> Result<Value, RpcError> {
    let (_, _, balance) = e.reader.balance(sh).await?;
    Ok(json!({"confirmed": balance.confirmed, "unconfirmed": balance.unconfirmed}))
}

pub(super) async fn listunspent(e: &Electrum, sh: ScriptHash) -> Result<Value, RpcError> {
    let spendable = e.reader.spendable(sh).await?;
    Ok(Value::Array(
        spendable
            .iter()
            .map(|u| json!({"tx_hash": u.txid, "tx_pos": u.vout, "height": u.height, "value": u.value}))
            .collect(),
    ))
}

/// `subscribe`: the status now; notifications as it changes. `shown` is the script hash as
/// the client wrote it, repeated in the notifications.
pub(super) async fn subscribe(
    e: &Electrum,
    session: &mut SessionState,
    sh: ScriptHash,
    shown: &Value,
) -> Result<Value, RpcError> {
    let s = e.history(sh).await?.status();
    session.subscribe(sh, shown, s)?;
    Ok(status_json(s))
}

pub(super) fn unsubscribe(session: &mut SessionState, sh: &ScriptHash) -> Value {
    json!(session.unsubscribe(sh))
}
