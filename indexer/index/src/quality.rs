//! RTP stream quality: loss, duplicates, reordering, RFC 3550 jitter, RFC 4733 events, MOS.
//!
//! The tracker is fed packets in arrival order and its whole state is serialisable, so the
//! indexer can store it with the stream and resume after a restart.
//!
//! - *lost* = expected − (received − duplicates), with expected = highest extended sequence
//!   number − first + 1 (RFC 3550 A.3), never negative.
//! - *duplicates*: a sequence number seen within the last [`SEQ_WINDOW`] numbers.
//! - *out of order*: a packet older than the highest sequence number seen (not a duplicate).
//! - *jitter*: RFC 3550 §6.4.1, J += (|D| − J)/16 with D the change in transit time, in RTP
//!   timestamp units converted to ms with the payload's clock rate (8000 Hz unless SDP says
//!   otherwise). Packets of another payload type (events, comfort noise) are left out, as tshark does.
//!
//! ## MOS (G.711 only)
//! Simplified ITU-T G.107 E-model, as used by most VoIP monitors:
//! `d = one-way delay ms` (taken as `jitter_ms * 2 + 20` ms of buffer, plus 0 ms network, since one
//! capture point cannot see delay), `Id = 0.024 d + 0.11 (d − 177.3) H(d − 177.3)`,
//! `Ie_eff = Ie + (95 − Ie) · Ppl / (Ppl + Bpl)` with Ie = 0, Bpl = 4.3 (PCMU) / 25.1 with PLC; we use
//! Bpl = 10 (G.113 Appendix I, G.711 without PLC is 4.3, with PLC 25.1; 10 is a middle value),
//! `Ppl` = loss percent, `R = 93.2 − Id − Ie_eff`, and
//! `MOS = 1 + 0.035 R + 7e−6 R (R − 60)(100 − R)` clamped to [1, 4.5] (R ≤ 0 gives 1).
//! Inputs: lost, packets, jitter_ms. Other codecs get no MOS (None).

use serde::{Deserialize, Serialize};

/// Sequence numbers remembered for duplicate detection.
pub const SEQ_WINDOW: u16 = 512;
/// Distinct payload types remembered per stream.
pub const PAYLOAD_TYPES_MAX: usize = 8;
/// RFC 4733 events remembered per stream.
pub const DTMF_EVENTS_MAX: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RtpTracker {
    pub packets: u64,
    pub bytes: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    first_ext: Option<u64>,
    max_ext: u64,
    /// Bitmap of the last SEQ_WINDOW sequence numbers below max (bit i = max - i seen).
    seen: Vec<u64>,
    main_pt: Option<u8>,
    last_transit: Option<f64>,
    jitter_units: f64,
    pub max_jitter_ms: f64,
    pub payload_types: Vec<u8>,
    /// (event code, RTP timestamp) of each RFC 4733 event seen once.
    pub dtmf: Vec<(u8, u32)>,
    pub clock_hz: u32,
    /// RTP timestamps of the packets with the lowest and the highest extended sequence
    /// number (2N and failover matching compare them across recorders). `default`: trackers
    /// stored before these fields existed still load.
    #[serde(default)]
    first_ts: Option<u32>,
    #[serde(default)]
    max_ts: u32,
}

/// One RTP packet's fields as the tracker needs them.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    pub seq: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub arrival_ns: u64,
    pub payload: &'a [u8],
    pub len: usize,
}

/// Reads the RTP fixed header; None when `buf` is not RTP version 2 or is too short.
pub fn parse_rtp(buf: &[u8], arrival_ns: u64) -> Option<(u32, RtpPacket<'_>)> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    let cc = (buf[0] & 0x0f) as usize;
    let ext = buf[0] & 0x10 != 0;
    let mut off = 12 + cc * 4;
    if ext {
        let h = buf.get(off..off + 4)?;
        off += 4 + u16::from_be_bytes([h[2], h[3]]) as usize * 4;
    }
    let payload = buf.get(off..).unwrap_or(&[]);
    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    Some((
        ssrc,
        RtpPacket {
            seq: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            payload_type: buf[1] & 0x7f,
            arrival_ns,
            payload,
            len: buf.len(),
        },
    ))
}

/// True for an RTCP packet (version 2, packet type 200..=207).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (200..=207).contains(&buf[1])
}

impl RtpTracker {
    pub fn new(clock_hz: u32) -> Self {
        RtpTracker {
            clock_hz: clock_hz.max(1),
            ..Default::default()
        }
    }

    fn extend(&self, seq: u16) -> u64 {
        // Closest extended number to the current maximum.
        let max = self.max_ext;
        let base = max & !0xffff;
        let cands = [
            base.wrapping_sub(0x10000) | seq as u64,
            base | seq as u64,
            (base + 0x10000) | seq as u64,
        ];
        *cands
            .iter()
            .filter(|c| **c < (1u64 << 62))
            .min_by_key(|c| c.abs_diff(max))
            .unwrap_or(&(seq as u64))
    }

    /// Feeds one packet; `event_pt` is the RFC 4733 payload type from SDP when known.
    pub fn push(&mut self, p: &RtpPacket<'_>, event_pt: Option<u8>) {
        self.packets += 1;
        self.bytes += p.len as u64;
        if !self.payload_types.contains(&p.payload_type)
            && self.payload_types.len() < PAYLOAD_TYPES_MAX
        {
            self.payload_types.push(p.payload_type);
        }
        if self.seen.is_empty() {
            self.seen = vec![0; SEQ_WINDOW as usize / 64];
        }
        match self.first_ext {
            None => {
                let e = 0x10000 | p.seq as u64; // room below for reordered first packets
                self.first_ext = Some(e);
                self.max_ext = e;
                self.first_ts = Some(p.timestamp);
                self.max_ts = p.timestamp;
                self.set_seen(0);
            }
            Some(first) => {
                let e = self.extend(p.seq);
                if e > self.max_ext {
                    let shift = e - self.max_ext;
                    self.shift_seen(shift);
                    self.max_ext = e;
                    self.max_ts = p.timestamp;
                    self.set_seen(0);
                } else {
                    let back = self.max_ext - e;
                    if back < SEQ_WINDOW as u64 && self.is_seen(back) {
                        self.duplicates += 1;
                        return;
                    }
                    if back < SEQ_WINDOW as u64 {
                        self.set_seen(back);
                    }
                    self.out_of_order += 1;
                    if e < first {
                        self.first_ext = Some(e);
                        self.first_ts = Some(p.timestamp);
                    }
                }
            }
        }
        let is_event = event_pt == Some(p.payload_type)
            || (event_pt.is_none() && p.payload_type == 101 && p.payload.len() == 4);
        if is_event {
            if let Some(&code) = p.payload.first() {
                if code <= 16
                    && !self
                        .dtmf
                        .iter()
                        .any(|&(c, ts)| c == code && ts == p.timestamp)
                    && self.dtmf.len() < DTMF_EVENTS_MAX
                {
                    self.dtmf.push((code, p.timestamp));
                }
            }
            return;
        }
        let main = *self.main_pt.get_or_insert(p.payload_type);
        if main != p.payload_type || p.payload_type == 13 {
            return;
        }
        let arrival = p.arrival_ns as f64 * self.clock_hz as f64 / 1e9;
        let transit = arrival - p.timestamp as f64;
        if let Some(last) = self.last_transit {
            let mut d = (transit - last).abs();
            // Timestamp wrap: transit jumps by 2^32.
            if d > 2f64.powi(31) {
                d = (d - 2f64.powi(32)).abs();
            }
            self.jitter_units += (d - self.jitter_units) / 16.0;
            self.max_jitter_ms = self.max_jitter_ms.max(self.jitter_ms());
        }
        self.last_transit = Some(transit);
    }

    fn set_seen(&mut self, back: u64) {
        if let Some(w) = self.seen.get_mut((back / 64) as usize) {
            *w |= 1 << (back % 64);
        }
    }
    fn is_seen(&self, back: u64) -> bool {
        self.seen
            .get((back / 64) as usize)
            .is_some_and(|w| w & (1 << (back % 64)) != 0)
    }
    fn shift_seen(&mut self, shift: u64) {
        let n = self.seen.len();
        if shift >= (n * 64) as u64 {
            self.seen.iter_mut().for_each(|w| *w = 0);
            return;
        }
        let words = (shift / 64) as usize;
        let bits = (shift % 64) as u32;
        for i in (0..n).rev() {
            let src = i.checked_sub(words);
            let hi = src.map(|s| self.seen[s]).unwrap_or(0);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .map(|s| self.seen[s])
                .unwrap_or(0);
            self.seen[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }

    /// Current RFC 3550 interarrival jitter in ms.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_units * 1000.0 / self.clock_hz.max(1) as f64
    }

    /// Packets expected from the sequence range.
    pub fn expected(&self) -> u64 {
        self.first_ext.map(|f| self.max_ext - f + 1).unwrap_or(0)
    }

    /// (first, highest) sequence number seen, in the 16-bit RTP space.
    pub fn seq_bounds(&self) -> Option<(u16, u16)> {
        self.first_ext
            .map(|f| ((f & 0xffff) as u16, (self.max_ext & 0xffff) as u16))
    }

    /// RTP timestamps of the first and the highest sequence number (None for trackers stored
    /// before they were kept).
    pub fn ts_bounds(&self) -> Option<(u32, u32)> {
        self.first_ts.map(|f| (f, self.max_ts))
    }

    /// Lost packets (sequence gaps), never negative.
    pub fn lost(&self) -> u64 {
        self.expected()
            .saturating_sub(self.packets - self.duplicates)
    }

    /// The payload type of the media (first non-event one).
    pub fn main_payload_type(&self) -> Option<u8> {
        self.main_pt.or_else(|| self.payload_types.first().copied())
    }
}

/// E-model R-factor for G.711 (see the module doc).
pub fn r_factor(lost: u64, packets: u64, jitter_ms: f64) -> f64 {
    let total = lost + packets;
    let ppl = if total == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / total as f64
    };
    let d = jitter_ms * 2.0 + 20.0;
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ie_eff = 95.0 * ppl / (ppl + 10.0);
    93.2 - id - ie_eff
}

/// MOS from an R-factor (ITU-T G.107 Annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        return 1.0;
    }
    let r = r.min(100.0);
    (1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32, ns: u64) -> RtpPacket<'static> {
        RtpPacket {
            seq,
            timestamp: ts,
            payload_type: 0,
            arrival_ns: ns,
            payload: &[0; 160],
            len: 172,
        }
    }

    #[test]
    fn loss_dups_reorder() {
        let mut t = RtpTracker::new(8000);
        for (i, s) in [1u16, 2, 4, 3, 3, 6].iter().enumerate() {
            t.push(&pkt(*s, *s as u32 * 160, i as u64 * 20_000_000), None);
        }
        assert_eq!(t.packets, 6);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.out_of_order, 1);
        assert_eq!(t.lost(), 1); // 5
    }

    #[test]
    fn wrap_and_jitter() {
        let mut t = RtpTracker::new(8000);
        for i in 0..100u32 {
            let seq = (65500u32 + i) as u16;
            // 1 ms of alternating delay gives a steady jitter near 1 ms.
            let ns = i as u64 * 20_000_000 + if i % 2 == 1 { 1_000_000 } else { 0 };
            t.push(&pkt(seq, i * 160, ns), None);
        }
        assert_eq!(t.lost(), 0);
        assert_eq!(t.expected(), 100);
        assert!((t.jitter_ms() - 1.0).abs() < 0.2, "{}", t.jitter_ms());
    }

    #[test]
    fn mos_range() {
        assert!(mos_from_r(r_factor(0, 1000, 0.0)) > 4.3);
        assert!(mos_from_r(r_factor(100, 900, 30.0)) < 3.5);
        assert_eq!(mos_from_r(-5.0), 1.0);
    }
}
