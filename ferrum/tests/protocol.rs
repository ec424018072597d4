//! The Electrum protocol over raw newline-delimited JSON against a serving ferrum on a real
//! regtest node: version negotiation, every method against the node's own data, every error
//! path, batches and malformed input.

mod common;

use std::time::Duration;

use bitcoin::{Amount, TxOut};
use common::ferrum_exe;
use serde_json::{json, Value};
use testkit::chain::scenario;
use testkit::chain::truth::Truth;
use testkit::client::electrum::{server_error, status_of_history, Client};
use testkit::process::served::Served;
use testkit::{Kind, Node, NodeOptions, TxSpec};

fn error_of(r: anyhow::Result<Value>) -> (i64, String) {
    let e = r.expect_err("expected an error reply");
    let se = server_error(&e).unwrap_or_else(|| panic!("not a server error: {e:#}"));
    (se.code().unwrap(), se.message().to_string())
}

#[test]
fn version_negotiation() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(3).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();

    // Anything before server.version: an error, then the connection closes.
    let mut c = Client::connect_raw(&s.tcp).unwrap();
    assert_eq!(error_of(c.call("server.ping", json!([]))), (1, "use server.version to identify client".into()));
    assert!(c.closes_within(Duration::from_secs(10)));

    // Unsupported versions: an error, then the connection closes.
    for (requested, shown) in
        [(json!("1.3"), "1.3"), (json!(["1.8", "2.0"]), "['1.8', '2.0']"), (json!("nonsense"), "nonsense")]
    {
        let mut c = Client::connect_raw(&s.tcp).unwrap();
        let (code, msg) = error_of(c.call("server.version", json!(["t", requested])));
        assert_eq!((code, msg), (1, format!("unsupported protocol version: {shown}")));
        assert!(c.closes_within(Duration::from_secs(10)));
    }

    // Electrum 4.7's range, with the extra arguments 1.6 says to ignore.
    let mut c = Client::connect_raw(&s.tcp).unwrap();
    let v = c.call("server.version", json!(["electrum/4.6.2", ["1.4", "1.6"], "trailing_garbage1", 9999.9])).unwrap();
    assert_eq!(v, json!([format!("Ferrum {}", env!("CARGO_PKG_VERSION")), "1.6"]));
    // Only the first is accepted; the session goes on.
    assert_eq!(error_of(c.call("server.version", json!(["x", "1.4"]))), (1, "server.version already sent".into()));
    assert_eq!(c.call("server.ping", json!([])).unwrap(), Value::Null);

    // 1.7: the scripthash methods are gone, the scriptpubkey and outpoint ones there; not
    // before.
    let mut c17 = Client::connect_with(&s.tcp, json!("1.7")).unwrap();
    assert_eq!(c17.server_version[1], "1.7");
    let sh = "00".repeat(32);
    let unknown = |m: &str| (-32601, format!("unknown method \"{m}\""));
    assert_eq!(
        error_of(c17.call("blockchain.scripthash.get_history", json!([sh]))),
        unknown("blockchain.scripthash.get_history")
    );
    assert_eq!(
        c17.call("blockchain.scriptpubkey.get_balance", json!(["51"])).unwrap(),
        json!({"confirmed": 0, "unconfirmed": 0})
    );
    assert_eq!(c17.call("server.ping", json!([2])).unwrap(), json!({"data": "00"}));
    let mut c16 = Client::connect_with(&s.tcp, json!("1.6")).unwrap();
    assert_eq!(
        error_of(c16.call("blockchain.outpoint.get_status", json!([sh, 0]))),
        unknown("blockchain.outpoint.get_status")
    );
    assert_eq!(error_of(c16.call("mempool.recent", json!([]))), unknown("mempool.recent"));
    assert_eq!(c16.call("server.ping", json!([2])).unwrap(), Value::Null, "pong_len means nothing before 1.7");

    // No version: 1.4. Named parameters. A higher client maximum meets ours.
    assert_eq!(Client::connect_raw(&s.tcp).unwrap().call("server.version", json!(["x"])).unwrap()[1], "1.4");
    assert_eq!(
        Client::connect_raw(&s.tcp)
            .unwrap()
            .call("server.version", json!({"client_name": "x", "protocol_version": "1.4.2"}))
            .unwrap()[1],
        "1.4.2"
    );
    assert_eq!(
        Client::connect_raw(&s.tcp).unwrap().call("server.version", json!(["x", ["1.4", "1.9"]])).unwrap()[1],
        "1.7.0"
    );
}

fn wait_mempool(c: &mut Client, sh: &str, n: usize) {
    testkit::wait_for("mempool synced", Duration::from_secs(20), || {
        let m = c.call("blockchain.scripthash.get_mempool", json!([sh])).ok()?;
        (m.as_array()?.len() == n).then_some(())
    })
    .unwrap();
}

#[test]
fn every_method_matches_the_node() {
    let (node, wallet) = scenario::busy_chain(NodeOptions::rest(), 41, 260).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let truth = Truth::from_node(&node).unwrap();
    let tip = node.height().unwrap();
    let mut c16 = s.client_with("1.6").unwrap();
    let mut c14 = s.client_with("1.4").unwrap();

    // Headers.
    let sub = c16.call("blockchain.headers.subscribe", json!([])).unwrap();
    assert_eq!(sub, json!({"height": tip, "hex": truth.blocks[tip as usize].header_hex}));
    for h in [0, 1, tip / 2, tip] {
        assert_eq!(
            c14.call("blockchain.block.header", json!([h])).unwrap(),
            json!(truth.blocks[h as usize].header_hex)
        );
    }
    let proof = c16.call("blockchain.block.header", json!([5, tip])).unwrap();
    assert_eq!(proof["header"], json!(truth.blocks[5].header_hex));
    assert_eq!(proof["branch"].as_array().unwrap().len(), (tip as f64 + 1.0).log2().ceil() as usize);
    let hex14 = c14.call("blockchain.block.headers", json!([3, 4])).unwrap();
    let want: String = (3..7).map(|h| truth.blocks[h].header_hex.clone()).collect();
    assert_eq!(hex14, json!({"count": 4, "hex": want, "max": 2016}));
    let list16 = c16.call("blockchain.block.headers", json!([3, 4])).unwrap();
    assert_eq!(list16["headers"].as_array().unwrap().concat_strings(), want);
    let capped = c16.call("blockchain.block.headers", json!([0, 5000])).unwrap();
    assert_eq!(capped["count"], tip + 1);
    let beyond = c16.call("blockchain.block.headers", json!([tip + 1, 10])).unwrap();
    assert_eq!(beyond, json!({"count": 0, "headers": [], "max": 2016}));
    let with_proof = c16.call("blockchain.block.headers", json!([10, 3, tip])).unwrap();
    assert!(with_proof["root"].is_string() && with_proof["branch"].is_array());

    // Every script of the chain: history, balance, unspent, status.
    for (sh, t) in &truth.scripts {
        let history = c16.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
        let mempool = c16.call("blockchain.scripthash.get_mempool", json!([sh])).unwrap();
        let confirmed: Vec<(u64, String)> = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["height"].as_i64().unwrap() > 0)
            .map(|h| (h["height"].as_u64().unwrap(), h["tx_hash"].as_str().unwrap().to_string()))
            .collect();
        let want: Vec<(u64, String)> = t.history.iter().map(|h| (u64::from(h.height), h.txid.to_string())).collect();
        assert_eq!(confirmed, want, "history of {sh}");
        assert_eq!(history.as_array().unwrap().len(), want.len() + mempool.as_array().unwrap().len());
        let balance = c16.call("blockchain.scripthash.get_balance", json!([sh])).unwrap();
        assert_eq!(balance["confirmed"], t.balance, "balance of {sh}");
        let status = c16.call("blockchain.scripthash.subscribe", json!([sh])).unwrap();
        assert_eq!(status, status_of_history(&history).unwrap(), "status of {sh}");
        let unspent = c14.call("blockchain.scripthash.listunspent", json!([sh])).unwrap();
        for u in &t.unspent {
            let spent_in_mempool = node.call("gettxout", json!([u.txid.to_string(), u.vout, true])).unwrap().is_null();
            let listed = unspent.as_array().unwrap().iter().any(|x| {
                x["tx_hash"] == json!(u.txid.to_string())
                    && x["tx_pos"] == u.vout
                    && x["value"] == u.value
                    && x["height"] == u.height
            });
            assert_eq!(listed, !spent_in_mempool, "{sh}: {}:{} listed", u.txid, u.vout);
        }
    }

    // The mempool part: height 0 for a transaction with confirmed inputs, -1 for its child,
    // fees as the node computes them.
    let receivers: Vec<_> = wallet.receivers().cloned().collect();
    let mempool_txs = node.mempool().unwrap();
    assert_eq!(mempool_txs.len(), 2);
    let mut seen_heights = Vec::new();
    for r in &receivers {
        let m = c16.call("blockchain.scripthash.get_mempool", json!([r.scripthash()])).unwrap();
        for e in m.as_array().unwrap() {
            let entry = node.call("getmempoolentry", json!([e["tx_hash"]])).unwrap();
            let fee = (entry["fees"]["base"].as_f64().unwrap() * 1e8).round() as u64;
            assert_eq!(e["fee"], fee);
            let has_parent = !entry["depends"].as_array().unwrap().is_empty();
            assert_eq!(e["height"], if has_parent { -1 } else { 0 });
            seen_heights.push(e["height"].as_i64().unwrap());
        }
    }
    assert!(seen_heights.contains(&0) && seen_heights.contains(&-1), "{seen_heights:?}");

    // Transactions: raw, verbose, merkle, by position.
    for block in truth.blocks.iter().skip(1).step_by(37) {
        for (pos, txid) in block.txids.iter().enumerate() {
            let raw = c16.call("blockchain.transaction.get", json!([txid.to_string()])).unwrap();
            let want =
                node.call("getrawtransaction", json!([txid.to_string(), false, block.hash.to_string()])).unwrap();
            assert_eq!(raw, want);
            let merkle =
                c16.call("blockchain.transaction.get_merkle", json!([txid.to_string(), block.height])).unwrap();
            assert_eq!(merkle["block_height"], block.height);
            assert_eq!(merkle["pos"], pos);
            let id = c14.call("blockchain.transaction.id_from_pos", json!([block.height, pos])).unwrap();
            assert_eq!(id, json!(txid.to_string()));
            let with = c14.call("blockchain.transaction.id_from_pos", json!([block.height, pos, true])).unwrap();
            assert_eq!(with["merkle"], merkle["merkle"]);
        }
    }
    let (block, txid) = (&truth.blocks[100], truth.blocks[100].txids[0]);
    let verbose = c16.call("blockchain.transaction.get", json!([txid.to_string(), true])).unwrap();
    assert_eq!(verbose["txid"], json!(txid.to_string()));
    assert_eq!(verbose["blockhash"], json!(block.hash.to_string()));
    assert!(verbose["confirmations"].as_u64().unwrap() > 100);
    assert!(verbose.get("in_active_chain").is_none());
    let in_mempool = mempool_txs[0].to_string();
    assert_eq!(
        c16.call("blockchain.transaction.get", json!([in_mempool])).unwrap(),
        node.call("getrawtransaction", json!([in_mempool])).unwrap()
    );

    // Fees and server information.
    assert!(c16.call("blockchain.estimatefee", json!([2])).unwrap().is_number());
    assert!(c16.call("blockchain.estimatefee", json!([6, "economical"])).unwrap().is_number());
    let relay = c14.call("blockchain.relayfee", json!([])).unwrap();
    assert_eq!(relay, node.call("getnetworkinfo", json!([])).unwrap()["relayfee"]);
    let info = c16.call("mempool.get_info", json!([])).unwrap();
    let node_info = node.call("getmempoolinfo", json!([])).unwrap();
    for k in ["mempoolminfee", "minrelaytxfee", "incrementalrelayfee"] {
        assert_eq!(info[k], node_info[k], "{k}");
    }
    let hist = c16.call("mempool.get_fee_histogram", json!([])).unwrap();
    let rates: Vec<f64> = hist.as_array().unwrap().iter().map(|b| b[0].as_f64().unwrap()).collect();
    assert!(rates.windows(2).all(|w| w[0] > w[1]));
    let f = c16.call("server.features", json!([])).unwrap();
    assert_eq!(f["genesis_hash"], json!(node.block_hash(0).unwrap().to_string()));
    assert_eq!(
        (f["protocol_min"].as_str(), f["protocol_max"].as_str(), f["hash_function"].as_str()),
        (Some("1.4"), Some("1.7.0"), Some("sha256"))
    );
    assert_eq!(f["pruning"], Value::Null);
    assert!(c16.call("server.banner", json!([])).unwrap().as_str().unwrap().contains("Ferrum"));
    assert_eq!(c16.call("server.donation_address", json!([])).unwrap(), json!(""));
    assert_eq!(c16.call("server.peers.subscribe", json!([])).unwrap(), json!([]));
    assert_eq!(c16.call("server.add_peer", json!([{}])).unwrap(), json!(false));
}

trait ConcatStrings {
    fn concat_strings(&self) -> String;
}

impl ConcatStrings for Vec<Value> {
    fn concat_strings(&self) -> String {
        self.iter().map(|v| v.as_str().unwrap()).collect()
    }
}

#[test]
fn error_paths() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(30).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let mut c = s.client_with("1.6").unwrap();
    let sh = "f04bf26fc16a27abaa2f10540da7a24e369e6ec408f2d901202a7c0cd4a6112d";
    let coinbase = node.block(&node.block_hash(5).unwrap()).unwrap().txdata[0].compute_txid().to_string();
    let cases: Vec<(&str, Value, i64, String)> = vec![
        ("no.such.method", json!([]), -32601, "unknown method \"no.such.method\"".into()),
        ("blockchain.relayfee", json!([]), -32601, "unknown method \"blockchain.relayfee\"".into()),
        ("blockchain.scripthash.get_history", json!([]), -32602, "0 arguments passed to method \"blockchain.scripthash.get_history\" but it requires 1".into()),
        ("blockchain.scripthash.get_history", json!([sh, 1]), -32602, "2 arguments passed to method blockchain.scripthash.get_history taking at most 1".into()),
        ("blockchain.scripthash.get_history", json!({"hash": sh}), -32602, "method \"blockchain.scripthash.get_history\" requires parameter \"scripthash\"".into()),
        ("blockchain.scripthash.get_balance", json!(["zz"]), 1, "zz is not a valid script hash".into()),
        ("blockchain.scripthash.subscribe", json!([42]), 1, "42 is not a valid script hash".into()),
        ("blockchain.block.header", json!([-1]), 1, "-1 should be a non-negative integer".into()),
        ("blockchain.block.header", json!(["ten"]), 1, "ten should be a non-negative integer".into()),
        ("blockchain.block.header", json!([1000]), 1, "height 1,000 out of range".into()),
        ("blockchain.block.header", json!([10, 5]), 1, "require header height 10 <= cp_height 5 <= chain height 30".into()),
        ("blockchain.block.header", json!([1, 31]), 1, "require header height 1 <= cp_height 31 <= chain height 30".into()),
        ("blockchain.transaction.get", json!(["xyz"]), 1, "xyz should be a transaction hash".into()),
        ("blockchain.transaction.get", json!([coinbase, "yes"]), 1, "\"verbose\" must be a boolean".into()),
        ("blockchain.transaction.get", json!(["00".repeat(32)]), 2, "daemon error: DaemonError({'code': -5, 'message': 'No such mempool or blockchain transaction. Use gettransaction for wallet transactions.'})".into()),
        ("blockchain.transaction.get_merkle", json!([coinbase, 6]), 1, format!("tx {coinbase} not in block at height 6")),
        ("blockchain.transaction.get_merkle", json!([coinbase, 3000]), 1, "height 3,000 out of range".into()),
        ("blockchain.transaction.id_from_pos", json!([5, 9999]), 1, "no tx at position 9,999 in block at height 5".into()),
        ("blockchain.transaction.id_from_pos", json!([5, 0, "no"]), 1, "\"merkle\" must be a boolean".into()),
        ("blockchain.transaction.broadcast", json!(["zz"]), 1, "zz should be a hex string".into()),
        ("blockchain.transaction.broadcast_package", json!(["00"]), 1, "00 should be a list".into()),
        ("blockchain.estimatefee", json!([6, "fast"]), 1, "unknown estimatefee mode: FAST".into()),
    ];
    for (method, params, code, message) in cases {
        let got = error_of(c.call(method, params.clone()));
        assert_eq!(got, (code, message), "{method} {params}");
    }
    // A broadcast the node refuses: its reason comes back.
    let (code, msg) = error_of(c.call("blockchain.transaction.broadcast", json!(["0100000000"])));
    assert_eq!(code, 1);
    assert!(
        msg.starts_with("the transaction was rejected by network rules.\n\n") && msg.ends_with("\n[0100000000]"),
        "{msg}"
    );

    // Version-dependent method sets.
    let mut c14 = s.client_with("1.4").unwrap();
    assert_eq!(error_of(c14.call("blockchain.scripthash.unsubscribe", json!([sh]))).0, -32601);
    assert_eq!(error_of(c14.call("mempool.get_info", json!([]))).0, -32601);
    assert_eq!(error_of(c14.call("blockchain.transaction.broadcast_package", json!([[]]))).0, -32601);
    let mut c142 = s.client_with("1.4.2").unwrap();
    assert_eq!(c142.call("blockchain.scripthash.unsubscribe", json!([sh])).unwrap(), json!(false));
    c142.call("blockchain.scripthash.subscribe", json!([sh])).unwrap();
    assert_eq!(c142.call("blockchain.scripthash.unsubscribe", json!([sh])).unwrap(), json!(true));

    // Malformed input: an error answer, and the session goes on.
    let mut raw = s.client_with("1.6").unwrap();
    raw.send_raw(b"{this is not json\n").unwrap();
    let reply = raw.read(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(reply["error"]["code"], -32700);
    raw.send_raw(b"[]\n").unwrap();
    assert_eq!(raw.read(Duration::from_secs(10)).unwrap().unwrap()["error"]["message"], "batch is empty");
    raw.send_raw(b"\"just a string\"\n").unwrap();
    assert_eq!(raw.read(Duration::from_secs(10)).unwrap().unwrap()["error"]["code"], -32600);
    // Padding (Electrum 4.6+) and CRLF.
    raw.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"server.ping\",\"params\":[]            }\r\n")
        .unwrap();
    assert_eq!(
        raw.read(Duration::from_secs(10)).unwrap().unwrap(),
        json!({"jsonrpc": "2.0", "id": "p", "result": null})
    );
    // A batch with a bad member and a notification: two answers in order.
    raw.send_raw(
        br#"[{"jsonrpc":"2.0","id":1,"method":"server.ping"},7,{"jsonrpc":"2.0","method":"server.ping"},{"jsonrpc":"2.0","id":2,"method":"blockchain.block.header","params":[0]}]"#,
    )
    .unwrap();
    raw.send_raw(b"\n").unwrap();
    let batch = raw.read(Duration::from_secs(10)).unwrap().unwrap();
    let items = batch.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], 1);
    assert_eq!(items[1]["error"]["code"], -32600);
    assert_eq!(
        items[2]["result"],
        json!(hex::encode(bitcoin::consensus::serialize(&node.block(&node.block_hash(0).unwrap()).unwrap().header)))
    );
    // JSON-RPC 1.0 requests get 1.0-style answers.
    raw.send_raw(b"{\"id\":9,\"method\":\"server.ping\",\"params\":[]}\n").unwrap();
    assert_eq!(raw.read(Duration::from_secs(10)).unwrap().unwrap(), json!({"id": 9, "result": null, "error": null}));
    assert_eq!(raw.call("server.ping", json!([])).unwrap(), Value::Null);
}

#[test]
fn broadcasts_relay_and_packages_submit() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut wallet = testkit::Wallet::new(77);
    wallet.fund(&node, 3).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let mut c = s.client_with("1.6").unwrap();
    let r = wallet.receiver(Kind::P2wpkh);
    let tx = wallet
        .build(
            &node,
            &TxSpec::pay(vec![TxOut { value: Amount::from_sat(50_000), script_pubkey: r.script_pubkey.clone() }]),
        )
        .unwrap();
    let hex = bitcoin::consensus::encode::serialize_hex(&tx);
    let txid = c.call("blockchain.transaction.broadcast", json!([hex])).unwrap();
    assert_eq!(txid, json!(tx.compute_txid().to_string()));
    assert!(node.mempool().unwrap().contains(&tx.compute_txid()), "relayed to the node");
    wallet.commit(&tx);
    wait_mempool(&mut c, &r.scripthash(), 1);

    // A parent and its child as a package.
    let parent = wallet
        .build(
            &node,
            &TxSpec::pay(vec![TxOut { value: Amount::from_sat(80_000), script_pubkey: r.script_pubkey.clone() }]),
        )
        .unwrap();
    wallet.commit(&parent);
    let child = wallet
        .build(
            &node,
            &TxSpec {
                inputs: testkit::Inputs::Exactly(vec![bitcoin::OutPoint::new(parent.compute_txid(), 0)]),
                outputs: vec![TxOut { value: Amount::from_sat(60_000), script_pubkey: r.script_pubkey.clone() }],
                change: Kind::P2wpkh,
                fee_rate: 5.0,
                rbf: true,
            },
        )
        .unwrap();
    let package =
        json!([bitcoin::consensus::encode::serialize_hex(&parent), bitcoin::consensus::encode::serialize_hex(&child)]);
    assert_eq!(c.call("blockchain.transaction.broadcast_package", json!([package])).unwrap(), json!({"success": true}));
    assert!(node.mempool().unwrap().contains(&child.compute_txid()));
    let verbose = c.call("blockchain.transaction.broadcast_package", json!([package, true])).unwrap();
    assert_eq!(verbose["package_msg"], "success");
}

/// A busy script (more rows than the cache's threshold of 100) is answered from the kept
/// answer through a mempool payment, a new block and a reorg that puts the payment back into
/// the mempool: every answer is the node's, and `/metrics` shows the kept answer was used.
#[test]
fn a_busy_scripts_kept_answer_follows_the_mempool_new_blocks_and_reorgs() {
    let (node, mut wallet) = scenario::busy_chain(NodeOptions::rest(), 43, 120).unwrap();
    let busy = wallet.receiver(Kind::P2wpkh);
    scenario::histories(&node, &mut wallet, std::slice::from_ref(&busy.script_pubkey), &[130]).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let sh = busy.scripthash();
    let mut c = s.client().unwrap();
    let metric = |name: &str| -> f64 {
        let (_, _, text) = testkit::client::http::request(s.http.as_deref().unwrap(), "GET", "/metrics").unwrap();
        let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // The answers against the node's: confirmed history and balance, and the mempool part.
    let check = |c: &mut Client, mempool: &[(String, u64)], when: &str| {
        let truth = Truth::from_node(&node).unwrap();
        let t = &truth.scripts[&sh];
        let history = c.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
        let got: Vec<(i64, String)> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["height"].as_i64().unwrap(), h["tx_hash"].as_str().unwrap().to_string()))
            .collect();
        let mut want: Vec<(i64, String)> =
            t.history.iter().map(|h| (i64::from(h.height), h.txid.to_string())).collect();
        want.extend(mempool.iter().map(|(txid, _)| (0, txid.clone())));
        assert_eq!(got, want, "{when}: history");
        let balance = c.call("blockchain.scripthash.get_balance", json!([sh])).unwrap();
        let unconfirmed: u64 = mempool.iter().map(|(_, v)| v).sum();
        assert_eq!(balance, json!({"confirmed": t.balance, "unconfirmed": unconfirmed}), "{when}: balance");
        let unspent = c.call("blockchain.scripthash.listunspent", json!([sh])).unwrap();
        let unspent = unspent.as_array().unwrap();
        assert_eq!(unspent.len(), t.unspent.len() + mempool.len(), "{when}: unspent outputs");
        for (txid, value) in mempool {
            assert!(unspent.iter().any(|u| u["tx_hash"] == json!(txid) && u["height"] == 0 && u["value"] == *value));
        }
        let status = c.call("blockchain.scripthash.subscribe", json!([sh])).unwrap();
        assert_eq!(status, status_of_history(&history).unwrap(), "{when}: status");
        t.history.len()
    };

    assert!(check(&mut c, &[], "first") >= 130);
    assert_eq!(metric("ferrum_history_cache_entries"), 1.0, "the busy script is kept");
    let misses = metric("ferrum_history_cache_misses_total");

    // A payment in the mempool: laid over the kept confirmed answer.
    let paid = wallet.pay(&node, &busy.script_pubkey, Amount::from_sat(7_000)).unwrap().compute_txid().to_string();
    wait_mempool(&mut c, &sh, 1);
    let in_mempool = [(paid.clone(), 7_000)];
    check(&mut c, &in_mempool, "paid, unconfirmed");

    // Mined: the kept answer is brought forward by the new block's rows.
    node.mine(1).unwrap();
    s.wait_synced(&node).unwrap();
    wait_mempool(&mut c, &sh, 0);
    let confirmed = check(&mut c, &[], "mined");
    assert_eq!(metric("ferrum_history_cache_misses_total"), misses, "brought forward, not read whole");

    // The block undone, replaced by two empty ones: the payment is back in the mempool.
    node.reorg_with(1, &[vec![], vec![]]).unwrap();
    s.wait_synced(&node).unwrap();
    wait_mempool(&mut c, &sh, 1);
    assert_eq!(check(&mut c, &in_mempool, "after the reorg"), confirmed - 1);
    assert!(metric("ferrum_history_cache_misses_total") > misses, "read whole after the reorg");

    // Mined again on the new branch.
    node.mine(1).unwrap();
    s.wait_synced(&node).unwrap();
    wait_mempool(&mut c, &sh, 0);
    assert_eq!(check(&mut c, &[], "mined again"), confirmed);
    assert!(metric("ferrum_history_cache_hits_total") >= 8.0);
}
