//! One raw JSON item split into its top-level fields (as raw JSON text), borrowed, in one pass.
//!
//! [`fields`] scans an item with a byte loop that checks the JSON grammar as it goes (objects
//! and arrays nested in a value are checked by `serde_json`); anything it does not handle
//! itself (a `\u` escape, a key with escapes, invalid JSON) goes through `serde_json`, which
//! gives the same fields or the error the item is quarantined with.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A string that borrows from the input unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The raw JSON text of one value, borrowed from the item (valid JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// The value's JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }
}

impl<'a> From<&'a RawValue> for Raw<'a> {
    fn from(v: &'a RawValue) -> Raw<'a> {
        Raw(v.get())
    }
}

/// The top-level fields of a JSON object, in order, values as raw text.
pub struct Fields<'a>(pub Vec<(CowStr<'a>, Raw<'a>)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(24);
                while let Some((k, r)) = m.next_entry::<CowStr<'de>, &'de RawValue>()? {
                    v.push((k, Raw::from(r)));
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Splits one item into its fields: the byte scanner, else `serde_json` (and its error).
pub fn fields(raw: &str) -> Result<Fields<'_>, serde_json::Error> {
    match scan_object(raw) {
        Some(f) => Ok(f),
        None => serde_json::from_str::<Fields<'_>>(raw),
    }
}

/// The fields of an object whose keys have no escapes and whose strings no `\u` escape, read
/// with a byte loop; `None` for anything else (left to `serde_json`).
fn scan_object(raw: &str) -> Option<Fields<'_>> {
    let b = raw.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::with_capacity(24);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(Fields(out));
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = scan_string(b, i)?;
        if escaped {
            return None;
        }
        let key = &raw[i + 1..end - 1];
        i = skip_ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let vend = scan_value(raw, i)?;
        out.push((CowStr(Cow::Borrowed(key)), Raw(&raw[i..vend])));
        i = skip_ws(b, vend);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => {
                return (skip_ws(b, i + 1) == b.len()).then_some(Fields(out));
            }
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            break;
        }
        i += 1;
    }
    i
}

/// The end (past the closing quote) of the string starting at `b[start] == '"'`, and whether
/// it has escapes; `None` when it is invalid or has a `\u` escape.
fn scan_string(b: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        let c = *b.get(i)?;
        match c {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                if !matches!(
                    b.get(i + 1)?,
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't'
                ) {
                    return None;
                }
                escaped = true;
                i += 2;
            }
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// The end of the value starting at `raw[start]`; `None` when invalid or not handled here.
fn scan_value(raw: &str, start: usize) -> Option<usize> {
    let b = raw.as_bytes();
    match *b.get(start)? {
        b'"' => scan_string(b, start).map(|(end, _)| end),
        b'n' => literal(b, start, b"null"),
        b't' => literal(b, start, b"true"),
        b'f' => literal(b, start, b"false"),
        b'-' | b'0'..=b'9' => scan_number(b, start),
        b'{' | b'[' => {
            let mut de = serde_json::Deserializer::from_str(&raw[start..]);
            let v = <&RawValue>::deserialize(&mut de).ok()?;
            Some(start + v.get().len())
        }
        _ => None,
    }
}

fn literal(b: &[u8], start: usize, word: &[u8]) -> Option<usize> {
    b.get(start..start + word.len())
        .filter(|w| *w == word)
        .map(|_| start + word.len())
}

/// A JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn scan_number(b: &[u8], start: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        let from = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > from).then_some(i)
    };
    let mut i = start;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(i)?;
    }
    Some(i)
}

/// A JSON value's kind, as far as a column cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonStr<'a> {
    /// `null`.
    Null,
    /// A string's decoded contents.
    Str(Cow<'a, str>),
    /// Anything else (number, bool, object, array), as raw text.
    Other(&'a str),
}

/// Reads a raw value as a string column would.
pub fn as_str<'a>(raw: impl Into<Raw<'a>>) -> JsonStr<'a> {
    let t = raw.into().get();
    let b = t.as_bytes();
    match b.first() {
        Some(b'"') => {
            let inner = &t[1..t.len() - 1];
            if !inner.contains('\\') {
                JsonStr::Str(Cow::Borrowed(inner))
            } else {
                match serde_json::from_str::<String>(t) {
                    Ok(s) => JsonStr::Str(Cow::Owned(s)),
                    Err(_) => JsonStr::Other(t),
                }
            }
        }
        Some(b'n') if t == "null" => JsonStr::Null,
        _ => JsonStr::Other(t),
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds `{"name":raw,…}` from unknown fields; `None` when there are none.
pub fn extra_json(extra: &[(&str, Raw<'_>)]) -> Option<String> {
    if extra.is_empty() {
        return None;
    }
    let mut s = String::from("{");
    for (i, (k, v)) in extra.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_json_str(&mut s, k);
        s.push(':');
        s.push_str(v.get());
    }
    s.push('}');
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_fields(raw: &str) -> Option<Vec<(String, String)>> {
        let f = serde_json::from_str::<Fields<'_>>(raw).ok()?;
        Some(
            f.0.iter()
                .map(|(k, v)| (k.0.to_string(), v.get().to_string()))
                .collect(),
        )
    }

    fn scanned(raw: &str) -> Option<Vec<(String, String)>> {
        let f = fields(raw).ok()?;
        Some(
            f.0.iter()
                .map(|(k, v)| (k.0.to_string(), v.get().to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_scanner_agrees_with_serde_json() {
        let cases = [
            r#"{"a":"x","b":null,"c":12.5e-3,"d":{"x":[1,{"y":"}"}]},"e":[],"f":true}"#,
            r#" { "a" : "q\"uo\\te\n" , "a":-0 } "#,
            r#"{}"#,
            r#"{"k\u0041":"v"}"#,
            r#"{"a":"\u00e9\ud83d\ude00"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":"x"} x"#,
            r#"{"a":"x",}"#,
            r#"{"a":tru}"#,
            "{\"a\":\"tab\there\"}",
            r#"["a"]"#,
            r#"{"a":"x""#,
            r#"{"a":-}"#,
            r#"{"a":1e+}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":{"b":}}"#,
        ];
        for c in cases {
            assert_eq!(scanned(c), serde_fields(c), "{c}");
        }
        assert!(scan_object(r#"{"a":"x","b":[1]}"#).is_some());
        assert!(scan_object(r#"{"a":"\u0041"}"#).is_none());
    }
}
