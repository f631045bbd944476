//! Alerts on a finished run: volume drop against the trailing average, consecutive failures,
//! control totals that disagree with settlement batches, an API sunset drawing near; and the
//! optional webhook POST (a Slack-compatible `{"text": …}` body with the details beside it,
//! naming the environment).

use chrono::{DateTime, Utc};

use super::report::{Alert, AlertKind, RunReport, RunResult};
use crate::contract::lifecycle::Deprecation;

/// Volume drop: this run's transactions loaded per window-day against the average of the
/// earlier successful runs of the same command and accounts (at least three), alerting when it
/// falls more than `threshold` below. Only windows of creation days (`sync`, `backfill`) have a
/// volume; an incremental pass holds only what changed.
pub fn volume_drop(
    current: &RunReport,
    history: &[RunReport],
    threshold: f64,
    trailing: usize,
) -> Option<Alert> {
    if !matches!(current.command.as_str(), "sync" | "backfill") {
        return None;
    }
    let now = current.daily_volume()?;
    let earlier: Vec<f64> = history
        .iter()
        .rev()
        .filter(|r| {
            matches!(r.result, RunResult::Success | RunResult::Alert)
                && r.command == current.command
                && accounts_of(r) == accounts_of(current)
        })
        .filter_map(RunReport::daily_volume)
        .take(trailing)
        .collect();
    if earlier.len() < 3 {
        return None;
    }
    let avg = earlier.iter().sum::<f64>() / earlier.len() as f64;
    if avg <= 0.0 || now >= avg * (1.0 - threshold) {
        return None;
    }
    Some(Alert {
        kind: AlertKind::VolumeDrop,
        message: format!(
            "transactions loaded per day fell to {now:.0} from a trailing average of {avg:.0} over {} runs ({:.0}% drop, threshold {:.0}%)",
            earlier.len(),
            (1.0 - now / avg) * 100.0,
            threshold * 100.0
        ),
    })
}

/// The accounts a run pulled transactions for: runs are compared only with runs of the same
/// accounts (an Airflow task per account must not be held to another account's volume).
fn accounts_of(r: &RunReport) -> Vec<&str> {
    r.streams
        .get("transactions")
        .map(|s| s.accounts.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Consecutive failures, per account: for every account this run failed for, the runs that
/// covered it, counted back to the last one that loaded it. A store that fails every night
/// alerts even while the other stores' runs (Airflow's per-account fan-out) succeed.
pub fn consecutive_failures(current: &RunReport, history: &[RunReport], n: usize) -> Option<Alert> {
    if current.result != RunResult::Failed {
        return None;
    }
    let failing: Vec<&str> = if current.failed_accounts.is_empty() {
        current.accounts.iter().map(String::as_str).collect()
    } else {
        current.failed_accounts.keys().map(String::as_str).collect()
    };
    let mut streaks = Vec::new();
    for account in failing {
        let streak = 1 + history
            .iter()
            .rev()
            .filter(|r| r.covers(account))
            .take_while(|r| r.failed_for(account))
            .count();
        if streak >= n {
            let who = if account == "*" {
                "all accounts"
            } else {
                account
            };
            streaks.push(format!("{who}: {streak} consecutive failed runs"));
        }
    }
    (!streaks.is_empty()).then(|| Alert {
        kind: AlertKind::ConsecutiveFailures,
        message: format!(
            "pipeline `{}`: {}; last error: {}",
            current.pipeline,
            streaks.join("; "),
            current.error.as_deref().unwrap_or("unknown")
        ),
    })
}

/// Sunset: the API version stops answering in less than `warning_days` days (0: never alert).
pub fn sunset(d: &Deprecation, now: DateTime<Utc>, warning_days: u32) -> Option<Alert> {
    let days = d.days_to_sunset(now)?;
    if warning_days == 0 || days >= f64::from(warning_days) {
        return None;
    }
    let when = d.sunset.map(|s| s.to_rfc3339()).unwrap_or_default();
    let link = d
        .link
        .as_deref()
        .unwrap_or("see the changelog in the developer centre");
    let message = if days <= 0.0 {
        format!("MariBank API v1 was switched off at its sunset, {when}; migrate: {link}")
    } else {
        format!(
            "MariBank API v1 stops answering at its sunset, {when} — in {days:.1} days (alert threshold {warning_days} days, `[alerts] sunset_warning_days`); migrate before then: {link}"
        )
    };
    Some(Alert {
        kind: AlertKind::Sunset,
        message,
    })
}

/// The environment a report names, for messages: `sandbox`, `production` or `unknown`.
fn environment_of(report: &RunReport) -> &'static str {
    report
        .environment
        .map_or("unknown environment", |e| e.as_str())
}

/// Posts the alerts of a report to a webhook; failures are logged, never fatal.
pub async fn notify(url: &str, report: &RunReport) {
    if report.alerts.is_empty() {
        return;
    }
    let lines: Vec<String> = report
        .alerts
        .iter()
        .map(|a| format!("• {:?}: {}", a.kind, a.message))
        .collect();
    let body = serde_json::json!({
        "text": format!(
            ":rotating_light: maribank-etl [{}] pipeline `{}` run {} ({}): {} alert(s)\n{}",
            environment_of(report), report.pipeline, report.run_id, report.command, report.alerts.len(), lines.join("\n")
        ),
        "environment": report.environment,
        "pipeline": report.pipeline,
        "run_id": report.run_id,
        "result": report.result,
        "alerts": report.alerts,
    });
    let _ = post(url, &body, "run alert").await;
}

/// How long one alert POST may take.
pub const POST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// POSTs one alert `body` (Slack-compatible JSON) to `url`: the one sender of every alert
/// (run alerts, webhook dead letters). The outcome is logged and returned, never fatal; both
/// name the URL only as [`crate::redact::webhook_url`] shows it (scheme, host, port) — an
/// incoming-webhook URL is a credential.
pub async fn post(url: &str, body: &serde_json::Value, what: &str) -> Result<(), String> {
    let shown = crate::redact::webhook_url(url);
    let sent = async {
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", chain(e)))?;
        let r = client
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("unreachable: {}", chain(e)))?;
        match r.status() {
            s if s.is_success() => Ok(s.as_u16()),
            s => Err(format!("answered HTTP {}", s.as_u16())),
        }
    }
    .await
    .map_err(|e| {
        let e = if url.is_empty() {
            e
        } else {
            e.replace(url, &shown)
        };
        crate::redact::in_text(&e).into_owned()
    });
    match &sent {
        Ok(status) => tracing::info!(url = %shown, status, "{what} sent to the alert webhook"),
        Err(e) => {
            tracing::warn!(url = %shown, error = %e, "{what} not delivered to the alert webhook")
        }
    }
    sent.map(|_| ())
}

/// A reqwest error and its causes, without the URL reqwest adds.
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn run(records: u64, result: RunResult) -> RunReport {
        let mut r = RunReport {
            command: "sync".into(),
            result,
            window_start: Some(Utc::now() - Duration::days(1)),
            window_end: Some(Utc::now()),
            ..Default::default()
        };
        r.streams
            .entry("transactions".into())
            .or_default()
            .rows_written = records;
        r.accounts = vec!["ACC-1".into()];
        r
    }

    fn account_run(account: &str, result: RunResult) -> RunReport {
        let mut r = run(1, result);
        r.accounts = vec![account.into()];
        r
    }

    #[test]
    fn volume_drop_needs_history_and_a_real_drop() {
        let hist = vec![
            run(100, RunResult::Success),
            run(110, RunResult::Success),
            run(90, RunResult::Success),
        ];
        assert!(volume_drop(&run(40, RunResult::Success), &hist[..2], 0.5, 7).is_none());
        assert!(volume_drop(&run(60, RunResult::Success), &hist, 0.5, 7).is_none());
        let a = volume_drop(&run(40, RunResult::Success), &hist, 0.5, 7).unwrap();
        assert_eq!(a.kind, AlertKind::VolumeDrop);
        assert!(a.message.contains("60% drop"), "{}", a.message);
    }

    #[test]
    fn failures_count_back_to_the_last_success() {
        let hist = vec![
            run(1, RunResult::Success),
            run(1, RunResult::Failed),
            run(1, RunResult::Failed),
        ];
        assert!(consecutive_failures(&run(1, RunResult::Failed), &hist, 3).is_some());
        assert!(consecutive_failures(&run(1, RunResult::Failed), &hist, 4).is_none());
        assert!(consecutive_failures(&run(1, RunResult::Success), &hist, 1).is_none());
    }

    #[test]
    fn failures_are_counted_per_account() {
        // Airflow's fan-out: one run per account a night; ACC-B fails every night.
        let mut hist = Vec::new();
        for _ in 0..2 {
            hist.push(account_run("ACC-A", RunResult::Success));
            hist.push(account_run("ACC-B", RunResult::Failed));
            hist.push(account_run("ACC-C", RunResult::Success));
        }
        let a = consecutive_failures(&account_run("ACC-B", RunResult::Failed), &hist, 3).unwrap();
        assert!(a.message.contains("ACC-B: 3 consecutive"), "{}", a.message);
        assert!(consecutive_failures(&account_run("ACC-A", RunResult::Failed), &hist, 3).is_none());
        // A run that failed before it knew its accounts counts for every account.
        let mut all = account_run("*", RunResult::Failed);
        all.accounts = vec!["*".into()];
        hist.push(all);
        let a = consecutive_failures(&account_run("ACC-B", RunResult::Failed), &hist, 4).unwrap();
        assert!(a.message.contains("ACC-B: 4"), "{}", a.message);
    }

    #[test]
    fn sunset_alerts_only_inside_the_warning_days() {
        let now: DateTime<Utc> = "2026-11-26T00:00:00Z".parse().unwrap();
        let at = |days| Deprecation {
            deprecated_at: None,
            sunset: Some(now + Duration::days(days)),
            link: Some("https://developer.example.com/migrate".into()),
        };
        let a = sunset(&at(10), now, 30).unwrap();
        assert_eq!(a.kind, AlertKind::Sunset);
        assert!(
            a.message.contains("in 10.0 days") && a.message.contains("/migrate"),
            "{}",
            a.message
        );
        assert!(sunset(&at(200), now, 30).is_none());
        assert!(sunset(&at(10), now, 0).is_none());
        assert!(sunset(&Deprecation::default(), now, 30).is_none());
    }
}
