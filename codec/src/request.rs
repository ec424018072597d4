//! A client's request, parsed once: the method and its arguments bound to the method's
//! signature and converted with ElectrumX's coercions, or the error ElectrumX answers.

use serde_json::Value;

use crate::coerce::{boolean, height, hex_bytes, non_negative, py_str, scripthash, txid};
use crate::jsonrpc::{Params, RpcError};
use crate::protocol::Method;
use crate::types::{ScriptHash, Txid};

/// A request of a known method, with its arguments checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    BlockHeader {
        height: u32,
        /// 0: no proof.
        cp_height: u32,
    },
    BlockHeaders {
        start_height: u32,
        count: u32,
        /// 0: no proof.
        cp_height: u32,
    },
    EstimateFee {
        number: u32,
        /// `CONSERVATIVE` or `ECONOMICAL`.
        mode: Option<String>,
    },
    HeadersSubscribe,
    RelayFee,
    ScripthashGetBalance(ScriptHash),
    ScripthashGetHistory(ScriptHash),
    ScripthashGetMempool(ScriptHash),
    ScripthashListUnspent(ScriptHash),
    ScripthashSubscribe {
        scripthash: ScriptHash,
        /// The script hash as the client wrote it, repeated in notifications.
        shown: Value,
    },
    ScripthashUnsubscribe(ScriptHash),
    /// `blockchain.scriptpubkey.*`: the script's hash, which the methods of 1.7 answer for as
    /// the `blockchain.scripthash.*` ones do.
    ScriptpubkeyGetBalance(ScriptHash),
    ScriptpubkeyGetHistory(ScriptHash),
    ScriptpubkeyGetMempool(ScriptHash),
    ScriptpubkeyListUnspent(ScriptHash),
    ScriptpubkeySubscribe(ScriptHash),
    ScriptpubkeyUnsubscribe(ScriptHash),
    OutpointSubscribe {
        txid: Txid,
        vout: u32,
        /// The output's script, when the client sent it (`spk_hint`), hashed.
        hint: Option<ScriptHash>,
    },
    OutpointGetStatus {
        txid: Txid,
        vout: u32,
        hint: Option<ScriptHash>,
    },
    OutpointUnsubscribe {
        txid: Txid,
        vout: u32,
    },
    TransactionTestMempoolAccept {
        /// Hex, checked.
        raw_txs: Vec<String>,
    },
    TransactionBroadcast {
        /// Hex, checked.
        raw_tx: String,
    },
    TransactionBroadcastPackage {
        /// Hex, checked.
        raw_txs: Vec<String>,
        verbose: bool,
    },
    TransactionGet {
        txid: Txid,
        verbose: bool,
    },
    TransactionGetMerkle {
        txid: Txid,
        height: u32,
    },
    TransactionIdFromPos {
        height: u32,
        tx_pos: u64,
        merkle: bool,
    },
    MempoolGetFeeHistogram,
    MempoolGetInfo,
    MempoolRecent,
    ServerAddPeer {
        /// The peer's `server.features`, as sent.
        features: Value,
    },
    ServerBanner,
    ServerDonationAddress,
    ServerFeatures,
    ServerPeersSubscribe,
    /// Checked against the session's version by the method: 1.7 takes `pong_len` and `data`.
    ServerPing {
        pong_len: Option<Value>,
        data: Option<Value>,
    },
    ServerVersion {
        client_name: Option<Value>,
        protocol_version: Option<Value>,
    },
}

/// The arguments of one call, bound to the method's parameter names.
struct Args(Vec<Option<Value>>);

impl Args {
    fn bind(method: Method, params: &Params, names: &[&str], required: usize) -> Result<Args, RpcError> {
        params.bind(method.name(), names, required, false).map(Args)
    }

    /// The argument at `i`, `None` when not sent.
    fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i).and_then(Option::as_ref)
    }

    /// A required argument (bound, so present unless sent as nothing).
    fn at(&self, i: usize) -> &Value {
        self.get(i).unwrap_or(&Value::Null)
    }

    fn height_or_zero(&self, i: usize) -> Result<u32, RpcError> {
        self.get(i).map(height).transpose().map(Option::unwrap_or_default)
    }

    fn flag(&self, i: usize, message: impl FnOnce(&Value) -> String) -> Result<bool, RpcError> {
        self.get(i).map_or(Ok(false), |v| boolean(v, &message(v)))
    }
}

impl Request {
    /// Binds and converts the parameters of a call to `method`.
    pub fn parse(method: Method, params: &Params) -> Result<Request, RpcError> {
        let none = |request: Request| Args::bind(method, params, &[], 0).map(|_| request);
        let script = |make: fn(ScriptHash) -> Request| {
            let a = Args::bind(method, params, &["scripthash"], 1)?;
            scripthash(a.at(0)).map(make)
        };
        let spk = |make: fn(ScriptHash) -> Request| {
            let a = Args::bind(method, params, &["spk"], 1)?;
            script_of(a.at(0)).map(make)
        };
        Ok(match method {
            Method::BlockHeader => {
                let a = Args::bind(method, params, &["height", "cp_height"], 1)?;
                Request::BlockHeader { height: height(a.at(0))?, cp_height: a.height_or_zero(1)? }
            }
            Method::BlockHeaders => {
                let a = Args::bind(method, params, &["start_height", "count", "cp_height"], 2)?;
                Request::BlockHeaders {
                    start_height: height(a.at(0))?,
                    count: height(a.at(1))?,
                    cp_height: a.height_or_zero(2)?,
                }
            }
            Method::EstimateFee => {
                let a = Args::bind(method, params, &["number", "mode"], 1)?;
                let number = height(a.at(0))?;
                let mode = match a.get(1) {
                    Some(Value::String(m)) => Some(m.to_uppercase()),
                    _ => None,
                };
                if let Some(m) = &mode {
                    if m != "CONSERVATIVE" && m != "ECONOMICAL" {
                        return Err(RpcError::bad_request(format!("unknown estimatefee mode: {m}")));
                    }
                }
                Request::EstimateFee { number, mode }
            }
            Method::HeadersSubscribe => none(Request::HeadersSubscribe)?,
            Method::RelayFee => none(Request::RelayFee)?,
            Method::ScripthashGetBalance => script(Request::ScripthashGetBalance)?,
            Method::ScripthashGetHistory => script(Request::ScripthashGetHistory)?,
            Method::ScripthashGetMempool => script(Request::ScripthashGetMempool)?,
            Method::ScripthashListUnspent => script(Request::ScripthashListUnspent)?,
            Method::ScripthashUnsubscribe => script(Request::ScripthashUnsubscribe)?,
            Method::ScripthashSubscribe => {
                let a = Args::bind(method, params, &["scripthash"], 1)?;
                Request::ScripthashSubscribe { scripthash: scripthash(a.at(0))?, shown: a.at(0).clone() }
            }
            Method::ScriptpubkeyGetBalance => spk(Request::ScriptpubkeyGetBalance)?,
            Method::ScriptpubkeyGetHistory => spk(Request::ScriptpubkeyGetHistory)?,
            Method::ScriptpubkeyGetMempool => spk(Request::ScriptpubkeyGetMempool)?,
            Method::ScriptpubkeyListUnspent => spk(Request::ScriptpubkeyListUnspent)?,
            Method::ScriptpubkeySubscribe => spk(Request::ScriptpubkeySubscribe)?,
            Method::ScriptpubkeyUnsubscribe => spk(Request::ScriptpubkeyUnsubscribe)?,
            Method::OutpointSubscribe | Method::OutpointGetStatus => {
                // `spk_hint` is optional, as the protocol's text has it (ElectrumX 2.0 wants it,
                // and ignores it).
                let a = Args::bind(method, params, &["tx_hash", "txout_idx", "spk_hint"], 2)?;
                let (txid, vout) = (txid(a.at(0))?, vout(a.at(1))?);
                let hint = a.get(2).filter(|v| !v.is_null()).map(script_of).transpose()?;
                if method == Method::OutpointSubscribe {
                    Request::OutpointSubscribe { txid, vout, hint }
                } else {
                    Request::OutpointGetStatus { txid, vout, hint }
                }
            }
            Method::OutpointUnsubscribe => {
                let a = Args::bind(method, params, &["tx_hash", "txout_idx"], 2)?;
                Request::OutpointUnsubscribe { txid: txid(a.at(0))?, vout: vout(a.at(1))? }
            }
            Method::TransactionTestMempoolAccept => {
                let a = Args::bind(method, params, &["raw_txs"], 1)?;
                let Value::Array(list) = a.at(0) else {
                    return Err(RpcError::bad_request(format!("{} should be a list", py_str(a.at(0)))));
                };
                Request::TransactionTestMempoolAccept {
                    raw_txs: list.iter().map(hex_string).collect::<Result<_, _>>()?,
                }
            }
            Method::TransactionBroadcast => {
                let a = Args::bind(method, params, &["raw_tx"], 1)?;
                Request::TransactionBroadcast { raw_tx: hex_string(a.at(0))? }
            }
            Method::TransactionBroadcastPackage => {
                let a = Args::bind(method, params, &["raw_txs", "verbose"], 1)?;
                let Value::Array(list) = a.at(0) else {
                    return Err(RpcError::bad_request(format!("{} should be a list", py_str(a.at(0)))));
                };
                let raw_txs = list.iter().map(hex_string).collect::<Result<_, _>>()?;
                let verbose = a.flag(1, |v| format!("{} should be a boolean value", py_str(v)))?;
                Request::TransactionBroadcastPackage { raw_txs, verbose }
            }
            Method::TransactionGet => {
                let a = Args::bind(method, params, &["tx_hash", "verbose"], 1)?;
                let txid = txid(a.at(0))?;
                Request::TransactionGet { txid, verbose: a.flag(1, |_| "\"verbose\" must be a boolean".into())? }
            }
            Method::TransactionGetMerkle => {
                let a = Args::bind(method, params, &["tx_hash", "height"], 2)?;
                Request::TransactionGetMerkle { txid: txid(a.at(0))?, height: height(a.at(1))? }
            }
            Method::TransactionIdFromPos => {
                let a = Args::bind(method, params, &["height", "tx_pos", "merkle"], 2)?;
                Request::TransactionIdFromPos {
                    height: height(a.at(0))?,
                    tx_pos: non_negative(a.at(1))?,
                    merkle: a.flag(2, |_| "\"merkle\" must be a boolean".into())?,
                }
            }
            Method::MempoolGetFeeHistogram => none(Request::MempoolGetFeeHistogram)?,
            Method::MempoolGetInfo => none(Request::MempoolGetInfo)?,
            Method::MempoolRecent => none(Request::MempoolRecent)?,
            Method::ServerAddPeer => {
                let a = Args::bind(method, params, &["features"], 1)?;
                Request::ServerAddPeer { features: a.at(0).clone() }
            }
            Method::ServerBanner => none(Request::ServerBanner)?,
            Method::ServerDonationAddress => none(Request::ServerDonationAddress)?,
            Method::ServerFeatures => none(Request::ServerFeatures)?,
            Method::ServerPeersSubscribe => none(Request::ServerPeersSubscribe)?,
            Method::ServerPing => {
                let a = Args::bind(method, params, &["pong_len", "data"], 0)?;
                Request::ServerPing { pong_len: a.get(0).cloned(), data: a.get(1).cloned() }
            }
            Method::ServerVersion => {
                // Extra positional and named arguments are tolerated (protocol 1.6).
                let names = ["client_name", "protocol_version"];
                let mut a = match params {
                    Params::Positional(_) => params.bind(method.name(), &names, 0, true)?,
                    Params::Named(map) => names.iter().map(|n| map.get(*n).cloned()).collect(),
                }
                .into_iter();
                Request::ServerVersion { client_name: a.next().flatten(), protocol_version: a.next().flatten() }
            }
        })
    }

    /// The method requested.
    pub fn method(&self) -> Method {
        match self {
            Request::BlockHeader { .. } => Method::BlockHeader,
            Request::BlockHeaders { .. } => Method::BlockHeaders,
            Request::EstimateFee { .. } => Method::EstimateFee,
            Request::HeadersSubscribe => Method::HeadersSubscribe,
            Request::RelayFee => Method::RelayFee,
            Request::ScripthashGetBalance(_) => Method::ScripthashGetBalance,
            Request::ScripthashGetHistory(_) => Method::ScripthashGetHistory,
            Request::ScripthashGetMempool(_) => Method::ScripthashGetMempool,
            Request::ScripthashListUnspent(_) => Method::ScripthashListUnspent,
            Request::ScripthashSubscribe { .. } => Method::ScripthashSubscribe,
            Request::ScripthashUnsubscribe(_) => Method::ScripthashUnsubscribe,
            Request::ScriptpubkeyGetBalance(_) => Method::ScriptpubkeyGetBalance,
            Request::ScriptpubkeyGetHistory(_) => Method::ScriptpubkeyGetHistory,
            Request::ScriptpubkeyGetMempool(_) => Method::ScriptpubkeyGetMempool,
            Request::ScriptpubkeyListUnspent(_) => Method::ScriptpubkeyListUnspent,
            Request::ScriptpubkeySubscribe(_) => Method::ScriptpubkeySubscribe,
            Request::ScriptpubkeyUnsubscribe(_) => Method::ScriptpubkeyUnsubscribe,
            Request::OutpointSubscribe { .. } => Method::OutpointSubscribe,
            Request::OutpointGetStatus { .. } => Method::OutpointGetStatus,
            Request::OutpointUnsubscribe { .. } => Method::OutpointUnsubscribe,
            Request::TransactionTestMempoolAccept { .. } => Method::TransactionTestMempoolAccept,
            Request::TransactionBroadcast { .. } => Method::TransactionBroadcast,
            Request::TransactionBroadcastPackage { .. } => Method::TransactionBroadcastPackage,
            Request::TransactionGet { .. } => Method::TransactionGet,
            Request::TransactionGetMerkle { .. } => Method::TransactionGetMerkle,
            Request::TransactionIdFromPos { .. } => Method::TransactionIdFromPos,
            Request::MempoolGetFeeHistogram => Method::MempoolGetFeeHistogram,
            Request::MempoolGetInfo => Method::MempoolGetInfo,
            Request::MempoolRecent => Method::MempoolRecent,
            Request::ServerAddPeer { .. } => Method::ServerAddPeer,
            Request::ServerBanner => Method::ServerBanner,
            Request::ServerDonationAddress => Method::ServerDonationAddress,
            Request::ServerFeatures => Method::ServerFeatures,
            Request::ServerPeersSubscribe => Method::ServerPeersSubscribe,
            Request::ServerPing { .. } => Method::ServerPing,
            Request::ServerVersion { .. } => Method::ServerVersion,
        }
    }
}

/// An output index: a non-negative integer, converted as a height is (one too large for any
/// transaction stands for every larger one: no such output exists).
fn vout(v: &Value) -> Result<u32, RpcError> {
    height(v)
}

/// The script hash of a scriptPubKey sent as hex, as ElectrumX's `spk_to_scripthash`.
fn script_of(v: &Value) -> Result<ScriptHash, RpcError> {
    hex_bytes(v).map(|script| ScriptHash::of_script(&script))
}

/// A hex string of whole bytes, as sent.
fn hex_string(v: &Value) -> Result<String, RpcError> {
    hex_bytes(v)?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(method: Method, params: Value) -> Result<Request, String> {
        let params = match params {
            Value::Array(a) => Params::Positional(a),
            Value::Object(m) => Params::Named(m),
            other => panic!("{other}"),
        };
        Request::parse(method, &params).map_err(|e| e.message)
    }

    const SH: &str = "f04bf26fc16a27abaa2f10540da7a24e369e6ec408f2d901202a7c0cd4a6112d";

    #[test]
    fn every_method_round_trips() {
        for m in Method::ALL {
            let args = match m {
                Method::BlockHeader => json!([1]),
                Method::BlockHeaders => json!([0, 2]),
                Method::EstimateFee => json!([6]),
                Method::ServerAddPeer => json!([{}]),
                Method::TransactionBroadcast => json!(["00"]),
                Method::TransactionBroadcastPackage => json!([["00"]]),
                Method::TransactionGet => json!([SH]),
                Method::TransactionGetMerkle => json!([SH, 1]),
                Method::TransactionIdFromPos => json!([1, 0]),
                Method::TransactionTestMempoolAccept => json!([["00"]]),
                Method::OutpointSubscribe | Method::OutpointGetStatus | Method::OutpointUnsubscribe => json!([SH, 0]),
                m if m.name().starts_with("blockchain.scripthash.") => json!([SH]),
                m if m.name().starts_with("blockchain.scriptpubkey.") => json!(["0014ab"]),
                _ => json!([]),
            };
            assert_eq!(parse(*m, args).map(|r| r.method()), Ok(*m));
        }
    }

    #[test]
    fn arguments_bound_and_coerced() {
        assert_eq!(
            parse(Method::BlockHeaders, json!({"start_height": "7", "count": 2.9})),
            Ok(Request::BlockHeaders { start_height: 7, count: 2, cp_height: 0 })
        );
        assert_eq!(
            parse(Method::EstimateFee, json!([2, "economical"])),
            Ok(Request::EstimateFee { number: 2, mode: Some("ECONOMICAL".into()) })
        );
        assert_eq!(parse(Method::EstimateFee, json!([2, "fast"])), Err("unknown estimatefee mode: FAST".into()));
        assert_eq!(parse(Method::EstimateFee, json!([2, 5])), Ok(Request::EstimateFee { number: 2, mode: None }));
        let Ok(Request::ScripthashSubscribe { scripthash, shown }) =
            parse(Method::ScripthashSubscribe, json!([SH.to_uppercase()]))
        else {
            panic!("subscribe")
        };
        assert_eq!((scripthash.to_hex().as_str(), shown), (SH, json!(SH.to_uppercase())));
        assert_eq!(
            parse(Method::ScripthashGetBalance, json!([SH, 1])),
            Err("2 arguments passed to method blockchain.scripthash.get_balance taking at most 1".into())
        );
        assert_eq!(
            parse(Method::TransactionGetMerkle, json!({"tx_hash": SH})),
            Err("method \"blockchain.transaction.get_merkle\" requires parameter \"height\"".into())
        );
        assert_eq!(parse(Method::TransactionGet, json!([SH, null])), Err("\"verbose\" must be a boolean".into()));
        assert_eq!(
            parse(Method::TransactionIdFromPos, json!([1, 2, 1])),
            Ok(Request::TransactionIdFromPos { height: 1, tx_pos: 2, merkle: true })
        );
        assert_eq!(parse(Method::TransactionBroadcast, json!(["0g"])), Err("0g should be a hex string".into()));
        assert_eq!(parse(Method::TransactionBroadcastPackage, json!(["00"])), Err("00 should be a list".into()));
        assert_eq!(
            parse(Method::TransactionBroadcastPackage, json!([["00"], "yes"])),
            Err("yes should be a boolean value".into())
        );
        assert_eq!(
            parse(Method::ServerVersion, json!(["wallet", "1.4", "extra"])),
            Ok(Request::ServerVersion { client_name: Some(json!("wallet")), protocol_version: Some(json!("1.4")) })
        );
        assert_eq!(
            parse(Method::ServerVersion, json!({"protocol_version": ["1.4", "1.6"], "other": 1})),
            Ok(Request::ServerVersion { client_name: None, protocol_version: Some(json!(["1.4", "1.6"])) })
        );
        assert_eq!(
            parse(Method::ServerPing, json!([1, "x", 3])).map(|_| ()),
            Err("3 arguments passed to method server.ping taking at most 2".into())
        );
    }

    #[test]
    fn protocol_1_7_arguments() {
        // A scriptPubKey stands for its hash: sha256 of the script's bytes.
        let p2wpkh = "0014751e76e8199196d454941c45d1b3a323f1433bd6";
        let expected = ScriptHash::of_script(&hex::decode(p2wpkh).unwrap());
        assert_eq!(
            parse(Method::ScriptpubkeyGetHistory, json!([p2wpkh])),
            Ok(Request::ScriptpubkeyGetHistory(expected))
        );
        assert_eq!(
            parse(Method::ScriptpubkeySubscribe, json!({"spk": p2wpkh})),
            Ok(Request::ScriptpubkeySubscribe(expected))
        );
        assert_eq!(parse(Method::ScriptpubkeyGetBalance, json!(["0014z"])), Err("0014z should be a hex string".into()));
        assert_eq!(
            parse(Method::ScriptpubkeyGetBalance, json!([SH.to_string() + "0"])).map(|_| ()),
            Err(format!("{SH}0 should be a hex string"))
        );
        // The outpoint's script is optional.
        let txid = crate::coerce::txid(&json!(SH)).unwrap();
        assert_eq!(
            parse(Method::OutpointSubscribe, json!([SH, "3"])),
            Ok(Request::OutpointSubscribe { txid, vout: 3, hint: None })
        );
        assert_eq!(
            parse(Method::OutpointGetStatus, json!([SH, 0, p2wpkh])),
            Ok(Request::OutpointGetStatus { txid, vout: 0, hint: Some(expected) })
        );
        assert_eq!(
            parse(Method::OutpointGetStatus, json!([SH, -1])),
            Err("-1 should be a non-negative integer".into())
        );
        assert_eq!(parse(Method::OutpointSubscribe, json!(["xy", 0])), Err("xy should be a transaction hash".into()));
        assert_eq!(
            parse(Method::OutpointUnsubscribe, json!([SH, 1, "00"])).map(|_| ()),
            Err("3 arguments passed to method blockchain.outpoint.unsubscribe taking at most 2".into())
        );
        assert_eq!(
            parse(Method::TransactionTestMempoolAccept, json!([["00", "0a"]])),
            Ok(Request::TransactionTestMempoolAccept { raw_txs: vec!["00".into(), "0a".into()] })
        );
        assert_eq!(parse(Method::TransactionTestMempoolAccept, json!(["00"])), Err("00 should be a list".into()));
        assert_eq!(
            parse(Method::ServerPing, json!([4, "ab"])),
            Ok(Request::ServerPing { pong_len: Some(json!(4)), data: Some(json!("ab")) })
        );
    }
}
