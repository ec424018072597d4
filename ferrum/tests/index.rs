//! The index against real regtest nodes: truth checks in both prevout modes, reorgs of every
//! depth, block announcements.

mod common;

use std::time::Duration;

use bitcoin::{Amount, TxOut};
use common::{assert_same_rows, check_truth, dump_rows, ferrum_exe, InProcess};
use ferrum::{IndexConfig, PrevoutMode};
use testkit::chain::scenario::{self, ScenarioOptions};
use testkit::chain::truth::Truth;
use testkit::process::ferrum::test_args;
use testkit::{Ferrum, Inputs, Kind, Node, NodeOptions, TxSpec, Wallet};

fn small_chunks() -> IndexConfig {
    // Many commits, so a sync crosses chunk boundaries and bulk mode is exercised.
    IndexConfig { chunk_blocks: 37, bulk_threshold: 50, ..IndexConfig::default() }
}

#[test]
fn truth_check_in_both_modes_and_identical_rows() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let s = scenario::build(&node, &ScenarioOptions { seed: 11, height: 520 }).unwrap();
    assert!(s.sent.len() > 300, "a busy chain: {} transactions", s.sent.len());
    let truth = Truth::from_node(&node).unwrap();

    let a = tempfile::tempdir().unwrap();
    let mut spent = InProcess::new(&node, a.path(), PrevoutMode::Spenttxouts, true, small_chunks());
    spent.sync();
    check_truth(&spent.query(), &truth);

    // The same chain over JSON-RPC only, resolving inputs with Ferrum's own utxo table.
    let b = tempfile::tempdir().unwrap();
    let mut utxo = InProcess::new(&node, b.path(), PrevoutMode::Utxo, false, small_chunks());
    utxo.sync();
    check_truth(&utxo.query(), &truth);
    drop(spent);
    drop(utxo);
    assert_same_rows(&dump_rows(a.path()), &dump_rows(b.path()));
}

/// Bitcoin Core 29, BTCPay's version: REST blocks but no spent outputs, so Ferrum chooses utxo
/// mode and reads deep reorgs' spent outputs with `getblock 3`. The truth check holds after the
/// first sync and after reorgs within and beyond the undo window, and the reorged index equals
/// one built afresh on the final chain, row for row.
#[test]
fn behind_core_29_utxo_mode_truth_and_reorgs() {
    let node = Node::start(NodeOptions::core29()).unwrap();
    let s = scenario::build(&node, &ScenarioOptions { seed: 13, height: 300 }).unwrap();
    let mut wallet = s.wallet;
    let dir = tempfile::tempdir().unwrap();
    let config = IndexConfig { undo_depth: 20, ..small_chunks() };
    let mut ix = InProcess::probed(&node, dir.path(), config.clone());
    assert_eq!(ix.index.store().mode(), Some(PrevoutMode::Utxo), "utxo mode behind Core 29");
    ix.sync();
    check_truth(&ix.query(), &Truth::from_node(&node).unwrap());

    for (round, depth) in [(1, 3u32), (2, 30)] {
        activity(&node, &mut wallet, round);
        node.mine(2).unwrap();
        activity(&node, &mut wallet, round + 100);
        node.reorg(depth).unwrap();
        wallet.resync(&node).unwrap();
        ix.sync();
        check_truth(&ix.query(), &Truth::from_node(&node).unwrap());
        eprintln!("checked after a reorg of depth {depth}");
    }
    drop(ix);
    let fresh = tempfile::tempdir().unwrap();
    InProcess::probed(&node, fresh.path(), config).sync();
    assert_same_rows(&common::dump_all(dir.path()), &common::dump_all(fresh.path()));
}

/// Sends a few transactions, some of which later reorgs move, drop or double-spend.
fn activity(node: &Node, wallet: &mut Wallet, round: u32) {
    for kind in Kind::ALL.iter().cycle().skip(round as usize).take(3) {
        let r = wallet.receiver(*kind);
        let sent = wallet.pay(node, &r.script_pubkey, Amount::from_sat(200_000 + u64::from(round) * 1000));
        sent.unwrap_or_else(|e| panic!("{e:#}"));
    }
}

#[test]
fn reorgs_of_every_depth_in_both_modes() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    let s = scenario::build(&node, &ScenarioOptions { seed: 12, height: 260 }).unwrap();
    let mut wallet = s.wallet;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // Undo kept for 100 blocks in utxo mode: the deep reorg below must go to the node.
    let config = IndexConfig { undo_depth: 100, ..small_chunks() };
    let mut indexes = [
        InProcess::new(&node, dirs[0].path(), PrevoutMode::Spenttxouts, true, config.clone()),
        InProcess::new(&node, dirs[1].path(), PrevoutMode::Utxo, false, config),
    ];
    let sync_and_check = |indexes: &mut [InProcess; 2], what: &str| {
        let truth = Truth::from_node(&node).unwrap();
        for ix in indexes.iter_mut() {
            ix.sync();
            check_truth(&ix.query(), &truth);
        }
        eprintln!("checked after {what}");
    };
    sync_and_check(&mut indexes, "initial sync");

    for depth in 1..=10u32 {
        activity(&node, &mut wallet, depth);
        node.mine(depth).unwrap();
        activity(&node, &mut wallet, depth + 100);
        sync_and_check(&mut indexes, &format!("mining {depth}"));
        match depth % 3 {
            // Transactions move to the new branch.
            0 => {
                node.reorg(depth).unwrap();
            }
            // The new branch is empty: the stale transactions wait in the mempool.
            1 => {
                let blocks: Vec<Vec<bitcoin::Transaction>> = (0..=depth).map(|_| Vec::new()).collect();
                node.reorg_with(depth, &blocks).unwrap();
            }
            // A transaction of the stale branch is double-spent in the new one.
            _ => {
                let last_block = node.block(&node.tip().unwrap()).unwrap();
                let victim = last_block
                    .txdata
                    .iter()
                    .skip(1)
                    .find(|tx| tx.input.iter().all(|i| wallet.utxos().all(|u| u.outpoint != i.previous_output)));
                let mut blocks: Vec<Vec<bitcoin::Transaction>> = (0..=depth).map(|_| Vec::new()).collect();
                if let Some(victim) = victim {
                    let to = wallet.receiver(Kind::P2tr);
                    if let Ok(conflict) = wallet.conflicting(
                        &node,
                        victim,
                        vec![TxOut { value: Amount::from_sat(100_000), script_pubkey: to.script_pubkey.clone() }],
                        10.0,
                    ) {
                        blocks[0].push(conflict);
                    }
                }
                node.reorg_with(depth, &blocks).unwrap();
            }
        }
        wallet.resync(&node).unwrap();
        sync_and_check(&mut indexes, &format!("reorg of depth {depth}"));
        node.mine(1).unwrap();
        wallet.resync(&node).unwrap();
    }

    // Deeper than the undo window: 150 blocks replaced, with a spend moved across branches.
    node.mine(20).unwrap();
    let r = wallet.receiver(Kind::P2wpkh);
    let moved = wallet
        .send_spec(
            &node,
            &TxSpec {
                inputs: Inputs::Auto,
                outputs: vec![TxOut { value: Amount::from_sat(777_000), script_pubkey: r.script_pubkey.clone() }],
                change: Kind::P2pkh,
                fee_rate: 3.0,
                rbf: false,
            },
        )
        .unwrap();
    node.mine(140).unwrap();
    sync_and_check(&mut indexes, "mining 160");
    let mut blocks: Vec<Vec<bitcoin::Transaction>> = (0..151).map(|_| Vec::new()).collect();
    blocks[75].push(moved.clone());
    node.reorg_with(150, &blocks).unwrap();
    wallet.resync(&node).unwrap();
    sync_and_check(&mut indexes, "reorg of depth 150");
    assert_eq!(
        indexes[0]
            .query()
            .tx_position(&ferrum::types::Txid::from_hex(&moved.compute_txid().to_string()).unwrap())
            .unwrap()
            .map(|p| p.0),
        Some(node.height().unwrap() - 150 + 75),
        "the moved transaction is where the new branch put it"
    );
    drop(indexes);
    assert_same_rows(&dump_rows(dirs[0].path()), &dump_rows(dirs[1].path()));
}

#[test]
fn new_blocks_arrive_by_p2p_announcement() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(10).unwrap();
    let db = tempfile::tempdir().unwrap();
    let mut args = test_args(&node, db.path());
    // Polling once a minute: only the P2P announcement can bring the block within the wait.
    args.extend(["--poll-interval-ms".into(), "60000".into()]);
    let ferrum = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
    testkit::wait_for("initial sync", Duration::from_secs(30), || {
        ferrum.log_text().contains("index at the node's tip").then_some(())
    })
    .unwrap();
    for n in 1..=3 {
        node.mine(1).unwrap();
        let want = format!("indexed height={}", 10 + n);
        testkit::wait_for("the announced block", Duration::from_secs(20), || {
            ferrum.log_text().contains(&want).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", ferrum.log_text()));
    }
}
