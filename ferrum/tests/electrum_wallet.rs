//! The real Electrum wallets, headless, against a real node and a real ferrum, set up the way a
//! user follows a setup guide: one server over SSL, auto-connect off, the certificate pinned.
//! Debian's Electrum 4.3.4 (protocol 1.4) and Electrum 4.8.1 (protocol 1.6, from its release
//! source), on Bitcoin Core as built here and on a node answering as Core 29 does (BTCPay's
//! version, utxo mode). Every check is on the wallet's own JSON output, polled with a bounded
//! wait. A failure prints the last lines of the wallet's and ferrum's logs.

mod common;

use std::str::FromStr;
use std::time::Duration;

use bitcoin::{Address, Amount, Transaction};
use common::ferrum_exe;
use serde_json::{json, Value};
use testkit::process::electrum_wallet::{btc_to_sat, ElectrumWallet, Release};
use testkit::process::ferrum::admin_rpc;
use testkit::process::openssl::sha256_fingerprint;
use testkit::process::served::Served;
use testkit::{Kind, Node, NodeOptions, Wallet};

/// An Electrum (segwit) seed: the same wallet every run.
const SEED: &str = "wild father tree among universe such mobile favorite target dynamic credit identify";
const WAIT: Duration = Duration::from_secs(60);

fn address(text: &Value) -> Address {
    Address::from_str(text.as_str().unwrap()).unwrap().assume_checked()
}

/// Polls `f` on the wallet until it gives a value.
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    testkit::wait_for(what, WAIT, &mut f).unwrap_or_else(|e| panic!("{e}"))
}

/// (confirmed, unconfirmed) balance in sat, as the wallet reports it.
fn balance(w: &ElectrumWallet) -> (u64, u64) {
    let b = w.run(&["getbalance"]).unwrap();
    let sat = |k: &str| b.get(k).and_then(Value::as_str).map_or(0, |s| btc_to_sat(s).unwrap());
    (sat("confirmed"), sat("unconfirmed"))
}

/// Whether the wallet lists `txid` with `confirmations` (and, when given, `fee`).
fn listed(w: &ElectrumWallet, txid: &str, confirmations: u64, fee: Option<u64>) -> bool {
    w.history()
        .unwrap()
        .iter()
        .any(|h| h.txid == txid && h.confirmations == confirmations && (fee.is_none() || h.fee_sat == fee))
}

fn synced(w: &ElectrumWallet, node: &Node) -> bool {
    let info = w.run(&["getinfo"]).unwrap();
    let height = u64::from(node.height().unwrap());
    info["connected"] == json!(true)
        && info["server_height"] == json!(height)
        && info["blockchain_height"] == json!(height)
}

fn fee_of(node: &Node, txid: &str) -> u64 {
    let entry = node.call("getmempoolentry", json!([txid])).unwrap();
    Amount::from_btc(entry["fees"]["base"].as_f64().unwrap()).unwrap().to_sat()
}

/// Height of a confirmed transaction, from the node.
fn node_height_of(node: &Node, txid: &str, block: &bitcoin::BlockHash) -> i64 {
    let tx = node.call("getrawtransaction", json!([txid, 1, block.to_string()])).unwrap();
    let header = node.call("getblockheader", json!([tx["blockhash"]])).unwrap();
    header["height"].as_i64().unwrap()
}

#[test]
fn electrum_4_3_over_ssl_from_first_start_to_reorgs_and_restarts() {
    wallet_flow(Release::Debian, NodeOptions::rest());
}

#[test]
fn electrum_4_8_over_ssl_from_first_start_to_reorgs_and_restarts() {
    wallet_flow(Release::V4_8_1, NodeOptions::rest());
}

/// What a BTCPay user has: Bitcoin Core 29 and the current Electrum.
#[test]
fn electrum_4_8_behind_core_29_over_ssl() {
    wallet_flow(Release::V4_8_1, NodeOptions::core29());
}

/// Debian's Electrum, behind Core 29.
#[test]
fn electrum_4_3_behind_core_29_over_ssl() {
    wallet_flow(Release::Debian, NodeOptions::core29());
}

/// The whole flow: first start, coins mined, a payment (bumped on 4.8), an incoming payment
/// replaced by its payer, a reorg, ferrum killed and restarted, the node restarted.
fn wallet_flow(release: Release, options: NodeOptions) {
    let mut node = Node::start(options).unwrap();
    let mut harness = Wallet::new(31);
    harness.fund(&node, 2).unwrap();
    let rpc_port = testkit::free_port();
    let mut served = Served::start(ferrum_exe(), &node, &["--rpc", &format!("127.0.0.1:{rpc_port}")]).unwrap();
    let cert_file = served.db.path().join("ferrum.crt");
    let ferrum_cert = std::fs::read_to_string(&cert_file).unwrap();
    // The fingerprint ferrum shows is that of the certificate it serves.
    let fingerprint =
        admin_rpc(ferrum_exe(), rpc_port, "getinfo", &[]).unwrap()["tls"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(fingerprint, sha256_fingerprint(&cert_file).unwrap());
    assert!(served.ferrum.log_text().contains(&format!("TLS certificate SHA-256 fingerprint {fingerprint}")));

    // 1–2. Configured before first start; connected to ferrum at the node's height, with
    // ferrum's self-signed certificate pinned. Electrum 4.8 is also given the fingerprint.
    let extra = match release {
        Release::Debian => vec![],
        Release::V4_8_1 => vec![("serverfingerprint", json!(fingerprint))],
    };
    let w = ElectrumWallet::start(release, &format!("{}:s", served.ssl), &extra).unwrap();
    w.restore_and_load(SEED).unwrap();
    until("the wallet connected at the node's height", || synced(&w, &node).then_some(()));
    let info = w.run(&["getinfo"]).unwrap();
    assert_eq!(info["server"], json!("127.0.0.1"), "{info}");
    assert_eq!(info["auto_connect"], json!(false), "{info}");
    assert_eq!(info["version"], json!(release.version()), "{info}");
    let pinned = w.pinned_cert_path("127.0.0.1");
    assert_eq!(
        std::fs::read_to_string(&pinned).unwrap().trim(),
        ferrum_cert.trim(),
        "the pinned certificate is ferrum's"
    );
    assert_eq!(sha256_fingerprint(&pinned).unwrap(), fingerprint);
    // The protocol version negotiated, as ferrum's admin sees the session.
    let sessions = admin_rpc(ferrum_exe(), rpc_port, "sessions", &[]).unwrap();
    let session = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["client"] == json!(format!("electrum/{}", release.version())))
        .unwrap_or_else(|| panic!("no session of electrum/{}: {sessions}", release.version()));
    assert_eq!(session["protocol_version"], json!(release.protocol_max()), "{session}");
    assert_eq!(session["protocol"], json!("ssl"), "{session}");

    // 3. Mined to the wallet: balance, history and coins as the node says.
    let mine_addr = address(&w.run(&["getunusedaddress"]).unwrap());
    let block = node.mine_to(1, &mine_addr).unwrap()[0];
    let coinbase = node.block(&block).unwrap().txdata[0].clone();
    let reward = coinbase.output[0].value.to_sat();
    node.mine(100).unwrap();
    until("the mined coins confirmed", || (balance(&w) == (reward, 0)).then_some(()));
    let cb_txid = coinbase.compute_txid().to_string();
    let cb_height = node_height_of(&node, &cb_txid, &block);
    until("the coinbase in the history at its height", || {
        let h = w.history().unwrap();
        (h.len() == 1 && h[0].txid == cb_txid && h[0].height == cb_height).then_some(())
    });
    let coins = w.run(&["listunspent"]).unwrap();
    let coins = coins.as_array().unwrap();
    assert_eq!(coins.len(), 1, "{coins:?}");
    assert_eq!(coins[0]["prevout_hash"], json!(cb_txid));
    assert_eq!(btc_to_sat(coins[0]["value"].as_str().unwrap()).unwrap(), reward);

    // 4. A payment to the harness through ferrum: unconfirmed, then confirmed with the
    // node's fee. Electrum 4.8 bumps its fee first (RBF): the replacement goes through
    // ferrum too, and only it is in the history. (Debian's 4.3.4 refuses `bumpfee`: "RBF is
    // disabled in this version".)
    let payee = harness.receiver(Kind::P2wpkh).address(bitcoin::Network::Regtest).unwrap().to_string();
    let tx = w.run(&["payto", &payee, "1.5"]).unwrap();
    let mut txid = w.run(&["broadcast", tx.as_str().unwrap()]).unwrap().as_str().unwrap().to_string();
    assert!(node.mempool().unwrap().iter().any(|t| t.to_string() == txid), "not relayed to the node");
    until("the payment seen unconfirmed", || listed(&w, &txid, 0, None).then_some(()));
    if release == Release::V4_8_1 {
        // Without fee estimates (a fresh regtest node has none), Electrum 4.8 pays 150 sat/vB.
        let bumped = w.run(&["bumpfee", &txid, "300"]).unwrap();
        let replaced = std::mem::replace(
            &mut txid,
            w.run(&["broadcast", bumped.as_str().unwrap()]).unwrap().as_str().unwrap().to_string(),
        );
        assert_ne!(replaced, txid);
        until("the replacement instead of the payment", || {
            (listed(&w, &txid, 0, None) && !w.history().unwrap().iter().any(|h| h.txid == replaced)).then_some(())
        });
    }
    let fee = fee_of(&node, &txid);
    node.mine(1).unwrap();
    until("the payment confirmed", || listed(&w, &txid, 1, Some(fee)).then_some(()));
    let after_payment = reward - 150_000_000 - fee;
    until("the balance after the payment", || (balance(&w) == (after_payment, 0)).then_some(()));

    // 5. Receiving while the wallet is open: unconfirmed, replaced by the payer (RBF) with a
    // larger payment, then confirmed.
    let receive_addr = address(&w.run(&["getunusedaddress"]).unwrap());
    let original = harness.pay(&node, &receive_addr.script_pubkey(), Amount::from_sat(30_000_000)).unwrap();
    until("the incoming payment unconfirmed", || (balance(&w) == (after_payment, 30_000_000)).then_some(()));
    let outputs =
        vec![bitcoin::TxOut { value: Amount::from_sat(40_000_000), script_pubkey: receive_addr.script_pubkey() }];
    let incoming = harness.conflicting(&node, &original, outputs, 10.0).unwrap();
    harness.send(&node, &incoming).unwrap();
    let (original_txid, incoming_txid) = (original.compute_txid().to_string(), incoming.compute_txid().to_string());
    until("the replacement in the wallet", || {
        let h = w.history().unwrap();
        (balance(&w) == (after_payment, 40_000_000)
            && h.iter().any(|i| i.txid == incoming_txid)
            && !h.iter().any(|i| i.txid == original_txid))
        .then_some(())
    });
    let incoming_block = node.mine(1).unwrap()[0];
    let total = after_payment + 40_000_000;
    until("the incoming payment confirmed", || (balance(&w) == (total, 0)).then_some(()));

    // 6. A reorg of depth 3 that drops the incoming payment and mines it again two blocks
    // later in the new branch.
    let old_height = node_height_of(&node, &incoming_txid, &incoming_block);
    let raw: Transaction = bitcoin::consensus::encode::deserialize_hex(
        node.call("getrawtransaction", json!([incoming_txid, 0, incoming_block.to_string()]))
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    node.mine(2).unwrap();
    let new_blocks = node.reorg_with(3, &[vec![], vec![raw], vec![], vec![]]).unwrap();
    let new_height = node_height_of(&node, &incoming_txid, &new_blocks[1]);
    assert_eq!(new_height, old_height + 1);
    until("the wallet on the new branch", || {
        (synced(&w, &node)
            && w.history().unwrap().iter().any(|h| h.txid == incoming_txid && h.height == new_height)
            && balance(&w) == (total, 0))
            .then_some(())
    });

    // 7. ferrum killed and restarted: the wallet reconnects by itself, same certificate.
    served.restart(&node).unwrap();
    node.mine(1).unwrap();
    until("the wallet back after ferrum's restart", || synced(&w, &node).then_some(()));
    assert_eq!(std::fs::read_to_string(&pinned).unwrap().trim(), ferrum_cert.trim());
    assert_eq!(std::fs::read_to_string(&cert_file).unwrap(), ferrum_cert);

    // bitcoind restarted: ferrum follows it again, and so does the wallet.
    node.restart().unwrap();
    node.mine(1).unwrap();
    until("the wallet back after the node's restart", || synced(&w, &node).then_some(()));
    assert_eq!(balance(&w), (total, 0));
    let ids: Vec<String> = w.history().unwrap().into_iter().map(|h| h.txid).collect();
    for t in [&cb_txid, &txid, &incoming_txid] {
        assert!(ids.contains(t), "{t} missing from {ids:?}");
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[test]
fn electrum_over_plain_tcp() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(10).unwrap();
    let served = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let w = ElectrumWallet::start(Release::Debian, &format!("{}:t", served.tcp), &[]).unwrap();
    w.restore_and_load(SEED).unwrap();
    until("the wallet connected at the node's height", || synced(&w, &node).then_some(()));
    assert!(!w.pinned_cert_path("127.0.0.1").exists(), "no certificate over TCP");

    let addr = address(&w.run(&["getunusedaddress"]).unwrap());
    let block = node.mine_to(1, &addr).unwrap()[0];
    let reward = node.block(&block).unwrap().txdata[0].output[0].value.to_sat();
    node.mine(100).unwrap();
    until("the mined coins confirmed", || (balance(&w) == (reward, 0)).then_some(()));

    let payee = testkit::keys::burn_address().to_string();
    let tx = w.run(&["payto", &payee, "2"]).unwrap();
    let txid = w.run(&["broadcast", tx.as_str().unwrap()]).unwrap().as_str().unwrap().to_string();
    let fee = fee_of(&node, &txid);
    node.mine(1).unwrap();
    until("the payment confirmed", || {
        (balance(&w) == (reward - 200_000_000 - fee, 0) && listed(&w, &txid, 1, Some(fee))).then_some(())
    });
}
