//! Checking a peer: one session to it (TLS, then TCP; through the proxy for onion hosts or
//! with `FORCE_PROXY`), what it must answer to be announced, registering this server with it,
//! and when to check it again or forget it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{ClientError, PeerClient, Target};
use super::peer::Peer;
use super::{Discovery, Peers, MAX_SPLIT, MAX_TIP_DIFF, NEW_FROM_ONE_LIST, PROXY_PORTS, STALE, WAKEUP};
use crate::sync::Locked;

/// What failed in a check.
enum Failure {
    /// The peer is wrong (another chain, a bad answer): not tried again.
    Bad(String),
    /// It could not be reached or answered in time: tried again later.
    Unreachable(String),
}

/// A session that fails (an error answer, a dropped connection, a timeout) may do better
/// later: a peer still syncing answers errors for a while. Only a wrong answer makes it bad.
impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::Unreachable(e.to_string())
    }
}

impl Peers {
    /// Checks a peer now, then again on its schedule, until it is forgotten.
    pub(super) async fn monitor(self: Arc<Self>, key: String) {
        loop {
            if self.check(&key).await {
                self.state.locked().entries.remove(&key);
                return;
            }
            let (pause, retry) = {
                let state = self.state.locked();
                let Some(entry) = state.entries.get(&key) else { return };
                let pause = if entry.tries == 0 {
                    STALE - 2 * WAKEUP
                } else {
                    WAKEUP * 2u32.saturating_pow(entry.tries.min(10))
                };
                (pause, entry.retry.clone())
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = retry.notified() => {}
            }
        }
    }

    /// One check of a peer; whether to forget it.
    async fn check(self: &Arc<Self>, key: &str) -> bool {
        let Some(peer) = ({
            let mut state = self.state.locked();
            state.entries.get_mut(key).map(|e| {
                e.tries += 1;
                e.last_try = Some(Instant::now());
                e.peer.clone()
            })
        }) else {
            return true;
        };
        let via_proxy = peer.is_tor() || self.config.force_proxy;
        let timeout = Duration::from_secs(if peer.is_tor() { 120 } else { 30 });
        let proxy_ports: Vec<u16> = self.config.proxy_port.map_or(PROXY_PORTS.to_vec(), |p| vec![p]);
        let mut outcome = Err(Failure::Unreachable("no port".into()));
        for (tls, port) in [(true, peer.ssl_port), (false, peer.tcp_port)] {
            let Some(port) = port else { continue };
            let target = Target {
                host: &peer.host,
                port,
                tls,
                proxy: via_proxy.then_some((self.config.proxy_host.as_str(), proxy_ports.as_slice())),
            };
            outcome = match PeerClient::connect(&target, timeout).await {
                Ok(mut client) => self.verify(&mut client, &peer).await,
                Err(e) => Err(e.into()),
            };
            if !matches!(outcome, Err(Failure::Unreachable(_))) {
                break;
            }
            let kind = if tls { "ssl" } else { "tcp" };
            if let Err(Failure::Unreachable(why)) = &outcome {
                tracing::debug!(peer = %peer.host, port, kind, "unreachable: {why}");
            }
        }
        let mut state = self.state.locked();
        let Some(entry) = state.entries.get_mut(key) else { return true };
        match outcome {
            Ok(verified) => {
                tracing::info!(peer = %entry.peer.host, "peer verified");
                entry.peer = verified;
                entry.tries = 0;
                entry.last_good = Some(Instant::now());
                entry.bad = None;
                false
            }
            Err(Failure::Bad(why)) => {
                tracing::info!(peer = %entry.peer.host, "peer marked bad: {why}");
                entry.bad = Some(why);
                entry.tries >= 3
            }
            Err(Failure::Unreachable(why)) => {
                let limit = if entry.last_good.is_some() { 10 } else { 3 };
                let forget = entry.tries >= limit;
                if forget {
                    tracing::info!(peer = %entry.peer.host, "forgetting unreachable peer: {why}");
                }
                forget
            }
        }
    }

    /// The checks of one session to a peer; the peer as it describes itself.
    async fn verify(self: &Arc<Self>, client: &mut PeerClient, peer: &Peer) -> Result<Peer, Failure> {
        let version = client.call("server.version", self.version_args.clone()).await?;
        let ok = version.as_array().is_some_and(|v| v.len() == 2 && v.iter().all(Value::is_string));
        if !ok {
            return Err(Failure::Bad(format!("bad server.version answer {version}")));
        }
        // The same chain, near the same tip.
        let tip = client.call("blockchain.headers.subscribe", json!([])).await?;
        let theirs = tip.get("height").and_then(Value::as_u64).and_then(|h| u32::try_from(h).ok());
        let ours = self.query.index().tip().height.unwrap_or(0);
        let Some(theirs) = theirs else { return Err(Failure::Bad(format!("bad tip {tip}"))) };
        if theirs.abs_diff(ours) > MAX_TIP_DIFF {
            return Err(Failure::Bad(format!("tip at height {theirs}, this server's at {ours}")));
        }
        let check = ours.min(theirs).saturating_sub(MAX_SPLIT);
        let header = client.call("blockchain.block.header", json!([check])).await?;
        let mine = self.query.header(check).map(hex::encode);
        if header.as_str() != mine.as_deref() {
            return Err(Failure::Bad(format!("another chain: the header at height {check} differs")));
        }
        // This network, and listing itself.
        let features = client.call("server.features", json!([])).await?;
        if features.get("genesis_hash").and_then(Value::as_str) != Some(self.genesis.as_str()) {
            return Err(Failure::Bad("another network's genesis hash".into()));
        }
        let hosts = features.get("hosts").and_then(Value::as_object);
        let listed = hosts.and_then(|h| h.iter().find(|(name, _)| name.eq_ignore_ascii_case(&peer.host)));
        let Some((_, ports)) = listed else {
            return Err(Failure::Bad(format!("{} is not among its own hosts", peer.host)));
        };
        let mut verified = peer.clone();
        verified.update_from_features(&features, ports);
        verified.ip_addr = client.remote;
        // Its peers: a few new ones are taken; this server, if it is not among them, tells it.
        let list = client.call("server.peers.subscribe", json!([])).await?;
        let reported: Vec<Peer> = list
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let host = item.get(1)?.as_str()?;
                        let details: Vec<&str> = item.get(2)?.as_array()?.iter().filter_map(Value::as_str).collect();
                        Peer::from_real_name(&format!("{host} {}", details.join(" ")), self.default_ports)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let is_self = self.myselves.iter().any(|m| m.key() == peer.key());
        if self.config.discovery == Discovery::On && !is_self {
            self.note(reported.clone(), Some(NEW_FROM_ONE_LIST), &peer.host, false);
            if let Some(me) = self.to_register(&reported) {
                tracing::info!(peer = %peer.host, me = %me.host, "registering with peer");
                // Its answer does not make the peer good or bad.
                match client.call("server.add_peer", json!([self.features])).await {
                    Ok(accepted) => tracing::debug!(peer = %peer.host, %accepted, "server.add_peer answered"),
                    Err(e) => tracing::info!(peer = %peer.host, "server.add_peer failed: {e}"),
                }
            }
        }
        Ok(verified)
    }

    /// This server as it should register with a peer that lists `reported`: its first public
    /// reported host (clearnet before onion), unless announcing is off or the peer lists it
    /// with the same ports.
    fn to_register(&self, reported: &[Peer]) -> Option<&Peer> {
        if !self.config.announce {
            return None;
        }
        let me = self.myselves.iter().filter(|p| p.is_public()).min_by_key(|p| p.is_tor())?;
        let known =
            reported.iter().any(|r| r.key() == me.key() && (r.tcp_port, r.ssl_port) == (me.tcp_port, me.ssl_port));
        (!known).then_some(me)
    }
}
