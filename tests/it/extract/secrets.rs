//! Secrets never leak: the secret access key, the OAuth client secret and every bearer token
//! stay out of logs, errors, the raw archive, state and run reports.

use super::*;

/// A `MakeWriter` collecting every log line.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read_tree(dir: &std::path::Path, out: &mut HashMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            read_tree(&p, out);
        } else {
            let mut bytes = std::fs::read(&p).unwrap();
            if p.extension().is_some_and(|x| x == "gz") {
                let mut d = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut d)
                    .unwrap();
                bytes = d;
            }
            out.insert(p.to_string_lossy().into_owned(), bytes);
        }
    }
}

#[tokio::test]
async fn the_secret_never_leaks_into_logs_errors_or_archives() {
    let logs = capture_logs();
    let sb = Sandbox::start(SandboxConfig {
        fault_rate: 0.3,
        fault_kinds: vec![
            FaultKind::Internal,
            FaultKind::Truncate,
            FaultKind::Duplicate,
            FaultKind::ExpireToken,
            FaultKind::RateLimited,
        ],
        ..sandbox_config()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let mut cfg = client_config(&sb);
    cfg.archive = true;
    cfg.archive_target = Some(RawArchive::new(
        store.clone(),
        object_store::path::Path::from("wh"),
        "run-0001",
    ));
    cfg.page_size = 25;
    let client = Client::new(cfg.clone()).unwrap();
    let acct = sb.world().accounts[0].id.clone();
    let w = window(day(3, 2), day(3, 5));
    let pages = collect(
        &client,
        ListRequest::window(Stream::TRANSACTIONS, acct.clone(), w),
    )
    .await
    .unwrap();
    check_account(&sb, &acct, &pages);
    assert!(pages.iter().all(|p| p.raw_object.is_some()));
    client
        .statement(&acct, NaiveDate::from_ymd_opt(2026, 3, 3).unwrap())
        .await
        .unwrap();
    collect(&client, ListRequest::all(Stream::ACCOUNTS))
        .await
        .unwrap();

    write_state(&store, &acct, w, &client, &pages).await;

    let mut errors = access_key_errors(&cfg).await;
    errors.push(format!("{cfg:?}\n{client:?}"));
    errors.push(serde_json::to_string(&client.stats().snapshot()).unwrap());

    oauth_client_and_run(&sb, &cfg, &acct, w, dir.path(), &mut errors).await;

    let mut files = HashMap::new();
    read_tree(dir.path(), &mut files);
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(log_text.contains("answer received"), "logs were captured");

    let secret = sandbox::DEFAULT_SECRET;
    // Every secret, the OAuth client's, and every bearer token the sandbox issues (`mbt_…`).
    let never = [
        secret,
        "wrong-secret-xyz",
        sandbox::DEFAULT_CLIENT_SECRET,
        "wrong-client-secret-xyz",
        "mbt_",
        "Bearer ",
    ];
    for s in never {
        assert!(!log_text.contains(s), "`{s}` in logs");
    }
    for e in &errors {
        for s in never {
            assert!(!e.contains(s), "`{s}` in {e}");
        }
    }
    assert_files(&files, &never);
    // Every answer was archived, failed ones included (body + sidecar each), but the two
    // refused before any data and the token endpoint's (a token is never written anywhere).
    let stats = &sb.shared().stats;
    let tokens = stats.token_requests.load(Ordering::Relaxed) as usize;
    assert!(
        tokens >= 3,
        "the client's two tokens and the wrong secret's refusal"
    );
    let served = requests(&sb) as usize - tokens;
    let archived = files.keys().filter(|n| n.contains("/_raw/")).count();
    assert!(
        archived >= 2 * (served - 2),
        "{archived} archive files for {served} requests"
    );
}

/// An OAuth client pulls a window (its token revoked after the first page, so it gets a second
/// one), a wrong client secret fails, and a pipeline run with the client writes its raw archive,
/// state and report under `<dir>/wh`; the errors and `Debug` outputs go to `errors`.
async fn oauth_client_and_run(
    sb: &Sandbox,
    cfg: &ClientConfig,
    acct: &str,
    w: TimeWindow,
    dir: &std::path::Path,
    errors: &mut Vec<String>,
) {
    use maribank_etl::pipeline::config::{ApiEnv, Overrides, Settings};
    use maribank_etl::pipeline::run::{Plan, Runner};
    let mut oauth = cfg.clone();
    oauth.credentials =
        Credentials::oauth_client(sandbox::DEFAULT_CLIENT_ID, sandbox::DEFAULT_CLIENT_SECRET);
    let client = Client::new(oauth.clone()).unwrap();
    collect(&client, ListRequest::all(Stream::ACCOUNTS))
        .await
        .unwrap();
    assert_eq!(sb.revoke_tokens(sandbox::DEFAULT_CLIENT_ID), 1);
    let pages = collect(&client, ListRequest::window(Stream::TRANSACTIONS, acct, w))
        .await
        .unwrap();
    check_account(sb, acct, &pages);
    errors.push(format!("{oauth:?}\n{client:?}"));
    let mut wrong = oauth.clone();
    wrong.credentials =
        Credentials::oauth_client(sandbox::DEFAULT_CLIENT_ID, "wrong-client-secret-xyz");
    let e = first_page(
        &Client::new(wrong).unwrap(),
        ListRequest::all(Stream::ACCOUNTS),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Some("invalid_client"));
    errors.push(format!("{e}\n{e:?}"));
    let settings = Settings::resolve(&Overrides {
        destination: Some(dir.join("wh").display().to_string()),
        streams: Some(vec!["transactions".into()]),
        accounts: Some(vec![acct.to_string()]),
        name: Some("oauth".into()),
        qps: Some(100.0),
        ..Default::default()
    })
    .unwrap();
    let api = ApiEnv {
        base_url: sb.base_url().to_string(),
        credentials: oauth.credentials.clone(),
    };
    let out = Runner::new(settings, api.clone())
        .unwrap()
        .run(Plan::Sync {
            start: w.start,
            end: w.start + chrono::Duration::days(1),
        })
        .await;
    errors.push(format!("{:?}\n{api:?}", out.error));
    errors.push(serde_json::to_string(&out.report).unwrap());
}

/// Captures every log line of every thread (a global subscriber: this is the only test
/// installing one; other tests' lines are checked too, which does no harm).
fn capture_logs() -> LogBuf {
    let logs = LogBuf::default();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let l = logs.clone();
            move || l.clone()
        })
        .finish();
    tracing::subscriber::set_global_default(sub).unwrap();

    logs
}

/// State a run writes from what extract gave it: a cursor, a finished-window marker with the
/// stats and page tokens.
async fn write_state(
    store: &Arc<dyn object_store::ObjectStore>,
    acct: &str,
    w: TimeWindow,
    client: &Client,
    pages: &[Page],
) {
    let state = maribank_etl::pipeline::state::StateStore::new(
        store.clone(),
        &object_store::path::Path::from("wh"),
        "daily",
        maribank_etl::clock::system(),
    );
    let mut cursor = maribank_etl::pipeline::state::Cursor {
        account_id: acct.to_string(),
        ..Default::default()
    };
    cursor.watermarks.insert("transactions".into(), w.end);
    state.save_cursor(acct, &cursor).await.unwrap();
    let tokens: Vec<Option<String>> = pages.iter().map(|p| p.next_page_token.clone()).collect();
    let summary = serde_json::json!({
        "stats": client.stats().snapshot(),
        "tokens": tokens,
        "traces": pages.iter().map(|p| p.trace_id.clone()).collect::<Vec<_>>(),
    });
    state
        .finish_window("bf", "2026-03-02", &summary)
        .await
        .unwrap();
}

/// The errors of a wrong secret and of a skewed clock.
async fn access_key_errors(cfg: &ClientConfig) -> Vec<String> {
    let mut errors = Vec::new();
    let mut bad = cfg.clone();
    bad.credentials = Credentials::new(sandbox::DEFAULT_ACCESS_KEY_ID, "wrong-secret-xyz");
    let e = first_page(
        &Client::new(bad).unwrap(),
        ListRequest::all(Stream::ACCOUNTS),
    )
    .await
    .unwrap_err();
    errors.push(format!("{e}\n{e:?}"));
    let mut skewed = cfg.clone();
    skewed.clock = Arc::new(OffsetClock(900_000));
    let e = first_page(
        &Client::new(skewed).unwrap(),
        ListRequest::all(Stream::ACCOUNTS),
    )
    .await
    .unwrap_err();
    errors.push(format!("{e}\n{e:?}"));
    errors
}

/// The archive, state and report files are where they belong, and none holds a secret, a
/// token or an Authorization header.
fn assert_files(files: &HashMap<String, Vec<u8>>, never: &[&str]) {
    let names: Vec<&String> = files.keys().collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains("wh/_raw/transactions/account_id=") && n.ends_with(".json.gz"))
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("wh/_raw/statements/account_id=") && n.ends_with(".csv.gz"))
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("wh/_raw/accounts/") && n.ends_with(".meta.json"))
    );
    assert!(names.iter().any(|n| n.contains("wh/_state/daily/")));
    assert!(
        names
            .iter()
            .any(|n| n.contains("wh/_runs/oauth/") && n.ends_with(".json")),
        "the OAuth run wrote its report"
    );
    for (name, bytes) in files {
        let text = String::from_utf8_lossy(bytes);
        for s in never.iter() {
            assert!(!text.contains(s), "`{s}` in {name}");
        }
        assert!(
            !text.contains("Signature="),
            "Authorization header in {name}"
        );
        if name.ends_with(".meta.json") {
            let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            for k in [
                "method",
                "path",
                "query",
                "status",
                "trace_id",
                "elapsed_ms",
            ] {
                assert!(v.get(k).is_some(), "{name} lacks {k}");
            }
        }
    }
}
