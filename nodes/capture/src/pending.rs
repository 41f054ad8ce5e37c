//! A bounded in-memory set of FlowFiles waiting to be offered or acknowledged: the
//! bookkeeping of uploads (whose spool files outlive a restart) and snapshots.
//!
//! An item is *ready* (waiting for a pull) or *in flight* (offered under a delivery id).
//! Accepting an in-flight item removes it and tells its waiter; rejecting it (or an offer
//! left unacknowledged for `redeliver_after`) makes it ready again. Closing the queue drops
//! every item: their waiters see the sender dropped. Everything is under one short-held lock, never across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use loupe_sdk::FlowFile;
use loupe_sdk::pb::Offer;
use tokio::sync::{Notify, oneshot};

/// Key of an item for its producer (not a delivery id).
pub type Key = u64;

#[derive(Debug)]
struct Item {
    flow_file: FlowFile,
    /// Told when the flow accepts the item.
    accepted: Option<oneshot::Sender<()>>,
    /// The delivery id it is in flight under.
    delivery: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    next_key: Key,
    closed: bool,
    ready: VecDeque<Key>,
    items: HashMap<Key, Item>,
    in_flight: HashMap<String, (Key, Instant)>,
}

/// Where an item is, as its producer sees it.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for a pull.
    Ready,
    /// Offered; the flow may still accept it.
    InFlight,
    /// Accepted, dropped or withdrawn.
    Gone,
}

/// The bounded queue of one input (uploads or snapshots).
#[derive(Debug)]
pub struct PendingQueue {
    prefix: &'static str,
    capacity: usize,
    redeliver_after: Duration,
    notify: Arc<Notify>,
    inner: Mutex<Inner>,
}

impl PendingQueue {
    /// A queue holding at most `capacity` items, whose delivery ids start with `prefix`;
    /// `notify` is woken whenever an item becomes ready.
    pub fn new(
        prefix: &'static str,
        capacity: usize,
        redeliver_after: Duration,
        notify: Arc<Notify>,
    ) -> Self {
        PendingQueue {
            prefix,
            capacity,
            redeliver_after,
            notify,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `delivery_id` is one of this queue's.
    pub fn owns(&self, delivery_id: &str) -> bool {
        delivery_id.starts_with(self.prefix)
    }

    /// Items held (ready and in flight).
    pub fn len(&self) -> usize {
        self.inner().items.len()
    }

    /// Most items held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items waiting for a pull.
    pub fn ready(&self) -> usize {
        self.inner().ready.len()
    }

    /// Adds an item; gives it back when the queue is full (or closed).
    pub fn try_push(
        &self,
        flow_file: FlowFile,
        accepted: Option<oneshot::Sender<()>>,
    ) -> Result<Key, FlowFile> {
        let mut inner = self.inner();
        if inner.closed || inner.items.len() >= self.capacity {
            return Err(flow_file);
        }
        let key = inner.next_key;
        inner.next_key += 1;
        inner.items.insert(
            key,
            Item {
                flow_file,
                accepted,
                delivery: None,
            },
        );
        inner.ready.push_back(key);
        drop(inner);
        self.notify.notify_one();
        Ok(key)
    }

    /// Adds an item recovered from a previous run's spool, over the capacity if need be (it
    /// was admitted then); `accepted` is told when the flow accepts it.
    pub fn push_recovered(&self, flow_file: FlowFile, accepted: oneshot::Sender<()>) {
        let mut inner = self.inner();
        let key = inner.next_key;
        inner.next_key += 1;
        inner.items.insert(
            key,
            Item {
                flow_file,
                accepted: Some(accepted),
                delivery: None,
            },
        );
        inner.ready.push_back(key);
        drop(inner);
        self.notify.notify_one();
    }

    /// Offers up to `max` ready items, oldest first. Offers unacknowledged for
    /// `redeliver_after` are taken as lost and become ready again first.
    pub fn take(&self, max: usize) -> Vec<Offer> {
        let now = Instant::now();
        let mut inner = self.inner();
        let lost: Vec<String> = inner
            .in_flight
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= self.redeliver_after)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            tracing::warn!(delivery_id = %id,
                "offer not acknowledged within redeliver_after; offering it again");
            requeue(&mut inner, &id);
        }
        let mut offers = Vec::new();
        while offers.len() < max {
            let Some(key) = inner.ready.pop_front() else {
                break;
            };
            let delivery_id = format!("{}{}", self.prefix, uuid::Uuid::new_v4());
            let Some(item) = inner.items.get_mut(&key) else {
                continue;
            };
            item.delivery = Some(delivery_id.clone());
            offers.push(Offer {
                delivery_id: delivery_id.clone(),
                flow_file: Some(item.flow_file.clone()),
            });
            inner.in_flight.insert(delivery_id, (key, now));
        }
        offers
    }

    /// Settles this queue's delivery ids: accepted items leave (their waiter is told),
    /// rejected ones are offered again. Unknown ids are ignored.
    pub fn settle(&self, accepted: &[String], rejected: &[String]) {
        let mut inner = self.inner();
        for id in accepted {
            let Some((key, _)) = inner.in_flight.remove(id) else {
                tracing::debug!(delivery_id = %id, "accepted delivery not in flight");
                continue;
            };
            if let Some(item) = inner.items.remove(&key)
                && let Some(tx) = item.accepted
            {
                let _ = tx.send(());
            }
        }
        let mut woke = false;
        for id in rejected {
            woke |= requeue(&mut inner, id);
        }
        drop(inner);
        if woke {
            self.notify.notify_one();
        }
    }

    /// Where item `key` is.
    #[cfg(test)]
    pub fn status(&self, key: Key) -> Status {
        match self.inner().items.get(&key) {
            None => Status::Gone,
            Some(item) if item.delivery.is_some() => Status::InFlight,
            Some(_) => Status::Ready,
        }
    }

    /// Drops everything and refuses new items (the node is stopping): every waiter sees
    /// its sender dropped.
    pub fn close(&self) {
        let mut inner = self.inner();
        inner.closed = true;
        inner.items.clear();
        inner.ready.clear();
        inner.in_flight.clear();
    }
}

/// Makes the item offered as `id` ready again; false if it is unknown.
fn requeue(inner: &mut Inner, id: &str) -> bool {
    let Some((key, _)) = inner.in_flight.remove(id) else {
        return false;
    };
    let Some(item) = inner.items.get_mut(&key) else {
        return false;
    };
    item.delivery = None;
    // To the front: it was first in line before.
    inner.ready.push_front(key);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> PendingQueue {
        PendingQueue::new("t-", capacity, Duration::from_secs(600), Arc::default())
    }

    fn ff() -> FlowFile {
        FlowFile::create(&b"x"[..], HashMap::new())
    }

    #[test]
    fn bounded_offered_settled() {
        let q = queue(2);
        let (tx, mut rx) = oneshot::channel();
        let a = q.try_push(ff(), Some(tx)).unwrap();
        q.try_push(ff(), None).unwrap();
        assert!(q.try_push(ff(), None).is_err(), "full");

        let offers = q.take(1);
        assert_eq!(offers.len(), 1);
        assert!(q.owns(&offers[0].delivery_id));
        assert_eq!(q.status(a), Status::InFlight);
        q.settle(&[], &[offers[0].delivery_id.clone()]);
        assert_eq!(q.status(a), Status::Ready);
        let again = q.take(10);
        assert_eq!(again.len(), 2);
        assert_ne!(again[0].delivery_id, offers[0].delivery_id);
        q.settle(&[again[0].delivery_id.clone()], &[]);
        assert_eq!(rx.try_recv(), Ok(()));
        assert_eq!(q.status(a), Status::Gone);
        assert_eq!(q.len(), 1);
    }
}
