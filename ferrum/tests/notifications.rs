//! Subscriptions against a serving ferrum on a real node: headers on new blocks and reorgs,
//! script statuses on mempool transactions (0 and -1), replacements, confirmations and reorgs.
//! Every notified status must equal the status a client recomputes from `get_history`.

mod common;

use std::time::Duration;

use bitcoin::{Amount, TxOut};
use common::ferrum_exe;
use serde_json::{json, Value};
use testkit::client::electrum::{status_of_history, Client};
use testkit::process::served::Served;
use testkit::{Inputs, Kind, Node, NodeOptions, TxSpec, Wallet};

const WAIT: Duration = Duration::from_secs(20);

/// Waits for the notification of `sh` and checks it against a fresh `get_history`.
fn expect_status(c: &mut Client, probe: &mut Client, sh: &str) -> Value {
    let params = c.notification("blockchain.scripthash.subscribe", WAIT).unwrap_or_else(|e| panic!("{sh}: {e:#}"));
    assert_eq!(params[0], json!(sh));
    let history = probe.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
    assert_eq!(params[1], status_of_history(&history).unwrap(), "notified status of {sh} is the history's");
    history
}

#[test]
fn headers_and_scripthash_notifications() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut wallet = Wallet::new(5);
    wallet.fund(&node, 4).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let mut c = s.client_with("1.6").unwrap();
    let mut probe = s.client_with("1.6").unwrap();

    // New blocks.
    let tip = c.call("blockchain.headers.subscribe", json!([])).unwrap();
    let hashes = node.mine(1).unwrap();
    let n = c.notification("blockchain.headers.subscribe", WAIT).unwrap();
    assert_eq!(n[0]["height"], tip["height"].as_u64().unwrap() + 1);
    let header = node.call("getblockheader", json!([hashes[0].to_string(), false])).unwrap();
    assert_eq!(n[0]["hex"], header);

    // A payment in the mempool: height 0.
    let a = wallet.receiver(Kind::P2wpkh);
    let sh_a = a.scripthash();
    assert_eq!(c.call("blockchain.scripthash.subscribe", json!([sh_a])).unwrap(), Value::Null);
    let pay = wallet.pay(&node, &a.script_pubkey, Amount::from_sat(3_000_000)).unwrap();
    let h = expect_status(&mut c, &mut probe, &sh_a);
    assert_eq!(h, json!([{"tx_hash": pay.compute_txid().to_string(), "height": 0, "fee": h[0]["fee"]}]));

    // Its child, spending the unconfirmed output: height -1 for the child's script.
    let b = wallet.receiver(Kind::P2tr);
    let sh_b = b.scripthash();
    c.call("blockchain.scripthash.subscribe", json!([sh_b])).unwrap();
    let child = wallet
        .send_spec(
            &node,
            &TxSpec {
                inputs: Inputs::Exactly(vec![bitcoin::OutPoint::new(pay.compute_txid(), 0)]),
                outputs: vec![TxOut { value: Amount::from_sat(1_000_000), script_pubkey: b.script_pubkey.clone() }],
                change: Kind::P2wpkh,
                fee_rate: 2.0,
                rbf: true,
            },
        )
        .unwrap();
    // Both scripts change: a's history gains the child (it spends a's output).
    let mut pending = vec![sh_a.clone(), sh_b.clone()];
    while !pending.is_empty() {
        let params = c.notification("blockchain.scripthash.subscribe", WAIT).unwrap();
        let sh = params[0].as_str().unwrap().to_string();
        let history = probe.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
        assert_eq!(params[1], status_of_history(&history).unwrap());
        pending.retain(|p| *p != sh);
    }
    let hb = probe.call("blockchain.scripthash.get_history", json!([sh_b])).unwrap();
    assert_eq!(hb[0]["tx_hash"], json!(child.compute_txid().to_string()));
    assert_eq!(hb[0]["height"], -1);

    // Replacement: the child replaced by one paying c instead of b.
    let cc = wallet.receiver(Kind::P2pkh);
    let sh_c = cc.scripthash();
    c.call("blockchain.scripthash.subscribe", json!([sh_c])).unwrap();
    let replacement = wallet
        .conflicting(
            &node,
            &child,
            vec![TxOut { value: Amount::from_sat(900_000), script_pubkey: cc.script_pubkey.clone() }],
            30.0,
        )
        .unwrap();
    wallet.send(&node, &replacement).unwrap();
    let mut seen = std::collections::HashMap::new();
    while !(seen.contains_key(&sh_b) && seen.contains_key(&sh_c)) {
        let params = c.notification("blockchain.scripthash.subscribe", WAIT).unwrap();
        let sh = params[0].as_str().unwrap().to_string();
        seen.insert(sh, params[1].clone());
    }
    assert_eq!(seen[&sh_b], Value::Null, "the replaced transaction is gone from b's history");
    let hc = probe.call("blockchain.scripthash.get_history", json!([sh_c])).unwrap();
    assert_eq!(hc[0]["tx_hash"], json!(replacement.compute_txid().to_string()));
    assert_eq!(seen[&sh_c], status_of_history(&hc).unwrap());

    // Confirmation: a's payment gets a height.
    c.drain_notifications(Duration::from_millis(500));
    let mined = node.mine(1).unwrap();
    let height = node.height().unwrap();
    let mut confirmed = false;
    while !confirmed {
        let params = c
            .notification("blockchain.scripthash.subscribe", WAIT)
            .unwrap_or_else(|e| panic!("{e}\n{}", s.ferrum.log_text()));
        if params[0] == json!(sh_a) {
            let h = probe.call("blockchain.scripthash.get_history", json!([sh_a])).unwrap();
            assert_eq!(params[1], status_of_history(&h).unwrap());
            assert_eq!(h[0], json!({"tx_hash": pay.compute_txid().to_string(), "height": height}));
            confirmed = true;
        }
    }
    let n = c.notification("blockchain.headers.subscribe", WAIT).unwrap();
    assert_eq!(n[0]["height"], height);
    assert_eq!(node.block_hash(height).unwrap(), mined[0]);

    // A reorg that drops the payment (a conflicting spend in the new branch) and re-adds
    // another: a's status changes, headers notify the new tip.
    let d = wallet.receiver(Kind::P2shP2wpkh);
    let conflict = wallet
        .conflicting(
            &node,
            &pay,
            vec![TxOut { value: Amount::from_sat(2_000_000), script_pubkey: d.script_pubkey.clone() }],
            5.0,
        )
        .unwrap();
    node.reorg_with(1, &[vec![conflict.clone()], vec![]]).unwrap();
    let h = loop {
        let params = c.notification("blockchain.scripthash.subscribe", WAIT).unwrap();
        if params[0] == json!(sh_a) {
            let h = probe.call("blockchain.scripthash.get_history", json!([sh_a])).unwrap();
            assert_eq!(params[1], status_of_history(&h).unwrap());
            break h;
        }
    };
    assert!(!h.as_array().unwrap().iter().any(|x| x["tx_hash"] == json!(pay.compute_txid().to_string())), "{h}");
    let tip = loop {
        let n = c.notification("blockchain.headers.subscribe", WAIT).unwrap();
        if n[0]["height"] == height + 1 {
            break n;
        }
    };
    let new_tip = node.tip().unwrap();
    assert_eq!(tip[0]["hex"], node.call("getblockheader", json!([new_tip.to_string(), false])).unwrap());
}

#[test]
fn only_changed_statuses_are_sent_once() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut wallet = Wallet::new(6);
    wallet.fund(&node, 2).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let mut c = s.client_with("1.4").unwrap();
    let mut probe = s.client_with("1.4").unwrap();
    let a = wallet.receiver(Kind::P2wpkh);
    let quiet = wallet.receiver(Kind::P2wpkh);
    c.call("blockchain.scripthash.subscribe", json!([a.scripthash()])).unwrap();
    c.call("blockchain.scripthash.subscribe", json!([quiet.scripthash()])).unwrap();
    wallet.pay(&node, &a.script_pubkey, Amount::from_sat(100_000)).unwrap();
    expect_status(&mut c, &mut probe, &a.scripthash());
    // Blocks that do not touch the script: headers are not subscribed, nothing arrives.
    node.mine_block_with(&[]).unwrap();
    assert!(!c.has_notification(Duration::from_secs(3)), "no notification for untouched scripts");
    // Mining the payment: exactly one notification, for a only.
    node.mine(1).unwrap();
    let h = expect_status(&mut c, &mut probe, &a.scripthash());
    assert!(h[0]["height"].as_u64().unwrap() > 0);
    assert!(!c.has_notification(Duration::from_secs(3)), "sent once");
}
