//! Server-side authentication (§2): the seven checks, in the contract's order, with a nonce
//! replay cache of bounded memory.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use crate::contract::signing::{
    AuthHeader, RequestParts, Secret, string_to_sign, verify_hmac_sha256_hex,
};
use crate::contract::{ErrorCode, MAX_CLOCK_SKEW_MS, NONCE_TTL_MS};
use crate::registry::Stream;

/// The default sandbox access key id.
pub const DEFAULT_ACCESS_KEY_ID: &str = "MB-SANDBOX-AK-0001";
/// The default sandbox secret (published: it only opens the sandbox).
pub const DEFAULT_SECRET: &str = "sandbox-secret-do-not-use-in-prod";
/// One access key the sandbox accepts.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret: Secret,
    /// Disabled keys answer `ACCESS_KEY_INVALID`.
    pub enabled: bool,
    /// Products granted.
    pub products: Vec<String>,
    /// When non-empty, only these caller IPs are allowed.
    pub ip_allowlist: Vec<IpAddr>,
}

impl ApiKey {
    /// An enabled key with every product and no allowlist.
    pub fn new(access_key_id: &str, secret: &str) -> ApiKey {
        ApiKey {
            access_key_id: access_key_id.into(),
            secret: Secret::new(secret),
            enabled: true,
            products: Stream::products().iter().map(|p| p.to_string()).collect(),
            ip_allowlist: Vec::new(),
        }
    }

    /// Parses `AK:SK[:products][:ips]` where products and ips are `|`-separated
    /// (`-` for none, `*` for all products).
    pub fn parse(spec: &str) -> Result<ApiKey, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        if parts.len() < 2 || parts[0].is_empty() || parts[1].is_empty() {
            return Err(format!("key `{}` must be AK:SK[:products][:ips]", parts[0]));
        }
        let mut k = ApiKey::new(parts[0], parts[1]);
        if let Some(p) = parts.get(2) {
            k.products = match *p {
                "*" => k.products,
                "-" => Vec::new(),
                p => p.split('|').map(str::to_string).collect(),
            };
            if let Some(bad) = k
                .products
                .iter()
                .find(|p| !Stream::products().contains(&p.as_str()))
            {
                return Err(format!(
                    "unknown product `{bad}` (expected {})",
                    Stream::products().join("|")
                ));
            }
        }
        if let Some(ips) = parts.get(3) {
            k.ip_allowlist = ips
                .split('|')
                .map(|ip| {
                    ip.parse()
                        .map_err(|_| format!("`{ip}` is not an IP address"))
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(k)
    }
}

/// The sandbox's keys: the default one plus one for each auth error that needs a key of its own.
pub fn default_keys() -> Vec<ApiKey> {
    let mut no_statements = ApiKey::new("MB-SANDBOX-AK-NOSTMT", "sandbox-secret-no-statements");
    no_statements.products.retain(|p| p != "statements");
    let mut allowlisted = ApiKey::new("MB-SANDBOX-AK-IPLIST", "sandbox-secret-ip-allowlist");
    allowlisted.ip_allowlist = vec!["203.0.113.10".parse().expect("valid IP")];
    let mut disabled = ApiKey::new("MB-SANDBOX-AK-DISABLED", "sandbox-secret-disabled");
    disabled.enabled = false;
    vec![
        ApiKey::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET),
        no_statements,
        allowlisted,
        disabled,
    ]
}

/// An authentication failure: the code and a message that says what to fix.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// The contract code.
    pub code: ErrorCode,
    /// Human message.
    pub message: String,
}

pub(crate) fn fail(code: ErrorCode, message: impl Into<String>) -> AuthFailure {
    AuthFailure {
        code,
        message: message.into(),
    }
}

/// Nonces seen in the last 15 minutes, per key, as 128-bit hashes; oldest evicted past `cap`.
/// Eviction cannot open a replay: a request older than the 5-minute skew window is refused by
/// the timestamp check anyway, and the cap is far above 10 minutes of traffic at any QPS the
/// sandbox serves.
#[derive(Debug)]
pub struct NonceCache {
    inner: Mutex<NonceInner>,
    cap: usize,
}

#[derive(Debug, Default)]
struct NonceInner {
    set: HashSet<u128>,
    order: VecDeque<(i64, u128)>,
}

impl NonceCache {
    /// A cache holding at most `cap` nonces.
    pub fn new(cap: usize) -> NonceCache {
        NonceCache {
            inner: Mutex::new(NonceInner::default()),
            cap,
        }
    }

    fn fingerprint(key: &str, nonce: &str) -> u128 {
        let a =
            super::rng::hash_bytes(1, key.as_bytes()) ^ super::rng::hash_bytes(2, nonce.as_bytes());
        let b =
            super::rng::hash_bytes(3, nonce.as_bytes()) ^ super::rng::hash_bytes(4, key.as_bytes());
        ((a as u128) << 64) | b as u128
    }

    fn prune(inner: &mut NonceInner, now_ms: i64) {
        while let Some(&(exp, f)) = inner.order.front() {
            if exp > now_ms {
                break;
            }
            inner.order.pop_front();
            inner.set.remove(&f);
        }
    }

    /// Whether `nonce` was used by `key` within the TTL.
    pub fn seen(&self, key: &str, nonce: &str, now_ms: i64) -> bool {
        let mut g = self.inner.lock().expect("nonce cache lock");
        Self::prune(&mut g, now_ms);
        g.set.contains(&Self::fingerprint(key, nonce))
    }

    /// Records `nonce`; false when it was already there.
    pub fn insert(&self, key: &str, nonce: &str, now_ms: i64) -> bool {
        let f = Self::fingerprint(key, nonce);
        let mut g = self.inner.lock().expect("nonce cache lock");
        Self::prune(&mut g, now_ms);
        if !g.set.insert(f) {
            return false;
        }
        g.order.push_back((now_ms + NONCE_TTL_MS, f));
        while g.set.len() > self.cap {
            if let Some((_, old)) = g.order.pop_front() {
                g.set.remove(&old);
            }
        }
        true
    }

    /// Nonces held now.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("nonce cache lock").set.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The request as authentication sees it.
pub struct AuthRequest<'a> {
    /// Raw `Authorization` header value, if any.
    pub header: Option<&'a str>,
    /// Signed parts.
    pub parts: RequestParts<'a>,
    /// TCP peer address.
    pub caller_ip: IpAddr,
    /// Product the endpoint needs (`None`: any valid key).
    pub product: Option<&'a str>,
}

/// Runs the seven checks of §2 in order; on success, the key's id.
pub fn authenticate<'k>(
    keys: &'k [ApiKey],
    nonces: &NonceCache,
    req: &AuthRequest<'_>,
    now_ms: i64,
) -> Result<&'k ApiKey, AuthFailure> {
    let raw = req.header.ok_or_else(|| {
        fail(
            ErrorCode::AuthHeaderInvalid,
            "the Authorization header is missing",
        )
    })?;
    let h = AuthHeader::parse(raw).map_err(|why| {
        fail(
            ErrorCode::AuthHeaderInvalid,
            format!("the Authorization header is malformed: {why}"),
        )
    })?;
    let key = keys
        .iter()
        .find(|k| k.access_key_id == h.access_key_id && k.enabled)
        .ok_or_else(|| {
            fail(
                ErrorCode::AccessKeyInvalid,
                format!("access key {} is unknown or disabled", h.access_key_id),
            )
        })?;
    let skew = now_ms - h.timestamp_ms;
    if skew.abs() > MAX_CLOCK_SKEW_MS {
        return Err(fail(
            ErrorCode::TimestampExpired,
            format!(
                "request timestamp {} is {} ms {} server time {now_ms} (allowed: {MAX_CLOCK_SKEW_MS} ms)",
                h.timestamp_ms,
                skew.abs(),
                if skew > 0 { "behind" } else { "ahead of" }
            ),
        ));
    }
    if nonces.seen(&key.access_key_id, &h.nonce, now_ms) {
        return Err(fail(
            ErrorCode::NonceReused,
            format!(
                "nonce {} was already used by this key in the last 15 minutes",
                h.nonce
            ),
        ));
    }
    let sts = string_to_sign(h.timestamp_ms, &h.nonce, &req.parts);
    if !verify_hmac_sha256_hex(key.secret.expose().as_bytes(), sts.as_bytes(), &h.signature) {
        return Err(fail(
            ErrorCode::SignatureMismatch,
            format!(
                "signature does not match; the server signed this string (newlines shown as \\n): {}",
                sts.replace('\n', "\\n")
            ),
        ));
    }
    if !nonces.insert(&key.access_key_id, &h.nonce, now_ms) {
        return Err(fail(
            ErrorCode::NonceReused,
            format!(
                "nonce {} was already used by this key in the last 15 minutes",
                h.nonce
            ),
        ));
    }
    grants(key, "access key", req.caller_ip, req.product)?;
    Ok(key)
}

/// The last two checks, for an access key or an OAuth client (`what` names which): the caller
/// IP against the allowlist, then the product the endpoint needs.
pub fn grants(
    key: &ApiKey,
    what: &str,
    caller_ip: IpAddr,
    product: Option<&str>,
) -> Result<(), AuthFailure> {
    if !key.ip_allowlist.is_empty() && !key.ip_allowlist.contains(&caller_ip) {
        return Err(fail(
            ErrorCode::IpNotAllowed,
            format!(
                "caller IP {caller_ip} is not on the allowlist of {what} {}",
                key.access_key_id
            ),
        ));
    }
    if let Some(p) = product
        && !key.products.iter().any(|g| g == p)
    {
        return Err(fail(
            ErrorCode::PermissionDenied,
            format!(
                "{what} {} is not granted the `{p}` product",
                key.access_key_id
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_cache_expires_and_is_bounded() {
        let c = NonceCache::new(3);
        assert!(c.insert("k", "n1", 0));
        assert!(!c.insert("k", "n1", 1));
        assert!(c.seen("k", "n1", 1));
        assert!(!c.seen("other", "n1", 1));
        assert!(!c.seen("k", "n1", NONCE_TTL_MS + 1));
        for i in 0..10 {
            c.insert("k", &format!("x{i}"), 5);
        }
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn key_specs_parse() {
        let k = ApiKey::parse("AK:SK:transactions|fx:10.0.0.1").unwrap();
        assert_eq!(k.products, vec!["transactions", "fx"]);
        assert_eq!(k.ip_allowlist.len(), 1);
        assert!(ApiKey::parse("AK").is_err());
        assert!(ApiKey::parse("AK:SK:payroll").is_err());
    }
}
