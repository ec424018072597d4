//! The chain generator: the node accepts every block it builds, the manifest says what the node
//! holds, and the same seed gives the same chain.

use serde_json::json;
use testkit::Node;

use crate::chaingen::{self, Preset};

#[test]
fn same_seed_same_chain_and_the_manifest_matches_the_node() {
    let preset = Preset::tiny();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let first = chaingen::build(&preset, 7, a.path()).unwrap();
    let second = chaingen::build(&preset, 7, b.path()).unwrap();
    assert_eq!(first.tip, second.tip, "same seed, different chains");
    assert_eq!(first.txs, second.txs);
    assert_eq!(
        first.probes.iter().map(|p| &p.scripthash).collect::<Vec<_>>(),
        second.probes.iter().map(|p| &p.scripthash).collect::<Vec<_>>()
    );

    let other = tempfile::tempdir().unwrap();
    let third = chaingen::build(&preset, 8, other.path()).unwrap();
    assert_ne!(first.tip, third.tip, "another seed gave the same chain");

    // The node (restarted on the built directory) holds what the manifest says.
    let node = Node::start_in(a.path(), chaingen::node_options(true, true, &["-txospenderindex=1"])).unwrap();
    assert_eq!(node.height().unwrap(), first.height);
    assert_eq!(node.tip().unwrap().to_string(), first.tip);
    let stats = node.call("getchaintxstats", json!([])).unwrap();
    // The genesis coinbase is not one of the generator's.
    assert_eq!(stats["txcount"].as_u64().unwrap(), first.txs + 1, "{stats}");
    let info = node.call("getindexinfo", json!([])).unwrap();
    assert_eq!(info["txindex"]["synced"], true, "{info}");
    assert_eq!(info["txospenderindex"]["synced"], true, "{info}");

    // The shape: reuse, probes from one transaction to hundreds, every script kind.
    assert!(first.probes.first().unwrap().txs == 1, "{:?}", first.probes);
    assert!(first.probes.last().unwrap().txs >= 100, "{:?}", first.probes);
    for (kind, count) in &first.output_kinds {
        assert!(*count > 0, "no {kind} output in {:?}", first.output_kinds);
    }
    let count = |k: &str| first.address_use.iter().find(|(name, _)| name == k).unwrap().1;
    let more = count("3-10") + count("11-100") + count("101+");
    assert!(count("1") + count("2") > 4 * more, "most addresses are used once or twice: {:?}", first.address_use);
    assert!(count("101+") > 0, "{:?}", first.address_use);
    assert!(!first.wallets.is_empty());
    assert!(first.wallets.iter().all(|w| w.len() == 1_000));
}
