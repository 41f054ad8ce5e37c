//! Retention: records older than the configured number of days are deleted on a schedule, so
//! a plant's database does not grow until the disk is full.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::store::Store;

/// Deletes records older than `days` now and then every `interval`, until the store is
/// dropped. Failures are logged and retried at the next tick.
pub(crate) fn spawn(store: &Arc<Store>, days: u32, interval: Duration) {
    let store: Weak<Store> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(store) = store.upgrade() else { return };
            let cutoff = loupe_sdk::flowfile::now_ms() - i64::from(days) * 86_400_000;
            match store.delete_older_than(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, days, "retention: old records deleted"),
                Err(e) => tracing::warn!(error = %e, "retention: could not delete old records"),
            }
        }
    });
}
