//! A loopback order system for the tests: verifies each POST's signature, keeps each change
//! once by its idempotency key (in arrival order), and misbehaves on demand — down until a
//! clock passes a time, 500s, slow answers (after taking the batch: the acknowledgement is
//! lost and the batch comes again), refusals of chosen orders, 409 for a batch it already has; it counts batches taken and
//! not yet answered, and answers a sender abandoned (killed while it waited).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use maribank_etl::clock::SharedClock;
use maribank_etl::contract::signing::Secret;
use maribank_etl::webhook::verify::Verifier;

/// The signing secret of the tests.
pub const SECRET: &str = "oms-test-secret";

/// What the OMS saw and how it behaves.
#[derive(Default)]
pub struct Book {
    /// Changes by idempotency key (the first delivery).
    pub by_key: BTreeMap<String, serde_json::Value>,
    /// (order, order_version) in first-delivery order.
    pub arrivals: Vec<(String, i64)>,
    /// Deliveries of a key already held.
    pub duplicates: u64,
    /// POSTs.
    pub requests: u64,
    /// POSTs whose signature did not verify.
    pub bad_signatures: u64,
    /// Raw bodies accepted.
    pub bodies: Vec<String>,
    /// 503 while the clock is before this (ms).
    pub down_until_ms: i64,
    /// The next this-many POSTs get 500.
    pub fail_next: u32,
    /// The next this-many POSTs are taken, then answered after `slow`.
    pub slow_next: u32,
    /// How slow.
    pub slow: Duration,
    /// Every POST is answered after this (after taking the batch).
    pub slow_all: Duration,
    /// Orders refused with 422.
    pub refuse: BTreeSet<String>,
    /// Batches taken and not yet answered (the handler is still waiting to say 200).
    pub in_flight: u32,
    /// Batches taken whose answer was never given: the sender went away while it waited.
    pub abandoned: u64,
}

/// Counts a taken batch as in flight until its answer is given or the sender goes away
/// (the handler is dropped mid-wait).
struct InFlight {
    book: Arc<Mutex<Book>>,
    answered: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut b = self.book.lock().unwrap();
        b.in_flight -= 1;
        if !self.answered {
            b.abandoned += 1;
        }
    }
}

/// A running OMS.
pub struct Oms {
    /// Its endpoint.
    pub url: String,
    /// Its book.
    pub book: Arc<Mutex<Book>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

type Shared = (Arc<Mutex<Book>>, SharedClock);

async fn receive(
    State((book, clock)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let v = Verifier::new(vec![Secret::new(SECRET)], Duration::from_secs(300));
    let wait = {
        let mut b = book.lock().unwrap();
        b.requests += 1;
        if v.verify(
            h("mb-oms-timestamp"),
            h("mb-oms-signature"),
            &body,
            clock.now_ms(),
        )
        .is_err()
        {
            b.bad_signatures += 1;
            return StatusCode::UNAUTHORIZED;
        }
        if clock.now_ms() < b.down_until_ms {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        if b.fail_next > 0 {
            b.fail_next -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let events = batch["events"].as_array().unwrap();
        if events
            .iter()
            .any(|e| b.refuse.contains(e["external_order_id"].as_str().unwrap()))
        {
            return StatusCode::UNPROCESSABLE_ENTITY;
        }
        b.bodies.push(String::from_utf8(body.to_vec()).unwrap());
        let mut fresh = 0;
        for e in events {
            let key = e["idempotency_key"].as_str().unwrap().to_string();
            if b.by_key.contains_key(&key) {
                b.duplicates += 1;
                continue;
            }
            fresh += 1;
            let order = format!(
                "{}/{}",
                e["account_id"].as_str().unwrap(),
                e["external_order_id"].as_str().unwrap()
            );
            b.arrivals
                .push((order, e["order_version"].as_i64().unwrap()));
            b.by_key.insert(key, e.clone());
        }
        let mut wait = b.slow_all;
        if b.slow_next > 0 {
            b.slow_next -= 1;
            wait = b.slow;
        }
        if fresh == 0 {
            return StatusCode::CONFLICT;
        }
        b.in_flight += 1;
        wait
    };
    let mut guard = InFlight {
        book: book.clone(),
        answered: false,
    };
    tokio::time::sleep(wait).await;
    guard.answered = true;
    StatusCode::OK
}

impl Oms {
    /// Starts one on `127.0.0.1:0`, judging signatures and outages by `clock`.
    pub async fn start(clock: SharedClock) -> Oms {
        let book = Arc::new(Mutex::new(Book::default()));
        let app = axum::Router::new()
            .route("/oms/maribank", axum::routing::post(receive))
            .with_state((book.clone(), clock));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/oms/maribank", l.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Oms {
            url,
            book,
            _stop: tx,
        }
    }
}

/// Every order's changes arrived in version order, 1, 2, 3 … with none skipped.
pub fn assert_in_order(arrivals: &[(String, i64)]) {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (order, v) in arrivals {
        let prev = last.insert(order, *v).unwrap_or(0);
        assert_eq!(*v, prev + 1, "order {order}: version {v} after {prev}");
    }
}
