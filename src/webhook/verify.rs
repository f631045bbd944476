//! `MB-Webhook-Signature` (§8): signing, constant-time verification against several secrets,
//! the timestamp tolerance, and loading the secrets from the environment or a file.

use std::path::Path;

use crate::contract::signing::{Secret, hmac_sha256_hex, verify_hmac_sha256_hex};

/// Header carrying the event id.
pub const HEADER_ID: &str = "mb-webhook-id";
/// Header carrying the signing time, Unix milliseconds.
pub const HEADER_TIMESTAMP: &str = "mb-webhook-timestamp";
/// Header carrying one or more `v1=<hex>` signatures.
pub const HEADER_SIGNATURE: &str = "mb-webhook-signature";
/// Environment variable with the accepted secrets, comma-separated (several during rotation).
pub const ENV_SECRETS: &str = "MARIBANK_WEBHOOK_SECRETS";
/// Environment variable naming a file of secrets (one a line or comma-separated).
pub const ENV_SECRETS_FILE: &str = "MARIBANK_WEBHOOK_SECRETS_FILE";
/// Signatures looked at in one header; more are ignored (bounds the HMAC work per request).
pub const MAX_SIGNATURES: usize = 8;

/// Why a delivery is not authentic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header is missing or not in its §8 form.
    #[error("header {0} is missing or malformed")]
    Header(&'static str),
    /// The timestamp is further from now than the tolerance.
    #[error("timestamp is {skew_ms} ms away from now (tolerance {tolerance_ms} ms)")]
    Timestamp {
        /// `now − timestamp`.
        skew_ms: i64,
        /// The tolerance.
        tolerance_ms: i64,
    },
    /// No `v1=` signature matches any secret.
    #[error("no signature matches")]
    Signature,
}

/// The string signed: `Timestamp + "." + raw body`.
fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + 1 + body.len());
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'.');
    m.extend_from_slice(body);
    m
}

/// The `MB-Webhook-Signature` value of `body` signed at `timestamp_ms` (`v1=<hex>`).
pub fn sign(secret: &Secret, timestamp_ms: i64, body: &[u8]) -> String {
    let msg = signed_message(&timestamp_ms.to_string(), body);
    format!("v1={}", hmac_sha256_hex(secret.expose().as_bytes(), &msg))
}

/// The `v1` signatures of a header value: entries separated by commas or spaces; other schemes
/// are skipped; at most [`MAX_SIGNATURES`].
pub fn v1_signatures(header: &str) -> impl Iterator<Item = &str> {
    header
        .split([',', ' '])
        .filter_map(|p| p.trim().strip_prefix("v1="))
        .take(MAX_SIGNATURES)
}

/// Checks deliveries against the accepted secrets.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance_ms: i64,
}

impl Verifier {
    /// A verifier for `secrets` (any may match) and a timestamp tolerance.
    pub fn new(secrets: Vec<Secret>, tolerance: std::time::Duration) -> Verifier {
        Verifier {
            secrets,
            tolerance_ms: tolerance.as_millis() as i64,
        }
    }

    /// Verifies one delivery: the timestamp header (digits, within tolerance of `now_ms`), then
    /// every `v1=` signature against every secret, each comparison in constant time.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(), VerifyError> {
        let ts = timestamp
            .filter(|t| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(VerifyError::Header("MB-Webhook-Timestamp"))?;
        let ts_ms: i64 = ts
            .parse()
            .map_err(|_| VerifyError::Header("MB-Webhook-Timestamp"))?;
        let sig = signature.ok_or(VerifyError::Header("MB-Webhook-Signature"))?;
        if v1_signatures(sig).next().is_none() {
            return Err(VerifyError::Header("MB-Webhook-Signature"));
        }
        let skew_ms = now_ms.saturating_sub(ts_ms);
        if skew_ms.abs() > self.tolerance_ms {
            return Err(VerifyError::Timestamp {
                skew_ms,
                tolerance_ms: self.tolerance_ms,
            });
        }
        let msg = signed_message(ts, body);
        // Every pair is checked (no early exit) so timing says nothing about which matched.
        let mut ok = false;
        for claimed in v1_signatures(sig) {
            for s in &self.secrets {
                ok |= verify_hmac_sha256_hex(s.expose().as_bytes(), &msg, claimed);
            }
        }
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Signature)
        }
    }
}

/// Secrets from a text: separated by commas or line ends, trimmed, empty entries dropped.
pub fn parse_secrets(text: &str) -> Vec<Secret> {
    text.split([',', '\n', '\r'])
        .map(crate::secret_file::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect()
}

/// The accepted secrets: a file given explicitly wins, then [`ENV_SECRETS_FILE`], then
/// [`ENV_SECRETS`]. The error names where it looked, never a secret.
pub fn load_secrets(
    file: Option<&Path>,
    get_env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Secret>, String> {
    let env_file = get_env(ENV_SECRETS_FILE).filter(|s| !s.is_empty());
    let (secrets, origin) =
        if let Some(p) = file.map(Path::to_path_buf).or(env_file.map(Into::into)) {
            // Warns once when group or others may read it, like the API secret file.
            let text = crate::secret_file::read(&p)
                .map_err(|e| format!("cannot read the webhook secret file {}: {e}", p.display()))?;
            (parse_secrets(&text), format!("file {}", p.display()))
        } else if let Some(v) = get_env(ENV_SECRETS) {
            (parse_secrets(&v), format!("${ENV_SECRETS}"))
        } else {
            return Err(format!(
                "no webhook secret: set {ENV_SECRETS} (comma-separated) or {ENV_SECRETS_FILE}"
            ));
        };
    if secrets.is_empty() {
        return Err(format!("{origin} holds no webhook secret"));
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const VECTOR_BODY: &str = r#"{"event_id":"evt_0001","event_type":"statement.ready","created_at":"2026-11-25T02:00:00.000Z","data":{"account_id":"ACC-SG-0001","date":"2026-11-24"}}"#;
    const VECTOR_SIG: &str = "v1=960b10ffb8ff84f3aa243c651a5466610aac91f4ec7859d9fef2af30f975d17f";
    const VECTOR_TS: i64 = 1764036000000;

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(
            secrets.iter().map(|s| Secret::new(*s)).collect(),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn contract_webhook_vector() {
        let secret = Secret::new("whsec-sandbox-0001");
        assert_eq!(sign(&secret, VECTOR_TS, VECTOR_BODY.as_bytes()), VECTOR_SIG);
        let v = verifier(&["whsec-sandbox-0001"]);
        let ts = VECTOR_TS.to_string();
        let body = VECTOR_BODY.as_bytes();
        assert_eq!(
            v.verify(Some(&ts), Some(VECTOR_SIG), body, VECTOR_TS),
            Ok(())
        );
        // Within tolerance either way, outside it rejected.
        assert_eq!(
            v.verify(Some(&ts), Some(VECTOR_SIG), body, VECTOR_TS + 300_000),
            Ok(())
        );
        assert!(matches!(
            v.verify(Some(&ts), Some(VECTOR_SIG), body, VECTOR_TS + 300_001),
            Err(VerifyError::Timestamp { .. })
        ));
        assert!(matches!(
            v.verify(Some(&ts), Some(VECTOR_SIG), body, VECTOR_TS - 300_001),
            Err(VerifyError::Timestamp { .. })
        ));
        // One byte of the body changed.
        let tampered = VECTOR_BODY.replace("2026-11-24", "2026-11-23");
        assert_eq!(
            v.verify(Some(&ts), Some(VECTOR_SIG), tampered.as_bytes(), VECTOR_TS),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn rotation_several_signatures_and_secrets() {
        let body = VECTOR_BODY.as_bytes();
        let ts = VECTOR_TS.to_string();
        let old = Secret::new("old-secret");
        let new = Secret::new("whsec-sandbox-0001");
        let both = format!(
            "{},{}",
            sign(&old, VECTOR_TS, body),
            sign(&new, VECTOR_TS, body)
        );
        // Receiver still on the old secret, sender signs with both.
        let v_old = verifier(&["old-secret"]);
        assert_eq!(
            v_old.verify(Some(&ts), Some(&both), body, VECTOR_TS),
            Ok(())
        );
        // Receiver knows both, sender only the new one (space-separated form too).
        let v_both = verifier(&["old-secret", "whsec-sandbox-0001"]);
        assert_eq!(
            v_both.verify(
                Some(&ts),
                Some(&format!("v0=zz {VECTOR_SIG}")),
                body,
                VECTOR_TS
            ),
            Ok(())
        );
        // Neither secret.
        let v_other = verifier(&["nope"]);
        assert_eq!(
            v_other.verify(Some(&ts), Some(&both), body, VECTOR_TS),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn malformed_headers() {
        let v = verifier(&["s"]);
        let b = b"{}";
        for (ts, sig) in [
            (None, Some(VECTOR_SIG)),
            (Some("-1"), Some(VECTOR_SIG)),
            (Some("1e9"), Some(VECTOR_SIG)),
            (Some("99999999999999999999999"), Some(VECTOR_SIG)),
            (Some("1764036000000"), None),
            (Some("1764036000000"), Some("sha256=abc")),
        ] {
            assert!(
                matches!(v.verify(ts, sig, b, VECTOR_TS), Err(VerifyError::Header(_))),
                "{ts:?} {sig:?}"
            );
        }
        assert_eq!(
            v.verify(Some("1764036000000"), Some("v1=not-hex"), b, VECTOR_TS),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn secrets_from_env_and_file() {
        let env = |k: &str| (k == ENV_SECRETS).then(|| " a, b ,,c".to_string());
        let s = load_secrets(None, env).unwrap();
        assert_eq!(
            s.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secrets");
        std::fs::write(&f, "new\nold\n").unwrap();
        let s = load_secrets(Some(&f), env).unwrap();
        assert_eq!(s.len(), 2);
        let err = load_secrets(None, |_| None).unwrap_err();
        assert!(err.contains(ENV_SECRETS));
        let empty = load_secrets(None, |k| (k == ENV_SECRETS).then(String::new)).unwrap_err();
        assert!(empty.contains("no webhook secret"), "{empty}");
        assert!(!format!("{s:?}").contains("new"));
    }
}
