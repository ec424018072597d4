//! Sessions do not wait for each other: while one session keeps the index busy with requests on
//! a script of about 90,000 rows, another session's ping, header and small history are answered
//! before the heavy replies arrive.

mod common;

use std::time::Duration;

use bitcoin::{Amount, TxOut};
use common::ferrum_exe;
use serde_json::{json, Value};
use testkit::process::served::Served;
use testkit::{Inputs, Kind, Node, NodeOptions, TxSpec, Wallet};

const TXS: usize = 40;
const OUTPUTS: usize = 2200;
const VALUE: u64 = 1_000;

#[test]
fn a_heavy_session_does_not_delay_another_sessions_ping() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut wallet = Wallet::new(11);
    wallet.fund(&node, 10).unwrap();
    // Not one of the wallet's scripts: the wallet does not track these outputs.
    let heavy = testkit::keys::burn_address_n(7).script_pubkey();
    let light = wallet.receiver(Kind::P2tr);
    wallet.pay(&node, &light.script_pubkey, Amount::from_sat(70_000)).unwrap();
    for _ in 0..TXS {
        let outputs = vec![TxOut { value: Amount::from_sat(VALUE), script_pubkey: heavy.clone() }; OUTPUTS];
        wallet
            .send_spec(
                &node,
                &TxSpec { inputs: Inputs::Auto, outputs, change: Kind::P2wpkh, fee_rate: 1.0, rbf: false },
            )
            .unwrap();
        // About 95 kvB each, spending the previous one's change: one per block keeps them
        // within the mempool's cluster limit.
        node.mine(1).unwrap();
    }
    // Without the cache of busy scripts' answers, which would answer the batch from the first
    // read: the reads must stay heavy for this test to mean anything.
    let s = Served::start(ferrum_exe(), &node, &["--history-cache-mb", "0"]).unwrap();
    let heavy_sh = testkit::scripthash(&heavy);
    let total = (TXS * OUTPUTS) as u64 * VALUE;

    let mut busy = s.client().unwrap();
    assert_eq!(
        busy.call("blockchain.scripthash.get_balance", json!([heavy_sh])).unwrap(),
        json!({"confirmed": total, "unconfirmed": 0})
    );
    let mut other = s.client().unwrap();

    // More heavy requests than the index has reading threads, in one batch.
    let batch: Vec<Value> = (0..24)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "blockchain.scripthash.get_balance", "params": [heavy_sh]}))
        .collect();
    let mut line = serde_json::to_vec(&batch).unwrap();
    line.push(b'\n');
    busy.send_raw(&line).unwrap();

    assert_eq!(other.call("server.ping", json!([])).unwrap(), Value::Null);
    let tip = other.call("blockchain.headers.subscribe", json!([])).unwrap();
    assert_eq!(tip["height"], json!(node.height().unwrap()));
    assert_eq!(
        other.call("blockchain.scripthash.get_history", json!([light.scripthash()])).unwrap().as_array().unwrap().len(),
        1
    );
    assert!(
        busy.read(Duration::from_millis(1)).is_err(),
        "the heavy batch was answered before the other session's requests"
    );

    // The heavy batch completes, every answer right.
    let reply = busy.read(Duration::from_secs(300)).unwrap().expect("the batch reply");
    let replies = reply.as_array().unwrap_or_else(|| panic!("not a batch reply: {reply}"));
    assert_eq!(replies.len(), 24);
    for r in replies {
        assert_eq!(r["result"], json!({"confirmed": total, "unconfirmed": 0}), "{r}");
    }
}

/// With `MAX_SEND` at ElectrumX's minimum (350,000 bytes: histories of up to 3,534
/// transactions), a longer history is refused with ElectrumX's error, and so is a subscription
/// to it; its balance is still served, and an answer over the limit becomes an error.
#[test]
fn a_history_over_the_answer_limit_is_refused_as_electrumx_does() {
    const LIMIT: usize = (350_000 - 100) / 99;
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut wallet = Wallet::new(12);
    wallet.fund(&node, 3).unwrap();
    let big = testkit::keys::burn_address_n(8).script_pubkey();
    let small = testkit::keys::burn_address_n(9).script_pubkey();
    testkit::chain::scenario::histories(&node, &mut wallet, &[big.clone(), small.clone()], &[LIMIT, LIMIT - 1])
        .unwrap();
    let s = Served::start(ferrum_exe(), &node, &["--max-send", "350000"]).unwrap();
    let mut c = s.client().unwrap();
    let big_sh = testkit::scripthash(&big);

    for method in ["blockchain.scripthash.get_history", "blockchain.scripthash.subscribe"] {
        let err = c.call(method, json!([big_sh])).unwrap_err();
        let se = testkit::client::electrum::server_error(&err).unwrap_or_else(|| panic!("{method}: {err:#}"));
        assert_eq!((se.code(), se.message()), (Some(10_001), "history too large"), "{method}");
    }
    assert_eq!(
        c.call("blockchain.scripthash.get_balance", json!([big_sh])).unwrap(),
        json!({"confirmed": LIMIT as u64 * 5_000, "unconfirmed": 0})
    );
    // 3,534 unspent outputs take more than 350,000 bytes.
    let err = c.call("blockchain.scripthash.listunspent", json!([big_sh])).unwrap_err();
    let se = testkit::client::electrum::server_error(&err).unwrap();
    assert_eq!(se.code(), Some(-32600), "{se}");
    assert!(se.message().starts_with("response too large"), "{se}");

    // One transaction fewer is served whole, and the session is still usable.
    let history = c.call("blockchain.scripthash.get_history", json!([testkit::scripthash(&small)])).unwrap();
    assert_eq!(history.as_array().unwrap().len(), LIMIT - 1);
    assert_eq!(c.call("server.ping", json!([])).unwrap(), Value::Null);
}
