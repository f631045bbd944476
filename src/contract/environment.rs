//! Environments (§1): sandbox or production, told from a credential's id and from a base URL.
//!
//! A credential id names its environment when it follows MariBank's convention
//! (`MB-SANDBOX-…`, `MB-LIVE-…`). A base URL is known to be a **sandbox** when its host is
//! `localhost`, a loopback or private-network address, or has a DNS label containing `sandbox`
//! (`sandbox.api.example.com`, `api-sandbox.example.com`); it is **production** when it is any
//! other `https` URL (production is HTTPS only). Any other URL (plain `http` to a public host)
//! names no environment. A pipeline can pin its environment (`environment = "production"`) so
//! that a mix-up fails before any call.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Prefix of sandbox credential ids.
pub const SANDBOX_ID_PREFIX: &str = "MB-SANDBOX-";
/// Prefix of production credential ids.
pub const LIVE_ID_PREFIX: &str = "MB-LIVE-";

/// Where a credential works and a base URL points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// MariBank's sandbox (or this project's embedded one): test data, test keys.
    Sandbox,
    /// The live API: real money data, production keys.
    Production,
}

impl Environment {
    /// `sandbox` or `production`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }

    /// The environment a credential id names by its prefix, if it follows the convention.
    pub fn of_credential_id(id: &str) -> Option<Environment> {
        if id.starts_with(SANDBOX_ID_PREFIX) {
            Some(Environment::Sandbox)
        } else if id.starts_with(LIVE_ID_PREFIX) {
            Some(Environment::Production)
        } else {
            None
        }
    }

    /// The environment a base URL points at, by the rule of the module docs.
    pub fn of_base_url(url: &str) -> Option<Environment> {
        let u = reqwest::Url::parse(url).ok()?;
        let host = u.host_str()?.to_ascii_lowercase();
        let local = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => is_local(ip),
            Err(_) => {
                host == "localhost"
                    || host.ends_with(".localhost")
                    || host.split('.').any(|label| label.contains("sandbox"))
            }
        };
        if local {
            Some(Environment::Sandbox)
        } else if u.scheme() == "https" {
            Some(Environment::Production)
        } else {
            None
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sandbox" => Ok(Environment::Sandbox),
            "production" => Ok(Environment::Production),
            other => Err(format!(
                "environment `{other}` must be `sandbox` or `production`"
            )),
        }
    }
}

fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// What the credential id and the base URL each say, and the environment a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// From the credential id's prefix.
    pub by_credential: Option<Environment>,
    /// From the base URL.
    pub by_url: Option<Environment>,
}

impl Placement {
    /// Reads both signs.
    pub fn of(credential_id: &str, base_url: &str) -> Placement {
        Placement {
            by_credential: Environment::of_credential_id(credential_id),
            by_url: Environment::of_base_url(base_url),
        }
    }

    /// The environment: the credential's when its id says, else the URL's.
    pub fn environment(&self) -> Option<Environment> {
        self.by_credential.or(self.by_url)
    }

    /// What each sign is, for a human: `sandbox (key id MB-SANDBOX-…, base URL …)`.
    pub fn describe(&self) -> String {
        let name = |e: Option<Environment>| e.map_or("unknown", Environment::as_str);
        format!(
            "{} (by the credential id: {}; by the base URL: {})",
            name(self.environment()),
            name(self.by_credential),
            name(self.by_url)
        )
    }

    /// A sandbox credential against a production URL, or the reverse: the message with the fix.
    pub fn mismatch(&self, credential_id: &str, base_url: &str) -> Option<String> {
        let (Some(key), Some(url)) = (self.by_credential, self.by_url) else {
            return None;
        };
        (key != url).then(|| {
            format!(
                "the credential {credential_id} is a {key} credential but the base URL {base_url} is a {url} URL: \
                 set MARIBANK_BASE_URL to MariBank's {key} URL, or use {url} credentials ({} ids) — a credential only works in its own environment",
                match url {
                    Environment::Sandbox => SANDBOX_ID_PREFIX,
                    Environment::Production => LIVE_ID_PREFIX,
                }
            )
        })
    }

    /// Whether the run may go on with the pipeline's pinned environment: every sign that
    /// names an environment must name the pinned one.
    pub fn check_pinned(
        &self,
        pinned: Environment,
        credential_id: &str,
        base_url: &str,
    ) -> Result<(), String> {
        let mut wrong = Vec::new();
        if let Some(e) = self.by_credential.filter(|e| *e != pinned) {
            wrong.push(format!(
                "the credential {credential_id} is a {e} credential"
            ));
        }
        if let Some(e) = self.by_url.filter(|e| *e != pinned) {
            wrong.push(format!("the base URL {base_url} is a {e} URL"));
        }
        if wrong.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the pipeline pins environment = \"{pinned}\" but {}: set MARIBANK_BASE_URL and the credential variables to the {pinned} ones (or change `environment` in the pipeline file); nothing was called",
            wrong.join(" and ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_urls_name_their_environment() {
        use Environment::*;
        assert_eq!(
            Environment::of_credential_id("MB-SANDBOX-AK-0001"),
            Some(Sandbox)
        );
        assert_eq!(
            Environment::of_credential_id("MB-LIVE-CLIENT-7"),
            Some(Production)
        );
        assert_eq!(Environment::of_credential_id("AK"), None);
        for (url, want) in [
            ("http://127.0.0.1:8080", Some(Sandbox)),
            ("http://localhost:8080/v1", Some(Sandbox)),
            ("http://[::1]:80", Some(Sandbox)),
            ("http://10.1.2.3", Some(Sandbox)),
            ("https://sandbox.api.maribank.example", Some(Sandbox)),
            ("https://api-sandbox.maribank.example", Some(Sandbox)),
            ("https://api.maribank.example", Some(Production)),
            ("http://api.maribank.example", None),
            ("not a url", None),
        ] {
            assert_eq!(Environment::of_base_url(url), want, "{url}");
        }
    }

    #[test]
    fn mix_ups_are_named_with_the_fix() {
        let p = Placement::of("MB-SANDBOX-AK-0001", "https://api.maribank.example");
        assert_eq!(p.environment(), Some(Environment::Sandbox));
        let m = p
            .mismatch("MB-SANDBOX-AK-0001", "https://api.maribank.example")
            .unwrap();
        assert!(
            m.contains("MARIBANK_BASE_URL") && m.contains("MB-LIVE-"),
            "{m}"
        );
        let p = Placement::of("MB-LIVE-AK-1", "http://127.0.0.1:1");
        assert!(p.mismatch("MB-LIVE-AK-1", "http://127.0.0.1:1").is_some());
        let e = p
            .check_pinned(
                Environment::Production,
                "MB-LIVE-AK-1",
                "http://127.0.0.1:1",
            )
            .unwrap_err();
        assert!(
            e.contains("base URL http://127.0.0.1:1 is a sandbox URL"),
            "{e}"
        );
        let ok = Placement::of("custom-id", "https://api.maribank.example");
        assert!(ok.mismatch("custom-id", "x").is_none());
        assert!(
            ok.check_pinned(Environment::Production, "custom-id", "x")
                .is_ok()
        );
        assert_eq!("production".parse(), Ok(Environment::Production));
        assert!("prod".parse::<Environment>().is_err());
    }
}
