//! Peer discovery between Ferrum servers and ElectrumX 2.0 on loopback. Each server is known by
//! an onion name, which a SOCKS5 proxy started by the test (standing in for Tor) maps to its
//! loopback ports, so every server reaches the others as it would reach onion peers: through
//! `TOR_PROXY_HOST`/`TOR_PROXY_PORT`. (Clearnet peers must be public addresses, which a test on
//! loopback does not have; the onion path is the whole of discovery but the DNS check of
//! `server.add_peer`, which is checked here for its refusal.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::client::electrum::Client;
use testkit::process::ferrum::{admin_rpc, test_node_args};
use testkit::process::socks::Socks5Proxy;
use testkit::{free_port, ElectrumX, Ferrum, Node, NodeOptions};

use common::ferrum_exe;

/// A Ferrum server announcing itself as `name` (an onion host), with peer discovery on
/// through the proxy, starting from `seeds`.
struct Server {
    name: &'static str,
    ferrum: Ferrum,
    tcp: SocketAddr,
    ssl: SocketAddr,
    admin: u16,
    _db: tempfile::TempDir,
}

impl Server {
    fn start(name: &'static str, node: &Node, proxy: &Socks5Proxy, seeds: &[String]) -> Server {
        let db = tempfile::tempdir().unwrap();
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (tcp, ssl, admin) = (loopback(free_port()), loopback(free_port()), free_port());
        let mut args = test_node_args(node, db.path());
        let report = format!("tcp://{name}:{},ssl://{name}:{}", tcp.port(), ssl.port());
        args.extend(
            [
                "--tcp",
                &tcp.to_string(),
                "--ssl",
                &ssl.to_string(),
                "--rpc",
                &format!("127.0.0.1:{admin}"),
                "--report-services",
                &report,
                "--tor-proxy-host",
                "127.0.0.1",
                "--tor-proxy-port",
                &proxy.addr().port().to_string(),
                "--peer-seeds",
                &seeds.join(","),
            ]
            .map(String::from),
        );
        // ElectrumX's variable, as an operator coming from it sets it.
        let ferrum = Ferrum::start_with_env(ferrum_exe(), &args, &[("PEER_DISCOVERY", "on")], db.path()).unwrap();
        testkit::client::electrum::wait_for_height(&tcp.to_string(), node.height().unwrap(), Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\n{}", ferrum.log_text()));
        Server { name, ferrum, tcp, ssl, admin, _db: db }
    }

    /// Its entry as peers announce it.
    fn real_name(&self) -> String {
        format!("{} s{} t{}", self.name, self.ssl.port(), self.tcp.port())
    }

    fn peers(&self) -> Value {
        Client::connect(&self.tcp.to_string()).unwrap().call("server.peers.subscribe", json!([])).unwrap()
    }

    /// `ferrum rpc peers`: each peer's host and status.
    fn table(&self) -> Vec<(String, String)> {
        let rows = admin_rpc(ferrum_exe(), self.admin, "peers", &[]).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["host"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string()))
            .collect()
    }
}

/// The entry for `host` in a `server.peers.subscribe` answer.
fn entry<'a>(peers: &'a Value, host: &str) -> Option<&'a Value> {
    peers.as_array()?.iter().find(|p| p[1] == json!(host))
}

/// Waits until `list()` has an entry for `host`, and returns it.
fn wait_listed(what: &str, host: &str, mut list: impl FnMut() -> Value) -> Value {
    testkit::wait_for(&format!("{what} to list {host}"), Duration::from_secs(120), || {
        let peers = list();
        entry(&peers, host).cloned()
    })
    .unwrap()
}

#[test]
fn ferrum_and_electrumx_discover_and_verify_each_other_through_a_tor_proxy() {
    let options =
        NodeOptions { rest: true, txindex: true, extra_args: vec!["-txospenderindex=1".into()], core29: false };
    let node = Node::start(options).unwrap();
    node.mine(30).unwrap();
    // Another chain: same genesis and height, its own blocks (mined to another address).
    let other_chain = Node::start(NodeOptions::rest()).unwrap();
    let elsewhere = testkit::Wallet::new(99).receiver(testkit::Kind::P2wpkh);
    other_chain.mine_to(30, &elsewhere.address(bitcoin::Network::Regtest).unwrap()).unwrap();
    assert_ne!(other_chain.block_hash(20).unwrap(), node.block_hash(20).unwrap());
    let proxy = Socks5Proxy::start(&["ferrum-a.onion", "ferrum-b.onion", "ferrum-c.onion", "electrumx.onion"]).unwrap();
    let proxy_port = proxy.addr().port().to_string();
    let electrumx = ElectrumX::start_reporting(
        &node,
        Some("electrumx.onion"),
        &[
            ("PEER_DISCOVERY", "on"),
            ("TOR_PROXY_HOST", "127.0.0.1"),
            ("TOR_PROXY_PORT", &proxy_port),
            // With no blacklist to fetch, ElectrumX 2.0's peer tasks end once the proxy is
            // found, and later server.add_peer calls fail ("task group terminated"); fetching
            // one (mainnet has electrum.org's) keeps them running. Nothing listens here.
            ("BLACKLIST_URL", "http://127.0.0.1:9/blacklist.json"),
        ],
    )
    .unwrap();
    electrumx.wait_synced(&node, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{e:#}"));
    let (e_tcp, e_ssl) = electrumx.ports();
    let e_name = format!("electrumx.onion s{e_ssl} t{e_tcp}");

    // C follows another chain (same genesis, other blocks).
    let c = Server::start("ferrum-c.onion", &other_chain, &proxy, &[]);
    // A starts from ElectrumX; B from A, and from C.
    let a = Server::start("ferrum-a.onion", &node, &proxy, &[e_name]);
    let b = Server::start("ferrum-b.onion", &node, &proxy, &[a.real_name(), c.real_name()]);

    // A verified ElectrumX and told it of itself; ElectrumX took A's server.add_peer, verified
    // A through the proxy in turn, and now announces it.
    let electrumx_peers =
        || Client::connect(&electrumx.tcp_addr()).unwrap().call("server.peers.subscribe", json!([])).unwrap();
    let a_at_electrumx = testkit::wait_for("ElectrumX to list ferrum-a.onion", Duration::from_secs(120), || {
        entry(&electrumx_peers(), "ferrum-a.onion").cloned()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", electrumx.log_tail(60)));
    assert_eq!(
        a_at_electrumx,
        json!([
            "ferrum-a.onion",
            "ferrum-a.onion",
            ["v1.7.0", format!("s{}", a.ssl.port()), format!("t{}", a.tcp.port())]
        ])
    );
    let e_at_a = wait_listed("A", "electrumx.onion", || a.peers());
    assert_eq!(
        e_at_a,
        json!(["electrumx.onion", "electrumx.onion", ["v1.7.0", format!("s{e_ssl}"), format!("t{e_tcp}")]])
    );

    // B verified A and registered with it; A verified B. B took ElectrumX from A's list.
    wait_listed("A", "ferrum-b.onion", || a.peers());
    wait_listed("B", "ferrum-a.onion", || b.peers());
    wait_listed("B", "electrumx.onion", || b.peers());
    // Each announces itself too, once it reached its own services through the proxy.
    wait_listed("A", "ferrum-a.onion", || a.peers());

    // C is on another chain: B found it bad and announces it nowhere, nor does anyone else.
    testkit::wait_for("B to find C bad", Duration::from_secs(120), || {
        b.table().contains(&("ferrum-c.onion".to_string(), "bad".to_string())).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", b.table(), b.ferrum.log_text()));
    for (who, peers) in [("A", a.peers()), ("B", b.peers()), ("ElectrumX", electrumx_peers())] {
        assert!(entry(&peers, "ferrum-c.onion").is_none(), "{who} announces C: {peers}");
    }
    assert!(b.ferrum.log_text().contains("another chain"), "B's reason");

    // Every peer was reached through the proxy.
    for name in ["ferrum-a.onion", "ferrum-b.onion", "ferrum-c.onion", "electrumx.onion"] {
        assert!(proxy.connections(name) > 0, "nothing reached {name} through the proxy");
    }

    // server.add_peer is refused for a clearnet host that does not resolve to the caller, and
    // for junk.
    let mut client = Client::connect(&a.tcp.to_string()).unwrap();
    let stranger = json!([{"hosts": {"electrum.example.com": {"tcp_port": 50001}}, "genesis_hash": "00"}]);
    assert_eq!(client.call("server.add_peer", stranger).unwrap(), json!(false));
    assert_eq!(client.call("server.add_peer", json!([{"hosts": "x"}])).unwrap(), json!(false));
    assert!(!a.table().iter().any(|(host, _)| host == "electrum.example.com"));
    drop(c);
}

/// Without `PEER_DISCOVERY` a server knows no peers, takes none, and connects nowhere.
#[test]
fn discovery_is_off_by_default() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(3).unwrap();
    let proxy = Socks5Proxy::start(&["ferrum-a.onion"]).unwrap();
    let served = testkit::process::served::Served::start(
        ferrum_exe(),
        &node,
        &[
            "--report-services",
            "tcp://ferrum-a.onion:50001",
            "--peer-seeds",
            "ferrum-a.onion t",
            "--tor-proxy-host",
            "127.0.0.1",
            "--tor-proxy-port",
            &proxy.addr().port().to_string(),
        ],
    )
    .unwrap();
    let mut c = served.client().unwrap();
    let features = json!([{"hosts": {"ferrum-b.onion": {"tcp_port": 50001}}}]);
    assert_eq!(c.call("server.add_peer", features).unwrap(), json!(false));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.call("server.peers.subscribe", json!([])).unwrap(), json!([]));
    assert_eq!(proxy.connections("ferrum-a.onion"), 0);
}
