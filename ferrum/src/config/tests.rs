//! `Config::load` as an operator meets it: every source, the defaults, and the errors.

use std::collections::HashMap;
use std::path::Path;

use clap::Parser;

use super::*;
use crate::daemon::Auth;

pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(super) fn parse(args: &[&str]) -> Options {
    let mut full = vec!["ferrum"];
    full.extend_from_slice(args);
    Cli::try_parse_from(full).unwrap().options
}

#[test]
fn defaults_follow_the_network() {
    let c = Config::load(&parse(&["--network", "regtest", "--daemon-dir", "/d"]), &env(&[])).unwrap();
    assert_eq!(c.daemon.rpc.rpc_addr, "127.0.0.1:18443");
    assert!(matches!(&c.daemon.rpc.auth, Auth::Cookie(p) if p == Path::new("/d/regtest/.cookie")));
    let c = Config::load(&parse(&["--daemon-dir", "/d"]), &env(&[])).unwrap();
    assert_eq!(c.network, Network::Mainnet);
    assert!(matches!(&c.daemon.rpc.auth, Auth::Cookie(p) if p == Path::new("/d/.cookie")));
    // The index's own defaults (what the benchmark and the tests use) are the server's, and
    // are `--cache-mb`'s default shared as the server shares it.
    assert_eq!(c.index.cache_mb, crate::index::DEFAULT_CACHE_MB);
    assert_eq!(c.index.store.cache_mb, crate::store::StoreConfig::default().cache_mb);
    assert_eq!(c.index.indexer.utxo_cache_bytes, crate::index::IndexConfig::default().utxo_cache_bytes);
    assert_eq!(c.index.indexer.chunk_bytes, crate::index::IndexConfig::default().chunk_bytes);
}

#[test]
fn daemon_url_gives_address_and_credentials() {
    let c =
        Config::load(&parse(&[]), &env(&[("DAEMON_URL", "http://alice:s3cret@bitcoind:43782/"), ("NET", "mainnet")]))
            .unwrap();
    assert_eq!(c.daemon.rpc.rpc_addr, "bitcoind:43782");
    assert!(matches!(&c.daemon.rpc.auth, Auth::UserPass { user, password } if user == "alice" && password == "s3cret"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    // IPv6: in brackets, and the node's P2P address follows its host.
    let c = Config::load(&parse(&[]), &env(&[("DAEMON_URL", "http://a:b@[fd00::5]:8332")])).unwrap();
    assert_eq!(c.daemon.rpc.rpc_addr, "[fd00::5]:8332");
    assert_eq!(c.daemon.p2p_addr.as_deref(), Some("[fd00::5]:8333"));
    for (flag, addr) in
        [("--daemon-rpc-addr", "fd00::5:8332"), ("--daemon-p2p-addr", "fd00::5"), ("--daemon-rpc-addr", "node")]
    {
        let e = Config::load(&parse(&[flag, addr]), &env(&[])).unwrap_err().to_string();
        assert!(e.starts_with(flag) && e.contains("brackets"), "{e}");
    }
    let e = Config::load(&parse(&[]), &env(&[("DAEMON_URL", "http://a:b@fd00::5:8332")])).unwrap_err().to_string();
    assert!(e.starts_with("DAEMON_URL") && e.contains("brackets"), "{e}");
}

#[test]
fn cli_beats_environment_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.toml");
    std::fs::write(&file, "network = \"signet\"\ndaemon_rpc_addr = \"10.0.0.1:1\"\nlog = \"debug\"\n").unwrap();
    let f = file.to_str().unwrap();
    let c = Config::load(&parse(&["--config", f, "--network", "testnet4"]), &env(&[("NET", "regtest")])).unwrap();
    assert_eq!(c.network, Network::Testnet4);
    assert_eq!(c.daemon.rpc.rpc_addr, "10.0.0.1:1");
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
    assert_eq!(c.server.services.len(), 2, "defaults: local TCP and public TLS");
    assert_eq!(c.server.services[0].addr.to_string(), "127.0.0.1:51001");
    assert_eq!(c.server.services[1].addr.to_string(), "0.0.0.0:51002");
    let c = Config::load(
        &parse(&["--tcp", "127.0.0.1:1,:2", "--wss", "[::1]:3"]),
        &env(&[
            ("SERVICES", "tcp://:50001,ssl://:50002,wss://:50004,rpc://"),
            ("REPORT_SERVICES", "ssl://e.example:50002"),
        ]),
    )
    .unwrap();
    let shown: Vec<String> = c.server.services.iter().map(|s| format!("{}://{}", s.protocol.name(), s.addr)).collect();
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
    assert_eq!(c.monitor.admin_rpc.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:8000"));
    assert_eq!(c.electrum.report_services[0].host, "e.example");
    let e = Config::load(&parse(&[]), &env(&[("SERVICES", "gopher://:70")])).unwrap_err().to_string();
    assert!(e.starts_with("SERVICES:"), "{e}");
    let e = Config::load(&parse(&["--tcp", "example.org:1"]), &env(&[])).unwrap_err().to_string();
    assert!(e.starts_with("--tcp:"), "{e}");
    let e = Config::load(&parse(&["--tcp", "[::1]x"]), &env(&[])).unwrap_err().to_string();
    assert!(e.starts_with("--tcp:") && e.contains("after the host"), "{e}");
    let e = Config::load(&parse(&["--tcp", ":1", "--ssl", ":1"]), &env(&[])).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
    let e = Config::load(&parse(&[]), &env(&[("MAX_SEND", "lots")])).unwrap_err().to_string();
    assert!(e.starts_with("MAX_SEND:"), "{e}");
    let e = Config::load(&parse(&["--ssl-certfile", "/x"]), &env(&[])).unwrap_err().to_string();
    assert!(e.starts_with("--ssl-keyfile"), "{e}");
}

#[test]
fn several_daemon_urls_fail_over_and_stay_secret() {
    let c = Config::load(
        &parse(&[]),
        &env(&[("DAEMON_URL", "http://a:pw1@node1:8332/, b:pw2@node2, node3:18332"), ("NET", "mainnet")]),
    )
    .unwrap();
    assert_eq!(c.daemon.rpc.rpc_addr, "node1:8332");
    let fallbacks: Vec<&str> = c.daemon.rpc.fallbacks.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(fallbacks, ["node2:8332", "node3:18332"]);
    assert!(
        matches!(&c.daemon.rpc.fallbacks[0].1, Auth::UserPass { user, password } if user == "b" && password == "pw2")
    );
    assert!(matches!(&c.daemon.rpc.fallbacks[1].1, Auth::Cookie(_)));
    let shown = format!("{c:?}");
    assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
    let e =
        Config::load(&parse(&[]), &env(&[("DAEMON_URL", "http://u:hunter2@host:notaport")])).unwrap_err().to_string();
    assert!(e.starts_with("DAEMON_URL:") && !e.contains("hunter2"), "{e}");
    let c = Config::load(&parse(&["--daemon-user", "alice"]), &env(&[("FERRUM_DAEMON_PASSWORD", "correct horse")]))
        .unwrap();
    assert!(!format!("{c:?}").contains("correct horse"));
}

#[test]
fn admin_and_http_listeners() {
    let c = Config::load(&parse(&[]), &env(&[])).unwrap();
    assert_eq!(c.monitor.admin_rpc.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:8000"));
    assert_eq!(c.monitor.http.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.1:50080"]);
    // With services given, only what is asked for.
    let c = Config::load(&parse(&["--tcp", ":1"]), &env(&[])).unwrap();
    assert!(c.monitor.admin_rpc.is_none() && c.monitor.http.is_empty());
    let c = Config::load(
        &parse(&["--http", "127.0.0.1:9"]),
        &env(&[("SERVICES", "tcp://:50001,rpc://0.0.0.0:8000,http://:8080")]),
    )
    .unwrap();
    assert_eq!(c.monitor.admin_rpc.map(|a| a.to_string()).as_deref(), Some("0.0.0.0:8000"));
    let http: Vec<String> = c.monitor.http.iter().map(ToString::to_string).collect();
    assert_eq!(http, ["127.0.0.1:9", "0.0.0.0:8080"]);
    let c = Config::load(&parse(&["--rpc", ":8123", "--tcp", ":1"]), &env(&[])).unwrap();
    assert_eq!(c.monitor.admin_rpc.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:8123"));
    let e = Config::load(&parse(&["--rpc", ":8123"]), &env(&[("SERVICES", "rpc://")])).unwrap_err().to_string();
    assert!(e.contains("more than one admin"), "{e}");
    let e = Config::load(&parse(&["--http", ":1", "--tcp", ":1"]), &env(&[])).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
}

#[test]
fn session_limits() {
    let c = Config::load(&parse(&[]), &env(&[])).unwrap();
    assert_eq!(c.server.limits.max_sessions_per_ip, 50);
    assert!(c.server.limits.exempt.iter().any(|s| s.contains("127.0.0.1".parse().unwrap())));
    let c = Config::load(
        &parse(&["--session-limit-exempt", "10.0.0.0/8,fd00::/8", "--max-batch", "5", "--max-subs-per-ip", "9"]),
        &env(&[]),
    )
    .unwrap();
    assert!(c.server.limits.exempt.iter().any(|s| s.contains("10.9.9.9".parse().unwrap())));
    assert!(!c.server.limits.exempt.iter().any(|s| s.contains("127.0.0.1".parse().unwrap())));
    assert_eq!((c.server.limits.max_batch, c.server.limits.max_subs_per_ip), (5, 9));
    let c = Config::load(&parse(&["--session-limit-exempt", "none"]), &env(&[])).unwrap();
    assert!(c.server.limits.exempt.is_empty());
    let e = Config::load(&parse(&["--session-limit-exempt", "10.0.0.0/40"]), &env(&[])).unwrap_err();
    assert!(e.to_string().starts_with("--session-limit-exempt:"), "{e}");
    let e = Config::load(&parse(&["--max-batch", "0"]), &env(&[])).unwrap_err();
    assert!(e.to_string().starts_with("--max-batch:"), "{e}");
}

#[test]
fn listeners_behind_a_proxy() {
    let c = Config::load(
        &parse(&["--proxy-from", "10.1.0.0/16,::ffff:127.0.0.1"]),
        &env(&[("SERVICES", "tcp://:50001,ssl+proxy://127.0.0.1:50012,WSS+PROXY://:50014")]),
    )
    .unwrap();
    let shown: Vec<(String, bool)> =
        c.server.services.iter().map(|s| (format!("{}://{}", s.protocol.name(), s.addr), s.proxied)).collect();
    assert_eq!(
        shown,
        [
            ("tcp://0.0.0.0:50001".to_string(), false),
            ("ssl://127.0.0.1:50012".to_string(), true),
            ("wss://0.0.0.0:50014".to_string(), true)
        ]
    );
    let limits = &c.server.limits;
    assert!(limits.is_proxy("10.1.2.3".parse().unwrap()));
    assert!(limits.is_proxy("127.0.0.1".parse().unwrap()), "an IPv4-mapped subnet matches the IPv4 address");
    assert!(!limits.is_proxy("10.2.0.1".parse().unwrap()));
    assert!(!limits.is_proxy("127.0.0.2".parse().unwrap()));

    let e = Config::load(&parse(&[]), &env(&[("SERVICES", "tcp+proxy://:1")])).unwrap_err().to_string();
    assert!(e.starts_with("--proxy-from: needed with tcp+proxy://0.0.0.0:1"), "{e}");
    let e = Config::load(&parse(&["--proxy-from", "10.0.0.1"]), &env(&[])).unwrap_err().to_string();
    assert!(e.starts_with("--proxy-from: no service takes"), "{e}");
    let e = Config::load(&parse(&["--proxy-from", "haproxy"]), &env(&[("SERVICES", "tcp+proxy://:1")]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--proxy-from:"), "{e}");
    let e = Config::load(&parse(&[]), &env(&[("SERVICES", "rpc+proxy://:1")])).unwrap_err().to_string();
    assert!(e.starts_with("SERVICES:"), "{e}");
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
    assert_eq!(c.monitor.http[0].to_string(), "127.0.0.1:7");
    assert!(c.notices.iter().any(|n| n.contains("ferrum.toml")));
}

#[test]
fn printed_as_one_flat_list() {
    let c = Config::load(&parse(&["--ssl-certfile", "/c", "--ssl-keyfile", "/k"]), &env(&[])).unwrap();
    let shown = format!("{c:?}");
    let fields: Vec<&str> = shown
        .split(['{', ','])
        .filter_map(|part| part.trim().split_once(": "))
        .map(|(name, _)| name)
        .filter(|name| !name.contains(' '))
        .collect();
    let top = [
        "network",
        "db_dir",
        "daemon",
        "p2p_addr",
        "prevout_mode",
        "cache_mb",
        "reindex",
        "reindex_on_format_change",
        "poll_interval",
        "services",
        "admin_rpc",
        "http",
        "report_services",
        "ssl_files",
        "banner_file",
        "donation_address",
        "max_send",
        "history_cache_mb",
        "limits",
        "log",
    ];
    let mut rest = fields.iter();
    for name in top {
        assert!(rest.any(|f| *f == name), "{name} missing or out of order in {shown}");
    }
    assert!(shown.contains("prevout_mode: Auto, cache_mb: 1024,"), "{shown}");
    assert!(shown.contains("ssl_files: Some((\"/c\", \"/k\"))"), "{shown}");
}
