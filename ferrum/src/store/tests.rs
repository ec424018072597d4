use rocksdb::DB;

use super::rows::{self, Tip};
use super::*;
use crate::types::{ScriptHash, Txid};

fn tip(height: u32, tx_count: u64) -> Tip {
    Tip { height, hash: crate::types::BlockHash([height as u8; 32]), tx_count }
}

#[test]
fn commit_is_visible_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
    assert_eq!(store.tip(), None);
    store.set_mode(PrevoutMode::Utxo).unwrap();
    let mut b = store.batch(0);
    let sh = ScriptHash([4; 32]);
    let io = rows::Io::Output { index: 1, value: 5000 };
    let mut v = Vec::new();
    rows::script_value(&io, &mut v);
    b.put_script_row(&rows::script_key(&rows::sh_prefix(&sh), 0, &io), &v).unwrap();
    b.add_txids(&[Txid([8; 32])]);
    b.set_tip(tip(0, 1));
    store.commit(b, Durability::Bulk).unwrap();
    assert_eq!(store.script_rows(&sh).unwrap(), vec![rows::ScriptRow { tx_num: 0, io }]);
    drop(store);
    let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
    assert_eq!(store.tip(), Some(tip(0, 1)));
    assert_eq!(store.mode(), Some(PrevoutMode::Utxo));
    assert_eq!(store.txids().get(0), Some(Txid([8; 32])));
    assert_eq!(store.script_rows(&ScriptHash([5; 32])).unwrap(), vec![]);
}

#[test]
fn each_typed_row_lands_in_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
    let coin = rows::Coin { sh: [3; 8], value: 700 };
    let (utxo, len) = rows::utxo_key(&[6; 32], 2);
    let mut b = store.batch(0);
    b.put_header(0, &[1; 80], 1).unwrap();
    b.put_txpos(0, &[120]).unwrap();
    b.put_txid_row(&rows::txid_key(&Txid([7; 32]), 0)).unwrap();
    b.put_utxo(&utxo[..len], &coin).unwrap();
    b.put_undo(0, &[coin]).unwrap();
    b.add_txids(&[Txid([7; 32])]);
    b.set_tip(tip(0, 1));
    store.commit(b, Durability::Synced).unwrap();
    assert_eq!(store.load_headers().unwrap(), vec![([1; 80], 1)]);
    assert_eq!(store.txpos(0).unwrap(), Some(rows::txpos_value(&[120])));
    assert_eq!(store.txid_candidates(&Txid([7; 32])).unwrap(), vec![0]);
    assert_eq!(store.utxo_get(&[(utxo, len)]).unwrap(), vec![Some(coin)]);
    assert_eq!(store.undo(0).unwrap(), Some(vec![coin]));
    assert!(store.dump(Table::Script).unwrap().is_empty());

    let mut b = store.batch(1);
    b.delete_header(0).unwrap();
    b.delete_txpos(0).unwrap();
    b.delete_txid_row(&rows::txid_key(&Txid([7; 32]), 0)).unwrap();
    b.delete_utxo(&utxo[..len]).unwrap();
    b.delete_undo(0).unwrap();
    b.set_tip(tip(0, 1));
    store.commit(b, Durability::Synced).unwrap();
    for table in Table::ALL {
        assert!(store.dump(table).unwrap().is_empty(), "{}", table.name());
    }
}

#[test]
fn wrong_network_and_foreign_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap());
    let e = Store::open(dir.path(), Network::Mainnet, &StoreConfig::default()).err().unwrap();
    assert!(matches!(e, StoreError::Network { .. }), "{e}");

    let foreign = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(foreign.path().join("rocksdb")).unwrap();
    std::fs::write(foreign.path().join("rocksdb/notes.txt"), "hello").unwrap();
    let e = Store::open(foreign.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
    assert!(matches!(e, StoreError::Foreign { .. }), "{e}");

    let other = tempfile::tempdir().unwrap();
    drop(DB::open_default(other.path().join("rocksdb")).unwrap());
    let e = Store::open(other.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
    assert!(e.to_string().contains("without Ferrum's tables"), "{e}");
}

#[test]
fn second_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
    let e = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
}

#[test]
fn truncated_txid_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
    let mut b = store.batch(0);
    b.add_txids(&[Txid([1; 32]), Txid([2; 32])]);
    b.set_tip(tip(0, 2));
    store.commit(b, Durability::Synced).unwrap();
    drop(store);
    let f = std::fs::OpenOptions::new().write(true).open(dir.path().join("txids.dat")).unwrap();
    f.set_len(40).unwrap();
    let e = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("holds 1 txids but the index has 2"), "{e}");
}

#[test]
fn format_mismatch_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).unwrap();
    let db = &store.reader.db;
    db.rocks.put_cf(db.cf(CF_META).unwrap(), KEY_FORMAT, 99u32.to_be_bytes()).unwrap();
    drop(store);
    let e = Store::open(dir.path(), Network::Regtest, &StoreConfig::default()).err().unwrap();
    assert!(matches!(e, StoreError::Format { found: 99, .. }), "{e}");
}

/// A pseudo-random txid for row `i`: keys spread over the whole key space, as real ones.
fn spread_txid(i: u64) -> Txid {
    let mut t = [0u8; 32];
    for (j, chunk) in t.chunks_mut(8).enumerate() {
        let x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17 * j as u32 + 5);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    Txid(t)
}

/// The bytes of table blocks this thread has read from files since the last call.
fn block_bytes_read() -> u64 {
    use rocksdb::perf::{PerfContext, PerfMetric};
    thread_local!(static CTX: std::cell::RefCell<PerfContext> = std::cell::RefCell::new(PerfContext::default()));
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        let n = c.metric(PerfMetric::BlockReadByte);
        c.reset();
        n
    })
}

/// Once a table's files are large, their filters are megabytes: whole, larger than a shard of
/// the block cache, which then cannot keep them, and every lookup read one again. Partitioned,
/// a lookup reads a few small blocks.
#[test]
fn a_lookup_in_large_tables_reads_small_blocks_not_whole_filters() {
    const ROWS: u64 = 600_000;
    let dir = tempfile::tempdir().unwrap();
    // The smallest cache: 8 MiB for reads, in shards of 512 KiB, while each table's filter
    // would be about 750 KB whole.
    let store = Store::open(dir.path(), Network::Regtest, &StoreConfig { cache_mb: 16 }).unwrap();
    let coin = rows::Coin { sh: [3; 8], value: 700 };
    for part in 0..4 {
        let (from, to) = (part * ROWS / 4, (part + 1) * ROWS / 4);
        let mut b = store.batch(from);
        let mut keys: Vec<_> = (from..to).map(|i| rows::utxo_key(&spread_txid(i).0, 0)).collect();
        keys.sort_unstable();
        for (k, len) in &keys {
            b.put_utxo(&k[..*len], &coin).unwrap();
        }
        let mut txid_rows: Vec<_> = (from..to).map(|i| rows::txid_key(&spread_txid(i), i)).collect();
        txid_rows.sort_unstable();
        for k in &txid_rows {
            b.put_txid_row(k).unwrap();
        }
        b.add_txids(&(from..to).map(spread_txid).collect::<Vec<_>>());
        b.set_tip(tip(part as u32, to));
        store.commit(b, Durability::Bulk).unwrap();
    }
    let db = &store.reader.db;
    for table in [Table::Utxo, Table::Txid] {
        db.rocks.compact_range_cf(&db.table(table).unwrap(), None::<&[u8]>, None::<&[u8]>);
    }
    let props = db.rocks.property_value_cf(&db.table(Table::Txid).unwrap(), "rocksdb.aggregated-table-properties");
    let props = props.unwrap().unwrap_or_default();
    assert!(props.contains("# index partitions"), "{props}");

    rocksdb::perf::set_perf_stats(rocksdb::perf::PerfStatsLevel::EnableCount);
    let lookups = 2_000u64;
    let run = |label: &str| {
        block_bytes_read();
        for n in 0..lookups {
            let i = n.wrapping_mul(7_919) % ROWS;
            let t = spread_txid(i);
            assert_eq!(store.utxo_get(&[rows::utxo_key(&t.0, 0)]).unwrap(), vec![Some(coin)], "{label} {i}");
            assert_eq!(store.txid_candidates(&t).unwrap(), vec![i], "{label} {i}");
        }
        block_bytes_read() / lookups
    };
    run("warm-up");
    let per_lookup = run("measured");
    rocksdb::perf::set_perf_stats(rocksdb::perf::PerfStatsLevel::Disable);
    // A data block, an index partition and a filter partition per table: a few 4 KiB blocks
    // when partitioned, against the whole filter (hundreds of KB) for every lookup when not.
    assert!(per_lookup < 48 * 1024, "{per_lookup} bytes read from files per pair of lookups");
}
