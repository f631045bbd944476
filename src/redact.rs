//! URLs without the secrets they may carry: the one rule every error and log line follows.
//!
//! - [`url`] (API base URL, destinations, storage endpoints): scheme, host, port and path;
//!   the userinfo (`user:password@`) is dropped and a query or fragment shows as `?…`.
//! - [`webhook_url`] (alert webhooks, the sandbox's `--webhook-url`): scheme, host and port
//!   only; a path or query shows as `/…` — a Slack incoming-webhook URL's path *is* its
//!   credential.
//! - [`in_text`]: the userinfo of every URL inside free text (a library's error message) is
//!   dropped.
//!
//! Text that does not parse as a URL with a host is not shown at all.

use std::borrow::Cow;

/// What is printed for a value that is not a URL with a host.
pub const NOT_SHOWN: &str = "(not shown: not a URL with a host)";

/// `scheme://host[:port]`, or `None` when `raw` is not a URL with a host.
fn origin(u: &reqwest::Url) -> Option<String> {
    let host = u.host_str().filter(|_| u.has_host())?;
    let mut s = format!("{}://{host}", u.scheme());
    if let Some(p) = u.port() {
        s.push_str(&format!(":{p}"));
    }
    Some(s)
}

/// A URL safe to print: scheme, host, port and path, without the userinfo; `?…` stands for a
/// query or fragment.
pub fn url(raw: &str) -> String {
    let Ok(u) = reqwest::Url::parse(raw.trim()) else {
        return NOT_SHOWN.into();
    };
    let Some(mut s) = origin(&u) else {
        return NOT_SHOWN.into();
    };
    let path = u.path();
    if path != "/" || raw.trim_end().ends_with('/') {
        s.push_str(path);
    }
    if u.query().is_some() || u.fragment().is_some() {
        s.push_str("?…");
    }
    s
}

/// A webhook URL safe to print: scheme, host and port; `/…` stands for any path or query.
pub fn webhook_url(raw: &str) -> String {
    let Ok(u) = reqwest::Url::parse(raw.trim()) else {
        return NOT_SHOWN.into();
    };
    let Some(mut s) = origin(&u) else {
        return NOT_SHOWN.into();
    };
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        s.push_str("/…");
    }
    s
}

/// A destination as given: a URL ([`url`]) or a local path, shown as it is.
pub fn destination(raw: &str) -> String {
    if raw.contains("://") {
        url(raw)
    } else {
        raw.to_string()
    }
}

/// `text` with the userinfo (`user:password@`) of every `scheme://…` inside it removed.
pub fn in_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>' | ')' | ']'
                ) || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_where_they_point_and_lose_their_secrets() {
        assert_eq!(
            url("https://user:pa55@api.example.com:8443/billing?sig=abc#x"),
            "https://api.example.com:8443/billing?…"
        );
        assert_eq!(url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("http://[::1]:8080/"), "http://[::1]:8080/");
        assert_eq!(url("s3://bucket/prefix/wh"), "s3://bucket/prefix/wh");
        assert_eq!(destination("s3://k:s@b/p"), "s3://b/p");
        assert_eq!(destination("./wh@x"), "./wh@x");
        assert_eq!(url("ghp_token@github.com"), NOT_SHOWN);
        assert_eq!(url("mytoken:secret@host"), NOT_SHOWN);
        assert_eq!(
            webhook_url("https://hooks.slack.com/services/T00/B00/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            webhook_url("http://u:p@127.0.0.1:9/?token=t"),
            "http://127.0.0.1:9/…"
        );
        assert_eq!(webhook_url("http://127.0.0.1:9/"), "http://127.0.0.1:9");
    }

    #[test]
    fn userinfo_inside_text_is_dropped() {
        assert_eq!(
            in_text("error sending request for url (http://user:pa55@h:1/v1/x): refused"),
            "error sending request for url (http://h:1/v1/x): refused"
        );
        assert_eq!(
            in_text("a https://t@x.io and s3://k:s@b/p \"http://a:b@c\""),
            "a https://x.io and s3://b/p \"http://c\""
        );
        assert_eq!(
            in_text("mail me@x.io at http://h/"),
            "mail me@x.io at http://h/"
        );
        assert!(matches!(in_text("no urls here"), Cow::Borrowed(_)));
    }
}
