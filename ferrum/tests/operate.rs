//! Running Ferrum as an operator does: started from ElectrumX's environment alone, driven by
//! `ferrum rpc`, scraped at `/metrics`, and its status page rendered in headless Chromium.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::chain::scenario::{self, ScenarioOptions};
use testkit::client::http;
use testkit::process::chromium::chromium;
use testkit::process::electrum_wallet::{ElectrumWallet, Release};
use testkit::process::ferrum::{admin_rpc, test_node_args};
use testkit::process::openssl::sha256_fingerprint;
use testkit::process::served::Served;
use testkit::{Ferrum, Node, NodeOptions};

use common::ferrum_exe;

/// Prometheus text: (name with labels, value) for every sample; panics on a malformed line.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("malformed line {l:?}"));
            let value = value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_string(), value)
        })
        .collect()
}

fn sample(all: &[(String, f64)], name: &str) -> f64 {
    all.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no sample {name}")).1
}

fn served_with_admin(node: &Node) -> (Served, u16, String) {
    let rpc_port = testkit::free_port();
    let rpc_addr = format!("127.0.0.1:{rpc_port}");
    let served = Served::start(ferrum_exe(), node, &["--rpc", &rpc_addr]).unwrap();
    let http = served.http.clone().expect("Served listens on HTTP");
    (served, rpc_port, http)
}

#[test]
fn admin_rpc_answers_every_command() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let built = scenario::build(&node, &ScenarioOptions { seed: 61, height: 30 }).unwrap();
    let (mut served, port, _) = served_with_admin(&node);
    let height = node.height().unwrap();

    let info = admin_rpc(ferrum_exe(), port, "getinfo", &[]).unwrap();
    assert_eq!(info["index"]["height"], json!(height));
    assert_eq!(info["index"]["caught_up"], json!(true));
    assert_eq!(info["server"]["network"], json!("regtest"));
    assert_eq!(info["node"]["reachable"], json!(true));
    assert!(info["memory"]["resident_bytes"].as_u64().unwrap() > 1 << 20, "{info}");
    assert_eq!(info["index"]["prevout_mode"], json!("spenttxouts"));

    // Two sessions from loopback, one subscribed.
    let named = |name: &str, version: &str| {
        let mut c = testkit::client::electrum::Client::connect_raw(&served.tcp).unwrap();
        c.call("server.version", json!([name, version])).unwrap();
        c
    };
    let mut a = named("wallet-a", "1.4");
    let mut b = named("wallet-b", "1.6");
    let receiver = built.wallet.receivers().find(|r| r.address(bitcoin::Network::Regtest).is_some()).unwrap();
    a.call("blockchain.scripthash.subscribe", json!([receiver.scripthash()])).unwrap();
    b.call("server.ping", json!([])).unwrap();
    let sessions = admin_rpc(ferrum_exe(), port, "sessions", &[]).unwrap();
    let list = sessions.as_array().unwrap();
    assert_eq!(list.len(), 2, "{sessions}");
    let session_a = list.iter().find(|s| s["client"] == json!("wallet-a")).unwrap();
    assert_eq!(session_a["subscriptions"], json!(1));
    assert_eq!(session_a["protocol_version"], json!("1.4"));
    assert_eq!(session_a["protocol"], json!("tcp"));
    let session_b = list.iter().find(|s| s["client"] == json!("wallet-b")).unwrap();
    assert!(session_b["requests"].as_u64().unwrap() >= 2, "{session_b}");

    let groups = admin_rpc(ferrum_exe(), port, "groups", &[]).unwrap();
    assert_eq!(
        groups,
        json!([{
            "group": "127.0.0.0/24", "cost": 0.0, "sessions": 2, "session_ids": [session_a["id"], session_b["id"]],
            "requests": groups[0]["requests"], "subscriptions": 1,
        }])
    );
    assert_eq!(admin_rpc(ferrum_exe(), port, "peers", &[]).unwrap(), json!([]));

    // query agrees with what a wallet is told.
    let address = receiver.address(bitcoin::Network::Regtest).unwrap().to_string();
    let q = admin_rpc(ferrum_exe(), port, "query", &[&address]).unwrap();
    let history = b.call("blockchain.scripthash.get_history", json!([receiver.scripthash()])).unwrap();
    let balance = b.call("blockchain.scripthash.get_balance", json!([receiver.scripthash()])).unwrap();
    let confirmed = history.as_array().unwrap().iter().filter(|h| h["height"].as_i64().unwrap() > 0).count();
    assert_eq!(q["scripthash"], json!(receiver.scripthash()));
    assert_eq!(q["transactions"], json!(confirmed));
    assert_eq!(q["balance"], balance);
    let limited = admin_rpc(ferrum_exe(), port, "query", &[&receiver.scripthash(), "1"]).unwrap();
    assert_eq!(limited["history"].as_array().unwrap().len(), 1.min(confirmed));
    let e = admin_rpc(ferrum_exe(), port, "query", &["not-an-address"]).unwrap_err();
    assert!(e.contains("neither a script hash nor an address"), "{e}");

    let check = admin_rpc(ferrum_exe(), port, "reorg-check", &["10"]).unwrap();
    assert_eq!(check["consistent"], json!(true), "{check}");
    assert_eq!(check["checked"], json!(10));
    assert_eq!(check["height"], json!(height));
    assert!(admin_rpc(ferrum_exe(), port, "reorg-check", &["0"]).unwrap_err().contains("bad depth"));

    assert_eq!(
        admin_rpc(ferrum_exe(), port, "log", &["ferrum=trace,info"]).unwrap(),
        json!({"log": "ferrum=trace,info"})
    );
    let e = admin_rpc(ferrum_exe(), port, "log", &["chatty"]).unwrap_err();
    assert!(e.contains("bad log filter"), "{e}");
    // The new filter is in effect: trace lines appear.
    b.call("server.ping", json!([])).unwrap();
    assert!(served.ferrum.log_text().contains("TRACE"), "no trace output after `log`");
    admin_rpc(ferrum_exe(), port, "log", &["info"]).unwrap();

    let e = admin_rpc(ferrum_exe(), port, "frobnicate", &[]).unwrap_err();
    assert!(e.contains("unknown command") && e.contains("getinfo"), "{e}");
    let e = admin_rpc(ferrum_exe(), port, "disconnect", &["somebody"]).unwrap_err();
    assert!(e.contains("neither a session id nor an IP"), "{e}");

    // Disconnect by id closes that session only; by IP, every session from there.
    let gone = admin_rpc(ferrum_exe(), port, "disconnect", &[&session_a["id"].to_string()]).unwrap();
    assert_eq!(gone.as_array().unwrap().len(), 1, "{gone}");
    assert!(a.closes_within(Duration::from_secs(10)), "session a still open");
    b.call("server.ping", json!([])).unwrap();
    let gone = admin_rpc(ferrum_exe(), port, "disconnect", &["127.0.0.1"]).unwrap();
    assert!(gone.to_string().contains(&format!("disconnected session {}", session_b["id"])), "{gone}");
    assert!(b.closes_within(Duration::from_secs(10)), "session b still open");
    assert_eq!(admin_rpc(ferrum_exe(), port, "disconnect", &["99999"]).unwrap(), json!(["no session matches 99999"]));

    assert_eq!(admin_rpc(ferrum_exe(), port, "stop", &[]).unwrap(), json!("stopping"));
    let status = served.ferrum.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "{status}");
    let e = admin_rpc(ferrum_exe(), port, "getinfo", &[]).unwrap_err();
    assert!(e.contains("connecting to the admin RPC"), "{e}");
}

#[test]
fn metrics_health_and_status_page() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let built = scenario::build(&node, &ScenarioOptions { seed: 62, height: 20 }).unwrap();
    let (served, _, http_addr) = served_with_admin(&node);
    let height = node.height().unwrap();
    let mut client = served.client().unwrap();
    let scripthashes: Vec<String> = built.wallet.receivers().take(5).map(|r| r.scripthash()).collect();
    for sh in &scripthashes {
        client.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
    }
    client.call("blockchain.scripthash.subscribe", json!([scripthashes[0]])).unwrap();
    // Errors are counted by code.
    assert!(client.call("blockchain.scripthash.get_history", json!(["zz"])).is_err());
    assert!(client.call("no.such.method", json!([])).is_err());

    let (status, head, text) = http::request(&http_addr, "GET", "/metrics").unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let all = samples(&text);
    assert_eq!(sample(&all, "ferrum_index_height"), f64::from(height));
    assert_eq!(sample(&all, "ferrum_index_caught_up"), 1.0);
    assert_eq!(sample(&all, "ferrum_serving"), 1.0);
    assert_eq!(sample(&all, "ferrum_node_initial_block_download"), 0.0);
    assert_eq!(sample(&all, "ferrum_node_verification_progress"), 1.0);
    assert_eq!(sample(&all, "ferrum_node_reachable"), 1.0);
    assert_eq!(sample(&all, "ferrum_sessions{protocol=\"tcp\"}"), 1.0);
    assert_eq!(sample(&all, "ferrum_subscriptions"), 1.0);
    let history = "{method=\"blockchain.scripthash.get_history\"}";
    assert_eq!(sample(&all, &format!("ferrum_requests_total{history}")), 6.0);
    assert_eq!(sample(&all, &format!("ferrum_request_errors_total{history}")), 1.0);
    assert_eq!(sample(&all, "ferrum_requests_total{method=\"other\"}"), 1.0);
    assert_eq!(sample(&all, "ferrum_errors_total{code=\"-32601\"}"), 1.0);
    assert!(sample(&all, "ferrum_errors_total{code=\"1\"}") >= 1.0);
    assert!(sample(&all, "ferrum_index_transactions") > f64::from(height));
    assert!(sample(&all, "ferrum_db_bytes") > 0.0);
    assert!(sample(&all, "ferrum_index_rows{table=\"script\"}") >= 0.0);
    assert!(sample(&all, "ferrum_node_requests_total") > 0.0);
    assert!(sample(&all, "ferrum_resident_memory_bytes") > 0.0);
    assert!(all.iter().any(|(n, _)| n.starts_with("ferrum_mempool_transactions")));
    // Small histories: read whole, none kept.
    assert!(sample(&all, "ferrum_history_cache_misses_total") >= 5.0);
    assert_eq!(sample(&all, "ferrum_history_cache_entries"), 0.0);
    // The histogram is cumulative and ends at the count.
    let buckets: Vec<f64> = all
        .iter()
        .filter(|(n, _)| {
            n.starts_with("ferrum_request_duration_seconds_bucket{method=\"blockchain.scripthash.get_history\"")
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 11);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(*buckets.last().unwrap(), 6.0);

    let (status, _, body) = http::request(&http_addr, "GET", "/health").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = http::request(&http_addr, "GET", "/api/status").unwrap();
    assert_eq!(status, 200);
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["index"]["height"], json!(height));
    assert_eq!(api["requests"]["per_second"].as_array().unwrap().len(), 60);
    assert_eq!(api["sessions"]["by_protocol"]["tcp"], json!(1));
    // The certificate's fingerprint, for a user to compare with the one their wallet pinned.
    let fingerprint = api["tls"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(fingerprint, sha256_fingerprint(&served.db.path().join("ferrum.crt")).unwrap());
    assert_eq!(http::request(&http_addr, "GET", "/nope").unwrap().0, 404);
    let (status, head, _) = http::request(&http_addr, "POST", "/metrics").unwrap();
    assert_eq!(status, 405, "{head}");
    let (status, head, body) = http::request(&http_addr, "HEAD", "/").unwrap();
    assert_eq!(status, 200);
    // Header names are case-insensitive (hyper writes them in lower case).
    let csp = head.lines().any(|l| l.to_ascii_lowercase().starts_with("content-security-policy: default-src 'none'"));
    assert!(body.is_empty() && csp, "{head}");
    // A request head over the 8 KiB bound is refused, and the listener serves on.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&http_addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let padding = "x".repeat(20_000);
        let _ = write!(s, "GET / HTTP/1.1\r\nHost: {http_addr}\r\nX-Pad: {padding}\r\n\r\n");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let answer = String::from_utf8_lossy(&raw);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    assert_eq!(http::request(&http_addr, "GET", "/health").unwrap().0, 200);
    // HEAD announces the length GET sends.
    let (_, _, page) = http::request(&http_addr, "GET", "/").unwrap();
    let length = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string));
    assert_eq!(length, Some(page.len().to_string()), "{head}");

    // The page as a browser renders it.
    let shot = served.db.path().join("status.png");
    let url = format!("http://{http_addr}/");
    let dom = chromium(&["--virtual-time-budget=5000", "--dump-dom", &url]).unwrap();
    let text = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(text.contains(">Synced<"), "sync state not rendered:\n{text}");
    assert!(
        text.contains(&format!("id=\"tip-height\">{height}<")) || text.contains(&format!(">{height}</")),
        "tip height not rendered:\n{text}"
    );
    assert!(text.contains("regtest"), "network not rendered");
    assert!(text.contains(&fingerprint), "certificate fingerprint not rendered:\n{text}");
    let banner_hidden = text.contains("id=\"banner\"") && text.contains("hidden");
    assert!(banner_hidden, "the not-answering banner is shown:\n{text}");
    let png = screenshot(&url, "1280,1400", &shot, "status-page.png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "screenshot of {} bytes", png.len());
}

/// A snapshot taken while serving starts a replica that opens the index at the snapshot's
/// tip, catches up only the blocks mined since, answers as the original does, and serves the
/// certificate wallets pinned.
#[test]
fn a_snapshot_taken_while_serving_starts_a_replica_that_only_catches_up() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let built = scenario::build(&node, &ScenarioOptions { seed: 62, height: 40 }).unwrap();
    let (served, port, _) = served_with_admin(&node);
    let height = node.height().unwrap();

    let replica_db = tempfile::tempdir().unwrap();
    let dest = replica_db.path().to_path_buf();
    std::fs::remove_dir(&dest).unwrap();
    let mut args = test_node_args(&node, served.db.path());
    args.extend(["snapshot".into(), dest.display().to_string(), "--port".into(), port.to_string(), "--json".into()]);
    let out = std::process::Command::new(ferrum_exe()).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["height"], json!(height), "{answer}");
    let transactions = answer["transactions"].as_u64().unwrap();
    let txids = std::fs::metadata(dest.join("index/txids.dat")).unwrap().len();
    assert_eq!(txids, transactions * 32);
    for file in ["ferrum.crt", "ferrum.key"] {
        let copied = std::fs::read(dest.join(file)).unwrap();
        assert_eq!(copied, std::fs::read(served.db.path().join(file)).unwrap(), "{file}");
    }
    // Never over an existing directory, never a relative one on the server's side.
    let again = admin_rpc(ferrum_exe(), port, "snapshot", &[dest.to_str().unwrap()]).unwrap_err();
    assert!(again.contains("exists"), "{again}");
    let relative = admin_rpc(ferrum_exe(), port, "snapshot", &["replica"]).unwrap_err();
    assert!(relative.contains("absolute"), "{relative}");
    // Another file system (a tmpfs of its own) would copy every table file with commits held
    // off: refused, and nothing left behind.
    let elsewhere = format!("/dev/shm/ferrum-snapshot-{}", std::process::id());
    let refused = admin_rpc(ferrum_exe(), port, "snapshot", &[&elsewhere]).unwrap_err();
    assert!(refused.contains("file system"), "{refused}");
    assert!(!Path::new(&elsewhere).exists());

    // Blocks after the snapshot, one paying an address the replica must then show.
    let earlier: Vec<String> = built.wallet.receivers().take(5).map(|r| r.scripthash()).collect();
    let mut wallet = built.wallet;
    let receiver = wallet.receiver(testkit::Kind::P2tr);
    let pay = wallet.pay(&node, &receiver.script_pubkey, bitcoin::Amount::from_sat(250_000)).unwrap();
    node.mine(3).unwrap();
    let tip = node.height().unwrap();

    let replica = Served::start_in(ferrum_exe(), &node, replica_db, &[]).unwrap();
    testkit::client::electrum::wait_for_height(&replica.tcp, tip, Duration::from_secs(60)).unwrap();
    let log = replica.ferrum.log_text();
    // Opened at the snapshot's tip: only the blocks since were indexed.
    assert!(log.contains(&format!("height=Some({height})")), "{log}");
    let sh = receiver.scripthash();
    let mut original = served.client().unwrap();
    let mut copy = replica.client().unwrap();
    testkit::client::electrum::wait_for_height(&served.tcp, tip, Duration::from_secs(60)).unwrap();
    let history = copy.call("blockchain.scripthash.get_history", json!([sh])).unwrap();
    assert_eq!(history[0]["tx_hash"], json!(pay.compute_txid().to_string()), "{history}");
    assert_eq!(history, original.call("blockchain.scripthash.get_history", json!([sh])).unwrap());
    for sh in &earlier {
        let method = "blockchain.scripthash.get_balance";
        assert_eq!(copy.call(method, json!([sh])).unwrap(), original.call(method, json!([sh])).unwrap());
    }
    let fingerprint = |db: &Path| sha256_fingerprint(&db.join("ferrum.crt")).unwrap();
    assert_eq!(fingerprint(replica.db.path()), fingerprint(served.db.path()));
}

/// `url` as headless Chromium renders it in a window of `size` ("width,height"): the PNG, also
/// kept as `keep_as` in the target's temporary directory for a look after the run.
fn screenshot(url: &str, size: &str, shot: &Path, keep_as: &str) -> Vec<u8> {
    let out = chromium(&[
        "--hide-scrollbars",
        &format!("--window-size={size}"),
        "--virtual-time-budget=5000",
        &format!("--screenshot={}", shot.display()),
        url,
    ])
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(shot, Path::new(env!("CARGO_TARGET_TMPDIR")).join(keep_as)).unwrap();
    std::fs::read(shot).unwrap()
}

/// The QR codes in a PNG image, decoded.
fn qr_codes(png_bytes: &[u8]) -> Vec<String> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    let (width, channels) = (frame.width as usize, frame.color_type.samples());
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, frame.height as usize, |x, y| {
        let px = &pixels[(y * width + x) * channels..][..channels.min(3)];
        (px.iter().map(|&c| u32::from(c)).sum::<u32>() / px.len() as u32) as u8
    });
    image.detect_grids().into_iter().map(|grid| grid.decode().unwrap().1).collect()
}

/// How a wallet connects, three ways that must agree: the `/connect` page as headless Chromium
/// renders it (its QR code read back from a screenshot), `/api/connect`, and `ferrum connect`,
/// which reads the same configuration and certificate without a server.
#[test]
fn connect_page_command_and_qr_code_agree() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(3).unwrap();
    let served = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let http_addr = served.http.clone().expect("Served listens on HTTP");
    let fingerprint = sha256_fingerprint(&served.db.path().join("ferrum.crt")).unwrap();
    let server = format!("{}:s", served.ssl);

    let (status, head, body) = http::request(&http_addr, "GET", "/api/connect").unwrap();
    assert_eq!(status, 200, "{head}");
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["electrum_server"], json!(server));
    assert_eq!(api["tls_sha256"], json!(fingerprint));
    let command = format!("electrum --regtest --oneserver --server {server} --serverfingerprint {fingerprint}");
    assert_eq!(api["electrum_command"], json!(command));
    let services: Vec<String> = api["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}://{}:{}", s["protocol"].as_str().unwrap(), s["host"].as_str().unwrap(), s["port"]))
        .collect();
    let expected: Vec<String> = [("tcp", &served.tcp), ("ssl", &served.ssl), ("ws", &served.ws), ("wss", &served.wss)]
        .iter()
        .map(|(p, a)| format!("{p}://{a}"))
        .collect();
    assert_eq!(services, expected);

    // The page as a browser renders it, and its QR code as a phone's camera would read it.
    let url = format!("http://{http_addr}/connect");
    let dom = chromium(&["--virtual-time-budget=3000", "--dump-dom", &url]).unwrap();
    let text = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(text.contains(&command), "the command line is not on the page:\n{text}");
    assert!(text.contains(&format!("setconfig serverfingerprint {fingerprint}")), "{text}");
    assert!(text.contains("setconfig auto_connect false"), "{text}");
    let shot = served.db.path().join("connect.png");
    let png_bytes = screenshot(&url, "900,1500", &shot, "connect-page.png");
    assert_eq!(qr_codes(&png_bytes), std::slice::from_ref(&server), "the QR code of the screenshot");

    // `ferrum connect`: the same certificate; a listener on every interface named by --host.
    let ssl_port = served.ssl.rsplit_once(':').unwrap().1;
    let mut args = test_node_args(&node, served.db.path());
    args.extend(["--ssl".into(), format!("0.0.0.0:{ssl_port}"), "connect".into(), "--host".into()]);
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(ferrum_exe()).args(&args).args(extra).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(&["wallet-host.lan", "--json"]);
    assert!(ok, "{stderr}");
    let cli: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(cli["electrum_server"], json!(format!("wallet-host.lan:{ssl_port}:s")));
    assert_eq!(cli["tls_sha256"], json!(fingerprint));
    let (ok, stdout, stderr) = run(&["wallet-host.lan"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("setconfig server wallet-host.lan:{ssl_port}:s")), "{stdout}");
    assert!(stdout.contains("\u{2588}"), "no QR code in the text:\n{stdout}");
    let (ok, _, stderr) = run(&["not a host"]);
    assert!(!ok && stderr.contains("is not a host name"), "{stderr}");

    // Electrum 4.8 started with the page's command line connects, to this server alone, and
    // pins this certificate.
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[..2], ["electrum", "--regtest"]);
    let wallet = ElectrumWallet::start_with_args(Release::V4_8_1, &words[2..]).unwrap();
    let height = u64::from(node.height().unwrap());
    testkit::wait_for("Electrum connected at the tip", Duration::from_secs(60), || {
        let info = wallet.run(&["getinfo"]).ok()?;
        (info["connected"] == json!(true) && info["server_height"] == json!(height)).then_some(info)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", wallet.log_tail(40)));
    let pinned = wallet.pinned_cert_path("127.0.0.1");
    assert_eq!(sha256_fingerprint(&pinned).unwrap(), fingerprint);
}

#[test]
fn starts_from_electrumx_environment_alone() {
    let (user, password, salt) = ("electrumx", "a-long-random-password", "0123456789abcdef0123456789abcdef");
    let auth = format!("-rpcauth={}", testkit::rpcauth(user, salt, password));
    let node = Node::start(NodeOptions { extra_args: vec![auth], ..NodeOptions::rest() }).unwrap();
    node.mine(12).unwrap();
    let db = tempfile::tempdir().unwrap();
    let tcp = format!("127.0.0.1:{}", testkit::free_port());
    let rpc_port = testkit::free_port();
    // The first URL is dead: Ferrum fails over to the second, the node.
    let dead = format!("127.0.0.1:{}", testkit::free_port());
    let daemon_url = format!("http://{user}:{password}@{dead}/,http://{user}:{password}@{}/", node.rpc_addr());
    let services = format!("tcp://{tcp},rpc://127.0.0.1:{rpc_port}");
    let env = [
        ("DAEMON_URL", daemon_url.as_str()),
        ("COIN", "BitcoinSegwit"),
        ("NET", "regtest"),
        ("DB_DIRECTORY", db.path().to_str().unwrap()),
        ("SERVICES", services.as_str()),
        ("DB_ENGINE", "leveldb"),
        ("ALLOW_ROOT", "1"),
        ("CACHE_MB", "200"),
        ("MAX_SESSIONS", "50"),
        ("LOG_LEVEL", "debug"),
        ("PEER_DISCOVERY", "off"),
    ];
    let ferrum = Ferrum::start_with_env(ferrum_exe(), &[], &env, db.path()).unwrap();
    testkit::client::electrum::wait_for_height(&tcp, 12, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", ferrum.log_text()));
    let mut client = testkit::client::electrum::Client::connect(&tcp).unwrap();
    let header = client.call("blockchain.block.header", json!([12])).unwrap();
    let block = node.block_bytes(&node.block_hash(12).unwrap()).unwrap();
    assert_eq!(header, json!(hex::encode(&block[..80])));
    let info = admin_rpc(ferrum_exe(), rpc_port, "getinfo", &[]).unwrap();
    assert_eq!(info["index"]["height"], json!(12));
    assert_eq!(info["node"]["address"], json!(node.rpc_addr()));
    let log = ferrum.log_text();
    assert!(log.contains("switched to the next DAEMON_URL"), "{log}");
    assert!(log.contains("DB_ENGINE is ignored") && log.contains("ALLOW_ROOT is ignored"), "{log}");
    assert!(log.contains("log: \"debug\"") && log.contains("DEBUG"), "LOG_LEVEL=debug was not applied");
    assert!(!log.contains(password), "the RPC password was logged");
}
