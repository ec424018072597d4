//! Transports and sessions: TCP, TLS, WebSocket and secure WebSocket listeners; one task per
//! connection, with an idle timeout, a bounded outbound queue and a slow-reader timeout.
//!
//! `listener` binds the sockets and admits connections, `registry` keeps the live sessions and
//! their counts per address, `connection` runs one session (`read → gate → answer → queue`),
//! and `limits` holds the limits and the gates that check them. `framing` delimits messages on
//! each transport; `tls` keeps the certificate; `proxy` reads the PROXY protocol header a load
//! balancer sends first on the listeners that opt in.

mod connection;
pub(crate) mod framing;
mod limits;
mod listener;
mod proxy;
mod registry;
pub(crate) mod tls;

use std::sync::Arc;

use crate::cost::Ledger;
use crate::electrum::Electrum;
use limits::CostGate;
pub(crate) use limits::{Limits, Subnet};
pub(crate) use listener::{accept, bind, Protocol, Service};
use registry::Registry;
pub(crate) use registry::SessionInfo;

/// The Electrum server: its settings, the live sessions and the cost model's ledger, shared by
/// every listener and session task.
pub(crate) struct Server {
    electrum: Arc<Electrum>,
    tls: Option<tls::Tls>,
    limits: Limits,
    registry: Arc<Registry>,
    cost: CostGate,
}

impl Server {
    pub(crate) fn new(electrum: Arc<Electrum>, tls: Option<tls::Tls>, limits: Limits) -> Arc<Server> {
        Arc::new(Server {
            electrum,
            tls,
            registry: Arc::new(Registry::new()),
            cost: CostGate::new(limits.cost),
            limits,
        })
    }

    /// The SHA-256 fingerprint of the TLS certificate served, when a TLS service is on.
    pub(crate) fn tls_fingerprint(&self) -> Option<String> {
        self.tls.as_ref().map(tls::Tls::fingerprint)
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        self.cost.ledger()
    }

    /// Requests slowed, and sessions dropped, by the cost model.
    pub(crate) fn cost_actions(&self) -> (u64, u64) {
        self.cost.actions()
    }

    /// Connections closed at once: a session limit reached, or a proxied listener's connection
    /// from no configured proxy or without its PROXY header.
    pub(crate) fn refused(&self) -> u64 {
        self.registry.refused()
    }

    /// Sessions accepted since start.
    pub(crate) fn accepted(&self) -> u64 {
        self.registry.accepted()
    }

    /// The live sessions, by id.
    pub(crate) fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        self.registry.sessions()
    }
}
