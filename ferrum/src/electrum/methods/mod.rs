//! What each method answers: one function per method, in one file per family, reached from the
//! one `match` in [`answer`]. Requests arrive parsed ([`Request`]), the session having checked
//! that its negotiated version has the method.

mod blockchain;
mod mempool;
pub(crate) mod outpoint;
mod scripthash;
pub(crate) mod server;
mod transaction;

use std::sync::Arc;

use serde_json::{json, Value};

use super::jsonrpc::{RpcError, Text};
use super::request::Request;
use super::state::SessionState;
use super::Electrum;

/// What a method may use: the shared state and the calling session's.
pub(crate) struct Context<'a> {
    pub(crate) electrum: &'a Arc<Electrum>,
    pub(crate) session: &'a mut SessionState,
}

/// A method's result: a JSON value, or JSON text written directly (large answers skip building
/// a value tree, which costs more than computing them).
#[derive(Debug)]
pub(crate) enum ResultJson {
    Value(Value),
    Text(Text),
}

/// Answers one request.
pub(crate) async fn answer(cx: Context<'_>, request: Request) -> Result<ResultJson, RpcError> {
    let Context { electrum: e, session } = cx;
    let value = match request {
        Request::BlockHeader { height, cp_height } => blockchain::block_header(e, height, cp_height)?,
        Request::BlockHeaders { start_height, count, cp_height } => {
            blockchain::block_headers(e, session, start_height, count, cp_height)?
        }
        Request::EstimateFee { number, mode } => blockchain::estimate_fee(e, number, mode).await?,
        Request::HeadersSubscribe => blockchain::headers_subscribe(e, session)?,
        Request::RelayFee => blockchain::relay_fee(e).await?,
        Request::ScripthashGetBalance(sh) => scripthash::get_balance(e, sh).await?,
        Request::ScripthashGetHistory(sh) => return scripthash::get_history(e, sh).await.map(ResultJson::Text),
        Request::ScripthashGetMempool(sh) => scripthash::get_mempool(e, sh).await?,
        Request::ScripthashListUnspent(sh) => scripthash::listunspent(e, sh).await?,
        Request::ScripthashSubscribe { scripthash, shown } => {
            scripthash::subscribe(e, session, scripthash, &shown).await?
        }
        Request::ScripthashUnsubscribe(sh) => scripthash::unsubscribe(session, &sh),
        Request::ScriptpubkeyGetBalance(sh) => scripthash::get_balance(e, sh).await?,
        Request::ScriptpubkeyGetHistory(sh) => {
            return scripthash::get_history(e, sh).await.map(|h| {
                let mut text = Text::from("{\"history\":");
                text.push_text(h);
                text.push_str("}");
                ResultJson::Text(text)
            })
        }
        Request::ScriptpubkeyGetMempool(sh) => json!({"history": scripthash::get_mempool(e, sh).await?}),
        Request::ScriptpubkeyListUnspent(sh) => json!({"utxos": scripthash::listunspent(e, sh).await?}),
        Request::ScriptpubkeySubscribe(sh) => {
            // Notifications name the script hash, not the script (the protocol's choice: a
            // script may be 10 kB).
            scripthash::subscribe(e, session, sh, &json!(sh.to_hex())).await?
        }
        Request::ScriptpubkeyUnsubscribe(sh) => scripthash::unsubscribe(session, &sh),
        Request::OutpointSubscribe { txid, vout, .. } => outpoint::subscribe(e, session, txid, vout).await?,
        Request::OutpointGetStatus { txid, vout, .. } => outpoint::get_status(e, txid, vout).await?,
        Request::OutpointUnsubscribe { txid, vout } => outpoint::unsubscribe(session, txid, vout),
        Request::TransactionTestMempoolAccept { raw_txs } => transaction::test_mempool_accept(e, raw_txs).await?,
        Request::TransactionBroadcast { raw_tx } => transaction::broadcast(e, session, raw_tx).await?,
        Request::TransactionBroadcastPackage { raw_txs, verbose } => {
            transaction::broadcast_package(e, raw_txs, verbose).await?
        }
        Request::TransactionGet { txid, verbose } => transaction::get(e, txid, verbose).await?,
        Request::TransactionGetMerkle { txid, height } => transaction::get_merkle(e, txid, height).await?,
        Request::TransactionIdFromPos { height, tx_pos, merkle } => {
            transaction::id_from_pos(e, height, tx_pos, merkle).await?
        }
        Request::MempoolGetFeeHistogram => mempool::get_fee_histogram(e),
        Request::MempoolGetInfo => mempool::get_info(e).await?,
        Request::MempoolRecent => mempool::recent(e),
        Request::ServerAddPeer { features } => server::add_peer(e, session, &features).await,
        Request::ServerBanner => server::banner(e).await?,
        Request::ServerDonationAddress => server::donation_address(e),
        Request::ServerFeatures => server::features(e, session),
        Request::ServerPeersSubscribe => server::peers_subscribe(e),
        Request::ServerPing { pong_len, data } => server::ping(e, session, pong_len, data)?,
        Request::ServerVersion { client_name, protocol_version } => {
            server::version(session, client_name, protocol_version)?
        }
    };
    Ok(ResultJson::Value(value))
}
