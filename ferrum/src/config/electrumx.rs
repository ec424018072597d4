//! ElectrumX's environment variables: what each one means in Ferrum (read as a setting, ignored
//! with a notice, or refused as obsolete), and the layer that fills the options from them.

use std::path::PathBuf;

use super::cli::{Cli, Options};
use super::parse::invalid;
use super::{ConfigError, Env};
use crate::network::Network;

/// What Ferrum does with one of ElectrumX's environment variables.
#[derive(Debug, Clone, Copy)]
pub(super) enum ElectrumxVar {
    /// Read, with the meaning of the Ferrum setting named here.
    Setting(&'static str),
    /// Accepted and logged as ignored, for the reason given.
    Ignored(&'static str),
    /// Removed from ElectrumX (set, it stops ElectrumX too): a start-up error.
    Obsolete(&'static str),
}

/// Every environment variable of ElectrumX, and what Ferrum does with it. The code below reads
/// the `Setting` ones; the documentation and the start-up notices come from this table.
pub(super) const ELECTRUMX_VARS: &[(&str, ElectrumxVar)] = {
    use ElectrumxVar::{Ignored, Obsolete, Setting};
    const COST: &str = "Ferrum's cost model has fixed units (work measured in rows read, node calls and \
                        bytes sent) and groups (/24 and /48); its limits are --cost-soft-limit and \
                        --cost-hard-limit";
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
        ("PEER_DISCOVERY", Setting("--peer-discovery (off by default in Ferrum, on in ElectrumX)")),
        ("PEER_ANNOUNCE", Setting("--peer-announce (set but empty: off, as in ElectrumX)")),
        ("FORCE_PROXY", Setting("--force-proxy")),
        ("TOR_PROXY_HOST", Setting("--tor-proxy-host")),
        ("TOR_PROXY_PORT", Setting("--tor-proxy-port")),
        ("BLACKLIST_URL", Ignored("no blacklist of peers is fetched")),
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

/// Fills each option that the command line and the `FERRUM_*` variables left unset from
/// ElectrumX's variable of the same meaning. Every variable given is checked, used or not.
/// Returns `DAEMON_URL`, which gives the node's address and credentials together.
pub(super) fn fill_options(opts: &mut Options, env: &dyn Env) -> Result<Option<String>, ConfigError> {
    if let Some(coin) = env.var("COIN") {
        // `BitcoinSegwit` is ElectrumX's pre-1.17 name for the same coin.
        if !matches!(coin.to_ascii_lowercase().as_str(), "bitcoin" | "bitcoinsegwit") {
            return Err(invalid("COIN", format!("{coin:?} is not supported; Ferrum serves Bitcoin only")));
        }
    }
    let network: Option<Network> = match env.var("NET") {
        Some(net) => Some(net.parse().map_err(|e: String| invalid("NET", e))?),
        None => None,
    };
    let cache_mb: Option<usize> = match env.var("CACHE_MB") {
        Some(mb) => Some(mb.trim().parse().map_err(|_| invalid("CACHE_MB", format!("{mb:?} is not a number of MiB")))?),
        None => None,
    };
    fill(&mut opts.network, network);
    fill(&mut opts.db_dir, env.var("DB_DIRECTORY").map(PathBuf::from));
    fill(&mut opts.log, env.var("LOG_LEVEL").map(|l| l.to_ascii_lowercase()));
    fill(&mut opts.cache_mb, cache_mb);
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
    if let Some(v) = env.var("PEER_DISCOVERY") {
        v.parse::<crate::peers::Discovery>().map_err(|e| invalid("PEER_DISCOVERY", e))?;
        fill(&mut opts.peer_discovery, Some(v));
    }
    fill(&mut opts.peer_announce, bool_var(env, "PEER_ANNOUNCE")?);
    fill(&mut opts.force_proxy, bool_var(env, "FORCE_PROXY")?);
    fill(&mut opts.tor_proxy_host, env.var("TOR_PROXY_HOST"));
    fill(&mut opts.tor_proxy_port, number_var(env, "TOR_PROXY_PORT")?);
    Ok(env.var("DAEMON_URL"))
}

fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

fn number_var<T: std::str::FromStr>(env: &dyn Env, name: &str) -> Result<Option<T>, ConfigError> {
    match env.var(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| invalid(name, format!("{v:?} is not a number"))),
    }
}

/// A yes/no variable of ElectrumX's. Set but empty is false, as ElectrumX reads it (its way to
/// turn `PEER_ANNOUNCE` off); `0`, `no`, `false` and `off` are false too (ElectrumX would take
/// any non-empty value for true, which no one writing `no` means).
fn bool_var(env: &dyn Env, name: &str) -> Result<Option<bool>, ConfigError> {
    let Some(v) = env.var(name) else {
        return Ok(env.names().iter().any(|n| n == name).then_some(false));
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "no" | "false" | "off" => Ok(Some(false)),
        "1" | "yes" | "true" | "on" => Ok(Some(true)),
        _ => Err(invalid(name, format!("{v:?} is not a yes/no value"))),
    }
}

/// ElectrumX variables Ferrum ignores (logged), obsolete ones (an error), and `FERRUM_*`
/// variables that are no setting (probably misspelt: logged).
pub(super) fn notices(env: &dyn Env) -> Result<Vec<String>, ConfigError> {
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
        "ALLOW_ROOT" | "ANON_LOGS" => {
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
        | "DAEMON_POLL_INTERVAL_MEMPOOL" => v.parse::<f64>().is_ok_and(|n| n >= 0.0),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(name, format!("{value:?} is not a valid value")))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::tests::{env, parse};
    use crate::config::Config;

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
            "PEER_DISCOVERY" => "on",
            "PEER_ANNOUNCE" => "no",
            "FORCE_PROXY" => "yes",
            "TOR_PROXY_HOST" => "tor.example",
            "TOR_PROXY_PORT" => "9150",
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
        assert_eq!(c.server.limits.max_sessions, 7);
        assert_eq!(c.server.limits.request_timeout, Duration::from_secs(9));
        assert_eq!(c.server.limits.idle_timeout, Duration::from_secs(11));
        assert_eq!(c.server.limits.max_recv, 200_000);
        assert_eq!(c.electrum.max_send, 400_000);
        assert_eq!(c.index.cache_mb, 77);
        // Shared: half to RocksDB, half to a chunk's outputs in utxo mode.
        assert_eq!(c.index.store.cache_mb, 38);
        assert_eq!(c.index.indexer.utxo_cache_bytes, 38 << 20);
        assert_eq!(c.log, "warn");
        assert_eq!(c.db_dir, Path::new("/elsewhere"));
        assert_eq!(c.electrum.donation_address, "bc1qdonate");
    }

    #[test]
    fn ignored_and_obsolete_electrumx_variables() {
        let c = Config::load(
            &parse(&[]),
            &env(&[
                ("DB_ENGINE", "rocksdb"),
                ("ALLOW_ROOT", "1"),
                ("BLACKLIST_URL", "https://x.example"),
                ("REQUEST_SLEEP", "0"),
            ]),
        )
        .unwrap();
        for name in ["DB_ENGINE", "ALLOW_ROOT", "BLACKLIST_URL", "REQUEST_SLEEP"] {
            assert!(c.notices.iter().any(|n| n.starts_with(&format!("{name} is ignored"))), "{name}: {:?}", c.notices);
        }
        let e = Config::load(&parse(&[]), &env(&[("PEER_DISCOVERY", "sometimes")])).unwrap_err().to_string();
        assert!(e.starts_with("PEER_DISCOVERY:"), "{e}");
        let e = Config::load(&parse(&[]), &env(&[("PEER_ANNOUNCE", "perhaps")])).unwrap_err().to_string();
        assert!(e.starts_with("PEER_ANNOUNCE:"), "{e}");
        let c =
            Config::load(&parse(&["--network", "regtest"]), &env(&[("PEER_DISCOVERY", "self"), ("PEER_ANNOUNCE", "")]))
                .unwrap();
        let peers = &c.electrum.peers;
        assert_eq!((peers.discovery, peers.announce, peers.seeds.len()), (crate::peers::Discovery::SelfOnly, false, 0));
        let c = Config::load(&parse(&[]), &env(&[])).unwrap();
        let peers = &c.electrum.peers;
        assert_eq!(
            (peers.discovery, peers.announce, peers.proxy_host.as_str()),
            (crate::peers::Discovery::Off, true, "localhost")
        );
        assert!(peers.seeds.len() > 10, "mainnet's seed list");
        let e = Config::load(&parse(&[]), &env(&[("COST_HARD_LIMIT", "lots")])).unwrap_err().to_string();
        assert!(e.starts_with("COST_HARD_LIMIT:"), "{e}");
        let e = Config::load(&parse(&[]), &env(&[("COST_HARD_LIMIT", "500")])).unwrap_err().to_string();
        assert!(e.starts_with("--cost-hard-limit:"), "below the default soft limit: {e}");
        let c = Config::load(&parse(&[]), &env(&[("COST_SOFT_LIMIT", "5"), ("COST_HARD_LIMIT", "50")])).unwrap();
        assert_eq!(c.server.limits.cost, crate::cost::Thresholds { soft: 5.0, hard: 50.0 });
        let e = Config::load(&parse(&[]), &env(&[("TCP_PORT", "50001")])).unwrap_err().to_string();
        assert!(e.starts_with("TCP_PORT:") && e.contains("SERVICES"), "{e}");
        let c = Config::load(&parse(&[]), &env(&[("FERRUM_NETWROK", "regtest")])).unwrap();
        assert!(c.notices.iter().any(|n| n.contains("FERRUM_NETWROK")), "{:?}", c.notices);
        assert_eq!(c.network, Network::Mainnet);
    }
}
