//! A bounded set of the most recently seen uuids: what the JSON-lines sink de-duplicates with.
//!
//! A redelivered FlowFile (a retry, a source that re-offers after a crash) comes back soon
//! after its first delivery, so remembering the last N uuids catches it without a set that
//! grows with the report. When the set is full the oldest uuid is forgotten (first in, first
//! out: seeing a uuid again does not make it younger).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// The last `capacity` distinct uuids inserted, oldest forgotten first.
#[derive(Debug)]
pub struct RecentSet {
    capacity: usize,
    members: HashSet<Arc<str>>,
    /// Insertion order, oldest at the front; the same strings as `members`.
    order: VecDeque<Arc<str>>,
}

impl RecentSet {
    /// An empty set that keeps at most `capacity` uuids (at least one).
    pub fn new(capacity: usize) -> RecentSet {
        let capacity = capacity.max(1);
        RecentSet {
            capacity,
            members: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// The most uuids kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many uuids are kept now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no uuid is kept.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether `uuid` is among the kept ones.
    pub fn contains(&self, uuid: &str) -> bool {
        self.members.contains(uuid)
    }

    /// Remembers `uuid` (forgetting the oldest when full); false if it was kept already.
    pub fn insert(&mut self, uuid: &str) -> bool {
        if self.members.contains(uuid) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.members.remove(&oldest);
        }
        let uuid: Arc<str> = Arc::from(uuid);
        self.members.insert(uuid.clone());
        self.order.push_back(uuid);
        true
    }

    /// Forgets `uuid` (a record whose write turned out not to be durable); O(len).
    pub fn remove(&mut self, uuid: &str) {
        if self.members.remove(uuid) {
            self.order.retain(|kept| &**kept != uuid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_capacity_uuids() {
        let mut set = RecentSet::new(3);
        for uuid in ["a", "b", "c"] {
            assert!(set.insert(uuid));
        }
        assert!(!set.insert("a"), "a duplicate within the window");
        assert_eq!(set.len(), 3);
        assert!(set.insert("d"), "full: the oldest (a) goes");
        assert_eq!(set.len(), 3);
        assert!(!set.contains("a"));
        assert!(set.contains("b") && set.contains("c") && set.contains("d"));
        for i in 0..1000 {
            set.insert(&format!("u{i}"));
            assert!(set.len() <= 3 && set.members.len() <= 3);
        }
        assert!(set.contains("u999") && !set.contains("u996"));
        assert_eq!(RecentSet::new(0).capacity(), 1);
        set.remove("u998");
        assert!(!set.contains("u998") && set.len() == 2);
        assert!(set.insert("u998"));
    }
}
