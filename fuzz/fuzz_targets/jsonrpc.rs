//! A client's message: parsed, and each request's parameters parsed as every method's
//! arguments, and its protocol version as `server.version` would negotiate it.
#![no_main]

use ferrum_codec::jsonrpc::{self, Incoming, Params};
use ferrum_codec::protocol::{Method, ProtocolVersion};
use ferrum_codec::request::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let requests = match jsonrpc::parse(data) {
        Ok(Incoming::Single(r)) => vec![r],
        Ok(Incoming::Batch(items)) => items.into_iter().filter_map(Result::ok).collect(),
        Err(_) => return,
    };
    for r in requests {
        for method in Method::ALL {
            if let Ok(parsed) = Request::parse(*method, &r.params) {
                assert_eq!(parsed.method(), *method);
            }
        }
        if let Params::Positional(args) = &r.params {
            if let Some(v) = ProtocolVersion::negotiate(args.first()) {
                assert!(v >= ProtocolVersion::MIN && v <= ProtocolVersion::MAX, "{v}");
            }
        }
    }
});
