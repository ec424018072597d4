//! One client's session, independent of the transport: version negotiation, requests and
//! batches in, answers out, subscriptions and the notifications they cause.
//!
//! Requests and events are handled one at a time by the session's task, so a subscription's
//! answer and later notifications never cross: an event that arrives while a status is being
//! computed is handled after it, against the status the client was sent.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::jsonrpc::{self, Incoming, Request, Response, RpcError};
use super::methods::{self, Answer, Call};
use super::status::status_json;
use super::{Electrum, Event};
use crate::store::rows::sh_prefix;
use crate::types::ScriptHash;

/// A subscription: the script hash as the client wrote it, and the status it last saw.
#[derive(Debug, Clone)]
struct Sub {
    shown: Value,
    status: Option<[u8; 32]>,
}

/// Subscriptions counted beyond one session: those of every session from the same client
/// address, and those of all sessions. Each session takes from it as it subscribes and gives
/// back as it unsubscribes or ends.
#[derive(Debug, Clone)]
pub struct SubBudget {
    pub total: Arc<AtomicUsize>,
    pub max_total: usize,
    /// `None`: the address is exempt from the per-address limit.
    pub per_ip: Option<Arc<AtomicUsize>>,
    pub max_per_ip: usize,
}

impl SubBudget {
    /// No limit beyond the session's own.
    pub fn unlimited() -> SubBudget {
        SubBudget { total: Arc::default(), max_total: usize::MAX, per_ip: None, max_per_ip: usize::MAX }
    }

    fn take(&self) -> Result<(), RpcError> {
        let over = |what: &str, max: usize| {
            RpcError::new(
                jsonrpc::EXCESSIVE_RESOURCE_USAGE,
                format!("too many subscriptions (at most {} {what})", super::values::commas(max as u64)),
            )
        };
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(over("on this server", self.max_total));
        }
        if let Some(ip) = &self.per_ip {
            if ip.fetch_add(1, Ordering::Relaxed) >= self.max_per_ip {
                ip.fetch_sub(1, Ordering::Relaxed);
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(over("per client address", self.max_per_ip));
            }
        }
        Ok(())
    }

    fn give_back(&self, n: usize) {
        self.total.fetch_sub(n, Ordering::Relaxed);
        if let Some(ip) = &self.per_ip {
            ip.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

impl Default for SubBudget {
    fn default() -> Self {
        SubBudget::unlimited()
    }
}

/// What a session remembers between requests.
#[derive(Debug, Default)]
pub struct SessionState {
    pub id: u64,
    pub version: Option<Vec<u32>>,
    pub version_seen: bool,
    pub client: String,
    pub headers: bool,
    pub notified_height: Option<u32>,
    notified_hash: Option<crate::types::BlockHash>,
    subs: HashMap<ScriptHash, Sub>,
    /// Most script hashes this session may subscribe to.
    pub max_subs: usize,
    /// Shared with the other sessions.
    pub budget: SubBudget,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Close the connection once the current answer is sent.
    pub close_after_reply: bool,
}

impl SessionState {
    pub fn new(id: u64, max_subs: usize) -> SessionState {
        SessionState { id, max_subs, max_batch: usize::MAX, ..SessionState::default() }
    }

    pub fn subscribe(&mut self, sh: ScriptHash, shown: &Value, status: Option<[u8; 32]>) -> Result<(), RpcError> {
        if let Some(sub) = self.subs.get_mut(&sh) {
            *sub = Sub { shown: shown.clone(), status };
            return Ok(());
        }
        if self.subs.len() >= self.max_subs {
            return Err(RpcError::new(
                jsonrpc::EXCESSIVE_RESOURCE_USAGE,
                format!("too many subscriptions (at most {} per session)", self.max_subs),
            ));
        }
        self.budget.take()?;
        self.subs.insert(sh, Sub { shown: shown.clone(), status });
        Ok(())
    }

    pub fn unsubscribe(&mut self, sh: &ScriptHash) -> bool {
        let removed = self.subs.remove(sh).is_some();
        if removed {
            self.budget.give_back(1);
        }
        removed
    }

    /// Subscribes to headers, the client having been sent the tip `height`/`hash`.
    pub fn subscribe_headers(&mut self, height: u32, hash: crate::types::BlockHash) {
        self.headers = true;
        self.notified_height = Some(height);
        self.notified_hash = Some(hash);
    }

    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }
}

/// The code of an error answer.
fn error_code(answer: &str) -> i64 {
    serde_json::from_str::<Value>(answer)
        .ok()
        .and_then(|v| v.get("error")?.get("code")?.as_i64())
        .unwrap_or(jsonrpc::PARSE_ERROR)
}

pub struct Session {
    electrum: Arc<Electrum>,
    pub state: SessionState,
    /// Notifications follow the JSON-RPC version the client speaks.
    v2: bool,
}

impl Drop for Session {
    /// The session's subscriptions go back to the shared budget.
    fn drop(&mut self) {
        self.state.budget.give_back(self.state.subs.len());
    }
}

impl Session {
    pub fn new(electrum: Arc<Electrum>, state: SessionState) -> Session {
        Session { electrum, state, v2: true }
    }

    pub fn electrum(&self) -> &Arc<Electrum> {
        &self.electrum
    }

    /// Handles one received message; returns the answer to send, if any.
    pub async fn handle_message(&mut self, bytes: &[u8]) -> Option<Response> {
        match jsonrpc::parse(bytes) {
            Err(error) => {
                self.electrum.metrics.error(error_code(&error.0));
                Some(error)
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
                            super::values::commas(items.len() as u64),
                            super::values::commas(self.state.max_batch as u64)
                        ),
                    ),
                    true,
                ))
            }
            Ok(Incoming::Batch(items)) => {
                let mut answers = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Err(error) => {
                            self.electrum.metrics.error(error_code(&error.0));
                            answers.push(error.0)
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
    async fn handle_request(&mut self, request: Request) -> Option<String> {
        if request.method == "server.version" {
            self.v2 = request.v2;
        }
        let began = std::time::Instant::now();
        crate::cost::charge(crate::cost::REQUEST);
        tracing::trace!(session = self.state.id, method = %request.method, "request");
        let result = if !self.state.version_seen && request.method != "server.version" {
            // Version negotiation must come first.
            self.state.close_after_reply = true;
            Err(RpcError::bad_request("use server.version to identify client"))
        } else {
            let call = Call {
                electrum: &self.electrum,
                session: &mut self.state,
                method: &request.method,
                params: &request.params,
            };
            if request.method == "server.version" {
                methods::server_version(call).map(Answer::Value)
            } else if call.session.version.is_none() {
                // `server.version` was refused: nothing else is served.
                Err(RpcError::bad_request("use server.version to identify client"))
            } else {
                methods::dispatch(call).await
            }
        };
        let code = result.as_ref().err().map(|e| e.code);
        self.electrum.metrics.request(&request.method, began.elapsed(), code);
        let id = request.id?;
        Some(match result {
            Ok(Answer::Value(value)) => {
                let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".to_string());
                jsonrpc::result_text(&id, &text, request.v2)
            }
            Ok(Answer::Text(text)) => jsonrpc::result_text(&id, &text, request.v2),
            Err(error) => jsonrpc::encode(&jsonrpc::error_value(&id, &error, request.v2)).0,
        })
    }

    /// Notifications this event causes for this session.
    pub async fn handle_event(&mut self, event: &Event) -> Vec<Response> {
        let mut out = Vec::new();
        if self.state.version.is_none() {
            return out;
        }
        if let (true, Some((height, header))) = (self.state.headers, event.tip) {
            let hash = crate::types::BlockHash::of_header(&header);
            if self.state.notified_hash != Some(hash) {
                self.state.notified_height = Some(height);
                self.state.notified_hash = Some(hash);
                out.push(jsonrpc::notification(
                    "blockchain.headers.subscribe",
                    json!([{"hex": hex::encode(header), "height": height}]),
                    self.v2,
                ));
            }
        }
        let touched: Vec<ScriptHash> = self
            .state
            .subs
            .keys()
            .filter(|sh| {
                event.mempool.contains(sh) || event.confirmed.as_ref().is_none_or(|set| set.contains(&sh_prefix(sh)))
            })
            .copied()
            .collect();
        for sh in touched {
            match self.electrum.status(sh).await {
                Ok(status) => {
                    let Some(sub) = self.state.subs.get_mut(&sh) else { continue };
                    if sub.status != status {
                        sub.status = status;
                        out.push(jsonrpc::notification(
                            "blockchain.scripthash.subscribe",
                            json!([sub.shown, status_json(status)]),
                            self.v2,
                        ));
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
        self.electrum.metrics.notified(out.len());
        out
    }
}
