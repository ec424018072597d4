//! JSON-RPC 1.0 and 2.0 as Electrum clients speak it: single requests, batches, notifications,
//! positional and named parameters, and error objects with ElectrumX's codes and messages.

use std::sync::Arc;

use serde_json::{Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// ElectrumX's `BAD_REQUEST`: bad parameters, unknown transaction, out of range, rejected.
pub const BAD_REQUEST: i64 = 1;
/// ElectrumX's `DAEMON_ERROR`: bitcoind failed or is unreachable.
pub const DAEMON_ERROR: i64 = 2;
/// aiorpcx `EXCESSIVE_RESOURCE_USAGE`.
pub const EXCESSIVE_RESOURCE_USAGE: i64 = -101;
/// aiorpcx `SERVER_BUSY`.
pub const SERVER_BUSY: i64 = -102;
/// A history longer than an answer may be (ElectrumX 2.0's code).
pub const HISTORY_TOO_LONG: i64 = 10_001;

/// An error answer: what the client sees in `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> RpcError {
        RpcError::new(BAD_REQUEST, message)
    }

    pub fn daemon(message: impl Into<String>) -> RpcError {
        RpcError::new(DAEMON_ERROR, message)
    }

    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new(INVALID_PARAMS, message)
    }

    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError::new(INTERNAL_ERROR, message)
    }
}

/// Parameters as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    Positional(Vec<Value>),
    Named(Map<String, Value>),
}

impl Params {
    /// Binds the parameters to a method's signature: `names` in order, the first `required` of
    /// them mandatory. `extra_ok` lets positional callers send more than the method takes
    /// (`server.version` must ignore extra arguments). Messages as aiorpcx writes them.
    pub fn bind(
        &self,
        method: &str,
        names: &[&str],
        required: usize,
        extra_ok: bool,
    ) -> Result<Vec<Option<Value>>, RpcError> {
        match self {
            Params::Positional(args) => {
                if args.len() < required {
                    let s = if args.len() == 1 { "" } else { "s" };
                    return Err(RpcError::invalid_params(format!(
                        "{} argument{s} passed to method \"{method}\" but it requires {required}",
                        args.len()
                    )));
                }
                if args.len() > names.len() && !extra_ok {
                    let s = if args.len() == 1 { "" } else { "s" };
                    return Err(RpcError::invalid_params(format!(
                        "{} argument{s} passed to method {method} taking at most {}",
                        args.len(),
                        names.len()
                    )));
                }
                Ok((0..names.len()).map(|i| args.get(i).cloned()).collect())
            }
            Params::Named(map) => {
                let mut missing: Vec<String> = names
                    .iter()
                    .take(required)
                    .filter(|n| !map.contains_key(**n))
                    .map(|n| format!("\"{n}\""))
                    .collect();
                if !missing.is_empty() {
                    missing.sort();
                    let s = if missing.len() == 1 { "" } else { "s" };
                    return Err(RpcError::invalid_params(format!(
                        "method \"{method}\" requires parameter{s} {}",
                        missing.join(", ")
                    )));
                }
                if !extra_ok {
                    let mut excess: Vec<String> =
                        map.keys().filter(|k| !names.contains(&k.as_str())).map(|k| format!("\"{k}\"")).collect();
                    if !excess.is_empty() {
                        excess.sort();
                        let s = if excess.len() == 1 { "" } else { "s" };
                        return Err(RpcError::invalid_params(format!(
                            "method \"{method}\" does not take parameter{s} {}",
                            excess.join(", ")
                        )));
                    }
                }
                Ok(names.iter().map(|n| map.get(*n).cloned()).collect())
            }
        }
    }
}

/// A request or notification (no `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `None` for a notification, which gets no answer.
    pub id: Option<Value>,
    pub method: String,
    pub params: Params,
    /// The client said `"jsonrpc": "2.0"`.
    pub v2: bool,
}

/// One received message.
#[derive(Debug)]
pub enum Incoming {
    Single(Request),
    /// Members that are not valid requests are answered with an error in their place.
    Batch(Vec<Result<Request, Invalid>>),
}

/// A message, or a member of a batch, that is not a valid request: the error it is answered
/// with, and the id and JSON-RPC version it is answered in (as far as they could be read).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub id: Value,
    pub error: RpcError,
    pub v2: bool,
}

impl Invalid {
    fn new(code: i64, message: impl Into<String>) -> Invalid {
        Invalid { id: Value::Null, error: RpcError::new(code, message), v2: true }
    }

    /// The error answer.
    pub fn response(&self) -> Response {
        error_response(&self.id, &self.error, self.v2)
    }
}

impl Incoming {
    /// The id an error answer to a whole message carries: a single request's; none for a batch.
    pub fn reply_id(parsed: &Result<Incoming, Invalid>) -> Value {
        match parsed {
            Ok(Incoming::Single(r)) => r.id.clone().unwrap_or(Value::Null),
            Ok(Incoming::Batch(_)) => Value::Null,
            Err(invalid) => invalid.id.clone(),
        }
    }
}

/// Text that something else keeps and an answer shares (a busy script's history, megabytes,
/// kept with its cache entry): it goes out from where it lies, and is never copied into an
/// answer.
pub type Shared = Arc<dyn AsRef<str> + Send + Sync>;

/// JSON text in pieces, which make the text one after the other. Text written for one answer
/// is gathered into few pieces; a large string is a piece of its own, moved in, not copied;
/// shared text is referred to. A 16 MB history used to be copied twice on its way to the
/// socket, into memory never touched before: a profile of such answers had 40% of the server's
/// time in page faults and 11% in the copies.
#[derive(Clone, Default)]
pub struct Text {
    pieces: Vec<Piece>,
    len: usize,
}

#[derive(Clone)]
enum Piece {
    /// Written here; more small text is appended to it.
    Small(String),
    /// A large string, moved in whole.
    Large(String),
    Shared(Shared),
}

impl Piece {
    fn as_str(&self) -> &str {
        match self {
            Piece::Small(s) | Piece::Large(s) => s,
            Piece::Shared(s) => (**s).as_ref(),
        }
    }
}

/// A string of at least this many bytes is kept as a piece of its own, not copied.
const LARGE: usize = 4096;

impl Text {
    pub fn new() -> Text {
        Text::default()
    }

    /// Appends `s`, copied.
    pub fn push_str(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.len += s.len();
        match self.pieces.last_mut() {
            Some(Piece::Small(last)) => last.push_str(s),
            _ => self.pieces.push(Piece::Small(s.to_string())),
        }
    }

    /// Appends `s`: moved in as a piece of its own, unless it is small and follows small text
    /// (then copied, to keep pieces few).
    pub fn push_string(&mut self, s: String) {
        if s.is_empty() {
            return;
        }
        match self.pieces.last() {
            Some(Piece::Small(_)) if s.len() < LARGE => self.push_str(&s),
            _ => {
                self.len += s.len();
                self.pieces.push(if s.len() < LARGE { Piece::Small(s) } else { Piece::Large(s) });
            }
        }
    }

    /// Appends shared text, without copying it.
    pub fn push_shared(&mut self, s: Shared) {
        let len = (*s).as_ref().len();
        if len > 0 {
            self.len += len;
            self.pieces.push(Piece::Shared(s));
        }
    }

    /// Appends another text's pieces.
    pub fn push_text(&mut self, t: Text) {
        for piece in t.pieces {
            match piece {
                Piece::Small(s) | Piece::Large(s) => self.push_string(s),
                Piece::Shared(s) => self.push_shared(s),
            }
        }
    }

    /// Bytes of the whole text.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().map(Piece::as_str)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        let mut t = Text::new();
        t.push_string(s);
        t
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        let mut t = Text::new();
        t.push_str(s);
        t
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pieces().try_for_each(|p| f.write_str(p))
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl PartialEq for Text {
    /// The same text, however it is cut into pieces.
    fn eq(&self, other: &Text) -> bool {
        self.len == other.len && self.pieces().flat_map(str::bytes).eq(other.pieces().flat_map(str::bytes))
    }
}

/// An encoded answer (one JSON text, no framing).
#[derive(Debug, Clone, PartialEq)]
pub struct Response(pub Text);

/// One JSON text.
pub fn encode(value: &Value) -> Response {
    Response(Text::from(serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())))
}

pub fn error_value(id: &Value, error: &RpcError, v2: bool) -> Value {
    let e = serde_json::json!({"code": error.code, "message": error.message});
    if v2 {
        serde_json::json!({"jsonrpc": "2.0", "error": e, "id": id})
    } else {
        serde_json::json!({"result": null, "error": e, "id": id})
    }
}

pub fn error_response(id: &Value, error: &RpcError, v2: bool) -> Response {
    encode(&error_value(id, error, v2))
}

pub fn notification(method: &str, params: Value, v2: bool) -> Response {
    if v2 {
        encode(&serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params}))
    } else {
        encode(&serde_json::json!({"method": method, "params": params, "id": null}))
    }
}

/// A batch's answers, in one JSON array.
pub fn batch_response(items: Vec<Text>) -> Response {
    let mut out = Text::new();
    out.push_str("[");
    for (n, item) in items.into_iter().enumerate() {
        if n > 0 {
            out.push_str(",");
        }
        out.push_text(item);
    }
    out.push_str("]");
    Response(out)
}

/// A success reply, around a result that is JSON text already (a history's can be megabytes:
/// its pieces are moved or shared into the reply, not copied).
pub fn result_text(id: &Value, result: Text, v2: bool) -> Text {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "null".to_string());
    let (head, middle) =
        if v2 { ("{\"jsonrpc\":\"2.0\",\"result\":", ",\"id\":") } else { ("{\"result\":", ",\"error\":null,\"id\":") };
    if result.pieces.iter().all(|p| matches!(p, Piece::Small(_))) {
        // Most answers: one string of the right size.
        let mut out = String::with_capacity(head.len() + result.len() + middle.len() + id.len() + 1);
        out.push_str(head);
        result.pieces().for_each(|p| out.push_str(p));
        out.push_str(middle);
        out.push_str(&id);
        out.push('}');
        return Text::from(out);
    }
    let mut out = Text::from(head);
    out.push_text(result);
    out.push_str(middle);
    out.push_str(&id);
    out.push_str("}");
    out
}

fn parse_request(value: Value) -> Result<Request, Invalid> {
    let Value::Object(mut obj) = value else {
        return Err(Invalid::new(INVALID_REQUEST, "request object must be a dictionary"));
    };
    let v2 = obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let id = obj.remove("id");
    let id_for_error = id.clone().unwrap_or(Value::Null);
    let fail = |code: i64, msg: String| Invalid { id: id_for_error.clone(), error: RpcError::new(code, msg), v2 };
    if let Some(id) = &id {
        if !matches!(id, Value::Null | Value::Number(_) | Value::String(_)) {
            return Err(fail(INVALID_REQUEST, format!("invalid \"id\": {id}")));
        }
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return Err(fail(METHOD_NOT_FOUND, "method must be a string".into())),
        None => return Err(fail(INVALID_REQUEST, "request has no \"method\"".into())),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Params::Positional(Vec::new()),
        Some(Value::Array(a)) => Params::Positional(a),
        Some(Value::Object(m)) => Params::Named(m),
        Some(other) => return Err(fail(INVALID_PARAMS, format!("invalid request arguments: {other}"))),
    };
    // JSON-RPC 1.0 notifications carry `"id": null`; 2.0 ones omit it.
    let id = match id {
        Some(Value::Null) if !v2 => None,
        Some(Value::Null) => Some(Value::Null),
        other => other,
    };
    Ok(Request { id, method, params, v2 })
}

/// Parses one message (surrounding whitespace allowed: clients pad).
pub fn parse(bytes: &[u8]) -> Result<Incoming, Invalid> {
    let parse_error = |msg: &str| Invalid::new(PARSE_ERROR, msg);
    let text = std::str::from_utf8(bytes).map_err(|_| parse_error("messages must be encoded in UTF-8"))?;
    let value: Value = serde_json::from_str(text.trim()).map_err(|_| parse_error("invalid JSON"))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Invalid::new(INVALID_REQUEST, "batch is empty"));
            }
            Ok(Incoming::Batch(items.into_iter().map(parse_request).collect()))
        }
        other => parse_request(other).map(Incoming::Single),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn padded_v2_request() {
        let msg = b"  {\"jsonrpc\": \"2.0\", \"method\": \"server.ping\", \"id\": 7}            \n";
        let Incoming::Single(r) = parse(msg).unwrap() else { panic!() };
        assert_eq!(r.method, "server.ping");
        assert_eq!(r.id, Some(json!(7)));
        assert!(r.v2);
        assert_eq!(r.params, Params::Positional(vec![]));
    }

    #[test]
    fn v1_null_id_is_a_notification() {
        let Incoming::Single(r) = parse(br#"{"method":"x","params":[],"id":null}"#).unwrap() else { panic!() };
        assert_eq!(r.id, None);
        let Incoming::Single(r) = parse(br#"{"jsonrpc":"2.0","method":"x"}"#).unwrap() else { panic!() };
        assert_eq!(r.id, None);
    }

    #[test]
    fn errors_are_answers() {
        let e = parse(b"{not json").unwrap_err();
        assert_eq!((e.error.code, e.id.clone()), (PARSE_ERROR, Value::Null));
        assert_eq!(serde_json::from_str::<Value>(&e.response().0.to_string()).unwrap()["error"]["code"], PARSE_ERROR);
        let e = parse(b"[]").unwrap_err();
        assert_eq!((e.error.code, e.error.message.as_str()), (INVALID_REQUEST, "batch is empty"));
        let e = parse(b"5").unwrap_err();
        assert!(e.error.message.contains("must be a dictionary"));
        let e = parse(br#"{"id":1,"method":5}"#).unwrap_err();
        assert_eq!((e.error.code, e.id.clone(), e.v2), (METHOD_NOT_FOUND, json!(1), false));
        assert_eq!(
            serde_json::from_str::<Value>(&e.response().0.to_string()).unwrap(),
            json!({"result": null, "error": {"code": METHOD_NOT_FOUND, "message": "method must be a string"}, "id": 1})
        );
        let e = parse(br#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#).unwrap_err();
        assert_eq!((e.error.message.as_str(), e.v2), ("invalid \"id\": {\"a\":1}", true));
        let e = parse(&[0xff, 0xfe]).unwrap_err();
        assert!(e.error.message.contains("UTF-8"));
    }

    #[test]
    fn batch_with_a_bad_member() {
        let Incoming::Batch(items) =
            parse(br#"[{"id":1,"method":"a"}, 7, {"id":2,"method":"b","params":{"x":1}}]"#).unwrap()
        else {
            panic!()
        };
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
        assert_eq!(items[2].as_ref().unwrap().params, Params::Named(serde_json::from_value(json!({"x":1})).unwrap()));
    }

    #[test]
    fn binding() {
        let p = Params::Positional(vec![json!("a")]);
        assert_eq!(p.bind("m", &["x", "y"], 1, false).unwrap(), vec![Some(json!("a")), None]);
        let e = p.bind("m", &["x", "y"], 2, false).unwrap_err();
        assert_eq!(e.message, "1 argument passed to method \"m\" but it requires 2");
        let p = Params::Positional(vec![json!(1), json!(2), json!(3)]);
        assert_eq!(
            p.bind("m", &["x"], 0, false).unwrap_err().message,
            "3 arguments passed to method m taking at most 1"
        );
        assert_eq!(p.bind("m", &["x"], 0, true).unwrap(), vec![Some(json!(1))]);
        let p = Params::Named(serde_json::from_value(json!({"y": 1, "z": 2})).unwrap());
        assert_eq!(p.bind("m", &["x", "y"], 1, false).unwrap_err().message, "method \"m\" requires parameter \"x\"");
        assert_eq!(p.bind("m", &["y"], 1, false).unwrap_err().message, "method \"m\" does not take parameter \"z\"");
    }

    /// Large and shared text reaches the answer as it is, not copied; the answer is the same
    /// text however it is cut.
    #[test]
    fn text_moves_and_shares_large_pieces() {
        let large = "x".repeat(LARGE);
        let large_at = large.as_ptr();
        let shared: Arc<String> = Arc::new("[".to_string() + &"1,".repeat(3000) + "1]");
        let mut result = Text::new();
        result.push_shared(shared.clone());
        let mut body = Text::from("{\"a\":\"");
        body.push_string(large);
        body.push_str("\"}");
        let reply = result_text(&json!(7), result, true);
        assert_eq!(Arc::strong_count(&shared), 2);
        let shared_piece = reply.pieces().find(|p| p.len() == shared.len()).unwrap();
        assert_eq!(shared_piece.as_ptr(), shared.as_ptr());
        let v: Value = serde_json::from_str(&reply.to_string()).unwrap();
        assert_eq!(v["result"].as_array().unwrap().len(), 3001);
        assert_eq!(reply.len(), reply.to_string().len());
        // Small text is gathered: head, shared body, tail.
        assert_eq!(reply.pieces().count(), 3);
        // A small answer is one piece, its string moved in.
        let small = String::from("[1,2]");
        let at = small.as_ptr();
        let small = Text::from(small);
        assert_eq!(small.pieces().map(str::as_ptr).collect::<Vec<_>>(), vec![at]);
        assert_eq!(result_text(&json!(1), small, true).pieces().count(), 1);
        assert!(body.pieces().any(|p| p.as_ptr() == large_at));
        assert_eq!(body.len(), LARGE + 8);
        let whole = Text::from(body.to_string());
        assert_eq!(whole, body);
        assert_ne!(Text::from("ab"), Text::from("ac"));
        assert!(Text::new().is_empty());
        assert_eq!(Text::new().to_string(), "");
    }

    #[test]
    fn response_shapes() {
        let parsed = |t: Text| serde_json::from_str::<Value>(&t.to_string()).unwrap();
        assert_eq!(
            parsed(result_text(&json!(1), "\"ok\"".into(), true)),
            json!({"jsonrpc":"2.0","result":"ok","id":1})
        );
        assert_eq!(parsed(result_text(&json!("a"), "[1]".into(), false)), json!({"result":[1],"error":null,"id":"a"}));
        let batch = batch_response(vec!["1".into(), result_text(&json!(2), "[]".into(), true)]);
        assert_eq!(parsed(batch.0), json!([1, {"jsonrpc":"2.0","result":[],"id":2}]));
        let e = RpcError::bad_request("nope");
        assert_eq!(
            error_value(&json!("a"), &e, true),
            json!({"jsonrpc":"2.0","error":{"code":1,"message":"nope"},"id":"a"})
        );
    }
}
