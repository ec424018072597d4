//! Side by side with ElectrumX 2.0, the reference server, on the same regtest node and chain:
//! the answer of every method, for a set of heights, script hashes and transactions, in 1.4,
//! 1.6 and 1.7 sessions, is the same, error objects included; and a 1.7 session's
//! notifications of outpoints and scripts are the same. Both have the same banner file,
//! donation address and reported services. The only differences allowed are the server's own
//! name (in `server.version`, `server.features` and the banner's `$SERVER_VERSION`) and those
//! listed in `docs/protocol.md`, each checked here for what it is.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ferrum_exe;
use serde_json::{json, Value};
use testkit::chain::scenario;
use testkit::chain::truth::Truth;
use testkit::client::electrum::Client;
use testkit::process::ferrum::admin_rpc;
use testkit::process::served::Served;
use testkit::{ElectrumX, Node, NodeOptions};

/// Either the `result` or the `error` of each reply.
fn outcomes(replies: &[Value]) -> Vec<Value> {
    replies
        .iter()
        .map(|reply| match reply.get("error") {
            Some(error) if !error.is_null() => json!({ "error": error }),
            _ => json!({ "result": reply.get("result").cloned().unwrap_or(Value::Null) }),
        })
        .collect()
}

/// Sends every request in one batch (ElectrumX may hold a small reply up to a second; a batch
/// is answered at once) and returns the replies in request order.
fn batch(client: &mut Client, requests: &[(String, Value)]) -> Vec<Value> {
    let body: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(id, (method, params))| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .collect();
    let mut line = serde_json::to_vec(&body).unwrap();
    line.push(b'\n');
    client.send_raw(&line).unwrap();
    let reply = client.read(Duration::from_secs(120)).unwrap().expect("a batch reply");
    let mut replies = reply.as_array().unwrap_or_else(|| panic!("not a batch reply: {reply}")).clone();
    assert_eq!(replies.len(), requests.len());
    replies.sort_by_key(|r| r["id"].as_u64());
    replies
}

/// What the requests are about: script hashes (with their scripts, where known), confirmed
/// transactions `(txid, height, position)`, the mempool's transactions, and outpoints.
struct Subjects {
    tip: u64,
    scripts: Vec<(String, Option<String>)>,
    txids: Vec<(String, u64, u64)>,
    mempool: Vec<String>,
    outpoints: Vec<(String, u64)>,
    /// A mempool transaction's hex (the node takes it already), for `testmempoolaccept`.
    mempool_hex: String,
}

/// The requests both servers answer, for one protocol version.
fn requests(version: &str, subjects: &Subjects) -> Vec<(String, Value)> {
    let Subjects { tip, scripts, txids, mempool, outpoints, mempool_hex } = subjects;
    let tip = *tip;
    let mut r: Vec<(String, Value)> = Vec::new();
    let mut add = |method: &str, params: Value| r.push((method.to_string(), params));
    add("server.ping", json!([]));
    add("server.donation_address", json!([]));
    add("server.peers.subscribe", json!([]));
    add("server.add_peer", json!([{"hosts": {"electrum.example.org": {"ssl_port": 50002}}}]));
    add("blockchain.headers.subscribe", json!([]));
    for h in [0, 1, tip / 2, tip] {
        add("blockchain.block.header", json!([h]));
        add("blockchain.block.header", json!([h, tip]));
    }
    add("blockchain.block.header", json!([tip + 1]));
    add("blockchain.block.header", json!([-1]));
    add("blockchain.block.header", json!(["ten"]));
    add("blockchain.block.header", json!([5, 4]));
    add("blockchain.block.header", json!([5, tip + 1]));
    add("blockchain.block.headers", json!([0, 10]));
    add("blockchain.block.headers", json!([tip - 3, 10]));
    add("blockchain.block.headers", json!([tip + 1, 5]));
    add("blockchain.block.headers", json!([5, 3, tip]));
    add("blockchain.block.headers", json!([0, 0]));
    add("blockchain.block.headers", json!([0, 2017]));
    add("blockchain.block.headers", json!([3, 2, 2]));
    add("blockchain.estimatefee", json!([2]));
    add("blockchain.estimatefee", json!([6]));
    add("blockchain.estimatefee", json!([0]));
    add("blockchain.estimatefee", json!(["x"]));
    if version == "1.4" {
        add("blockchain.relayfee", json!([]));
    } else {
        add("blockchain.estimatefee", json!([6, "ECONOMICAL"]));
        add("mempool.get_info", json!([]));
    }
    add("mempool.get_fee_histogram", json!([]));
    for (sh, script) in scripts {
        for method in ["get_balance", "get_history", "get_mempool", "listunspent", "subscribe"] {
            add(&format!("blockchain.scripthash.{method}"), json!([sh]));
        }
        add("blockchain.scripthash.unsubscribe", json!([sh]));
        if let Some(script) = script.as_ref().filter(|_| version == "1.7") {
            for method in ["get_balance", "get_history", "get_mempool", "listunspent", "subscribe", "unsubscribe"] {
                add(&format!("blockchain.scriptpubkey.{method}"), json!([script]));
            }
            add("blockchain.scriptpubkey.unsubscribe", json!([script]));
        }
    }
    if version == "1.7" {
        // ElectrumX 2.0 wants the output's script (`spk_hint`), and ignores it.
        for (txid, vout) in outpoints {
            add("blockchain.outpoint.get_status", json!([txid, vout, "00"]));
            add("blockchain.outpoint.subscribe", json!([txid, vout, "00"]));
            add("blockchain.outpoint.unsubscribe", json!([txid, vout]));
            add("blockchain.outpoint.unsubscribe", json!([txid, vout]));
        }
        add("blockchain.outpoint.get_status", json!(["xx", 0, "00"]));
        add("blockchain.outpoint.get_status", json!(["11".repeat(32), -1, "00"]));
        add("blockchain.outpoint.get_status", json!(["11".repeat(32), 0, "0g"]));
        add("blockchain.scriptpubkey.get_history", json!(["0g"]));
        add("blockchain.scriptpubkey.get_balance", json!([7]));
        add("blockchain.transaction.testmempoolaccept", json!([[mempool_hex]]));
        add("blockchain.transaction.testmempoolaccept", json!([["00"]]));
        add("blockchain.transaction.testmempoolaccept", json!([["zz"]]));
        add("blockchain.transaction.testmempoolaccept", json!(["00"]));
        add("server.ping", json!([3]));
        add("server.ping", json!([2, "abc"]));
        add("server.ping", json!([0, "xyz"]));
        add("server.ping", json!([-1]));
        add("server.ping", json!([1_000_000_000]));
        add("server.ping", json!({"pong_len": 1}));
    }
    add("blockchain.scripthash.get_history", json!(["00"]));
    add("blockchain.scripthash.get_balance", json!([42]));
    add("blockchain.scripthash.listunspent", json!(["zz".repeat(32)]));
    for (txid, height, pos) in txids {
        let (height, pos) = (*height, *pos);
        add("blockchain.transaction.get", json!([txid]));
        add("blockchain.transaction.get", json!([txid, true]));
        add("blockchain.transaction.get_merkle", json!([txid, height]));
        add("blockchain.transaction.get_merkle", json!([txid, height + 1]));
        add("blockchain.transaction.id_from_pos", json!([height, pos]));
        add("blockchain.transaction.id_from_pos", json!([height, pos, true]));
    }
    for txid in mempool {
        add("blockchain.transaction.get", json!([txid]));
        add("blockchain.transaction.get", json!([txid, true]));
        add("blockchain.transaction.get_merkle", json!([txid, tip]));
    }
    add("blockchain.transaction.get", json!(["11".repeat(32)]));
    add("blockchain.transaction.get", json!(["not hex"]));
    add("blockchain.transaction.get_merkle", json!(["11".repeat(32), 5]));
    add("blockchain.transaction.id_from_pos", json!([1, 99]));
    add("blockchain.transaction.id_from_pos", json!([tip + 1, 0]));
    add("blockchain.transaction.broadcast", json!(["00"]));
    add("blockchain.transaction.broadcast", json!(["zz"]));
    add("no.such.method", json!([]));
    r
}

/// The scripts paid or spent by the node's mempool transactions (hex, by script hash), and the
/// outpoints they pay and spend.
fn mempool_scripts(node: &Node) -> (BTreeMap<String, String>, Vec<(String, u64)>) {
    let mut scripts = BTreeMap::new();
    let mut outpoints = Vec::new();
    for txid in node.mempool().unwrap() {
        let tx = node.call("getrawtransaction", json!([txid.to_string(), 2])).unwrap();
        for (n, o) in tx["vout"].as_array().unwrap().iter().enumerate() {
            let hex = o["scriptPubKey"]["hex"].as_str().unwrap();
            scripts.insert(testkit::scripthash_hex(hex).unwrap(), hex.to_string());
            outpoints.push((txid.to_string(), n as u64));
        }
        for i in tx["vin"].as_array().unwrap() {
            if let Some(hex) = i["prevout"]["scriptPubKey"]["hex"].as_str() {
                scripts.insert(testkit::scripthash_hex(hex).unwrap(), hex.to_string());
            }
            outpoints.push((i["txid"].as_str().unwrap().to_string(), i["vout"].as_u64().unwrap()));
        }
    }
    (scripts, outpoints)
}

/// Every answer that differs, as readable lines.
fn differences(ferrum: &str, electrumx: &str, version: &str, requests: &[(String, Value)]) -> Vec<String> {
    let mut f = Client::connect_with(ferrum, json!(version)).unwrap();
    let mut e = Client::connect_with(electrumx, json!(version)).unwrap();
    assert_eq!(f.server_version[1], e.server_version[1], "negotiated version");
    let a = outcomes(&batch(&mut f, requests));
    let b = outcomes(&batch(&mut e, requests));
    requests
        .iter()
        .zip(a.iter().zip(&b))
        .filter(|(_, (a, b))| a != b)
        .map(|((method, params), (a, b))| format!("{version} {method} {params}:\n  ferrum    {a}\n  electrumx {b}"))
        .collect()
}

#[test]
fn every_answer_matches_electrumx() {
    compare_with_electrumx(false);
}

/// Ferrum behind a node that answers as Bitcoin Core 29 does (utxo mode, transactions sliced
/// out of whole blocks), ElectrumX on the same node directly: the same answers.
#[test]
fn every_answer_matches_electrumx_behind_core_29() {
    compare_with_electrumx(true);
}

fn compare_with_electrumx(core29: bool) {
    let options = NodeOptions { rest: true, txindex: true, extra_args: vec!["-txospenderindex=1".into()], core29 };
    let (node, _wallet) = scenario::busy_chain(options, 77, 180).unwrap();
    let truth = Truth::from_node(&node).unwrap();
    // The same banner file, donation address and reported services for both.
    let banner_dir = tempfile::tempdir().unwrap();
    let banner = banner_dir.path().join("banner.txt");
    std::fs::write(
        &banner,
        "Welcome to $SERVER_VERSION.\nNode $DAEMON_VERSION $DAEMON_SUBVERSION; donations: $DONATION_ADDRESS\n",
    )
    .unwrap();
    let (donation, report) = (
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        "tcp://electrum.example.org:50001,ssl://electrum.example.org:50002,tcp://h.onion:50011",
    );
    let banner_path = banner.to_str().unwrap();
    let electrumx = ElectrumX::start_with_env(
        &node,
        &[("BANNER_FILE", banner_path), ("DONATION_ADDRESS", donation), ("REPORT_SERVICES", report)],
    )
    .unwrap();
    let rpc_port = testkit::free_port();
    let rpc = format!("127.0.0.1:{rpc_port}");
    let served = Served::start(
        ferrum_exe(),
        &node,
        &["--rpc", &rpc, "--banner-file", banner_path, "--donation-address", donation, "--report-services", report],
    )
    .unwrap();
    let info = admin_rpc(ferrum_exe(), rpc_port, "getinfo", &[]).unwrap();
    let (mode, node_version) = if core29 { ("utxo", "29.2.0") } else { ("spenttxouts", "31.99.0") };
    assert_eq!(
        (info["index"]["prevout_mode"].as_str(), info["node"]["version"].as_str()),
        (Some(mode), Some(node_version))
    );
    electrumx.wait_synced(&node, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{e:#}"));
    let tip = u64::from(node.height().unwrap());
    let mempool: Vec<String> = node.mempool().unwrap().iter().map(|t| t.to_string()).collect();
    assert!(mempool.len() >= 2, "the mempool holds {} transactions", mempool.len());

    // The busiest scripts, a few quiet ones, every script the mempool touches, and one unused.
    let mut by_len: Vec<(&String, usize)> = truth.scripts.iter().map(|(sh, s)| (sh, s.history.len())).collect();
    by_len.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut scripts: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (sh, _) in by_len.iter().take(4).chain(by_len.iter().rev().take(3)) {
        scripts.insert((*sh).clone(), truth.script_hex.get(*sh).cloned());
    }
    let (pool_scripts, pool_outpoints) = mempool_scripts(&node);
    scripts.extend(pool_scripts.into_iter().map(|(sh, hex)| (sh, Some(hex))));
    let unused = bitcoin::Script::from_bytes(&[0x51, 0x51, 0x87]);
    scripts.insert(testkit::scripthash(unused), Some(hex::encode(unused.as_bytes())));
    assert!(by_len[0].1 >= 20, "the busiest script has only {} transactions", by_len[0].1);

    // Coinbases and payments at the start, middle and end of the chain, first and last in
    // their blocks.
    let mut txids = Vec::new();
    for height in [1, tip / 2, tip - 1, tip] {
        let block = &truth.blocks[height as usize];
        for pos in [0, block.txids.len() - 1] {
            txids.push((block.txids[pos].to_string(), height, pos as u64));
        }
    }
    // Outpoints: those transactions' outputs (some spent in blocks, some not, some beyond the
    // last output), the busiest script's unspent ones, those the mempool pays and spends, and
    // one of no transaction.
    let mut outpoints: Vec<(String, u64)> = Vec::new();
    for (txid, _, _) in &txids {
        outpoints.extend([0, 1, 7].map(|vout| (txid.clone(), vout)));
    }
    let busiest = &truth.scripts[by_len[0].0];
    outpoints.extend(busiest.unspent.iter().take(3).map(|u| (u.txid.to_string(), u64::from(u.vout))));
    outpoints.extend(pool_outpoints);
    outpoints.push(("11".repeat(32), 0));
    let mempool_hex = node.call("getrawtransaction", json!([mempool[0]])).unwrap().as_str().unwrap().to_string();
    let subjects = Subjects {
        tip,
        scripts: scripts.into_iter().collect(),
        txids,
        mempool: mempool.clone(),
        outpoints,
        mempool_hex,
    };

    for version in ["1.4", "1.6", "1.7"] {
        let requests = requests(version, &subjects);
        assert!(requests.len() > 150, "{} requests", requests.len());
        // Both follow the node's mempool on their own schedule: wait for them to agree.
        let mut diffs = Vec::new();
        for _ in 0..20 {
            diffs = differences(&served.tcp, &electrumx.tcp_addr(), version, &requests);
            if diffs.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
    }

    // The mempool's newest transactions: the same ones (in the order each server took them in,
    // which within one poll of the node is its own).
    let recent = |addr: &str| {
        let mut c = Client::connect_with(addr, json!("1.7")).unwrap();
        let mut list = c.call("mempool.recent", json!([])).unwrap().as_array().unwrap().clone();
        list.sort_by_key(|t| t["txid"].as_str().unwrap_or_default().to_string());
        list
    };
    let ferrum_recent = recent(&served.tcp);
    assert_eq!(ferrum_recent.len(), mempool.len());
    assert_eq!(ferrum_recent, recent(&electrumx.tcp_addr()), "mempool.recent");

    // The server's identity differs by design; the rest of server.features is the same, at
    // 1.6 and at 1.7 (which drops hash_function).
    for version in ["1.6", "1.7"] {
        let mut f = Client::connect_with(&served.tcp, json!(version)).unwrap();
        let mut e = Client::connect_with(&electrumx.tcp_addr(), json!(version)).unwrap();
        let mut ff = f.call("server.features", json!([])).unwrap();
        let mut ef = e.call("server.features", json!([])).unwrap();
        assert_eq!(ff["server_version"], json!(format!("Ferrum {}", env!("CARGO_PKG_VERSION"))));
        assert_eq!(ef["server_version"], json!("ElectrumX 2.0.0"));
        assert_eq!(ff["hash_function"].is_null(), version == "1.7", "{ff}");
        assert_eq!(ff["hosts"]["electrum.example.org"], json!({"tcp_port": 50001, "ssl_port": 50002}));
        for features in [&mut ff, &mut ef] {
            features.as_object_mut().unwrap().remove("server_version");
        }
        assert_eq!(ff, ef, "server.features at {version}");
        // The banner's substitutions: the same but for the server's own name.
        let banners: Vec<String> = [&mut f, &mut e]
            .into_iter()
            .map(|c| c.call("server.banner", json!([])).unwrap().as_str().unwrap().to_string())
            .collect();
        assert!(banners[0].starts_with(&format!("Welcome to {}.", env!("CARGO_PKG_VERSION"))), "{}", banners[0]);
        assert!(banners[1].starts_with("Welcome to 2.0.0."), "{}", banners[1]);
        let rest = |b: &str| b.split_once('\n').map(|(_, r)| r.to_string()).unwrap_or_default();
        // ElectrumX reads the node directly, Ferrum through the Core 29 front when there is one.
        assert_eq!(rest(&banners[0]), rest(&banners[1]).replace("31.99.0", node_version));
        assert!(rest(&banners[0]).contains(donation), "{}", banners[0]);
        for c in [&mut f, &mut e] {
            assert_eq!(c.call("server.donation_address", json!([])).unwrap(), json!(donation));
        }
    }
}

/// A 1.7 session on each server subscribes to an output no transaction pays yet and to the
/// script it will pay. The output is paid, spent, and the payment and its spend are mined in
/// turn: each step brings both sessions the same notifications. One difference is checked for
/// what it is: a mempool spend whose parent is mined (height -1 to 0) is news that Ferrum sends
/// and ElectrumX 2.0 does not (the protocol's text lists it as a change to notify).
#[test]
fn outpoint_and_script_notifications_match_electrumx() {
    let options =
        NodeOptions { rest: true, txindex: true, extra_args: vec!["-txospenderindex=1".into()], core29: false };
    let (node, mut wallet) = scenario::busy_chain(options, 78, 120).unwrap();
    node.mine(1).unwrap();
    wallet.resync(&node).unwrap();
    let electrumx = ElectrumX::start(&node).unwrap();
    let served = Served::start(ferrum_exe(), &node, &[]).unwrap();
    electrumx.wait_synced(&node, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{e:#}"));
    let mut sessions = [
        Client::connect_with(&served.tcp, json!("1.7")).unwrap(),
        Client::connect_with(&electrumx.tcp_addr(), json!("1.7")).unwrap(),
    ];

    let receiver = wallet.receiver(testkit::Kind::P2wpkh);
    let spk = hex::encode(receiver.script_pubkey.as_bytes());
    let value = bitcoin::Amount::from_sat(1_000_000);
    let pay = wallet
        .build(
            &node,
            &testkit::TxSpec::pay(vec![bitcoin::TxOut { value, script_pubkey: receiver.script_pubkey.clone() }]),
        )
        .unwrap();
    let paid = pay.compute_txid().to_string();
    for c in sessions.iter_mut() {
        assert_eq!(c.call("blockchain.outpoint.subscribe", json!([paid, 0, spk])).unwrap(), json!({}));
        assert_eq!(c.call("blockchain.scriptpubkey.subscribe", json!([spk])).unwrap(), Value::Null);
    }
    // Both sessions' next `n` notifications of `method`, which must be the same (in any order).
    let next_n = |sessions: &mut [Client; 2], method: &str, n: usize| -> Vec<Value> {
        let got: Vec<Vec<Value>> = sessions
            .iter_mut()
            .map(|c| {
                let mut all: Vec<Value> =
                    (0..n).map(|_| c.notification(method, Duration::from_secs(60)).unwrap()).collect();
                all.sort_by_key(Value::to_string);
                all
            })
            .collect();
        assert_eq!(got[0], got[1], "{method}: ferrum, then electrumx");
        got[0].clone()
    };
    let next = |sessions: &mut [Client; 2], method: &str| next_n(sessions, method, 1).remove(0);

    wallet.send(&node, &pay).unwrap();
    assert_eq!(next(&mut sessions, "blockchain.outpoint.subscribe"), json!([paid, 0, {"funder_height": 0}]));
    let status = next(&mut sessions, "blockchain.scriptpubkey.subscribe");
    assert_eq!(status[0], json!(receiver.scripthash()), "notified by script hash");

    let spend = wallet
        .send_spec(
            &node,
            &testkit::TxSpec {
                inputs: testkit::Inputs::Exactly(vec![bitcoin::OutPoint::new(pay.compute_txid(), 0)]),
                outputs: vec![],
                change: testkit::Kind::P2tr,
                fee_rate: 2.0,
                rbf: false,
            },
        )
        .unwrap();
    let spender = spend.compute_txid().to_string();
    let in_mempool = json!([paid, 0, {"funder_height": 0, "spender_txhash": spender, "spender_height": -1}]);
    assert_eq!(next(&mut sessions, "blockchain.outpoint.subscribe"), in_mempool);
    next(&mut sessions, "blockchain.scriptpubkey.subscribe");
    // The spend's own output: paid in the mempool by a transaction with an unconfirmed input.
    let change = json!([spender, 0, "00"]);
    for c in sessions.iter_mut() {
        assert_eq!(c.call("blockchain.outpoint.subscribe", change.clone()).unwrap(), json!({"funder_height": -1}));
    }

    // The payment alone is mined: the spend stays, its input now confirmed.
    let height = node.height().unwrap() + 1;
    node.mine_block_with(std::slice::from_ref(&pay)).unwrap();
    let mined = json!([paid, 0, {"funder_height": height, "spender_txhash": spender, "spender_height": 0}]);
    let unconfirmed_parent_mined = json!([spender, 0, {"funder_height": 0}]);
    let [ferrum, electrumx_session] = &mut sessions;
    let wait = Duration::from_secs(60);
    let mut from_ferrum: Vec<Value> =
        (0..2).map(|_| ferrum.notification("blockchain.outpoint.subscribe", wait).unwrap()).collect();
    from_ferrum.sort_by_key(Value::to_string);
    let mut expected = vec![mined.clone(), unconfirmed_parent_mined];
    expected.sort_by_key(Value::to_string);
    assert_eq!(from_ferrum, expected);
    assert_eq!(electrumx_session.notification("blockchain.outpoint.subscribe", wait).unwrap(), mined);
    let quiet = Duration::from_secs(5);
    assert!(electrumx_session.notification("blockchain.outpoint.subscribe", quiet).is_err(), "ElectrumX sent it");
    next(&mut sessions, "blockchain.scriptpubkey.subscribe");

    // And the spend: both outpoints confirmed.
    node.mine(1).unwrap();
    let spent = json!([paid, 0, {"funder_height": height, "spender_txhash": spender, "spender_height": height + 1}]);
    let mut expected = vec![spent, json!([spender, 0, {"funder_height": height + 1}])];
    expected.sort_by_key(Value::to_string);
    assert_eq!(next_n(&mut sessions, "blockchain.outpoint.subscribe", 2), expected);
    let status = next(&mut sessions, "blockchain.scriptpubkey.subscribe");
    let history = sessions[0].call("blockchain.scriptpubkey.get_history", json!([spk])).unwrap();
    assert_eq!(history["history"].as_array().map(Vec::len), Some(2), "{history}");
    assert_eq!(status[1], testkit::client::electrum::status_of_history(&history["history"]).unwrap());
}
