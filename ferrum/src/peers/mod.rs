//! Peer discovery, for a public server that wants to be part of the network, as ElectrumX does
//! it (its `docs/peer_discovery.rst`): off by default (`PEER_DISCOVERY`).
//!
//! Peers come from the seed list, from the lists of peers already verified (at most two new
//! ones from each), and from `server.add_peer`. Each peer is verified by connecting to it
//! (TLS first, then TCP; onion peers, or all with `FORCE_PROXY`, through the SOCKS5 proxy at
//! `TOR_PROXY_HOST`/`TOR_PROXY_PORT`): it must speak the protocol, be on this network (the
//! genesis hash), within 5 blocks of this server's tip with the same header 10 blocks below the
//! lower tip, and list its own host. Only peers verified in the last 3 hours are announced in
//! `server.peers.subscribe`, two at most per /16 for clearnet, onion ones up to a quarter.
//! A good peer is checked again before it turns stale, a failing one after 5 minutes, doubling,
//! and forgotten after 3 failures (10 once it was good). With `PEER_ANNOUNCE`, a peer that does
//! not list this server is told of it with `server.add_peer`.
//!
//! `server.add_peer` is taken from a clearnet host only when its name resolves to the caller's
//! address, at most once every 10 minutes per domain, and from an onion host at most once per
//! random interval of up to 20 minutes, as ElectrumX: a caller cannot make the server connect
//! wherever it likes, nor fill its table.

mod check;
mod client;
pub(crate) mod peer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::query::Query;
use crate::sync::Locked;
use peer::Peer;

/// A peer not verified for this long is no longer announced.
const STALE: Duration = Duration::from_secs(3 * 3600);
/// The unit of the back-off between failed checks.
const WAKEUP: Duration = Duration::from_secs(300);
/// `server.add_peer` from one domain at most this often.
const ADD_PAUSE: Duration = Duration::from_secs(600);
/// Peers kept at most; more are not taken.
const MAX_PEERS: usize = 1000;
/// New peers taken from one peer's list.
const NEW_FROM_ONE_LIST: usize = 2;
/// How far a peer's tip may be from this server's.
const MAX_TIP_DIFF: u32 = 5;
/// How far below the lower tip the two chains must agree.
const MAX_SPLIT: u32 = 10;
/// Proxy ports tried when `TOR_PROXY_PORT` is not set: Tor's daemon, Tor Browser, SOCKS.
const PROXY_PORTS: [u16; 3] = [9050, 9150, 1080];

/// `PEER_DISCOVERY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Discovery {
    /// No peers: `server.peers.subscribe` answers `[]` and `server.add_peer` `false`.
    #[default]
    Off,
    /// Only this server's own reported services, once verified by connecting to them.
    SelfOnly,
    /// Seeds, peers' lists and `server.add_peer`.
    On,
}

impl FromStr for Discovery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "" => Ok(Discovery::Off),
            "self" => Ok(Discovery::SelfOnly),
            "on" => Ok(Discovery::On),
            other => Err(format!("{other:?} is not on, off or self")),
        }
    }
}

/// The peer discovery settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerConfig {
    pub(crate) discovery: Discovery,
    /// Tell peers of this server (`PEER_ANNOUNCE`).
    pub(crate) announce: bool,
    /// Reach every peer through the proxy, not only onion ones (`FORCE_PROXY`).
    pub(crate) force_proxy: bool,
    /// The SOCKS5 proxy (`TOR_PROXY_HOST`, `TOR_PROXY_PORT`; without a port, 9050, 9150 and
    /// 1080 are tried).
    pub(crate) proxy_host: String,
    pub(crate) proxy_port: Option<u16>,
    /// Peers to start from, as real names (`host s t`).
    pub(crate) seeds: Vec<String>,
}

/// A peer and what is known of its checks.
struct Entry {
    peer: Peer,
    /// One of this server's reported services.
    is_self: bool,
    last_good: Option<Instant>,
    last_try: Option<Instant>,
    /// Checks since the last good one.
    tries: u32,
    bad: Option<String>,
    source: String,
    retry: Arc<Notify>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// When a `server.add_peer` was last taken, per domain (or "ip" for addresses).
    recent_adds: HashMap<String, Instant>,
    /// Before this, no new onion peer is taken from `server.add_peer`.
    onion_permit: Option<Instant>,
}

/// The peer table and its upkeep.
pub(crate) struct Peers {
    config: PeerConfig,
    /// The network's default TCP and TLS ports, for real names.
    default_ports: (u16, u16),
    genesis: String,
    /// This server as its reported services name it, one peer per host.
    myselves: Vec<Peer>,
    /// This server's `server.features`, for `server.add_peer`.
    features: Value,
    /// `server.version` arguments to a peer: name and protocol range.
    version_args: Value,
    query: Query,
    state: Mutex<State>,
}

impl Peers {
    pub(crate) fn new(
        config: PeerConfig,
        default_ports: (u16, u16),
        genesis: String,
        features: Value,
        version_args: Value,
        query: Query,
    ) -> Arc<Peers> {
        let myselves = Peer::from_features(&features);
        Arc::new(Peers {
            config,
            default_ports,
            genesis,
            myselves,
            features,
            version_args,
            query,
            state: Mutex::default(),
        })
    }

    pub(crate) fn discovery(&self) -> Discovery {
        self.config.discovery
    }

    /// Starts the upkeep: this server's own services, and with discovery on the seeds, are
    /// taken and checked, each in a task of its own from then on.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.config.discovery == Discovery::Off {
            return;
        }
        tracing::info!(
            discovery = ?self.config.discovery,
            announce = self.config.announce,
            proxy = %self.config.proxy_host,
            "peer discovery started"
        );
        let selves: Vec<Peer> = self.myselves.iter().filter(|p| p.is_public()).cloned().collect();
        self.note(selves, None, "self", true);
        if self.config.discovery == Discovery::On {
            let seeds = self.config.seeds.iter().filter_map(|s| Peer::from_real_name(s, self.default_ports)).collect();
            self.note(seeds, None, "seed list", false);
        }
    }

    /// Takes peers not known yet (at most `limit` of them, chosen at random), each then checked
    /// in a task of its own. A known one whose ports differ is checked again at once.
    fn note(self: &Arc<Self>, peers: Vec<Peer>, limit: Option<usize>, source: &str, is_self: bool) {
        let mut new = Vec::new();
        {
            let state = self.state.locked();
            for peer in peers {
                if !peer.is_public() || new.iter().any(|p: &Peer| p.key() == peer.key()) {
                    continue;
                }
                match state.entries.get(&peer.key()) {
                    Some(known) => {
                        if (known.peer.tcp_port, known.peer.ssl_port) != (peer.tcp_port, peer.ssl_port) {
                            known.retry.notify_one();
                        }
                    }
                    None => new.push(peer),
                }
            }
        }
        if let Some(limit) = limit {
            let mut rng = rand::thread_rng();
            while new.len() > limit {
                new.swap_remove(rng.gen_range(0..new.len()));
            }
        }
        for peer in new {
            let key = peer.key();
            {
                let mut state = self.state.locked();
                if state.entries.len() >= MAX_PEERS || state.entries.contains_key(&key) {
                    continue;
                }
                tracing::info!(peer = %peer.real_name(self.default_ports), source, "new peer");
                let retry = Arc::new(Notify::new());
                let entry = Entry {
                    peer,
                    is_self,
                    last_good: None,
                    last_try: None,
                    tries: 0,
                    bad: None,
                    source: source.to_string(),
                    retry,
                };
                state.entries.insert(key.clone(), entry);
            }
            tokio::spawn(self.clone().monitor(key));
        }
    }

    /// `server.add_peer`: takes the first host `features` names, from a session at `source`,
    /// within the limits above. Whether it was taken.
    pub(crate) async fn add_peer(self: &Arc<Self>, features: &Value, source: Option<IpAddr>) -> bool {
        if self.config.discovery != Discovery::On {
            return false;
        }
        let Some(source) = source else { return false };
        let Some(peer) = Peer::from_features(features).into_iter().next() else {
            tracing::info!(%source, "server.add_peer without a host");
            return false;
        };
        let now = Instant::now();
        let bucket = match peer.host.parse::<IpAddr>() {
            Ok(_) => "ip".to_string(),
            Err(_) => {
                let host = peer.key();
                let labels: Vec<&str> = host.rsplitn(3, '.').take(2).collect();
                labels.into_iter().rev().collect::<Vec<_>>().join(".")
            }
        };
        {
            let mut state = self.state.locked();
            let last = state.recent_adds.insert(bucket, now);
            state.recent_adds.retain(|_, at| now.duration_since(*at) < ADD_PAUSE);
            if last.is_some_and(|at| now.duration_since(at) < ADD_PAUSE) {
                return false;
            }
        }
        let (permit, reason) = if peer.is_tor() {
            let mut state = self.state.locked();
            let permitted = state.onion_permit.is_none_or(|at| now >= at);
            if permitted {
                let wait = Duration::from_secs(rand::thread_rng().gen_range(0..1200));
                state.onion_permit = Some(now + wait);
            }
            (permitted, "rate limited")
        } else {
            let resolved = tokio::net::lookup_host((peer.host.as_str(), 80)).await;
            let matches = resolved.is_ok_and(|mut addrs| addrs.any(|a| a.ip().to_canonical() == source.to_canonical()));
            (matches, "its host does not resolve to the caller's address")
        };
        if !permit {
            tracing::info!(%source, host = %peer.host, "server.add_peer refused: {reason}");
            return false;
        }
        if !peer.is_public() {
            tracing::info!(%source, host = %peer.host, "server.add_peer refused: not a public host");
            return false;
        }
        tracing::info!(%source, host = %peer.host, "server.add_peer taken");
        self.note(vec![peer], Some(1), &source.to_string(), false);
        true
    }

    /// `server.peers.subscribe`: the peers verified in the last 3 hours (this server among
    /// them), two at most per /16 for clearnet peers, onion ones up to a quarter (at least 10).
    pub(crate) fn subscribe_answer(&self) -> Value {
        let state = self.state.locked();
        let recent = |e: &&Entry| e.bad.is_none() && e.last_good.is_some_and(|t| t.elapsed() < STALE);
        let mut good: Vec<&Entry> = state.entries.values().filter(recent).collect();
        good.sort_by_key(|e| std::cmp::Reverse(e.last_good));
        let mut chosen: Vec<&Entry> = good.iter().filter(|e| e.is_self).copied().collect();
        let mut per_bucket: HashMap<String, usize> = HashMap::new();
        let mut onion = Vec::new();
        for entry in good.iter().filter(|e| !e.is_self) {
            if entry.peer.is_tor() {
                onion.push(*entry);
                continue;
            }
            let count = per_bucket.entry(bucket_16(entry.peer.ip_addr)).or_default();
            if *count < 2 {
                *count += 1;
                chosen.push(entry);
            }
        }
        let max_onion = (chosen.len() / 4).max(10);
        chosen.extend(onion.into_iter().take(max_onion));
        Value::Array(chosen.iter().map(|e| e.peer.to_tuple(self.default_ports)).collect())
    }

    /// Every peer with its state, for `ferrum rpc peers`.
    pub(crate) fn table(&self) -> Value {
        let state = self.state.locked();
        let mut rows: Vec<Value> = state
            .entries
            .values()
            .map(|e| {
                let status = match (&e.bad, e.last_good) {
                    (Some(_), _) => "bad",
                    (None, Some(t)) if t.elapsed() < STALE => "good",
                    (None, Some(_)) => "stale",
                    (None, None) => "never",
                };
                json!({
                    "host": e.peer.host,
                    "real_name": e.peer.real_name(self.default_ports),
                    "ip_addr": e.peer.ip_addr.map(|ip| ip.to_string()),
                    "status": status,
                    "bad": e.bad,
                    "self": e.is_self,
                    "source": e.source,
                    "tries": e.tries,
                    "last_good_s": e.last_good.map(|t| t.elapsed().as_secs()),
                    "last_try_s": e.last_try.map(|t| t.elapsed().as_secs()),
                })
            })
            .collect();
        rows.sort_by_key(|r| r["host"].as_str().unwrap_or_default().to_string());
        Value::Array(rows)
    }
}

/// A clearnet peer's /16 (IPv4) or /56 (IPv6), the unit of announced diversity.
fn bucket_16(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => {
            let [a, b, ..] = v4.octets();
            format!("{a}.{b}")
        }
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3] & 0xff00)
        }
        None => String::new(),
    }
}
