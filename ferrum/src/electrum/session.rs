//! One client's session, independent of the transport: version negotiation, requests and
//! batches in, answers out, subscriptions and the notifications they cause.
//!
//! Requests and events are handled one at a time by the session's task, so a subscription's
//! answer and later notifications never cross: an event that arrives while a status is being
//! computed is handled after it, against the status the client was sent.

use std::sync::Arc;

use serde_json::{json, Value};

use super::coerce::commas;
use super::events::Event;
use super::jsonrpc::{self, Incoming, Invalid, Response, RpcError, Text};
use super::methods::{self, outpoint, Context, ResultJson};
use super::protocol::{Method, ProtocolVersion};
use super::request::Request;
use super::state::SessionState;
use super::status::status_json;
use super::Electrum;
use crate::store::rows::sh_prefix;
use crate::types::ScriptHash;

pub struct Session {
    electrum: Arc<Electrum>,
    pub state: SessionState,
    /// Notifications follow the JSON-RPC version the client speaks.
    v2: bool,
}

impl Session {
    pub fn new(electrum: Arc<Electrum>, state: SessionState) -> Session {
        Session { electrum, state, v2: true }
    }

    /// Handles one received message; returns the answer to send, if any.
    pub async fn handle_message(&mut self, bytes: &[u8]) -> Option<Response> {
        self.handle(jsonrpc::parse(bytes)).await
    }

    /// Handles one parsed message; returns the answer to send, if any.
    pub(crate) async fn handle(&mut self, parsed: Result<Incoming, Invalid>) -> Option<Response> {
        match parsed {
            Err(invalid) => {
                self.electrum.metrics.error(invalid.error.code);
                Some(invalid.response())
            }
            Ok(Incoming::Single(request)) => {
                let answer = self.handle_request(request).await?;
                Some(Response(answer))
            }
            Ok(Incoming::Batch(items)) if items.len() > self.state.max_batch => {
                self.electrum.metrics.error(jsonrpc::INVALID_REQUEST);
                Some(jsonrpc::error_response(
                    &Value::Null,
                    &RpcError::new(
                        jsonrpc::INVALID_REQUEST,
                        format!(
                            "batch of {} requests is over the limit of {}",
                            commas(items.len() as u64),
                            commas(self.state.max_batch as u64)
                        ),
                    ),
                    true,
                ))
            }
            Ok(Incoming::Batch(items)) => {
                let mut answers = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Err(invalid) => {
                            self.electrum.metrics.error(invalid.error.code);
                            answers.push(invalid.response().0)
                        }
                        Ok(request) => {
                            if let Some(a) = self.handle_request(request).await {
                                answers.push(a);
                            }
                        }
                    }
                    if self.state.close_after_reply {
                        break;
                    }
                }
                (!answers.is_empty()).then(|| jsonrpc::batch_response(answers))
            }
        }
    }

    /// One request: the reply as JSON text (`None` for a notification).
    async fn handle_request(&mut self, request: jsonrpc::Request) -> Option<Text> {
        let began = std::time::Instant::now();
        crate::cost::charge(crate::cost::REQUEST);
        tracing::trace!(session = self.state.id, method = %request.method, "request");
        let method = Method::from_name(&request.method);
        let result = self.answer(method, &request).await;
        let code = result.as_ref().err().map(|e| e.code);
        self.electrum.metrics.request(method, began.elapsed(), code);
        let id = request.id?;
        Some(match result {
            Ok(ResultJson::Value(value)) => {
                let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".to_string());
                jsonrpc::result_text(&id, text.into(), request.v2)
            }
            Ok(ResultJson::Text(text)) => jsonrpc::result_text(&id, text, request.v2),
            Err(error) => jsonrpc::encode(&jsonrpc::error_value(&id, &error, request.v2)).0,
        })
    }

    /// The answer to a request of `method` (`None`: a name no version has), in the order
    /// ElectrumX checks: `server.version` first, then the method's availability at the
    /// negotiated version, then its arguments.
    async fn answer(&mut self, method: Option<Method>, request: &jsonrpc::Request) -> Result<ResultJson, RpcError> {
        let identify = || RpcError::bad_request("use server.version to identify client");
        let method = match (method, &self.state.version) {
            (Some(Method::ServerVersion), _) => {
                self.v2 = request.v2;
                Method::ServerVersion
            }
            (_, None) if !self.state.version_seen => {
                // Version negotiation must come first.
                self.state.close_after_reply = true;
                return Err(identify());
            }
            // `server.version` was refused: nothing else is served.
            (_, None) => return Err(identify()),
            (Some(m), Some(version)) if m.available(version) => m,
            _ => {
                let message = format!("unknown method \"{}\"", request.method);
                return Err(RpcError::new(jsonrpc::METHOD_NOT_FOUND, message));
            }
        };
        let parsed = Request::parse(method, &request.params)?;
        methods::answer(Context { electrum: &self.electrum, session: &mut self.state }, parsed).await
    }

    /// Notifications this event causes for this session.
    pub(crate) async fn handle_event(&mut self, event: &Event) -> Vec<Response> {
        let mut out = Vec::new();
        if self.state.version.is_none() {
            return out;
        }
        if let Some((height, header)) = event.tip {
            if self.state.tip_changed(height, crate::types::BlockHash::of_header(&header)) {
                out.push(jsonrpc::notification(
                    "blockchain.headers.subscribe",
                    json!([{"hex": hex::encode(header), "height": height}]),
                    self.v2,
                ));
            }
        }
        let v1_7 = self.state.speaks(&ProtocolVersion::V1_7);
        let affected = |sh: &ScriptHash| {
            event.mempool.contains(sh) || event.confirmed.as_ref().is_none_or(|set| set.contains(&sh_prefix(sh)))
        };
        let touched = self.state.subscribed(affected);
        // 1.7 names them as subscribed: `blockchain.scriptpubkey.subscribe`, with the hash.
        let method = if v1_7 { "blockchain.scriptpubkey.subscribe" } else { "blockchain.scripthash.subscribe" };
        for sh in touched {
            match self.electrum.status(sh).await {
                Ok(status) => {
                    if let Some(shown) = self.state.status_changed(&sh, status) {
                        out.push(jsonrpc::notification(method, json!([shown, status_json(status)]), self.v2));
                    }
                }
                Err(e) => {
                    // As ElectrumX: a status that cannot be computed (history too large) ends
                    // the subscription.
                    tracing::info!(session = self.state.id, scripthash = %sh, "dropping subscription: {}", e.message);
                    self.state.unsubscribe(&sh);
                }
            }
        }
        for outpoint in self.state.outpoints_to_check(event.tip.is_some(), affected) {
            match self.electrum.reader().outpoint(outpoint.0, outpoint.1).await {
                Ok(now) => {
                    if self.state.outpoint_changed(&outpoint, now) {
                        let params = json!([outpoint.0, outpoint.1, outpoint::status_json(&now.status)]);
                        out.push(jsonrpc::notification("blockchain.outpoint.subscribe", params, self.v2));
                    }
                }
                Err(e) => {
                    tracing::info!(session = self.state.id, txid = %outpoint.0, vout = outpoint.1, "dropping subscription: {e}");
                    self.state.unsubscribe_outpoint(&outpoint);
                }
            }
        }
        // Against traffic analysis (1.7): a block always brings at least two messages, so a
        // session's traffic does not tell whether the block touched its addresses.
        if v1_7 && event.tip.is_some() && out.len() < 2 {
            out.push(jsonrpc::notification("server.ping", json!(["0".repeat(128)]), self.v2));
        }
        self.electrum.metrics.notified(out.len());
        out
    }
}
