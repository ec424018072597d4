//! Real clients against a serving ferrum: the `electrum-client` crate over TCP and TLS, a
//! `bdk_wallet` descriptor wallet synced with `bdk_electrum`, WebSocket and secure WebSocket,
//! and the self-signed certificate that must survive restarts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bdk_electrum::electrum_client::{self, ConfigBuilder, ElectrumApi};
use bdk_electrum::BdkElectrumClient;
use bdk_wallet::{KeychainKind, Wallet as BdkWallet};
use bitcoin::bip32::Xpriv;
use bitcoin::{Amount, Network};
use common::ferrum_exe;
use futures::{SinkExt, StreamExt};
use testkit::process::served::Served;
use testkit::{Kind, Node, NodeOptions, Wallet};

fn descriptors() -> (String, String) {
    let xprv = Xpriv::new_master(Network::Regtest, &[7u8; 32]).unwrap();
    (format!("wpkh({xprv}/84'/1'/0'/0/*)"), format!("tr({xprv}/86'/1'/0'/1/*)"))
}

fn electrum(url: &str) -> electrum_client::Client {
    let config = ConfigBuilder::new().validate_domain(false).timeout(Some(Duration::from_secs(30))).build();
    electrum_client::Client::from_config(url, config).unwrap()
}

#[test]
fn bdk_wallet_full_scan_and_sync_over_tcp_and_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut funder = Wallet::new(91);
    funder.fund(&node, 3).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();

    let (ext, int) = descriptors();
    let mut bdk =
        BdkWallet::create(ext.clone(), int.clone()).network(Network::Regtest).create_wallet_no_persist().unwrap();
    // Payments to the 1st, 2nd and 9th external addresses (within the stop gap), some confirmed.
    let addrs: Vec<_> = (0..9).map(|_| bdk.reveal_next_address(KeychainKind::External).address).collect();
    let mut confirmed = 0u64;
    for (i, value) in [(0usize, 1_000_000u64), (1, 2_500_000), (8, 700_000), (0, 300_000)] {
        funder.pay(&node, &addrs[i].script_pubkey(), Amount::from_sat(value)).unwrap();
        confirmed += value;
    }
    node.mine(2).unwrap();
    let mut pending = 444_000u64;
    funder.pay(&node, &addrs[1].script_pubkey(), Amount::from_sat(pending)).unwrap();
    let mut tx_count = 5;
    s.wait_synced(&node).unwrap();

    for url in [format!("tcp://{}", s.tcp), format!("ssl://{}", s.ssl)] {
        let mut fresh =
            BdkWallet::create(ext.clone(), int.clone()).network(Network::Regtest).create_wallet_no_persist().unwrap();
        let client = BdkElectrumClient::new(electrum(&url));
        // The pending payment may take a moment to reach the server's mempool view.
        testkit::wait_for("the pending payment", Duration::from_secs(20), || {
            let request = fresh.start_full_scan().build();
            let update = client.full_scan(request, 20, 5, true).ok()?;
            fresh.apply_update(update).ok()?;
            let b = fresh.balance();
            (b.untrusted_pending.to_sat() + b.trusted_pending.to_sat() == pending).then_some(())
        })
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(fresh.balance().confirmed.to_sat(), confirmed, "{url}: confirmed balance");
        assert_eq!(fresh.transactions().count(), tx_count, "{url}: transactions");
        // An incremental sync after another payment is mined with the pending one.
        funder.pay(&node, &addrs[2].script_pubkey(), Amount::from_sat(123_456)).unwrap();
        node.mine(1).unwrap();
        confirmed += 123_456 + pending;
        tx_count += 1;
        s.wait_synced(&node).unwrap();
        let request = fresh.start_sync_with_revealed_spks().build();
        let update = client.sync(request, 5, true).unwrap();
        fresh.apply_update(update).unwrap();
        assert_eq!(fresh.balance().confirmed.to_sat(), confirmed, "{url}: after the sync");
        assert_eq!(fresh.balance().trusted_pending.to_sat() + fresh.balance().untrusted_pending.to_sat(), 0);
        // A new pending payment for the next round.
        pending = 222_000;
        funder.pay(&node, &addrs[3].script_pubkey(), Amount::from_sat(pending)).unwrap();
        tx_count += 1;
    }
}

#[test]
fn electrum_client_crate_headers_proofs_and_subscriptions() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let node = Node::start(NodeOptions::rest()).unwrap();
    let mut funder = Wallet::new(92);
    funder.fund(&node, 2).unwrap();
    let r = funder.receiver(Kind::P2wpkh);
    let tx = funder.pay(&node, &r.script_pubkey, Amount::from_sat(50_000)).unwrap();
    node.mine(1).unwrap();
    let height = node.height().unwrap() as usize;
    let block_of_tx = node.block(&node.tip().unwrap()).unwrap();
    let s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    for url in [format!("tcp://{}", s.tcp), format!("ssl://{}", s.ssl)] {
        let c = electrum(&url);
        let tip = c.block_headers_subscribe().unwrap();
        assert_eq!(tip.height as u32, node.height().unwrap());
        assert_eq!(tip.header.block_hash(), node.tip().unwrap());
        let headers = c.block_headers(0, 10).unwrap();
        assert_eq!(headers.headers.len(), 10);
        assert_eq!(headers.headers[3].block_hash(), node.block_hash(3).unwrap());
        // Merkle proof of the payment, checked against the block's merkle root.
        let proof = c.transaction_get_merkle(&tx.compute_txid(), height).unwrap();
        let mut h = tx.compute_txid().to_raw_hash().to_byte_array();
        let mut pos = proof.pos;
        for sibling in &proof.merkle {
            // The crate keeps the display (byte-reversed) order of the hex.
            let mut sibling = *sibling;
            sibling.reverse();
            let mut data = Vec::with_capacity(64);
            if pos & 1 == 0 {
                data.extend_from_slice(&h);
                data.extend_from_slice(&sibling);
            } else {
                data.extend_from_slice(&sibling);
                data.extend_from_slice(&h);
            }
            h = bitcoin::hashes::sha256d::Hash::hash(&data).to_byte_array();
            pos >>= 1;
        }
        assert_eq!(h, block_of_tx.header.merkle_root.to_raw_hash().to_byte_array());
        // Subscriptions fire on a new block.
        let status = c.script_subscribe(&r.script_pubkey).unwrap();
        assert!(status.is_some());
        let got = c.transaction_get(&tx.compute_txid()).unwrap();
        assert_eq!(got.compute_txid(), tx.compute_txid());
        let history = c.script_get_history(&r.script_pubkey).unwrap();
        assert_eq!(history[0].height as usize, height);
        let unspent = c.script_list_unspent(&r.script_pubkey).unwrap();
        assert_eq!(unspent[0].value, 50_000);
        funder.pay(&node, &r.script_pubkey, Amount::from_sat(10_000)).unwrap();
        let notified = testkit::wait_for("a status notification", Duration::from_secs(20), || {
            c.ping().ok()?;
            c.script_pop(&r.script_pubkey).ok().flatten()
        })
        .unwrap();
        assert_ne!(Some(notified), status);
        // A broadcast through the crate; the node's reason when rejected.
        let err = c.transaction_broadcast_raw(&[1, 0, 0, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("rejected by network rules"), "{err}");
        node.mine(1).unwrap();
        s.wait_synced(&node).unwrap();
    }
}

use bitcoin::hashes::Hash;

/// A TLS client that trusts exactly the certificate in `cert`.
fn tls_connector(cert: &std::path::Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn ws_roundtrip<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    for (id, req) in [
        (1, serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": ["ws-test", "1.4"]})),
        (2, serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "blockchain.headers.subscribe", "params": []})),
    ] {
        ws.send(Message::Text(req.to_string().into())).await.unwrap();
        let msg = ws.next().await.unwrap().unwrap();
        let text = msg.into_text().unwrap();
        assert!(!text.ends_with('\n'), "WebSocket messages are not newline-terminated");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["id"], id);
        if id == 2 {
            return v["result"].clone();
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_secure_websocket() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(7).unwrap();
    let s = tokio::task::block_in_place(|| Served::start(ferrum_exe(), &node, &[]).unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}", s.ws)).await.unwrap();
    assert_eq!(ws_roundtrip(&mut ws).await["height"], 7);

    let tcp = tokio::net::TcpStream::connect(&s.wss).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(&s.db.path().join("ferrum.crt")).connect(server_name, tcp).await.unwrap();
    let (mut wss, _) =
        tokio_tungstenite::client_async(format!("wss://localhost:{}", s.wss.rsplit(':').next().unwrap()), tls)
            .await
            .unwrap();
    assert_eq!(ws_roundtrip(&mut wss).await["height"], 7);
}

#[test]
fn self_signed_certificate_is_kept_across_restarts() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(2).unwrap();
    let mut s = Served::start(ferrum_exe(), &node, &[]).unwrap();
    let cert_path = s.db.path().join("ferrum.crt");
    let first = std::fs::read(&cert_path).unwrap();
    let peer_cert = |addr: &str| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = tls_connector(&cert_path)
                .connect(rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(), tcp)
                .await
                .unwrap();
            tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
        })
    };
    let served_before = peer_cert(&s.ssl);
    assert!(s.ferrum.interrupt().unwrap().success());
    let db = std::mem::replace(&mut s.db, tempfile::tempdir().unwrap());
    let s2 = Served::start_in(ferrum_exe(), &node, db, &[]).unwrap();
    assert_eq!(std::fs::read(s2.db.path().join("ferrum.crt")).unwrap(), first, "the file is unchanged");
    assert_eq!(peer_cert(&s2.ssl), served_before, "the same certificate is served");
    // A true self-signed leaf: issuer and subject are the same name.
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&first).unwrap();
    assert_eq!(der.to_vec(), served_before);
}
