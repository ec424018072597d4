//! A client's message: parsed, and each request's parameters bound to every method's names.
#![no_main]

use ferrum_codec::jsonrpc::{self, Incoming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let requests = match jsonrpc::parse(data) {
        Ok(Incoming::Single(r)) => vec![r],
        Ok(Incoming::Batch(items)) => items.into_iter().filter_map(Result::ok).collect(),
        Err(_) => return,
    };
    for r in requests {
        for (names, required) in [
            (&["scripthash"][..], 1),
            (&["tx_hash", "verbose"][..], 1),
            (&["tx_hash", "height"][..], 2),
            (&["height", "tx_pos", "merkle"][..], 2),
            (&["start_height", "count", "cp_height"][..], 2),
            (&["client_name", "protocol_version"][..], 0),
            (&[][..], 0),
        ] {
            let _ = r.params.bind(&r.method, names, required, false);
            let _ = r.params.bind(&r.method, names, required, true);
        }
    }
});
