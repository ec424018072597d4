//! The Electrum protocol's vocabulary: its versions, the negotiation of one, and its methods
//! with the versions that have each.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// A protocol version, compared part by part as ElectrumX compares its version tuples
/// (`1.4` < `1.4.0` < `1.4.2` < `1.6`). As sent, with as many parts as the client wrote.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(Cow<'static, [u32]>);

impl ProtocolVersion {
    pub const V1_4: ProtocolVersion = ProtocolVersion(Cow::Borrowed(&[1, 4]));
    pub const V1_4_2: ProtocolVersion = ProtocolVersion(Cow::Borrowed(&[1, 4, 2]));
    pub const V1_6: ProtocolVersion = ProtocolVersion(Cow::Borrowed(&[1, 6]));
    pub const V1_7: ProtocolVersion = ProtocolVersion(Cow::Borrowed(&[1, 7]));
    /// The lowest and highest versions served. The highest is written `1.7.0`, as ElectrumX
    /// 2.0 writes it: a client asking for up to `1.7` gets `1.7`, one asking for more gets
    /// `1.7.0`.
    pub const MIN: ProtocolVersion = ProtocolVersion::V1_4;
    pub const MAX: ProtocolVersion = ProtocolVersion(Cow::Borrowed(&[1, 7, 0]));

    /// ElectrumX's `protocol_tuple`: `"1.4.2"` → 1.4.2; anything else → `0`, which no server
    /// speaks.
    pub fn parse(v: &Value) -> ProtocolVersion {
        let parts =
            v.as_str().and_then(|s| s.split('.').map(|p| p.trim().parse::<u32>().ok()).collect::<Option<Vec<u32>>>());
        ProtocolVersion(parts.map_or(Cow::Borrowed(&[0]), Cow::Owned))
    }

    /// The highest version both sides speak, for a client asking for `requested` (a version, a
    /// `[min, max]` pair, or nothing: 1.4), or `None`.
    pub fn negotiate(requested: Option<&Value>) -> Option<ProtocolVersion> {
        let (client_min, client_max) = match requested {
            None | Some(Value::Null) => (ProtocolVersion::MIN, ProtocolVersion::MIN),
            Some(Value::Array(pair)) if pair.len() == 2 => {
                let at = |i: usize| ProtocolVersion::parse(pair.get(i).unwrap_or(&Value::Null));
                (at(0), at(1))
            }
            Some(v) => (ProtocolVersion::parse(v), ProtocolVersion::parse(v)),
        };
        let result = client_max.min(ProtocolVersion::MAX);
        let floor = client_min.max(ProtocolVersion::MIN);
        (result >= floor && *result.0 != [0]).then_some(result)
    }
}

/// `1` → `1.0`, `1.4.2` → `1.4.2`.
impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = self.0.iter();
        write!(f, "{}", parts.next().unwrap_or(&0))?;
        match parts.next() {
            None => write!(f, ".0")?,
            Some(minor) => write!(f, ".{minor}")?,
        }
        parts.try_for_each(|p| write!(f, ".{p}"))
    }
}

/// Declares [`Method`] from one table of variants and names.
macro_rules! methods {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A method of the protocol, as a client names it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Method {
            $($(#[$doc])* $variant,)*
        }

        impl Method {
            /// Every method, in the order of [`Method::index`].
            pub const ALL: &'static [Method] = &[$(Method::$variant,)*];

            /// The method's name on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $(Method::$variant => $name,)*
                }
            }

            /// The method a client's name stands for, if any.
            pub fn from_name(name: &str) -> Option<Method> {
                match name {
                    $($name => Some(Method::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    BlockHeader => "blockchain.block.header",
    BlockHeaders => "blockchain.block.headers",
    EstimateFee => "blockchain.estimatefee",
    HeadersSubscribe => "blockchain.headers.subscribe",
    /// Up to 1.4.2.
    RelayFee => "blockchain.relayfee",
    /// Up to 1.6, as every `blockchain.scripthash.*` method; 1.7 has `blockchain.scriptpubkey.*`.
    ScripthashGetBalance => "blockchain.scripthash.get_balance",
    ScripthashGetHistory => "blockchain.scripthash.get_history",
    ScripthashGetMempool => "blockchain.scripthash.get_mempool",
    ScripthashListUnspent => "blockchain.scripthash.listunspent",
    ScripthashSubscribe => "blockchain.scripthash.subscribe",
    /// From 1.4.2.
    ScripthashUnsubscribe => "blockchain.scripthash.unsubscribe",
    /// From 1.7, as every `blockchain.scriptpubkey.*` and `blockchain.outpoint.*` method.
    ScriptpubkeyGetBalance => "blockchain.scriptpubkey.get_balance",
    ScriptpubkeyGetHistory => "blockchain.scriptpubkey.get_history",
    ScriptpubkeyGetMempool => "blockchain.scriptpubkey.get_mempool",
    ScriptpubkeyListUnspent => "blockchain.scriptpubkey.listunspent",
    ScriptpubkeySubscribe => "blockchain.scriptpubkey.subscribe",
    ScriptpubkeyUnsubscribe => "blockchain.scriptpubkey.unsubscribe",
    OutpointSubscribe => "blockchain.outpoint.subscribe",
    OutpointGetStatus => "blockchain.outpoint.get_status",
    OutpointUnsubscribe => "blockchain.outpoint.unsubscribe",
    TransactionBroadcast => "blockchain.transaction.broadcast",
    /// From 1.6.
    TransactionBroadcastPackage => "blockchain.transaction.broadcast_package",
    TransactionGet => "blockchain.transaction.get",
    TransactionGetMerkle => "blockchain.transaction.get_merkle",
    TransactionIdFromPos => "blockchain.transaction.id_from_pos",
    /// From 1.7.
    TransactionTestMempoolAccept => "blockchain.transaction.testmempoolaccept",
    MempoolGetFeeHistogram => "mempool.get_fee_histogram",
    /// From 1.6.
    MempoolGetInfo => "mempool.get_info",
    /// From 1.7.
    MempoolRecent => "mempool.recent",
    ServerAddPeer => "server.add_peer",
    ServerBanner => "server.banner",
    ServerDonationAddress => "server.donation_address",
    ServerFeatures => "server.features",
    ServerPeersSubscribe => "server.peers.subscribe",
    ServerPing => "server.ping",
    ServerVersion => "server.version",
}

impl Method {
    /// Whether a session at `version` has this method (ElectrumX's set for each version).
    pub fn available(self, version: &ProtocolVersion) -> bool {
        match self {
            Method::ScripthashUnsubscribe => *version >= ProtocolVersion::V1_4_2 && *version < ProtocolVersion::V1_7,
            Method::ScripthashGetBalance
            | Method::ScripthashGetHistory
            | Method::ScripthashGetMempool
            | Method::ScripthashListUnspent
            | Method::ScripthashSubscribe => *version < ProtocolVersion::V1_7,
            Method::ScriptpubkeyGetBalance
            | Method::ScriptpubkeyGetHistory
            | Method::ScriptpubkeyGetMempool
            | Method::ScriptpubkeyListUnspent
            | Method::ScriptpubkeySubscribe
            | Method::ScriptpubkeyUnsubscribe
            | Method::OutpointSubscribe
            | Method::OutpointGetStatus
            | Method::OutpointUnsubscribe
            | Method::TransactionTestMempoolAccept
            | Method::MempoolRecent => *version >= ProtocolVersion::V1_7,
            Method::TransactionBroadcastPackage | Method::MempoolGetInfo => *version >= ProtocolVersion::V1_6,
            Method::RelayFee => *version < ProtocolVersion::V1_6,
            _ => true,
        }
    }

    /// The method's position in [`Method::ALL`]: a dense index for per-method counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn negotiated(v: Value) -> Option<String> {
        ProtocolVersion::negotiate(Some(&v)).map(|v| v.to_string())
    }

    #[test]
    fn negotiation_as_specified() {
        assert_eq!(negotiated(json!("1.4")).as_deref(), Some("1.4"));
        assert_eq!(negotiated(json!(["1.4", "1.6"])).as_deref(), Some("1.6"));
        assert_eq!(negotiated(json!(["1.4", "1.6"])).as_deref(), Some("1.6"));
        assert_eq!(negotiated(json!(["1.4", "1.7"])).as_deref(), Some("1.7"));
        assert_eq!(negotiated(json!(["1.4", "1.8"])).as_deref(), Some("1.7.0"), "ElectrumX 2.0's own form");
        assert_eq!(negotiated(json!("1.7")).as_deref(), Some("1.7"));
        assert_eq!(negotiated(json!("1.4.2")).as_deref(), Some("1.4.2"));
        assert_eq!(negotiated(json!(" 1 . 4 . 0 ")).as_deref(), Some("1.4.0"));
        assert_eq!(ProtocolVersion::negotiate(None), Some(ProtocolVersion::V1_4));
        assert_eq!(negotiated(Value::Null).as_deref(), Some("1.4"));
        assert_eq!(negotiated(json!("1.3")), None);
        assert_eq!(negotiated(json!(["1.8", "2.0"])), None);
        assert_eq!(negotiated(json!("garbage")), None);
        assert_eq!(negotiated(json!(1.4)), None, "numbers are not version strings");
        assert_eq!(negotiated(json!(["1.4", "1.5", "1.6"])), None);
        assert_eq!(ProtocolVersion::parse(&json!("1")).to_string(), "1.0");
    }

    #[test]
    fn versions_order_as_tuples() {
        let v = |s: &str| ProtocolVersion::parse(&json!(s));
        assert!(v("1.4") < v("1.4.0"));
        assert!(v("1.4.0") < v("1.4.2"));
        assert!(v("1.4.2") < v("1.6"));
        assert!(v("1.10") > v("1.6"));
        assert_eq!(v("1.6"), ProtocolVersion::V1_6);
    }

    #[test]
    fn methods_by_name_and_version() {
        for (i, m) in Method::ALL.iter().enumerate() {
            assert_eq!(Method::from_name(m.name()), Some(*m));
            assert_eq!(m.index(), i);
        }
        assert_eq!(Method::from_name("blockchain.scripthash.get_history"), Some(Method::ScripthashGetHistory));
        assert_eq!(Method::from_name("blockchain.scripthash"), None);
        assert_eq!(Method::from_name("Server.Version"), None);
        let (v14, v142, v16) = (ProtocolVersion::V1_4, ProtocolVersion::V1_4_2, ProtocolVersion::V1_6);
        assert!(!Method::ScripthashUnsubscribe.available(&v14) && Method::ScripthashUnsubscribe.available(&v142));
        assert!(Method::RelayFee.available(&v142) && !Method::RelayFee.available(&v16));
        assert!(!Method::MempoolGetInfo.available(&v142) && Method::MempoolGetInfo.available(&v16));
        assert!(!Method::TransactionBroadcastPackage.available(&v14));
        let v17 = ProtocolVersion::V1_7;
        assert!(Method::ScripthashGetHistory.available(&v16) && !Method::ScripthashGetHistory.available(&v17));
        assert!(!Method::ScripthashUnsubscribe.available(&v17));
        assert!(!Method::ScriptpubkeyGetHistory.available(&v16) && Method::ScriptpubkeyGetHistory.available(&v17));
        assert!(Method::OutpointSubscribe.available(&ProtocolVersion::MAX));
        assert!(!Method::MempoolRecent.available(&v16) && Method::MempoolRecent.available(&v17));
        // At 1.6 every method but relayfee and 1.7's; at 1.7, no scripthash method either.
        let new_in_17 = Method::ALL.iter().filter(|m| m.name().starts_with("blockchain.scriptpubkey.")).count() + 5;
        assert_eq!(Method::ALL.iter().filter(|m| m.available(&v16)).count(), Method::ALL.len() - 1 - new_in_17);
        assert_eq!(Method::ALL.iter().filter(|m| m.available(&v17)).count(), Method::ALL.len() - 1 - 6);
    }
}
