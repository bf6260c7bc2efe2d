//! IP fragment reassembly of UDP datagrams (IPv4 and IPv6), bounded in every dimension.
//!
//! The original fragments are recorded as they arrive (by the pipeline); this module only
//! rebuilds the datagram so that a synthetic record can hold the whole UDP datagram (a large
//! SIP INVITE, typically).
//!
//! Bounds (per capture thread, [`ReasmLimits`]): `datagrams_max` datagrams in flight, each at
//! most `frags_max` fragments and 65,535 bytes; `bytes_max` fragment payload bytes held in
//! all; a datagram incomplete after `timeout_ns` is dropped. Memory: `datagrams_max` slots,
//! each with a buffer that grows to the largest datagram it held (at most 64 KiB + 48 bytes of
//! synthetic headers) and `frags_max` (offset, length) pairs: with the defaults (256 slots,
//! 64 fragments) at most about 16.1 MiB per thread, usually far less; buffers are reused, so
//! after warm-up no fragment allocates. Every drop is counted by cause.

use std::net::IpAddr;

use crate::config::ReasmLimits;
use crate::stats::{Counters, Field};

/// What a fragment header says (parsed by [`parse_fragment`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragView {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4: 16-bit id; IPv6: 32-bit id.
    pub id: u32,
    pub offset_bytes: u32,
    pub more: bool,
    /// Fragment payload: `frame[payload_start..payload_end]`.
    pub payload_start: usize,
    pub payload_end: usize,
}

const IPPROTO_UDP: u8 = 17;

/// Parses the IP header at `l3` of `frame` as a fragment of a UDP datagram. `None` when it is
/// not one (or is malformed).
pub fn parse_fragment(frame: &[u8], l3: usize) -> Option<FragView> {
    let ip = frame.get(l3..)?;
    match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < 20 || ip.len() < ihl {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if total < ihl || total > ip.len() {
                return None;
            }
            let ff = u16::from_be_bytes([ip[6], ip[7]]);
            let more = ff & 0x2000 != 0;
            let offset_bytes = u32::from(ff & 0x1fff) * 8;
            if ip[9] != IPPROTO_UDP || (!more && offset_bytes == 0) {
                return None;
            }
            let src: [u8; 4] = ip[12..16].try_into().ok()?;
            let dst: [u8; 4] = ip[16..20].try_into().ok()?;
            Some(FragView {
                src: IpAddr::from(src),
                dst: IpAddr::from(dst),
                id: u32::from(u16::from_be_bytes([ip[4], ip[5]])),
                offset_bytes,
                more,
                payload_start: l3 + ihl,
                payload_end: l3 + total,
            })
        }
        6 => {
            if ip.len() < 40 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let end = 40 + plen;
            if end > ip.len() {
                return None;
            }
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            let mut next = ip[6];
            let mut off = 40usize;
            for _ in 0..4 {
                match next {
                    0 | 43 | 60 => {
                        let h = ip.get(off..off + 2)?;
                        next = h[0];
                        off += (usize::from(h[1]) + 1) * 8;
                    }
                    44 => {
                        let h = ip.get(off..off + 8)?;
                        if h[0] != IPPROTO_UDP {
                            return None;
                        }
                        let fo = u16::from_be_bytes([h[2], h[3]]);
                        let more = fo & 1 != 0;
                        let offset_bytes = u32::from(fo & 0xfff8);
                        if !more && offset_bytes == 0 {
                            return None;
                        }
                        let start = off + 8;
                        if start > end {
                            return None;
                        }
                        return Some(FragView {
                            src: IpAddr::from(src),
                            dst: IpAddr::from(dst),
                            id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                            offset_bytes,
                            more,
                            payload_start: l3 + start,
                            payload_end: l3 + end,
                        });
                    }
                    _ => return None,
                }
            }
            None
        }
        _ => None,
    }
}

/// Largest reassembled UDP datagram (IPv4 total length limit less a 20-byte header).
pub const DATAGRAM_BYTES_MAX: usize = 65535 - 20;
const SYNTH_HEADER_MAX: usize = 14 + 40;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
}

struct Slot {
    used: bool,
    key: Key,
    first_ns: u64,
    /// (offset, length) of the fragments held.
    frags: Vec<(u32, u32)>,
    data: Vec<u8>,
    total: Option<u32>,
    held: usize,
    macs: [u8; 12],
}

/// Outcome of [`Reassembler::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Push<'a> {
    /// More fragments needed (or a duplicate).
    Pending,
    /// The datagram is complete: a synthetic Ethernet + IP + UDP frame holding all of it.
    Complete(&'a [u8]),
    /// The datagram was dropped (the cause is counted).
    Dropped,
}

pub struct Reassembler {
    slots: Vec<Slot>,
    limits: ReasmLimits,
    bytes_held: usize,
    out: Vec<u8>,
}

impl Reassembler {
    pub fn new(limits: ReasmLimits) -> Reassembler {
        let unspecified = IpAddr::from([0u8; 4]);
        let slots = (0..limits.datagrams_max)
            .map(|_| Slot {
                used: false,
                key: Key {
                    src: unspecified,
                    dst: unspecified,
                    id: 0,
                },
                first_ns: 0,
                frags: Vec::with_capacity(limits.frags_max),
                data: Vec::new(),
                total: None,
                held: 0,
                macs: [0; 12],
            })
            .collect();
        Reassembler {
            slots,
            limits,
            bytes_held: 0,
            out: Vec::with_capacity(SYNTH_HEADER_MAX + DATAGRAM_BYTES_MAX),
        }
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }

    pub fn bytes_held(&self) -> usize {
        self.bytes_held
    }

    fn free(&mut self, i: usize) {
        let s = &mut self.slots[i];
        self.bytes_held -= s.held;
        s.used = false;
        s.held = 0;
        s.total = None;
        s.frags.clear();
        s.data.clear();
    }

    /// Drops datagrams older than the timeout (counted).
    pub fn expire(&mut self, now_ns: u64, c: &mut Counters) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.used && now_ns.saturating_sub(s.first_ns) > self.limits.timeout_ns {
                c.add(Field::ReasmTimeout, 1);
                self.free(i);
            }
        }
    }

    /// Adds one fragment. `frame` is the whole frame the fragment came in (its first 12 bytes,
    /// the MAC addresses, are reused for the synthetic frame).
    pub fn push(&mut self, now_ns: u64, frame: &[u8], f: &FragView, c: &mut Counters) -> Push<'_> {
        let Some(payload) = frame.get(f.payload_start..f.payload_end) else {
            c.add(Field::ReasmBad, 1);
            return Push::Dropped;
        };
        let key = Key {
            src: f.src,
            dst: f.dst,
            id: f.id,
        };
        let idx = match self.slots.iter().position(|s| s.used && s.key == key) {
            Some(i) => i,
            None => {
                if self.slots.iter().all(|s| s.used) {
                    self.expire(now_ns, c);
                }
                let Some(i) = self.slots.iter().position(|s| !s.used) else {
                    c.add(Field::ReasmDropTable, 1);
                    return Push::Dropped;
                };
                let s = &mut self.slots[i];
                s.used = true;
                s.key = key;
                s.first_ns = now_ns;
                s.macs = [0; 12];
                i
            }
        };
        let off = f.offset_bytes as usize;
        let len = payload.len();
        let end = off + len;
        // Non-last fragments carry a multiple of 8 bytes; a datagram cannot exceed 64 KiB.
        if end > DATAGRAM_BYTES_MAX || (f.more && len % 8 != 0) || len == 0 {
            c.add(Field::ReasmBad, 1);
            self.free(idx);
            return Push::Dropped;
        }
        let s = &self.slots[idx];
        if s.frags.contains(&(off as u32, len as u32)) {
            return Push::Pending; // an exact duplicate (retransmitted or mirrored twice)
        }
        if s.frags
            .iter()
            .any(|&(o, l)| (off as u32) < o + l && o < end as u32)
            || (!f.more && s.total.is_some())
            || s.total.is_some_and(|t| end as u32 > t)
            || (!f.more && s.frags.iter().any(|&(o, l)| o + l > end as u32))
        {
            c.add(Field::ReasmBad, 1);
            self.free(idx);
            return Push::Dropped;
        }
        if s.frags.len() >= self.limits.frags_max {
            c.add(Field::ReasmDropFrags, 1);
            self.free(idx);
            return Push::Dropped;
        }
        if self.bytes_held + len > self.limits.bytes_max {
            c.add(Field::ReasmDropBytes, 1);
            self.free(idx);
            return Push::Dropped;
        }
        self.bytes_held += len;
        let s = &mut self.slots[idx];
        s.held += len;
        s.frags.push((off as u32, len as u32));
        if s.data.len() < end {
            s.data.resize(end, 0);
        }
        s.data[off..end].copy_from_slice(payload);
        if !f.more {
            s.total = Some(end as u32);
        }
        if off == 0 || s.macs == [0; 12] {
            if let Some(m) = frame.get(..12) {
                s.macs.copy_from_slice(m);
            }
        }
        let Some(total) = s.total else {
            return Push::Pending;
        };
        let have: u64 = s.frags.iter().map(|&(_, l)| u64::from(l)).sum();
        if have != u64::from(total) {
            return Push::Pending;
        }
        // Complete (no overlaps were admitted, so the lengths summing up means no holes).
        self.out.clear();
        let s = &self.slots[idx];
        let dlen = total as usize;
        self.out.extend_from_slice(&s.macs);
        match (s.key.src, s.key.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                self.out.extend_from_slice(&[0x08, 0x00]);
                let tl = (20 + dlen) as u16;
                let mut h = [0u8; 20];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&tl.to_be_bytes());
                h[4..6].copy_from_slice(&(s.key.id as u16).to_be_bytes());
                h[8] = 64;
                h[9] = IPPROTO_UDP;
                h[12..16].copy_from_slice(&src.octets());
                h[16..20].copy_from_slice(&dst.octets());
                let sum = ipv4_checksum(&h);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
                self.out.extend_from_slice(&h);
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                self.out.extend_from_slice(&[0x86, 0xdd]);
                let mut h = [0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&(dlen as u16).to_be_bytes());
                h[6] = IPPROTO_UDP;
                h[7] = 64;
                h[8..24].copy_from_slice(&src.octets());
                h[24..40].copy_from_slice(&dst.octets());
                self.out.extend_from_slice(&h);
            }
            _ => {
                c.add(Field::SynthErrors, 1);
                self.free(idx);
                return Push::Dropped;
            }
        }
        let data_start = self.out.len();
        self.out.extend_from_slice(&self.slots[idx].data[..dlen]);
        debug_assert_eq!(self.out.len(), data_start + dlen);
        self.free(idx);
        c.add(Field::Reassembled, 1);
        Push::Complete(&self.out)
    }
}

fn ipv4_checksum(h: &[u8; 20]) -> u16 {
    let mut sum: u32 = 0;
    for i in (0..20).step_by(2) {
        sum += u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds IPv4 fragments (Ethernet framed) of a UDP datagram `udp` with fragment payload
    /// size `chunk` (a multiple of 8).
    pub(crate) fn v4_fragments(udp: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut off = 0;
        while off < udp.len() {
            let end = (off + chunk).min(udp.len());
            let more = end < udp.len();
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&id.to_be_bytes());
            let ff = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&ff.to_be_bytes());
            h[8] = 64;
            h[9] = 17;
            h[12..16].copy_from_slice(&[198, 51, 100, 1]);
            h[16..20].copy_from_slice(&[198, 51, 100, 2]);
            let s = ipv4_checksum(&h);
            h[10..12].copy_from_slice(&s.to_be_bytes());
            f.extend_from_slice(&h);
            f.extend_from_slice(&udp[off..end]);
            out.push(f);
            off = end;
        }
        out
    }

    fn udp_datagram(n: usize) -> Vec<u8> {
        let mut u = vec![0x13, 0xc4, 0x13, 0xc4];
        u.extend_from_slice(&((n + 8) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend((0..n).map(|i| b'A' + (i % 26) as u8));
        u
    }

    #[test]
    fn reassembles_in_any_order() {
        let udp = udp_datagram(3000);
        let mut frags = v4_fragments(&udp, 1480, 7);
        frags.reverse();
        let mut r = Reassembler::new(ReasmLimits::default());
        let mut c = Counters::default();
        let mut done = None;
        for f in &frags {
            let v = parse_fragment(f, 14).unwrap();
            if let Push::Complete(out) = r.push(1, f, &v, &mut c) {
                done = Some(out.to_vec());
            }
        }
        let out = done.expect("complete");
        assert_eq!(&out[34..], &udp[..]);
        assert_eq!(
            u16::from_be_bytes([out[16], out[17]]) as usize,
            20 + udp.len()
        );
        assert_eq!(ipv4_checksum(out[14..34].try_into().unwrap()), 0);
        assert_eq!(c.get(Field::Reassembled), 1);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.bytes_held(), 0);
    }

    #[test]
    fn drops_are_counted() {
        let udp = udp_datagram(3000);
        let frags = v4_fragments(&udp, 1480, 9);
        let mut r = Reassembler::new(ReasmLimits {
            timeout_ns: 10,
            ..Default::default()
        });
        let mut c = Counters::default();
        let v = parse_fragment(&frags[0], 14).unwrap();
        assert_eq!(r.push(0, &frags[0], &v, &mut c), Push::Pending);
        assert_eq!(r.push(0, &frags[0], &v, &mut c), Push::Pending); // duplicate
        r.expire(100, &mut c);
        assert_eq!(c.get(Field::ReasmTimeout), 1);
        assert_eq!(r.in_flight(), 0);

        // Table full.
        let mut r = Reassembler::new(ReasmLimits {
            datagrams_max: 1,
            ..Default::default()
        });
        let other = v4_fragments(&udp, 1480, 10);
        let v0 = parse_fragment(&frags[0], 14).unwrap();
        let v1 = parse_fragment(&other[0], 14).unwrap();
        assert_eq!(r.push(0, &frags[0], &v0, &mut c), Push::Pending);
        assert_eq!(r.push(0, &other[0], &v1, &mut c), Push::Dropped);
        assert_eq!(c.get(Field::ReasmDropTable), 1);

        // Too many fragments.
        let mut r = Reassembler::new(ReasmLimits {
            frags_max: 2,
            ..Default::default()
        });
        let small = v4_fragments(&udp, 512, 11);
        let mut dropped = false;
        for f in &small {
            let v = parse_fragment(f, 14).unwrap();
            dropped |= r.push(0, f, &v, &mut c) == Push::Dropped;
        }
        assert!(dropped);
        assert!(c.get(Field::ReasmDropFrags) >= 1);

        // Overlap.
        let mut r = Reassembler::new(ReasmLimits::default());
        let a = v4_fragments(&udp, 1480, 12);
        let b = v4_fragments(&udp, 1024, 12);
        let va = parse_fragment(&a[0], 14).unwrap();
        let vb = parse_fragment(&b[1], 14).unwrap();
        assert_eq!(r.push(0, &a[0], &va, &mut c), Push::Pending);
        assert_eq!(r.push(0, &b[1], &vb, &mut c), Push::Dropped);
        assert_eq!(c.get(Field::ReasmBad), 1);
    }

    #[test]
    fn non_fragments_are_not_parsed_as_fragments() {
        let udp = udp_datagram(100);
        let frags = v4_fragments(&udp, 1480, 1);
        assert_eq!(frags.len(), 1);
        assert!(parse_fragment(&frags[0], 14).is_none());
        assert!(parse_fragment(&[0x45], 0).is_none());
        assert!(parse_fragment(&[], 5).is_none());
    }
}
