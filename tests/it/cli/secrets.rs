//! Secrets stay secret at the edges: a failing alert delivery never shows the webhook URL's
//! userinfo, path or query, `check` never shows the base URL's userinfo or query; a secret is
//! trimmed alike from the environment and from a file; a secret file open to group or others is
//! warned about once; plain HTTP to another machine is refused unless the pipeline allows it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use maribank_etl::pipeline::alerts;
use maribank_etl::pipeline::config::ApiEnv;
use maribank_etl::sandbox::{DEFAULT_SECRET, Sandbox, SandboxConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bin::{closed_port, code, run, with_api};
use crate::helpers::all_files;

/// The parts of the URLs below that must never be printed.
const SECRETS: [&str; 6] = [
    "alice", "hunter2", "T0SECRET", "B0SECRET", "XXSECRET", "QSECRET",
];

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows `{s}`:\n{text}");
    }
}

/// A Slack-like incoming-webhook URL on `addr`, with userinfo, a secret path and query.
fn hook_url(addr: &str) -> String {
    format!("http://alice:hunter2@{addr}/services/T0SECRET/B0SECRET/XXSECRET?token=QSECRET")
}

/// A loopback server answering every request with HTTP 500.
async fn failing_server() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    addr
}

#[tokio::test]
async fn a_failing_alert_delivery_never_shows_the_webhook_url() {
    // The one sender, answered 500 and unreachable: its errors name scheme, host and port only.
    let addr = failing_server().await;
    let body = serde_json::json!({"text": "test"});
    let e = alerts::post(&hook_url(&addr), &body, "test alert")
        .await
        .unwrap_err();
    assert!(e.contains("HTTP 500"), "{e}");
    assert_no_secret("a refused delivery", &e);
    let gone = format!("127.0.0.1:{}", closed_port());
    let e = alerts::post(&hook_url(&gone), &body, "test alert")
        .await
        .unwrap_err();
    assert!(e.contains("unreachable"), "{e}");
    assert_no_secret("an unreachable webhook", &e);

    // A real run whose failure raises an alert that cannot be delivered: every log line.
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (p, dest) = (dir.path().join("p.toml"), dir.path().join("wh"));
    std::fs::write(
        &p,
        format!(
            "name = \"redact\"\n[api]\nmax_retries = 0\n[alerts]\nconsecutive_failures = 1\nwebhook_url = \"{}\"\n",
            hook_url(&gone)
        ),
    )
    .unwrap();
    let mut c = with_api(
        &[
            "sync",
            "--config",
            p.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-02",
        ],
        sb.base_url(),
    );
    c.env("MARIBANK_SECRET_ACCESS_KEY", "a-wrong-secret");
    let out = run(c).await;
    assert_eq!(code(&out), 3, "{}", out.all());
    assert!(
        out.stderr.contains("not delivered to the alert webhook")
            && out.stderr.contains(&format!("http://{gone}/…")),
        "{}",
        out.stderr
    );
    assert_no_secret("the run's output", &out.all());
    for f in all_files(&dest) {
        assert_no_secret(
            &f.display().to_string(),
            &String::from_utf8_lossy(&std::fs::read(&f).unwrap()),
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn check_never_shows_the_userinfo_or_query_of_the_base_url() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh").display().to_string();
    let sandbox_host = sb.base_url().trim_start_matches("http://").to_string();
    let gone = format!("127.0.0.1:{}", closed_port());
    for (base, want) in [
        (format!("http://alice:hunter2@{sandbox_host}"), 2),
        (format!("https://alice:hunter2@{gone}/v?token=QSECRET"), 2),
        ("ftp://alice:hunter2@example.com/x".to_string(), 2),
        ("alice:hunter2@example.com".to_string(), 2),
        (format!("http://{gone}/base?token=QSECRET"), 4),
    ] {
        let out = run(with_api(&["check", "--dest", &dest], &base)).await;
        assert_eq!(code(&out), want, "{base}: {}", out.all());
        assert_no_secret("check", &out.all());
        assert!(out.stdout.contains("[FAIL]"), "{}", out.stdout);
    }
    let out = run(with_api(
        &["check", "--dest", &dest],
        &format!("http://alice:hunter2@{sandbox_host}"),
    ))
    .await;
    assert!(
        out.stdout.contains(&format!("http://{sandbox_host}")),
        "where it points is still shown: {}",
        out.stdout
    );
    for args in [
        vec!["accounts"],
        vec![
            "sync",
            "--dest",
            &dest,
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-02",
        ],
    ] {
        let out = run(with_api(
            &args,
            &format!("http://{gone}/base?token=QSECRET"),
        ))
        .await;
        assert_eq!(code(&out), 4, "{args:?}: {}", out.all());
        assert_no_secret("a failed call", &out.all());
    }
    sb.shutdown().await;
}

fn ids(stdout: &str) -> Vec<String> {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not a JSON list ({e}): {stdout}"))
}

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn a_secret_is_trimmed_alike_from_the_environment_and_a_file() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accounts = ["accounts", "--format", "json"];
    for secret in [
        format!("{DEFAULT_SECRET}\n"),
        format!(" \t{DEFAULT_SECRET}\r\n"),
    ] {
        let mut c = with_api(&accounts, sb.base_url());
        c.env("MARIBANK_SECRET_ACCESS_KEY", &secret);
        let out = run(c).await;
        assert_eq!(code(&out), 0, "{secret:?}: {}", out.all());
        assert_eq!(ids(&out.stdout).len(), 3);
    }
    let file = secret_file(dir.path(), "sk", &format!("{DEFAULT_SECRET}\r\n"), 0o600);
    let mut c = with_api(&accounts, sb.base_url());
    c.env_remove("MARIBANK_SECRET_ACCESS_KEY")
        .env("MARIBANK_SECRET_ACCESS_KEY_FILE", &file);
    let out = run(c).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert!(
        !out.stderr.contains("chmod"),
        "0600 is private: {}",
        out.stderr
    );
    // Only whitespace at the ends goes: a wrong secret stays wrong.
    let mut c = with_api(&accounts, sb.base_url());
    c.env("MARIBANK_SECRET_ACCESS_KEY", format!("{DEFAULT_SECRET}x\n"));
    assert_eq!(code(&run(c).await), 3);
    // The same rule in the library, variable against file.
    let env = |k: &str| match k {
        "MARIBANK_BASE_URL" => Some(" http://127.0.0.1:1/\n".to_string()),
        "MARIBANK_ACCESS_KEY_ID" => Some("AK\n".to_string()),
        "MARIBANK_SECRET_ACCESS_KEY" => Some("\tsk \n".to_string()),
        // Only the access key's variables: an OAuth client's would be a second credential.
        _ => None,
    };
    let from_env = ApiEnv::from_lookup(env).unwrap();
    let f = secret_file(dir.path(), "sk2", "sk\n", 0o600);
    let from_file = ApiEnv::from_lookup(|k: &str| match k {
        "MARIBANK_SECRET_ACCESS_KEY" => None,
        "MARIBANK_SECRET_ACCESS_KEY_FILE" => Some(f.clone()),
        k => env(k),
    })
    .unwrap();
    assert_eq!(from_env.credentials.secret.expose(), "sk");
    assert_eq!(from_file.credentials.secret.expose(), "sk");
    assert_eq!(from_env.credentials.access_key_id, "AK");
    assert_eq!(from_env.base_url, "http://127.0.0.1:1");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_secret_file_open_to_group_or_others_is_warned_about_once() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o644, 0o640, 0o604] {
        let file = secret_file(
            dir.path(),
            &format!("sk-{mode:o}"),
            &format!("{DEFAULT_SECRET}\n"),
            mode,
        );
        for args in [vec!["accounts", "--format", "json"], vec!["check"]] {
            let mut c = with_api(&args, sb.base_url());
            c.env_remove("MARIBANK_SECRET_ACCESS_KEY")
                .env("MARIBANK_SECRET_ACCESS_KEY_FILE", &file);
            let out = run(c).await;
            assert_eq!(code(&out), 0, "{mode:o} {args:?}: {}", out.all());
            let warning = format!("chmod 600 {file}");
            assert_eq!(
                out.stderr.matches(&warning).count(),
                1,
                "{mode:o} {args:?}: one warning naming the file and the fix: {}",
                out.stderr
            );
            assert!(
                !out.all().contains(DEFAULT_SECRET),
                "the content is never shown"
            );
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_another_machine_is_refused_unless_the_pipeline_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh").display().to_string();
    let remote = "http://192.0.2.1:9";
    let window = ["--start", "2026-11-01", "--end", "2026-11-02"];
    let sync: Vec<&str> = [&["sync", "--dest", &dest][..], &window].concat();
    for args in [vec!["accounts"], vec!["check"], sync.clone()] {
        let t0 = Instant::now();
        let out = run(with_api(&args, remote)).await;
        assert_eq!(code(&out), 2, "{args:?}: {}", out.all());
        assert!(out.all().contains("allow_insecure_http"), "{}", out.all());
        assert!(t0.elapsed().as_secs() < 10, "refused before any call");
    }
    // Allowed by the pipeline: the run goes on and fails on the network instead (exit 4).
    let p = dir.path().join("insecure.toml");
    std::fs::write(
        &p,
        "[api]\nallow_insecure_http = true\nconnect_timeout_secs = 1\nmax_retries = 0\n",
    )
    .unwrap();
    let allowed: Vec<&str> = [&sync[..], &["--config", p.to_str().unwrap()]].concat();
    let out = run(with_api(&allowed, remote)).await;
    assert_eq!(code(&out), 4, "{}", out.all());
    assert!(!out.all().contains("allow_insecure_http"), "{}", out.all());
    // Loopback HTTP (the sandbox), by address or by name, needs nothing.
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let by_name = sb.base_url().replace("127.0.0.1", "localhost");
    let out = run(with_api(&["accounts", "--format", "json"], &by_name)).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let api = |url: &str| ApiEnv {
        base_url: url.into(),
        credentials: maribank_etl::contract::signing::Credentials::new("a", "b"),
    };
    for ok in [
        "http://127.0.0.2:1",
        "http://[::1]:1",
        "http://LOCALHOST:1",
        "http://a.localhost",
        "https://example.com",
    ] {
        assert!(api(ok).ensure_secure(false).is_ok(), "{ok}");
    }
    for refused in [
        "http://10.0.0.1",
        "http://example.com",
        "http://127.0.0.1.nip.io",
        "http://[::2]",
    ] {
        assert!(api(refused).ensure_secure(false).is_err(), "{refused}");
        assert!(api(refused).ensure_secure(true).is_ok(), "{refused}");
    }
    sb.shutdown().await;
}
