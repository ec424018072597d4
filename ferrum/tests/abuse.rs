//! Abusive clients against a running server: each test asserts what the abuser gets, and that
//! a well-behaved client on another connection (from another loopback address, so per-address
//! limits do not touch it) keeps getting answers meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::client::electrum::{connect_when_served, more_files, Client};
use testkit::client::http;
use testkit::process::served::Served;
use testkit::{Node, NodeOptions};

use common::ferrum_exe;

/// The well-behaved client's address: another address, and another /24 (cost group).
const GOOD: [u8; 4] = [127, 0, 1, 2];

/// A node with a few blocks, and Ferrum on it with per-address limits applied to loopback.
fn setup(extra: &[&str]) -> (Node, Served) {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(110).unwrap();
    let mut args = vec!["--session-limit-exempt", "none"];
    args.extend_from_slice(extra);
    let served = Served::start(ferrum_exe(), &node, &args).unwrap();
    (node, served)
}

fn good_client(served: &Served) -> Client {
    let mut c = Client::connect_raw_from(&served.tcp, IpAddr::from(GOOD)).unwrap();
    c.call("server.version", json!(["good", "1.4"])).unwrap();
    c
}

/// The good client is answered, and sees the node's tip (after a new block, once indexed).
fn still_served(good: &mut Client, node: &Node) {
    good.call("server.ping", json!([])).unwrap();
    let height = node.height().unwrap();
    testkit::wait_for("the good client to see the tip", Duration::from_secs(60), || {
        let tip = good.call("blockchain.headers.subscribe", json!([])).unwrap();
        (tip["height"] == json!(height)).then_some(())
    })
    .unwrap();
}

fn error_code(reply: &Value) -> Option<i64> {
    reply.get("error")?.get("code")?.as_i64()
}

#[test]
fn oversized_and_unterminated_lines_and_garbage() {
    let (node, served) = setup(&[]);
    let mut good = good_client(&served);

    // A 2 MB line: refused with an error, the rest of the line dropped, the connection kept.
    let mut abuser = Client::connect_with(&served.tcp, json!("1.4")).unwrap();
    let mut line = vec![b'a'; 2_000_000];
    line.push(b'\n');
    abuser.send_raw(&line).unwrap();
    let reply = abuser.read(Duration::from_secs(60)).unwrap().expect("an answer, not a closed connection");
    assert_eq!(error_code(&reply), Some(-32600), "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("too large"), "{reply}");
    still_served(&mut good, &node);
    assert_eq!(abuser.call("server.ping", json!([])).unwrap(), Value::Null, "the abuser's connection still works");

    // A line without its newline, held open: nobody waits on it.
    let mut holder = Client::connect_with(&served.tcp, json!("1.4")).unwrap();
    holder.send_raw(&vec![b'{'; 300_000]).unwrap();
    still_served(&mut good, &node);
    // Finishing it makes one bad request, answered; then the session goes on.
    holder.send_raw(b"\n").unwrap();
    let reply = holder.read(Duration::from_secs(60)).unwrap().unwrap();
    assert_eq!(error_code(&reply), Some(-32700), "{reply}");
    assert_eq!(holder.call("server.ping", json!([])).unwrap(), Value::Null);

    // Garbage: bytes that are not UTF-8, NULs, a lone bracket.
    let mut garbage = Client::connect_with(&served.tcp, json!("1.4")).unwrap();
    for bad in [&b"\xff\xfe\x00\x01garbage\n"[..], b"]\n", b"{\"id\": 1, \"method\": 7}\n", b"[[[[[[[[[[1]]]]]]]]]]\n"]
    {
        garbage.send_raw(bad).unwrap();
        let reply = garbage.read(Duration::from_secs(60)).unwrap().expect("an error answer");
        let code = error_code(&reply).or_else(|| reply.as_array().and_then(|a| error_code(a.first()?)));
        assert!(matches!(code, Some(-32700 | -32600 | -32601)), "{:?}: {reply}", String::from_utf8_lossy(bad));
    }
    assert_eq!(garbage.call("server.ping", json!([])).unwrap(), Value::Null);
    still_served(&mut good, &node);
}

#[test]
fn requests_before_server_version_and_wrong_param_types() {
    let (node, served) = setup(&[]);
    let mut good = good_client(&served);

    let mut early = Client::connect_raw(&served.tcp).unwrap();
    let reply = early.request("blockchain.headers.subscribe", json!([])).unwrap();
    assert_eq!(error_code(&reply), Some(1), "{reply}");
    assert!(early.closes_within(Duration::from_secs(30)), "ElectrumX closes such a session too");

    // Every method, with parameters of every wrong type.
    let wrong: Vec<Value> = vec![
        json!([{}]),
        json!([[]]),
        json!([true]),
        json!([null]),
        json!([-1]),
        json!([1e300]),
        json!(["zz", "zz", "zz", "zz"]),
        json!([1, 2, 3, 4, 5, 6]),
        json!({"unknown_name": 1}),
        json!("a string"),
        json!(17),
    ];
    let mut client = Client::connect_with(&served.tcp, json!("1.6")).unwrap();
    let mut answered = 0;
    let methods = ferrum::Method::ALL.iter().map(|m| m.name());
    for method in methods.filter(|m| *m != "server.version") {
        for params in &wrong {
            let reply = client.request(method, params.clone()).unwrap_or_else(|e| panic!("{method} {params}: {e:#}"));
            let ok = reply.get("result").is_some_and(|r| !r.is_null() || reply.get("error").is_none());
            let code = error_code(&reply);
            assert!(ok || code.is_some(), "{method} {params}: {reply}");
            if let Some(code) = code {
                assert!(
                    matches!(code, 1 | 2 | -32600 | -32601 | -32602),
                    "{method} {params}: unexpected code {code}: {reply}"
                );
            }
            answered += 1;
        }
        still_served(&mut good, &node);
    }
    assert!(answered > 200);
    assert_eq!(client.call("server.ping", json!([])).unwrap(), Value::Null, "the session survived all of it");
}

#[test]
fn a_huge_batch_is_refused_whole_and_a_large_one_answered() {
    let (node, served) = setup(&[]);
    let mut good = good_client(&served);
    let mut abuser = Client::connect_with(&served.tcp, json!("1.4")).unwrap();
    let batch = |n: usize| {
        let items: Vec<Value> =
            (0..n).map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "server.ping", "params": []})).collect();
        let mut line = serde_json::to_vec(&items).unwrap();
        line.push(b'\n');
        line
    };
    abuser.send_raw(&batch(10_000)).unwrap();
    let reply = abuser.read(Duration::from_secs(60)).unwrap().unwrap();
    assert_eq!(error_code(&reply), Some(-32600), "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("10,000"), "{reply}");
    still_served(&mut good, &node);
    abuser.send_raw(&batch(1000)).unwrap();
    let reply = abuser.read(Duration::from_secs(60)).unwrap().unwrap();
    assert_eq!(reply.as_array().map(Vec::len), Some(1000), "a batch at the limit is answered whole");
    still_served(&mut good, &node);
}

#[test]
fn a_client_that_never_reads_is_dropped() {
    let (node, served) = setup(&[]);
    let mut good = good_client(&served);
    let mut abuser = TcpStream::connect(&served.tcp).unwrap();
    abuser.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut requests = String::new();
    requests.push_str("{\"id\": 0, \"method\": \"server.version\", \"params\": [\"x\", \"1.4\"]}\n");
    requests.push_str("{\"id\": 1, \"method\": \"blockchain.headers.subscribe\", \"params\": []}\n");
    // Large answers (110 headers each) it never reads, then more than the outbound queue holds.
    for i in 0..3000 {
        requests.push_str(&format!(
            "{{\"id\": {}, \"method\": \"blockchain.block.headers\", \"params\": [0, 2016]}}\n",
            i + 2
        ));
    }
    // The server may close the connection before it has read everything.
    let _ = abuser.write_all(requests.as_bytes());
    // Its subscription fires while it does not read.
    node.mine(2).unwrap();
    still_served(&mut good, &node);
    // Reading now finds the answers sent before the server gave up, then the end.
    abuser.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let closed = loop {
        match abuser.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "the server kept a client that does not read ({total} bytes were waiting)");
    let full = 3000 * 110 * 160;
    assert!(total < full, "all {total} bytes were queued for a client that does not read");
    testkit::wait_for("the drop to be logged", Duration::from_secs(30), || {
        let log = served.ferrum.log_text();
        (log.contains("too slow") || log.contains("did not read")).then_some(())
    })
    .unwrap();
    still_served(&mut good, &node);
}

#[test]
fn a_thousand_connections_from_one_address() {
    more_files();
    let (node, served) = setup(&["--max-sessions-per-ip", "20"]);
    let mut good = good_client(&served);
    // The sessions that waited for the sync are gone: only the good client is left.
    testkit::wait_for("the sync waiters to leave", Duration::from_secs(30), || {
        ferrum_status(&served).contains("ferrum_sessions{protocol=\"tcp\"} 1\n").then_some(())
    })
    .unwrap();
    let flood: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(&served.tcp).unwrap()).collect();
    still_served(&mut good, &node);
    // At most 20 are kept; the others are closed at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open = Vec::new();
    let mut closed = 0;
    for mut s in flood {
        s.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(200))))
            .unwrap();
        s.write_all(b"{\"id\": 1, \"method\": \"server.version\", \"params\": [\"f\", \"1.4\"]}\n").ok();
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Ok(_) => open.push(s),
            Err(e) => panic!("neither served nor closed: {e}"),
        }
    }
    assert_eq!(open.len(), 20, "{closed} closed");
    assert_eq!(closed, 980);
    still_served(&mut good, &node);
    let info = ferrum_status(&served);
    assert!(info.contains("ferrum_sessions_refused_total 980"), "{info}");
    // Below the limit again, the address is served.
    drop(open);
    let mut again = connect_when_served(&served.tcp, "1.4").unwrap();
    assert_eq!(again.call("server.ping", json!([])).unwrap(), Value::Null);
}

/// The Prometheus text of the server's metrics.
fn ferrum_status(served: &Served) -> String {
    http::request(served.http.as_deref().expect("started with --http"), "GET", "/metrics").unwrap().2
}

#[test]
fn subscriptions_are_limited_per_address() {
    let (node, served) = setup(&["--max-subs-per-ip", "5", "--max-subs", "12"]);
    let mut good = good_client(&served);
    let sh = |i: u8| hex::encode([i; 32]);
    let mut a = Client::connect_with(&served.tcp, json!("1.6")).unwrap();
    let mut b = Client::connect_with(&served.tcp, json!("1.6")).unwrap();
    for i in 0..3 {
        a.call("blockchain.scripthash.subscribe", json!([sh(i)])).unwrap();
    }
    for i in 3..5 {
        b.call("blockchain.scripthash.subscribe", json!([sh(i)])).unwrap();
    }
    let reply = b.request("blockchain.scripthash.subscribe", json!([sh(5)])).unwrap();
    assert_eq!(error_code(&reply), Some(-101), "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("per client address"), "{reply}");
    // Subscribing again to the same one costs nothing; unsubscribing gives one back.
    b.call("blockchain.scripthash.subscribe", json!([sh(3)])).unwrap();
    assert_eq!(b.call("blockchain.scripthash.unsubscribe", json!([sh(3)])).unwrap(), json!(true));
    b.call("blockchain.scripthash.subscribe", json!([sh(5)])).unwrap();
    // Another address has its own budget.
    for i in 10..15 {
        good.call("blockchain.scripthash.subscribe", json!([sh(i)])).unwrap();
    }
    // And the server its total: 5 + 5 + 2 = 12, outpoints (1.7) counted with scripts.
    let mut third = Client::connect_raw_from(&served.tcp, IpAddr::from([127, 0, 2, 3])).unwrap();
    third.call("server.version", json!(["third", "1.7"])).unwrap();
    third.call("blockchain.scriptpubkey.subscribe", json!(["51"])).unwrap();
    third.call("blockchain.outpoint.subscribe", json!([sh(20), 0])).unwrap();
    let reply = third.request("blockchain.outpoint.subscribe", json!([sh(20), 1])).unwrap();
    assert_eq!(error_code(&reply), Some(-101), "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("on this server"), "{reply}");
    let reply = third.request("blockchain.scriptpubkey.subscribe", json!(["52"])).unwrap();
    assert_eq!(error_code(&reply), Some(-101), "{reply}");
    assert_eq!(third.call("blockchain.outpoint.unsubscribe", json!([sh(20), 0])).unwrap(), json!(true));
    third.call("blockchain.outpoint.subscribe", json!([sh(20), 1])).unwrap();
    drop(third);
    // A session that ends gives all of its back.
    drop(a);
    testkit::wait_for("the closed session's subscriptions to be given back", Duration::from_secs(10), || {
        let reply = b.request("blockchain.scripthash.subscribe", json!([sh(6)])).unwrap();
        error_code(&reply).is_none().then_some(())
    })
    .unwrap();
    still_served(&mut good, &node);
}

#[test]
fn a_costly_group_is_slowed_then_dropped_and_stays_dropped() {
    let (node, served) = setup(&["--cost-soft-limit", "3", "--cost-hard-limit", "12"]);
    let mut good = good_client(&served);
    let coinbase = node.block(&node.block_hash(5).unwrap()).unwrap().txdata[0].compute_txid().to_string();
    // Each of these costs a node call: the group goes past its soft limit, then its hard one.
    let mut abuser = Client::connect_with(&served.tcp, json!("1.4")).unwrap();
    let mut dropped_after = None;
    for n in 1..=60 {
        let reply = abuser.request("blockchain.transaction.get", json!([coinbase])).unwrap();
        if error_code(&reply) == Some(-101) {
            assert_eq!(reply["error"]["message"], json!("excessive resource usage"));
            dropped_after = Some(n);
            break;
        }
        assert!(reply["error"].is_null(), "{reply}");
    }
    let n = dropped_after.expect("never dropped");
    assert!(n > 3, "dropped after {n} requests, before the soft limit could slow it");
    assert!(abuser.closes_within(Duration::from_secs(30)), "the session goes on past the hard limit");
    // The budget outlives the session: a new one from the same group is refused at once.
    let mut again = Client::connect_raw(&served.tcp).unwrap();
    let reply = again.request("server.version", json!(["again", "1.4"])).unwrap();
    assert_eq!(error_code(&reply), Some(-101), "{reply}");
    still_served(&mut good, &node);
    let metrics = ferrum_status(&served);
    let value = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse::<f64>().ok()).unwrap()
    };
    assert!(value("ferrum_requests_throttled_total") >= 1.0, "{metrics}");
    assert_eq!(value("ferrum_sessions_cost_dropped_total"), 2.0);
    let log = served.ferrum.log_text();
    assert_eq!(log.matches("over the cost hard limit").count(), 1, "logged once per group");
}

#[test]
fn the_session_cap_refuses_then_resumes() {
    let (_node, served) = setup(&["--max-sessions", "5"]);
    // The sessions that waited for the sync are gone first.
    testkit::wait_for("the sync waiters to leave", Duration::from_secs(30), || {
        ferrum_status(&served).contains("ferrum_sessions{protocol=\"tcp\"} 0\n").then_some(())
    })
    .unwrap();
    let mut kept: Vec<Client> = (0..5).map(|_| Client::connect_with(&served.tcp, json!("1.4")).unwrap()).collect();
    let mut extra = Client::connect_raw(&served.tcp).unwrap();
    assert!(extra.closes_within(Duration::from_secs(30)), "a sixth session was kept");
    for c in &mut kept {
        assert_eq!(c.call("server.ping", json!([])).unwrap(), Value::Null);
    }
    drop(kept.pop());
    let mut served_again = connect_when_served(&served.tcp, "1.4").unwrap();
    assert_eq!(served_again.call("server.ping", json!([])).unwrap(), Value::Null);
}
