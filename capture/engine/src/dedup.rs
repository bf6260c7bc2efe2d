//! Duplicate packets within one recorder: the same IP packet seen twice (both directions of a
//! SPAN port, the same traffic mirrored to two NICs or queues) is stored once and counted.
//!
//! ## Identity
//!
//! [`fingerprint`] hashes the *inner* IP packet (the classifier's `l3_offset`, so an ERSPAN or
//! VXLAN copy matches a plain one) without the fields a mirror or a router between two mirror
//! points may change: the IPv4 TTL and header checksum, the IPv6 hop limit. Everything else
//! counts: addresses, IPv4 id and fragment fields, IPv6 flow label, the L4 header and the
//! payload, up to the declared IP length (Ethernet padding is ignored). The hash is SipHash-1-3
//! with fixed keys (`std`'s `DefaultHasher::new()`), the same in every thread.
//!
//! A copy is a duplicate only within a time window (`--dedup-window-ms`, default 50 ms; 0
//! turns deduplication off): a SIP retransmission (500 ms and later, new IP id from most
//! stacks) or an identical packet minutes later is kept. Time is the frame's capture time
//! (live: the batch's wall clock; import: the pcap timestamp), cut into buckets of one window.
//! A copy matches an entry of its own bucket or of the neighbouring ones, so copies less than
//! one window apart are always matched and copies up to two windows apart may be.
//!
//! ## The table
//!
//! One [`DedupTable`] per capture process, shared by every capture thread (the two copies of
//! a packet seen on two NICs land on two threads): `entries` x `AtomicU64`, allocated once at
//! start (1<<20 entries = 8 MiB by default), no lock, no allocation per packet. A slot holds
//! the 48 high bits of the fingerprint (the tag) and the 16 low bits of the bucket number; 0
//! is an empty slot. A packet looks at [`PROBES`] slots from `fingerprint mod entries`: a live
//! entry (same or neighbouring bucket) with its tag is a duplicate; otherwise it is inserted
//! with compare-exchange into an empty slot, else an expired one, else over the oldest live
//! entry. When two threads race for the same slot the loser re-reads it and finds the
//! winner's entry: the second copy of a packet processed at the same instant on two threads is
//! still caught. After two lost races the packet is stored without an entry.
//!
//! **False positives.** A packet is wrongly dropped only when one of the [`PROBES`] slots it
//! looks at holds a live entry with the same 48-bit tag: at most 4 x 2^-48 = 1.4e-14 per
//! packet, one wrong drop in about 2 years at 10 Mpps. Bucket numbers wrap after 2^16 windows
//! (55 min at 50 ms): an entry that survives that long untouched could match an identical
//! packet exactly one wrap later, which needs an identical packet *and* an idle table.
//!
//! **Table full.** When all [`PROBES`] slots hold live entries, the oldest is overwritten
//! (counted `dedup_evicted`): a later copy of that packet is then stored again. Size the table
//! for at least 4 x packet rate x 2 windows (1<<20 entries: ~1.3 Mpps at 50 ms with little
//! eviction); `dedup_evicted` rising says it is too small.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots looked at per packet.
pub const PROBES: usize = 4;
const BUCKET_MASK: u64 = 0xffff;
const TAG_MASK: u64 = !BUCKET_MASK;

/// What the table says about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedupVerdict {
    /// First copy in the window: store it.
    Unique,
    /// First copy, but remembering it overwrote a live entry (table full): store it.
    UniqueEvicted,
    /// A copy of a packet seen within the window: do not store it.
    Duplicate,
}

/// The shared, fixed-size duplicate table (module docs).
pub struct DedupTable {
    slots: Box<[AtomicU64]>,
    mask: usize,
    window_ns: u64,
}

impl std::fmt::Debug for DedupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupTable")
            .field("entries", &self.slots.len())
            .field("window_ns", &self.window_ns)
            .finish()
    }
}

impl DedupTable {
    /// `entries` is rounded up to a power of two (at least 1024); `window_ns` at least 1.
    pub fn new(entries: usize, window_ns: u64) -> DedupTable {
        let n = entries.clamp(1024, 1 << 28).next_power_of_two();
        DedupTable {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
            window_ns: window_ns.max(1),
        }
    }

    pub fn entries(&self) -> usize {
        self.slots.len()
    }

    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// Bytes the table occupies.
    pub fn bytes(&self) -> usize {
        self.slots.len() * 8
    }

    /// Looks `fp` up for capture time `ts_ns` and remembers it when it is new.
    #[inline]
    pub fn check_insert(&self, fp: u64, ts_ns: u64) -> DedupVerdict {
        let bucket = (ts_ns / self.window_ns) & BUCKET_MASK;
        let mut tag = fp & TAG_MASK;
        if tag == 0 {
            // 0 marks an empty slot; fold the one tag that could produce it.
            tag = 1 << 16;
        }
        let new = tag | bucket;
        let home = fp as usize;
        for _ in 0..2 {
            // Victim: (slot, value seen, priority, evicts a live entry).
            let mut victim = (home & self.mask, 0u64, 0u8, false);
            let mut have_victim = false;
            for i in 0..PROBES {
                let idx = home.wrapping_add(i) & self.mask;
                let v = self.slots[idx].load(Ordering::Acquire);
                let (prio, live) = if v == 0 {
                    (4, false)
                } else {
                    let age = bucket.wrapping_sub(v & BUCKET_MASK) & BUCKET_MASK;
                    match age {
                        0 | BUCKET_MASK => {
                            if v & TAG_MASK == tag {
                                return DedupVerdict::Duplicate;
                            }
                            (1, true)
                        }
                        1 => {
                            if v & TAG_MASK == tag {
                                return DedupVerdict::Duplicate;
                            }
                            (2, true)
                        }
                        _ => (3, false),
                    }
                };
                if !have_victim || prio > victim.2 {
                    victim = (idx, v, prio, live);
                    have_victim = true;
                }
            }
            let (idx, old, _, live) = victim;
            match self.slots[idx].compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return if live {
                        DedupVerdict::UniqueEvicted
                    } else {
                        DedupVerdict::Unique
                    };
                }
                Err(cur) => {
                    let age = bucket.wrapping_sub(cur & BUCKET_MASK) & BUCKET_MASK;
                    if cur & TAG_MASK == tag && (age <= 1 || age == BUCKET_MASK) {
                        return DedupVerdict::Duplicate;
                    }
                }
            }
        }
        DedupVerdict::Unique
    }
}

/// The identity of the IP packet at `l3` in `frame` (module docs), or `None` when there is
/// no well-formed IPv4/IPv6 header there (such frames are never deduplicated).
#[inline]
pub fn fingerprint(frame: &[u8], l3: usize) -> Option<u64> {
    let ip = frame.get(l3..)?;
    let first = *ip.first()?;
    let mut h = std::hash::DefaultHasher::new();
    match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 || ip.len() < ihl {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if total < ihl {
                return None;
            }
            let end = total.min(ip.len());
            h.write(&ip[0..8]);
            h.write_u8(ip[9]);
            h.write(&ip[12..end]);
        }
        6 => {
            if ip.len() < 40 {
                return None;
            }
            let end = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
            h.write(&ip[0..7]);
            h.write(&ip[8..end]);
        }
        _ => return None,
    }
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 50_000_000;

    fn v4(ttl: u8, id: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 8;
        let total = (20 + 8 + payload.len()) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[8] = ttl;
        ip[9] = 17;
        ip[10] = ttl ^ 0x5a; // a checksum that differs with the TTL
        ip[12..16].copy_from_slice(&[198, 51, 100, 1]);
        ip[16..20].copy_from_slice(&[203, 0, 113, 2]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x27, 0x10, 0x27, 0x12]);
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn identity_ignores_ttl_checksum_and_padding_only() {
        let a = v4(64, 7, b"hello");
        let mut b = v4(63, 7, b"hello");
        b[..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]); // another MAC: not part of the identity
        b.extend_from_slice(&[0; 12]); // Ethernet padding
        assert_eq!(fingerprint(&a, 14), fingerprint(&b, 14));
        assert_ne!(fingerprint(&a, 14), fingerprint(&v4(64, 8, b"hello"), 14));
        assert_ne!(fingerprint(&a, 14), fingerprint(&v4(64, 7, b"hellp"), 14));
        assert!(fingerprint(&a, 0).is_none(), "no IP at offset 0");
        assert!(fingerprint(&a[..20], 14).is_none(), "truncated header");
        let mut v6 = vec![0u8; 14];
        v6.extend_from_slice(&[0x60, 0, 0, 1, 0, 4, 17, 64]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6.extend_from_slice(&[0; 28]);
        v6.extend_from_slice(b"abcd");
        let mut v6b = v6.clone();
        v6b[14 + 7] = 3; // hop limit
        assert_eq!(fingerprint(&v6, 14), fingerprint(&v6b, 14));
        v6b[14 + 3] = 2; // flow label
        assert_ne!(fingerprint(&v6, 14), fingerprint(&v6b, 14));
    }

    #[test]
    fn copies_within_the_window_are_duplicates() {
        let t = DedupTable::new(1024, W);
        let base = 1_000 * W;
        assert_eq!(t.check_insert(42, base), DedupVerdict::Unique);
        assert_eq!(t.check_insert(42, base + 1), DedupVerdict::Duplicate);
        // Across a bucket boundary, less than one window apart.
        assert_eq!(t.check_insert(99, base + W - 1), DedupVerdict::Unique);
        assert_eq!(t.check_insert(99, base + W + 10), DedupVerdict::Duplicate);
        // A copy slightly *earlier* (another thread's batch clock) matches too.
        assert_eq!(t.check_insert(7, base + W), DedupVerdict::Unique);
        assert_eq!(t.check_insert(7, base + W - 5), DedupVerdict::Duplicate);
        // Two windows and more later: a new packet.
        assert_eq!(t.check_insert(42, base + 2 * W + 1), DedupVerdict::Unique);
        assert_eq!(t.check_insert(42, base + 10 * W), DedupVerdict::Unique);
    }

    #[test]
    fn different_fingerprints_in_one_home_slot_coexist() {
        let t = DedupTable::new(1024, W);
        // Same low bits (same home), different tags.
        let fps: Vec<u64> = (1..=PROBES as u64).map(|i| (i << 40) | 5).collect();
        for fp in &fps {
            assert_eq!(t.check_insert(*fp, 0), DedupVerdict::Unique);
        }
        for fp in &fps {
            assert_eq!(t.check_insert(*fp, 1), DedupVerdict::Duplicate);
        }
        // One more than the probe window: the oldest live entry is evicted (counted).
        assert_eq!(t.check_insert(9 << 40 | 5, 2), DedupVerdict::UniqueEvicted);
        let still: usize = fps
            .iter()
            .filter(|fp| t.check_insert(**fp, 3) == DedupVerdict::Duplicate)
            .count();
        assert_eq!(still, PROBES - 1);
    }

    #[test]
    fn expired_entries_are_reused_without_eviction() {
        let t = DedupTable::new(1024, W);
        for i in 1..=PROBES as u64 {
            t.check_insert((i << 40) | 3, 0);
        }
        assert_eq!(t.check_insert((77 << 40) | 3, 5 * W), DedupVerdict::Unique);
    }

    #[test]
    fn two_threads_inserting_the_same_packets_store_each_once() {
        let t = std::sync::Arc::new(DedupTable::new(1 << 16, W));
        let n = 20_000u64;
        let run = |t: std::sync::Arc<DedupTable>| {
            std::thread::spawn(move || {
                let mut unique = 0u64;
                for i in 0..n {
                    let fp = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    if t.check_insert(fp, W * 100) != DedupVerdict::Duplicate {
                        unique += 1;
                    }
                }
                unique
            })
        };
        let a = run(t.clone());
        let b = run(t.clone());
        let total = a.join().unwrap() + b.join().unwrap();
        assert_eq!(
            total, n,
            "every packet stored exactly once over both threads"
        );
    }
}
