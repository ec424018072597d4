//! One settings struct per subsystem, each built from the layered [`Options`] the same way: start
//! from the subsystem's `Default` (where its defaults live, and nowhere else), replace what an
//! option gives, then check the result. What follows from the network (ports, directories) is
//! derived from it here.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::cli::Options;
use super::parse::{self, invalid, DaemonUrl, DEFAULT_RPC_PORT};
use super::{home_dir, ConfigError};
use crate::daemon::{Auth, DaemonConfig};
use crate::electrum::{ElectrumConfig, ReportedService};
use crate::hostport;
use crate::index::{share_cache_mb, IndexConfig, DEFAULT_CACHE_MB};
use crate::network::Network;
use crate::server::tls::CertSource;
use crate::server::{Limits, Protocol, Service};
use crate::store::{PrevoutMode, StoreConfig};

/// How long one call to bitcoind may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// Replaces a default with the value an option gives, if it gives one.
fn given<T>(setting: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *setting = value;
    }
}

/// bitcoind: how to call it, and where to hear of its new blocks and transactions.
#[derive(Clone, Debug)]
pub struct DaemonSettings {
    /// RPC and REST: the address, the credentials and the fallback addresses.
    pub rpc: DaemonConfig,
    /// The P2P address, for block and transaction announcements; `None`: polling only.
    pub(crate) p2p_addr: Option<String>,
}

impl DaemonSettings {
    /// `daemon_url` is ElectrumX's `DAEMON_URL`: the address and credentials of one or more nodes.
    pub(super) fn new(opts: &Options, daemon_url: Option<&str>, network: Network) -> Result<Self, ConfigError> {
        let rpc = rpc(opts, daemon_url, network)?;
        let p2p_addr = match opts.daemon_p2p_addr.as_deref() {
            Some("none") => None,
            Some(addr) => Some(node_addr("--daemon-p2p-addr", addr)?),
            None => Some(hostport::join(rpc.host(), network.default_p2p_port())),
        };
        Ok(DaemonSettings { rpc, p2p_addr })
    }
}

/// A node's `host:port`, checked: a port, and an IPv6 address in brackets (unbracketed, where
/// its port begins is a guess).
fn node_addr(setting: &str, addr: &str) -> Result<String, ConfigError> {
    match hostport::split(addr) {
        Ok((host, Some(port))) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(addr.to_string()),
        _ => Err(invalid(setting, format!("{addr:?} is not host:port (an IPv6 address in brackets)"))),
    }
}

fn rpc(opts: &Options, daemon_url: Option<&str>, network: Network) -> Result<DaemonConfig, ConfigError> {
    // Parse errors never quote the URL: it may hold a password.
    let urls = daemon_url
        .map(|list| list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, u)| parse::daemon_url(u).map_err(|e| invalid("DAEMON_URL", format!("URL {}: {e}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    let url_addr = |u: &DaemonUrl| hostport::join(&u.host, u.port.unwrap_or(network.default_rpc_port()));
    let cookie_auth = || {
        let cookie = match &opts.cookie_file {
            Some(path) => path.clone(),
            None => {
                let dir = opts.daemon_dir.clone().unwrap_or_else(|| home_dir().join(".bitcoin"));
                dir.join(network.datadir_subdir()).join(".cookie")
            }
        };
        Auth::Cookie(cookie)
    };
    let url_auth = |u: &DaemonUrl| match &u.user {
        Some(user) => Auth::UserPass { user: user.clone(), password: u.password.clone().unwrap_or_default() },
        None => cookie_auth(),
    };
    let rpc_addr = match (&opts.daemon_rpc_addr, urls.first()) {
        (Some(addr), _) => node_addr("--daemon-rpc-addr", addr)?,
        (None, Some(u)) => url_addr(u),
        (None, None) => format!("127.0.0.1:{}", network.default_rpc_port()),
    };
    let auth = if let Some(user) = &opts.daemon_user {
        let password = opts.daemon_password.clone().ok_or_else(|| {
            invalid("--daemon-user", "needs a password in FERRUM_DAEMON_PASSWORD or daemon_password in the config file")
        })?;
        Auth::UserPass { user: user.clone(), password }
    } else {
        urls.first().map_or_else(cookie_auth, url_auth)
    };
    // With an explicit address, DAEMON_URL's others are still fallbacks.
    let fallbacks = urls.iter().skip(1).map(|u| (url_addr(u), url_auth(u))).collect();
    Ok(DaemonConfig { network, rpc_addr, auth, fallbacks, timeout: RPC_TIMEOUT })
}

/// The index: its store on disk, and how the indexer builds it and follows the node. The memory
/// of `cache_mb` is shared between `store` and `indexer` ([`share_cache_mb`]).
#[derive(Clone, Debug)]
pub(crate) struct IndexSettings {
    /// How spent outputs are found; `None` (`auto`): chosen from what the node serves.
    pub(crate) prevout_mode: Option<PrevoutMode>,
    /// Delete the index at start-up and build it again.
    pub(crate) reindex: bool,
    /// Rebuild an index of another format instead of refusing to start.
    pub(crate) reindex_on_format_change: bool,
    /// How often the indexer asks bitcoind for its tip besides announcements.
    pub(crate) poll_interval: Duration,
    /// MiB for the RocksDB caches and the outputs of a chunk in utxo mode, together.
    pub(crate) cache_mb: usize,
    pub(crate) store: StoreConfig,
    pub(crate) indexer: IndexConfig,
}

impl Default for IndexSettings {
    fn default() -> Self {
        let mut settings = IndexSettings {
            prevout_mode: None,
            reindex: false,
            reindex_on_format_change: false,
            poll_interval: Duration::from_secs(1),
            cache_mb: 0,
            store: StoreConfig::default(),
            indexer: IndexConfig::default(),
        };
        settings.set_cache_mb(DEFAULT_CACHE_MB);
        settings
    }
}

impl IndexSettings {
    pub(super) fn new(opts: &Options) -> Result<Self, ConfigError> {
        let mut settings = IndexSettings::default();
        if let Some(mb) = opts.cache_mb {
            settings.set_cache_mb(mb);
        }
        if settings.cache_mb < 16 {
            return Err(invalid("--cache-mb", format!("{} MiB is too little (at least 16)", settings.cache_mb)));
        }
        given(&mut settings.poll_interval, opts.poll_interval_ms.map(Duration::from_millis));
        let poll_ms = settings.poll_interval.as_millis();
        if !(10..=60_000).contains(&poll_ms) {
            return Err(invalid("--poll-interval-ms", format!("{poll_ms} is outside 10..=60000")));
        }
        given(&mut settings.indexer.chunk_blocks, opts.index_chunk_blocks);
        if settings.indexer.chunk_blocks == 0 {
            return Err(invalid("--index-chunk-blocks", "must be at least 1"));
        }
        given(&mut settings.prevout_mode, opts.prevout_mode);
        settings.reindex = opts.reindex;
        given(&mut settings.reindex_on_format_change, opts.reindex_on_format_change);
        Ok(settings)
    }

    fn set_cache_mb(&mut self, mb: usize) {
        self.cache_mb = mb;
        share_cache_mb(mb, &mut self.store, &mut self.indexer);
    }
}

/// The Electrum protocol's settings.
pub(super) fn electrum(opts: &Options, network: Network) -> Result<ElectrumConfig, ConfigError> {
    let mut electrum = ElectrumConfig {
        network,
        query_threads: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
        ..ElectrumConfig::default()
    };
    if let Some(list) = &opts.report_services {
        electrum.report_services = parse::report_services(list)?;
    }
    given(&mut electrum.banner_file, opts.banner_file.clone().map(Some));
    given(&mut electrum.donation_address, opts.donation_address.clone());
    given(&mut electrum.max_send, opts.max_send);
    if let Some(mb) = opts.history_cache_mb {
        electrum.script_cache.bytes =
            mb.checked_mul(1 << 20).ok_or_else(|| invalid("--history-cache-mb", "too large"))?;
    }
    electrum.peers = crate::peers::PeerConfig {
        discovery: match &opts.peer_discovery {
            Some(text) => text.parse().map_err(|e: String| invalid("--peer-discovery", e))?,
            None => crate::peers::Discovery::Off,
        },
        announce: opts.peer_announce.unwrap_or(true),
        force_proxy: opts.force_proxy.unwrap_or(false),
        proxy_host: opts.tor_proxy_host.clone().unwrap_or_else(|| "localhost".into()),
        proxy_port: opts.tor_proxy_port,
        seeds: match &opts.peer_seeds {
            Some(list) => list.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            None => network.peer_seeds().iter().map(|s| s.to_string()).collect(),
        },
    };
    if electrum.max_send < 350_000 {
        let max_send = electrum.max_send;
        return Err(invalid("--max-send", format!("{max_send} is below the minimum of 350000 bytes")));
    }
    Ok(electrum)
}

/// Where and how Electrum clients are served.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// The Electrum listeners, in the order configured.
    pub(crate) services: Vec<Service>,
    /// The certificate of the TLS services: the operator's files, or a self-signed one kept in
    /// the data directory and naming the reported hosts.
    pub tls: CertSource,
    pub limits: Limits,
}

impl ServerSettings {
    pub(super) fn new(
        opts: &Options,
        services: Vec<Service>,
        db_dir: &Path,
        reported: &[ReportedService],
    ) -> Result<Self, ConfigError> {
        let tls = match (&opts.ssl_certfile, &opts.ssl_keyfile) {
            (Some(cert), Some(key)) => CertSource::Files { cert: cert.clone(), key: key.clone() },
            (None, None) => CertSource::SelfSigned {
                dir: db_dir.to_path_buf(),
                hostnames: reported.iter().map(|r| r.host.clone()).collect(),
            },
            (Some(_), None) => return Err(invalid("--ssl-keyfile", "needed with --ssl-certfile")),
            (None, Some(_)) => return Err(invalid("--ssl-certfile", "needed with --ssl-keyfile")),
        };
        let limits = limits(opts)?;
        let proxied = services.iter().find(|s| s.proxied);
        if let Some(s) = proxied.filter(|_| limits.proxies.is_empty()) {
            let what = format!("{}+proxy://{}", s.protocol.name(), s.addr);
            return Err(invalid("--proxy-from", format!("needed with {what}: the addresses of the proxies in front")));
        }
        if proxied.is_none() && !limits.proxies.is_empty() {
            return Err(invalid("--proxy-from", "no service takes the PROXY protocol (e.g. tcp+proxy:// in SERVICES)"));
        }
        Ok(ServerSettings { services, tls, limits })
    }
}

fn limits(opts: &Options) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    given(&mut limits.max_recv, opts.max_recv);
    if limits.max_recv < 100_000 {
        let max_recv = limits.max_recv;
        return Err(invalid("--max-recv", format!("{max_recv} is below the minimum of 100000 bytes")));
    }
    given(&mut limits.max_sessions, opts.max_sessions);
    given(&mut limits.idle_timeout, opts.session_timeout.map(Duration::from_secs));
    given(&mut limits.request_timeout, opts.request_timeout.map(Duration::from_secs));
    given(&mut limits.max_sessions_per_ip, opts.max_sessions_per_ip);
    given(&mut limits.max_subs_per_session, opts.max_subs_per_session);
    given(&mut limits.max_subs_per_ip, opts.max_subs_per_ip);
    given(&mut limits.max_subs_total, opts.max_subs);
    given(&mut limits.max_batch, opts.max_batch);
    given(
        &mut limits.exempt,
        opts.session_limit_exempt.as_deref().map(|s| parse::subnets("--session-limit-exempt", s)).transpose()?,
    );
    given(&mut limits.proxies, opts.proxy_from.as_deref().map(|s| parse::subnets("--proxy-from", s)).transpose()?);
    given(&mut limits.cost.soft, opts.cost_soft_limit);
    given(&mut limits.cost.hard, opts.cost_hard_limit);
    if !(limits.cost.soft > 0.0 && limits.cost.soft.is_finite()) {
        return Err(invalid("--cost-soft-limit", "must be a positive number"));
    }
    if !(limits.cost.hard > limits.cost.soft && limits.cost.hard.is_finite()) {
        return Err(invalid("--cost-hard-limit", "must be a number above --cost-soft-limit"));
    }
    for (setting, value) in [
        ("--max-sessions-per-ip", limits.max_sessions_per_ip),
        ("--max-subs-per-session", limits.max_subs_per_session),
        ("--max-subs-per-ip", limits.max_subs_per_ip),
        ("--max-subs", limits.max_subs_total),
        ("--max-batch", limits.max_batch),
    ] {
        if value == 0 {
            return Err(invalid(setting, "must be at least 1"));
        }
    }
    if limits.max_sessions == 0 {
        return Err(invalid("--max-sessions", "must be at least 1"));
    }
    if limits.idle_timeout.is_zero() {
        return Err(invalid("--session-timeout", "must be at least 1 second"));
    }
    if limits.request_timeout.is_zero() {
        return Err(invalid("--request-timeout", "must be at least 1 second"));
    }
    Ok(limits)
}

/// What an operator reaches the running server by, both served from its monitor.
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// The admin JSON-RPC listener, for `ferrum rpc` (`rpc://` in ElectrumX's `SERVICES`).
    pub admin_rpc: Option<SocketAddr>,
    /// The listeners of the status page, its metrics and its health check.
    pub(crate) http: Vec<SocketAddr>,
}

/// Every listener: the Electrum services, and the monitor's. With none configured, Electrum on
/// the network's ports (TCP on loopback, TLS on every interface), the admin RPC and the status
/// page on loopback. No address may be used twice (port 0 aside).
pub(super) fn listeners(opts: &Options, network: Network) -> Result<(Vec<Service>, MonitorSettings), ConfigError> {
    let mut services = Vec::new();
    let mut admin = None;
    let mut http = Vec::new();
    for (protocol, flag, list) in [
        (Protocol::Tcp, "--tcp", &opts.tcp),
        (Protocol::Ssl, "--ssl", &opts.ssl),
        (Protocol::Ws, "--ws", &opts.ws),
        (Protocol::Wss, "--wss", &opts.wss),
    ] {
        for entry in list.iter().flatten().filter(|e| !e.trim().is_empty()) {
            services.push(Service {
                protocol,
                addr: parse::bind(flag, entry, parse::default_port(protocol, network))?,
                proxied: false,
            });
        }
    }
    for entry in opts.http.iter().flatten().filter(|e| !e.trim().is_empty()) {
        http.push(parse::bind("--http", entry, network.default_http_port())?);
    }
    if let Some(text) = &opts.rpc {
        admin = Some(parse::rpc_bind("--rpc", text)?);
    }
    if let Some(list) = &opts.services {
        for (proto, rest) in parse::split_services("SERVICES", list)? {
            match proto.as_str() {
                "rpc" => {
                    if admin.is_some() {
                        return Err(invalid("SERVICES", "more than one admin RPC address (rpc:// and --rpc)"));
                    }
                    admin = Some(parse::rpc_bind("SERVICES", &rest)?);
                }
                "http" => http.push(parse::bind("SERVICES", &rest, network.default_http_port())?),
                _ => {
                    let (proto, proxied) = match proto.strip_suffix("+proxy") {
                        Some(p) => (p, true),
                        None => (proto.as_str(), false),
                    };
                    let protocol: Protocol = proto.parse().map_err(|e: String| invalid("SERVICES", e))?;
                    let addr = parse::bind("SERVICES", &rest, parse::default_port(protocol, network))?;
                    services.push(Service { protocol, addr, proxied });
                }
            }
        }
    }
    if services.is_empty() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        services.push(Service {
            protocol: Protocol::Tcp,
            addr: SocketAddr::new(loopback, parse::default_port(Protocol::Tcp, network)),
            proxied: false,
        });
        services.push(Service {
            protocol: Protocol::Ssl,
            addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), parse::default_port(Protocol::Ssl, network)),
            proxied: false,
        });
        if admin.is_none() {
            admin = Some(SocketAddr::new(loopback, DEFAULT_RPC_PORT));
        }
        if http.is_empty() {
            http.push(SocketAddr::new(loopback, network.default_http_port()));
        }
    }
    let mut all: Vec<SocketAddr> = services.iter().map(|s| s.addr).chain(admin).chain(http.iter().copied()).collect();
    all.retain(|a| a.port() != 0);
    for (i, a) in all.iter().enumerate() {
        if all.iter().skip(i + 1).any(|b| b == a) {
            return Err(invalid("services", format!("{a} is configured twice")));
        }
    }
    Ok((services, MonitorSettings { admin_rpc: admin, http }))
}
