//! The node calls of the read side and the mempool, typed: transactions and packages sent,
//! transactions read (bytes, verbose, a byte range of a block), the mempool's contents, the
//! node's fee estimates and mempool limits. The answers that change slowly (network and mempool
//! information, fee estimates) are cached here, beside the calls, so every caller shares one
//! cache and the node sees at most one such call a minute (or per block, for fees).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Daemon, DaemonError, NetworkInfo};
use crate::sync::Locked;
use crate::types::{BlockHash, Txid};

/// How long node information (relay fee, mempool minimums) is cached.
const NODE_INFO_TTL: Duration = Duration::from_secs(60);

/// A fee estimate's target and mode.
type FeeKey = (u32, Option<String>);

/// Answers of the node that change slowly, with when (or at which tip) they were asked.
#[derive(Default)]
pub(super) struct Caches {
    network_info: std::sync::Mutex<Option<(Instant, NetworkInfo)>>,
    mempool_info: std::sync::Mutex<Option<(Instant, Value)>>,
    /// Fee rates by (target, mode), valid while the tip they were asked at is the tip.
    fees: std::sync::Mutex<HashMap<FeeKey, (Option<BlockHash>, Value)>>,
}

/// A confirmed output as `gettxout` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxOut {
    pub(crate) value: u64,
    pub(crate) script: Vec<u8>,
}

impl Daemon {
    /// `sendrawtransaction`: the txid, as the node writes it.
    pub(crate) async fn send_raw_transaction(&self, hex: &str) -> Result<String, DaemonError> {
        self.rpc.call("sendrawtransaction", json!([hex])).await
    }

    /// `submitpackage`: the node's whole answer.
    pub(crate) async fn submit_package(&self, raw_txs: &[String]) -> Result<Value, DaemonError> {
        self.rpc.call_value("submitpackage", json!([raw_txs])).await
    }

    /// `testmempoolaccept`: the node's whole answer.
    pub(crate) async fn test_mempool_accept(&self, raw_txs: &[String]) -> Result<Value, DaemonError> {
        self.rpc.call_value("testmempoolaccept", json!([raw_txs])).await
    }

    /// `getrawtransaction <txid> false [block]`: a transaction's bytes. With the block that
    /// holds it, no txindex is needed; without one, the node finds it in its mempool (or its
    /// txindex, when it has one).
    pub(crate) async fn raw_transaction(&self, txid: &Txid, block: Option<&BlockHash>) -> Result<Vec<u8>, DaemonError> {
        let params = match block {
            Some(block) => json!([txid.to_hex(), false, block.to_hex()]),
            None => json!([txid.to_hex(), false]),
        };
        let hex: String = self.rpc.call("getrawtransaction", params).await?;
        hex::decode(hex.trim()).map_err(|e| DaemonError::Protocol(format!("getrawtransaction {txid}: bad hex: {e}")))
    }

    /// `getrawtransaction <txid> true [block]`: the node's description of a transaction.
    pub(crate) async fn raw_transaction_verbose(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Value, DaemonError> {
        let params = match block {
            Some(block) => json!([txid.to_hex(), true, block.to_hex()]),
            None => json!([txid.to_hex(), true]),
        };
        self.rpc.call_value("getrawtransaction", params).await
    }

    /// Transactions' bytes from the node's mempool, in the order asked, in batches; `None` for
    /// one the node no longer has (it left the mempool between the calls) or sent unreadable.
    pub(crate) async fn mempool_transactions(&self, txids: &[Txid]) -> Result<Vec<Option<Vec<u8>>>, DaemonError> {
        let params: Vec<Value> = txids.iter().map(|t| json!([t.to_hex(), false])).collect();
        let mut out = Vec::with_capacity(txids.len());
        for reply in self.rpc.batch("getrawtransaction", &params).await? {
            out.push(match reply {
                Ok(Value::String(hex)) => hex::decode(hex).ok(),
                Ok(_) | Err(DaemonError::Rejected { .. }) => None,
                Err(e) => return Err(e),
            });
        }
        Ok(out)
    }

    /// `gettxout` for each outpoint, in the order asked: `None` for one the node's chainstate
    /// does not hold (spent, or never confirmed) or could not describe.
    pub(crate) async fn tx_outs(&self, outpoints: &[(Txid, u32)]) -> Result<Vec<Option<TxOut>>, DaemonError> {
        let params: Vec<Value> = outpoints.iter().map(|(t, n)| json!([t.to_hex(), n, false])).collect();
        let replies = self.rpc.batch("gettxout", &params).await?;
        Ok(replies
            .into_iter()
            .map(|reply| {
                let v = reply.ok()?;
                let value = v.get("value").and_then(Value::as_f64).map(|btc| (btc * 1e8).round() as u64)?;
                let script =
                    v.pointer("/scriptPubKey/hex").and_then(Value::as_str).and_then(|h| hex::decode(h).ok())?;
                Some(TxOut { value, script })
            })
            .collect())
    }

    /// `getrawmempool false`: the txids in the node's mempool (unreadable ones left out).
    pub(crate) async fn mempool_txids(&self) -> Result<Vec<Txid>, DaemonError> {
        let txids: Vec<String> = self.rpc.call("getrawmempool", json!([false])).await?;
        Ok(txids.iter().filter_map(|t| Txid::from_hex(t)).collect())
    }

    /// `waitforblock`: returns when `hash` is the node's tip or after `timeout`, whichever is
    /// first, with the tip then. It holds one of the node's RPC threads meanwhile.
    pub(crate) async fn wait_for_block(&self, hash: &BlockHash, timeout: Duration) -> Result<BlockHash, DaemonError> {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply = self.rpc.call_waiting("waitforblock", json!([hash.to_hex(), millis])).await?;
        reply
            .get("hash")
            .and_then(Value::as_str)
            .and_then(BlockHash::from_hex)
            .ok_or_else(|| DaemonError::Protocol(format!("waitforblock: no tip hash in {reply}")))
    }

    /// `getbestblockhash`.
    pub(crate) async fn best_block_hash(&self) -> Result<BlockHash, DaemonError> {
        let hash: String = self.rpc.call("getbestblockhash", json!([])).await?;
        BlockHash::from_hex(&hash).ok_or_else(|| DaemonError::Protocol(format!("bad best block hash {hash:?}")))
    }

    /// `size` bytes of a stored block from `offset` (`/rest/blockpart`, Core 31+): `None` when
    /// the node answers that it has no such part.
    pub(crate) async fn block_part(
        &self,
        block: &BlockHash,
        offset: u64,
        size: u64,
    ) -> Result<Option<Vec<u8>>, DaemonError> {
        self.rpc.rest_get(&format!("/rest/blockpart/{block}.bin?offset={offset}&size={size}")).await
    }

    /// `getnetworkinfo`, cached for a minute.
    pub(crate) async fn recent_network_info(&self) -> Result<NetworkInfo, DaemonError> {
        if let Some((at, info)) = self.caches.network_info.locked().as_ref() {
            if at.elapsed() < NODE_INFO_TTL {
                return Ok(info.clone());
            }
        }
        let info = self.network_info().await?;
        *self.caches.network_info.locked() = Some((Instant::now(), info.clone()));
        Ok(info)
    }

    /// `getmempoolinfo`, cached for a minute.
    pub(crate) async fn recent_mempool_info(&self) -> Result<Value, DaemonError> {
        if let Some((at, info)) = self.caches.mempool_info.locked().as_ref() {
            if at.elapsed() < NODE_INFO_TTL {
                return Ok(info.clone());
            }
        }
        let info = self.rpc.call_value("getmempoolinfo", json!([])).await?;
        *self.caches.mempool_info.locked() = Some((Instant::now(), info.clone()));
        Ok(info)
    }

    /// `estimatesmartfee`'s fee rate (BTC/kvB, -1 when the node has none), cached per
    /// (target, mode) while `tip` is the tip it was asked at.
    pub(crate) async fn fee_estimate(
        &self,
        target: u32,
        mode: Option<String>,
        tip: Option<BlockHash>,
    ) -> Result<Value, DaemonError> {
        let key = (target, mode);
        if let Some((at_tip, v)) = self.caches.fees.locked().get(&key) {
            if *at_tip == tip {
                return Ok(v.clone());
            }
        }
        let params = match &key.1 {
            Some(m) => json!([target, m]),
            None => json!([target]),
        };
        let estimate = self.rpc.call_value("estimatesmartfee", params).await?;
        let feerate = estimate.get("feerate").cloned().unwrap_or(json!(-1));
        self.caches.fees.locked().insert(key, (tip, feerate.clone()));
        Ok(feerate)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use serde_json::json;

    use super::super::{Auth, Daemon, DaemonConfig};
    use crate::network::Network;
    use crate::types::BlockHash;

    /// Waiting for a block ends when the node connects it, with it as the tip; waiting for one
    /// that never comes ends at the timeout, with the tip as it was.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_for_a_block_ends_when_the_node_connects_it() {
        let node = testkit::Node::start(testkit::NodeOptions::default()).unwrap();
        node.mine(1).unwrap();
        let daemon = std::sync::Arc::new(Daemon::new(&DaemonConfig {
            network: Network::Regtest,
            rpc_addr: node.rpc_addr(),
            auth: Auth::Cookie(node.cookie_file()),
            fallbacks: Vec::new(),
            timeout: Duration::from_secs(120),
        }));
        // The next block, made but not yet submitted.
        let script = testkit::keys::burn_address_n(1).script_pubkey();
        let made = node.call("generateblock", json!([format!("raw({})", script.to_hex_string()), [], false])).unwrap();
        let hash = BlockHash::from_hex(made["hash"].as_str().unwrap()).unwrap();
        let waiting = {
            let daemon = daemon.clone();
            tokio::spawn(async move { daemon.wait_for_block(&hash, Duration::from_secs(60)).await })
        };
        // The wait is under way (or the block is connected first: then it returns at once).
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the wait ended before the block existed");
        let reply = node.call("submitblock", json!([made["hex"]])).unwrap();
        assert!(reply.is_null(), "{reply}");
        // Well before the wait's own 60 s.
        let tip = tokio::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(tip, hash);

        // The wait is not a request time: the node's latency figures leave it out.
        let stats = daemon.rpc.stats();
        let (requests, micros) = (stats.requests.load(Ordering::Relaxed), stats.micros.load(Ordering::Relaxed));
        let never = BlockHash([7; 32]);
        assert_eq!(daemon.wait_for_block(&never, Duration::from_millis(50)).await.unwrap(), hash);
        assert_eq!(stats.requests.load(Ordering::Relaxed), requests + 1);
        assert_eq!(stats.micros.load(Ordering::Relaxed), micros);
        daemon.best_block_hash().await.unwrap();
        assert!(stats.micros.load(Ordering::Relaxed) > micros);
    }
}
