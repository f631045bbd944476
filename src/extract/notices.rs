//! Deprecation notices the API sends (§3, "Version life cycle"): read from every answer, kept
//! for the run report, and logged once per client (a run has one client).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::header::HeaderMap;

use crate::contract::lifecycle::{Deprecation, HEADER_DEPRECATION, HEADER_LINK, HEADER_SUNSET};

/// The latest notice seen, and whether it was logged.
#[derive(Debug, Default)]
pub struct Notices {
    seen: Mutex<Option<Deprecation>>,
    warned: AtomicBool,
}

impl Notices {
    /// Reads an answer's headers; the first notice is logged as a warning.
    pub fn observe(&self, headers: &HeaderMap) {
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let links = headers
            .get_all(HEADER_LINK)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(notice) =
            Deprecation::from_headers(get(HEADER_DEPRECATION), get(HEADER_SUNSET), links)
        else {
            return;
        };
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                sunset = notice.sunset.map(|s| s.to_rfc3339()),
                link = notice.link.as_deref(),
                "MariBank announced the end of this API version: {}",
                notice.describe()
            );
        }
        *self.seen.lock().expect("notices lock") = Some(notice);
    }

    /// The latest notice, if any answer carried one.
    pub fn deprecation(&self) -> Option<Deprecation> {
        self.seen.lock().expect("notices lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_notice() {
        let n = Notices::default();
        let mut h = HeaderMap::new();
        n.observe(&h);
        assert!(n.deprecation().is_none());
        h.insert(
            HEADER_SUNSET,
            "Thu, 31 Dec 2026 00:00:00 GMT".parse().unwrap(),
        );
        h.append(HEADER_LINK, "<https://x/next>; rel=next".parse().unwrap());
        h.append(
            HEADER_LINK,
            "<https://x/migrate>; rel=\"deprecation\"".parse().unwrap(),
        );
        n.observe(&h);
        let d = n.deprecation().unwrap();
        assert_eq!(d.link.as_deref(), Some("https://x/migrate"));
        assert_eq!(d.sunset.unwrap().to_rfc3339(), "2026-12-31T00:00:00+00:00");
    }
}
