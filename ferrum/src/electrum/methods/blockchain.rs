//! `blockchain.headers.subscribe`, `blockchain.block.header(s)` with `cp_height` proofs,
//! `blockchain.estimatefee`, `blockchain.relayfee`.

use serde_json::{json, Value};

use super::Call;
use crate::electrum::jsonrpc::RpcError;
use crate::electrum::values::{commas, height, py_str};
use crate::electrum::{Electrum, MAX_CHUNK_SIZE};

pub async fn call(call: &mut Call<'_>) -> Result<Value, RpcError> {
    let e = call.electrum;
    match call.method {
        "blockchain.headers.subscribe" => {
            call.args(&[], 0)?;
            let (h, header) = tip_header(e)?;
            call.session.subscribe_headers(h, crate::types::BlockHash::of_header(&header));
            Ok(json!({"hex": hex::encode(header), "height": h}))
        }
        "blockchain.block.header" => {
            let a = call.args(&["height", "cp_height"], 1)?;
            let h = height(a.first().and_then(|v| v.as_ref()).unwrap_or(&Value::Null))?;
            let cp = a.get(1).cloned().flatten().map(|v| height(&v)).transpose()?.unwrap_or(0);
            let header = e.query.header(h).ok_or_else(|| out_of_range(h))?;
            if cp == 0 {
                return Ok(json!(hex::encode(header)));
            }
            let mut result = proof(e, h, cp)?;
            if let Some(obj) = result.as_object_mut() {
                obj.insert("header".into(), json!(hex::encode(header)));
            }
            Ok(result)
        }
        "blockchain.block.headers" => {
            let a = call.args(&["start_height", "count", "cp_height"], 2)?;
            let start = height(a.first().and_then(|v| v.as_ref()).unwrap_or(&Value::Null))?;
            let count = height(a.get(1).and_then(|v| v.as_ref()).unwrap_or(&Value::Null))?;
            let cp = a.get(2).cloned().flatten().map(|v| height(&v)).transpose()?.unwrap_or(0);
            let count = count.min(MAX_CHUNK_SIZE);
            let headers: Vec<[u8; 80]> =
                (start..start.saturating_add(count)).map_while(|h| e.query.header(h)).collect();
            let n = headers.len() as u32;
            let v16 = call.session.version.as_deref().unwrap_or_default() >= [1, 6].as_slice();
            let mut result = if v16 {
                json!({"count": n, "headers": headers.iter().map(hex::encode).collect::<Vec<_>>(), "max": MAX_CHUNK_SIZE})
            } else {
                json!({"count": n, "hex": headers.iter().map(hex::encode).collect::<String>(), "max": MAX_CHUNK_SIZE})
            };
            if n > 0 && cp > 0 {
                let p = proof(e, start + n - 1, cp)?;
                if let (Some(obj), Some(p)) = (result.as_object_mut(), p.as_object()) {
                    obj.extend(p.clone());
                }
            }
            Ok(result)
        }
        "blockchain.estimatefee" => {
            let a = call.args(&["number", "mode"], 1)?;
            let number = height(a.first().and_then(|v| v.as_ref()).unwrap_or(&Value::Null))?;
            let mode = match a.get(1).cloned().flatten() {
                Some(Value::String(m)) => Some(m.to_uppercase()),
                _ => None,
            };
            if let Some(m) = &mode {
                if m != "CONSERVATIVE" && m != "ECONOMICAL" {
                    return Err(RpcError::bad_request(format!("unknown estimatefee mode: {m}")));
                }
            }
            e.estimate_fee(bucket_target(number), mode).await
        }
        "blockchain.relayfee" => {
            call.args(&[], 0)?;
            Ok(json!(e.network_info().await?.relayfee))
        }
        other => Err(RpcError::internal(format!("unrouted method {other}"))),
    }
}

/// The index tip's height and header.
pub fn tip_header(e: &Electrum) -> Result<(u32, [u8; 80]), RpcError> {
    let tip = e.index.tip();
    let h = tip.height.ok_or_else(|| RpcError::internal("the index is empty"))?;
    let header = e.query.header(h).ok_or_else(|| RpcError::internal("tip header missing"))?;
    Ok((h, header))
}

fn out_of_range(h: u32) -> RpcError {
    RpcError::bad_request(format!("height {} out of range", commas(u64::from(h))))
}

/// `{"branch", "root"}` proving the header at `h` within headers `0..=cp`.
fn proof(e: &Electrum, h: u32, cp: u32) -> Result<Value, RpcError> {
    let max = e.index.tip().height.unwrap_or(0);
    if !(h <= cp && cp <= max) {
        return Err(RpcError::bad_request(format!(
            "require header height {} <= cp_height {} <= chain height {}",
            commas(u64::from(h)),
            commas(u64::from(cp)),
            commas(u64::from(max))
        )));
    }
    let (branch, root) = e
        .query
        .header_proof(h, cp)
        .ok_or_else(|| RpcError::bad_request(format!("no proof for {}", py_str(&json!(h)))))?;
    Ok(json!({"branch": branch, "root": root}))
}

/// Fee targets grouped as bitcoind's estimator groups them, so the cache is shared (ElectrumX's
/// buckets).
fn bucket_target(n: u32) -> u32 {
    match n {
        0..=1 => 1,
        2..=12 => n,
        25 => 25,
        13..=48 => n / 2 * 2,
        49..=1008 => n / 24 * 24,
        _ => 1008,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fee_buckets() {
        assert_eq!(super::bucket_target(0), 1);
        assert_eq!(super::bucket_target(6), 6);
        assert_eq!(super::bucket_target(25), 25);
        assert_eq!(super::bucket_target(27), 26);
        assert_eq!(super::bucket_target(100), 96);
        assert_eq!(super::bucket_target(5000), 1008);
    }
}
