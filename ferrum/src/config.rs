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
use crate::server::{Limits, Protocol, Service, Subnet};

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
    /// Send a command to a running server's admin RPC and print the answer.
    ///
    /// Commands: getinfo, sessions, groups, peers, disconnect <session id|ip>..., log <filter>,
    /// query <address|scripthash> [limit], reorg-check [depth], stop.
    Rpc {
        /// Port of the admin RPC on 127.0.0.1 [default: the configured --rpc address, else 8000]
        #[arg(short, long)]
        port: Option<u16>,
        /// Print the raw JSON answer.
        #[arg(long)]
        json: bool,
        /// The command
        command: String,
        /// Its arguments
        args: Vec<String>,
    },
    /// Print the configuration in effect (passwords redacted) and what start-up would log
    /// about it, and exit: 0 when it is valid, 2 with the reason when it is not.
    Config,
    /// Print the configuration reference (docs/configuration.md) as Markdown.
    #[command(hide = true)]
    ConfigReference,
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
    /// TOML config file [default: the first that exists of <db-dir>/ferrum.toml (with --db-dir
    /// or DB_DIRECTORY), ~/.ferrum/ferrum.toml, /etc/ferrum/ferrum.toml]
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

    /// HTTP listener for the status page (/), its data (/api/status), Prometheus metrics
    /// (/metrics) and a health check (/health); `http://` in --services does the same
    /// [default: 127.0.0.1 and the network's HTTP port, when no service is configured]
    #[arg(long, env = "FERRUM_HTTP", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub http: Option<Vec<String>>,

    /// Admin JSON-RPC listener for `ferrum rpc` (ElectrumX's `rpc://`); keep it on loopback
    /// [default: 127.0.0.1:8000, when no service is configured]
    #[arg(long, env = "FERRUM_RPC", global = true, value_name = "ADDR")]
    pub rpc: Option<String>,

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

    /// ResultJson of server.donation_address [default: empty]
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

    /// Sessions at once from one client address; more are closed as they connect
    /// [default: 50]
    #[arg(long, env = "FERRUM_MAX_SESSIONS_PER_IP", global = true)]
    pub max_sessions_per_ip: Option<usize>,

    /// Client subnets exempt from the per-address limits, comma-separated, or "none"
    /// [default: 127.0.0.0/8,::1]
    #[arg(long, env = "FERRUM_SESSION_LIMIT_EXEMPT", global = true, value_delimiter = ',', value_name = "SUBNETS")]
    pub session_limit_exempt: Option<Vec<String>>,

    /// Script hashes one session may subscribe to [default: 100000]
    #[arg(long, env = "FERRUM_MAX_SUBS_PER_SESSION", global = true)]
    pub max_subs_per_session: Option<usize>,

    /// Script hashes the sessions of one client address may subscribe to together
    /// [default: 500000]
    #[arg(long, env = "FERRUM_MAX_SUBS_PER_IP", global = true)]
    pub max_subs_per_ip: Option<usize>,

    /// Script hashes subscribed to over all sessions [default: 5000000]
    #[arg(long, env = "FERRUM_MAX_SUBS", global = true)]
    pub max_subs: Option<usize>,

    /// Cost a client group (an IPv4 /24, an IPv6 /48) may reach before its requests are slowed;
    /// costs decay to zero in an hour from the hard limit [default: 1000]
    #[arg(long, env = "FERRUM_COST_SOFT_LIMIT", global = true)]
    pub cost_soft_limit: Option<f64>,

    /// Cost past which a client group's sessions are dropped with error -101 [default: 10000]
    #[arg(long, env = "FERRUM_COST_HARD_LIMIT", global = true)]
    pub cost_hard_limit: Option<f64>,

    /// Requests in one JSON-RPC batch; a larger batch is refused with one error [default: 1000]
    #[arg(long, env = "FERRUM_MAX_BATCH", global = true)]
    pub max_batch: Option<usize>,

    /// Seconds without a complete request before a session is closed [default: 600]
    #[arg(long, env = "FERRUM_SESSION_TIMEOUT", global = true)]
    pub session_timeout: Option<u64>,

    /// Seconds a request may take before it is answered with error -102 (server busy)
    /// [default: 30]
    #[arg(long, env = "FERRUM_REQUEST_TIMEOUT", global = true)]
    pub request_timeout: Option<u64>,

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
    /// The names of every variable set.
    fn names(&self) -> Vec<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn names(&self) -> Vec<String> {
        std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// What Ferrum does with one of ElectrumX's environment variables.
#[derive(Debug, Clone, Copy)]
pub enum ElectrumxVar {
    /// Read, with the meaning of the Ferrum setting named here.
    Setting(&'static str),
    /// Accepted and logged as ignored, for the reason given.
    Ignored(&'static str),
    /// Removed from ElectrumX (set, it stops ElectrumX too): a start-up error.
    Obsolete(&'static str),
}

/// Every environment variable of ElectrumX, and what Ferrum does with it. The code below reads
/// the `Setting` ones; the documentation and the start-up notices come from this table.
pub const ELECTRUMX_VARS: &[(&str, ElectrumxVar)] = {
    use ElectrumxVar::{Ignored, Obsolete, Setting};
    const COST: &str = "Ferrum's cost model has fixed units (work measured in rows read, node calls and \
                        bytes sent) and groups (/24 and /48); its limits are --cost-soft-limit and \
                        --cost-hard-limit";
    const PEERS: &str = "Ferrum does no peer discovery: server.peers.subscribe answers []";
    const PORTS: &str = "use SERVICES (as ElectrumX since 1.16)";
    &[
        ("DAEMON_URL", Setting("--daemon-rpc-addr and the RPC credentials; several URLs, comma-separated, are tried in turn when one fails")),
        ("DB_DIRECTORY", Setting("--db-dir")),
        ("NET", Setting("--network")),
        ("COIN", Setting("Bitcoin (or the legacy BitcoinSegwit); any other coin is an error")),
        ("SERVICES", Setting("--services")),
        ("REPORT_SERVICES", Setting("--report-services")),
        ("SSL_CERTFILE", Setting("--ssl-certfile")),
        ("SSL_KEYFILE", Setting("--ssl-keyfile")),
        ("BANNER_FILE", Setting("--banner-file")),
        ("DONATION_ADDRESS", Setting("--donation-address")),
        ("MAX_SESSIONS", Setting("--max-sessions")),
        ("MAX_SEND", Setting("--max-send")),
        ("MAX_RECV", Setting("--max-recv")),
        ("REQUEST_TIMEOUT", Setting("--request-timeout")),
        ("SESSION_TIMEOUT", Setting("--session-timeout")),
        ("LOG_LEVEL", Setting("--log")),
        ("CACHE_MB", Setting("--cache-mb")),
        ("COST_SOFT_LIMIT", Setting("--cost-soft-limit")),
        ("COST_HARD_LIMIT", Setting("--cost-hard-limit")),
        ("BANDWIDTH_UNIT_COST", Ignored(COST)),
        ("INITIAL_CONCURRENT", Ignored(COST)),
        ("REQUEST_SLEEP", Ignored(COST)),
        ("SESSION_GROUP_BY_SUBNET_IPV4", Ignored(COST)),
        ("SESSION_GROUP_BY_SUBNET_IPV6", Ignored(COST)),
        ("PEER_DISCOVERY", Ignored(PEERS)),
        ("PEER_ANNOUNCE", Ignored(PEERS)),
        ("FORCE_PROXY", Ignored(PEERS)),
        ("TOR_PROXY_HOST", Ignored(PEERS)),
        ("TOR_PROXY_PORT", Ignored(PEERS)),
        ("BLACKLIST_URL", Ignored(PEERS)),
        ("DB_ENGINE", Ignored("Ferrum's index is always RocksDB")),
        ("ALLOW_ROOT", Ignored("Ferrum does not check which user runs it (the Docker image runs unprivileged)")),
        ("EVENT_LOOP_POLICY", Ignored("a Python setting")),
        ("REORG_LIMIT", Ignored("Ferrum handles reorgs of any depth")),
        ("DAEMON_POLL_INTERVAL_BLOCKS", Ignored("blocks are announced over P2P and ZMQ; see --poll-interval-ms")),
        ("DAEMON_POLL_INTERVAL_MEMPOOL", Ignored("transactions are announced over P2P; see --poll-interval-ms")),
        ("TOR_BANNER_FILE", Ignored("one banner for every client (--banner-file)")),
        ("DROP_CLIENT", Ignored("no client-name filter")),
        ("ANON_LOGS", Ignored("client addresses are logged only at debug level")),
        ("LOG_SESSIONS", Ignored("session counts are in the admin RPC, the status page and /metrics")),
        ("LOG_FORMAT", Ignored("Ferrum's log format is fixed")),
        ("MAX_SUBSCRIPTIONS", Obsolete("removed from ElectrumX")),
        ("MAX_SUBS", Obsolete("removed from ElectrumX")),
        ("MAX_SESSION_SUBS", Obsolete("removed from ElectrumX")),
        ("BANDWIDTH_LIMIT", Obsolete("removed from ElectrumX; see COST_SOFT_LIMIT")),
        ("HOST", Obsolete(PORTS)),
        ("TCP_PORT", Obsolete(PORTS)),
        ("SSL_PORT", Obsolete(PORTS)),
        ("RPC_HOST", Obsolete(PORTS)),
        ("RPC_PORT", Obsolete(PORTS)),
        ("REPORT_HOST", Obsolete("use REPORT_SERVICES")),
        ("REPORT_TCP_PORT", Obsolete("use REPORT_SERVICES")),
        ("REPORT_SSL_PORT", Obsolete("use REPORT_SERVICES")),
        ("REPORT_HOST_TOR", Obsolete("use REPORT_SERVICES")),
        ("REPORT_TCP_PORT_TOR", Obsolete("use REPORT_SERVICES")),
        ("REPORT_SSL_PORT_TOR", Obsolete("use REPORT_SERVICES")),
    ]
};

/// `FERRUM_*` variables that are not settings but are read by Ferrum's scripts and tests.
const FERRUM_NON_SETTINGS: &[&str] = &["FERRUM_DAEMON_PASSWORD", "FERRUM_CACHE"];

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
    /// Status page, metrics and health check listeners.
    pub http: Vec<SocketAddr>,
    pub report_services: Vec<ReportedService>,
    /// Operator-given certificate and key.
    pub ssl_files: Option<(PathBuf, PathBuf)>,
    pub banner_file: Option<PathBuf>,
    pub donation_address: String,
    pub max_send: usize,
    pub limits: Limits,
    pub log: String,
    /// What start-up should log about the configuration (ignored or unknown variables).
    pub notices: Vec<String>,
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
            .field("http", &self.http)
            .field("report_services", &self.report_services)
            .field("ssl_files", &self.ssl_files)
            .field("banner_file", &self.banner_file)
            .field("donation_address", &self.donation_address)
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
        fill(&mut opts.request_timeout, number_var(env, "REQUEST_TIMEOUT")?);
        fill(&mut opts.cost_soft_limit, number_var(env, "COST_SOFT_LIMIT")?);
        fill(&mut opts.cost_hard_limit, number_var(env, "COST_HARD_LIMIT")?);
        let mut notices = electrumx_notices(env)?;

        let file_path = opts.config.clone().or_else(|| {
            let mut candidates: Vec<PathBuf> = opts.db_dir.iter().map(|d| d.join("ferrum.toml")).collect();
            candidates.push(home_dir().join(".ferrum").join("ferrum.toml"));
            candidates.push(PathBuf::from("/etc/ferrum/ferrum.toml"));
            candidates.into_iter().find(|p| p.exists())
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
        let (services, admin_rpc, http) = resolve_services(&opts, network)?;
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
        let max_send = opts.max_send.unwrap_or(crate::electrum::ElectrumConfig::default().max_send);
        if max_send < 350_000 {
            return Err(invalid("--max-send", format!("{max_send} is below the minimum of 350000 bytes")));
        }
        let defaults = Limits::default();
        let max_recv = opts.max_recv.unwrap_or(defaults.max_recv);
        if max_recv < 100_000 {
            return Err(invalid("--max-recv", format!("{max_recv} is below the minimum of 100000 bytes")));
        }
        let limits = Limits {
            max_recv,
            max_sessions: opts.max_sessions.unwrap_or(defaults.max_sessions),
            idle_timeout: opts.session_timeout.map_or(defaults.idle_timeout, Duration::from_secs),
            request_timeout: opts.request_timeout.map_or(defaults.request_timeout, Duration::from_secs),
            max_sessions_per_ip: opts.max_sessions_per_ip.unwrap_or(defaults.max_sessions_per_ip),
            max_subs_per_session: opts.max_subs_per_session.unwrap_or(defaults.max_subs_per_session),
            max_subs_per_ip: opts.max_subs_per_ip.unwrap_or(defaults.max_subs_per_ip),
            max_subs_total: opts.max_subs.unwrap_or(defaults.max_subs_total),
            max_batch: opts.max_batch.unwrap_or(defaults.max_batch),
            exempt: match &opts.session_limit_exempt {
                None => defaults.exempt.clone(),
                Some(list) if list.iter().all(|s| s.trim().eq_ignore_ascii_case("none") || s.trim().is_empty()) => {
                    Vec::new()
                }
                Some(list) => list
                    .iter()
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.parse::<Subnet>().map_err(|e| invalid("--session-limit-exempt", e)))
                    .collect::<Result<_, _>>()?,
            },
            cost: crate::cost::Thresholds {
                soft: opts.cost_soft_limit.unwrap_or(defaults.cost.soft),
                hard: opts.cost_hard_limit.unwrap_or(defaults.cost.hard),
            },
            ..defaults
        };
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
        if let Some(path) = &file_path {
            notices.push(format!("configuration file {}", path.display()));
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
            http,
            report_services,
            ssl_files,
            banner_file: opts.banner_file.clone(),
            donation_address: opts.donation_address.clone().unwrap_or_default(),
            max_send,
            limits,
            log: match &opts.log {
                Some(filter) => check_log_filter(filter).map_err(|e| invalid("--log", e))?,
                None => "info".to_string(),
            },
            notices,
        })
    }
}

fn number_var<T: std::str::FromStr>(env: &dyn Env, name: &str) -> Result<Option<T>, ConfigError> {
    match env.var(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| invalid(name, format!("{v:?} is not a number"))),
    }
}

/// The configuration reference, `docs/configuration.md`: generated from the same definitions
/// as `--help` and the ElectrumX table, so the two cannot disagree.
pub fn reference() -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = String::from(
        "# Configuration\n\n\
         <!-- Written by `ferrum config-reference` from ferrum/src/config.rs; edit that, not this file. -->\n\n\
         Every setting can come from four places. The first that gives it wins:\n\n\
         1. the command line (`--network regtest`);\n\
         2. the environment: Ferrum's own `FERRUM_*` name, then ElectrumX's name where there is one \
         (`FERRUM_NETWORK`, then `NET`);\n\
         3. the TOML config file (`network = \"regtest\"`): `--config`/`FERRUM_CONFIG`, or else the first \
         that exists of `<db-dir>/ferrum.toml` (when the data directory is given by `--db-dir`, \
         `FERRUM_DB_DIR` or `DB_DIRECTORY`), `~/.ferrum/ferrum.toml` and `/etc/ferrum/ferrum.toml`;\n\
         4. the default.\n\n\
         In the file, a setting's key is its long option without the dashes, with `_` for `-` \
         (`--daemon-rpc-addr` is `daemon_rpc_addr`); lists are TOML arrays (`tcp = [\"127.0.0.1:50001\"]`). \
         A key the file does not know is an error, as is an invalid value anywhere: Ferrum names the \
         setting and stops (exit code 2) rather than start with a configuration it was not given.\n\n\
         The RPC password is never read from the command line, where other users could see it: set \
         `FERRUM_DAEMON_PASSWORD`, `daemon_password` in the file, or the password in `DAEMON_URL`. \
         Passwords are never logged or printed.\n\n\
         ## Options\n\n",
    );
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") || arg.is_hide_set() {
            continue;
        }
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| format!(" <{v}>"))
            .filter(|_| arg.get_action().takes_values())
            .unwrap_or_default();
        out.push_str(&format!("### `--{long}{value}`\n\n"));
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ").replace('<', "&lt;").replace('>', "&gt;");
        out.push_str(&format!("{help}\n\n"));
        let mut sources = Vec::new();
        if let Some(env) = arg.get_env().and_then(|e| e.to_str()) {
            sources.push(format!("environment `{env}`"));
        }
        let flag = format!("--{long}");
        for (name, what) in ELECTRUMX_VARS {
            if matches!(what, ElectrumxVar::Setting(s) if *s == flag || s.starts_with(&format!("{flag} "))) {
                sources.push(format!("ElectrumX's `{name}`"));
            }
        }
        if !matches!(long, "config" | "reindex") {
            sources.push(format!("file key `{}`", long.replace('-', "_")));
        }
        if sources.is_empty() {
            out.push_str("Command line only.\n\n");
        } else {
            out.push_str(&format!("Also: {}.\n\n", sources.join(", ")));
        }
    }
    out.push_str(
        "### RPC password\n\n\
         With `--daemon-user`: environment `FERRUM_DAEMON_PASSWORD`, file key `daemon_password`.\n\n\
         ## ElectrumX's environment variables\n\n\
         Ferrum reads ElectrumX's environment, so a container or unit file written for ElectrumX \
         starts Ferrum unchanged. Variables for things Ferrum does not do are accepted and logged \
         once at start-up as ignored; the ones ElectrumX itself no longer accepts stop Ferrum too.\n\n\
         | Variable | In Ferrum |\n|---|---|\n",
    );
    for (name, what) in ELECTRUMX_VARS {
        let meaning = match what {
            ElectrumxVar::Setting(s) if s.starts_with("--") && !s.contains(' ') => format!("as `{s}`"),
            ElectrumxVar::Setting(s) => (*s).to_string(),
            ElectrumxVar::Ignored(why) => format!("accepted and ignored: {why}"),
            ElectrumxVar::Obsolete(why) => format!("a start-up error: {why}"),
        };
        out.push_str(&format!("| `{name}` | {meaning} |\n"));
    }
    out.push_str(
        "\n`DAEMON_URL` is `[http://][user[:password]@]host[:port][/]`; without a user, bitcoind's \
         cookie file is used (`--daemon-dir`, `--cookie-file`). `SERVICES` takes `tcp://`, `ssl://`, \
         `ws://`, `wss://` and `rpc://` as ElectrumX, and `http://` for the status page and metrics; \
         an empty host means every interface, except for `rpc://`, which defaults to loopback and port \
         8000.\n\n\
         A `FERRUM_*` variable that is no setting is logged as probably misspelt.\n\n\
         ## Commands\n\n",
    );
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let about = sub.get_long_about().or(sub.get_about()).map(|a| a.to_string()).unwrap_or_default();
        let about = about.replace('<', "&lt;").replace('>', "&gt;");
        let mut lines = about.lines();
        let first = lines.next().unwrap_or_default().trim();
        out.push_str(&format!("- `ferrum {}`: {first}", sub.get_name()));
        let rest: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
        if !rest.is_empty() {
            out.push_str(&format!(" {}", rest.join(" ")));
        }
        out.push('\n');
    }
    out
}

/// A log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`), or a list of
/// `target=level` directives with an optional bare level; returned normalised.
pub fn check_log_filter(filter: &str) -> Result<String, String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let filter = filter.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    for directive in filter.split(',').map(str::trim) {
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => (Some(target), level),
            _ => (None, directive),
        };
        // ElectrumX's LOG_LEVEL says "warning"; tracing says "warn".
        let level = if level == "warning" { "warn" } else { level };
        if !LEVELS.contains(&level) {
            return Err(format!("{directive:?} is not a level (error, warn, info, debug, trace, off) or target=level"));
        }
        out.push(target.map_or_else(|| level.to_string(), |t| format!("{t}={level}")));
    }
    Ok(out.join(","))
}

/// ElectrumX variables Ferrum ignores (logged), obsolete ones (an error), and `FERRUM_*`
/// variables that are no setting (probably misspelt: logged).
fn electrumx_notices(env: &dyn Env) -> Result<Vec<String>, ConfigError> {
    let mut notices = Vec::new();
    for (name, what) in ELECTRUMX_VARS {
        let Some(value) = env.var(name) else { continue };
        match what {
            ElectrumxVar::Setting(_) => {}
            ElectrumxVar::Ignored(why) => {
                check_ignored_value(name, &value)?;
                notices.push(format!("{name} is ignored: {why}"));
            }
            ElectrumxVar::Obsolete(why) => return Err(invalid(name, format!("obsolete: {why}"))),
        }
    }
    let known: Vec<String> = <Cli as clap::CommandFactory>::command()
        .get_arguments()
        .filter_map(|a| a.get_env().and_then(|e| e.to_str()).map(str::to_string))
        .chain(FERRUM_NON_SETTINGS.iter().map(|s| s.to_string()))
        .collect();
    let mut unknown: Vec<String> =
        env.names().into_iter().filter(|n| n.starts_with("FERRUM_") && !known.contains(n)).collect();
    unknown.sort();
    for name in unknown {
        notices.push(format!("{name} is not a Ferrum setting (misspelt?); ignored"));
    }
    Ok(notices)
}

/// The values ElectrumX would accept for the ignored variables that have a fixed set, so a
/// configuration ElectrumX rejects is not silently accepted.
fn check_ignored_value(name: &str, value: &str) -> Result<(), ConfigError> {
    let v = value.trim().to_ascii_lowercase();
    let ok = match name {
        "PEER_DISCOVERY" => matches!(v.as_str(), "on" | "off" | "self"),
        "PEER_ANNOUNCE" | "FORCE_PROXY" | "ALLOW_ROOT" | "ANON_LOGS" => {
            matches!(v.as_str(), "" | "0" | "1" | "yes" | "no" | "true" | "false" | "on" | "off")
        }
        "BANDWIDTH_UNIT_COST"
        | "INITIAL_CONCURRENT"
        | "REQUEST_SLEEP"
        | "REORG_LIMIT"
        | "LOG_SESSIONS"
        | "SESSION_GROUP_BY_SUBNET_IPV4"
        | "SESSION_GROUP_BY_SUBNET_IPV6"
        | "DAEMON_POLL_INTERVAL_BLOCKS"
        | "DAEMON_POLL_INTERVAL_MEMPOOL"
        | "TOR_PROXY_PORT" => v.parse::<f64>().is_ok_and(|n| n >= 0.0),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(name, format!("{value:?} is not a valid value")))
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

/// Electrum services, the admin RPC address and the HTTP addresses.
type Listeners = (Vec<Service>, Option<SocketAddr>, Vec<SocketAddr>);

/// The admin RPC address: the host defaults to loopback, not all interfaces (as ElectrumX).
fn parse_rpc_bind(setting: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let text = text.trim();
    let addr = parse_bind(setting, if text.is_empty() { "localhost" } else { text }, DEFAULT_RPC_PORT)?;
    let host_given = !(text.is_empty() || text.starts_with(':') || text.parse::<u16>().is_ok());
    Ok(if host_given { addr } else { SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port()) })
}

/// ElectrumX's admin RPC port.
pub const DEFAULT_RPC_PORT: u16 = 8000;

fn resolve_services(opts: &Options, network: Network) -> Result<Listeners, ConfigError> {
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
            services.push(Service { protocol, addr: parse_bind(flag, entry, default_port(protocol, network))? });
        }
    }
    for entry in opts.http.iter().flatten().filter(|e| !e.trim().is_empty()) {
        http.push(parse_bind("--http", entry, network.default_http_port())?);
    }
    if let Some(text) = &opts.rpc {
        admin = Some(parse_rpc_bind("--rpc", text)?);
    }
    if let Some(list) = &opts.services {
        for (proto, rest) in split_services("SERVICES", list)? {
            match proto.as_str() {
                "rpc" => {
                    if admin.is_some() {
                        return Err(invalid("SERVICES", "more than one admin RPC address (rpc:// and --rpc)"));
                    }
                    admin = Some(parse_rpc_bind("SERVICES", &rest)?);
                }
                "http" => http.push(parse_bind("SERVICES", &rest, network.default_http_port())?),
                _ => {
                    let protocol: Protocol = proto.parse().map_err(|e: String| invalid("SERVICES", e))?;
                    let addr = parse_bind("SERVICES", &rest, default_port(protocol, network))?;
                    services.push(Service { protocol, addr });
                }
            }
        }
    }
    if services.is_empty() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        services.push(Service {
            protocol: Protocol::Tcp,
            addr: SocketAddr::new(loopback, default_port(Protocol::Tcp, network)),
        });
        services.push(Service {
            protocol: Protocol::Ssl,
            addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), default_port(Protocol::Ssl, network)),
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
    Ok((services, admin, http))
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
    // Parse errors never quote the URL: it may hold a password.
    let urls = daemon_url
        .map(|list| list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, u)| parse_daemon_url(u).map_err(|e| invalid("DAEMON_URL", format!("URL {}: {e}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    let url_addr = |u: &DaemonUrl| format!("{}:{}", u.host, u.port.unwrap_or(network.default_rpc_port()));
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
        (Some(addr), _) => {
            if !addr.contains(':') {
                return Err(invalid("--daemon-rpc-addr", format!("{addr:?} is not host:port")));
            }
            addr.clone()
        }
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
    Ok(DaemonConfig { network, rpc_addr, auth, fallbacks, timeout: Duration::from_secs(60) })
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

    /// A value for each ElectrumX setting that differs from the default, and what must come out.
    fn sample(name: &str) -> &'static str {
        match name {
            "DAEMON_URL" => "http://u:p@10.1.2.3:1234",
            "DB_DIRECTORY" => "/elsewhere",
            "NET" => "signet",
            "COIN" => "Litecoin",
            "SERVICES" => "tcp://:7001",
            "REPORT_SERVICES" => "ssl://e.example:50002",
            "SSL_CERTFILE" | "SSL_KEYFILE" => "/etc/cert.pem",
            "BANNER_FILE" => "/etc/banner",
            "DONATION_ADDRESS" => "bc1qdonate",
            "MAX_SESSIONS" => "7",
            "MAX_SEND" => "400000",
            "MAX_RECV" => "200000",
            "REQUEST_TIMEOUT" => "9",
            "SESSION_TIMEOUT" => "11",
            "LOG_LEVEL" => "debug",
            "CACHE_MB" => "77",
            "COST_SOFT_LIMIT" => "50",
            "COST_HARD_LIMIT" => "20000",
            other => panic!("no sample for {other}"),
        }
    }

    #[test]
    fn every_electrumx_setting_is_read() {
        let base = format!("{:?}", Config::load(&parse(&[]), &env(&[])).unwrap());
        for (name, what) in ELECTRUMX_VARS {
            let ElectrumxVar::Setting(_) = what else { continue };
            let mut vars = vec![(*name, sample(name))];
            // The certificate needs its key, and the reverse.
            if name.starts_with("SSL_") {
                vars = vec![("SSL_CERTFILE", "/etc/cert.pem"), ("SSL_KEYFILE", "/etc/key.pem")];
            }
            match Config::load(&parse(&[]), &env(&vars)) {
                Ok(c) => assert_ne!(format!("{c:?}"), base, "{name} changed nothing"),
                // A coin other than Bitcoin is refused: read, and refused by name.
                Err(e) => assert!(*name == "COIN" && e.to_string().starts_with("COIN:"), "{name}: {e}"),
            }
        }
        // And each one goes where the table says.
        let c = Config::load(
            &parse(&[]),
            &env(&[
                ("MAX_SESSIONS", "7"),
                ("REQUEST_TIMEOUT", "9"),
                ("SESSION_TIMEOUT", "11"),
                ("CACHE_MB", "77"),
                ("LOG_LEVEL", "WARNING"),
                ("DB_DIRECTORY", "/elsewhere"),
                ("DONATION_ADDRESS", "bc1qdonate"),
                ("MAX_SEND", "400000"),
                ("MAX_RECV", "200000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.max_sessions, 7);
        assert_eq!(c.limits.request_timeout, Duration::from_secs(9));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(11));
        assert_eq!(c.limits.max_recv, 200_000);
        assert_eq!(c.max_send, 400_000);
        assert_eq!(c.cache_mb, 77);
        assert_eq!(c.log, "warn");
        assert_eq!(c.db_dir, Path::new("/elsewhere"));
        assert_eq!(c.donation_address, "bc1qdonate");
    }

    #[test]
    fn ignored_and_obsolete_electrumx_variables() {
        let c = Config::load(
            &parse(&[]),
            &env(&[("DB_ENGINE", "rocksdb"), ("ALLOW_ROOT", "1"), ("PEER_DISCOVERY", "self"), ("REQUEST_SLEEP", "0")]),
        )
        .unwrap();
        for name in ["DB_ENGINE", "ALLOW_ROOT", "PEER_DISCOVERY", "REQUEST_SLEEP"] {
            assert!(c.notices.iter().any(|n| n.starts_with(&format!("{name} is ignored"))), "{name}: {:?}", c.notices);
        }
        let e = Config::load(&parse(&[]), &env(&[("PEER_DISCOVERY", "sometimes")])).unwrap_err().to_string();
        assert!(e.starts_with("PEER_DISCOVERY:"), "{e}");
        let e = Config::load(&parse(&[]), &env(&[("COST_HARD_LIMIT", "lots")])).unwrap_err().to_string();
        assert!(e.starts_with("COST_HARD_LIMIT:"), "{e}");
        let e = Config::load(&parse(&[]), &env(&[("COST_HARD_LIMIT", "500")])).unwrap_err().to_string();
        assert!(e.starts_with("--cost-hard-limit:"), "below the default soft limit: {e}");
        let c = Config::load(&parse(&[]), &env(&[("COST_SOFT_LIMIT", "5"), ("COST_HARD_LIMIT", "50")])).unwrap();
        assert_eq!(c.limits.cost, crate::cost::Thresholds { soft: 5.0, hard: 50.0 });
        let e = Config::load(&parse(&[]), &env(&[("TCP_PORT", "50001")])).unwrap_err().to_string();
        assert!(e.starts_with("TCP_PORT:") && e.contains("SERVICES"), "{e}");
        let c = Config::load(&parse(&[]), &env(&[("FERRUM_NETWROK", "regtest")])).unwrap();
        assert!(c.notices.iter().any(|n| n.contains("FERRUM_NETWROK")), "{:?}", c.notices);
        assert_eq!(c.network, Network::Mainnet);
    }

    #[test]
    fn several_daemon_urls_fail_over_and_stay_secret() {
        let c = Config::load(
            &parse(&[]),
            &env(&[("DAEMON_URL", "http://a:pw1@node1:8332/, b:pw2@node2, node3:18332"), ("NET", "mainnet")]),
        )
        .unwrap();
        assert_eq!(c.daemon.rpc_addr, "node1:8332");
        let fallbacks: Vec<&str> = c.daemon.fallbacks.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(fallbacks, ["node2:8332", "node3:18332"]);
        assert!(
            matches!(&c.daemon.fallbacks[0].1, Auth::UserPass { user, password } if user == "b" && password == "pw2")
        );
        assert!(matches!(&c.daemon.fallbacks[1].1, Auth::Cookie(_)));
        let shown = format!("{c:?}");
        assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
        let e = Config::load(&parse(&[]), &env(&[("DAEMON_URL", "http://u:hunter2@host:notaport")]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("DAEMON_URL:") && !e.contains("hunter2"), "{e}");
        let c = Config::load(&parse(&["--daemon-user", "alice"]), &env(&[("FERRUM_DAEMON_PASSWORD", "correct horse")]))
            .unwrap();
        assert!(!format!("{c:?}").contains("correct horse"));
    }

    #[test]
    fn admin_and_http_listeners() {
        let c = Config::load(&parse(&[]), &env(&[])).unwrap();
        assert_eq!(c.admin_rpc.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:8000"));
        assert_eq!(c.http.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.1:50080"]);
        // With services given, only what is asked for.
        let c = Config::load(&parse(&["--tcp", ":1"]), &env(&[])).unwrap();
        assert!(c.admin_rpc.is_none() && c.http.is_empty());
        let c = Config::load(
            &parse(&["--http", "127.0.0.1:9"]),
            &env(&[("SERVICES", "tcp://:50001,rpc://0.0.0.0:8000,http://:8080")]),
        )
        .unwrap();
        assert_eq!(c.admin_rpc.map(|a| a.to_string()).as_deref(), Some("0.0.0.0:8000"));
        let http: Vec<String> = c.http.iter().map(ToString::to_string).collect();
        assert_eq!(http, ["127.0.0.1:9", "0.0.0.0:8080"]);
        let c = Config::load(&parse(&["--rpc", ":8123", "--tcp", ":1"]), &env(&[])).unwrap();
        assert_eq!(c.admin_rpc.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:8123"));
        let e = Config::load(&parse(&["--rpc", ":8123"]), &env(&[("SERVICES", "rpc://")])).unwrap_err().to_string();
        assert!(e.contains("more than one admin"), "{e}");
        let e = Config::load(&parse(&["--http", ":1", "--tcp", ":1"]), &env(&[])).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn session_limits() {
        let c = Config::load(&parse(&[]), &env(&[])).unwrap();
        assert_eq!(c.limits.max_sessions_per_ip, 50);
        assert!(c.limits.exempt.iter().any(|s| s.contains("127.0.0.1".parse().unwrap())));
        let c = Config::load(
            &parse(&["--session-limit-exempt", "10.0.0.0/8,fd00::/8", "--max-batch", "5", "--max-subs-per-ip", "9"]),
            &env(&[]),
        )
        .unwrap();
        assert!(c.limits.exempt.iter().any(|s| s.contains("10.9.9.9".parse().unwrap())));
        assert!(!c.limits.exempt.iter().any(|s| s.contains("127.0.0.1".parse().unwrap())));
        assert_eq!((c.limits.max_batch, c.limits.max_subs_per_ip), (5, 9));
        let c = Config::load(&parse(&["--session-limit-exempt", "none"]), &env(&[])).unwrap();
        assert!(c.limits.exempt.is_empty());
        let e = Config::load(&parse(&["--session-limit-exempt", "10.0.0.0/40"]), &env(&[])).unwrap_err();
        assert!(e.to_string().starts_with("--session-limit-exempt:"), "{e}");
        let e = Config::load(&parse(&["--max-batch", "0"]), &env(&[])).unwrap_err();
        assert!(e.to_string().starts_with("--max-batch:"), "{e}");
    }

    #[test]
    fn log_filters_are_checked() {
        assert_eq!(check_log_filter("INFO").unwrap(), "info");
        assert_eq!(check_log_filter("warning,ferrum=debug").unwrap(), "warn,ferrum=debug");
        assert!(check_log_filter("loud").is_err());
        assert!(check_log_filter("ferrum=loud").is_err());
        let e = Config::load(&parse(&["--log", "verbose"]), &env(&[])).unwrap_err().to_string();
        assert!(e.starts_with("--log:"), "{e}");
        let e = Config::load(&parse(&["--request-timeout", "0"]), &env(&[])).unwrap_err().to_string();
        assert!(e.starts_with("--request-timeout:"), "{e}");
    }

    #[test]
    fn config_file_in_the_data_directory_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ferrum.toml"), "network = \"signet\"\nhttp = [\"127.0.0.1:7\"]\n").unwrap();
        let c = Config::load(&parse(&["--db-dir", dir.path().to_str().unwrap()]), &env(&[])).unwrap();
        assert_eq!(c.network, Network::Signet);
        assert_eq!(c.http[0].to_string(), "127.0.0.1:7");
        assert!(c.notices.iter().any(|n| n.contains("ferrum.toml")));
    }

    #[test]
    fn the_configuration_reference_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        let current = reference();
        assert!(
            written == current,
            "docs/configuration.md is out of date: run `cargo run -p ferrum -- config-reference > docs/configuration.md`"
        );
        for (name, _) in ELECTRUMX_VARS {
            assert!(current.contains(&format!("`{name}`")), "{name} is not documented");
        }
        assert!(current.contains("### `--request-timeout"));
    }
}
