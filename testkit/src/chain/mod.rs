//! Chains built on a [`Node`](crate::Node) and what is expected of them: mining and reorgs
//! ([`surgery`]), the harness's coins and the transactions it sends ([`wallet::Wallet`]), seeded
//! scenarios of every transaction kind ([`scenario`]) from a seeded generator ([`rng::Rng`]), and the expected index contents computed
//! from the node's own data ([`truth::Truth`]).

pub mod rng;
pub mod scenario;
pub mod surgery;
pub mod truth;
pub mod wallet;
