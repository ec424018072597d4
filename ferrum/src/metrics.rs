//! Counters of what the server does, kept with atomics on the request path: requests and
//! their latency per method, errors by code, notifications, and requests per minute over the
//! last hour. Read by the admin RPC, the status page and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::Locked;
use ferrum_codec::protocol::Method;

/// What requests of no known method count as: a client cannot grow the metrics with made-up
/// method names.
pub const OTHER: &str = "other";

/// Counted under each method's [`Method::index`], then [`OTHER`].
fn method_names() -> impl Iterator<Item = &'static str> {
    Method::ALL.iter().map(|m| m.name()).chain(std::iter::once(OTHER))
}

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The error codes counted on their own (JSON-RPC's and Electrum's); others count as 0.
const ERROR_CODES: &[i64] = &[-32700, -32600, -32601, -32602, -32603, -102, -101, 1, 2, 10001];

#[derive(Default)]
struct MethodStats {
    count: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
    /// Cumulative per bucket is computed when rendered; these count each bucket alone, the last
    /// one being "above every bound".
    buckets: [AtomicU64; 11],
}

/// Requests per minute over the last hour.
struct Minutes {
    /// Index = minute number since start, modulo 60.
    counts: [u64; 60],
    /// The minute the newest count is for.
    current: u64,
}

pub struct Metrics {
    started: Instant,
    methods: Vec<MethodStats>,
    errors: Vec<AtomicU64>,
    other_errors: AtomicU64,
    notifications: AtomicU64,
    minutes: Mutex<Minutes>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            methods: method_names().map(|_| MethodStats::default()).collect(),
            errors: ERROR_CODES.iter().map(|_| AtomicU64::new(0)).collect(),
            other_errors: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            minutes: Mutex::new(Minutes { counts: [0; 60], current: 0 }),
        }
    }
}

/// One method's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodFigures {
    pub method: &'static str,
    pub count: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Cumulative counts at each bound of [`LATENCY_BUCKETS`], then the total.
    pub buckets: Vec<u64>,
}

impl Metrics {
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one request: its method (`None`: unknown), how long it took, and its error code
    /// if it failed.
    pub fn request(&self, method: Option<Method>, took: Duration, error: Option<i64>) {
        let Some(m) = self.methods.get(method.map_or(Method::ALL.len(), Method::index)) else { return };
        m.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        m.micros.fetch_add(micros, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = m.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(code) = error {
            m.errors.fetch_add(1, Ordering::Relaxed);
            self.error(code);
        }
        self.tick(1);
    }

    /// Counts an error answered outside a method (a parse error, an oversized request).
    pub fn error(&self, code: i64) {
        match ERROR_CODES.iter().position(|c| *c == code).and_then(|i| self.errors.get(i)) {
            Some(counter) => counter.fetch_add(1, Ordering::Relaxed),
            None => self.other_errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn notified(&self, n: usize) {
        self.notifications.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn minute_now(&self) -> u64 {
        self.started.elapsed().as_secs() / 60
    }

    fn tick(&self, n: u64) {
        let now = self.minute_now();
        let mut m = self.minutes.locked();
        advance(&mut m, now);
        if let Some(c) = m.counts.get_mut((now % 60) as usize) {
            *c += n;
        }
    }

    /// Mean requests per second in each of the last 60 minutes, oldest first; the last is the
    /// current minute, so far.
    pub fn requests_per_second(&self) -> Vec<f64> {
        let elapsed = self.started.elapsed().as_secs();
        let now = elapsed / 60;
        let mut m = self.minutes.locked();
        advance(&mut m, now);
        (0..60u64)
            .map(|back| {
                let minute = now.checked_sub(59 - back);
                let Some(minute) = minute else { return 0.0 };
                let count = m.counts.get((minute % 60) as usize).copied().unwrap_or(0);
                let seconds = if minute == now { (elapsed % 60).max(1) } else { 60 };
                count as f64 / seconds as f64
            })
            .collect()
    }

    pub fn requests_total(&self) -> u64 {
        self.methods.iter().map(|m| m.count.load(Ordering::Relaxed)).sum()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().map(|e| e.load(Ordering::Relaxed)).sum::<u64>() + self.other_errors.load(Ordering::Relaxed)
    }

    pub fn notifications(&self) -> u64 {
        self.notifications.load(Ordering::Relaxed)
    }

    /// Figures of each method called at least once.
    pub fn methods(&self) -> Vec<MethodFigures> {
        method_names()
            .zip(&self.methods)
            .filter(|(_, m)| m.count.load(Ordering::Relaxed) > 0)
            .map(|(name, m)| {
                let mut running = 0;
                let buckets = m
                    .buckets
                    .iter()
                    .map(|b| {
                        running += b.load(Ordering::Relaxed);
                        running
                    })
                    .collect();
                MethodFigures {
                    method: name,
                    count: m.count.load(Ordering::Relaxed),
                    errors: m.errors.load(Ordering::Relaxed),
                    seconds: m.micros.load(Ordering::Relaxed) as f64 / 1e6,
                    buckets,
                }
            })
            .collect()
    }

    /// Errors by code; `0` stands for codes not listed.
    pub fn errors(&self) -> Vec<(i64, u64)> {
        ERROR_CODES
            .iter()
            .zip(&self.errors)
            .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
            .chain(std::iter::once((0, self.other_errors.load(Ordering::Relaxed))))
            .collect()
    }
}

/// Moves the ring to minute `now`, clearing the minutes skipped.
fn advance(m: &mut Minutes, now: u64) {
    if now <= m.current {
        return;
    }
    let gap = (now - m.current).min(60);
    for i in 1..=gap {
        if let Some(c) = m.counts.get_mut(((m.current + i) % 60) as usize) {
            *c = 0;
        }
    }
    m.current = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_method_with_unknown_ones_as_other() {
        let m = Metrics::default();
        m.request(Some(Method::ServerPing), Duration::from_micros(50), None);
        m.request(Some(Method::ServerPing), Duration::from_millis(2), Some(1));
        m.request(None, Duration::from_secs(10), Some(-32601));
        let figures = m.methods();
        let ping = figures.iter().find(|f| f.method == "server.ping").unwrap();
        assert_eq!((ping.count, ping.errors), (2, 1));
        // 50 µs is in the first bucket, 2 ms in the 0.005 s one; cumulative.
        assert_eq!(ping.buckets[0], 1);
        assert_eq!(ping.buckets[2], 1);
        assert_eq!(ping.buckets[3], 2);
        assert_eq!(*ping.buckets.last().unwrap(), 2);
        let other = figures.iter().find(|f| f.method == "other").unwrap();
        assert_eq!(other.buckets[LATENCY_BUCKETS.len() - 1], 0, "10 s is above every bound");
        assert_eq!(other.buckets[LATENCY_BUCKETS.len()], 1);
        assert_eq!(m.requests_total(), 3);
        assert_eq!(m.errors_total(), 2);
        assert!(m.errors().contains(&(1, 1)) && m.errors().contains(&(-32601, 1)));
        m.error(-7);
        assert!(m.errors().contains(&(0, 1)));
    }

    #[test]
    fn the_minute_ring_forgets_what_is_older_than_an_hour() {
        let mut ring = Minutes { counts: [0; 60], current: 0 };
        ring.counts[0] = 5;
        advance(&mut ring, 59);
        assert_eq!(ring.counts[0], 5, "59 minutes later the first minute is still in the hour");
        ring.counts[59] = 7;
        advance(&mut ring, 60);
        assert_eq!(ring.counts[0], 0, "minute 60 reuses minute 0's slot");
        assert_eq!(ring.counts[59], 7);
        advance(&mut ring, 500);
        assert!(ring.counts.iter().all(|c| *c == 0));
        let m = Metrics::default();
        m.request(Some(Method::ServerPing), Duration::ZERO, None);
        let rps = m.requests_per_second();
        assert_eq!(rps.len(), 60);
        assert!(rps[59] > 0.0 && rps[..59].iter().all(|r| *r == 0.0));
    }
}
