//! A client's message handled by a session: parsing, version negotiation, dispatch to every
//! method and its parameter checks, against an empty index and a node that cannot be reached
//! (so node-bound methods take their error paths).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrum::{
    Auth, Daemon, DaemonConfig, Electrum, ElectrumConfig, Index, Mempool, Network, NodeInfo, Session, SessionState,
    Store, StoreConfig,
};
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    electrum: Arc<Electrum>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("index"), Network::Regtest, &StoreConfig { cache_mb: 16 })
            .expect("empty index");
        let index = Arc::new(Index::new(store).expect("index"));
        let daemon = Arc::new(Daemon::new(&DaemonConfig {
            network: Network::Regtest,
            // Nothing listens on port 1: every node call fails at once.
            rpc_addr: "127.0.0.1:1".into(),
            auth: Auth::UserPass { user: "u".into(), password: "p".into() },
            fallbacks: Vec::new(),
            timeout: Duration::from_secs(1),
        }));
        let node = NodeInfo {
            version: 300000,
            subversion: "/Satoshi:30.0.0/".into(),
            network: Network::Regtest,
            blocks: 0,
            headers: 0,
            best_block_hash: String::new(),
            initial_block_download: false,
            verification_progress: 1.0,
            rest: true,
            spenttxouts: true,
            blockpart: true,
            txindex: false,
            zmq: Vec::new(),
        };
        let mempool = Arc::new(Mempool::new(daemon.clone()));
        let electrum = Arc::new(Electrum::new(ElectrumConfig::default(), index, mempool, daemon, node));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        World { runtime, electrum, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // The first line is negotiated first (or not), as a client would; the rest follows.
    let mut session = Session::new(w.electrum.clone(), SessionState::new(1, 100));
    w.runtime.block_on(async {
        for message in data.split(|b| *b == b'\n') {
            let _ = session.handle_message(message).await;
            if session.state.close_after_reply {
                break;
            }
        }
    });
});
