//! Faults while serving: bitcoind killed and restarted under 100 sessions, Ferrum killed -9
//! while serving and indexing new blocks, and a load of 10,000 subscribed sessions notified of
//! one block.

mod common;

use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Amount, ScriptBuf, TxOut, WPubkeyHash};
use serde_json::{json, Value};
use testkit::chain::scenario::{self, ScenarioOptions};
use testkit::client::electrum::{more_files, status_of_history, Client};
use testkit::client::http;
use testkit::process::served::Served;
use testkit::{Node, NodeOptions, TxSpec, Wallet};

use common::{assert_same_rows, clean_index, dump_all, ferrum_exe};

/// A GET: status and body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http::request(addr, "GET", path).unwrap();
    (status, body)
}

fn error_code(e: &anyhow::Error) -> Option<i64> {
    testkit::client::electrum::server_error(e).and_then(|s| s.code())
}

#[test]
fn bitcoind_killed_and_restarted_under_100_sessions() {
    let mut node = Node::start(NodeOptions::rest()).unwrap();
    let mut built = scenario::build(&node, &ScenarioOptions { seed: 71, height: 40 }).unwrap();
    let served = Served::start(ferrum_exe(), &node, &["--poll-interval-ms", "200"]).unwrap();
    let http = served.http.clone().unwrap();
    let scripthashes: Vec<String> = built.wallet.receivers().map(|r| r.scripthash()).collect();
    let mut probe = served.client().unwrap();
    // Session 0 watches a script with a confirmed transaction (the receivers come in no order).
    let (sh0, history, confirmed) = scripthashes
        .iter()
        .find_map(|sh| {
            let history = probe.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
            let confirmed = history.as_array()?.iter().find(|h| h["height"].as_i64().unwrap_or(0) > 0)?.clone();
            Some((sh.clone(), history, confirmed))
        })
        .expect("a script with a confirmed transaction");
    let mut sessions: Vec<(Client, String)> = (0..100)
        .map(|i| {
            let mut c = Client::connect_with(&served.tcp, json!("1.4")).unwrap();
            c.call("blockchain.headers.subscribe", json!([])).unwrap();
            let sh = if i == 0 { sh0.clone() } else { scripthashes[i % scripthashes.len()].clone() };
            c.call("blockchain.scripthash.subscribe", json!([sh])).unwrap();
            (c, sh)
        })
        .collect();
    let txid = confirmed["tx_hash"].as_str().unwrap().to_string();
    let height = confirmed["height"].as_u64().unwrap();
    let merkle = probe.call("blockchain.transaction.get_merkle", json!([txid, height])).unwrap();
    let header = probe.call("blockchain.block.header", json!([5])).unwrap();
    let raw = probe.call("blockchain.transaction.get", json!([txid])).unwrap();

    // A node that has been running a while has its chain on disk: a kill loses no block.
    node.call("gettxoutsetinfo", json!(["none"])).unwrap();
    node.kill();
    testkit::wait_for("the outage to show in /health", Duration::from_secs(60), || {
        let (status, body) = http_get(&http, "/health");
        (status == 503 && body.contains("unreachable")).then_some(())
    })
    .unwrap();
    let (_, metrics) = http_get(&http, "/metrics");
    assert!(metrics.contains("ferrum_node_reachable 0"), "{metrics}");
    // What the index answers alone is still answered, and the same.
    assert_eq!(probe.call("blockchain.scripthash.get_history", json!([sh0])).unwrap(), history);
    assert_eq!(probe.call("blockchain.transaction.get_merkle", json!([txid, height])).unwrap(), merkle);
    assert_eq!(probe.call("blockchain.block.header", json!([5])).unwrap(), header);
    // What needs the node gets daemon error 2.
    let e = probe.call("blockchain.estimatefee", json!([2])).unwrap_err();
    assert_eq!(error_code(&e), Some(2), "{e:#}");
    let e = probe.call("blockchain.transaction.broadcast", json!([raw])).unwrap_err();
    assert_eq!(error_code(&e), Some(2), "{e:#}");
    for (c, _) in &mut sessions {
        assert_eq!(c.call("server.ping", json!([])).unwrap(), Value::Null, "a session was lost in the outage");
    }

    node.start_again().unwrap();
    testkit::wait_for("the node back in /health", Duration::from_secs(60), || {
        (http_get(&http, "/health").0 == 200).then_some(())
    })
    .unwrap();
    // The mempool follows the node again: a payment to session 0's script is notified.
    built.wallet.resync(&node).unwrap();
    let script = built.wallet.receivers().find(|r| r.scripthash() == sh0).unwrap().script_pubkey.clone();
    let paid = built.wallet.pay(&node, &script, Amount::from_sat(70_000)).unwrap();
    let expected = testkit::wait_for("the payment in the history", Duration::from_secs(60), || {
        let h = probe.call("blockchain.scripthash.get_history", json!([sh0])).unwrap();
        h.to_string().contains(&paid.compute_txid().to_string()).then(|| status_of_history(&h).unwrap())
    })
    .unwrap();
    let (first, _) = &mut sessions[0];
    testkit::wait_for("session 0 told of the payment", Duration::from_secs(60), || {
        let n = first.notification("blockchain.scripthash.subscribe", Duration::from_secs(60)).unwrap();
        (n[1] == expected).then_some(())
    })
    .unwrap();
    // And the tip: every session hears of the next block.
    let tip = node.mine(1).unwrap();
    let new_height = node.height().unwrap();
    for (i, (c, _)) in sessions.iter_mut().enumerate() {
        testkit::wait_for("the new tip", Duration::from_secs(60), || {
            let n = c
                .notification("blockchain.headers.subscribe", Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("session {i}: {e:#}"));
            (n[0]["height"] == json!(new_height)).then_some(())
        })
        .unwrap();
    }
    assert_eq!(tip.len(), 1);
}

#[test]
fn kill9_while_serving_and_indexing_new_blocks() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut built = scenario::build(&node, &ScenarioOptions { seed: 72, height: 30 }).unwrap();
    let mut served = Served::start(ferrum_exe(), &node, &["--index-chunk-blocks", "1"]).unwrap();
    let mut rng = testkit::chain::rng::Rng::new(5);
    let target = built.wallet.receiver(testkit::Kind::P2tr);
    for round in 0..6 {
        let mut clients: Vec<Client> = (0..10).map(|_| served.client().unwrap()).collect();
        for c in &mut clients {
            c.call("blockchain.headers.subscribe", json!([])).unwrap();
        }
        built.wallet.pay(&node, &target.script_pubkey, Amount::from_sat(10_000 + round)).unwrap();
        let hashes = node.mine(1 + rng.below(3) as u32).unwrap();
        built.wallet.scan_blocks(&node, &hashes).unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        // Killed while serving these clients, maybe while indexing the new blocks.
        served.restart(&node).unwrap();
        for c in &mut clients {
            assert!(c.closes_within(Duration::from_secs(30)), "a session outlived its server");
        }
        // Clients reconnect and see the tip.
        let mut c = served.client().unwrap();
        let tip = c.call("blockchain.headers.subscribe", json!([])).unwrap();
        assert_eq!(tip["height"], json!(node.height().unwrap()));
    }
    served.ferrum.interrupt().unwrap();
    let clean = clean_index(&node, ferrum::PrevoutMode::Spenttxouts);
    assert_same_rows(&dump_all(&served.db.path().join("index")), &dump_all(&clean.path().join("index")));
}

/// A standard output script of its own for each (session, slot).
fn script(session: usize, slot: usize) -> ScriptBuf {
    let digest = sha256::Hash::hash(format!("load {session} {slot}").as_bytes()).to_byte_array();
    let mut hash = [0u8; 20];
    hash.copy_from_slice(&digest[..20]);
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(hash))
}

#[test]
fn ten_thousand_sessions_and_one_block_touching_a_thousand() {
    const SESSIONS: usize = 10_000;
    const SUBS: usize = 10;
    let files = more_files();
    assert!(files >= SESSIONS as u64 + 1000, "the open-file limit ({files}) is too low for this test");
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut wallet = Wallet::new(73);
    wallet.fund(&node, 3).unwrap();
    let served = Served::start(ferrum_exe(), &node, &["--max-sessions", "11000"]).unwrap();

    let began = Instant::now();
    let mut sessions = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let mut c = Client::connect_raw(&served.tcp).unwrap();
        let mut lines = String::from("{\"id\": 0, \"method\": \"server.version\", \"params\": [\"load\", \"1.4\"]}\n");
        for j in 0..SUBS {
            let sh = testkit::scripthash(&script(i, j));
            lines.push_str(&format!(
                "{{\"id\": {}, \"method\": \"blockchain.scripthash.subscribe\", \"params\": [\"{sh}\"]}}\n",
                j + 1
            ));
        }
        c.send_raw(lines.as_bytes()).unwrap();
        for _ in 0..=SUBS {
            let reply = c.read(Duration::from_secs(120)).unwrap().expect("an answer");
            assert!(reply.get("error").is_none_or(Value::is_null), "session {i}: {reply}");
        }
        sessions.push(c);
    }
    let subscribed = began.elapsed();
    let affected: Vec<usize> = (0..SESSIONS).step_by(SESSIONS / 1000).collect();
    assert_eq!(affected.len(), 1000);
    let outputs =
        affected.iter().map(|&i| TxOut { value: Amount::from_sat(1_000), script_pubkey: script(i, 3) }).collect();
    let tx = wallet.build(&node, &TxSpec::pay(outputs)).unwrap();

    let mined = Instant::now();
    node.mine_block_with(&[tx]).unwrap();
    for &i in &affected {
        let n = sessions[i]
            .notification("blockchain.scripthash.subscribe", Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("session {i}: {e:#}"));
        assert_eq!(n[0], json!(testkit::scripthash(&script(i, 3))));
        assert!(n[1].is_string(), "a status, now that the script has a history: {n}");
    }
    let notified = mined.elapsed();
    // Every session is still there, and no other was told anything (a notification would have
    // come before the answer to the ping: both go through the session's one queue).
    for (i, c) in sessions.iter_mut().enumerate() {
        let reply = c.request("server.ping", json!([])).unwrap_or_else(|e| panic!("session {i} was dropped: {e:#}"));
        assert!(reply["error"].is_null(), "session {i}: {reply}");
        if i % (SESSIONS / 1000) != 0 {
            assert_eq!(c.queued_notifications(), 0, "session {i} was notified of a block that is not its");
        }
    }
    let (_, metrics) = http_get(served.http.as_deref().unwrap(), "/metrics");
    let rss = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferrum_resident_memory_bytes "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(metrics.contains(&format!("ferrum_subscriptions {}", SESSIONS * SUBS)), "every subscription counted");
    eprintln!(
        "load: {SESSIONS} sessions x {SUBS} subscriptions set up in {:.1} s; block to the 1,000th notification \
         read: {:.0} ms; ferrum RSS {:.0} MiB (debug build)",
        subscribed.as_secs_f64(),
        notified.as_secs_f64() * 1000.0,
        rss / 1048576.0
    );
}
