//! The sandbox: an embedded MariBank API with deterministic data, rate limits and faults.
//!
//! It implements the whole contract (`schemas/openapi.yaml`): every endpoint, the envelope,
//! trace ids, rate-limit headers, page tokens and every error code. Its data is a pure function
//! of the seed (see [`data`]); its faults are drawn from the seed too (see [`faults`]). Tests
//! start it in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use maribank_etl::sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! println!("{}", sandbox.base_url());
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod data;
pub mod discrepancies;
mod envelope;
pub mod faults;
mod gateway;
pub mod oauth;
pub mod odd;
pub mod orders;
mod params;
pub mod portal;
pub mod query;
pub mod render;
pub mod rng;
mod routes;
pub mod server;
pub mod tokens;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::contract::lifecycle::Deprecation;
pub use auth::{ApiKey, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET};
pub use data::{World, WorldParams};
pub use discrepancies::{Discrepancies, DiscrepancyKind, Plant};
pub use faults::FaultKind;
pub use oauth::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
pub use portal::{PortalDiscrepancies, PortalDiscrepancyKind, PortalPlant};

/// Everything the sandbox can be told.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Seed of all data and faults.
    pub seed: u64,
    /// Number of merchant accounts (the first three are Singapore, Hong Kong and Tokyo).
    pub accounts: u32,
    /// First business day with data.
    pub from: NaiveDate,
    /// Last business day with data (inclusive).
    pub to: NaiveDate,
    /// Mean transactions per account and business day.
    pub txns_per_day: u32,
    /// Requests per second per key (token bucket, burst = qps); 0 = unlimited.
    pub qps: u32,
    /// Share of requests that meet an injected fault.
    pub fault_rate: f64,
    /// Which faults may be injected.
    pub fault_kinds: Vec<FaultKind>,
    /// Added delay of the `latency` fault.
    pub latency: Duration,
    /// Length of the `stall` fault (longer than a client's read timeout).
    pub stall: Duration,
    /// Share of JSON items whose timestamps carry a non-UTC offset.
    pub offset_share: f64,
    /// Share of transactions sent in a contract-breaking form.
    pub malformed_rate: f64,
    /// Share of transactions sent in an odd but well-formed way: another account's id, an
    /// impossible instant, `updated_at` before `created_at` ([`odd`]).
    pub odd_rate: f64,
    /// Lifetime of page tokens.
    pub page_token_ttl: Duration,
    /// Freezes the data clock (lifecycle, publication lag, statements); `None` follows real
    /// time. Authentication always checks real time.
    pub now: Option<DateTime<Utc>>,
    /// Accepted keys.
    pub keys: Vec<ApiKey>,
    /// OAuth clients the token endpoint issues tokens to (products = scopes).
    pub oauth_clients: Vec<ApiKey>,
    /// Lifetime of OAuth tokens (`expires_in`).
    pub token_ttl: Duration,
    /// An announced end of API v1: every answer carries its `Deprecation`, `Sunset` and `Link`
    /// headers, and past the sunset (on the data clock) `/v1` answers `API_VERSION_RETIRED`.
    /// `None` (the default): v1 is current.
    pub deprecation: Option<Deprecation>,
    /// Discrepancies planted in statements and settlement batches (and the seller's order
    /// export, [`orders::export`]); none by default.
    pub discrepancies: Discrepancies,
    /// Differences planted in the merchant portal's Excel exports ([`portal::write_exports`]);
    /// none by default.
    pub portal_discrepancies: PortalDiscrepancies,
    /// Deliver webhook events to a receiver (§8); `None` sends none.
    pub webhook: Option<webhooks::WebhookDelivery>,
    /// Connection limits and timeouts of the HTTP server.
    pub server: crate::server::Limits,
    /// Accounts served after the generated ones with exactly these ids (see
    /// [`World::with_extra_account_ids`]); none by default.
    pub extra_account_ids: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            seed: 42,
            accounts: 3,
            from: NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"),
            to: NaiveDate::from_ymd_opt(2026, 12, 31).expect("valid date"),
            txns_per_day: 200,
            qps: 0,
            fault_rate: 0.0,
            fault_kinds: FaultKind::ALL.to_vec(),
            latency: Duration::from_millis(200),
            stall: Duration::from_secs(65),
            offset_share: 0.0,
            malformed_rate: 0.0,
            odd_rate: 0.0,
            page_token_ttl: Duration::from_secs(crate::contract::PAGE_TOKEN_TTL_SECS),
            now: None,
            keys: auth::default_keys(),
            oauth_clients: oauth::default_clients(),
            token_ttl: Duration::from_secs(oauth::DEFAULT_TOKEN_TTL_SECS),
            deprecation: None,
            discrepancies: Discrepancies::none(),
            portal_discrepancies: PortalDiscrepancies::none(),
            webhook: None,
            extra_account_ids: Vec::new(),
            server: crate::server::Limits::default(),
        }
    }
}

impl SandboxConfig {
    /// The data parameters.
    pub fn world_params(&self) -> WorldParams {
        WorldParams {
            seed: self.seed,
            accounts: self.accounts,
            from: self.from,
            to: self.to,
            txns_per_day: self.txns_per_day,
            offset_share: self.offset_share,
            malformed_rate: self.malformed_rate,
        }
    }

    /// The data served: the world of [`Self::world_params`] and the extra account ids.
    pub fn world(&self) -> World {
        World::new(self.world_params())
            .with_extra_account_ids(&self.extra_account_ids)
            .with_odd_rate(self.odd_rate)
    }
}

/// State shared by all requests.
#[derive(Debug)]
pub struct Shared {
    /// The generated data.
    pub world: World,
    /// Accepted keys.
    pub keys: Vec<ApiKey>,
    /// Replay cache.
    pub nonces: auth::NonceCache,
    /// Per-key token buckets.
    pub limiter: faults::RateLimiter,
    /// Fault decisions.
    pub faults: faults::FaultPlan,
    /// Page token codec.
    pub tokens: tokens::TokenCodec,
    /// OAuth clients and the bearer tokens issued to them.
    pub oauth: oauth::TokenStore,
    /// The announced end of v1, if any.
    pub deprecation: Option<Deprecation>,
    /// Frozen data clock (ms) or `i64::MIN` for real time.
    frozen_now_ms: AtomicI64,
    trace_seq: AtomicU64,
    /// What was served.
    pub stats: server::Stats,
    /// Planted discrepancies.
    pub discrepancies: Discrepancies,
}

impl Shared {
    /// Builds the state for a config.
    pub fn new(cfg: &SandboxConfig) -> Shared {
        let world = cfg.world();
        let mut tk = [0u8; 32];
        for (i, chunk) in tk.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&rng::hash(&[cfg.seed, 0x746f6b, i as u64]).to_le_bytes());
        }
        Shared {
            world,
            keys: cfg.keys.clone(),
            nonces: auth::NonceCache::new(500_000),
            limiter: faults::RateLimiter::new(cfg.qps),
            faults: faults::FaultPlan::new(
                cfg.seed,
                cfg.fault_rate,
                cfg.fault_kinds.clone(),
                cfg.latency,
                cfg.stall,
            ),
            tokens: tokens::TokenCodec::new(tk, cfg.page_token_ttl.as_millis() as i64),
            oauth: oauth::TokenStore::new(
                cfg.oauth_clients.clone(),
                cfg.token_ttl.as_millis() as i64,
                cfg.seed,
            ),
            deprecation: cfg.deprecation.clone(),
            frozen_now_ms: AtomicI64::new(cfg.now.map_or(i64::MIN, |t| t.timestamp_millis())),
            trace_seq: AtomicU64::new(0),
            stats: server::Stats::default(),
            discrepancies: cfg.discrepancies.clone(),
        }
    }

    /// The data clock.
    pub fn now_data_ms(&self) -> i64 {
        match self.frozen_now_ms.load(Ordering::Relaxed) {
            i64::MIN => Utc::now().timestamp_millis(),
            ms => ms,
        }
    }

    fn next_trace_id(&self) -> String {
        let n = self.trace_seq.fetch_add(1, Ordering::Relaxed);
        let a = rng::hash(&[self.world.p.seed, 0x7472, n]);
        let b = rng::hash(&[a, n]);
        format!("{a:016x}{b:016x}")
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    webhook: Option<Arc<webhooks::Deliverer>>,
    webhook_task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds and starts serving in the background.
    pub async fn start(cfg: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&cfg));
        let app = server::app(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        // The same hardened serving as the webhook receiver: header, body and idle timeouts and a
        // connection cap, so slow clients cannot take the sandbox down either.
        let serving = crate::server::serve(listener, app, cfg.server);
        let task = tokio::spawn(serving.run(async {
            let _ = rx.await;
        }));
        let webhook = match &cfg.webhook {
            Some(w) => Some(Arc::new(webhooks::Deliverer::new(w.clone(), cfg.seed)?)),
            None => None,
        };
        let webhook_task = match (&webhook, cfg.webhook.as_ref().and_then(|w| w.follow_clock)) {
            (Some(d), Some(every)) => Some(tokio::spawn(webhooks::follow(
                shared.clone(),
                d.clone(),
                every,
            ))),
            _ => None,
        };
        Ok(Sandbox {
            addr,
            base_url: format!("http://{addr}"),
            shared,
            stop: Some(tx),
            task: Some(task),
            webhook,
            webhook_task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The generated data, for tests to compare against.
    pub fn world(&self) -> &World {
        &self.shared.world
    }

    /// The shared state (statistics, data clock).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Revokes every OAuth token issued to `client_id` so far (its next request with one
    /// answers `TOKEN_EXPIRED`; a new token works); returns how many were revoked.
    pub fn revoke_tokens(&self, client_id: &str) -> usize {
        self.shared.oauth.revoke_tokens(client_id)
    }

    /// Revokes an OAuth client: its tokens, and the token endpoint answers `invalid_client`.
    pub fn revoke_client(&self, client_id: &str) {
        self.shared.oauth.revoke_client(client_id)
    }

    /// Moves the frozen data clock (or freezes a real-time one).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.shared
            .frozen_now_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
    }

    /// The data clock.
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.shared.now_data_ms()).expect("in range")
    }

    /// Delivers the webhook events of the data-clock interval `[t0, t1)` now (signed, retried,
    /// some twice or out of order — see [`webhooks`]), and returns when all are delivered or
    /// given up.
    pub async fn deliver_events_between(
        &self,
        t0: DateTime<Utc>,
        t1: DateTime<Utc>,
    ) -> Result<webhooks::DeliveryReport, webhooks::NotConfigured> {
        let d = self.webhook.as_ref().ok_or(webhooks::NotConfigured)?;
        let events = webhooks::events_between(
            &self.shared.world,
            t0.timestamp_millis(),
            t1.timestamp_millis(),
        );
        Ok(d.deliver(&events).await)
    }

    /// Stops serving, letting requests in flight finish.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.webhook_task.take() {
            t.abort();
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Runs until the future completes (the CLI passes Ctrl-C).
    pub async fn run_until(self, until: impl std::future::Future<Output = ()>) {
        until.await;
        self.shutdown().await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(t) = self.webhook_task.take() {
            t.abort();
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
