//! The version life cycle (§3): a deprecated version's `Deprecation` (RFC 9745), `Sunset`
//! (RFC 8594) and `Link: <…>; rel="deprecation"` headers, written by the sandbox and read by
//! the client. After the sunset the version answers 410 `API_VERSION_RETIRED`.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// `Deprecation: @<unix seconds>`: when the version was deprecated.
pub const HEADER_DEPRECATION: &str = "deprecation";
/// `Sunset: <HTTP-date>`: when the version stops answering.
pub const HEADER_SUNSET: &str = "sunset";
/// `Link: <url>; rel="deprecation"`: the migration guide.
pub const HEADER_LINK: &str = "link";

/// A deprecation notice as a response carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deprecation {
    /// When the version was deprecated; `None` when the header said only that it is (the
    /// older `Deprecation: true` form) or was absent.
    pub deprecated_at: Option<DateTime<Utc>>,
    /// When the version stops answering, if announced.
    pub sunset: Option<DateTime<Utc>>,
    /// The migration guide, if linked.
    pub link: Option<String>,
}

impl Deprecation {
    /// The notice of a response's headers: `None` when it carries neither `Deprecation` nor
    /// `Sunset`. Unparsable values are ignored (a present header still makes a notice).
    pub fn from_headers<'a>(
        deprecation: Option<&str>,
        sunset: Option<&str>,
        links: impl IntoIterator<Item = &'a str>,
    ) -> Option<Deprecation> {
        if deprecation.is_none() && sunset.is_none() {
            return None;
        }
        Some(Deprecation {
            deprecated_at: deprecation.and_then(parse_deprecation),
            sunset: sunset.and_then(parse_http_date),
            link: links.into_iter().find_map(deprecation_link),
        })
    }

    /// The header values a response of a deprecated version carries, as (name, value).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(t) = self.deprecated_at {
            out.push((HEADER_DEPRECATION, format!("@{}", t.timestamp())));
        }
        if let Some(s) = self.sunset {
            out.push((HEADER_SUNSET, http_date(s)));
        }
        if let Some(l) = &self.link {
            out.push((HEADER_LINK, format!("<{l}>; rel=\"deprecation\"")));
        }
        out
    }

    /// Days from `now` to the sunset (negative once it has passed); `None` when none is announced.
    pub fn days_to_sunset(&self, now: DateTime<Utc>) -> Option<f64> {
        self.sunset
            .map(|s| (s - now).num_seconds() as f64 / 86_400.0)
    }

    /// One line for logs and messages: when it was deprecated, the sunset and the link.
    pub fn describe(&self) -> String {
        let mut s = String::from("this API version is deprecated");
        if let Some(t) = self.deprecated_at {
            s.push_str(&format!(" since {}", t.format("%Y-%m-%d")));
        }
        match self.sunset {
            Some(t) => s.push_str(&format!(
                " and stops answering at its sunset, {}",
                t.to_rfc3339()
            )),
            None => s.push_str(" (no sunset announced yet)"),
        }
        match &self.link {
            Some(l) => s.push_str(&format!("; migration guide: {l}")),
            None => s.push_str("; see the changelog in the developer centre"),
        }
        s
    }
}

/// An RFC 9745 `Deprecation` value: `@<unix seconds>`; the older draft forms (an HTTP-date)
/// are read too. `true` (deprecated, no date) gives `None`.
pub fn parse_deprecation(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    match v.strip_prefix('@') {
        Some(secs) => secs
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0)),
        None => parse_http_date(v),
    }
}

/// An HTTP-date (RFC 9110 §5.6.7): the IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), and the
/// obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`)
/// forms.
pub fn parse_http_date(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc2822(v) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S GMT")
        .or_else(|_| {
            NaiveDateTime::parse_from_str(
                &v.split_whitespace().collect::<Vec<_>>().join(" "),
                "%a %b %e %H:%M:%S %Y",
            )
        })
        .ok()?;
    Some(Utc.from_utc_datetime(&naive))
}

/// The IMF-fixdate of an instant: `Thu, 31 Dec 2026 00:00:00 GMT`.
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The target of a `Link` header value's first link whose `rel` includes `deprecation`.
pub fn deprecation_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once('>')?;
        let target = target.trim().strip_prefix('<')?;
        let rel = params.split(';').find_map(|p| {
            let (name, value) = p.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("rel")
                .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
        })?;
        rel.split_whitespace()
            .any(|r| r == "deprecation")
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_in_every_form() {
        let d = Deprecation {
            deprecated_at: Some("2026-06-30T00:00:00Z".parse().unwrap()),
            sunset: Some("2026-12-31T00:00:00Z".parse().unwrap()),
            link: Some("https://developer.example.com/migrate".into()),
        };
        let h = d.headers();
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get(HEADER_DEPRECATION), Some("@1782777600"));
        assert_eq!(get(HEADER_SUNSET), Some("Thu, 31 Dec 2026 00:00:00 GMT"));
        let back = Deprecation::from_headers(
            get(HEADER_DEPRECATION),
            get(HEADER_SUNSET),
            get(HEADER_LINK),
        )
        .unwrap();
        assert_eq!(back, d);
        let t: DateTime<Utc> = "1994-11-06T08:49:37Z".parse().unwrap();
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(v), Some(t), "{v}");
        }
        assert_eq!(parse_deprecation("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_deprecation("true"), None);
        assert_eq!(
            deprecation_link(
                r#"<https://a/x>; rel="next", <https://b/y>; rel="sunset deprecation""#
            ),
            Some("https://b/y".into())
        );
        assert_eq!(deprecation_link("<https://a>; rel=alternate"), None);
        assert!(Deprecation::from_headers(None, None, ["<x>; rel=deprecation"]).is_none());
        let now: DateTime<Utc> = "2026-12-21T00:00:00Z".parse().unwrap();
        assert_eq!(d.days_to_sunset(now), Some(10.0));
    }
}
