//! `mempool.get_fee_histogram` and `mempool.get_info`.

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
