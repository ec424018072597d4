//! The harness against a real regtest node: every transaction kind is accepted and confirmed,
//! reorgs move and drop transactions, restarts keep the chain.

use bitcoin::{Amount, OutPoint, TxOut};
use serde_json::{json, Value};
use testkit::chain::scenario::{self, Feature};
use testkit::{Inputs, Kind, Node, NodeOptions, TxSpec, Wallet};

fn block_of(node: &Node, txid: &bitcoin::Txid) -> Option<bitcoin::BlockHash> {
    // Without -txindex, find the block by scanning recent blocks.
    let tip = node.height().unwrap();
    (1..=tip)
        .rev()
        .take(50)
        .map(|h| node.block_hash(h).unwrap())
        .find(|hash| node.block(hash).unwrap().txdata.iter().any(|tx| tx.compute_txid() == *txid))
}

#[test]
fn every_transaction_kind_is_accepted_and_confirmed() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let mut wallet = Wallet::new(7);
    wallet.fund(&node, 10).unwrap();
    let sent = scenario::send_every_kind(&node, &mut wallet).unwrap();

    for kind in Kind::ALL {
        assert!(sent.iter().any(|s| s.feature == Feature::PayTo(kind)), "no payment to {kind:?}");
        assert!(sent.iter().any(|s| s.feature == Feature::SpendFrom(kind)), "no spend from {kind:?}");
    }
    for feature in
        [Feature::OpReturn, Feature::ManyOut, Feature::ManyIn, Feature::UnconfirmedChild, Feature::Replacement]
    {
        assert!(sent.iter().any(|s| s.feature == feature), "{feature:?} missing");
    }
    assert!(node.mempool().unwrap().is_empty(), "everything mined");
    for s in &sent {
        let block = block_of(&node, &s.txid);
        if s.feature == Feature::Replaced {
            assert!(block.is_none(), "replaced tx {} was mined", s.txid);
            assert_eq!(node.confirmations(&s.txid, None).unwrap(), None);
            continue;
        }
        let block = block.unwrap_or_else(|| panic!("{:?} {} not in a block", s.feature, s.txid));
        let confirmations = node.confirmations(&s.txid, Some(&block)).unwrap();
        assert!(confirmations.unwrap_or(0) >= 1, "{:?} {} unconfirmed", s.feature, s.txid);
    }
    // The unconfirmed children were mined in the same block as their parents.
    let children: Vec<_> = sent.iter().filter(|s| s.feature == Feature::UnconfirmedChild).collect();
    let child_block = block_of(&node, &children[0].txid).unwrap();
    let block = node.block(&child_block).unwrap();
    let child = block.txdata.iter().find(|t| t.compute_txid() == children[0].txid).unwrap();
    let parent = child.input[0].previous_output.txid;
    assert!(block.txdata.iter().any(|t| t.compute_txid() == parent), "child and parent in one block");
    // Every coin the wallet holds is unspent according to the node.
    for u in wallet.utxos() {
        let out = node.call("gettxout", json!([u.outpoint.txid.to_string(), u.outpoint.vout, false])).unwrap();
        assert_eq!(
            out["value"].as_f64().map(|v| (v * 1e8).round() as u64),
            Some(u.txout.value.to_sat()),
            "{}",
            u.outpoint
        );
    }
}

#[test]
fn reorgs_move_and_drop_transactions() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let mut wallet = Wallet::new(8);
    wallet.fund(&node, 5).unwrap();
    let r = wallet.receiver(Kind::P2wpkh);
    let tx = wallet.pay(&node, &r.script_pubkey, Amount::from_sat(1_000_000)).unwrap();
    let txid = tx.compute_txid();
    node.mine(1).unwrap();
    let old_tip = node.tip().unwrap();
    let height = node.height().unwrap();

    // Depth 1: the transaction goes back to the mempool and into the new branch.
    let new = node.reorg(1).unwrap();
    assert_eq!(node.height().unwrap(), height + 1);
    assert_ne!(node.block_hash(height).unwrap(), old_tip);
    assert!(block_of(&node, &txid).is_some_and(|b| new.contains(&b)), "tx moved to the new branch");

    // Depth 3 with a conflicting spend in the new branch: the transaction disappears.
    let spend = wallet.pay(&node, &r.script_pubkey, Amount::from_sat(500_000)).unwrap();
    node.mine(3).unwrap();
    let conflict = wallet
        .conflicting(
            &node,
            &spend,
            vec![TxOut { value: Amount::from_sat(400_000), script_pubkey: r.script_pubkey.clone() }],
            5.0,
        )
        .unwrap();
    let before = node.height().unwrap();
    node.reorg_with(3, &[vec![conflict.clone()], vec![], vec![], vec![]]).unwrap();
    assert_eq!(node.height().unwrap(), before + 1);
    assert!(!node.mempool().unwrap().contains(&spend.compute_txid()), "conflicted tx evicted");
    assert_eq!(node.confirmations(&spend.compute_txid(), None).unwrap(), None);
    assert!(block_of(&node, &conflict.compute_txid()).is_some());
    wallet.resync(&node).unwrap();
    assert!(wallet.utxos().all(|u| u.outpoint.txid != spend.compute_txid()), "dropped tx's outputs are gone");
}

#[test]
fn restart_keeps_the_chain_and_invalidate_reconsider() {
    let mut node = Node::start(NodeOptions { rest: true, ..Default::default() }).unwrap();
    node.mine(20).unwrap();
    let tip = node.tip().unwrap();
    let cookie_before = std::fs::read_to_string(node.cookie_file()).unwrap();
    node.restart().unwrap();
    assert_eq!(node.tip().unwrap(), tip);
    assert_ne!(std::fs::read_to_string(node.cookie_file()).unwrap(), cookie_before, "new cookie each start");
    let (status, body) = node.rest(&format!("/rest/block/{tip}.bin")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, node.block_bytes(&tip).unwrap());

    let h10 = node.block_hash(10).unwrap();
    node.invalidate(&h10).unwrap();
    assert_eq!(node.height().unwrap(), 9);
    node.reconsider(&h10).unwrap();
    assert_eq!(node.tip().unwrap(), tip);
}

#[test]
fn wallet_spends_an_output_of_its_own_unconfirmed_transaction() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let mut wallet = Wallet::new(9);
    wallet.fund(&node, 2).unwrap();
    let r = wallet.receiver(Kind::P2shP2wpkh);
    let parent = wallet.pay(&node, &r.script_pubkey, Amount::from_sat(2_000_000)).unwrap();
    let child = wallet
        .send_spec(
            &node,
            &TxSpec {
                inputs: Inputs::Exactly(vec![OutPoint::new(parent.compute_txid(), 0)]),
                outputs: vec![TxOut { value: Amount::from_sat(1_000_000), script_pubkey: r.script_pubkey.clone() }],
                change: Kind::BareMultisig,
                fee_rate: 2.0,
                rbf: false,
            },
        )
        .unwrap();
    let entry: Value = node.call("getmempoolentry", json!([child.compute_txid().to_string()])).unwrap();
    assert_eq!(entry["depends"][0].as_str(), Some(parent.compute_txid().to_string().as_str()));
}

#[test]
fn scenario_is_deterministic_in_its_keys() {
    let mut a = Wallet::new(42);
    let mut b = Wallet::new(42);
    let mut c = Wallet::new(43);
    for kind in Kind::ALL {
        let (ra, rb, rc) = (a.receiver(kind), b.receiver(kind), c.receiver(kind));
        assert_eq!(ra.script_pubkey, rb.script_pubkey);
        assert_ne!(ra.script_pubkey, rc.script_pubkey);
    }
}
