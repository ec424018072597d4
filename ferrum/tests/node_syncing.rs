//! A node still in initial block download, as on a fresh BTCPay install: Ferrum indexes what the
//! node has, but never presents its partial chain as current. Wallets get -102 "bitcoind is still
//! syncing", and the status page, `ferrum rpc getinfo`, `/health` and the log say so, until the
//! node is out of initial block download and the index has reached its tip.
//!
//! The node is kept in initial block download by `-minimumchainwork` above its chain's work
//! (regtest blocks carry 2 units of work each, the genesis block included), and released by
//! mining past it.

mod common;

use std::time::Duration;

use common::ferrum_exe;
use serde_json::{json, Value};
use testkit::client::http;
use testkit::process::chromium::chromium;
use testkit::process::ferrum::admin_rpc;
use testkit::process::served::Served;
use testkit::{Node, NodeOptions};

/// The node leaves initial block download at this height.
const RELEASE_HEIGHT: u32 = 400;

fn in_ibd(node: &Node) -> bool {
    node.call("getblockchaininfo", json!([])).unwrap()["initialblockdownload"] == json!(true)
}

/// One request on a fresh connection: the whole reply, and whether the server then closed.
fn refused_reply(addr: &str) -> (Value, bool) {
    let mut c = testkit::client::electrum::Client::connect_raw(addr).unwrap();
    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"server.version\",\"params\":[\"test\",\"1.4\"]}\n")
        .unwrap();
    let reply = c.read(Duration::from_secs(30)).unwrap().expect("a reply");
    (reply, c.closes_within(Duration::from_secs(10)))
}

#[test]
fn a_node_in_initial_block_download_is_indexed_but_not_served_until_it_is_done() {
    let work = 2 * (RELEASE_HEIGHT + 1);
    let options = NodeOptions { extra_args: vec![format!("-minimumchainwork={work:x}")], ..NodeOptions::rest() };
    let node = Node::start(options).unwrap();
    // More than one bulk chunk (200 blocks) ahead of an empty index: indexed while it syncs.
    node.mine(250).unwrap();
    assert!(in_ibd(&node), "the node is in initial block download");

    let rpc_port = testkit::free_port();
    let served =
        Served::launch(ferrum_exe(), &node, tempfile::tempdir().unwrap(), &["--rpc", &format!("127.0.0.1:{rpc_port}")])
            .unwrap();
    let info = testkit::wait_for("the index at the syncing node's tip", Duration::from_secs(60), || {
        let info = admin_rpc(ferrum_exe(), rpc_port, "getinfo", &[]).ok()?;
        (info["index"]["height"] == json!(250)).then_some(info)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", served.ferrum.log_text()));

    // The index holds the node's whole chain, and still nothing is presented as current.
    let expected = "bitcoind is still syncing: height 250 of about 250";
    assert_eq!(info["index"]["serving"], json!(false), "{info}");
    assert_eq!(info["index"]["caught_up"], json!(false), "{info}");
    let reason = info["index"]["unavailable"].as_str().unwrap();
    assert!(reason.starts_with(expected), "{info}");
    assert!(reason.contains("% verified"), "the node's progress: {reason}");
    assert_eq!(info["node"]["initial_block_download"], json!(true), "{info}");
    let progress = info["node"]["verification_progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress <= 1.0, "{info}");

    // Wallets: error -102 for their request, then the connection closes.
    let (reply, closed) = refused_reply(&served.tcp);
    assert_eq!(reply["id"], json!(7), "{reply}");
    assert_eq!(reply["error"]["code"], json!(-102), "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().starts_with(expected), "{reply}");
    assert!(closed, "the connection is closed after the error");

    // The health check, the status page and the log.
    let http_addr = served.http.clone().unwrap();
    let (status, _, body) = http::request(&http_addr, "GET", "/health").unwrap();
    assert_eq!(status, 503);
    assert!(body.starts_with(expected), "{body}");
    let (_, _, metrics) = http::request(&http_addr, "GET", "/metrics").unwrap();
    assert!(metrics.contains("\nferrum_serving 0\n"), "{metrics}");
    let (_, _, api) = http::request(&http_addr, "GET", "/api/status").unwrap();
    let api: Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["index"]["unavailable"], info["index"]["unavailable"]);
    let dom = chromium(&["--virtual-time-budget=5000", "--dump-dom", &format!("http://{http_addr}/")]).unwrap();
    let page = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(page.contains(">bitcoind is syncing<"), "sync state not rendered:\n{page}");
    assert!(page.contains(expected), "the reason is not on the page:\n{page}");
    let log = served.ferrum.log_text();
    assert!(log.contains("bitcoind is in initial block download (height "), "{log}");
    assert!(!log.contains("index at the node's tip"), "{log}");

    // A few more blocks while it still syncs: still refused.
    node.mine(20).unwrap();
    assert!(in_ibd(&node));
    std::thread::sleep(Duration::from_secs(2));
    let (reply, _) = refused_reply(&served.tcp);
    assert_eq!(reply["error"]["code"], json!(-102), "{reply}");

    // Past the minimum chain work: out of initial block download, and served at once.
    node.mine(RELEASE_HEIGHT + 10 - node.height().unwrap()).unwrap();
    assert!(!in_ibd(&node), "the node left initial block download");
    served.wait_synced(&node).unwrap();
    let mut client = served.client().unwrap();
    let tip = client.call("blockchain.headers.subscribe", json!([])).unwrap();
    assert_eq!(tip["height"], json!(RELEASE_HEIGHT + 10));
    let info = admin_rpc(ferrum_exe(), rpc_port, "getinfo", &[]).unwrap();
    assert_eq!(info["index"]["serving"], json!(true), "{info}");
    assert_eq!(info["index"]["unavailable"], Value::Null, "{info}");
    assert_eq!(http::request(&http_addr, "GET", "/health").unwrap().0, 200);
    // Logged as the index gets there, which may be a moment after the first answer.
    let log = testkit::wait_for("the log of the end of the sync", Duration::from_secs(30), || {
        let log = served.ferrum.log_text();
        log.contains("index at the node's tip").then_some(log)
    })
    .unwrap();
    assert!(log.contains("bitcoind finished its initial block download"), "{log}");
}
