//! Leases under a race: many runs take over one expired lease at the same instant, on local disk
//! and on the S3-compatible server (moto honours `If-None-Match: *`), round after round; exactly
//! one wins each round, and the losers are told who holds it.

use std::sync::Arc;
use std::time::Duration;

use maribank_etl::load::{Destination, DestinationOptions};
use maribank_etl::pipeline::state::{StateError, StateStore};

use crate::helpers::start_moto;

/// `rounds` rounds of `contenders` simultaneous takeovers of an expired lease.
async fn race(dest: Destination, rounds: usize, contenders: usize) {
    let ttl = Duration::from_secs(60);
    for round in 0..rounds {
        let scope = format!("ACC-RACE-{}", round % 3);
        let state = |_contender: usize| {
            StateStore::new(
                dest.store.clone(),
                &dest.root,
                "race",
                maribank_etl::clock::system(),
            )
        };
        // The holder stalls past its expiry.
        let holder = state(0);
        let stale_id = format!("stale-{round}");
        match holder
            .acquire_lease(&scope, &stale_id, Duration::from_millis(1))
            .await
        {
            Ok(_) | Err(StateError::Busy { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
        let tasks: Vec<_> = (0..contenders)
            .map(|i| {
                let s = state(i);
                let scope = scope.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.acquire_lease(&scope, &format!("run-{round}-{i}"), ttl)
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(l) => winners.push(l),
                Err(StateError::Busy { owner, .. }) => {
                    assert!(owner.starts_with(&format!("run-{round}-")))
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} runs took the lease",
            winners.len()
        );
        // The winner gives it back; the next round starts from a fresh stall.
        state(0).release_lease(&winners[0]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_run_takes_over_an_expired_lease_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    race(Destination::local(dir.path()).unwrap(), 50, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_run_takes_over_an_expired_lease_on_s3() {
    let moto = start_moto();
    let resp = reqwest::Client::new()
        .put(format!("{}/leases", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let opts = DestinationOptions {
        endpoint: Some(moto.endpoint.clone()),
        allow_http: true,
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
    };
    race(Destination::parse("s3://leases/wh", &opts).unwrap(), 50, 6).await;
}
