//! AK/SK request signing (§2): canonical query, string to sign, and the Authorization header.
//!
//! Everything here is a pure function of its inputs — the clock and the nonce are arguments —
//! so the contract's test vectors pin it down exactly. Both the client and the sandbox use it.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The scheme name in the Authorization header and the string to sign.
pub const SCHEME: &str = "MB-HMAC-SHA256";

type HmacSha256 = Hmac<Sha256>;

/// A secret that never shows itself in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The two kinds of credential MariBank issues (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An AK/SK pair: every request is signed with HMAC-SHA256.
    AccessKey,
    /// An OAuth 2.0 client: a bearer token from `POST /v1/oauth/token` on every request.
    OauthClient,
}

impl CredentialKind {
    /// The snake_case name used in reports and `check`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AccessKey => "access_key",
            CredentialKind::OauthClient => "oauth_client",
        }
    }

    /// How a human calls it.
    pub fn describe(self) -> &'static str {
        match self {
            CredentialKind::AccessKey => "access key (AK/SK, HMAC-SHA256 signatures)",
            CredentialKind::OauthClient => "OAuth 2.0 client (client credentials, bearer tokens)",
        }
    }
}

/// A credential: an access key pair, or an OAuth client's id and secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The public id: the access key id (`MB-SANDBOX-AK-0001`) or the OAuth client id
    /// (`MB-SANDBOX-CLIENT-0001`).
    pub access_key_id: String,
    /// The secret access key, or the OAuth client secret.
    pub secret: Secret,
    /// Which kind of credential this is; an OAuth client never signs (see [`AuthHeader::sign`]).
    pub kind: CredentialKind,
}

impl Credentials {
    /// An access key pair from its two parts.
    pub fn new(access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret: Secret::new(secret),
            kind: CredentialKind::AccessKey,
        }
    }

    /// An OAuth 2.0 client from its id and secret.
    pub fn oauth_client(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Credentials {
            kind: CredentialKind::OauthClient,
            ..Credentials::new(client_id, client_secret)
        }
    }

    /// The public id (access key id or client id).
    pub fn id(&self) -> &str {
        &self.access_key_id
    }
}

/// Percent-encodes with RFC 3986 rules: unreserved `A–Z a–z 0–9 - _ . ~` stay, every other byte
/// of the UTF-8 form becomes `%XX` with upper-case hex.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// The canonical query of decoded (name, value) pairs: encoded, sorted by name then value in
/// byte order, joined as `name=value` with `&`. Repeated names are kept.
pub fn canonical_query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (percent_encode(k.as_ref()), percent_encode(v.as_ref())))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The canonical path: each `/`-separated segment of the decoded path percent-encoded.
pub fn canonical_path(path: &str) -> String {
    path.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lower-case hex HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Compares a claimed hex HMAC-SHA256 with the one computed over `message`, in constant time.
pub fn verify_hmac_sha256_hex(key: &[u8], message: &[u8], claimed_hex: &str) -> bool {
    let Ok(claimed) = hex::decode(claimed_hex) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.verify_slice(&claimed).is_ok()
}

/// One request as the signature sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// The decoded request path, e.g. `/v1/transactions`.
    pub path: &'a str,
    /// The decoded query parameters, in any order.
    pub query: &'a [(String, String)],
    /// The body as sent (empty for GET).
    pub body: &'a [u8],
}

/// The string to sign of §2.
pub fn string_to_sign(timestamp_ms: i64, nonce: &str, req: &RequestParts<'_>) -> String {
    format!(
        "{SCHEME}\n{timestamp_ms}\n{nonce}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_path(req.path),
        canonical_query(req.query),
        sha256_hex(req.body)
    )
}

/// The signature of a request: lower-case hex HMAC-SHA256 of the string to sign.
pub fn signature(
    secret: &Secret,
    timestamp_ms: i64,
    nonce: &str,
    req: &RequestParts<'_>,
) -> String {
    hmac_sha256_hex(
        secret.expose().as_bytes(),
        string_to_sign(timestamp_ms, nonce, req).as_bytes(),
    )
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Credential=`.
    pub access_key_id: String,
    /// `Timestamp=`, Unix milliseconds.
    pub timestamp_ms: i64,
    /// `Nonce=`.
    pub nonce: String,
    /// `Signature=`, lower-case hex.
    pub signature: String,
}

impl AuthHeader {
    /// Signs a request and returns its header (for an access key; an OAuth client sends a
    /// bearer token instead).
    pub fn sign(
        creds: &Credentials,
        timestamp_ms: i64,
        nonce: &str,
        req: &RequestParts<'_>,
    ) -> AuthHeader {
        AuthHeader {
            access_key_id: creds.access_key_id.clone(),
            timestamp_ms,
            nonce: nonce.to_string(),
            signature: signature(&creds.secret, timestamp_ms, nonce, req),
        }
    }

    /// The header value.
    pub fn to_header_value(&self) -> String {
        format!(
            "{SCHEME} Credential={}, Timestamp={}, Nonce={}, Signature={}",
            self.access_key_id, self.timestamp_ms, self.nonce, self.signature
        )
    }

    /// Parses a header value strictly; the error says what is wrong.
    pub fn parse(value: &str) -> Result<AuthHeader, String> {
        let rest = value
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| format!("the scheme must be `{SCHEME}`"))?;
        let (mut cred, mut ts, mut nonce, mut sig) = (None, None, None, None);
        for part in rest.split(',') {
            let (name, val) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("`{}` is not name=value", part.trim()))?;
            let slot = match name {
                "Credential" => &mut cred,
                "Timestamp" => &mut ts,
                "Nonce" => &mut nonce,
                "Signature" => &mut sig,
                other => return Err(format!("unknown field `{other}`")),
            };
            if slot.replace(val.to_string()).is_some() {
                return Err(format!("field `{name}` given twice"));
            }
        }
        let access_key_id = cred
            .filter(|c| !c.is_empty())
            .ok_or("Credential is missing")?;
        let ts = ts.ok_or("Timestamp is missing")?;
        if ts.is_empty()
            || !ts.bytes().all(|b| b.is_ascii_digit())
            || (ts.len() > 1 && ts.starts_with('0'))
        {
            return Err("Timestamp must be Unix milliseconds, digits only".into());
        }
        let timestamp_ms = ts
            .parse::<i64>()
            .map_err(|_| "Timestamp is out of range".to_string())?;
        let nonce = nonce.ok_or("Nonce is missing")?;
        if !(8..=64).contains(&nonce.len())
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("Nonce must be 8-64 characters from [A-Za-z0-9_-]".into());
        }
        let signature = sig.ok_or("Signature is missing")?;
        if signature.len() != 64
            || !signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err("Signature must be 64 lower-case hex digits".into());
        }
        Ok(AuthHeader {
            access_key_id,
            timestamp_ms,
            nonce,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SECRET: &str = "sandbox-secret-do-not-use-in-prod";

    #[test]
    fn contract_vector_1() {
        let q = pairs(&[
            ("account_id", "ACC-SG-0001"),
            ("start_time", "2026-11-24T00:00:00+08:00"),
            ("end_time", "2026-11-25T00:00:00+08:00"),
            ("page_size", "500"),
        ]);
        assert_eq!(
            canonical_query(&q),
            "account_id=ACC-SG-0001&end_time=2026-11-25T00%3A00%3A00%2B08%3A00&page_size=500&start_time=2026-11-24T00%3A00%3A00%2B08%3A00"
        );
        let req = RequestParts {
            method: "GET",
            path: "/v1/transactions",
            query: &q,
            body: b"",
        };
        assert_eq!(
            signature(
                &Secret::new(SECRET),
                1764028800000,
                "4f3c2a1b9e8d7c6b",
                &req
            ),
            "190c1bee41530c5f6ea817944b67441c95919126644193c159e279ac10b181b9"
        );
    }

    #[test]
    fn contract_vector_2() {
        let q = pairs(&[
            ("type", "REFUND"),
            ("account_id", "ACC-SG-0001"),
            ("q", "a b/c~ü"),
            ("a", "2"),
            ("a", "10"),
        ]);
        assert_eq!(
            canonical_query(&q),
            "a=10&a=2&account_id=ACC-SG-0001&q=a%20b%2Fc~%C3%BC&type=REFUND"
        );
        let req = RequestParts {
            method: "GET",
            path: "/v1/transactions",
            query: &q,
            body: b"",
        };
        assert_eq!(
            signature(&Secret::new(SECRET), 1764028800000, "nonce-0002", &req),
            "838da24eea37b18149e58de8a1bfef0be57194e3916d69f69e449405770bfa9c"
        );
    }

    #[test]
    fn header_round_trips_and_rejects_malformed() {
        let creds = Credentials::new("MB-SANDBOX-AK-0001", SECRET);
        let req = RequestParts {
            method: "GET",
            path: "/v1/accounts",
            query: &[],
            body: b"",
        };
        let h = AuthHeader::sign(&creds, 1764028800000, "abcdefgh", &req);
        assert_eq!(AuthHeader::parse(&h.to_header_value()).unwrap(), h);
        for bad in [
            "",
            "Bearer x",
            "MB-HMAC-SHA256 Credential=a, Timestamp=01, Nonce=abcdefgh, Signature=00",
            "MB-HMAC-SHA256 Credential=a, Timestamp=1, Nonce=short, Signature=00",
            "MB-HMAC-SHA256 Credential=a, Timestamp=1, Nonce=abcdefgh",
        ] {
            assert!(AuthHeader::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let creds = Credentials::new("AK", SECRET);
        assert!(!format!("{creds:?}").contains(SECRET));
    }
}
