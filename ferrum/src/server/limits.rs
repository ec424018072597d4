//! What a client may do, and the gates that hold it to it: the per-session, per-address and
//! server-wide limits, the errors a message or an answer over a bound is replaced with, and the
//! gates every message passes before it is answered (the index can serve, then the cost model).

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cost::{Ledger, Thresholds, Verdict, BYTES_PER_UNIT};
use crate::electrum::coerce::commas;
use crate::electrum::jsonrpc::{self, RpcError};
use crate::electrum::Electrum;

/// Per-session limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest incoming message (ElectrumX's `MAX_RECV`).
    pub(crate) max_recv: usize,
    /// No complete message for this long ends the session.
    pub(crate) idle_timeout: Duration,
    /// A client that does not take its answers for this long is dropped.
    pub(crate) send_timeout: Duration,
    /// Answers and notifications waiting to be sent, per session.
    pub(crate) queue_len: usize,
    pub max_sessions: usize,
    pub(crate) max_subs_per_session: usize,
    /// A request still unanswered after this long gets error -102 (ElectrumX's
    /// `REQUEST_TIMEOUT`).
    pub(crate) request_timeout: Duration,
    /// Sessions from one client address at once (addresses in `exempt` excepted).
    pub(crate) max_sessions_per_ip: usize,
    /// Script hashes subscribed to by all the sessions of one client address.
    pub(crate) max_subs_per_ip: usize,
    /// Script hashes subscribed to by all sessions.
    pub(crate) max_subs_total: usize,
    /// Requests in one JSON-RPC batch.
    pub(crate) max_batch: usize,
    /// Client addresses the per-address limits and the cost model do not apply to.
    pub(crate) exempt: Vec<Subnet>,
    /// Proxies whose PROXY protocol header is believed on the listeners that take one
    /// (`--proxy-from`); nobody else may connect to those listeners.
    pub(crate) proxies: Vec<Subnet>,
    /// What a client group may spend (ElectrumX's `COST_SOFT_LIMIT`, `COST_HARD_LIMIT`).
    pub(crate) cost: Thresholds,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_recv: 1_000_000,
            idle_timeout: Duration::from_secs(600),
            send_timeout: Duration::from_secs(30),
            queue_len: 1000,
            max_sessions: 1000,
            max_subs_per_session: 100_000,
            request_timeout: Duration::from_secs(30),
            max_sessions_per_ip: 50,
            max_subs_per_ip: 500_000,
            max_subs_total: 5_000_000,
            max_batch: 1000,
            exempt: vec![
                Subnet { addr: IpAddr::from([127, 0, 0, 0]), prefix: 8 },
                Subnet { addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST), prefix: 128 },
            ],
            proxies: Vec::new(),
            cost: Thresholds::default(),
        }
    }
}

impl Limits {
    /// Whether the per-address limits and the cost model leave `ip` alone.
    pub(crate) fn exempts(&self, ip: IpAddr) -> bool {
        self.exempt.iter().any(|s| s.contains(ip))
    }

    /// Whether `ip` is a configured proxy, whose PROXY protocol header names the client.
    pub(crate) fn is_proxy(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|s| s.contains(ip))
    }
}

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

impl Subnet {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Subnet {
    type Err = String;

    /// `10.0.0.0/8`, `fd00::/8`, or a single address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an IP address or subnet"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        let canonical = addr.to_canonical();
        if canonical == addr {
            return Ok(Subnet { addr, prefix });
        }
        // An IPv4-mapped IPv6 subnet (::ffff:10.0.0.0/104) is the IPv4 one it maps.
        let prefix =
            prefix.checked_sub(96).ok_or_else(|| format!("{s:?}: an IPv4-mapped subnet's prefix is 96 or more"))?;
        Ok(Subnet { addr: canonical, prefix })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The first gate: nothing is answered from a partial chain, whether the index or the node is
/// behind. `Err`: error -102 saying why; the session then ends.
pub(super) fn index_ready(electrum: &Electrum) -> Result<(), RpcError> {
    match electrum.index.status().unavailable() {
        Some(reason) => Err(RpcError::new(jsonrpc::SERVER_BUSY, reason)),
        None => Ok(()),
    }
}

/// The second gate, for sessions of non-exempt addresses: what their client group spent. The
/// ledger outlives sessions, so reconnecting does not reset a group's cost.
pub(super) struct CostGate {
    ledger: Ledger,
    /// Requests paused for a group over its soft limit.
    throttled: AtomicU64,
    /// Sessions dropped for a group over its hard limit.
    dropped: AtomicU64,
}

impl CostGate {
    pub(super) fn new(limits: Thresholds) -> CostGate {
        CostGate { ledger: Ledger::new(limits), throttled: AtomicU64::new(0), dropped: AtomicU64::new(0) }
    }

    pub(super) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Requests slowed, and sessions dropped.
    pub(super) fn actions(&self) -> (u64, u64) {
        (self.throttled.load(Ordering::Relaxed), self.dropped.load(Ordering::Relaxed))
    }

    /// Lets a message of `group` through, after a pause past the soft limit. `Err`: the group
    /// is over the hard limit; error -101, and the session ends.
    pub(super) async fn pass(&self, group: &str) -> Result<(), RpcError> {
        match self.ledger.verdict(group) {
            Verdict::Serve => Ok(()),
            Verdict::Slow(pause) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pause).await;
                Ok(())
            }
            Verdict::Drop { log } => {
                if log {
                    tracing::info!(%group, "client group over the cost hard limit; dropping its sessions");
                }
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(RpcError::new(jsonrpc::EXCESSIVE_RESOURCE_USAGE, "excessive resource usage"))
            }
        }
    }

    /// Charges `group` for one answered message: the work measured while answering it, and the
    /// bytes of the answer.
    pub(super) fn charge(&self, group: &str, work: f64, sent: usize) {
        self.ledger.add(group, work + sent as f64 / BYTES_PER_UNIT);
    }
}

/// The error for a message over `max_recv` bytes, dropped unread.
pub(super) fn request_too_large(max_recv: usize) -> RpcError {
    RpcError::new(
        jsonrpc::INVALID_REQUEST,
        format!("request too large (over {} bytes); dropped", commas(max_recv as u64)),
    )
}

/// The error that replaces an answer over `max_send` bytes, for the same request.
pub(super) fn answer_too_large(max_send: usize) -> RpcError {
    RpcError::new(jsonrpc::INVALID_REQUEST, format!("response too large (over {} bytes)", commas(max_send as u64)))
}

/// The error for a request not answered within the request timeout.
pub(super) fn timed_out() -> RpcError {
    RpcError::new(jsonrpc::SERVER_BUSY, "server busy - request timed out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_contain_their_addresses() {
        let net: Subnet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped IPv6 is the IPv4 address");
        let one: Subnet = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()) && !one.contains("192.0.2.8".parse().unwrap()));
        let v6: Subnet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()) && !v6.contains("fe80::1".parse().unwrap()));
        let all: Subnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!("example.org".parse::<Subnet>().is_err());
        assert_eq!(one.to_string(), "192.0.2.7/32");
        // An IPv4-mapped subnet is the IPv4 one.
        let mapped: Subnet = "::ffff:10.1.0.0/112".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.1.0.0/16");
        assert!(mapped.contains("10.1.9.9".parse().unwrap()) && !mapped.contains("10.2.0.0".parse().unwrap()));
        assert_eq!("::ffff:127.0.0.1".parse::<Subnet>().unwrap().to_string(), "127.0.0.1/32");
        assert!("::ffff:10.0.0.0/90".parse::<Subnet>().is_err());
    }

    #[test]
    fn loopback_is_exempt_by_default() {
        let limits = Limits::default();
        assert!(limits.exempts("127.0.0.1".parse().unwrap()));
        assert!(limits.exempts("::1".parse().unwrap()));
        assert!(limits.exempts("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!limits.exempts("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn oversize_errors_say_the_bound() {
        let e = request_too_large(1_000_000);
        assert_eq!(
            (e.code, e.message.as_str()),
            (jsonrpc::INVALID_REQUEST, "request too large (over 1,000,000 bytes); dropped")
        );
        let e = answer_too_large(2500);
        assert_eq!((e.code, e.message.as_str()), (jsonrpc::INVALID_REQUEST, "response too large (over 2,500 bytes)"));
    }
}
