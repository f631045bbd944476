//! Deprecation notices: a sunset 10 days away alerts (exit 5 on an otherwise good run, the
//! webhook message naming the environment), 200 days away only warns — once per run — and
//! both are in the run report; past the sunset the API answers `API_VERSION_RETIRED`, a
//! permanent failure (exit 3, not retried) with the migration link.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use maribank_etl::ExitStatus;
use maribank_etl::contract::environment::Environment;
use maribank_etl::pipeline::report::{AlertKind, RunResult};
use maribank_etl::pipeline::run::{Outcome, Plan};
use maribank_etl::sandbox::{Deprecation, Sandbox, SandboxConfig};

use super::{access_key, pipeline, requests, run, small_world};
use crate::helpers::instant;

const GUIDE: &str = "https://developer.example.com/maribank/open-api/v2/migration";

/// A sandbox whose v1 was deprecated 90 days before its data clock and ends `days` after it.
async fn deprecated(days: i64) -> Sandbox {
    let cfg = small_world(1);
    let now = cfg.now.unwrap();
    Sandbox::start(SandboxConfig {
        deprecation: Some(Deprecation {
            deprecated_at: Some(now - Duration::days(90)),
            sunset: Some(now + Duration::days(days)),
            link: Some(GUIDE.into()),
        }),
        ..cfg
    })
    .await
    .unwrap()
}

/// A `MakeWriter` keeping every log line.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One day synced with the pipeline's alerts posted to `hook`; the run's log lines that
/// announce the sunset.
async fn sync_day(sb: &Sandbox, name: &str, hook: &str) -> (Outcome, usize) {
    let logs = Logs::default();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer({
            let l = logs.clone();
            move || l.clone()
        })
        .finish();
    // This thread's subscriber: the test runtime runs the whole run on this thread.
    let _guard = tracing::subscriber::set_default(sub);
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(
        dir.path(),
        name,
        50,
        &format!("[alerts]\nwebhook_url = \"{hook}\"\n"),
    );
    let start = instant("2026-02-10T00:00:00Z");
    let out = run(
        sb,
        access_key(sb),
        &config,
        &dir.path().join("wh"),
        Plan::Sync {
            start,
            end: start + Duration::days(1),
        },
    )
    .await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warned = text
        .lines()
        .filter(|l| l.contains("announced the end of this API version"))
        .count();
    (out, warned)
}

/// A loopback receiver of the alert webhook, keeping the JSON bodies.
async fn hook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let g = g.clone();
        async move {
            g.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            "ok"
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn a_sunset_10_days_away_alerts_and_200_days_away_only_warns() {
    let (url, got) = hook().await;

    let sb = deprecated(10).await;
    let (out, warned) = sync_day(&sb, "soon", &url).await;
    assert_eq!(out.exit, ExitStatus::Alert, "{:?}", out.error);
    assert_eq!(out.report.result, RunResult::Alert);
    assert_eq!(warned, 1, "the log warns once per run");
    let alert = &out.report.alerts[0];
    assert_eq!(alert.kind, AlertKind::Sunset);
    assert!(
        alert.message.contains("in 10.0 days") && alert.message.contains(GUIDE),
        "{}",
        alert.message
    );
    let notice = out
        .report
        .api
        .as_ref()
        .unwrap()
        .deprecation
        .clone()
        .unwrap();
    assert_eq!(notice.sunset, Some(sb.now() + Duration::days(10)));
    assert_eq!(notice.deprecated_at, Some(sb.now() - Duration::days(90)));
    assert_eq!(notice.link.as_deref(), Some(GUIDE));
    assert_eq!(out.report.environment, Some(Environment::Sandbox));
    sb.shutdown().await;

    let sb = deprecated(200).await;
    let (out, warned) = sync_day(&sb, "later", &url).await;
    assert_eq!(out.exit, ExitStatus::Success, "{:?}", out.error);
    assert!(out.report.alerts.is_empty(), "{:?}", out.report.alerts);
    assert_eq!(warned, 1, "a warning only");
    let notice = out
        .report
        .api
        .as_ref()
        .unwrap()
        .deprecation
        .clone()
        .unwrap();
    assert_eq!(notice.sunset, Some(sb.now() + Duration::days(200)));
    sb.shutdown().await;

    // One alert was posted (the 10-day one), naming the environment.
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0]["text"].as_str().unwrap();
    assert!(
        text.contains("[sandbox]") && text.contains("Sunset"),
        "{text}"
    );
    assert_eq!(got[0]["environment"], "sandbox");
}

#[tokio::test]
async fn past_the_sunset_the_run_fails_at_once_with_the_migration_link() {
    let (url, _) = hook().await;
    let sb = deprecated(-1).await;
    let (out, _) = sync_day(&sb, "retired", &url).await;
    assert_eq!(out.exit, ExitStatus::Auth, "a permanent failure: exit 3");
    let msg = out.error.unwrap().to_string();
    for part in ["API_VERSION_RETIRED", GUIDE, "upgrade maribank-etl"] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert_eq!(requests(sb.shared()), 1, "not retried");
    assert_eq!(out.report.result, RunResult::Failed);
    sb.shutdown().await;
}
