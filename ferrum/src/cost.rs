//! The cost model: what each request costs by the work it does, and a budget per client group
//! (an IPv4 /24 or an IPv6 /48, as ElectrumX groups sessions) that decays over time and
//! outlives the sessions that spent it. Past the soft limit a group's requests are slowed; past
//! the hard limit its sessions are dropped with error -101.
//!
//! Work is measured where it happens: index reads charge the rows they scan and node calls
//! charge a unit each, into a counter local to the session's task ([`charge`]), so no layer
//! needs to know about sessions.

use crate::sync::Locked;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cost of any request, before its work.
pub(crate) const REQUEST: f64 = 0.1;
/// Cost of one request to bitcoind.
pub(crate) const NODE_CALL: f64 = 1.0;
/// Rows of the index read per unit of cost.
pub(crate) const ROWS_PER_UNIT: f64 = 1000.0;
/// Answer bytes per unit of cost.
pub(crate) const BYTES_PER_UNIT: f64 = 100_000.0;
/// The longest pause before a request of a group past its soft limit (ElectrumX's
/// `REQUEST_SLEEP`).
pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(2500);

tokio::task_local! {
    static WORK: Cell<f64>;
}

/// Adds `units` to the work of the request being handled, if any (work done outside a
/// session, by the indexer or the mempool, is nobody's).
pub(crate) fn charge(units: f64) {
    let _ = WORK.try_with(|w| w.set(w.get() + units));
}

/// Runs `f`, returning its output and the work it charged.
pub(crate) async fn measured<F: Future>(f: F) -> (F::Output, f64) {
    WORK.scope(Cell::new(0.0), async {
        let out = f.await;
        (out, WORK.with(Cell::get))
    })
    .await
}

/// The group a client address belongs to: its /24 (IPv4) or /48 (IPv6).
pub(crate) fn group_of(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let seg = |i: usize| s.get(i).copied().unwrap_or(0);
            format!("{:x}:{:x}:{:x}::/48", seg(0), seg(1), seg(2))
        }
    }
}

/// What a group may spend: slowed above `soft`, dropped at `hard`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Thresholds {
    pub(crate) soft: f64,
    pub(crate) hard: f64,
}

impl Default for Thresholds {
    /// ElectrumX's `COST_SOFT_LIMIT` and `COST_HARD_LIMIT`.
    fn default() -> Self {
        Thresholds { soft: 1000.0, hard: 10_000.0 }
    }
}

impl Thresholds {
    /// A group at the hard limit is back to zero after an hour.
    fn decay_per_sec(&self) -> f64 {
        self.hard / 3600.0
    }
}

#[derive(Debug)]
struct Group {
    cost: f64,
    at: Instant,
    /// Said in the log that it went over the hard limit.
    logged: bool,
}

/// What a group's next request gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    Serve,
    /// Serve after this pause.
    Slow(Duration),
    /// Over the hard limit: error -101, and the session ends.
    Drop {
        log: bool,
    },
}

/// The costs of every group.
pub(crate) struct Ledger {
    limits: Thresholds,
    groups: Mutex<HashMap<String, Group>>,
}

/// Groups kept before the ledger forgets the ones whose cost has decayed to nothing.
const PRUNE_AT: usize = 100_000;

impl Ledger {
    pub(crate) fn new(limits: Thresholds) -> Ledger {
        Ledger { limits, groups: Mutex::new(HashMap::new()) }
    }

    fn decayed(&self, g: &mut Group, now: Instant) {
        let secs = now.saturating_duration_since(g.at).as_secs_f64();
        g.cost = (g.cost - secs * self.limits.decay_per_sec()).max(0.0);
        g.at = now;
    }

    /// Adds `units` to the group's cost.
    pub(crate) fn add(&self, group: &str, units: f64) {
        let now = Instant::now();
        let mut groups = self.groups.locked();
        if groups.len() >= PRUNE_AT && !groups.contains_key(group) {
            groups.retain(|_, g| {
                let secs = now.saturating_duration_since(g.at).as_secs_f64();
                g.cost - secs * self.limits.decay_per_sec() > 0.0
            });
        }
        let g = groups.entry(group.to_string()).or_insert(Group { cost: 0.0, at: now, logged: false });
        self.decayed(g, now);
        g.cost += units;
        if g.cost < self.limits.hard {
            g.logged = false;
        }
    }

    /// The group's cost now.
    #[cfg(test)]
    fn cost(&self, group: &str) -> f64 {
        let mut groups = self.groups.locked();
        match groups.get_mut(group) {
            Some(g) => {
                self.decayed(g, Instant::now());
                g.cost
            }
            None => 0.0,
        }
    }

    /// What the group's next request gets.
    pub(crate) fn verdict(&self, group: &str) -> Verdict {
        let mut groups = self.groups.locked();
        let Some(g) = groups.get_mut(group) else { return Verdict::Serve };
        self.decayed(g, Instant::now());
        let Thresholds { soft, hard } = self.limits;
        if g.cost >= hard {
            let log = !g.logged;
            g.logged = true;
            Verdict::Drop { log }
        } else if g.cost > soft {
            let excess = ((g.cost - soft) / (hard - soft).max(f64::MIN_POSITIVE)).clamp(0.0, 1.0);
            Verdict::Slow(MAX_SLEEP.mul_f64(excess))
        } else {
            Verdict::Serve
        }
    }

    /// Groups with a cost, the highest first.
    pub(crate) fn groups(&self) -> Vec<(String, f64)> {
        let now = Instant::now();
        let mut groups = self.groups.locked();
        let mut out: Vec<(String, f64)> = groups
            .iter_mut()
            .map(|(name, g)| {
                self.decayed(g, now);
                (name.clone(), g.cost)
            })
            .filter(|(_, c)| *c > 0.0)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_slash_24_and_slash_48() {
        assert_eq!(group_of("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(group_of("2001:db8:1234:5678::1".parse().unwrap()), "2001:db8:1234::/48");
        assert_eq!(group_of("::ffff:198.51.100.9".parse().unwrap()), "198.51.100.0/24");
    }

    #[test]
    fn soft_slows_hard_drops_and_it_is_logged_once() {
        let ledger = Ledger::new(Thresholds { soft: 10.0, hard: 20.0 });
        assert_eq!(ledger.verdict("a"), Verdict::Serve);
        ledger.add("a", 15.0);
        let Verdict::Slow(pause) = ledger.verdict("a") else { panic!("not slowed") };
        // Half-way from soft to hard: about half the longest pause (a little decays meanwhile).
        assert!(pause > MAX_SLEEP.mul_f64(0.45) && pause <= MAX_SLEEP / 2, "{pause:?}");
        ledger.add("a", 10.0);
        assert_eq!(ledger.verdict("a"), Verdict::Drop { log: true });
        assert_eq!(ledger.verdict("a"), Verdict::Drop { log: false });
        assert_eq!(ledger.verdict("b"), Verdict::Serve, "groups are separate");
        assert!(ledger.cost("a") > 24.0 && ledger.cost("b") == 0.0);
        assert_eq!(ledger.groups().first().map(|g| g.0.as_str()), Some("a"));
    }

    #[test]
    fn costs_decay() {
        let ledger = Ledger::new(Thresholds { soft: 10.0, hard: 36.0 });
        ledger.add("a", 1.0);
        // 36 per hour is 0.01 per second: pretend the cost was spent 50 s ago.
        if let Some(g) = ledger.groups.lock().unwrap().get_mut("a") {
            g.at -= Duration::from_secs(50);
        }
        let cost = ledger.cost("a");
        assert!((cost - 0.5).abs() < 0.01, "{cost}");
    }

    #[tokio::test]
    async fn work_is_charged_to_the_measured_task_only() {
        charge(5.0);
        let ((), work) = measured(async {
            charge(1.5);
            charge(REQUEST);
        })
        .await;
        assert!((work - 1.6).abs() < 1e-9, "{work}");
    }
}
