//! `blockchain.headers.subscribe`, `blockchain.block.header(s)` with `cp_height` proofs,
//! `blockchain.estimatefee`, `blockchain.relayfee`.

use serde_json::{json, Value};

use crate::electrum::coerce::{commas, py_str};
use crate::electrum::events::tip_header;
use crate::electrum::jsonrpc::RpcError;
use crate::electrum::protocol::ProtocolVersion;
use crate::electrum::state::SessionState;
use crate::electrum::{Electrum, MAX_CHUNK_SIZE};
use crate::types::BlockHash;

pub(super) fn headers_subscribe(e: &Electrum, session: &mut SessionState) -> Result<Value, RpcError> {
    let (h, header) = tip_header(e)?;
    session.subscribe_headers(h, BlockHash::of_header(&header));
    Ok(json!({"hex": hex::encode(header), "height": h}))
}

/// `blockchain.block.header`, with a proof up to `cp` unless it is 0.
pub(super) fn block_header(e: &Electrum, h: u32, cp: u32) -> Result<Value, RpcError> {
    let header = e.reader.query().header(h).ok_or_else(|| out_of_range(h))?;
    if cp == 0 {
        return Ok(json!(hex::encode(header)));
    }
    let mut result = proof(e, h, cp)?;
    if let Some(obj) = result.as_object_mut() {
        obj.insert("header".into(), json!(hex::encode(header)));
    }
    Ok(result)
}

/// `blockchain.block.headers`: a list of headers from 1.6, one hex string before.
pub(super) fn block_headers(
    e: &Electrum,
    session: &SessionState,
    start: u32,
    count: u32,
    cp: u32,
) -> Result<Value, RpcError> {
    let count = count.min(MAX_CHUNK_SIZE);
    let headers: Vec<[u8; 80]> =
        (start..start.saturating_add(count)).map_while(|h| e.reader.query().header(h)).collect();
    let n = headers.len() as u32;
    let mut result = if session.version.as_ref().is_some_and(|v| *v >= ProtocolVersion::V1_6) {
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

pub(super) async fn estimate_fee(e: &Electrum, number: u32, mode: Option<String>) -> Result<Value, RpcError> {
    Ok(e.daemon.fee_estimate(bucket_target(number), mode, e.index.tip().hash).await?)
}

pub(super) async fn relay_fee(e: &Electrum) -> Result<Value, RpcError> {
    Ok(json!(e.daemon.recent_network_info().await?.relayfee))
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
        .reader
        .query()
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
