//! Staying at the node's tip until stopped: a sync on every block announcement (P2P, ZMQ)
//! and at least every poll, announced blocks chased until the node has connected them, node
//! outages waited out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BlockSource, IndexError, Indexer};
use crate::daemon::p2p::Announcements;
use crate::daemon::DaemonError;
use crate::sync::Backoff;
use crate::types::BlockHash;

impl<S: BlockSource> Indexer<S> {
    /// Keeps the index at the node's tip until stopped: syncs on every trigger (P2P
    /// announcement, ZMQ) and at least every `poll`. Waits out node outages, logging each
    /// change of state once.
    ///
    /// A block announced by hash before the node has made it its tip (compact blocks are
    /// announced before they are connected) is chased until it is in the index, for at most
    /// 10 s: the source is asked to wait for it (`waitforblock`, up to a second at a time), and
    /// where it cannot, the sync is retried after 2 ms, doubling up to 250 ms.
    pub async fn run(mut self, trigger: Arc<Announcements>, poll: Duration) -> Result<(), IndexError> {
        let mut chase: Option<(BlockHash, Instant, Duration)> = None;
        let mut outage: Option<String> = None;
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        // Blocks the node listed, then could not find: its chain changed while it was read.
        let mut vanished = 0u32;
        loop {
            match self.sync().await {
                Ok(()) => {
                    if outage.take().is_some() {
                        tracing::info!("connection to bitcoind restored");
                    }
                    backoff.reset();
                    vanished = 0;
                }
                Err(IndexError::Daemon(DaemonError::Rejected { code: -5, message })) => {
                    vanished += 1;
                    if vanished > MAX_VANISHED {
                        return Err(IndexError::BlockGone(message));
                    }
                    tracing::warn!("bitcoind's chain changed while it was being read ({message}); starting over");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200) * vanished) => {}
                        _ = self.stop.wait() => return Ok(()),
                    }
                    continue;
                }
                Err(IndexError::Daemon(e)) if e.is_transient() => {
                    let (kind, detail) = match &e {
                        DaemonError::WarmingUp(m) => ("bitcoind is warming up", m.clone()),
                        e => ("bitcoind unreachable", e.to_string()),
                    };
                    if outage.as_deref() != Some(kind) {
                        if detail.is_empty() {
                            tracing::warn!("{kind}; retrying");
                        } else {
                            tracing::warn!("{kind} ({detail}); retrying");
                        }
                        outage = Some(kind.to_string());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_wait()) => {}
                        _ = self.stop.wait() => {}
                    }
                    if self.stop.is_stopped() {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            if self.stop.is_stopped() {
                return Ok(());
            }
            let expected =
                trigger.take_latest().map(|h| (h, Instant::now(), Duration::from_millis(2))).or(chase.take());
            let mut wait = poll;
            let mut awaited = None;
            if let Some((hash, since, delay)) = expected {
                let indexed = self.index.chain().height_of(&hash).is_some();
                if !indexed && since.elapsed() < Duration::from_secs(10) {
                    wait = delay;
                    awaited = Some(hash);
                    chase = Some((hash, since, (delay * 2).min(Duration::from_millis(250))));
                }
            }
            let source = self.source.clone();
            let next = async move {
                // Woken by the node the moment it connects the block; a node that will not wait
                // (an RPC whitelist) is polled.
                let woken = match awaited {
                    Some(hash) => source.wait_for_tip(hash, Duration::from_secs(1)).await,
                    None => false,
                };
                if !woken {
                    tokio::time::sleep(wait).await;
                }
            };
            tokio::select! {
                _ = trigger.notify.notified() => {}
                _ = next => {}
                _ = self.stop.wait() => return Ok(()),
            }
        }
    }
}

/// Times in a row a block may vanish from the node before that is an error (a pruned node
/// behaves so too, and would otherwise be retried forever).
const MAX_VANISHED: u32 = 20;
