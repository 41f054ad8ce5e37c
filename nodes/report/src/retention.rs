//! Retention: records older than the configured number of days are deleted on a schedule, so
//! a plant's database does not grow until the disk is full.

use std::sync::{Arc, Weak};
use std::time::Duration;

use loupe_store::Store;

use crate::media::MediaStore;

/// Deletes records and media days older than `days` now and then every `interval`, for as
/// long as the process runs (while the store exists). Failures are logged and retried at the
/// next tick.
pub(crate) fn spawn(
    store: Option<&Arc<Store>>,
    media: Option<MediaStore>,
    days: u32,
    interval: Duration,
) {
    let store: Option<Weak<Store>> = store.map(Arc::downgrade);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let cutoff = loupe_sdk::flowfile::now_ms() - i64::from(days) * 86_400_000;
            if let Some(weak) = &store {
                let Some(store) = weak.upgrade() else { return };
                match store.delete_older_than(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, days, "retention: old records deleted"),
                    Err(e) => tracing::warn!(error = %e, "retention: could not delete old records"),
                }
            }
            if let Some(media) = media.clone() {
                let day = loupe_store::day::day_of(cutoff);
                match tokio::task::spawn_blocking(move || media.delete_days_before(&day)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(days_deleted = n, "retention: old media deleted"),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "retention: could not delete old media")
                    }
                    Err(e) => tracing::warn!(error = %e, "retention: media task failed"),
                }
            }
        }
    });
}
