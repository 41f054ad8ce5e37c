//! End-to-end acknowledgement: a source's offer is settled only when every FlowFile descended
//! from it has reached a final state.
//!
//! Each offer a source hands the runner becomes an *origin*; every FlowFile in the flow that
//! descends from it carries a [`Claim`] on that origin (the queued FlowFile owns it, a worker
//! holds it while the node runs). A clone or fork gets a claim of its own
//! ([`Claim::split`]); a FlowFile that reaches a final state — written by a sink and routed to
//! an auto-terminated relationship, expired, dropped on purpose — gives its claim back with
//! [`Claim::settle`]. When the last claim of an origin is settled the offer is *accepted*: the
//! source may delete or move its input.
//!
//! A claim that is dropped without being settled (the run stopped with the FlowFile still
//! queued, a worker task panicked or was aborted) marks its origin *abandoned*: the offer is
//! then *rejected* and the source offers the input again. A crash settles nothing, so the
//! source, restarted, offers every input whose record was not durable: redelivery, never loss.
//!
//! The run-wide [`Outstanding`] count is the number of offers not yet settled with their
//! source. The run is idle exactly when it is zero and no source is reading — the runner
//! waits on its [`Notify`] instead of polling queue lengths and worker counters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// The number of offers not yet settled with their source, run-wide.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    count: AtomicUsize,
    changed: Notify,
}

impl Outstanding {
    /// Offers not yet settled.
    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn add(&self, n: usize) {
        self.count.fetch_add(n, Ordering::SeqCst);
    }

    /// `n` offers were settled with their source.
    pub(crate) fn done(&self, n: usize) {
        if n > 0 && self.count.fetch_sub(n, Ordering::SeqCst) == n {
            self.changed.notify_waiters();
        }
    }

    /// Wakes every waiter (something else the idle check reads changed).
    pub(crate) fn poke(&self) {
        self.changed.notify_waiters();
    }

    /// Resolves at the next change; enable it before checking the condition.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

/// Offers of one source whose fate is known and that the source has not been told yet.
#[derive(Debug, Default)]
pub(crate) struct Settlements {
    /// Delivery ids every descendant of which reached a final state.
    pub(crate) accepted: Vec<String>,
    /// Delivery ids with an abandoned descendant: to be offered again.
    pub(crate) rejected: Vec<String>,
}

impl Settlements {
    /// How many offers this batch settles.
    pub(crate) fn len(&self) -> usize {
        self.accepted.len() + self.rejected.len()
    }
}

/// The acknowledgements owed to one source.
#[derive(Debug)]
pub(crate) struct Ledger {
    settled: Mutex<Settlements>,
    ready: Notify,
    outstanding: Arc<Outstanding>,
}

impl Ledger {
    /// A ledger counting its open offers in `outstanding`.
    pub(crate) fn new(outstanding: Arc<Outstanding>) -> Arc<Self> {
        Arc::new(Ledger {
            settled: Mutex::new(Settlements::default()),
            ready: Notify::new(),
            outstanding,
        })
    }

    /// A claim on a new offer: counted outstanding until it is settled with the source.
    pub(crate) fn open(self: &Arc<Self>, delivery_id: String) -> Claim {
        self.outstanding.add(1);
        Claim {
            origin: Some(Arc::new(Origin {
                delivery_id,
                remaining: AtomicUsize::new(1),
                abandoned: AtomicBool::new(false),
                ledger: self.clone(),
            })),
        }
    }

    /// Takes the settlements collected so far.
    pub(crate) fn take(&self) -> Settlements {
        std::mem::take(&mut *self.settled.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Resolves when settlements may be waiting (a stored permit makes a settle that came
    /// before the wait count).
    pub(crate) async fn wait(&self) {
        self.ready.notified().await;
    }

    /// The source was told about `n` offers (or telling it failed: it offers them again).
    pub(crate) fn told(&self, n: usize) {
        self.outstanding.done(n);
    }

    fn finish(&self, delivery_id: String, accepted: bool) {
        {
            let mut s = self.settled.lock().unwrap_or_else(PoisonError::into_inner);
            if accepted {
                s.accepted.push(delivery_id);
            } else {
                s.rejected.push(delivery_id);
            }
        }
        self.ready.notify_one();
    }
}

#[derive(Debug)]
struct Origin {
    delivery_id: String,
    /// Claims not yet settled or dropped.
    remaining: AtomicUsize,
    /// A claim was dropped without being settled.
    abandoned: AtomicBool,
    ledger: Arc<Ledger>,
}

impl Origin {
    fn release(&self, abandoned: bool) {
        if abandoned {
            self.abandoned.store(true, Ordering::SeqCst);
        }
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            let accepted = !self.abandoned.load(Ordering::SeqCst);
            self.ledger.finish(self.delivery_id.clone(), accepted);
        }
    }
}

/// One FlowFile's share of its source offer's acknowledgement.
///
/// Settle it when the FlowFile reaches a final state; dropping it unsettled makes the offer
/// be rejected (offered again). A FlowFile that did not come from a source (tests, tools)
/// has an empty claim, for which both are no-ops.
#[derive(Debug, Default)]
pub struct Claim {
    origin: Option<Arc<Origin>>,
}

impl Claim {
    /// A claim on nothing.
    pub fn none() -> Self {
        Claim { origin: None }
    }

    /// A further claim on the same offer (for a clone or fork of the FlowFile).
    pub fn split(&self) -> Claim {
        if let Some(o) = &self.origin {
            o.remaining.fetch_add(1, Ordering::SeqCst);
        }
        Claim {
            origin: self.origin.clone(),
        }
    }

    /// The FlowFile reached a final state.
    pub fn settle(mut self) {
        if let Some(o) = self.origin.take() {
            o.release(false);
        }
    }
}

impl Clone for Claim {
    /// A clone of a claimed FlowFile holds a claim of its own.
    fn clone(&self) -> Self {
        self.split()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(o) = self.origin.take() {
            o.release(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> (Arc<Outstanding>, Arc<Ledger>) {
        let out = Arc::new(Outstanding::default());
        (out.clone(), Ledger::new(out))
    }

    #[test]
    fn accepted_only_when_every_descendant_settles() {
        let (out, ledger) = ledger();
        let claim = ledger.open("d1".into());
        let a = claim.split();
        let b = a.split();
        assert_eq!(out.get(), 1);
        claim.settle();
        a.settle();
        assert_eq!(
            ledger.take().len(),
            0,
            "one descendant is still in the flow"
        );
        b.settle();
        let s = ledger.take();
        assert_eq!(s.accepted, vec!["d1".to_string()]);
        assert!(s.rejected.is_empty());
        assert_eq!(out.get(), 1, "outstanding until the source is told");
        ledger.told(s.len());
        assert_eq!(out.get(), 0);
    }

    #[test]
    fn a_dropped_claim_rejects_its_offer() {
        let (_out, ledger) = ledger();
        let claim = ledger.open("d2".into());
        let other = claim.split();
        claim.settle();
        drop(other); // e.g. still queued when the run stopped, or a worker panicked
        let s = ledger.take();
        assert!(s.accepted.is_empty());
        assert_eq!(s.rejected, vec!["d2".to_string()]);
    }

    #[test]
    fn a_panicking_holder_rejects_rather_than_loses() {
        let (_out, ledger) = ledger();
        let claim = ledger.open("d3".into());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = claim;
            panic!("worker bug");
        }));
        assert!(r.is_err());
        assert_eq!(ledger.take().rejected, vec!["d3".to_string()]);
    }

    #[test]
    fn empty_claims_do_nothing() {
        let c = Claim::none();
        let d = c.split();
        c.settle();
        drop(d);
    }
}
