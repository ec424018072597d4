//! JSON-RPC 1.0 and 2.0 as Electrum clients speak it: single requests, batches, notifications,
//! positional and named parameters, and error objects with ElectrumX's codes and messages.

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

/// An encoded answer (one JSON text, no framing).
#[derive(Debug, Clone, PartialEq)]
pub struct Response(pub String);

/// One JSON text.
pub fn encode(value: &Value) -> Response {
    Response(serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()))
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
/// A batch's replies, each already JSON text.
pub fn batch_response(items: Vec<String>) -> Response {
    let mut out = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    out.push('[');
    out.push_str(&items.join(","));
    out.push(']');
    Response(out)
}

/// A success reply as JSON text, around a result that is JSON text already.
/// Written into one allocation of the right size: a history's result can be megabytes, and
/// `format!` grew its string by doubling, copying it each time.
pub fn result_text(id: &Value, result: &str, v2: bool) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "null".to_string());
    let (head, middle) =
        if v2 { ("{\"jsonrpc\":\"2.0\",\"result\":", ",\"id\":") } else { ("{\"result\":", ",\"error\":null,\"id\":") };
    let mut out = String::with_capacity(head.len() + result.len() + middle.len() + id.len() + 1);
    out.push_str(head);
    out.push_str(result);
    out.push_str(middle);
    out.push_str(&id);
    out.push('}');
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
        assert_eq!(serde_json::from_str::<Value>(&e.response().0).unwrap()["error"]["code"], PARSE_ERROR);
        let e = parse(b"[]").unwrap_err();
        assert_eq!((e.error.code, e.error.message.as_str()), (INVALID_REQUEST, "batch is empty"));
        let e = parse(b"5").unwrap_err();
        assert!(e.error.message.contains("must be a dictionary"));
        let e = parse(br#"{"id":1,"method":5}"#).unwrap_err();
        assert_eq!((e.error.code, e.id.clone(), e.v2), (METHOD_NOT_FOUND, json!(1), false));
        assert_eq!(
            serde_json::from_str::<Value>(&e.response().0).unwrap(),
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

    #[test]
    fn response_shapes() {
        let parsed = |t: String| serde_json::from_str::<Value>(&t).unwrap();
        assert_eq!(parsed(result_text(&json!(1), "\"ok\"", true)), json!({"jsonrpc":"2.0","result":"ok","id":1}));
        assert_eq!(parsed(result_text(&json!("a"), "[1]", false)), json!({"result":[1],"error":null,"id":"a"}));
        let e = RpcError::bad_request("nope");
        assert_eq!(
            error_value(&json!("a"), &e, true),
            json!({"jsonrpc":"2.0","error":{"code":1,"message":"nope"},"id":"a"})
        );
    }
}
