//! A [`BlockSource`] over a stream of frames: Ferrum's indexer takes synthetic blocks exactly as
//! it takes a node's, through the seam its own tests use.
//!
//! A thread reads frames into a buffer bounded in bytes, so the generator runs ahead by a few
//! hundred blocks at most and the buffer's memory stays small next to the indexer's. Until the
//! stream ends the source says it is a node in initial block download whose tip lies
//! [`LOOKAHEAD`] blocks past the last frame read, so the indexer syncs in bulk and asks for
//! blocks as they come; once it ends, the source reports the real tip, out of initial block
//! download, and the indexer finishes as it does on a node (leaves bulk mode, compacts). One
//! difference follows: in utxo mode the indexer keeps undo rows for the blocks near the tip it is
//! told, so a streamed run writes none for its last 200 blocks (of tens of thousands).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ferrum::types::BlockHash;
use ferrum::{BlockSource, DaemonError, NodeTip};
use tokio::sync::Notify;

use super::stream::read_frame;
use super::Synth;

/// How far past the last block read the source says its tip is, while the stream runs: more
/// than the indexer's bulk threshold, so it never waits for a node to get ahead.
pub const LOOKAHEAD: u32 = 10_000;

#[derive(Default)]
struct Buffered {
    block: Option<Vec<u8>>,
    spent: Option<Vec<u8>>,
}

#[derive(Default)]
struct State {
    /// Every block's hash by height, from genesis.
    hashes: Vec<BlockHash>,
    /// Transactions by height, cumulative (genesis's one included).
    tx_totals: Vec<u64>,
    buffered: HashMap<BlockHash, Buffered>,
    bytes: usize,
    ended: bool,
    error: Option<String>,
}

pub struct SynthSource {
    state: Mutex<State>,
    /// The reader waits here while the buffer is full.
    room: Condvar,
    /// Consumers wait here for the next frame.
    arrived: Notify,
    capacity: usize,
    /// Keep each block's spent outputs (spenttxouts mode asks for them; utxo mode never does).
    keep_spent: bool,
}

impl SynthSource {
    /// Reads `input` on a thread of its own, keeping at most `capacity` bytes of blocks that
    /// have not been fetched yet.
    pub fn spawn(input: impl Read + Send + 'static, capacity: usize, keep_spent: bool) -> Arc<SynthSource> {
        let block = Synth::genesis();
        let genesis = Synth::ferrum_hash(block.block_hash());
        let mut state = State { hashes: vec![genesis], tx_totals: vec![1], ..State::default() };
        let raw = bitcoin::consensus::encode::serialize(&block);
        // The genesis coinbase spends nothing: one transaction with no spent outputs.
        state.buffered.insert(genesis, Buffered { block: Some(raw), spent: keep_spent.then(|| vec![1, 0]) });
        let source = Arc::new(SynthSource {
            state: Mutex::new(state),
            room: Condvar::new(),
            arrived: Notify::new(),
            capacity,
            keep_spent,
        });
        let reader = source.clone();
        std::thread::spawn(move || reader.read_all(input));
        source
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_all(&self, mut input: impl Read) {
        let mut input = std::io::BufReader::with_capacity(4 << 20, &mut input);
        loop {
            let frame = read_frame(&mut input);
            let mut state = self.lock();
            match frame {
                Ok(Some(f)) => {
                    if f.height as usize != state.hashes.len() {
                        state.error = Some(format!("frame {} after height {}", f.height, state.hashes.len() - 1));
                    } else {
                        let hash = Synth::ferrum_hash(f.hash);
                        let total = state.tx_totals.last().copied().unwrap_or(0) + u64::from(f.txs);
                        state.hashes.push(hash);
                        state.tx_totals.push(total);
                        let spent = self.keep_spent.then_some(f.spent);
                        state.bytes += f.block.len() + spent.as_ref().map_or(0, Vec::len);
                        state.buffered.insert(hash, Buffered { block: Some(f.block), spent });
                    }
                }
                Ok(None) => state.ended = true,
                Err(e) => state.error = Some(format!("reading blocks: {e}")),
            }
            let stop = state.ended || state.error.is_some();
            self.arrived.notify_waiters();
            if stop {
                return;
            }
            while state.bytes > self.capacity && state.error.is_none() {
                state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// Waits until `ready` holds of the state, or the stream ended or failed.
    async fn wait<T>(&self, ready: impl Fn(&State) -> Option<T>) -> Result<T, DaemonError> {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let state = self.lock();
                if let Some(e) = &state.error {
                    return Err(DaemonError::Protocol(e.clone()));
                }
                if let Some(v) = ready(&state) {
                    return Ok(v);
                }
            }
            arrived.await;
        }
    }

    /// The chain's end once the stream has ended: its height and transactions.
    pub fn ended(&self) -> Option<(u32, u64)> {
        let state = self.lock();
        state.ended.then(|| ((state.hashes.len() - 1) as u32, state.tx_totals.last().copied().unwrap_or(0)))
    }

    /// Hands out one part of a buffered block; the block leaves the buffer once nothing more
    /// of it will be asked for.
    fn take(&self, hash: BlockHash, spent: bool) -> Result<Vec<u8>, DaemonError> {
        let mut state = self.lock();
        let entry = state.buffered.get_mut(&hash);
        let part = entry.and_then(|b| if spent { b.spent.take() } else { b.block.take() });
        let Some(part) = part else {
            return Err(DaemonError::Protocol(format!("block {} is not buffered (asked twice?)", hash.to_hex())));
        };
        if state.buffered.get(&hash).is_some_and(|b| b.block.is_none() && b.spent.is_none()) {
            state.buffered.remove(&hash);
        }
        state.bytes = state.bytes.saturating_sub(part.len());
        self.room.notify_all();
        Ok(part)
    }
}

impl BlockSource for SynthSource {
    async fn best(&self) -> Result<NodeTip, DaemonError> {
        let state = self.lock();
        if let Some(e) = &state.error {
            return Err(DaemonError::Protocol(e.clone()));
        }
        let last = (state.hashes.len() - 1) as u32;
        let tip = if state.ended {
            NodeTip {
                height: last,
                hash: state.hashes[last as usize],
                initial_block_download: false,
                headers: last,
                progress: 1.0,
            }
        } else {
            // A tip not yet made: its hash matches nothing, so the indexer keeps asking.
            let height = last + LOOKAHEAD;
            NodeTip { height, hash: BlockHash([0; 32]), initial_block_download: true, headers: height, progress: 0.0 }
        };
        Ok(tip)
    }

    async fn hashes(&self, from: u32, count: u32) -> Result<Vec<BlockHash>, DaemonError> {
        let from = from as usize;
        self.wait(|state| {
            let have = state.hashes.len();
            if from < have {
                Some(state.hashes[from..have.min(from + count as usize)].to_vec())
            } else {
                state.ended.then(Vec::new)
            }
        })
        .await
    }

    async fn block(&self, hash: BlockHash) -> Result<Vec<u8>, DaemonError> {
        self.take(hash, false)
    }

    async fn spent_outputs(&self, hash: BlockHash) -> Result<Vec<u8>, DaemonError> {
        if !self.keep_spent {
            return Err(DaemonError::Protocol("this source keeps no spent outputs (utxo mode)".into()));
        }
        self.take(hash, true)
    }
}
