//! Canonical JSON exactly as securesystemslib's `encode_canonical` writes it, since TUF
//! signatures are made over those bytes and a single differing byte breaks every signature:
//!
//! - object keys sorted by code point (the same order as their UTF-8 bytes), no whitespace;
//! - in strings only `\` and `"` are escaped; every other character, control characters and
//!   non-ASCII included, is written as its raw UTF-8 bytes, with no Unicode normalisation
//!   (the reference does none, so `é` and `e\u{301}` stay two different keys);
//! - integers only: a float anywhere is refused, as the reference refuses it.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("the number {0} is not an integer (canonical JSON has integers only)")]
    NotAnInteger(String),
}

/// The canonical JSON bytes of `value`.
pub fn encode(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // serde_json keeps integers that fit 64 bits as integers; anything else
            // (a fraction, an exponent, a huge integer) came to it as a float.
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalError::NotAnInteger(n.to_string()));
            }
        }
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted here, whatever order the map keeps: `String`'s order is byte order,
            // which for UTF-8 is code point order, Python's `sorted` order for `str`.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'\\' || b == b'"' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(json: &str) -> Result<String, CanonicalError> {
        let v: Value = serde_json::from_str(json).unwrap();
        encode(&v).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn sorts_keys_strips_whitespace_and_escapes_only_two_characters() {
        assert_eq!(
            canon(r#"{ "b": [1, -2, true, null], "a": "x\"\\\n\u0001é" }"#).unwrap(),
            "{\"a\":\"x\\\"\\\\\n\u{1}é\",\"b\":[1,-2,true,null]}"
        );
        assert!(canon("{\"a\": 1.0}").is_err());
        assert!(canon("[1e3]").is_err());
        assert_eq!(
            canon("18446744073709551615").unwrap(),
            "18446744073709551615"
        );
    }
}
