//! The bounded priority queue of one connection.
//!
//! A [`FlowQueue`] sits between two nodes of a flow and reproduces what a NiFi connection
//! does with its FlowFiles:
//!
//! - **Prioritizers** ([`Prioritizer`]): FIFO, oldest/newest lineage first, or NiFi's
//!   `PriorityAttributePrioritizer` on the `priority` attribute. A sort key is computed once
//!   when an item enters the queue; items live in a binary heap (O(log n) push and pop).
//!   Every tie falls back to queue-entry order, so equal keys come out FIFO.
//! - **Back pressure**: the queue is *full* when it holds at least `objects` FlowFiles or at
//!   least `bytes` content bytes. [`FlowQueue::push`] waits until it is not full, so a fast
//!   producer can never push the queue past its object threshold. An empty queue always
//!   accepts (even an item larger than the byte threshold), or that item could never move.
//! - **Penalties** ([`FlowQueue::penalize`]): an item handed back for a retry stays in the
//!   queue (it counts toward the thresholds) but is not handed out before its penalty ends.
//! - **Expiration**: with an expiration set, items older than it (measured from
//!   `entry_time_ms`, wall clock) are never handed out; [`FlowQueue::try_pop`] returns them
//!   separately so the runner can record EXPIRE provenance.
//!
//! ## Wake-ups
//! The queue never blocks a consumer: its consumer node polls with [`FlowQueue::try_pop`]
//! and sleeps on the [`Notify`] it gave the queue (one node may read several queues, so the
//! `Notify` belongs to the node, not to the queue). Every push and penalize calls
//! `notify_one` on it, which stores a permit when nobody is waiting, so a consumer that
//! checks its queues and then waits cannot miss an item. Penalized items do not make a
//! queue ready; a consumer sleeps until [`FlowQueue::next_ready_at`] at the latest.
//! Producers waiting for room are woken through a second, internal `Notify` whenever an
//! item leaving turns a full queue into a not-full one.
//!
//! ## Clock
//! Penalties use [`tokio::time::Instant`], so a runtime with a paused clock (tokio's
//! `test-util`) controls them. Expiration uses the wall clock
//! ([`loupe_sdk::flowfile::now_ms`]) because `entry_time_ms` is a wall-clock timestamp
//! carried by the FlowFile across processes.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use loupe_sdk::FlowFile;
use loupe_sdk::attr::PRIORITY;
use loupe_sdk::flowfile::now_ms;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ack::Claim;
use crate::model::{CompiledConnection, Prioritizer};

/// A FlowFile waiting in a [`FlowQueue`], with what the runner tracks about it.
#[derive(Debug, Clone)]
pub struct QueuedFlowFile {
    /// The FlowFile itself.
    pub flow_file: FlowFile,
    /// Failed delivery attempts so far (0 for a FlowFile never tried); the runner compares
    /// it with the retry policy.
    pub attempts: u32,
    /// Its share of the source offer's acknowledgement ([`crate::ack`]): settled when the
    /// FlowFile reaches a final state; an item dropped unsettled has its input offered again.
    pub claim: Claim,
}

impl QueuedFlowFile {
    /// A FlowFile not tried yet, claiming no source offer.
    pub fn new(flow_file: FlowFile) -> Self {
        QueuedFlowFile::claimed(flow_file, Claim::none())
    }

    /// A FlowFile not tried yet, holding `claim` on its source offer.
    pub fn claimed(flow_file: FlowFile, claim: Claim) -> Self {
        QueuedFlowFile {
            flow_file,
            attempts: 0,
            claim,
        }
    }

    /// Content size in bytes: what the item counts toward the byte threshold.
    pub fn size(&self) -> u64 {
        self.flow_file.size()
    }
}

impl PartialEq for QueuedFlowFile {
    /// Equal FlowFiles with equal attempts (claims are bookkeeping, not value).
    fn eq(&self, other: &Self) -> bool {
        self.flow_file == other.flow_file && self.attempts == other.attempts
    }
}

impl From<FlowFile> for QueuedFlowFile {
    fn from(flow_file: FlowFile) -> Self {
        QueuedFlowFile::new(flow_file)
    }
}

/// What one [`FlowQueue::try_pop`] took out of the queue.
#[derive(Debug, Default)]
#[must_use = "expired items must be recorded (EXPIRE provenance) or they vanish silently"]
pub struct Popped {
    /// The next item to process, if one is ready now.
    pub item: Option<QueuedFlowFile>,
    /// Items found expired on the way; they have left the queue and must not be processed.
    pub expired: Vec<QueuedFlowFile>,
}

/// The bounded priority queue of one connection. Shared between tasks as `Arc<FlowQueue>`;
/// every method takes `&self`.
#[derive(Debug)]
pub struct FlowQueue {
    id: String,
    prioritizer: Prioritizer,
    max_objects: usize,
    max_bytes: u64,
    /// `None` also when the flow said zero: NiFi reads a zero expiration as "never".
    expiration_ms: Option<i64>,
    /// Belongs to the consumer node: woken on every push and penalize.
    consumer_wakeup: Arc<Notify>,
    /// Internal: producers waiting for room sleep here.
    space: Notify,
    state: Mutex<State>,
}

impl FlowQueue {
    /// A queue with the given ordering and back-pressure thresholds.
    ///
    /// - `objects`: full at this many queued FlowFiles. Zero behaves as one (only an empty
    ///   queue accepts) — there is no "unbounded".
    /// - `bytes`: full at this many queued content bytes (an empty queue still accepts one
    ///   item of any size). Zero likewise means one item at a time.
    /// - `expiration`: items older than this since `entry_time_ms` are dropped instead of
    ///   handed out. `None` or zero: never (zero is NiFi's "0 sec" = no expiration).
    /// - `consumer_wakeup`: the consumer node's `Notify`, woken on every push and penalize.
    pub fn new(
        id: impl Into<String>,
        prioritizer: Prioritizer,
        objects: usize,
        bytes: u64,
        expiration: Option<Duration>,
        consumer_wakeup: Arc<Notify>,
    ) -> Self {
        let expiration_ms = expiration
            .filter(|d| !d.is_zero())
            // Saturate: an expiration of centuries is "never" in practice, and must not wrap.
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        FlowQueue {
            id: id.into(),
            prioritizer,
            max_objects: objects,
            max_bytes: bytes,
            expiration_ms,
            consumer_wakeup,
            space: Notify::new(),
            state: Mutex::new(State::default()),
        }
    }

    /// The queue of a compiled connection (id, prioritizer, thresholds, expiration).
    pub fn from_connection(connection: &CompiledConnection, consumer_wakeup: Arc<Notify>) -> Self {
        FlowQueue::new(
            connection.id.clone(),
            connection.prioritizer,
            connection.back_pressure_objects,
            connection.back_pressure_bytes,
            connection.expiration,
            consumer_wakeup,
        )
    }

    /// The connection id this queue belongs to.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ordering of this queue.
    pub fn prioritizer(&self) -> Prioritizer {
        self.prioritizer
    }

    /// The object back-pressure threshold.
    pub fn objects_threshold(&self) -> usize {
        self.max_objects
    }

    /// The byte back-pressure threshold.
    pub fn bytes_threshold(&self) -> u64 {
        self.max_bytes
    }

    /// The expiration in effect (`None`: items never expire).
    pub fn expiration(&self) -> Option<Duration> {
        self.expiration_ms
            .map(|ms| Duration::from_millis(ms.unsigned_abs()))
    }

    /// FlowFiles in the queue, penalized ones and not-yet-discovered expired ones included.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// True when the queue holds nothing (not even penalized items).
    pub fn is_empty(&self) -> bool {
        self.lock().len == 0
    }

    /// Content bytes in the queue.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The highest [`len`](Self::len) ever observed.
    pub fn peak_len(&self) -> usize {
        self.lock().peak_len
    }

    /// True when back pressure is engaged: `len >= objects` or `bytes >= bytes threshold`.
    /// An empty queue is never full.
    pub fn is_full(&self) -> bool {
        self.full(&self.lock())
    }

    /// How many more FlowFiles fit before the object threshold; 0 when full (by count or by
    /// bytes). A producer that must not block can take at most this many from upstream.
    pub fn room(&self) -> usize {
        let st = self.lock();
        if self.full(&st) {
            0
        } else {
            // Not full means `len < max_objects`, except for an empty queue with a zero
            // threshold, which still accepts one.
            self.max_objects.saturating_sub(st.len).max(1)
        }
    }

    /// Adds `item`, waiting while the queue is full (back pressure).
    ///
    /// Cancellation: dropping the returned future while it waits drops `item` with it. A
    /// caller that must be able to give up without losing the item uses
    /// [`wait_not_full`](Self::wait_not_full) and [`try_push`](Self::try_push) instead.
    pub async fn push(&self, item: QueuedFlowFile) {
        let mut item = item;
        loop {
            // Register for the wake-up BEFORE checking: an item leaving between the check
            // and the await then still wakes us (no lost wake-up).
            let mut notified = pin!(self.space.notified());
            notified.as_mut().enable();
            match self.try_push(item) {
                Ok(()) => return,
                Err(back) => item = back,
            }
            notified.await;
        }
    }

    /// Adds `item` if the queue is not full (an empty queue always accepts); otherwise hands
    /// it back.
    #[allow(clippy::result_large_err)] // the item itself is the error: callers keep it
    pub fn try_push(&self, item: QueuedFlowFile) -> Result<(), QueuedFlowFile> {
        {
            let mut st = self.lock();
            if self.full(&st) {
                return Err(item);
            }
            let entry = Entry::new(self.prioritizer, st.next_seq(), item);
            st.insert_ready(entry);
        }
        // Outside the lock: the woken consumer's first move is to take it.
        self.consumer_wakeup.notify_one();
        Ok(())
    }

    /// Waits until the queue is not full. Another producer may fill it again before the
    /// caller pushes, so pair with [`try_push`](Self::try_push) in a loop, or use
    /// [`push`](Self::push). Cancel-safe.
    pub async fn wait_not_full(&self) {
        loop {
            let mut notified = pin!(self.space.notified());
            notified.as_mut().enable();
            if !self.is_full() {
                return;
            }
            notified.await;
        }
    }

    /// Puts `item` back, not to be handed out before `now + penalty` (NiFi penalization, for
    /// retries). Ignores back pressure: the item was already taken from this queue by its
    /// consumer, which must never block on its own input. It re-enters the queue (a new
    /// entry position for FIFO ties, as a NiFi transfer back to a connection does) and, once
    /// its penalty ends, competes by its normal key.
    pub fn penalize(&self, item: QueuedFlowFile, penalty: Duration) {
        let now = Instant::now();
        // `Instant + Duration` panics on overflow; an absurd penalty means "for ages" (the
        // same far future tokio uses for "never"), not a crash of the consumer.
        let until = now
            .checked_add(penalty)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        self.penalize_until(item, until);
    }

    /// Like [`penalize`](Self::penalize), with the end of the penalty given.
    pub fn penalize_until(&self, item: QueuedFlowFile, until: Instant) {
        {
            let mut st = self.lock();
            let entry = Entry::new(self.prioritizer, st.next_seq(), item);
            st.insert_penalized(Penalized { until, entry });
        }
        // A penalized item is not ready, but the consumer must learn of the new deadline
        // (see `next_ready_at`), or it might sleep past it.
        self.consumer_wakeup.notify_one();
    }

    /// Takes the next ready item in priority order, and every expired item met before it.
    pub fn try_pop(&self) -> Popped {
        self.pop_with(Instant::now, now_ms)
    }

    /// When the consumer should look again at the latest: `None` when nothing is queued
    /// (a push will wake it); a time at or before now when an item is ready; otherwise the
    /// end of the earliest penalty.
    pub fn next_ready_at(&self) -> Option<Instant> {
        let st = self.lock();
        if !st.ready.is_empty() {
            return Some(Instant::now());
        }
        st.penalized.peek().map(|p| p.until)
    }

    /// `try_pop` with the clocks given, so tests control time. The clocks are read only when
    /// needed (something penalized, an expiration set): pop is the hot path.
    fn pop_with(&self, now: impl FnOnce() -> Instant, wall_now_ms: impl FnOnce() -> i64) -> Popped {
        let mut expired = Vec::new();
        let (item, wake_producers) = {
            let mut st = self.lock();
            let was_full = self.full(&st);
            if !st.penalized.is_empty() {
                st.release_penalties(now());
            }
            // NiFi: expired once strictly past entry + expiration, i.e. entered before this.
            let entered_before = self
                .expiration_ms
                .map(|exp| wall_now_ms().saturating_sub(exp));
            let item = loop {
                let Some(entry) = st.take_ready() else {
                    break None;
                };
                if entered_before.is_some_and(|t| entry.item.flow_file.entry_time_ms < t) {
                    expired.push(entry.item);
                } else {
                    break Some(entry.item);
                }
            };
            (item, was_full && !self.full(&st))
        };
        if wake_producers {
            // All of them: each re-checks under the lock, and those that lose the race
            // register again. Producers are few (one per upstream task), so the herd is small.
            self.space.notify_waiters();
        }
        Popped { item, expired }
    }

    #[cfg(test)]
    fn pop_at(&self, now: Instant, wall_now_ms: i64) -> Popped {
        self.pop_with(|| now, || wall_now_ms)
    }

    fn full(&self, st: &State) -> bool {
        // An empty queue is never full: it must accept one item whatever the thresholds,
        // or an oversized item (or a zero threshold) would block its producer forever.
        st.len > 0 && (st.len >= self.max_objects || st.bytes >= self.max_bytes)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections only move entries between heaps and counters; a panic inside
        // one (allocation failure) leaves nothing half-done worth refusing service over.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything behind the queue's mutex.
#[derive(Debug, Default)]
struct State {
    /// Items that may be handed out, best first.
    ready: BinaryHeap<Entry>,
    /// Penalized items, earliest penalty end first.
    penalized: BinaryHeap<Penalized>,
    /// Items in both heaps.
    len: usize,
    /// Content bytes in both heaps.
    bytes: u64,
    peak_len: usize,
    /// Entry counter: the FIFO tie-breaker.
    seq: u64,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn count_in(&mut self, entry: &Entry) {
        self.len += 1;
        self.bytes += entry.size;
        self.peak_len = self.peak_len.max(self.len);
    }

    fn insert_ready(&mut self, entry: Entry) {
        self.count_in(&entry);
        self.ready.push(entry);
    }

    fn insert_penalized(&mut self, penalized: Penalized) {
        self.count_in(&penalized.entry);
        self.penalized.push(penalized);
    }

    /// Moves every item whose penalty has ended to the ready heap.
    fn release_penalties(&mut self, now: Instant) {
        while self.penalized.peek().is_some_and(|p| p.until <= now) {
            if let Some(p) = self.penalized.pop() {
                self.ready.push(p.entry);
            }
        }
    }

    fn take_ready(&mut self) -> Option<Entry> {
        let entry = self.ready.pop()?;
        self.len -= 1;
        self.bytes -= entry.size;
        Some(entry)
    }
}

/// A queued item with its precomputed order.
#[derive(Debug)]
struct Entry {
    key: SortKey,
    seq: u64,
    size: u64,
    item: QueuedFlowFile,
}

impl Entry {
    fn new(prioritizer: Prioritizer, seq: u64, item: QueuedFlowFile) -> Self {
        Entry {
            key: SortKey::of(prioritizer, &item.flow_file),
            seq,
            size: item.size(),
            item,
        }
    }

    /// "Comes out first" is `Less`: key, then entry order.
    fn rank(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.seq.cmp(&other.seq))
    }
}

// `BinaryHeap` is a max-heap: the entry that must come out first compares greatest.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank(self)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Entry {}

/// A penalized entry, waiting for `until`.
#[derive(Debug)]
struct Penalized {
    until: Instant,
    entry: Entry,
}

// Max-heap again: earliest end (then entry order) compares greatest.
impl Ord for Penalized {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .until
            .cmp(&self.until)
            .then_with(|| other.entry.seq.cmp(&self.entry.seq))
    }
}

impl PartialOrd for Penalized {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Penalized {
    fn eq(&self, other: &Self) -> bool {
        self.entry.seq == other.entry.seq
    }
}

impl Eq for Penalized {}

/// The order of an item under its queue's prioritizer; smaller comes out first. One queue
/// has one prioritizer, so only same-variant keys are ever compared.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    /// FIFO: the entry sequence alone decides.
    Fifo,
    /// Oldest lineage first.
    Oldest(i64),
    /// Newest lineage first.
    Newest(Reverse<i64>),
    /// NiFi `PriorityAttributePrioritizer`.
    Priority(PriorityKey),
}

impl SortKey {
    fn of(prioritizer: Prioritizer, flow_file: &FlowFile) -> Self {
        match prioritizer {
            Prioritizer::Fifo => SortKey::Fifo,
            Prioritizer::OldestFirst => SortKey::Oldest(flow_file.lineage_start_ms),
            Prioritizer::NewestFirst => SortKey::Newest(Reverse(flow_file.lineage_start_ms)),
            Prioritizer::PriorityAttribute => {
                SortKey::Priority(PriorityKey::of(flow_file.attr(PRIORITY)))
            }
        }
    }
}

/// NiFi `PriorityAttributePrioritizer` as a key. Variant order is the rule "an integer beats
/// a non-integer beats absent".
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PriorityKey {
    /// The trimmed value matches `-?\d+`: lower first.
    Int(IntKey),
    /// Any other value, untrimmed, as UTF-16 code units: `String.compareTo` order.
    Text(Box<[u16]>),
    /// No `priority` attribute.
    Absent,
}

impl PriorityKey {
    fn of(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return PriorityKey::Absent;
        };
        match IntKey::parse(java_trim(value)) {
            Some(int) => PriorityKey::Int(int),
            // NiFi compares the untrimmed strings here.
            None => PriorityKey::Text(value.encode_utf16().collect()),
        }
    }
}

/// Java's `String.trim()`: strips every char <= U+0020 (controls included) from both ends,
/// and nothing else (not U+00A0 or other Unicode spaces that `str::trim` would strip).
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// An integer of any length, ordered by value. NiFi parses a `long` and calls two values
/// that overflow it equal; here every integer orders by its true value: `i128` for the
/// usual ones, the decimal digits beyond it (anything outside `i128` is below `i128::MIN`
/// or above `i128::MAX`, hence the variant order).
#[derive(Debug, PartialEq, Eq)]
enum IntKey {
    /// Below `i128::MIN`: the magnitude's digits, without leading zeros.
    NegBig(Box<str>),
    /// Fits in `i128`.
    Small(i128),
    /// Above `i128::MAX`: the digits, without leading zeros.
    PosBig(Box<str>),
}

impl IntKey {
    /// `Some` when `s` matches `-?\d+` (ASCII digits, as Java's `\d`).
    fn parse(s: &str) -> Option<Self> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Ok(v) = s.parse::<i128>() {
            return Some(IntKey::Small(v));
        }
        // The pattern matched, so parsing failed on range only.
        let magnitude: Box<str> = digits.trim_start_matches('0').into();
        Some(if negative {
            IntKey::NegBig(magnitude)
        } else {
            IntKey::PosBig(magnitude)
        })
    }

    fn rank(&self) -> u8 {
        match self {
            IntKey::NegBig(_) => 0,
            IntKey::Small(_) => 1,
            IntKey::PosBig(_) => 2,
        }
    }
}

/// Orders digit strings without leading zeros by value.
fn cmp_magnitude(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for IntKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (IntKey::Small(a), IntKey::Small(b)) => a.cmp(b),
            (IntKey::PosBig(a), IntKey::PosBig(b)) => cmp_magnitude(a, b),
            // The larger magnitude is the smaller negative number.
            (IntKey::NegBig(a), IntKey::NegBig(b)) => cmp_magnitude(b, a),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for IntKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use futures::FutureExt;

    use super::*;

    fn ff(name: &str) -> FlowFile {
        FlowFile {
            uuid: name.to_string(),
            attributes: HashMap::new(),
            content: bytes::Bytes::new(),
            entry_time_ms: now_ms(),
            lineage_start_ms: 0,
        }
    }

    fn queue(prioritizer: Prioritizer) -> FlowQueue {
        FlowQueue::new(
            "a.success->b",
            prioritizer,
            1_000,
            1_000_000,
            None,
            Arc::new(Notify::new()),
        )
    }

    /// Pops everything ready, returning uuids in order; fails on expired items.
    fn drain(q: &FlowQueue) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let popped = q.try_pop();
            assert!(popped.expired.is_empty());
            match popped.item {
                Some(item) => out.push(item.flow_file.uuid),
                None => return out,
            }
        }
    }

    fn push_all(q: &FlowQueue, items: impl IntoIterator<Item = FlowFile>) {
        for f in items {
            q.try_push(f.into()).expect("room");
        }
    }

    #[test]
    fn fifo_keeps_entry_order() {
        let q = queue(Prioritizer::Fifo);
        // Lineage and priority must not matter to FIFO.
        push_all(
            &q,
            [
                ff("a").with_attr(PRIORITY, "9"),
                FlowFile {
                    lineage_start_ms: -5,
                    ..ff("b")
                },
                ff("c").with_attr(PRIORITY, "1"),
            ],
        );
        assert_eq!(drain(&q), ["a", "b", "c"]);
    }

    fn lineage(name: &str, ms: i64) -> FlowFile {
        FlowFile {
            lineage_start_ms: ms,
            ..ff(name)
        }
    }

    #[test]
    fn oldest_first_orders_by_lineage_start_ties_fifo() {
        let q = queue(Prioritizer::OldestFirst);
        push_all(
            &q,
            [
                lineage("t30", 30),
                lineage("t10a", 10),
                lineage("t20", 20),
                lineage("t10b", 10),
            ],
        );
        assert_eq!(drain(&q), ["t10a", "t10b", "t20", "t30"]);
    }

    #[test]
    fn newest_first_orders_by_lineage_start_desc_ties_fifo() {
        let q = queue(Prioritizer::NewestFirst);
        push_all(
            &q,
            [
                lineage("t10", 10),
                lineage("t30a", 30),
                lineage("t20", 20),
                lineage("t30b", 30),
            ],
        );
        assert_eq!(drain(&q), ["t30a", "t30b", "t20", "t10"]);
    }

    fn prio(name: &str, value: Option<&str>) -> FlowFile {
        match value {
            Some(v) => ff(name).with_attr(PRIORITY, v),
            None => ff(name),
        }
    }

    #[test]
    fn priority_attribute_follows_nifi() {
        let q = queue(Prioritizer::PriorityAttribute);
        push_all(
            &q,
            [
                prio("absent1", None),
                prio("text-b", Some("b")),
                prio("int10", Some("10")),
                prio("text-A-99", Some("A-99")),
                prio("int7-trimmed", Some(" 7 ")),
                prio("neg", Some("-3")),
                prio("text-A-100", Some("A-100")),
                prio("absent2", None),
                prio("int7", Some("7")),
                prio("int-zero-padded", Some("0010")),
                // Not an integer: `+` is outside `-?\d+`.
                prio("text-plus", Some("+1")),
                prio("text-dash", Some("-")),
                // Text compares UNtrimmed: the leading space (0x20) sorts before "+1".
                prio("text-space-z", Some(" z")),
            ],
        );
        assert_eq!(
            drain(&q),
            [
                "neg",
                "int7-trimmed",
                "int7",
                // "0010" == 10: a tie, entry order.
                "int10",
                "int-zero-padded",
                // Non-integers, String.compareTo: ' ' < '+' (0x2B) < '-' (0x2D) < 'A' < 'b'.
                "text-space-z",
                "text-plus",
                "text-dash",
                "text-A-100",
                "text-A-99",
                "text-b",
                "absent1",
                "absent2",
            ]
        );
    }

    #[test]
    fn priority_huge_integers_order_by_value() {
        let q = queue(Prioritizer::PriorityAttribute);
        let big = "1".repeat(50); // beyond i128 (and NiFi's long)
        let bigger = "2".repeat(50);
        let neg_big = format!("-{big}");
        let neg_bigger = format!("-{bigger}");
        push_all(
            &q,
            [
                prio("bigger", Some(&bigger)),
                prio("zero", Some("0")),
                prio("neg_big", Some(&neg_big)),
                prio("big", Some(&big)),
                prio("i64max+1", Some("9223372036854775808")),
                prio("neg_bigger", Some(&neg_bigger)),
                prio("big-padded", Some(&format!("000{big}"))),
                prio("text", Some("x")),
            ],
        );
        assert_eq!(
            drain(&q),
            [
                "neg_bigger",
                "neg_big",
                "zero",
                "i64max+1",
                "big",
                "big-padded",
                "bigger",
                "text"
            ]
        );
    }

    #[test]
    fn priority_text_compares_utf16_like_java() {
        // U+FF21 (fullwidth A) is one unit 0xFF21; U+1F600 is the surrogate pair
        // 0xD83D 0xDE00. Java orders the emoji FIRST (0xD83D < 0xFF21); UTF-8 byte order and
        // code-point order would put it last.
        let q = queue(Prioritizer::PriorityAttribute);
        push_all(
            &q,
            [
                prio("fullwidth", Some("\u{FF21}")),
                prio("emoji", Some("\u{1F600}")),
            ],
        );
        assert_eq!(drain(&q), ["emoji", "fullwidth"]);
    }

    #[test]
    fn java_trim_is_not_unicode_trim() {
        assert_eq!(java_trim("\t\n 7\u{1} "), "7");
        // NBSP is not trimmed by Java, so "\u{A0}7" is text, not the integer 7.
        assert!(IntKey::parse(java_trim("\u{A0}7")).is_none());
        assert_eq!(IntKey::parse("-0"), Some(IntKey::Small(0)));
        assert!(IntKey::parse("").is_none());
        assert!(IntKey::parse("1.5").is_none());
        assert!(IntKey::parse("١").is_none()); // Arabic-Indic digit: Java's \d is ASCII.
    }

    fn sized(name: &str, len: usize) -> QueuedFlowFile {
        FlowFile {
            content: bytes::Bytes::from(vec![0u8; len]),
            ..ff(name)
        }
        .into()
    }

    #[test]
    fn object_threshold_rejects_when_full() {
        let q = FlowQueue::new(
            "q",
            Prioritizer::Fifo,
            2,
            u64::MAX,
            None,
            Arc::new(Notify::new()),
        );
        assert_eq!(q.room(), 2);
        q.try_push(sized("a", 1)).unwrap();
        assert_eq!(q.room(), 1);
        q.try_push(sized("b", 1)).unwrap();
        assert!(q.is_full());
        assert_eq!(q.room(), 0);
        let back = q.try_push(sized("c", 1)).unwrap_err();
        assert_eq!(back.flow_file.uuid, "c");
        assert_eq!(q.try_pop().item.unwrap().flow_file.uuid, "a");
        assert!(!q.is_full());
        q.try_push(back).unwrap();
        assert_eq!(drain(&q), ["b", "c"]);
        assert_eq!(q.peak_len(), 2);
    }

    #[test]
    fn byte_threshold_and_oversized_item() {
        let q = FlowQueue::new(
            "q",
            Prioritizer::Fifo,
            100,
            10,
            None,
            Arc::new(Notify::new()),
        );
        // Below the byte threshold: accepted even when this item crosses it.
        q.try_push(sized("a", 6)).unwrap();
        q.try_push(sized("b", 6)).unwrap();
        assert_eq!(q.bytes(), 12);
        assert!(q.is_full());
        assert_eq!(q.room(), 0, "full by bytes means no room by count either");
        assert!(q.try_push(sized("c", 1)).is_err());
        assert_eq!(drain(&q), ["a", "b"]);
        assert_eq!(q.bytes(), 0);

        // An empty queue accepts an item above the whole threshold, then is full.
        q.try_push(sized("huge", 1_000)).unwrap();
        assert!(q.is_full());
        assert!(q.try_push(sized("small", 1)).is_err());
        assert_eq!(drain(&q), ["huge"]);

        // Exactly at the byte threshold is full.
        q.try_push(sized("five", 5)).unwrap();
        q.try_push(sized("five-more", 5)).unwrap();
        assert_eq!(q.bytes(), 10);
        assert!(q.is_full());
        assert!(q.try_push(sized("one", 1)).is_err());
    }

    #[test]
    fn async_push_into_empty_queue_accepts_oversized() {
        let q = FlowQueue::new("q", Prioritizer::Fifo, 1, 1, None, Arc::new(Notify::new()));
        assert!(!q.is_full(), "an empty queue is never full");
        assert!(q.wait_not_full().now_or_never().is_some());
        // `now_or_never`: the push must complete on its first poll, without waiting.
        assert!(q.push(sized("huge", 1 << 20)).now_or_never().is_some());
        assert_eq!(q.len(), 1);
        assert_eq!(q.bytes(), 1 << 20);
        // Now full: the next push waits (and, dropped, drops its item).
        assert!(q.push(sized("next", 1)).now_or_never().is_none());
        assert!(q.wait_not_full().now_or_never().is_none());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn zero_thresholds_still_move_one_at_a_time() {
        let q = FlowQueue::new("q", Prioritizer::Fifo, 0, 0, None, Arc::new(Notify::new()));
        assert_eq!(q.room(), 1);
        q.try_push(sized("a", 0)).unwrap();
        assert!(q.is_full());
        assert_eq!(q.room(), 0);
        assert!(q.try_push(sized("b", 0)).is_err());
        assert_eq!(drain(&q), ["a"]);
        assert!(!q.is_full());
    }

    /// Fails a test that would otherwise hang on a lost wake-up. Generous on purpose: a guard
    /// against deadlock, not an assertion on speed.
    async fn no_hang<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("hung: lost wake-up?")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn back_pressure_bounds_fast_producers() {
        const THRESHOLD: usize = 8;
        const PER_PRODUCER: usize = 10 * THRESHOLD;
        const PRODUCERS: usize = 3;
        let wakeup = Arc::new(Notify::new());
        let q = Arc::new(FlowQueue::new(
            "q",
            Prioritizer::PriorityAttribute,
            THRESHOLD,
            u64::MAX,
            None,
            wakeup.clone(),
        ));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let q = q.clone();
                tokio::spawn(async move {
                    for i in 0..PER_PRODUCER {
                        let f = ff(&format!("{p}-{i}")).with_attr(PRIORITY, (i % 5).to_string());
                        q.push(f.into()).await;
                    }
                })
            })
            .collect();

        // Before consuming, let the producers run into the threshold: the queue must fill
        // to exactly THRESHOLD and stay there while nobody pops.
        no_hang(async {
            while !q.is_full() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
            assert_eq!(q.len(), THRESHOLD, "a producer pushed past the threshold");
        }

        // A slow consumer: sleeps on its Notify when the queue is empty, naps between items
        // so producers keep piling up against the threshold.
        let mut seen = HashSet::new();
        while seen.len() < PRODUCERS * PER_PRODUCER {
            let notified = wakeup.notified();
            let popped = q.try_pop();
            assert!(popped.expired.is_empty());
            match popped.item {
                Some(item) => {
                    assert!(seen.insert(item.flow_file.uuid), "delivered twice");
                    if seen.len() % 8 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                None => no_hang(notified).await,
            }
        }
        for p in producers {
            no_hang(p).await.unwrap();
        }
        assert!(q.is_empty());
        assert!(q.try_pop().item.is_none());
        assert_eq!(seen.len(), PRODUCERS * PER_PRODUCER);
        // Never past the threshold, with 3 producers racing for every freed slot.
        assert_eq!(q.peak_len(), THRESHOLD);
    }

    #[tokio::test]
    async fn wait_not_full_wakes_when_an_item_leaves() {
        let q = Arc::new(FlowQueue::new(
            "q",
            Prioritizer::Fifo,
            1,
            u64::MAX,
            None,
            Arc::new(Notify::new()),
        ));
        q.try_push(sized("a", 1)).unwrap();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move {
                q.wait_not_full().await;
                q.push(sized("b", 1)).await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert_eq!(q.try_pop().item.unwrap().flow_file.uuid, "a");
        no_hang(waiter).await.unwrap();
        assert_eq!(drain(&q), ["b"]);
    }

    #[test]
    fn push_and_penalize_wake_the_consumer() {
        let wakeup = Arc::new(Notify::new());
        let q = FlowQueue::new("q", Prioritizer::Fifo, 10, 100, None, wakeup.clone());
        assert!(wakeup.notified().now_or_never().is_none());
        // notify_one stores a permit: a consumer that starts waiting after the push still
        // wakes at once.
        q.try_push(sized("a", 1)).unwrap();
        assert!(
            wakeup.notified().now_or_never().is_some(),
            "push did not notify"
        );
        let item = q.try_pop().item.unwrap();
        q.penalize(item, Duration::from_secs(3600));
        assert!(
            wakeup.notified().now_or_never().is_some(),
            "penalize did not notify"
        );
        // Popping does not wake the consumer (it is the consumer).
        assert!(wakeup.notified().now_or_never().is_none());
    }

    #[test]
    fn penalized_item_waits_for_its_time() {
        let q = queue(Prioritizer::PriorityAttribute);
        let t0 = Instant::now();
        let wall = now_ms();
        let mut retry: QueuedFlowFile = prio("retry", Some("1")).into();
        retry.attempts = 2;
        q.penalize_until(retry, t0 + Duration::from_secs(10));
        push_all(&q, [prio("low", Some("5"))]);
        assert_eq!(q.len(), 2, "penalized items are in the queue");

        // Before the penalty ends the lower-priority item goes out, the penalized one never.
        assert_eq!(
            q.pop_at(t0, wall).item.unwrap().flow_file.uuid,
            "low",
            "penalized item handed out early"
        );
        assert!(q.pop_at(t0 + Duration::from_secs(9), wall).item.is_none());
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_ready_at(), Some(t0 + Duration::from_secs(10)));

        // Once its time comes it competes by its key: priority 1 beats a fresh 5.
        push_all(&q, [prio("fresh", Some("5"))]);
        let item = q
            .pop_at(t0 + Duration::from_secs(10), wall)
            .item
            .expect("penalty over");
        assert_eq!(item.flow_file.uuid, "retry");
        assert_eq!(item.attempts, 2);
        assert_eq!(drain(&q), ["fresh"]);
        assert_eq!(q.next_ready_at(), None);
    }

    #[test]
    fn penalize_ignores_back_pressure() {
        let q = FlowQueue::new(
            "q",
            Prioritizer::Fifo,
            1,
            100,
            None,
            Arc::new(Notify::new()),
        );
        q.try_push(sized("a", 1)).unwrap();
        let taken = q.try_pop().item.unwrap();
        q.try_push(sized("b", 1)).unwrap();
        q.penalize(taken, Duration::from_secs(3600));
        assert_eq!(q.len(), 2);
        assert_eq!(q.bytes(), 2);
        assert!(q.is_full());
        assert_eq!(q.next_ready_at().map(|t| t <= Instant::now()), Some(true));
    }

    #[test]
    fn absurd_penalty_does_not_panic() {
        let q = queue(Prioritizer::Fifo);
        q.penalize(prio("p", None).into(), Duration::MAX);
        assert!(q.next_ready_at().unwrap() > Instant::now());
        assert!(q.try_pop().item.is_none());
        assert_eq!(q.len(), 1);
    }

    #[tokio::test]
    async fn penalty_with_real_clock() {
        let q = queue(Prioritizer::Fifo);
        q.penalize(prio("p", None).into(), Duration::from_millis(30));
        // Sleep until the queue says; the item must then be there (no assertion on time).
        let at = q.next_ready_at().expect("penalized item pending");
        tokio::time::sleep_until(at).await;
        assert_eq!(q.try_pop().item.unwrap().flow_file.uuid, "p");
    }

    fn aged(name: &str, age_ms: i64) -> FlowFile {
        FlowFile {
            entry_time_ms: 1_000_000 - age_ms,
            ..ff(name)
        }
    }

    #[test]
    fn expired_items_are_returned_separately() {
        let q = FlowQueue::new(
            "q",
            Prioritizer::Fifo,
            100,
            1_000,
            Some(Duration::from_secs(60)),
            Arc::new(Notify::new()),
        );
        let now = 1_000_000;
        push_all(
            &q,
            [
                aged("old1", 61_000),
                aged("edge", 60_000), // exactly the expiration: not yet expired (NiFi: >)
                aged("old2", 90_000),
                aged("young", 1_000),
            ],
        );
        let t = Instant::now();
        let first = q.pop_at(t, now);
        let expired: Vec<_> = first.expired.iter().map(|i| &i.flow_file.uuid).collect();
        assert_eq!(expired, ["old1"]);
        assert_eq!(first.item.unwrap().flow_file.uuid, "edge");
        let second = q.pop_at(t, now);
        assert_eq!(second.expired.len(), 1);
        assert_eq!(second.expired[0].flow_file.uuid, "old2");
        assert_eq!(second.item.unwrap().flow_file.uuid, "young");
        assert!(q.is_empty());

        // Only expired items left: they all come out as expired, no item.
        push_all(&q, [aged("x", 100_000), aged("y", 100_000)]);
        let last = q.pop_at(t, now);
        assert!(last.item.is_none());
        assert_eq!(last.expired.len(), 2);
        assert_eq!(q.len(), 0);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn zero_expiration_means_never() {
        let q = FlowQueue::new(
            "q",
            Prioritizer::Fifo,
            100,
            1_000,
            Some(Duration::ZERO),
            Arc::new(Notify::new()),
        );
        assert_eq!(q.expiration(), None);
        push_all(&q, [aged("ancient", 10_000_000)]);
        let popped = q.pop_at(Instant::now(), 1_000_000);
        assert!(popped.expired.is_empty());
        assert!(popped.item.is_some());
    }

    #[test]
    fn from_connection_takes_its_settings() {
        let c = CompiledConnection {
            id: "cam.success->clf".into(),
            from: 0,
            relationship: "success".into(),
            to: 1,
            prioritizer: Prioritizer::NewestFirst,
            back_pressure_objects: 7,
            back_pressure_bytes: 99,
            expiration: Some(Duration::from_secs(5)),
        };
        let q = FlowQueue::from_connection(&c, Arc::new(Notify::new()));
        assert_eq!(q.id(), "cam.success->clf");
        assert_eq!(q.prioritizer(), Prioritizer::NewestFirst);
        assert_eq!(q.objects_threshold(), 7);
        assert_eq!(q.bytes_threshold(), 99);
        assert_eq!(q.expiration(), Some(Duration::from_secs(5)));
    }
}
