//! ElectrumX 2.0, the reference server, against a real regtest node: it syncs a seeded chain and
//! its answers match the truth computed from the node's own data.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::chain::scenario::{self, ScenarioOptions};
use testkit::chain::truth::{ScriptTruth, Truth};
use testkit::client::electrum::ServerError;
use testkit::{ElectrumX, Node, NodeOptions};

fn indexed_node() -> Node {
    Node::start(NodeOptions { txindex: true, extra_args: vec!["-txospenderindex=1".into()], ..Default::default() })
        .unwrap()
}

/// A handful of scripts of different shapes: the busiest, ones spent to nothing, ones with a
/// single transaction, and a middle one.
fn pick_scripts(truth: &Truth) -> Vec<(&String, &ScriptTruth)> {
    let mut by_len: Vec<(&String, &ScriptTruth)> = truth.scripts.iter().collect();
    by_len.sort_by(|a, b| b.1.history.len().cmp(&a.1.history.len()).then(a.0.cmp(b.0)));
    let mut picked: Vec<(&String, &ScriptTruth)> = by_len.iter().take(3).copied().collect();
    picked.extend(by_len.iter().filter(|(_, s)| s.balance == 0 && s.history.len() >= 2).take(2).copied());
    picked.extend(by_len.iter().filter(|(_, s)| s.history.len() == 1 && s.balance > 0).take(2).copied());
    picked.push(by_len[by_len.len() / 2]);
    picked.sort_by(|a, b| a.0.cmp(b.0));
    picked.dedup_by(|a, b| a.0 == b.0);
    picked
}

#[test]
fn electrumx_history_and_balance_match_the_truth() {
    let node = indexed_node();
    scenario::build(&node, &ScenarioOptions { seed: 5, height: 200 }).unwrap();
    let truth = Truth::from_node(&node).unwrap();
    let mempool = node.mempool().unwrap();

    let electrumx = ElectrumX::start(&node).unwrap();
    if let Err(e) = electrumx.wait_synced(&node, Duration::from_secs(180)) {
        panic!("{e:#}");
    }

    let version = electrumx.connect().unwrap().server_version;
    assert_eq!(version, json!(["ElectrumX 2.0.0", "1.6"]), "server.version");

    let picked = pick_scripts(&truth);
    assert!(picked.len() >= 5, "only {} scripts picked", picked.len());
    assert!(picked.iter().any(|(_, s)| s.history.len() >= 10), "no busy script among {}", picked.len());
    for (sh, script) in &picked {
        let history = electrumx.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
        let entries = history.as_array().unwrap_or_else(|| panic!("{sh}: history {history}"));
        // Mempool entries (height 0 or -1) come last; the confirmed part must be the truth.
        let confirmed: Vec<(u64, String)> = entries
            .iter()
            .filter(|e| e["height"].as_i64().unwrap() > 0)
            .map(|e| (e["height"].as_u64().unwrap(), e["tx_hash"].as_str().unwrap().to_string()))
            .collect();
        let expected: Vec<(u64, String)> =
            script.history.iter().map(|h| (u64::from(h.height), h.txid.to_string())).collect();
        assert_eq!(confirmed, expected, "history of {sh}");
        for e in entries.iter().filter(|e| e["height"].as_i64().unwrap() <= 0) {
            let txid = e["tx_hash"].as_str().unwrap().parse().unwrap();
            assert!(mempool.contains(&txid), "{sh}: unconfirmed {txid} is not in the node's mempool");
        }

        let balance = electrumx.call("blockchain.scripthash.get_balance", json!([sh])).unwrap();
        assert_eq!(balance["confirmed"].as_u64(), Some(script.balance), "balance of {sh}: {balance}");
    }

    // A script never seen has an empty history and no balance.
    let unknown = testkit::scripthash(bitcoin::Script::from_bytes(&[0x51, 0x51, 0x87]));
    assert_eq!(electrumx.call("blockchain.scripthash.get_history", json!([unknown])).unwrap(), json!([]));

    // A malformed request comes back as the server's error object.
    let err = electrumx.call("blockchain.scripthash.get_history", json!(["not a script hash"])).unwrap_err();
    let server_error = err.downcast_ref::<ServerError>().unwrap_or_else(|| panic!("not a server error: {err:#}"));
    assert!(server_error.error.get("message").is_some_and(Value::is_string), "{server_error}");

    // A new block is seen within the poll interval.
    node.mine(1).unwrap();
    electrumx.wait_synced(&node, Duration::from_secs(30)).unwrap();
    let tip = electrumx.call("blockchain.headers.subscribe", json!([])).unwrap();
    assert_eq!(
        tip["hex"].as_str(),
        Some(node.call("getblockheader", json!([node.tip().unwrap().to_string(), false])).unwrap().as_str().unwrap())
    );

    // The SSL service listens too.
    std::net::TcpStream::connect(electrumx.ssl_addr()).unwrap();
}

#[test]
fn a_node_without_the_indexes_is_refused_with_the_fix() {
    let node = Node::start(NodeOptions { txindex: true, ..Default::default() }).unwrap();
    let err = match ElectrumX::start(&node) {
        Ok(_) => panic!("ElectrumX started on a node without -txospenderindex"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("txospenderindex") && err.contains("-txindex=1 -txospenderindex=1"), "{err}");
    assert!(!err.contains("lacks txindex"), "{err}");
}
