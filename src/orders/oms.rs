//! Owns the wire format of a push to the order system: the batch body
//! (`schemas/oms-events.schema.json`), its headers, and its signature — MariBank's own webhook
//! scheme (`v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`), signed by the same code.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::change::Change;
use crate::contract::signing::Secret;

/// Header: Unix milliseconds of the signature.
pub const HEADER_TIMESTAMP: &str = "MB-OMS-Timestamp";
/// Header: `v1=<hex>`.
pub const HEADER_SIGNATURE: &str = "MB-OMS-Signature";
/// Header: the batch id.
pub const HEADER_BATCH: &str = "MB-OMS-Batch-Id";
/// Environment variable holding the signing secret.
pub const ENV_SECRET: &str = "MARIBANK_OMS_SECRET";
/// Environment variable naming a file that holds it.
pub const ENV_SECRET_FILE: &str = "MARIBANK_OMS_SECRET_FILE";

/// One POST: changes of one account, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// `<pipeline>:<first sequence>-<last sequence>`.
    pub batch_id: String,
    /// When it was (re)sent.
    pub sent_at: DateTime<Utc>,
    /// The changes.
    pub events: Vec<Change>,
}

impl Batch {
    /// A batch of `events` sent at `now`.
    pub fn new(events: &[Change], now: DateTime<Utc>) -> Batch {
        let first = events.first().map_or(0, |e| e.sequence);
        let last = events.last().map_or(0, |e| e.sequence);
        let pipeline = events.first().map_or("", |e| e.pipeline.as_str());
        Batch {
            batch_id: format!("{pipeline}:{first}-{last}"),
            sent_at: now,
            events: events.to_vec(),
        }
    }
}

/// The signature header value of `body` signed at `timestamp_ms`.
pub fn sign(secret: &Secret, timestamp_ms: i64, body: &[u8]) -> String {
    crate::webhook::verify::sign(secret, timestamp_ms, body)
}

/// The signing secret from `MARIBANK_OMS_SECRET` or the file `MARIBANK_OMS_SECRET_FILE` names
/// (trimmed of ASCII whitespace). The error names the variables, never a value.
pub fn secret_from(get: impl Fn(&str) -> Option<String>) -> Result<Secret, String> {
    let text = match (
        get(ENV_SECRET).filter(|v| !v.is_empty()),
        get(ENV_SECRET_FILE).filter(|v| !v.is_empty()),
    ) {
        (Some(s), _) => crate::secret_file::trim(&s).to_string(),
        (None, Some(p)) => crate::secret_file::read(std::path::Path::new(&p))
            .map_err(|e| format!("{ENV_SECRET_FILE}={p}: cannot read: {e}"))?,
        (None, None) => {
            return Err(format!(
                "no OMS signing secret: set {ENV_SECRET} (or {ENV_SECRET_FILE}, a file holding it)"
            ));
        }
    };
    if text.is_empty() {
        return Err(format!(
            "the secret in {ENV_SECRET} (or {ENV_SECRET_FILE}) is empty"
        ));
    }
    Ok(Secret::new(text))
}

/// Checks an endpoint: an `http(s)` URL with a host and no user or password; plain `http` only
/// to this machine unless `allow_insecure`. Errors show it without its path (it may be a
/// credential).
pub fn check_endpoint(url: &str, allow_insecure: bool) -> Result<(), String> {
    let shown = crate::redact::webhook_url(url);
    let u = reqwest::Url::parse(url)
        .map_err(|e| format!("the OMS endpoint {shown} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || !u.has_host() {
        return Err(format!(
            "the OMS endpoint {shown} must be an http(s) URL with a host"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "the OMS endpoint {shown} carries a user or password (`…@`); the requests are signed with {ENV_SECRET} instead"
        ));
    }
    let loopback = crate::pipeline::config::is_loopback(&u);
    if u.scheme() == "http" && !loopback && !allow_insecure {
        return Err(format!(
            "the OMS endpoint {shown} is plain http to another machine (order and payment data in clear text); use https, or set [orders] allow_insecure_http = true"
        ));
    }
    Ok(())
}
