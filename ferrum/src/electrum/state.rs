//! What a session remembers between requests: its negotiated version and client, its
//! subscriptions with the statuses last sent, and its share of the server's subscription budget.
//! Methods read and change it; the session's task owns it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::coerce::commas;
use super::jsonrpc::{self, RpcError};
use super::protocol::ProtocolVersion;
use crate::query::{Outpoint, OutpointStatus};
use crate::types::{BlockHash, ScriptHash, Txid};

/// A subscription: the script hash as the client wrote it, and the status it last saw.
#[derive(Debug, Clone)]
struct Sub {
    shown: Value,
    status: Option<[u8; 32]>,
}

/// An outpoint subscription (protocol 1.7): the output's script once a transaction paying it
/// is known, and the status last sent.
#[derive(Debug, Clone, Copy)]
struct OutpointSub {
    script: Option<ScriptHash>,
    status: OutpointStatus,
}

/// Subscriptions counted beyond one session: those of every session from the same client
/// address, and those of all sessions. Each session takes from it as it subscribes and gives
/// back as it unsubscribes or ends.
#[derive(Debug, Clone)]
pub(crate) struct SubBudget {
    pub(crate) total: Arc<AtomicUsize>,
    pub(crate) max_total: usize,
    /// `None`: the address is exempt from the per-address limit.
    pub(crate) per_ip: Option<Arc<AtomicUsize>>,
    pub(crate) max_per_ip: usize,
}

impl SubBudget {
    /// No limit beyond the session's own.
    pub(crate) fn unlimited() -> SubBudget {
        SubBudget { total: Arc::default(), max_total: usize::MAX, per_ip: None, max_per_ip: usize::MAX }
    }

    fn take(&self) -> Result<(), RpcError> {
        let over = |what: &str, max: usize| {
            RpcError::new(
                jsonrpc::EXCESSIVE_RESOURCE_USAGE,
                format!("too many subscriptions (at most {} {what})", commas(max as u64)),
            )
        };
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(over("on this server", self.max_total));
        }
        if let Some(ip) = &self.per_ip {
            if ip.fetch_add(1, Ordering::Relaxed) >= self.max_per_ip {
                ip.fetch_sub(1, Ordering::Relaxed);
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(over("per client address", self.max_per_ip));
            }
        }
        Ok(())
    }

    fn give_back(&self, n: usize) {
        self.total.fetch_sub(n, Ordering::Relaxed);
        if let Some(ip) = &self.per_ip {
            ip.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// What a session remembers between requests.
#[derive(Debug)]
pub struct SessionState {
    pub(crate) id: u64,
    /// Negotiated by `server.version`; nothing else is served before.
    pub(crate) version: Option<ProtocolVersion>,
    pub(crate) version_seen: bool,
    pub(crate) client: String,
    pub(crate) headers: bool,
    pub(crate) notified_height: Option<u32>,
    notified_hash: Option<BlockHash>,
    subs: HashMap<ScriptHash, Sub>,
    outpoints: HashMap<(Txid, u32), OutpointSub>,
    /// Most script hashes and outpoints this session may subscribe to.
    pub(crate) max_subs: usize,
    /// Shared with the other sessions.
    pub(crate) budget: SubBudget,
    /// Most requests in one batch.
    pub(crate) max_batch: usize,
    /// Close the connection once the current answer is sent.
    pub close_after_reply: bool,
    /// The client's address (`server.add_peer` checks a peer's host against it).
    pub(crate) client_ip: Option<std::net::IpAddr>,
}

impl SessionState {
    pub fn new(id: u64, max_subs: usize) -> SessionState {
        SessionState {
            id,
            version: None,
            version_seen: false,
            client: String::new(),
            headers: false,
            notified_height: None,
            notified_hash: None,
            subs: HashMap::new(),
            outpoints: HashMap::new(),
            max_subs,
            budget: SubBudget::unlimited(),
            max_batch: usize::MAX,
            close_after_reply: false,
            client_ip: None,
        }
    }

    pub(crate) fn subscribe(
        &mut self,
        sh: ScriptHash,
        shown: &Value,
        status: Option<[u8; 32]>,
    ) -> Result<(), RpcError> {
        if let Some(sub) = self.subs.get_mut(&sh) {
            *sub = Sub { shown: shown.clone(), status };
            return Ok(());
        }
        self.take_one()?;
        self.subs.insert(sh, Sub { shown: shown.clone(), status });
        Ok(())
    }

    /// One more subscription, within the session's limit and the shared budget.
    fn take_one(&self) -> Result<(), RpcError> {
        if self.subscription_count() >= self.max_subs {
            return Err(RpcError::new(
                jsonrpc::EXCESSIVE_RESOURCE_USAGE,
                format!("too many subscriptions (at most {} per session)", self.max_subs),
            ));
        }
        self.budget.take()
    }

    /// Subscribes to an outpoint, the client having been sent `now`.
    pub(crate) fn subscribe_outpoint(&mut self, outpoint: (Txid, u32), now: Outpoint) -> Result<(), RpcError> {
        if !self.outpoints.contains_key(&outpoint) {
            self.take_one()?;
        }
        self.outpoints.insert(outpoint, OutpointSub { script: now.script, status: now.status });
        Ok(())
    }

    pub(crate) fn unsubscribe_outpoint(&mut self, outpoint: &(Txid, u32)) -> bool {
        let removed = self.outpoints.remove(outpoint).is_some();
        if removed {
            self.budget.give_back(1);
        }
        removed
    }

    /// The subscribed outpoints whose status may have changed: those whose output's script
    /// `affected` names, those not paid yet (any transaction may pay them), and, on a new
    /// block, those with a mempool height.
    pub(crate) fn outpoints_to_check(
        &self,
        new_block: bool,
        mut affected: impl FnMut(&ScriptHash) -> bool,
    ) -> Vec<(Txid, u32)> {
        self.outpoints
            .iter()
            .filter(|(_, sub)| sub.script.as_ref().is_none_or(&mut affected) || (new_block && sub.status.in_mempool()))
            .map(|(outpoint, _)| *outpoint)
            .collect()
    }

    /// Records an outpoint's status; whether it is news to the client.
    pub(crate) fn outpoint_changed(&mut self, outpoint: &(Txid, u32), now: Outpoint) -> bool {
        let Some(sub) = self.outpoints.get_mut(outpoint) else { return false };
        sub.script = now.script.or(sub.script);
        let changed = sub.status != now.status;
        sub.status = now.status;
        changed
    }

    pub(crate) fn unsubscribe(&mut self, sh: &ScriptHash) -> bool {
        let removed = self.subs.remove(sh).is_some();
        if removed {
            self.budget.give_back(1);
        }
        removed
    }

    /// Subscribes to headers, the client having been sent the tip `height`/`hash`.
    pub(crate) fn subscribe_headers(&mut self, height: u32, hash: BlockHash) {
        self.headers = true;
        self.notified_height = Some(height);
        self.notified_hash = Some(hash);
    }

    /// Whether the negotiated version is `version` or later (`false` before `server.version`).
    pub(crate) fn speaks(&self, version: &ProtocolVersion) -> bool {
        self.version.as_ref().is_some_and(|v| v >= version)
    }

    /// Script hashes and outpoints subscribed to.
    pub(crate) fn subscription_count(&self) -> usize {
        self.subs.len() + self.outpoints.len()
    }

    /// Records a new tip for a session subscribed to headers; whether it is news to the client.
    pub(crate) fn tip_changed(&mut self, height: u32, hash: BlockHash) -> bool {
        if !self.headers || self.notified_hash == Some(hash) {
            return false;
        }
        self.notified_height = Some(height);
        self.notified_hash = Some(hash);
        true
    }

    /// The subscribed script hashes `affected` says may have changed.
    pub(crate) fn subscribed(&self, mut affected: impl FnMut(&ScriptHash) -> bool) -> Vec<ScriptHash> {
        self.subs.keys().filter(|sh| affected(sh)).copied().collect()
    }

    /// Records the status of a subscribed script; the script hash as the client wrote it if
    /// the status is news to the client.
    pub(crate) fn status_changed(&mut self, sh: &ScriptHash, status: Option<[u8; 32]>) -> Option<&Value> {
        let sub = self.subs.get_mut(sh).filter(|sub| sub.status != status)?;
        sub.status = status;
        Some(&sub.shown)
    }
}

impl Drop for SessionState {
    /// The session's subscriptions go back to the shared budget.
    fn drop(&mut self) {
        self.budget.give_back(self.subscription_count());
    }
}
