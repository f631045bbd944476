//! Unit tests of the journal: compaction, reopening, dedupe, dead letters, injected write
//! failures.

use super::*;

fn week() -> JournalOptions {
    JournalOptions {
        retention: Duration::from_secs(7 * 86_400),
        ..JournalOptions::default()
    }
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(JOURNAL_FILE))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn compacts_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let opts = JournalOptions {
        retention: Duration::from_secs(86_400),
        compact_over_bytes: 4096,
    };
    let (j, _) = Journal::open(dir.path(), opts, 0, None).unwrap();
    for i in 0..200 {
        j.ack(ev(&format!("e{i:03}"), i * day / 100)).await.unwrap();
        if i >= 10 {
            j.done(vec![format!("e{:03}", i - 10)], i * day / 100)
                .await
                .unwrap();
        }
    }
    // Appended, it would be 200 ack and 190 done lines; compacted, one line per event at
    // most, done ones as short `seen` lines, those older than a day dropped.
    let l = lines(dir.path());
    assert!(l.len() < 200, "{}", l.len());
    assert!(l.iter().any(|l| l.contains(r#""op":"seen""#)));
    assert!(!l.iter().any(|l| l.contains(r#""event_id":"e000""#)));
    for id in ["e150", "e195"] {
        assert_eq!(j.ack(ev(id, 2 * day)).await.unwrap(), AckOutcome::Duplicate);
    }
    j.close().await;
    let (j, pending) = Journal::open(dir.path(), opts, 2 * day, None).unwrap();
    let ids: Vec<_> = pending.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(
        ids,
        (190..200).map(|i| format!("e{i:03}")).collect::<Vec<_>>()
    );
    assert_eq!(
        j.ack(ev("e150", 2 * day)).await.unwrap(),
        AckOutcome::Duplicate
    );
    // Received more than a day before: forgotten, so new again.
    assert_eq!(j.ack(ev("e050", 2 * day)).await.unwrap(), AckOutcome::New);
    j.close().await;
}

fn ev(id: &str, at: i64) -> StoredEvent {
    StoredEvent {
        event_id: id.into(),
        event_type: "statement.ready".into(),
        received_at_ms: at,
        payload: format!("{{\"event_id\":\"{id}\"}}"),
        attempts: 0,
    }
}

#[tokio::test]
async fn survives_reopen_dedupes_and_forgets_old_done_events() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let (tx, mut rx) = tmpsc::unbounded_channel();
    let (j, pending) = Journal::open(dir.path(), week(), 0, Some(tx)).unwrap();
    assert!(pending.is_empty());
    // A second opener is refused while the first holds the folder.
    assert!(matches!(
        Journal::open(dir.path(), week(), 0, None),
        Err(JournalError::Locked(_))
    ));
    assert_eq!(j.ack(ev("a", 0)).await.unwrap(), AckOutcome::New);
    assert_eq!(j.ack(ev("b", day)).await.unwrap(), AckOutcome::New);
    assert_eq!(j.ack(ev("a", day)).await.unwrap(), AckOutcome::Duplicate);
    assert_eq!(rx.recv().await.unwrap().event_id, "a");
    assert_eq!(rx.recv().await.unwrap().event_id, "b");
    j.done(vec!["a".into()], day).await.unwrap();
    j.ack(ev("c", 2 * day)).await.unwrap();
    j.done(vec!["c".into()], 2 * day).await.unwrap();
    j.close().await;
    // A torn last line, as a crash mid-write leaves it.
    let path = dir.path().join(JOURNAL_FILE);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"op":"ack","event_id":"torn","#).unwrap();
    drop(f);

    let (j, pending) = Journal::open(dir.path(), week(), 3 * day, None).unwrap();
    assert_eq!(pending, vec![ev("b", day)]);
    for id in ["a", "b", "c"] {
        assert_eq!(
            j.ack(ev(id, 3 * day)).await.unwrap(),
            AckOutcome::Duplicate,
            "{id}"
        );
    }
    assert_eq!(j.ack(ev("torn", 3 * day)).await.unwrap(), AckOutcome::New);
    j.close().await;

    // Ten days later "a" (received day 0) and "c" are past retention: forgotten; "b" and
    // "torn" are still pending, never forgotten.
    let (j, pending) = Journal::open(dir.path(), week(), 10 * day, None).unwrap();
    let ids: Vec<_> = pending.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["b", "torn"]);
    assert_eq!(j.ack(ev("a", 10 * day)).await.unwrap(), AckOutcome::New);
    assert_eq!(j.ack(ev("c", 10 * day)).await.unwrap(), AckOutcome::New);
    j.close().await;
}

#[tokio::test]
async fn dead_letters_survive_reopen_and_compaction_until_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), week(), 0, None).unwrap();
    for id in ["a", "b", "c"] {
        j.ack(ev(id, 0)).await.unwrap();
    }
    j.failed(vec!["a".into(), "b".into()], 2, 10).await.unwrap();
    j.dead(vec!["a".into()], 3, "account `X` unknown".into(), 20)
        .await
        .unwrap();
    // A dead letter is a known id: a redelivery is a duplicate, not new work.
    assert_eq!(j.ack(ev("a", 30)).await.unwrap(), AckOutcome::Duplicate);
    j.close().await;

    let s = inspect(dir.path()).unwrap();
    let pending: Vec<_> = s
        .pending
        .iter()
        .map(|e| (e.event_id.as_str(), e.attempts))
        .collect();
    assert_eq!(pending, [("b", 2), ("c", 0)]);
    assert_eq!(s.dead.len(), 1);
    assert_eq!(
        (s.dead[0].event.event_id.as_str(), s.dead[0].event.attempts),
        ("a", 3)
    );
    assert_eq!(s.dead[0].reason, "account `X` unknown");
    assert_eq!(s.dead[0].dead_at_ms, 20);

    // Reopening (which compacts) keeps the dead letter and the attempts of pending events.
    let (tx, mut rx) = tmpsc::unbounded_channel();
    let (j, pending) = Journal::open(dir.path(), week(), 40 * 86_400_000, Some(tx)).unwrap();
    assert_eq!(
        pending.iter().map(|e| e.attempts).collect::<Vec<_>>(),
        [2, 0]
    );
    assert_eq!(
        inspect(dir.path()).unwrap().dead[0].reason,
        "account `X` unknown"
    );
    // Requeue by id: unknown and non-dead ids are left alone.
    let back = j
        .requeue(Some(vec!["a".into(), "b".into(), "zz".into()]), 50)
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].event_id.as_str(), back[0].attempts), ("a", 0));
    assert_eq!(
        rx.recv().await.unwrap().event_id,
        "a",
        "forwarded to the worker"
    );
    assert!(j.requeue(None, 60).await.unwrap().is_empty());
    j.close().await;
    let s = inspect(dir.path()).unwrap();
    assert!(s.dead.is_empty());
    assert_eq!(s.pending.len(), 3);
}

#[tokio::test]
async fn a_duplicate_in_a_failed_commit_fails_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), week(), 0, None).unwrap();
    j.ack(ev("old", 0)).await.unwrap();
    // The first commit stalls, so the copies queue behind it and form the next group, which
    // fails too.
    j.inject_write_failures(2, Duration::from_millis(200));
    let first = tokio::spawn({
        let j = j.clone();
        async move { j.ack(ev("blocker", 1)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let copies: Vec<_> = (0..8)
        .map(|_| {
            let j = j.clone();
            tokio::spawn(async move { j.ack(ev("x", 2)).await })
        })
        .collect();
    let old = j.ack(ev("old", 3)).await;
    assert!(first.await.unwrap().is_err());
    for c in copies {
        assert!(c.await.unwrap().is_err(), "no copy acknowledged");
    }
    // A duplicate of an event durable before the failed group is still a duplicate.
    assert_eq!(old.unwrap(), AckOutcome::Duplicate);
    // The failed halves were cut off: the file holds whole lines only, without "x".
    let l = lines(dir.path());
    assert!(
        l.iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    assert!(!l.iter().any(|l| l.contains(r#""event_id":"x""#)));
    // After the failure a copy is new again, and durable.
    assert_eq!(j.ack(ev("x", 4)).await.unwrap(), AckOutcome::New);
    assert_eq!(j.ack(ev("x", 5)).await.unwrap(), AckOutcome::Duplicate);
    j.close().await;
    let ids: Vec<_> = inspect(dir.path())
        .unwrap()
        .pending
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["old", "x"]);
}
