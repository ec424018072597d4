//! Ferrum as a process: kill -9 at random moments, clean stops, node outages, unusable nodes
//! and damaged index directories.

mod common;

use std::time::Duration;

use common::{assert_same_rows, check_truth, clean_index, dump_all, ferrum_exe, stored_height};
use ferrum::PrevoutMode;
use testkit::chain::rng::Rng;
use testkit::chain::scenario::{self, ScenarioOptions};
use testkit::chain::truth::Truth;
use testkit::process::ferrum::test_args;
use testkit::{Ferrum, Node, NodeOptions};

/// Waits until ferrum's log says it indexed the node's tip: at start ("index at the node's
/// tip height=H") or while following ("indexed height=H", "indexed height H/H").
fn wait_synced(ferrum: &Ferrum, node: &Node) {
    let target = node.height().unwrap();
    testkit::wait_for("ferrum at the node's tip", Duration::from_secs(120), || {
        let log = ferrum.log_text();
        (log.contains(&format!("height={target}")) || log.contains(&format!("height {target}/{target}"))).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", ferrum.log_text()));
}

/// Kills ferrum at random moments while it indexes, at least `kills` times, until a run
/// reaches the tip; returns the number of kills.
fn sync_with_kills(node: &Node, args: &[String], db: &std::path::Path, rng: &mut Rng, kills: u32) -> u32 {
    let mut done = 0;
    loop {
        let mut f = Ferrum::start(ferrum_exe(), args, db).unwrap();
        if done >= kills {
            wait_synced(&f, node);
            f.interrupt().unwrap();
            return done;
        }
        std::thread::sleep(Duration::from_millis(30 + rng.below(400)));
        f.kill9();
        done += 1;
    }
}

/// Kills ferrum while it syncs the node's chain and while it follows two reorgs, in each
/// `--prevout-mode` given, then compares the index with a clean one and with the node.
fn kill9_during_sync_and_reorg(options: NodeOptions, modes: &[(PrevoutMode, &str)], kills: u32) {
    let node = Node::start(options).unwrap();
    let s = scenario::build(&node, &ScenarioOptions { seed: 21, height: 500 }).unwrap();
    drop(s);
    let mut rng = Rng::new(99);
    for (mode, name) in modes {
        let db = tempfile::tempdir().unwrap();
        let mut args = test_args(&node, db.path());
        args.extend(["--prevout-mode".into(), (*name).into(), "--index-chunk-blocks".into(), "3".into()]);
        let done = sync_with_kills(&node, &args, db.path(), &mut rng, kills);
        // Then reorgs, killed while undoing and re-applying.
        for depth in [5u32, 40] {
            node.reorg(depth).unwrap();
            let mut f = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
            std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
            f.kill9();
            let mut f = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
            wait_synced(&f, &node);
            assert!(f.interrupt().unwrap().success());
        }
        assert!(done >= kills, "{kills} kills while syncing, 2 more while reorging");
        let clean = clean_index(&node, *mode);
        assert_same_rows(&dump_all(&db.path().join("index")), &dump_all(&clean.path().join("index")));
        let store = ferrum::Store::open_read_only(
            &db.path().join("index"),
            ferrum::Network::Regtest,
            &ferrum::StoreConfig::default(),
        )
        .unwrap();
        assert_eq!(store.mode(), Some(*mode));
        let query = ferrum::Query::new(std::sync::Arc::new(ferrum::Index::new(store).unwrap()));
        check_truth(&query, &Truth::from_node(&node).unwrap());
    }
}

#[test]
fn kill9_during_sync_and_reorg_then_identical_to_a_clean_index() {
    kill9_during_sync_and_reorg(
        NodeOptions::rest(),
        &[(PrevoutMode::Spenttxouts, "spenttxouts"), (PrevoutMode::Utxo, "utxo")],
        18,
    );
}

/// Behind Bitcoin Core 29 (BTCPay's version) the mode chosen is utxo, the one BTCPay users get.
#[test]
fn kill9_behind_core_29_then_identical_to_a_clean_index() {
    kill9_during_sync_and_reorg(NodeOptions::core29(), &[(PrevoutMode::Utxo, "auto")], 12);
}

/// BTCPay moving from Core 29 to Core 30+: the index built in utxo mode becomes a spenttxouts
/// one at the next start, without a reindex, and equals an index built in spenttxouts mode row
/// for row, its utxo and undo tables gone; it then follows new blocks and a reorg.
#[test]
fn a_utxo_index_moves_to_spenttxouts_mode_when_the_node_serves_spent_outputs() {
    let node = Node::start(NodeOptions::core29()).unwrap();
    drop(scenario::build(&node, &ScenarioOptions { seed: 23, height: 150 }).unwrap());
    let db = tempfile::tempdir().unwrap();
    let behind_29 = test_args(&node, db.path());
    let mut f = Ferrum::start(ferrum_exe(), &behind_29, db.path()).unwrap();
    wait_synced(&f, &node);
    assert!(f.interrupt().unwrap().success());
    let open = || {
        ferrum::Store::open_read_only(
            &db.path().join("index"),
            ferrum::Network::Regtest,
            &ferrum::StoreConfig::default(),
        )
        .unwrap()
    };
    let store = open();
    assert_eq!(store.mode(), Some(PrevoutMode::Utxo));
    assert!(!store.dump(ferrum::Table::Utxo).unwrap().is_empty());
    drop(store);

    // The same node, now answering as itself (spenttxouts and blockpart).
    let upgraded: Vec<String> =
        behind_29.iter().map(|a| if *a == node.rpc_addr() { node.bitcoind_rpc_addr() } else { a.clone() }).collect();
    node.mine(5).unwrap();
    let mut f = Ferrum::start(ferrum_exe(), &upgraded, db.path()).unwrap();
    wait_synced(&f, &node);
    node.reorg(3).unwrap();
    wait_synced(&f, &node);
    let log = f.log_text();
    assert!(f.interrupt().unwrap().success());
    assert!(log.contains("moving the index from utxo to spenttxouts mode, without a reindex"), "{log}");
    assert!(log.contains("dropped the utxo and undo tables"), "{log}");
    assert!(log.contains("index opened, prevout mode spenttxouts"), "{log}");
    let store = open();
    assert_eq!(store.mode(), Some(PrevoutMode::Spenttxouts));
    for t in [ferrum::Table::Utxo, ferrum::Table::Undo] {
        assert!(store.dump(t).unwrap().is_empty(), "{} is empty", t.name());
    }
    drop(store);
    let clean = clean_index(&node, PrevoutMode::Spenttxouts);
    assert_same_rows(&dump_all(&db.path().join("index")), &dump_all(&clean.path().join("index")));
}

#[test]
fn sigint_finishes_the_chunk_and_exits_zero() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(400).unwrap();
    let db = tempfile::tempdir().unwrap();
    let mut args = test_args(&node, db.path());
    args.extend(["--index-chunk-blocks".into(), "1".into()]);
    let mut f = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
    testkit::wait_for("some blocks indexed", Duration::from_secs(60), || stored_height(db.path()).filter(|h| *h >= 5))
        .unwrap();
    let status = f.interrupt().unwrap();
    assert!(status.success(), "exit status {status}: {}", f.log_text());
    assert!(f.log_text().contains("stopping: finishing the current chunk"));
    // It resumes where it stopped.
    let f = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
    wait_synced(&f, &node);
}

#[test]
fn node_stopped_mid_sync_then_back() {
    let mut node = Node::start(NodeOptions::rest()).unwrap();
    let s = scenario::build(&node, &ScenarioOptions { seed: 31, height: 400 }).unwrap();
    drop(s);
    let db = tempfile::tempdir().unwrap();
    let mut args = test_args(&node, db.path());
    args.extend(["--index-chunk-blocks".into(), "1".into(), "--poll-interval-ms".into(), "200".into()]);
    let mut f = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
    testkit::wait_for("indexing under way", Duration::from_secs(60), || stored_height(db.path()).filter(|h| *h >= 20))
        .unwrap();
    node.stop().unwrap();
    testkit::wait_for("ferrum noticing", Duration::from_secs(30), || {
        f.log_text().contains("bitcoind unreachable").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", f.log_text()));
    let stopped_at = stored_height(db.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(f.is_running(), "ferrum waits for the node");
    node.start_again().unwrap();
    wait_synced(&f, &node);
    assert!(f.interrupt().unwrap().success());
    let log = f.log_text();
    assert_eq!(log.matches("bitcoind unreachable").count(), 1, "said once:\n{log}");
    assert_eq!(log.matches("ferrum::index::follow: connection to bitcoind restored").count(), 1, "{log}");
    assert!(stopped_at < Some(node.height().unwrap()), "the outage was mid-sync");
    let store = ferrum::Store::open_read_only(
        &db.path().join("index"),
        ferrum::Network::Regtest,
        &ferrum::StoreConfig::default(),
    )
    .unwrap();
    let query = ferrum::Query::new(std::sync::Arc::new(ferrum::Index::new(store).unwrap()));
    check_truth(&query, &Truth::from_node(&node).unwrap());
}

/// Starts ferrum, expects it to exit non-zero with `needle` in its log, and nothing written.
fn refused(args: &[String], db: &std::path::Path, needle: &str) {
    let mut f = Ferrum::start(ferrum_exe(), args, db).unwrap();
    let status = f.wait_exit(Duration::from_secs(30)).unwrap();
    let log = f.log_text();
    assert!(!status.success(), "{log}");
    assert!(log.contains(needle), "expected {needle:?} in:\n{log}");
    assert!(!db.join("index").exists(), "nothing written");
}

#[test]
fn unusable_nodes_are_refused_before_anything_is_written() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let mut args = test_args(&node, db.path());
    args[1] = "testnet".into();
    // The index directory is per network: keep the db dir identical.
    refused(&args, db.path(), "is on regtest, but Ferrum is configured for testnet");

    let args: Vec<String> = test_args(&node, db.path())
        .into_iter()
        .filter(|a| !a.contains(".cookie") && a != "--cookie-file")
        .chain(["--daemon-user".to_string(), "nobody".to_string()])
        .collect();
    let mut f = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
    let status = f.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(!status.success());
    assert!(f.log_text().contains("FERRUM_DAEMON_PASSWORD"), "{}", f.log_text());

    let pruned = Node::start(NodeOptions { extra_args: vec!["-prune=550".into()], ..Default::default() }).unwrap();
    let db2 = tempfile::tempdir().unwrap();
    refused(&test_args(&pruned, db2.path()), db2.path(), "is pruned");
}

#[test]
fn wrong_credentials_exit_nonzero() {
    let node = Node::start(NodeOptions::default()).unwrap();
    let db = tempfile::tempdir().unwrap();
    let url = format!("http://mallory:guess@{}", node.rpc_addr());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferrum"));
    let out = cmd
        .args(["--db-dir", db.path().to_str().unwrap(), "--daemon-p2p-addr", "none"])
        .env("DAEMON_URL", url)
        .env("NET", "regtest")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the RPC credentials"), "{stderr}");
    assert!(!db.path().join("index").exists());
}

#[test]
fn damaged_index_directories_give_clear_errors() {
    let node = Node::start(NodeOptions::rest()).unwrap();
    node.mine(30).unwrap();
    let run_until_exit = |db: &std::path::Path| {
        let mut f = Ferrum::start(ferrum_exe(), &test_args(&node, db), db).unwrap();
        let status = f.wait_exit(Duration::from_secs(30)).unwrap();
        (status, f.log_text())
    };

    // Foreign files where the index should be.
    let db = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(db.path().join("index/rocksdb")).unwrap();
    std::fs::write(db.path().join("index/rocksdb/wallet.dat"), b"not ours").unwrap();
    let (status, log) = run_until_exit(db.path());
    assert!(!status.success() && log.contains("is not a Ferrum index"), "{log}");
    assert!(db.path().join("index/rocksdb/wallet.dat").exists(), "foreign files are left alone");

    // A good index, then damaged in two ways.
    let db = tempfile::tempdir().unwrap();
    let mut f = Ferrum::start(ferrum_exe(), &test_args(&node, db.path()), db.path()).unwrap();
    wait_synced(&f, &node);
    assert!(f.interrupt().unwrap().success());
    let txids = db.path().join("index/txids.dat");
    let len = std::fs::metadata(&txids).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&txids).unwrap();
    file.set_len(len - 40).unwrap();
    drop(file);
    let (status, log) = run_until_exit(db.path());
    assert!(!status.success(), "{log}");
    assert!(log.contains("is corrupt") && log.contains("txids"), "{log}");

    std::fs::write(db.path().join("index/rocksdb/CURRENT"), b"garbage without newline").unwrap();
    let (status, log) = run_until_exit(db.path());
    assert!(!status.success(), "{log}");
    assert!(log.contains("index at") && log.contains("CURRENT"), "{log}");

    // --reindex rebuilds it.
    let mut args = test_args(&node, db.path());
    args.push("--reindex".into());
    let mut f = Ferrum::start(ferrum_exe(), &args, db.path()).unwrap();
    wait_synced(&f, &node);
    assert!(f.interrupt().unwrap().success());
}

#[test]
fn utxo_mode_is_chosen_without_rest_and_kept() {
    let node = Node::start(NodeOptions::default()).unwrap();
    node.mine(20).unwrap();
    let db = tempfile::tempdir().unwrap();
    let mut f = Ferrum::start(ferrum_exe(), &test_args(&node, db.path()), db.path()).unwrap();
    wait_synced(&f, &node);
    assert!(f.interrupt().unwrap().success());
    assert!(f.log_text().contains("prevout mode utxo"), "{}", f.log_text());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .args(["index", "stats", "--json", "--network", "regtest", "--db-dir", db.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["prevout_mode"], "utxo");
    assert_eq!(stats["height"], 20);
    assert_eq!(stats["transactions"], 21);
}
