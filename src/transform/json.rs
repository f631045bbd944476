//! One raw JSON item split into its top-level fields (as raw JSON text), borrowed, in one pass.

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

/// The top-level fields of a JSON object, in order, values as raw text.
pub struct Fields<'a>(pub Vec<(CowStr<'a>, &'a RawValue)>);

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
                while let Some(e) = m.next_entry::<CowStr<'de>, &'de RawValue>()? {
                    v.push(e);
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(V)
    }
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
pub fn as_str(raw: &RawValue) -> JsonStr<'_> {
    let t = raw.get();
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
pub fn extra_json(extra: &[(&str, &RawValue)]) -> Option<String> {
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
