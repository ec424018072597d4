//! One connection's session, once its transport is set up: each message is read, passes the
//! gates, is answered and its answer queued (`read → gate → answer → queue`); index and mempool
//! events become notifications on the same queue. A writer task sends what is queued, so a
//! client that stops reading fills a bounded queue and is dropped instead of holding answers.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::error::Elapsed;

use super::framing::{Inbound, MessageReader, MessageWriter};
use super::limits;
use super::registry::SessionInfo;
use super::Server;
use crate::electrum::events::Event;
use crate::electrum::jsonrpc::{self, Incoming, Invalid, Response, RpcError, Text};
use crate::electrum::session::Session;
use crate::electrum::state::SessionState;

/// Runs a session over a connection's two halves until the client leaves, a limit or a gate
/// ends it, or the admin disconnects it; then lets the writer flush what is queued.
pub(super) async fn run<R: MessageReader, W: MessageWriter + 'static>(
    server: Arc<Server>,
    reader: R,
    writer: W,
    info: Arc<SessionInfo>,
) -> Result<()> {
    let send_timeout = server.limits.send_timeout;
    let (tx, rx) = mpsc::channel::<Response>(server.limits.queue_len.max(1));
    let writer_task = tokio::spawn(write(writer, rx, send_timeout));
    let mut state = SessionState::new(info.id, server.limits.max_subs_per_session);
    state.max_batch = server.limits.max_batch;
    state.client_ip = Some(info.peer.ip());
    state.budget = server.registry.budget(&info, &server.limits);
    let outbound = Outbound { tx, max_send: server.electrum.config.max_send };
    let mut connection = Connection {
        events: server.electrum.events.subscribe(),
        session: Session::new(server.electrum.clone(), state),
        server,
        reader,
        info,
        outbound,
    };
    let result = connection.serve().await;
    finish(result, connection.outbound, writer_task, send_timeout).await
}

/// The writer task: sends the queued answers and notifications in order, what is queued at
/// once in one write (up to [`WRITE_BATCH_BYTES`]). A client that does not take them within
/// `send_timeout` is dropped.
async fn write<W: MessageWriter>(
    mut writer: W,
    mut rx: mpsc::Receiver<Response>,
    send_timeout: Duration,
) -> Result<()> {
    let mut batch: Vec<Response> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut bytes = first.0.len();
        batch.push(first);
        while bytes < WRITE_BATCH_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            bytes += next.0.len();
            batch.push(next);
        }
        let messages: Vec<&Text> = batch.iter().map(|m| &m.0).collect();
        let sent = tokio::time::timeout(send_timeout, writer.send_all(&messages)).await;
        drop(messages);
        batch.clear();
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(anyhow!("write failed: {e}")),
            Err(_) => {
                let e = anyhow!("client did not read for {send_timeout:?}; dropped");
                tracing::info!("{e}");
                return Err(e);
            }
        }
    }
    Ok(())
}

/// How much the writer gathers from its queue into one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Ends a session: a failed one (a client too slow to take its answers, among others) is
/// dropped at once, its queue with it; otherwise the writer sends what is queued (the last
/// error reply, for one) within the send timeout.
async fn finish(
    result: Result<()>,
    outbound: Outbound,
    writer_task: JoinHandle<Result<()>>,
    send_timeout: Duration,
) -> Result<()> {
    if let Err(e) = result {
        writer_task.abort();
        return Err(e);
    }
    // The writer ends once the queue is empty and closed.
    drop(outbound);
    match tokio::time::timeout(send_timeout, writer_task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(anyhow!("writer task: {e}")),
        Err(_) => Err(anyhow!("timed out flushing")),
    }
}

/// The session's end of its queue to the writer task. Nothing over `max_send` bytes is
/// queued: such a message is replaced by an error for the request it answers.
struct Outbound {
    tx: mpsc::Sender<Response>,
    max_send: usize,
}

impl Outbound {
    /// Queues the answer to the request `id`. `Err` ends the session: the queue is full (the
    /// client does not read) or the writer is gone.
    fn answer(&self, r: Response, id: &Value) -> Result<()> {
        let r = if r.0.len() > self.max_send {
            jsonrpc::error_response(id, &limits::answer_too_large(self.max_send), true)
        } else {
            r
        };
        self.tx.try_send(r).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                tracing::info!("outbound queue full: client too slow to read its answers; dropped");
                anyhow!("outbound queue full; client too slow, dropped")
            }
            mpsc::error::TrySendError::Closed(_) => anyhow!("writer gone"),
        })
    }

    /// Queues a notification or an error reply; one over `max_send` becomes an error with a
    /// null id.
    fn send(&self, r: Response) -> Result<()> {
        self.answer(r, &Value::Null)
    }

    /// Queues `error` as the reply to the message `id` (null: a whole batch, or unknown).
    fn error(&self, id: &Value, error: &RpcError) -> Result<()> {
        self.send(jsonrpc::error_response(id, error, true))
    }
}

/// What woke the session.
enum Wake {
    /// A message, the end of the connection, or no message within the idle timeout.
    Read(Result<io::Result<Inbound>, Elapsed>),
    /// The admin's `disconnect`.
    Disconnect,
    Event(Result<Arc<Event>, RecvError>),
}

/// Whether the session goes on.
enum Next {
    Continue,
    End,
}

/// One connection's session. Messages and events are handled one at a time by its task, in
/// the order they come.
struct Connection<R> {
    server: Arc<Server>,
    reader: R,
    info: Arc<SessionInfo>,
    session: Session,
    events: broadcast::Receiver<Arc<Event>>,
    outbound: Outbound,
}

impl<R: MessageReader> Connection<R> {
    /// Handles messages and events until the session ends. `Err`: it failed, and its queue is
    /// not flushed.
    async fn serve(&mut self) -> Result<()> {
        let idle = self.server.limits.idle_timeout;
        loop {
            let next = match self.wake(idle).await {
                Wake::Read(read) => {
                    let inbound = read.map_err(|_| anyhow!("idle for {idle:?}"))??;
                    self.read(inbound).await?
                }
                Wake::Disconnect => {
                    tracing::info!("disconnected by the admin");
                    Next::End
                }
                Wake::Event(event) => self.notify(event).await?,
            };
            if let Next::End = next {
                return Ok(());
            }
        }
    }

    /// Waits for the next message, the admin's disconnect, or an event, whichever comes first.
    async fn wake(&mut self, idle: Duration) -> Wake {
        tokio::select! {
            read = tokio::time::timeout(idle, self.reader.next()) => Wake::Read(read),
            _ = self.info.close.notified() => Wake::Disconnect,
            event = self.events.recv() => Wake::Event(event),
        }
    }

    /// Read: what the transport delivered.
    async fn read(&mut self, inbound: Inbound) -> Result<Next> {
        match inbound {
            Inbound::Closed => Ok(Next::End),
            Inbound::TooLarge => {
                let max_recv = self.server.limits.max_recv;
                tracing::info!("dropped a message over {max_recv} bytes");
                self.server.electrum.metrics.error(jsonrpc::INVALID_REQUEST);
                self.outbound.error(&Value::Null, &limits::request_too_large(max_recv))?;
                Ok(Next::Continue)
            }
            Inbound::Message(bytes) => self.message(&bytes).await,
        }
    }

    /// One message, parsed once: gated, answered, its answer queued, then what the admin
    /// interface shows of the session brought up to date.
    async fn message(&mut self, bytes: &[u8]) -> Result<Next> {
        let parsed = jsonrpc::parse(bytes);
        let id = Incoming::reply_id(&parsed);
        if let Err(refused) = self.gate().await {
            self.server.electrum.metrics.error(refused.code);
            self.outbound.error(&id, &refused)?;
            return Ok(Next::End);
        }
        let answer = self.answer(parsed).await;
        self.queue(answer, &id)?;
        self.info.mirror(&self.session.state);
        Ok(if self.session.state.close_after_reply { Next::End } else { Next::Continue })
    }

    /// Gate: the index can serve; the message is counted; then the client group's cost, for
    /// sessions of non-exempt addresses. `Err`: the message is refused with this error and the
    /// session ends.
    async fn gate(&self) -> Result<(), RpcError> {
        limits::index_ready(&self.server.electrum)?;
        self.info.requests.fetch_add(1, Ordering::Relaxed);
        match &self.info.group {
            Some(group) => self.server.cost.pass(group).await,
            None => Ok(()),
        }
    }

    /// Answer: within the request timeout (`Err`: not in time), charging the group for the
    /// work measured and the bytes of the answer.
    async fn answer(&mut self, parsed: Result<Incoming, Invalid>) -> Result<Option<Response>, Elapsed> {
        let timeout = self.server.limits.request_timeout;
        let (answer, work) = crate::cost::measured(tokio::time::timeout(timeout, self.session.handle(parsed))).await;
        if let Some(group) = &self.info.group {
            let sent = answer.as_ref().ok().and_then(Option::as_ref).map_or(0, |a| a.0.len());
            self.server.cost.charge(group, work, sent);
        }
        answer
    }

    /// Queue: the answer to the message `id`, if it has one, or error -102 if it timed out.
    fn queue(&self, answer: Result<Option<Response>, Elapsed>, id: &Value) -> Result<()> {
        match answer {
            Ok(Some(answer)) => self.outbound.answer(answer, id),
            Ok(None) => Ok(()),
            Err(_) => {
                tracing::info!("request not answered within {:?}", self.server.limits.request_timeout);
                self.server.electrum.metrics.error(jsonrpc::SERVER_BUSY);
                self.outbound.error(id, &limits::timed_out())
            }
        }
    }

    /// The notifications an event causes, queued. A session that missed events checks every
    /// subscription.
    async fn notify(&mut self, event: Result<Arc<Event>, RecvError>) -> Result<Next> {
        let event = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(_)) => Arc::new(Event::everything(&self.server.electrum)),
            Err(RecvError::Closed) => return Ok(Next::End),
        };
        for n in self.session.handle_event(&event).await {
            self.outbound.send(n)?;
        }
        Ok(Next::Continue)
    }
}
