//! Side by side with ElectrumX 2.0, the reference server, on the same regtest node and chain:
//! the answer of every method, for a set of heights, script hashes and transactions, in 1.4 and
//! 1.6 sessions, is the same, error objects included. The only differences allowed are the
//! server's own identity (name, banner, announced hosts) and those listed in
//! `docs/protocol.md`, each checked here for what it is.

mod common;

use std::collections::BTreeSet;
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

/// The requests both servers answer, for one protocol version.
fn requests(
    version: &str,
    tip: u64,
    scripts: &[String],
    txids: &[(String, u64, u64)],
    mempool: &[String],
) -> Vec<(String, Value)> {
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
    if version == "1.6" {
        add("blockchain.estimatefee", json!([6, "ECONOMICAL"]));
        add("mempool.get_info", json!([]));
    } else {
        add("blockchain.relayfee", json!([]));
    }
    add("mempool.get_fee_histogram", json!([]));
    for sh in scripts {
        for method in ["get_balance", "get_history", "get_mempool", "listunspent", "subscribe"] {
            add(&format!("blockchain.scripthash.{method}"), json!([sh]));
        }
        add("blockchain.scripthash.unsubscribe", json!([sh]));
    }
    add("blockchain.scripthash.get_history", json!(["00"]));
    add("blockchain.scripthash.get_balance", json!([42]));
    add("blockchain.scripthash.listunspent", json!(["zz".repeat(32)]));
    for (txid, height, pos) in txids {
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

/// Script hashes paid or spent by the node's mempool transactions.
fn mempool_scripts(node: &Node) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for txid in node.mempool().unwrap() {
        let tx = node.call("getrawtransaction", json!([txid.to_string(), 2])).unwrap();
        for o in tx["vout"].as_array().unwrap() {
            out.insert(testkit::scripthash_hex(o["scriptPubKey"]["hex"].as_str().unwrap()).unwrap());
        }
        for i in tx["vin"].as_array().unwrap() {
            if let Some(hex) = i["prevout"]["scriptPubKey"]["hex"].as_str() {
                out.insert(testkit::scripthash_hex(hex).unwrap());
            }
        }
    }
    out
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
    let electrumx = ElectrumX::start(&node).unwrap();
    let rpc_port = testkit::free_port();
    let served = Served::start(ferrum_exe(), &node, &["--rpc", &format!("127.0.0.1:{rpc_port}")]).unwrap();
    let info = admin_rpc(ferrum_exe(), rpc_port, "getinfo", &[]).unwrap();
    let (mode, version) = if core29 { ("utxo", "29.2.0") } else { ("spenttxouts", "31.99.0") };
    assert_eq!((info["index"]["prevout_mode"].as_str(), info["node"]["version"].as_str()), (Some(mode), Some(version)));
    electrumx.wait_synced(&node, Duration::from_secs(180)).unwrap_or_else(|e| panic!("{e:#}"));
    let tip = u64::from(node.height().unwrap());
    let mempool: Vec<String> = node.mempool().unwrap().iter().map(|t| t.to_string()).collect();
    assert!(mempool.len() >= 2, "the mempool holds {} transactions", mempool.len());

    // The busiest scripts, a few quiet ones, every script the mempool touches, and one unused.
    let mut by_len: Vec<(&String, usize)> = truth.scripts.iter().map(|(sh, s)| (sh, s.history.len())).collect();
    by_len.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut scripts: BTreeSet<String> = by_len.iter().take(4).map(|(sh, _)| (*sh).clone()).collect();
    scripts.extend(by_len.iter().rev().take(3).map(|(sh, _)| (*sh).clone()));
    scripts.extend(mempool_scripts(&node));
    scripts.insert(testkit::scripthash(bitcoin::Script::from_bytes(&[0x51, 0x51, 0x87])));
    let scripts: Vec<String> = scripts.into_iter().collect();
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

    for version in ["1.4", "1.6"] {
        let requests = requests(version, tip, &scripts, &txids, &mempool);
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

    // The server's identity differs by design; the rest of server.features is the same.
    let mut f = Client::connect(&served.tcp).unwrap();
    let mut e = Client::connect(&electrumx.tcp_addr()).unwrap();
    let mut ff = f.call("server.features", json!([])).unwrap();
    let mut ef = e.call("server.features", json!([])).unwrap();
    assert_eq!(ff["server_version"], json!(format!("Ferrum {}", env!("CARGO_PKG_VERSION"))));
    assert_eq!(ef["server_version"], json!("ElectrumX 2.0.0"));
    // ElectrumX 2.0 also speaks 1.7, which this comparison does not cover.
    assert_eq!((&ff["protocol_max"], &ef["protocol_max"]), (&json!("1.6"), &json!("1.7.0")));
    for features in [&mut ff, &mut ef] {
        let obj = features.as_object_mut().unwrap();
        for key in ["server_version", "hosts", "protocol_max"] {
            obj.remove(key);
        }
    }
    assert_eq!(ff, ef, "server.features");
    for c in [&mut f, &mut e] {
        assert!(c.call("server.banner", json!([])).unwrap().is_string());
    }
}
