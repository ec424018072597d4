//! `blockchain.outpoint.*` (protocol 1.7): which transactions pay and spend an outpoint, now and
//! as it changes.

use serde_json::{json, Map, Value};

use crate::electrum::jsonrpc::RpcError;
use crate::electrum::state::SessionState;
use crate::electrum::Electrum;
use crate::query::OutpointStatus;
use crate::types::Txid;

pub(super) async fn get_status(e: &Electrum, txid: Txid, vout: u32) -> Result<Value, RpcError> {
    Ok(status_json(&e.reader.outpoint(txid, vout).await?.status))
}

/// `subscribe`: the status now; notifications as it changes. An outpoint no transaction pays
/// yet is kept too, for the transaction that will.
pub(super) async fn subscribe(
    e: &Electrum,
    session: &mut SessionState,
    txid: Txid,
    vout: u32,
) -> Result<Value, RpcError> {
    let now = e.reader.outpoint(txid, vout).await?;
    session.subscribe_outpoint((txid, vout), now)?;
    Ok(status_json(&now.status))
}

pub(super) fn unsubscribe(session: &mut SessionState, txid: Txid, vout: u32) -> Value {
    json!(session.unsubscribe_outpoint(&(txid, vout)))
}

/// A status as ElectrumX 2.0 writes it: nothing while no transaction pays the outpoint, then
/// `funder_height`, and `spender_txhash` with `spender_height` once one spends it.
pub(crate) fn status_json(status: &OutpointStatus) -> Value {
    let mut out = Map::new();
    if let Some(funder) = status.funder_height {
        out.insert("funder_height".into(), json!(funder));
        if let Some((spender, height)) = status.spender {
            out.insert("spender_txhash".into(), json!(spender));
            out.insert("spender_height".into(), json!(height));
        }
    }
    Value::Object(out)
}
