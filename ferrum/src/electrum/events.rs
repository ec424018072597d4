//! What subscribers are told, and when: the [`Event`] every session receives, the coordinator
//! that turns index and mempool changes into events, and the tip header they carry.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::jsonrpc::RpcError;
use super::Electrum;
use crate::mempool::Mempool;
use crate::shutdown::StopSignal;
use crate::types::ScriptHash;

/// A change subscribers may care about. Sent to every session.
#[derive(Debug, Default)]
pub(crate) struct Event {
    /// A new tip: height and header.
    pub(crate) tip: Option<(u32, [u8; 80])>,
    /// Script-hash prefixes touched by blocks added or undone (`None`: possibly all of them).
    pub(crate) confirmed: Option<HashSet<[u8; 8]>>,
    /// Script hashes whose mempool part changed.
    pub(crate) mempool: HashSet<ScriptHash>,
}

impl Event {
    /// For a session that missed events: the tip, and every subscription to check again.
    pub(crate) fn everything(e: &Electrum) -> Event {
        Event { tip: tip_header(e).ok(), confirmed: None, mempool: HashSet::new() }
    }
}

/// The index tip's height and header.
pub(crate) fn tip_header(e: &Electrum) -> Result<(u32, [u8; 80]), RpcError> {
    let tip = e.index.tip();
    let h = tip.height.ok_or_else(|| RpcError::internal("the index is empty"))?;
    let header = e.reader.query().header(h).ok_or_else(|| RpcError::internal("tip header missing"))?;
    Ok((h, header))
}

/// Keeps the mempool in line with the node and turns index and mempool changes into events
/// for the sessions. Index changes are taken only when a sync has settled at the node's tip (a
/// reorg's undo and redo become one event). New blocks on top of the last tip take their
/// transactions out of the mempool before the event is sent; otherwise (blocks undone, a
/// catch-up) the mempool is synced with the node first. Either way subscribers never see a
/// transaction both confirmed and pending.
pub(crate) async fn coordinate(electrum: Arc<Electrum>, mempool: Arc<Mempool>, stop: StopSignal) {
    let index = electrum.index.clone();
    let mut settled = index.settled();
    let mut last_tip = None;
    let mut last_height = None;
    let mut failing = false;
    let min_gap = Duration::from_millis(100);
    // A new block seen during the pause after an event: go again at once.
    let mut block_waiting = false;
    loop {
        if !std::mem::take(&mut block_waiting) {
            tokio::select! {
                _ = settled.changed() => {}
                _ = electrum.mempool_trigger.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait() => return,
            }
        }
        if !index.status().caught_up {
            continue;
        }
        let tip = index.tip();
        let tip_changed = last_tip != Some(tip.hash);
        let mut confirmed = if tip_changed { index.take_touched() } else { Some(Default::default()) };
        // Blocks added on top of the last tip: their transactions leave the mempool here, and
        // subscribers are told at once. The node is busiest right after a block, and its
        // answer to the sync below can take tens of milliseconds then; what that sync changes
        // (conflicts with the block, new transactions) follows in an event of its own.
        let mut told = false;
        if tip_changed {
            if let Some(mined) = tip.height.and_then(|h| mined_since(&electrum, last_height.zip(last_tip.flatten()), h))
            {
                let touched = mempool.confirmed(&mined);
                let event = Event { tip: tip_header(&electrum).ok(), confirmed: confirmed.take(), mempool: touched };
                let _ = electrum.events.send(Arc::new(event));
                tracing::debug!(height = tip.height, "event sent before the mempool sync");
                told = true;
            }
        }
        let mempool_started = std::time::Instant::now();
        let touched = match mempool.sync(tip.hash).await {
            Ok(report) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("mempool sync restored");
                }
                if report.added + report.removed > 0 {
                    tracing::debug!(added = report.added, removed = report.removed, size = mempool.len(), "mempool");
                }
                report.touched
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!("mempool sync failed ({e}); retrying");
                }
                Default::default()
            }
        };
        if told {
            if !touched.is_empty() {
                let event = Event { tip: None, confirmed: Some(Default::default()), mempool: touched };
                let _ = electrum.events.send(Arc::new(event));
            }
        } else if tip_changed || !touched.is_empty() {
            let tip_header = if tip_changed { tip_header(&electrum).ok() } else { None };
            // No receivers is fine: nobody is connected.
            let _ = electrum.events.send(Arc::new(Event { tip: tip_header, confirmed, mempool: touched }));
            let mempool_ms = mempool_started.elapsed().as_secs_f64() * 1e3;
            tracing::debug!(height = tip.height, mempool_ms, "event sent");
        }
        last_tip = Some(tip.hash);
        last_height = tip.height;
        // Mempool churn is batched by this pause; a new block cuts it short.
        tokio::select! {
            _ = tokio::time::sleep(min_gap) => {}
            _ = settled.changed() => block_waiting = true,
            _ = stop.wait() => return,
        }
    }
}

/// Blocks told of before the mempool sync at most: more is a catch-up, not a new block.
const MAX_TOLD_BLOCKS: u32 = 10;

/// The txids of the blocks the index added on top of `last` (height and hash) up to
/// `tip_height`: `None` when blocks were undone since (the sync sorts that out), when there are
/// more than [`MAX_TOLD_BLOCKS`], or when the index cannot list them.
fn mined_since(
    e: &Electrum,
    last: Option<(u32, crate::types::BlockHash)>,
    tip_height: u32,
) -> Option<Vec<crate::types::Txid>> {
    let (height, hash) = last?;
    if tip_height <= height || tip_height - height > MAX_TOLD_BLOCKS {
        return None;
    }
    let query = e.reader.query();
    if query.block_hash(height) != Some(hash) {
        return None;
    }
    let mut mined = Vec::new();
    for h in height + 1..=tip_height {
        mined.extend(query.block_txids(h).ok()??);
    }
    Some(mined)
}
