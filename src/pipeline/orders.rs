//! The step after each run: the days it wrote folded into `order_status` (changes committed to
//! the feed), then, when `[orders] endpoint` is set, the changes pushed to the order system.

use std::sync::Arc;

use super::run::{AccountInfo, RunError, Runner};
use crate::orders::push::Sleep;
use crate::orders::{Feed, Keeper, Pusher};

impl Runner {
    /// The pipeline's order feed.
    pub(super) fn orders_feed(&self) -> Feed {
        Feed::new(&self.state)
    }

    /// Folds what the run wrote into `order_status`, account by account.
    pub(super) async fn keep_orders(&self, accounts: &[AccountInfo]) -> Result<(), RunError> {
        let feed = self.orders_feed();
        let keeper = Keeper {
            dest: &self.ctx.dest,
            feed: &feed,
            lineage: self.ctx.lineage.clone(),
            now: self.clock.now(),
            lookback_days: self.settings.orders.lookback_days as i32,
            chunk_transactions: crate::orders::keep::CHUNK_TRANSACTIONS,
        };
        for a in accounts {
            let s = keeper.account(&a.id, a.tz).await?;
            if s.orders > 0 || s.repaired > 0 {
                tracing::info!(account = %a.id, orders = s.orders, changes = s.changes, rows_written = s.rows_written, repaired = s.repaired, "order status kept");
            }
        }
        Ok(())
    }

    /// Pushes the run's accounts' changes when an endpoint is configured. A failing order
    /// system does not fail the run: the changes stay pending for the next push.
    pub(super) async fn push_orders(&self, accounts: &[AccountInfo]) {
        let Some(cfg) = self.push.clone() else {
            return;
        };
        let ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
        let shown = crate::redact::webhook_url(&cfg.endpoint);
        let r = match Pusher::new(self.orders_feed(), cfg, self.clock.clone(), Arc::new(Sleep)) {
            Ok(p) => p.push(Some(&ids)).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(s) => {
                tracing::info!(endpoint = %shown, delivered = s.delivered, dead = s.dead, "order changes pushed")
            }
            Err(e) => {
                tracing::warn!(endpoint = %shown, error = %e, "order changes not all pushed; `maribank-etl orders push` or the next run sends them")
            }
        }
    }
}
