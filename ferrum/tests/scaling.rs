//! More clients than one machine serves: two Ferrum replicas on one node behind Debian's HAProxy,
//! plain TCP and TLS passed through, the client's address carried by the PROXY protocol (v2, and
//! v1).
//! Sessions spread over both replicas, each replica sees (and limits) the real client address,
//! and when one replica dies its clients (Electrum 4.8.1 among them) reconnect through the same
//! address to the other.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bdk_electrum::electrum_client::{self, ElectrumApi};
use serde_json::{json, Value};
use testkit::client::electrum::{connect_from, Client};
use testkit::process::electrum_wallet::{ElectrumWallet, Release};
use testkit::process::ferrum::{admin_rpc, test_node_args};
use testkit::process::haproxy::{Backend, Frontend, Haproxy};
use testkit::process::openssl::{self_signed, sha256_fingerprint};
use testkit::{free_port, Ferrum, Node, NodeOptions};

use common::ferrum_exe;

/// Sessions one client address may hold on each replica.
const PER_ADDRESS: usize = 2;

/// A replica: Electrum over TCP and TLS for the proxy only, `/health` for its checks, a direct
/// TCP port and the admin RPC for the test, and a banner naming it.
struct Replica {
    name: &'static str,
    ferrum: Ferrum,
    tcp: SocketAddr,
    ssl: SocketAddr,
    admin: u16,
    /// The status page and `/health`.
    http: u16,
    _db: tempfile::TempDir,
}

impl Replica {
    fn start(name: &'static str, node: &Node, cert: &Path, key: &Path) -> Replica {
        let db = tempfile::tempdir().unwrap();
        let banner = db.path().join("banner.txt");
        std::fs::write(&banner, format!("replica {name}")).unwrap();
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (tcp, ssl, direct) = (loopback(free_port()), loopback(free_port()), loopback(free_port()));
        let (admin, http) = (free_port(), free_port());
        let mut args = test_node_args(node, db.path());
        args.extend(
            [
                "--services",
                &format!("tcp+proxy://{tcp},ssl+proxy://{ssl}"),
                "--proxy-from",
                "127.0.0.1",
                "--tcp",
                &direct.to_string(),
                "--rpc",
                &format!("127.0.0.1:{admin}"),
                "--http",
                &format!("127.0.0.1:{http}"),
                "--ssl-certfile",
                cert.to_str().unwrap(),
                "--ssl-keyfile",
                key.to_str().unwrap(),
                "--banner-file",
                banner.to_str().unwrap(),
                "--max-sessions-per-ip",
                &PER_ADDRESS.to_string(),
                // The proxy's own address (its health checks, and this test's direct port) is
                // exempt; the clients come from other loopback addresses and are limited.
                "--session-limit-exempt",
                "127.0.0.1",
            ]
            .map(String::from),
        );
        let ferrum = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
        testkit::client::electrum::wait_for_height(
            &direct.to_string(),
            node.height().unwrap(),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", ferrum.log_text()));
        Replica { name, ferrum, tcp, ssl, admin, http, _db: db }
    }

    /// The live sessions, as `ferrum rpc sessions` lists them.
    fn sessions(&self) -> Vec<Session> {
        let list = admin_rpc(ferrum_exe(), self.admin, "sessions", &[]).unwrap();
        let text = |s: &Value, key: &str| s[key].as_str().unwrap().to_string();
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| Session { peer: text(s, "peer"), protocol: text(s, "protocol"), client: text(s, "client") })
            .collect()
    }

    /// The protocol of the session from `peer`, if there is one.
    fn protocol_of(&self, peer: SocketAddr) -> Option<String> {
        self.sessions().into_iter().find(|s| s.peer == peer.to_string()).map(|s| s.protocol)
    }
}

/// A session as a replica's admin RPC shows it.
struct Session {
    /// The client's address, as the replica sees it.
    peer: String,
    protocol: String,
    /// The client's name, from `server.version`.
    client: String,
}

/// A plain TCP session through the proxy from the loopback address `from`, and the replica
/// whose banner answered; `None` when the replica closed it at once (a limit).
fn session_from(addr: SocketAddr, from: IpAddr) -> Option<(Client, String)> {
    let mut c = Client::connect_raw_from(&addr.to_string(), from).unwrap();
    let hello = b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"server.version\",\"params\":[\"scaling\",\"1.4\"]}\n";
    // A session closed at once may be gone before the request is even sent.
    c.send_raw(hello).ok()?;
    c.read(Duration::from_secs(30)).unwrap()?;
    let banner = c.call("server.banner", json!([])).unwrap();
    Some((c, banner.as_str().unwrap().to_string()))
}

/// A TLS session of `electrum_client`.
type TlsClient = electrum_client::raw_client::RawClient<electrum_client::raw_client::ElectrumSslStream>;

/// A TLS session through the proxy from `from`, the client's own address, and the banner.
fn tls_session_from(addr: SocketAddr, from: IpAddr) -> (TlsClient, SocketAddr, String) {
    let stream = connect_from(addr, from).unwrap();
    let local = stream.local_addr().unwrap();
    let client =
        electrum_client::raw_client::RawClient::new_ssl_from_stream(("localhost", addr.port()), false, stream, None)
            .unwrap();
    client.server_features().unwrap();
    let banner = client.raw_call("server.banner", []).unwrap();
    (client, local, banner.as_str().unwrap().to_string())
}

fn replica_named<'a>(replicas: &'a [Replica], banner: &str) -> &'a Replica {
    replicas.iter().find(|r| banner == format!("replica {}", r.name)).unwrap_or_else(|| panic!("banner {banner:?}"))
}

#[test]
fn replicas_behind_haproxy_see_the_real_clients_and_take_over_for_each_other() {
    let node = Node::start(NodeOptions::default()).unwrap();
    node.mine(10).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path()).unwrap();
    let replicas = [Replica::start("a", &node, &cert, &key), Replica::start("b", &node, &cert, &key)];
    let backends = |addr: fn(&Replica) -> SocketAddr, health: bool| -> Vec<Backend> {
        replicas.iter().map(|r| Backend { addr: addr(r), health_port: health.then_some(r.http) }).collect()
    };
    let haproxy = Haproxy::start(&[
        // Checked by Ferrum's /health: a replica behind its node, or without one, gets no one.
        Frontend { name: "electrum_tcp", backends: backends(|r| r.tcp, true), proxy_version: 2 },
        Frontend { name: "electrum_ssl", backends: backends(|r| r.ssl, true), proxy_version: 2 },
        // Checked by connecting, the check itself sending a PROXY header.
        Frontend { name: "electrum_tcp_v1", backends: backends(|r| r.tcp, false), proxy_version: 1 },
    ])
    .unwrap();
    let (tcp, ssl, tcp_v1) = (haproxy.frontends[0], haproxy.frontends[1], haproxy.frontends[2]);

    // Sessions spread over both replicas, and each replica sees each client's own address
    // and port, not the proxy's.
    let mut clients = Vec::new();
    for from in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        for _ in 0..PER_ADDRESS {
            let (c, banner) = session_from(tcp, IpAddr::from(from)).expect("a session within the limits");
            clients.push((c, banner));
        }
    }
    let on: Vec<&str> = clients.iter().map(|(_, b)| b.as_str()).collect();
    assert!(on.contains(&"replica a") && on.contains(&"replica b"), "sessions did not spread: {on:?}");
    for (c, banner) in &clients {
        let me = c.local_addr().unwrap();
        let seen = replica_named(&replicas, banner).protocol_of(me);
        assert_eq!(seen.as_deref(), Some("tcp"), "{banner} does not see {me}");
    }
    // TLS passes through the proxy untouched: the replicas' certificate, and the real address.
    let mut tls_on = Vec::new();
    for _ in 0..2 {
        let (session, me, banner) = tls_session_from(ssl, IpAddr::from([127, 0, 0, 4]));
        let seen = replica_named(&replicas, &banner).protocol_of(me);
        assert_eq!(seen.as_deref(), Some("ssl"), "{banner} does not see {me}");
        tls_on.push((session, banner));
    }
    assert_ne!(tls_on[0].1, tls_on[1].1, "TLS sessions did not spread");
    // And through a proxy speaking version 1 of the protocol.
    let (c, banner) = session_from(tcp_v1, IpAddr::from([127, 0, 0, 9])).unwrap();
    let me = c.local_addr().unwrap();
    assert_eq!(replica_named(&replicas, &banner).protocol_of(me).as_deref(), Some("tcp"), "{banner}: {me}");
    drop(c);

    // The per-address limit bites on the real address: one address gets PER_ADDRESS sessions
    // on each replica and no more, while another address is still served.
    let limited = IpAddr::from([127, 0, 0, 5]);
    let mut kept = Vec::new();
    let mut refused = 0;
    for _ in 0..3 * PER_ADDRESS {
        match session_from(tcp, limited) {
            Some(s) => kept.push(s),
            None => refused += 1,
        }
    }
    assert_eq!(kept.len(), 2 * PER_ADDRESS, "sessions held by one address over both replicas");
    assert_eq!(refused, PER_ADDRESS);
    assert!(session_from(tcp, IpAddr::from([127, 0, 0, 6])).is_some(), "another address was refused");
    drop(kept);

    // Only the configured proxy may speak for a client: any other address connecting to a
    // proxied listener is closed unread, even with a header; and so is the proxy without one.
    for (from, bytes) in [
        ([127, 0, 0, 7], &b"PROXY TCP4 198.51.100.1 127.0.0.1 5000 50001\r\n"[..]),
        ([127, 0, 0, 7], b"{\"id\":1,\"method\":\"server.version\",\"params\":[]}\n"),
        ([127, 0, 0, 1], b"{\"id\":1,\"method\":\"server.version\",\"params\":[]}\n"),
    ] {
        let mut c = Client::connect_raw_from(&replicas[0].tcp.to_string(), IpAddr::from(from)).unwrap();
        let _ = c.send_raw(bytes);
        assert!(c.closes_within(Duration::from_secs(30)), "{from:?} {:?}", String::from_utf8_lossy(bytes));
    }

    // Electrum 4.8.1 through the proxy over TLS, the certificate pinned, as a wallet user
    // sets it up; the replica it lands on is the one that dies.
    let fingerprint = sha256_fingerprint(&cert).unwrap();
    let wallet = ElectrumWallet::start(
        Release::V4_8_1,
        &format!("127.0.0.1:{}:s", ssl.port()),
        &[("serverfingerprint", json!(fingerprint))],
    )
    .unwrap();
    let at_tip = |height: u32| {
        testkit::wait_for(&format!("Electrum connected at {height}"), Duration::from_secs(90), || {
            let info = wallet.run(&["getinfo"]).ok()?;
            (info["connected"] == json!(true) && info["server_height"] == json!(height)).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", wallet.log_tail(40)))
    };
    at_tip(node.height().unwrap());
    let hosts_wallet = |r: &Replica| r.sessions().iter().any(|s| s.client.starts_with("electrum/"));
    let dead = replicas.iter().position(hosts_wallet).expect("no replica has Electrum's session");
    let live = 1 - dead;
    let (dead_banner, live_banner) =
        (format!("replica {}", replicas[dead].name), format!("replica {}", replicas[live].name));

    // That replica dies: its clients lose their sessions, reconnect through the same address
    // and land on the other, which serves them (and the clients it already had) the next block.
    for (c, _) in clients.iter_mut() {
        c.call("blockchain.headers.subscribe", json!([])).unwrap();
    }
    let mut replicas = replicas;
    replicas[dead].ferrum.kill9();
    let mut moved = 0;
    for (c, banner) in clients.iter_mut() {
        if *banner == dead_banner {
            assert!(c.closes_within(Duration::from_secs(30)), "a session outlived its replica");
            let from = c.local_addr().unwrap().ip();
            let (mut again, now) = session_from(tcp, from).expect("reconnected within the limits");
            assert_eq!(now, live_banner, "reconnected to a dead replica");
            again.call("blockchain.headers.subscribe", json!([])).unwrap();
            (*c, *banner) = (again, now);
            moved += 1;
        }
    }
    assert!(moved > 0, "no client was on {dead_banner}");
    let tip = node.height().unwrap() + 1;
    node.mine(1).unwrap();
    for (c, _) in clients.iter_mut() {
        let header: Value = c.notification("blockchain.headers.subscribe", Duration::from_secs(60)).unwrap();
        assert_eq!(header[0]["height"], json!(tip), "{header}");
    }
    let seen: Vec<String> = replicas[live].sessions().into_iter().map(|s| s.peer).collect();
    for (c, _) in &clients {
        assert!(seen.contains(&c.local_addr().unwrap().to_string()), "{seen:?}");
    }
    // The wallet reconnected on its own, to the live replica, with the certificate it pinned.
    at_tip(tip);
    assert!(hosts_wallet(&replicas[live]), "Electrum is not on the live replica");
    // New clients go to the live replica only.
    for _ in 0..2 {
        let (_session, _, banner) = tls_session_from(ssl, IpAddr::from([127, 0, 0, 8]));
        assert_eq!(banner, live_banner);
    }
    drop(haproxy);
}
