//! A request's query parameters: decoded, typed, and the hash that binds page tokens to them.

use chrono::{DateTime, NaiveDate, Utc};
use percent_encoding::percent_decode_str;

use super::envelope::ApiError;
use super::rng::hash_bytes;
use crate::contract::signing::canonical_query;
use crate::contract::{self};

/// Decoded query parameters, in request order.
#[derive(Debug)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// Splits and percent-decodes a raw query string.
    pub(crate) fn parse(raw: Option<&str>) -> Params {
        let mut v = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            v.push((dec(k), dec(val)));
        }
        Params(v)
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, which must be present and non-empty.
    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::invalid(format!("parameter `{name}` is required"))),
        }
    }

    /// A required RFC 3339 instant with an explicit offset.
    pub(crate) fn instant(&self, name: &str) -> Result<DateTime<Utc>, ApiError> {
        let v = self.required(name)?;
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid(format!(
                    "parameter `{name}` must be RFC 3339 with an explicit offset, got `{v}`"
                ))
            })
    }

    /// A required `YYYY-MM-DD` date.
    pub(crate) fn date(&self, name: &str) -> Result<NaiveDate, ApiError> {
        let v = self.required(name)?;
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
            ApiError::invalid(format!("parameter `{name}` must be YYYY-MM-DD, got `{v}`"))
        })
    }

    /// `page_size`, defaulted and bounded by the contract.
    pub(crate) fn page_size(&self) -> Result<usize, ApiError> {
        match self.get("page_size") {
            None => Ok(contract::PAGE_SIZE_DEFAULT as usize),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=contract::PAGE_SIZE_MAX).contains(&n) => Ok(n as usize),
                _ => Err(ApiError::invalid(format!(
                    "parameter `page_size` must be an integer from 1 to {}, got `{v}`",
                    contract::PAGE_SIZE_MAX
                ))),
            },
        }
    }

    /// Every parameter but `page_token`, in request order.
    pub(crate) fn without_token(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(k, _)| k != "page_token")
            .cloned()
            .collect()
    }

    /// Hash of every parameter but `page_token`, in canonical form, for this key and path.
    pub(crate) fn binding(&self, key_id: &str, path: &str) -> u64 {
        let scope = hash_bytes(hash_bytes(0, key_id.as_bytes()), path.as_bytes());
        hash_bytes(scope, canonical_query(&self.without_token()).as_bytes())
    }
}
