//! Counters of what the server does, kept on the request path: requests and their latency per
//! method, errors by code and notifications, as prometheus-client's typed metrics, and requests
//! per minute over the last hour. Read by the admin RPC and the status page, and exposed at
//! `/metrics` through [`Exposition`], with what is read from the rest of the server.

mod exposition;

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::sync::Locked;
use ferrum_codec::protocol::Method;

pub(crate) use exposition::{Exposition, Scrape, Table};

/// What requests of no known method count as: a client cannot grow the metrics with made-up
/// method names.
pub(crate) const OTHER: &str = "other";

/// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` follows).
const LATENCY_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The error codes counted on their own (JSON-RPC's and Electrum's); others count as 0.
const ERROR_CODES: &[i64] = &[-32700, -32600, -32601, -32602, -32603, -102, -101, 1, 2, 10001];

/// A series per method: [`Method::name`] or [`OTHER`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// A series per error code; `0` stands for the codes not in [`ERROR_CODES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabel {
    code: i64,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// One method's series, handles into the families' entries.
#[derive(Clone)]
struct MethodSeries {
    requests: Counter,
    errors: Counter,
    duration: Histogram,
}

/// Requests per minute over the last hour.
struct Minutes {
    /// Index = minute number since start, modulo 60.
    counts: [u64; 60],
    /// The minute the newest count is for.
    current: u64,
}

/// The request-side metrics. The families hold the series that `/metrics` shows; `methods` and
/// `by_code` are handles to the same series, found once, so that counting a request indexes a
/// slot instead of hashing a label.
pub(crate) struct Metrics {
    started: Instant,
    requests: Family<MethodLabel, Counter>,
    request_errors: Family<MethodLabel, Counter>,
    request_duration: Family<MethodLabel, Histogram, fn() -> Histogram>,
    /// At [`Method::index`], then [`OTHER`]. A method's series are created on its first
    /// request, so `/metrics` lists the methods called at least once.
    methods: Vec<OnceLock<MethodSeries>>,
    errors: Family<CodeLabel, Counter>,
    /// The series of [`ERROR_CODES`], in order, then code 0: all of them from the start.
    by_code: Vec<Counter>,
    notifications: Counter,
    minutes: Mutex<Minutes>,
}

impl Default for Metrics {
    fn default() -> Self {
        let errors = Family::<CodeLabel, Counter>::default();
        let by_code =
            ERROR_CODES.iter().chain(&[0]).map(|&code| errors.get_or_create_owned(&CodeLabel { code })).collect();
        Metrics {
            started: Instant::now(),
            requests: Family::default(),
            request_errors: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            methods: (0..=Method::ALL.len()).map(|_| OnceLock::new()).collect(),
            errors,
            by_code,
            notifications: Counter::default(),
            minutes: Mutex::new(Minutes { counts: [0; 60], current: 0 }),
        }
    }
}

/// One method's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MethodFigures {
    pub(crate) method: &'static str,
    pub(crate) count: u64,
    pub(crate) errors: u64,
}

impl Metrics {
    /// Adds the request-side metrics to `registry` (whose prefix names them `ferrum_…`).
    /// prometheus-client appends `_total` to a counter's name, and `.` to the help.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register("requests", "Requests by method", self.requests.clone());
        registry.register("request_errors", "Requests answered with an error, by method", self.request_errors.clone());
        registry.register("request_duration_seconds", "Time to answer, by method", self.request_duration.clone());
        registry.register("errors", "Error answers by JSON-RPC code (0: other codes)", self.errors.clone());
        registry.register("notifications", "Notifications sent to subscribers", self.notifications.clone());
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one request: its method (`None`: unknown), how long it took, and its error code
    /// if it failed.
    pub(crate) fn request(&self, method: Option<Method>, took: Duration, error: Option<i64>) {
        let Some(series) = self.series(method) else { return };
        series.requests.inc();
        series.duration.observe(took.as_secs_f64());
        if let Some(code) = error {
            series.errors.inc();
            self.error(code);
        }
        self.tick(1);
    }

    /// The series of `method`, created on its first request.
    fn series(&self, method: Option<Method>) -> Option<&MethodSeries> {
        let slot = self.methods.get(method.map_or(Method::ALL.len(), Method::index))?;
        Some(slot.get_or_init(|| {
            let label = MethodLabel { method: method.map_or(OTHER, Method::name) };
            MethodSeries {
                requests: self.requests.get_or_create_owned(&label),
                errors: self.request_errors.get_or_create_owned(&label),
                duration: self.request_duration.get_or_create_owned(&label),
            }
        }))
    }

    /// Counts an error answered outside a method (a parse error, an oversized request).
    pub(crate) fn error(&self, code: i64) {
        let index = ERROR_CODES.iter().position(|c| *c == code).unwrap_or(ERROR_CODES.len());
        if let Some(counter) = self.by_code.get(index) {
            counter.inc();
        }
    }

    pub(crate) fn notified(&self, n: usize) {
        self.notifications.inc_by(n as u64);
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
    pub(crate) fn requests_per_second(&self) -> Vec<f64> {
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

    pub(crate) fn requests_total(&self) -> u64 {
        self.methods.iter().filter_map(OnceLock::get).map(|s| s.requests.get()).sum()
    }

    pub(crate) fn errors_total(&self) -> u64 {
        self.by_code.iter().map(Counter::get).sum()
    }

    pub(crate) fn notifications(&self) -> u64 {
        self.notifications.get()
    }

    /// Figures of each method called at least once, in the order of [`Method::ALL`], then
    /// [`OTHER`].
    pub(crate) fn methods(&self) -> Vec<MethodFigures> {
        let names = Method::ALL.iter().map(|m| m.name()).chain(std::iter::once(OTHER));
        names
            .zip(&self.methods)
            .filter_map(|(method, slot)| {
                let series = slot.get()?;
                Some(MethodFigures { method, count: series.requests.get(), errors: series.errors.get() })
            })
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

    fn exposed(m: &Metrics) -> String {
        let mut registry = Registry::with_prefix("ferrum");
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn requests_are_counted_per_method_with_unknown_ones_as_other() {
        let m = Metrics::default();
        m.request(Some(Method::ServerPing), Duration::from_micros(50), None);
        m.request(Some(Method::ServerPing), Duration::from_millis(2), Some(1));
        m.request(None, Duration::from_secs(10), Some(-32601));
        let figures = m.methods();
        let ping = figures.iter().find(|f| f.method == "server.ping").unwrap();
        assert_eq!((ping.count, ping.errors), (2, 1));
        assert_eq!(figures.len(), 2, "only the methods called");
        assert_eq!(m.requests_total(), 3);
        assert_eq!(m.errors_total(), 2);
        m.error(-7);
        m.notified(3);
        assert_eq!((m.errors_total(), m.notifications()), (3, 3));

        let text = exposed(&m);
        let line = |l: &str| text.lines().any(|t| t == l);
        assert!(line("# TYPE ferrum_requests_total counter"), "{text}");
        assert!(line("ferrum_requests_total{method=\"server.ping\"} 2"), "{text}");
        assert!(line("ferrum_request_errors_total{method=\"server.ping\"} 1"), "{text}");
        assert!(line("ferrum_requests_total{method=\"other\"} 1"), "{text}");
        // 50 µs is in the first bucket, 2 ms in the 0.005 s one; cumulative.
        let ping_bucket =
            |le: &str| format!("ferrum_request_duration_seconds_bucket{{method=\"server.ping\",le=\"{le}\"}}");
        assert!(line(&format!("{} 1", ping_bucket("0.0001"))), "{text}");
        assert!(line(&format!("{} 1", ping_bucket("0.001"))), "{text}");
        assert!(line(&format!("{} 2", ping_bucket("0.005"))), "{text}");
        assert!(line(&format!("{} 2", ping_bucket("+Inf"))), "{text}");
        assert!(line("ferrum_request_duration_seconds_count{method=\"server.ping\"} 2"), "{text}");
        let other_bucket = |le: &str| format!("ferrum_request_duration_seconds_bucket{{method=\"other\",le=\"{le}\"}}");
        assert!(line(&format!("{} 0", other_bucket("5"))), "10 s is above every bound: {text}");
        assert!(line(&format!("{} 1", other_bucket("+Inf"))), "{text}");
        assert!(line("ferrum_errors_total{code=\"1\"} 1"), "{text}");
        assert!(line("ferrum_errors_total{code=\"-32601\"} 1"), "{text}");
        assert!(line("ferrum_errors_total{code=\"0\"} 1"), "codes not listed count as 0: {text}");
        assert!(line("ferrum_errors_total{code=\"10001\"} 0"), "every listed code, from the start: {text}");
        assert!(line("ferrum_notifications_total 3"), "{text}");
        assert!(!text.contains("server.version"), "a method never called has no series: {text}");
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
