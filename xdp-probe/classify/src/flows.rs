//! The user-space twin of the probe's `xdprec_tcp_sip` LRU hash: TCP flows seen carrying SIP.
//!
//! Fixed capacity, allocated once at construction (no allocation per packet): a hash map from
//! [`FlowKey`] to a slot, and the slots on an intrusive doubly linked list in recency order.
//! When full, inserting evicts the least recently used flow; the caller counts evictions
//! (`tcp_flow_full`), which the kernel's LRU map cannot report.

use crate::abi::FlowKey;
use std::collections::HashMap;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: FlowKey,
    prev: u32,
    next: u32,
}

#[derive(Debug)]
pub(crate) struct FlowTable {
    map: HashMap<FlowKey, u32>,
    slots: Vec<Slot>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    capacity: usize,
}

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    New,
    Refreshed,
    Evicted,
    /// Capacity 0: nothing is kept.
    Dropped,
}

impl FlowTable {
    pub(crate) fn new(capacity: usize) -> Self {
        // Slot indexes are u32 with NIL reserved.
        let capacity = capacity.min(NIL as usize - 1);
        FlowTable {
            map: HashMap::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.slots.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    fn unlink(&mut self, i: u32) {
        let Some(s) = self.slots.get(i as usize).copied() else {
            return;
        };
        match self.slots.get_mut(s.prev as usize) {
            Some(p) => p.next = s.next,
            None => self.head = s.next,
        }
        match self.slots.get_mut(s.next as usize) {
            Some(n) => n.prev = s.prev,
            None => self.tail = s.prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = old;
        }
        match self.slots.get_mut(old as usize) {
            Some(h) => h.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    /// Looks a flow up; a hit makes it the most recently used.
    pub(crate) fn touch(&mut self, key: &FlowKey) -> bool {
        let Some(&i) = self.map.get(key) else {
            return false;
        };
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
        true
    }

    pub(crate) fn insert(&mut self, key: FlowKey) -> Inserted {
        if self.touch(&key) {
            return Inserted::Refreshed;
        }
        if self.capacity == 0 {
            return Inserted::Dropped;
        }
        if self.slots.len() < self.capacity {
            let i = self.slots.len() as u32;
            self.slots.push(Slot {
                key,
                prev: NIL,
                next: NIL,
            });
            self.map.insert(key, i);
            self.push_front(i);
            return Inserted::New;
        }
        // Full: reuse the least recently used slot.
        let i = self.tail;
        self.unlink(i);
        if let Some(s) = self.slots.get_mut(i as usize) {
            let old = s.key;
            s.key = key;
            self.map.remove(&old);
        }
        self.map.insert(key, i);
        self.push_front(i);
        Inserted::Evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> FlowKey {
        FlowKey {
            addr_a: [n; 16],
            addr_b: [0; 16],
            port_a: 1,
            port_b: 2,
            _pad: 0,
        }
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut t = FlowTable::new(2);
        assert_eq!(t.insert(key(1)), Inserted::New);
        assert_eq!(t.insert(key(2)), Inserted::New);
        assert!(t.touch(&key(1))); // 2 is now the oldest
        assert_eq!(t.insert(key(3)), Inserted::Evicted);
        assert!(t.touch(&key(1)));
        assert!(!t.touch(&key(2)));
        assert!(t.touch(&key(3)));
        assert_eq!(t.insert(key(3)), Inserted::Refreshed);
        assert_eq!(t.len(), 2);
        t.clear();
        assert!(!t.touch(&key(1)));
        assert_eq!(t.insert(key(4)), Inserted::New);
    }

    #[test]
    fn capacity_one_and_zero() {
        let mut t = FlowTable::new(1);
        assert_eq!(t.insert(key(1)), Inserted::New);
        assert_eq!(t.insert(key(2)), Inserted::Evicted);
        assert!(!t.touch(&key(1)));
        assert!(t.touch(&key(2)));
        let mut z = FlowTable::new(0);
        assert_eq!(z.insert(key(1)), Inserted::Dropped);
        assert!(!z.touch(&key(1)));
    }

    #[test]
    fn many_inserts_keep_the_newest() {
        let mut t = FlowTable::new(16);
        for n in 0..=255u8 {
            t.insert(key(n));
        }
        assert_eq!(t.len(), 16);
        for n in 240..=255u8 {
            assert!(t.touch(&key(n)), "{n}");
        }
        assert!(!t.touch(&key(239)));
    }
}
