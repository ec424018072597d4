//! The live sessions: admission against the session limits (in all, and per client address),
//! the count of sessions and subscriptions per address, and what the admin interface and the
//! metrics read of each session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use super::limits::Limits;
use super::Protocol;
use crate::electrum::state::{SessionState, SubBudget};
use crate::sync::Locked;

/// Every live session, and the counts the session limits are checked against. A session is in
/// `sessions`, and counted in `per_ip` (unless exempt), from its admission until its
/// `Registered` guard is dropped, however its task ends.
pub(super) struct Registry {
    next_id: AtomicU64,
    sessions: Mutex<HashMap<u64, Arc<SessionInfo>>>,
    /// Sessions accepted since start.
    accepted: AtomicU64,
    /// Connections closed at once for a session limit.
    refused: AtomicU64,
    /// Sessions and subscriptions per client address (exempt addresses are not counted).
    per_ip: Mutex<HashMap<IpAddr, IpUse>>,
    /// Subscriptions of all sessions.
    subs_total: Arc<AtomicUsize>,
}

#[derive(Default)]
struct IpUse {
    sessions: usize,
    subs: Arc<AtomicUsize>,
}

/// What the admin interface and the metrics see of a live session.
#[derive(Debug)]
pub(crate) struct SessionInfo {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Protocol,
    pub(crate) started: Instant,
    /// Messages received (a batch counts once).
    pub(crate) requests: AtomicU64,
    pub(crate) subscriptions: AtomicUsize,
    /// The client's name and protocol version, from `server.version`.
    pub(crate) client: Mutex<(String, String)>,
    pub(super) close: Notify,
    /// The subscriptions of every session from this address (`None`: exempt).
    ip_subs: Option<Arc<AtomicUsize>>,
    /// The cost group (`None`: exempt).
    pub(crate) group: Option<String>,
}

impl SessionInfo {
    /// Asks the session to end; it closes its connection at once.
    pub(crate) fn close(&self) {
        self.close.notify_one();
    }

    /// Copies what the admin interface shows from the session's own state, after each message.
    pub(super) fn mirror(&self, state: &SessionState) {
        self.subscriptions.store(state.subscription_count(), Ordering::Relaxed);
        if self.client.locked().0 != state.client {
            let version = state.version.as_ref().map(ToString::to_string);
            *self.client.locked() = (state.client.clone(), version.unwrap_or_default());
        }
    }
}

/// Removes a session from the registry however its task ends.
pub(super) struct Registered {
    registry: Arc<Registry>,
    id: u64,
    /// Counted against its address.
    ip: Option<IpAddr>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.sessions.locked().remove(&self.id);
        if let Some(ip) = self.ip {
            let mut per_ip = self.registry.per_ip.locked();
            if let Some(u) = per_ip.get_mut(&ip) {
                u.sessions = u.sessions.saturating_sub(1);
                if u.sessions == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

impl Registry {
    pub(super) fn new() -> Registry {
        Registry {
            next_id: AtomicU64::new(1),
            sessions: Mutex::default(),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            per_ip: Mutex::default(),
            subs_total: Arc::default(),
        }
    }

    /// Registers a new connection from `peer` as a session, or refuses it (counted, logged)
    /// when the server or the peer's address is at its session limit. The session stays
    /// registered until the guard is dropped.
    pub(super) fn admit(
        self: &Arc<Self>,
        peer: SocketAddr,
        protocol: Protocol,
        limits: &Limits,
    ) -> Option<(Arc<SessionInfo>, Registered)> {
        if self.count() >= limits.max_sessions {
            tracing::debug!(%peer, "session limit reached; closing the new connection");
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let ip = peer.ip().to_canonical();
        let Ok(ip_subs) = self.count_address(ip, limits) else {
            tracing::debug!(%peer, "{} sessions from this address; closing the new connection", limits.max_sessions_per_ip);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(SessionInfo {
            id,
            peer,
            protocol,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            subscriptions: AtomicUsize::new(0),
            client: Mutex::new((String::new(), String::new())),
            close: Notify::new(),
            group: ip_subs.is_some().then(|| crate::cost::group_of(ip)),
            ip_subs,
        });
        self.sessions.locked().insert(id, info.clone());
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let registered = Registered { registry: self.clone(), id, ip: info.ip_subs.is_some().then_some(ip) };
        Some((info, registered))
    }

    /// Counts a new session against its address; `Err` when the address is at its limit.
    /// `Ok(None)`: the address is exempt.
    fn count_address(&self, ip: IpAddr, limits: &Limits) -> Result<Option<Arc<AtomicUsize>>, ()> {
        if limits.exempts(ip) {
            return Ok(None);
        }
        let mut per_ip = self.per_ip.locked();
        let u = per_ip.entry(ip).or_default();
        if u.sessions >= limits.max_sessions_per_ip {
            return Err(());
        }
        u.sessions += 1;
        Ok(Some(u.subs.clone()))
    }

    /// The subscription budget a session shares with the others: all sessions', and its
    /// address's (unless exempt).
    pub(super) fn budget(&self, info: &SessionInfo, limits: &Limits) -> SubBudget {
        SubBudget {
            total: self.subs_total.clone(),
            max_total: limits.max_subs_total,
            per_ip: info.ip_subs.clone(),
            max_per_ip: limits.max_subs_per_ip,
        }
    }

    /// Live sessions.
    pub(super) fn count(&self) -> usize {
        self.sessions.locked().len()
    }

    /// Sessions accepted since start.
    pub(super) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once: a session limit reached, or a proxied listener's connection
    /// from no configured proxy or without its PROXY header.
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a connection closed before it was a session.
    pub(super) fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The live sessions, by id.
    pub(super) fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        let mut all: Vec<_> = self.sessions.locked().values().cloned().collect();
        all.sort_by_key(|s| s.id);
        all
    }
}
