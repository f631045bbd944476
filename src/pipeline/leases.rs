//! Holding the leases of a run: one per account, taken in id order (so two runs never wait on
//! each other in a cycle), renewed while the work runs, given back at the end. A run that finds
//! a lease taken over (it stalled past the expiry) stops.

use std::future::Future;
use std::time::Duration;

use super::run::RunError;
use super::state::{LeaseInfo, StateError, StateStore};

/// Runs `work` while holding the lease of every account in `ids`.
pub async fn hold<T>(
    state: &StateStore,
    ids: &[&str],
    run_id: &str,
    ttl: Duration,
    work: impl Future<Output = Result<T, RunError>>,
) -> Result<T, RunError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut leases = Vec::with_capacity(ids.len());
    for id in ids {
        match state.acquire_lease(id, run_id, ttl).await {
            Ok(l) => leases.push(l),
            Err(e) => {
                release(state, &leases).await;
                return Err(e.into());
            }
        }
    }
    tokio::pin!(work);
    let mut tick = tokio::time::interval(ttl / 3);
    tick.tick().await;
    let r = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                if let Err(e) = renew(state, &mut leases, ttl).await {
                    break Err(e.into());
                }
            }
        }
    };
    release(state, &leases).await;
    r
}

/// Renews every lease; an error only when one was taken over.
async fn renew(
    state: &StateStore,
    leases: &mut [LeaseInfo],
    ttl: Duration,
) -> Result<(), StateError> {
    for l in leases.iter_mut() {
        match state.renew_lease(l, ttl).await {
            Ok(()) => {}
            Err(e @ StateError::Busy { .. }) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying at the next tick"),
        }
    }
    Ok(())
}

async fn release(state: &StateStore, leases: &[LeaseInfo]) {
    for l in leases {
        if let Err(e) = state.release_lease(l).await {
            tracing::warn!(error = %e, account = %l.scope, "lease release failed");
        }
    }
}
