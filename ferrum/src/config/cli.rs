//! The command line: the `ferrum` binary's commands, and [`Options`], every setting as one source
//! gives it (flags and their `FERRUM_*` variables through clap, the config file through serde).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::network::Network;
use crate::store::PrevoutMode;

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
    /// query <address|scripthash> [limit], reorg-check [depth], snapshot <dir>, stop.
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
    /// Write a consistent copy of the running server's index (and its self-signed certificate)
    /// into a new directory, from which a replica starts with `--db-dir DIR` and only catches
    /// up. Sent over the admin RPC: DIR is on the server's machine.
    Snapshot {
        /// The directory to create
        dir: std::path::PathBuf,
        /// Port of the admin RPC on 127.0.0.1 [default: the configured --rpc address, else 8000]
        #[arg(short, long)]
        port: Option<u16>,
        /// Print the raw JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Print how a wallet connects: the services' hosts and ports, the TLS certificate's
    /// fingerprint, Electrum's command and config lines and a QR code for Electrum on Android
    /// (the HTTP listener shows the same at /connect).
    Connect {
        /// The host name or address wallets use for listeners on every interface (0.0.0.0, ::);
        /// the reported services (--report-services) name their own
        #[arg(long)]
        host: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    pub(crate) config: Option<PathBuf>,

    /// Bitcoin network: mainnet, testnet, testnet4, signet or regtest [default: mainnet]
    #[arg(long, env = "FERRUM_NETWORK", global = true)]
    pub(crate) network: Option<Network>,

    /// Directory of the index (and of the TLS certificate) [default: ~/.ferrum/<network>]
    #[arg(long, env = "FERRUM_DB_DIR", global = true, value_name = "DIR")]
    pub(crate) db_dir: Option<PathBuf>,

    /// bitcoind's RPC address, host:port, an IPv6 address in brackets [default: 127.0.0.1 and the network's RPC port]
    #[arg(long, env = "FERRUM_DAEMON_RPC_ADDR", global = true, value_name = "HOST:PORT")]
    pub(crate) daemon_rpc_addr: Option<String>,

    /// bitcoind's data directory, where its cookie file is [default: ~/.bitcoin]
    #[arg(long, env = "FERRUM_DAEMON_DIR", global = true, value_name = "DIR")]
    pub(crate) daemon_dir: Option<PathBuf>,

    /// bitcoind's cookie file [default: <daemon-dir>/<network>/.cookie]
    #[arg(long, env = "FERRUM_COOKIE_FILE", global = true, value_name = "FILE")]
    pub(crate) cookie_file: Option<PathBuf>,

    /// RPC user (rpcuser or an rpcauth user); the password comes from FERRUM_DAEMON_PASSWORD or
    /// the config file, never from the command line
    #[arg(long, env = "FERRUM_DAEMON_USER", global = true)]
    pub(crate) daemon_user: Option<String>,

    /// RPC password (environment or config file only)
    #[arg(skip)]
    pub(crate) daemon_password: Option<String>,

    /// bitcoind's P2P address, for instant block announcements, or "none" [default: the RPC
    /// host and the network's P2P port]
    #[arg(long, env = "FERRUM_DAEMON_P2P_ADDR", global = true, value_name = "HOST:PORT")]
    pub(crate) daemon_p2p_addr: Option<String>,

    /// How spent outputs are found while indexing: auto (spenttxouts when the node serves
    /// /rest/spenttxouts, else utxo), spenttxouts, or utxo. Fixed when the index is created
    /// [default: auto]
    #[arg(long, env = "FERRUM_PREVOUT_MODE", global = true, value_parser = prevout_request_parser())]
    #[serde(default, with = "prevout_request_serde")]
    pub(crate) prevout_mode: Option<PrevoutRequest>,

    /// Memory for RocksDB caches and for the outputs of a chunk in utxo mode, in MiB
    /// [default: 1024]
    #[arg(long, env = "FERRUM_CACHE_MB", global = true)]
    pub(crate) cache_mb: Option<usize>,

    /// Delete the index and build it again from the first block
    #[arg(long, global = true)]
    #[serde(skip)]
    pub(crate) reindex: bool,

    /// Rebuild the index automatically when its format is from another Ferrum version, instead
    /// of refusing to start [default: false]
    #[arg(long, env = "FERRUM_REINDEX_ON_FORMAT_CHANGE", global = true)]
    pub(crate) reindex_on_format_change: Option<bool>,

    /// How often to ask bitcoind for a new tip besides P2P announcements, in milliseconds
    /// [default: 1000]
    #[arg(long, env = "FERRUM_POLL_INTERVAL_MS", global = true)]
    pub(crate) poll_interval_ms: Option<u64>,

    /// Commit the index at least every this many blocks during sync (smaller commits, more of
    /// them) [default: no limit, by size only]
    #[arg(long, env = "FERRUM_INDEX_CHUNK_BLOCKS", global = true, hide = true)]
    pub(crate) index_chunk_blocks: Option<u32>,

    /// Electrum over plain TCP: host:port, :port or port; repeatable or comma-separated
    /// [default: 127.0.0.1 and the network's TCP port, when no service is configured]
    #[arg(long, env = "FERRUM_TCP", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub(crate) tcp: Option<Vec<String>>,

    /// Electrum over TLS [default: all interfaces and the network's SSL port, when no service
    /// is configured]
    #[arg(long, env = "FERRUM_SSL", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub(crate) ssl: Option<Vec<String>>,

    /// Electrum over WebSocket
    #[arg(long, env = "FERRUM_WS", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub(crate) ws: Option<Vec<String>>,

    /// Electrum over secure WebSocket
    #[arg(long, env = "FERRUM_WSS", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub(crate) wss: Option<Vec<String>>,

    /// Services in ElectrumX's form, e.g. tcp://:50001,ssl://:50002,wss://:50004 (added to the
    /// --tcp/--ssl/--ws/--wss ones); `+proxy` (ssl+proxy://:50012) makes a listener for a load
    /// balancer, whose connections start with a PROXY protocol header (see --proxy-from)
    #[arg(long, env = "FERRUM_SERVICES", global = true)]
    pub(crate) services: Option<String>,

    /// HTTP listener for the status page (/), its data (/api/status), Prometheus metrics
    /// (/metrics) and a health check (/health); `http://` in --services does the same
    /// [default: 127.0.0.1 and the network's HTTP port, when no service is configured]
    #[arg(long, env = "FERRUM_HTTP", global = true, value_delimiter = ',', value_name = "ADDR")]
    pub(crate) http: Option<Vec<String>>,

    /// Admin JSON-RPC listener for `ferrum rpc` (ElectrumX's `rpc://`); keep it on loopback
    /// [default: 127.0.0.1:8000, when no service is configured]
    #[arg(long, env = "FERRUM_RPC", global = true, value_name = "ADDR")]
    pub(crate) rpc: Option<String>,

    /// Services announced to clients in server.features, e.g. ssl://electrum.example.org:50002
    #[arg(long, env = "FERRUM_REPORT_SERVICES", global = true)]
    pub(crate) report_services: Option<String>,

    /// Peer discovery (ElectrumX's PEER_DISCOVERY): "on" to take part in the server network
    /// (seeds, peers' lists, server.add_peer), "self" to announce only this server's reported
    /// services, "off" [default: off]
    #[arg(long, env = "FERRUM_PEER_DISCOVERY", global = true, value_name = "on|off|self")]
    pub(crate) peer_discovery: Option<String>,

    /// Tell peers of this server with server.add_peer when they do not list it (ElectrumX's
    /// PEER_ANNOUNCE) [default: true]
    #[arg(long, env = "FERRUM_PEER_ANNOUNCE", global = true)]
    pub(crate) peer_announce: Option<bool>,

    /// Peers to start discovery from, comma-separated, each "host s t" with ports after s
    /// (TLS) and t (TCP) when not the network's defaults [default: the network's seed list]
    #[arg(long, env = "FERRUM_PEER_SEEDS", global = true, value_delimiter = ',', value_name = "PEERS")]
    pub(crate) peer_seeds: Option<Vec<String>>,

    /// Reach every peer through the SOCKS5 proxy, not only onion ones (ElectrumX's
    /// FORCE_PROXY) [default: false]
    #[arg(long, env = "FERRUM_FORCE_PROXY", global = true)]
    pub(crate) force_proxy: Option<bool>,

    /// SOCKS5 proxy (Tor) for onion peers (ElectrumX's TOR_PROXY_HOST) [default: localhost]
    #[arg(long, env = "FERRUM_TOR_PROXY_HOST", global = true, value_name = "HOST")]
    pub(crate) tor_proxy_host: Option<String>,

    /// Port of the SOCKS5 proxy (ElectrumX's TOR_PROXY_PORT) [default: 9050, then 9150, then
    /// 1080]
    #[arg(long, env = "FERRUM_TOR_PROXY_PORT", global = true, value_name = "PORT")]
    pub(crate) tor_proxy_port: Option<u16>,

    /// TLS certificate chain (PEM), reloaded when it changes [default: a self-signed one,
    /// generated once and kept in the data directory]
    #[arg(long, env = "FERRUM_SSL_CERTFILE", global = true, value_name = "FILE")]
    pub(crate) ssl_certfile: Option<PathBuf>,

    /// TLS private key (PEM) of --ssl-certfile
    #[arg(long, env = "FERRUM_SSL_KEYFILE", global = true, value_name = "FILE")]
    pub(crate) ssl_keyfile: Option<PathBuf>,

    /// File with the text of server.banner; $SERVER_VERSION, $SERVER_SUBVERSION,
    /// $DAEMON_VERSION, $DAEMON_SUBVERSION and $DONATION_ADDRESS are replaced
    #[arg(long, env = "FERRUM_BANNER_FILE", global = true, value_name = "FILE")]
    pub(crate) banner_file: Option<PathBuf>,

    /// Answer of server.donation_address [default: empty]
    #[arg(long, env = "FERRUM_DONATION_ADDRESS", global = true)]
    pub(crate) donation_address: Option<String>,

    /// Largest answer sent to a client, bytes [default: 8100000]
    #[arg(long, env = "FERRUM_MAX_SEND", global = true)]
    pub(crate) max_send: Option<usize>,

    /// Memory for the answers of busy scripts (100 rows or more) kept between requests and
    /// brought forward block by block, in MiB; 0 turns it off [default: 64]
    #[arg(long, env = "FERRUM_HISTORY_CACHE_MB", global = true)]
    pub(crate) history_cache_mb: Option<usize>,

    /// Largest message accepted from a client, bytes [default: 1000000]
    #[arg(long, env = "FERRUM_MAX_RECV", global = true)]
    pub(crate) max_recv: Option<usize>,

    /// Most client sessions at once [default: 1000]
    #[arg(long, env = "FERRUM_MAX_SESSIONS", global = true)]
    pub(crate) max_sessions: Option<usize>,

    /// Sessions at once from one client address; more are closed as they connect
    /// [default: 50]
    #[arg(long, env = "FERRUM_MAX_SESSIONS_PER_IP", global = true)]
    pub(crate) max_sessions_per_ip: Option<usize>,

    /// Client subnets exempt from the per-address limits, comma-separated, or "none"
    /// [default: 127.0.0.0/8,::1]
    #[arg(long, env = "FERRUM_SESSION_LIMIT_EXEMPT", global = true, value_delimiter = ',', value_name = "SUBNETS")]
    pub(crate) session_limit_exempt: Option<Vec<String>>,

    /// Proxies (HAProxy, ...) whose PROXY protocol header is believed, comma-separated
    /// subnets; needed with the `+proxy` services of --services (tcp+proxy://, ssl+proxy://,
    /// ws+proxy://, wss+proxy://), which take connections from them only
    #[arg(long, env = "FERRUM_PROXY_FROM", global = true, value_delimiter = ',', value_name = "SUBNETS")]
    pub(crate) proxy_from: Option<Vec<String>>,

    /// Script hashes one session may subscribe to [default: 100000]
    #[arg(long, env = "FERRUM_MAX_SUBS_PER_SESSION", global = true)]
    pub(crate) max_subs_per_session: Option<usize>,

    /// Script hashes the sessions of one client address may subscribe to together
    /// [default: 500000]
    #[arg(long, env = "FERRUM_MAX_SUBS_PER_IP", global = true)]
    pub(crate) max_subs_per_ip: Option<usize>,

    /// Script hashes subscribed to over all sessions [default: 5000000]
    #[arg(long, env = "FERRUM_MAX_SUBS", global = true)]
    pub(crate) max_subs: Option<usize>,

    /// Cost a client group (an IPv4 /24, an IPv6 /48) may reach before its requests are slowed;
    /// costs decay to zero in an hour from the hard limit [default: 1000]
    #[arg(long, env = "FERRUM_COST_SOFT_LIMIT", global = true)]
    pub(crate) cost_soft_limit: Option<f64>,

    /// Cost past which a client group's sessions are dropped with error -101 [default: 10000]
    #[arg(long, env = "FERRUM_COST_HARD_LIMIT", global = true)]
    pub(crate) cost_hard_limit: Option<f64>,

    /// Requests in one JSON-RPC batch; a larger batch is refused with one error [default: 1000]
    #[arg(long, env = "FERRUM_MAX_BATCH", global = true)]
    pub(crate) max_batch: Option<usize>,

    /// Seconds without a complete request before a session is closed [default: 600]
    #[arg(long, env = "FERRUM_SESSION_TIMEOUT", global = true)]
    pub(crate) session_timeout: Option<u64>,

    /// Seconds a request may take before it is answered with error -102 (server busy)
    /// [default: 30]
    #[arg(long, env = "FERRUM_REQUEST_TIMEOUT", global = true)]
    pub(crate) request_timeout: Option<u64>,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive list [default: info]
    #[arg(long, env = "FERRUM_LOG", global = true)]
    pub(crate) log: Option<String>,
}

/// `--prevout-mode`: the mode asked for, or `None` for `auto` (spenttxouts when the node serves
/// it, else utxo). An alias, not a type: [`PrevoutMode`] is the one type of the mode, and clap
/// would read a written-out `Option<Option<_>>` field as a flag whose value may be left out.
pub(crate) type PrevoutRequest = Option<PrevoutMode>;

/// What `--prevout-mode` and the file's `prevout_mode` take: `auto`, and each mode's name.
const PREVOUT_NAMES: [&str; 3] = ["auto", "spenttxouts", "utxo"];

/// The request a name of [`PREVOUT_NAMES`] stands for.
fn prevout_request(name: &str) -> Option<PrevoutRequest> {
    match name {
        "auto" => Some(None),
        name => [PrevoutMode::Spenttxouts, PrevoutMode::Utxo].into_iter().find(|m| m.name() == name).map(Some),
    }
}

/// Parses `--prevout-mode` and `FERRUM_PREVOUT_MODE`; `--help` lists the names.
fn prevout_request_parser() -> impl clap::builder::TypedValueParser<Value = PrevoutRequest> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(PREVOUT_NAMES)
        .try_map(|name| prevout_request(&name).ok_or_else(|| format!("{name:?} is not a prevout mode")))
}

/// The file's `prevout_mode`, read as an enum of unit variants, so that a wrong value is reported
/// as any other enum setting's is (`unknown variant ..., expected one of ...`).
mod prevout_request_serde {
    use std::fmt;

    use serde::de::{self, Deserializer, EnumAccess, VariantAccess, Visitor};
    use serde::Serializer;

    use super::{prevout_request, PrevoutRequest, PREVOUT_NAMES};
    use crate::store::PrevoutMode;

    pub(super) fn serialize<S: Serializer>(value: &Option<PrevoutRequest>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            None => s.serialize_none(),
            Some(request) => s.serialize_str(request.map_or("auto", PrevoutMode::name)),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PrevoutRequest>, D::Error> {
        d.deserialize_option(Given)
    }

    /// Given or not (`null` when [`super::Options`] are merged).
    struct Given;

    impl<'de> Visitor<'de> for Given {
        type Value = Option<PrevoutRequest>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("auto, spenttxouts or utxo")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_enum("PrevoutMode", &PREVOUT_NAMES, Name).map(Some)
        }
    }

    /// One of [`PREVOUT_NAMES`].
    struct Name;

    impl<'de> Visitor<'de> for Name {
        type Value = PrevoutRequest;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("auto, spenttxouts or utxo")
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<PrevoutRequest, A::Error> {
            let (name, variant): (String, A::Variant) = data.variant()?;
            let request = prevout_request(&name).ok_or_else(|| de::Error::unknown_variant(&name, &PREVOUT_NAMES))?;
            variant.unit_variant()?;
            Ok(request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{env, parse};
    use crate::config::Config;

    #[test]
    fn prevout_mode_names_are_the_modes_names() {
        for name in PREVOUT_NAMES {
            let request = prevout_request(name).unwrap();
            assert_eq!(request.map_or("auto", PrevoutMode::name), name);
        }
        assert_eq!(prevout_request("Utxo"), None);
    }

    #[test]
    fn prevout_mode_from_every_source() {
        let mode =
            |args: &[&str], vars: &[(&str, &str)]| Config::load(&parse(args), &env(vars)).unwrap().index.prevout_mode;
        assert_eq!(mode(&[], &[]), None);
        assert_eq!(mode(&["--prevout-mode", "utxo"], &[]), Some(PrevoutMode::Utxo));
        assert_eq!(mode(&["--prevout-mode", "spenttxouts"], &[]), Some(PrevoutMode::Spenttxouts));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(&file, "prevout_mode = \"utxo\"\n").unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(mode(&["--config", f], &[]), Some(PrevoutMode::Utxo));
        // `auto` given is given: the file does not fill it.
        assert_eq!(mode(&["--config", f, "--prevout-mode", "auto"], &[]), None);
        std::fs::write(&file, "prevout_mode = \"auto\"\n").unwrap();
        assert_eq!(mode(&["--config", f], &[]), None);
        std::fs::write(&file, "prevout_mode = \"bogus\"\n").unwrap();
        let e = Config::load(&parse(&["--config", f]), &env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown variant `bogus`, expected one of `auto`, `spenttxouts`, `utxo`"), "{e}");
        let e = Cli::try_parse_from(["ferrum", "--prevout-mode", "Auto"]).unwrap_err().to_string();
        assert!(e.contains("[possible values: auto, spenttxouts, utxo]"), "{e}");
    }
}
