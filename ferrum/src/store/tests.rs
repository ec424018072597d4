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
