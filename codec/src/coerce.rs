//! ElectrumX's coercions: method parameters checked and converted as Python and ElectrumX do
//! (`int()`, `str()`, `repr()`, its hash and hex checks), with its error messages, so that
//! clients see the same answers from both servers.

use serde_json::Value;

use crate::jsonrpc::RpcError;
use crate::types::{ScriptHash, Txid};

/// Python's `repr()` of a string: single quotes unless the string holds one and no double.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of a JSON value as the json module decodes it.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_repr_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            format!(
                "{{{}}}",
                m.iter().map(|(k, v)| format!("{}: {}", py_repr_str(k), py_repr(v))).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// Python's `str()`: strings as they are, everything else as `repr()`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `int()` of a JSON value: integers, floats (truncated), booleans, and strings of
/// an integer (surrounding whitespace, sign and `_` separators allowed).
pub fn py_int(v: &Value) -> Option<i128> {
    match v {
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Some(i128::from(u))
            } else {
                n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e30).map(|f| f.trunc() as i128)
            }
        }
        Value::String(s) => {
            let t = s.trim();
            let (neg, digits) = match t.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, t.strip_prefix('+').unwrap_or(t)),
            };
            if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
                return None;
            }
            let clean: String = digits.chars().filter(|c| *c != '_').collect();
            if !clean.chars().all(|c| c.is_ascii_digit()) || clean.len() > 30 {
                return None;
            }
            let n: i128 = clean.parse().ok()?;
            Some(if neg { -n } else { n })
        }
        _ => None,
    }
}

/// ElectrumX's `non_negative_integer`.
pub fn non_negative(v: &Value) -> Result<u64, RpcError> {
    match py_int(v) {
        Some(n) if n >= 0 => {
            u64::try_from(n).map_err(|_| RpcError::bad_request(format!("{n} should be a non-negative integer")))
        }
        Some(n) => Err(RpcError::bad_request(format!("{n} should be a non-negative integer"))),
        None => Err(RpcError::bad_request(format!("{} should be a non-negative integer", py_str(v)))),
    }
}

/// A height (fits in u32; larger ones are simply beyond the chain).
pub fn height(v: &Value) -> Result<u32, RpcError> {
    non_negative(v).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// A JSON boolean (Python also takes 0 and 1, as `x in (False, True)` does).
pub fn boolean(v: &Value, message: &str) -> Result<bool, RpcError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(true),
        _ => Err(RpcError::bad_request(message)),
    }
}

fn hash32(v: &Value) -> Option<[u8; 32]> {
    let s = v.as_str()?;
    let mut b = [0u8; 32];
    hex::decode_to_slice(s, &mut b).ok()?;
    b.reverse();
    Some(b)
}

pub fn scripthash(v: &Value) -> Result<ScriptHash, RpcError> {
    hash32(v).map(ScriptHash).ok_or_else(|| RpcError::bad_request(format!("{} is not a valid script hash", py_str(v))))
}

pub fn txid(v: &Value) -> Result<Txid, RpcError> {
    hash32(v).map(Txid).ok_or_else(|| RpcError::bad_request(format!("{} should be a transaction hash", py_str(v))))
}

/// A hex string of whole bytes, decoded.
pub fn hex_bytes(v: &Value) -> Result<Vec<u8>, RpcError> {
    v.as_str()
        .filter(|s| s.len() % 2 == 0)
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| RpcError::bad_request(format!("{} should be a hex string", py_str(v))))
}

/// Thousands separators, as Python's `{:,d}`.
pub fn commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_conversions() {
        assert_eq!(py_int(&json!("  12 ")), Some(12));
        assert_eq!(py_int(&json!("1_000")), Some(1000));
        assert_eq!(py_int(&json!(7.9)), Some(7));
        assert_eq!(py_int(&json!(true)), Some(1));
        assert_eq!(py_int(&json!("1.5")), None);
        assert_eq!(py_int(&json!(null)), None);
        assert_eq!(py_int(&json!([1])), None);
        assert_eq!(non_negative(&json!(-3)).unwrap_err().message, "-3 should be a non-negative integer");
        assert_eq!(non_negative(&json!("x")).unwrap_err().message, "x should be a non-negative integer");
        assert_eq!(non_negative(&json!(null)).unwrap_err().message, "None should be a non-negative integer");
        assert_eq!(py_repr(&json!(["1.4", 2, null, {"a": true}])), "['1.4', 2, None, {'a': True}]");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(commas(1234567), "1,234,567");
        assert_eq!(commas(12), "12");
    }

    #[test]
    fn hashes_and_hex() {
        let h = "f04bf26fc16a27abaa2f10540da7a24e369e6ec408f2d901202a7c0cd4a6112d";
        assert_eq!(scripthash(&json!(h)).unwrap().to_hex(), h);
        assert_eq!(scripthash(&json!(h.to_uppercase())).unwrap().to_hex(), h);
        assert_eq!(scripthash(&json!("abc")).unwrap_err().message, "abc is not a valid script hash");
        assert_eq!(scripthash(&json!(5)).unwrap_err().message, "5 is not a valid script hash");
        assert_eq!(txid(&json!("zz")).unwrap_err().message, "zz should be a transaction hash");
        assert_eq!(hex_bytes(&json!("0a0b")).unwrap(), vec![10, 11]);
        assert_eq!(hex_bytes(&json!("0a0")).unwrap_err().message, "0a0 should be a hex string");
    }
}
