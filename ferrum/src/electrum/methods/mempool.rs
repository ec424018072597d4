//! `mempool.get_fee_histogram`, `mempool.get_info` and `mempool.recent`.

use serde_json::{json, Value};

use crate::electrum::jsonrpc::RpcError;
use crate::electrum::Electrum;

pub(super) fn get_fee_histogram(e: &Electrum) -> Value {
    Value::Array(e.reader.fee_histogram().into_iter().map(|(rate, vsize)| json!([rate, vsize])).collect())
}

pub(super) async fn get_info(e: &Electrum) -> Result<Value, RpcError> {
    let info = e.daemon.recent_mempool_info().await?;
    let field = |k: &str| info.get(k).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "mempoolminfee": field("mempoolminfee"),
        "minrelaytxfee": field("minrelaytxfee"),
        "incrementalrelayfee": field("incrementalrelayfee"),
    }))
}

/// `mempool.recent` (1.7): the last 10 transactions taken into the mempool, newest first.
pub(super) fn recent(e: &Electrum) -> Value {
    Value::Array(
        e.reader
            .recent_mempool(10)
            .into_iter()
            .map(|t| json!({"txid": t.txid, "fee": t.fee, "vsize": t.vsize}))
            .collect(),
    )
}
