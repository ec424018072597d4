//! `mempool.get_fee_histogram` and `mempool.get_info`.

use serde_json::{json, Value};

use super::Call;
use crate::electrum::jsonrpc::RpcError;

pub async fn call(call: &mut Call<'_>) -> Result<Value, RpcError> {
    let e = call.electrum;
    call.args(&[], 0)?;
    match call.method {
        "mempool.get_fee_histogram" => {
            Ok(Value::Array(e.mempool.histogram().into_iter().map(|(rate, vsize)| json!([rate, vsize])).collect()))
        }
        "mempool.get_info" => {
            let info = e.mempool_info().await?;
            let field = |k: &str| info.get(k).cloned().unwrap_or(Value::Null);
            Ok(json!({
                "mempoolminfee": field("mempoolminfee"),
                "minrelaytxfee": field("minrelaytxfee"),
                "incrementalrelayfee": field("incrementalrelayfee"),
            }))
        }
        other => Err(RpcError::internal(format!("unrouted method {other}"))),
    }
}
