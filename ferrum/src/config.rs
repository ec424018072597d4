//! Configuration: one typed [`Config`] built from command-line flags, environment variables
//! (Ferrum's `FERRUM_*` names and ElectrumX's names) and a TOML file, in that order of precedence,
//! validated into clear errors that name the offending setting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use std::net::{IpAddr, SocketAddr};

use crate::daemon::{Auth, DaemonConfig};
use crate::electrum::ReportedService;
use crate::network::Network;
use crate::server::{Limits, Protocol, Service};

/// Command line of the `ferrum` binary.
#[derive(Parser, Debug)]
#[command(name = "ferrum", version, about = "An Electrum server for Bitcoin Core", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Look inside the index without the network protocol (works next to a running server)
    Index {
        #[command(subcommand)]
        what: IndexCommand,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Connect to bitcoind, report what it is and which of its interfaces Ferrum can use, and exit.
    NodeInfo {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Rows and bytes per table, bytes per transaction, tip
    Stats {
        /// Count rows exactly (reads the whole index) instead of RocksDB's estimates.
        #[arg(long)]
        exact: bool,
    },
    /// History, balance and unspent outputs of an address or script hash
    History {
        /// An address, or a script hash in hex as Electrum wallets send it
        target: String,
    },
    /// Where a transaction is: height, position, merkle branch
    Tx {
        /// Transaction id, hex
        txid: String,
    },
}

/// Every setting, as given on the command line, in the environment or in the config file.
/// `None` means "not given here"; [`Config::load`] layers the sources and applies defaults.
#[derive(Args, Debug, Default, Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// TOML config file [default: <db-dir>/ferrum.toml if it exists]
    #[arg(long, env = "FERRUM_CONFIG", global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Bitcoin network: mainnet, testnet, testnet4, signet or regtest [default: mainnet]
    #[arg(long, env = "FERRUM_NETWORK", global = true)]
    pub network: Option<Network>,

    /// Directory of the index (and of the TLS certificate) [default: ~/.ferrum/<network>]
    #[arg(long, env = "FERRUM_DB_DIR", global = true, value_name = "DIR")]
    pub db_dir: Option<PathBuf>,

    /// bitcoind's RPC address, host:port [default: 127.0.0.1 and the network's RPC port]
    #[arg(long, env = "FERRUM_DAEMON_RPC_ADDR", global = true, value_name = "HOST:PORT")]
    pub daemon_rpc_addr: Option<String>,

    /// bitcoind's data directory, where its cookie file is [default: ~/.bitcoin]
    #[arg(long, env = "FERRUM_DAEMON_DIR", global = true, value_name = "DIR")]
    pub daemon_dir: Option<PathBuf>,

    /// bitcoind's cookie file [default: <daemon-dir>/<network>/.cookie]
    #[arg(long, env = "FERRUM_COOKIE_FILE", global = true, value_name = "FILE")]
    pub cookie_file: Option<PathBuf>,

    /// RPC user (rpcuser or an rpcauth user); the password comes from FERRUM_DAEMON_PASSWORD or
    /// the config file, never from the command line
    #[arg(long, env = "FERRUM_DAEMON_USER", global = true)]
    pub daemon_user: Option<String>,

    /// RPC password (environment or config file only)
    #[arg(skip)]
    pub daemon_password: Option<String>,

    /// bitcoind's P2P address, for instant block announcements, or "none" [default: the RPC
    /// host and the network's P2P port]
    #[arg(long, env = "FERRUM_DAEMON_P2P_ADDR", global = true, value_name = "HOST:PORT")]
    pub daemon_p2p_addr: Option<String>,

    /// How spent outputs are found while indexing: auto (spenttxouts when the node serves
    /// /rest/spenttxouts, else utxo), spenttxouts, or utxo. Fixed when the index is created
    /// [default: auto]
    #[arg(long, env = "FERRUM_PREVOUT_MODE", global = true)]
    pub prevout_mode: Option<ModeArg>,

    /// Memory for RocksDB caches and for the outputs of a chunk in utxo mode, in MiB
    /// [default: 1024]
    #[arg(long, env = "FERRUM_CACHE_MB", global = true)]
    pub cache_mb: Option<usize>,

    /// Delete the index and build it again from the first block
    #[arg(long, global = true)]
    #[serde(skip)]
    pub reindex: bool,

    /// Rebuild the index automatically when its format is from another Ferrum version, instead
    /// of refusing to start [default: false]
    #[arg(long, env = "FERRUM_REINDEX_ON_FORMAT_CHANGE", global = true)]
    pub reindex_on_format_change: Option<bool>,

    /// How often to ask bitcoind for a new tip besides P2P announcements, in milliseconds
    /// [default: 1000]
    #[arg(long, env = "FERRUM_POLL_INTERVAL_MS", global = true)]
    pub poll_interval_ms: Option<u64>,

    /// Commit the index at least every this many blocks during sync (smaller commits, more of
    /// them) [default: no limit, by size only]
    #[arg(long, env = "FERRUM_INDEX_CHUNK_BLOCKS", global = true, hide = true)]
    pub index_chunk_blocks: Option<u32>,

    /// Electrum over plain TCP: host:port, :port or port; repeatable or comma-separated
    /// [default: 127.0.0.1 and the network's TCP port, when no service is configured]
    #[arg(long, env = "FERRUM_TCP", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub tcp: Option<Vec<String>>,

    /// Electrum over TLS [default: all interfaces and the network's SSL port, when no service
    /// is configured]
    #[arg(long, env = "FERRUM_SSL", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub ssl: Option<Vec<String>>,

    /// Electrum over WebSocket
    #[arg(long, env = "FERRUM_WS", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub ws: Option<Vec<String>>,

    /// Electrum over secure WebSocket
    #[arg(long, env = "FERRUM_WSS", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub wss: Option<Vec<String>>,

    /// Services in ElectrumX's form, e.g. tcp://:50001,ssl://:50002,wss://:50004 (added to the
    /// --tcp/--ssl/--ws/--wss ones)
    #[arg(long, env = "FERRUM_SERVICES", global = true)]
    pub services: Option<String>,

    /// Services announced to clients in server.features, e.g. ssl://electrum.example.org:50002
    #[arg(long, env = "FERRUM_REPORT_SERVICES", global = true)]
    pub report_services: Option<String>,

    /// TLS certificate chain (PEM), reloaded when it changes [default: a self-signed one,
    /// generated once and kept in the data directory]
    #[arg(long, env = "FERRUM_SSL_CERTFILE", global = true, value_name = "FILE")]
    pub ssl_certfile: Option<PathBuf>,

    /// TLS private key (PEM) of --ssl-certfile
    #[arg(long, env = "FERRUM_SSL_KEYFILE", global = true, value_name = "FILE")]
    pub ssl_keyfile: Option<PathBuf>,

    /// File with the text of server.banner; $SERVER_VERSION, $SERVER_SUBVERSION,
    /// $DAEMON_VERSION, $DAEMON_SUBVERSION and $DONATION_ADDRESS are replaced
    #[arg(long, env = "FERRUM_BANNER_FILE", global = true, value_name = "FILE")]
    pub banner_file: Option<PathBuf>,

    /// Answer of server.donation_address [default: empty]
    #[arg(long, env = "FERRUM_DONATION_ADDRESS", global = true)]
    pub donation_address: Option<String>,

    /// Largest answer sent to a client, bytes [default: 8100000]
    #[arg(long, env = "FERRUM_MAX_SEND", global = true)]
    pub max_send: Option<usize>,

    /// Largest message accepted from a client, bytes [default: 1000000]
    #[arg(long, env = "FERRUM_MAX_RECV", global = true)]
    pub max_recv: Option<usize>,

    /// Most client sessions at once [default: 1000]
    #[arg(long, env = "FERRUM_MAX_SESSIONS", global = true)]
    pub max_sessions: Option<usize>,

    /// Seconds without a complete request before a session is closed [default: 600]
    #[arg(long, env = "FERRUM_SESSION_TIMEOUT", global = true)]
    pub session_timeout: Option<u64>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive list [default: info]
    #[arg(long, env = "FERRUM_LOG", global = true)]
    pub log: Option<String>,
}

/// `--prevout-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    Auto,
    Spenttxouts,
    Utxo,
}

/// Environment variables: a seam so tests can pass their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting: setting.to_string(), reason: reason.into() }
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub network: Network,
    pub db_dir: PathBuf,
    pub daemon: DaemonConfig,
    /// `None`: no P2P connection, polling only.
    pub p2p_addr: Option<String>,
    pub prevout_mode: ModeArg,
    pub cache_mb: usize,
    pub reindex: bool,
    pub reindex_on_format_change: bool,
    pub poll_interval: Duration,
    pub index_chunk_blocks: Option<u32>,
    /// Where to serve Electrum.
    pub services: Vec<Service>,
    /// Admin JSON-RPC listener (`rpc://` in ElectrumX's SERVICES).
    pub admin_rpc: Option<SocketAddr>,
    pub report_services: Vec<ReportedService>,
    /// Operator-given certificate and key.
    pub ssl_files: Option<(PathBuf, PathBuf)>,
    pub banner_file: Option<PathBuf>,
    pub donation_address: String,
    pub max_send: usize,
    pub limits: Limits,
    pub log: String,
}

impl Config {
    /// Where the index lives inside the data directory.
    pub fn index_dir(&self) -> PathBuf {
        self.db_dir.join("index")
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `DaemonConfig`'s `Auth` redacts the password.
        f.debug_struct("Config")
            .field("network", &self.network)
            .field("db_dir", &self.db_dir)
            .field("daemon", &self.daemon)
            .field("p2p_addr", &self.p2p_addr)
            .field("prevout_mode", &self.prevout_mode)
            .field("cache_mb", &self.cache_mb)
            .field("reindex", &self.reindex)
            .field("reindex_on_format_change", &self.reindex_on_format_change)
            .field("poll_interval", &self.poll_interval)
            .field("services", &self.services)
            .field("admin_rpc", &self.admin_rpc)
            .field("report_services", &self.report_services)
            .field("ssl_files", &self.ssl_files)
            .field("banner_file", &self.banner_file)
            .field("max_send", &self.max_send)
            .field("limits", &self.limits)
            .field("log", &self.log)
            .finish()
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

impl Config {
    /// Layers the sources (command line and `FERRUM_*` environment, then ElectrumX's variable
    /// names, then the config file, then defaults) and validates the result.
    pub fn load(cli: &Options, env: &dyn Env) -> Result<Config, ConfigError> {
        let mut opts = cli.clone();
        opts.daemon_password = env.var("FERRUM_DAEMON_PASSWORD");
        let electrumx = ElectrumxEnv::read(env)?;
        fill(&mut opts.network, electrumx.network);
        fill(&mut opts.db_dir, electrumx.db_dir.clone());
        fill(&mut opts.log, electrumx.log_level.clone());
        fill(&mut opts.cache_mb, electrumx.cache_mb);
        fill(&mut opts.services, env.var("SERVICES"));
        fill(&mut opts.report_services, env.var("REPORT_SERVICES"));
        fill(&mut opts.ssl_certfile, env.var("SSL_CERTFILE").map(PathBuf::from));
        fill(&mut opts.ssl_keyfile, env.var("SSL_KEYFILE").map(PathBuf::from));
        fill(&mut opts.banner_file, env.var("BANNER_FILE").map(PathBuf::from));
        fill(&mut opts.donation_address, env.var("DONATION_ADDRESS"));
        fill(&mut opts.max_send, number_var(env, "MAX_SEND")?);
        fill(&mut opts.max_recv, number_var(env, "MAX_RECV")?);
        fill(&mut opts.max_sessions, number_var(env, "MAX_SESSIONS")?);
        fill(&mut opts.session_timeout, number_var(env, "SESSION_TIMEOUT")?);

        let file_path = opts.config.clone().or_else(|| {
            let dir = opts.db_dir.clone()?;
            let default = dir.join("ferrum.toml");
            default.exists().then_some(default)
        });
        if let Some(path) = &file_path {
            let file = read_file(path)?;
            merge(&mut opts, file)?;
        }

        let network = opts.network.unwrap_or(Network::Mainnet);
        let db_dir = opts.db_dir.clone().unwrap_or_else(|| home_dir().join(".ferrum").join(network.name()));

        let daemon = resolve_daemon(&opts, electrumx.daemon_url.as_deref(), network)?;
        let p2p_addr = match opts.daemon_p2p_addr.as_deref() {
            Some("none") => None,
            Some(addr) if addr.contains(':') => Some(addr.to_string()),
            Some(addr) => return Err(invalid("--daemon-p2p-addr", format!("{addr:?} is not host:port or none"))),
            None => {
                let host = daemon.rpc_addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
                Some(format!("{host}:{}", network.default_p2p_port()))
            }
        };
        let cache_mb = opts.cache_mb.unwrap_or(1024);
        if cache_mb < 16 {
            return Err(invalid("--cache-mb", format!("{cache_mb} MiB is too little (at least 16)")));
        }
        let poll_ms = opts.poll_interval_ms.unwrap_or(1000);
        if !(10..=60_000).contains(&poll_ms) {
            return Err(invalid("--poll-interval-ms", format!("{poll_ms} is outside 10..=60000")));
        }
        if opts.index_chunk_blocks == Some(0) {
            return Err(invalid("--index-chunk-blocks", "must be at least 1"));
        }
        let (services, admin_rpc) = resolve_services(&opts, network)?;
        let report_services = match &opts.report_services {
            Some(list) => parse_report_services(list)?,
            None => Vec::new(),
        };
        let ssl_files = match (&opts.ssl_certfile, &opts.ssl_keyfile) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("--ssl-keyfile", "needed with --ssl-certfile")),
            (None, Some(_)) => return Err(invalid("--ssl-certfile", "needed with --ssl-keyfile")),
        };
        let max_send = opts.max_send.unwrap_or(8_100_000);
        if max_send < 350_000 {
            return Err(invalid("--max-send", format!("{max_send} is below the minimum of 350000 bytes")));
        }
        let max_recv = opts.max_recv.unwrap_or(1_000_000);
        if max_recv < 100_000 {
            return Err(invalid("--max-recv", format!("{max_recv} is below the minimum of 100000 bytes")));
        }
        let defaults = Limits::default();
        let limits = Limits {
            max_recv,
            max_sessions: opts.max_sessions.unwrap_or(defaults.max_sessions),
            idle_timeout: opts.session_timeout.map_or(defaults.idle_timeout, Duration::from_secs),
            ..defaults
        };
        if limits.max_sessions == 0 {
            return Err(invalid("--max-sessions", "must be at least 1"));
        }
        Ok(Config {
            network,
            db_dir,
            daemon,
            p2p_addr,
            prevout_mode: opts.prevout_mode.unwrap_or(ModeArg::Auto),
            cache_mb,
            reindex: opts.reindex,
            reindex_on_format_change: opts.reindex_on_format_change.unwrap_or(false),
            poll_interval: Duration::from_millis(poll_ms),
            index_chunk_blocks: opts.index_chunk_blocks,
            services,
            admin_rpc,
            report_services,
            ssl_files,
            banner_file: opts.banner_file.clone(),
            donation_address: opts.donation_address.clone().unwrap_or_default(),
            max_send,
            limits,
            log: opts.log.clone().unwrap_or_else(|| "info".to_string()),
        })
    }
}

fn number_var<T: std::str::FromStr>(env: &dyn Env, name: &str) -> Result<Option<T>, ConfigError> {
    match env.var(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| invalid(name, format!("{v:?} is not a number"))),
    }
}

fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

fn read_file(path: &Path) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })?;
    toml::from_str(&text).map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })
}

/// Fills every unset option from the file's value.
fn merge(opts: &mut Options, file: Options) -> Result<(), ConfigError> {
    let to_map = |o: &Options| match serde_json::to_value(o) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(invalid("config", "options do not serialize")),
    };
    let mut merged = to_map(opts)?;
    for (k, v) in to_map(&file)? {
        if merged.get(&k).is_none_or(serde_json::Value::is_null) {
            merged.insert(k, v);
        }
    }
    let mut out: Options =
        serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| invalid("config", e.to_string()))?;
    // Command-line-only settings are not in the file.
    out.config = opts.config.clone();
    out.reindex = opts.reindex;
    *opts = out;
    Ok(())
}

/// ElectrumX's environment variables that Ferrum understands.
#[derive(Default)]
struct ElectrumxEnv {
    network: Option<Network>,
    db_dir: Option<PathBuf>,
    daemon_url: Option<String>,
    log_level: Option<String>,
    cache_mb: Option<usize>,
}

impl ElectrumxEnv {
    fn read(env: &dyn Env) -> Result<ElectrumxEnv, ConfigError> {
        let mut out = ElectrumxEnv::default();
        if let Some(coin) = env.var("COIN") {
            // `BitcoinSegwit` is ElectrumX's pre-1.17 name for the same coin.
            if !matches!(coin.to_ascii_lowercase().as_str(), "bitcoin" | "bitcoinsegwit") {
                return Err(invalid("COIN", format!("{coin:?} is not supported; Ferrum serves Bitcoin only")));
            }
        }
        if let Some(net) = env.var("NET") {
            out.network = Some(net.parse().map_err(|e: String| invalid("NET", e))?);
        }
        out.db_dir = env.var("DB_DIRECTORY").map(PathBuf::from);
        out.daemon_url = env.var("DAEMON_URL");
        out.log_level = env.var("LOG_LEVEL").map(|l| l.to_ascii_lowercase());
        if let Some(mb) = env.var("CACHE_MB") {
            out.cache_mb =
                Some(mb.trim().parse().map_err(|_| invalid("CACHE_MB", format!("{mb:?} is not a number of MiB")))?);
        }
        Ok(out)
    }
}

/// The default port of a service on a network (ElectrumX's conventions).
fn default_port(protocol: Protocol, network: Network) -> u16 {
    let (tcp, ssl) = network.default_electrum_ports();
    match protocol {
        Protocol::Tcp => tcp,
        Protocol::Ssl => ssl,
        Protocol::Ws => tcp + 2,
        Protocol::Wss => ssl + 2,
    }
}

/// `host:port`, `:port`, `port` or `host`; an empty host means all interfaces.
fn parse_bind(setting: &str, text: &str, default_port: u16) -> Result<SocketAddr, ConfigError> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| invalid(setting, format!("{text:?}: unterminated [")))?;
        (h, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (text, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => {
            p.parse::<u16>().map_err(|_| invalid(setting, format!("{text:?}: bad port {p:?}")))?
        }
        _ => default_port,
    };
    let ip: IpAddr = match host {
        "" => IpAddr::from([0, 0, 0, 0]),
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h.parse().map_err(|_| invalid(setting, format!("{text:?}: listen on an IP address, not {h:?}")))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// `proto://host:port` entries, comma-separated.
fn split_services(setting: &str, list: &str) -> Result<Vec<(String, String)>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (proto, rest) =
                s.split_once("://").ok_or_else(|| invalid(setting, format!("{s:?} is not protocol://host:port")))?;
            Ok((proto.to_ascii_lowercase(), rest.to_string()))
        })
        .collect()
}

fn resolve_services(opts: &Options, network: Network) -> Result<(Vec<Service>, Option<SocketAddr>), ConfigError> {
    let mut services = Vec::new();
    let mut admin = None;
    for (protocol, flag, list) in [
        (Protocol::Tcp, "--tcp", &opts.tcp),
        (Protocol::Ssl, "--ssl", &opts.ssl),
        (Protocol::Ws, "--ws", &opts.ws),
        (Protocol::Wss, "--wss", &opts.wss),
    ] {
        for entry in list.iter().flatten().filter(|e| !e.trim().is_empty()) {
            services.push(Service { protocol, addr: parse_bind(flag, entry, default_port(protocol, network))? });
        }
    }
    if let Some(list) = &opts.services {
        for (proto, rest) in split_services("SERVICES", list)? {
            if proto == "rpc" {
                let rest = if rest.is_empty() { "localhost" } else { rest.as_str() };
                let addr = parse_bind("SERVICES", rest, 8000)?;
                // ElectrumX's rpc host defaults to localhost, not all interfaces.
                let addr = if rest.starts_with(':') {
                    SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
                } else {
                    addr
                };
                admin = Some(addr);
                continue;
            }
            let protocol: Protocol = proto.parse().map_err(|e: String| invalid("SERVICES", e))?;
            services.push(Service { protocol, addr: parse_bind("SERVICES", &rest, default_port(protocol, network))? });
        }
    }
    if services.is_empty() {
        services.push(Service {
            protocol: Protocol::Tcp,
            addr: SocketAddr::new(IpAddr::from([127, 0, 0, 1]), default_port(Protocol::Tcp, network)),
        });
        services.push(Service {
            protocol: Protocol::Ssl,
            addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), default_port(Protocol::Ssl, network)),
        });
    }
    for (i, a) in services.iter().enumerate() {
        if services.iter().skip(i + 1).any(|b| b.addr == a.addr) {
            return Err(invalid("services", format!("{} is configured twice", a.addr)));
        }
    }
    Ok((services, admin))
}

fn parse_report_services(list: &str) -> Result<Vec<ReportedService>, ConfigError> {
    split_services("REPORT_SERVICES", list)?
        .into_iter()
        .map(|(proto, rest)| {
            let protocol: Protocol = proto.parse().map_err(|e: String| invalid("REPORT_SERVICES", e))?;
            let (host, port) = rest
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
                .ok_or_else(|| invalid("REPORT_SERVICES", format!("{rest:?} is not host:port")))?;
            if host.is_empty() {
                return Err(invalid(
                    "REPORT_SERVICES",
                    format!("{proto}://{rest}: a reported service needs a host name"),
                ));
            }
            Ok(ReportedService { protocol: protocol.name().to_string(), host: host.to_string(), port })
        })
        .collect()
}

/// A `DAEMON_URL` entry: `[http://][user:password@]host[:port][/]`.
#[derive(Debug, PartialEq, Eq)]
struct DaemonUrl {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
}

fn parse_daemon_url(url: &str) -> Result<DaemonUrl, String> {
    let rest = url.trim();
    let rest = match rest.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("unsupported scheme {scheme:?} (only http)")),
        None => rest,
    };
    let rest = rest.trim_end_matches('/');
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(user.to_string()), Some(pass.to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (None, None),
    };
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        // [ipv6]:port
        let (h, after) = stripped.split_once(']').ok_or("unterminated [ in host")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after host")),
        };
        (format!("[{h}]"), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(DaemonUrl { user, password, host, port })
}

fn resolve_daemon(opts: &Options, daemon_url: Option<&str>, network: Network) -> Result<DaemonConfig, ConfigError> {
    let url = match daemon_url {
        Some(list) => {
            let urls: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if urls.len() > 1 {
                return Err(invalid("DAEMON_URL", "several URLs given; Ferrum connects to one node"));
            }
            match urls.first() {
                Some(u) => Some(parse_daemon_url(u).map_err(|e| invalid("DAEMON_URL", e))?),
                None => None,
            }
        }
        None => None,
    };
    let rpc_addr = match (&opts.daemon_rpc_addr, &url) {
        (Some(addr), _) => {
            if !addr.contains(':') {
                return Err(invalid("--daemon-rpc-addr", format!("{addr:?} is not host:port")));
            }
            addr.clone()
        }
        (None, Some(u)) => format!("{}:{}", u.host, u.port.unwrap_or(network.default_rpc_port())),
        (None, None) => format!("127.0.0.1:{}", network.default_rpc_port()),
    };
    let auth = if let Some(user) = &opts.daemon_user {
        let password = opts.daemon_password.clone().ok_or_else(|| {
            invalid("--daemon-user", "needs a password in FERRUM_DAEMON_PASSWORD or daemon_password in the config file")
        })?;
        Auth::UserPass { user: user.clone(), password }
    } else if let Some(DaemonUrl { user: Some(user), password, .. }) = &url {
        Auth::UserPass { user: user.clone(), password: password.clone().unwrap_or_default() }
    } else {
        let cookie = match &opts.cookie_file {
            Some(path) => path.clone(),
            None => {
                let dir = opts.daemon_dir.clone().unwrap_or_else(|| home_dir().join(".bitcoin"));
                dir.join(network.datadir_subdir()).join(".cookie")
            }
        };
        Auth::Cookie(cookie)
    };
    Ok(DaemonConfig { network, rpc_addr, auth, timeout: Duration::from_secs(60) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(args: &[&str]) -> Options {
        let mut full = vec!["ferrum"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).unwrap().options
    }

    #[test]
    fn defaults_follow_the_network() {
        let c = Config::load(&parse(&["--network", "regtest", "--daemon-dir", "/d"]), &env(&[])).unwrap();
        assert_eq!(c.daemon.rpc_addr, "127.0.0.1:18443");
        assert!(matches!(&c.daemon.auth, Auth::Cookie(p) if p == Path::new("/d/regtest/.cookie")));
        let c = Config::load(&parse(&["--daemon-dir", "/d"]), &env(&[])).unwrap();
        assert_eq!(c.network, Network::Mainnet);
        assert!(matches!(&c.daemon.auth, Auth::Cookie(p) if p == Path::new("/d/.cookie")));
    }

    #[test]
    fn daemon_url_gives_address_and_credentials() {
        let c = Config::load(
            &parse(&[]),
            &env(&[("DAEMON_URL", "http://alice:s3cret@bitcoind:43782/"), ("NET", "mainnet")]),
        )
        .unwrap();
        assert_eq!(c.daemon.rpc_addr, "bitcoind:43782");
        assert!(matches!(&c.daemon.auth, Auth::UserPass { user, password } if user == "alice" && password == "s3cret"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn daemon_url_forms() {
        assert_eq!(
            parse_daemon_url("u:p@127.0.0.1").unwrap(),
            DaemonUrl { user: Some("u".into()), password: Some("p".into()), host: "127.0.0.1".into(), port: None }
        );
        assert_eq!(parse_daemon_url("http://[::1]:8332").unwrap().host, "[::1]");
        assert!(parse_daemon_url("https://x").unwrap_err().contains("https"));
        assert!(parse_daemon_url("host:notaport").unwrap_err().contains("notaport"));
    }

    #[test]
    fn cli_beats_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(&file, "network = \"signet\"\ndaemon_rpc_addr = \"10.0.0.1:1\"\nlog = \"debug\"\n").unwrap();
        let f = file.to_str().unwrap();
        let c = Config::load(&parse(&["--config", f, "--network", "testnet4"]), &env(&[("NET", "regtest")])).unwrap();
        assert_eq!(c.network, Network::Testnet4);
        assert_eq!(c.daemon.rpc_addr, "10.0.0.1:1");
        let c = Config::load(&parse(&["--config", f]), &env(&[("NET", "regtest")])).unwrap();
        assert_eq!(c.network, Network::Regtest);
        let c = Config::load(&parse(&["--config", f]), &env(&[])).unwrap();
        assert_eq!(c.network, Network::Signet);
        assert_eq!(c.log, "debug");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = Config::load(&parse(&[]), &env(&[("NET", "dogecoin")])).unwrap_err().to_string();
        assert!(e.starts_with("NET:"), "{e}");
        let e = Config::load(&parse(&[]), &env(&[("COIN", "Litecoin")])).unwrap_err().to_string();
        assert!(e.starts_with("COIN:"), "{e}");
        let e = Config::load(&parse(&["--daemon-user", "bob"]), &env(&[])).unwrap_err().to_string();
        assert!(e.contains("FERRUM_DAEMON_PASSWORD"), "{e}");
        assert!(Cli::try_parse_from(["ferrum", "--network", "nope"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(&file, "netwrk = \"signet\"\n").unwrap();
        let e = Config::load(&parse(&["--config", file.to_str().unwrap()]), &env(&[])).unwrap_err().to_string();
        assert!(e.contains("netwrk"), "{e}");
    }

    #[test]
    fn services_from_flags_and_electrumx() {
        let c = Config::load(&parse(&["--network", "regtest"]), &env(&[])).unwrap();
        assert_eq!(c.services.len(), 2, "defaults: local TCP and public TLS");
        assert_eq!(c.services[0].addr.to_string(), "127.0.0.1:51001");
        assert_eq!(c.services[1].addr.to_string(), "0.0.0.0:51002");
        let c = Config::load(
            &parse(&["--tcp", "127.0.0.1:1,:2", "--wss", "[::1]:3"]),
            &env(&[
                ("SERVICES", "tcp://:50001,ssl://:50002,wss://:50004,rpc://"),
                ("REPORT_SERVICES", "ssl://e.example:50002"),
            ]),
        )
        .unwrap();
        let shown: Vec<String> = c.services.iter().map(|s| format!("{}://{}", s.protocol.name(), s.addr)).collect();
        assert_eq!(
            shown,
            [
                "tcp://127.0.0.1:1",
                "tcp://0.0.0.0:2",
                "wss://[::1]:3",
                "tcp://0.0.0.0:50001",
                "ssl://0.0.0.0:50002",
                "wss://0.0.0.0:50004"
            ]
        );
        assert_eq!(c.admin_rpc.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:8000"));
        assert_eq!(c.report_services[0].host, "e.example");
        let e = Config::load(&parse(&[]), &env(&[("SERVICES", "gopher://:70")])).unwrap_err().to_string();
        assert!(e.starts_with("SERVICES:"), "{e}");
        let e = Config::load(&parse(&["--tcp", "example.org:1"]), &env(&[])).unwrap_err().to_string();
        assert!(e.starts_with("--tcp:"), "{e}");
        let e = Config::load(&parse(&["--tcp", ":1", "--ssl", ":1"]), &env(&[])).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let e = Config::load(&parse(&[]), &env(&[("MAX_SEND", "lots")])).unwrap_err().to_string();
        assert!(e.starts_with("MAX_SEND:"), "{e}");
        let e = Config::load(&parse(&["--ssl-certfile", "/x"]), &env(&[])).unwrap_err().to_string();
        assert!(e.starts_with("--ssl-keyfile"), "{e}");
    }

    #[test]
    fn electrumx_legacy_coin_name_is_accepted() {
        let c = Config::load(&parse(&[]), &env(&[("COIN", "BitcoinSegwit"), ("NET", "testnet")])).unwrap();
        assert_eq!(c.network, Network::Testnet);
    }
}
