//! SIP over TCP: per-flow byte-stream reassembly and message framing (RFC 3261 §18.3:
//! header block, then Content-Length bytes of body).
//!
//! Retransmitted or overlapping segments are trimmed to the bytes not yet seen; segments that
//! arrive early wait in a small per-flow queue ([`PENDING_MAX`]); a gap that does not fill is
//! skipped (counted in `gaps`) and framing resynchronises on the next SIP start line. Buffers are
//! bounded ([`FLOW_BYTES_MAX`], [`FLOWS_MAX`] flows, least recently used flow evicted and counted).
//! The whole state is serialisable so it survives an indexer restart with the index.

use crate::sipmsg::{content_length, head_end, looks_like_sip};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FLOW_BYTES_MAX: usize = 256 * 1024;
pub const PENDING_MAX: usize = 32;
pub const FLOWS_MAX: usize = 4096;

/// Where the first byte of a message came from: (segment id, record offset, time ns).
pub type Origin = (i64, u64, i64);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Flow {
    next_seq: Option<u32>,
    buf: Vec<u8>,
    /// Origin of each byte run in `buf`: (start index in buf, origin).
    origins: Vec<(usize, Origin)>,
    pending: BTreeMap<u32, (Vec<u8>, Origin)>,
    last_use: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct TcpCounters {
    pub retransmitted_bytes: u64,
    pub gaps: u64,
    pub garbage_bytes: u64,
    pub overflows: u64,
    pub flows_evicted: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct TcpReassembler {
    pub flows: BTreeMap<String, Flow>,
    pub counters: TcpCounters,
    clock: u64,
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl TcpReassembler {
    /// Feeds one TCP segment of flow `key`; returns the complete SIP messages it finishes.
    pub fn push(
        &mut self,
        key: &str,
        seq: u32,
        syn: bool,
        data: &[u8],
        origin: Origin,
    ) -> Vec<(Vec<u8>, Origin)> {
        self.clock += 1;
        if !self.flows.contains_key(key) && self.flows.len() >= FLOWS_MAX {
            if let Some(old) = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last_use)
                .map(|(k, _)| k.clone())
            {
                self.flows.remove(&old);
                self.counters.flows_evicted += 1;
            }
        }
        let clock = self.clock;
        let flow = self.flows.entry(key.to_string()).or_default();
        flow.last_use = clock;
        let seq = if syn { seq.wrapping_add(1) } else { seq };
        if data.is_empty() {
            if flow.next_seq.is_none() && syn {
                flow.next_seq = Some(seq);
            }
            return Vec::new();
        }
        let next = *flow.next_seq.get_or_insert(seq);
        let c = &mut self.counters;
        if seq_lt(seq, next) {
            let skip = next.wrapping_sub(seq) as usize;
            if skip >= data.len() {
                c.retransmitted_bytes += data.len() as u64;
                return Vec::new();
            }
            c.retransmitted_bytes += skip as u64;
            append(flow, &data[skip..], origin, c);
        } else if seq == next {
            append(flow, data, origin, c);
        } else {
            if flow.pending.len() >= PENDING_MAX {
                // The gap is not filling: skip it.
                c.gaps += 1;
                flow.buf.clear();
                flow.origins.clear();
                let first = *flow.pending.keys().next().unwrap_or(&seq);
                flow.next_seq = Some(first);
            } else {
                flow.pending.insert(seq, (data.to_vec(), origin));
                return Vec::new();
            }
        }
        // Drain pending segments that now fit.
        loop {
            let next = flow.next_seq.unwrap_or(0);
            let Some((&s, _)) = flow.pending.iter().find(|(s, _)| !seq_lt(next, **s)) else {
                break;
            };
            let (d, o) = flow.pending.remove(&s).unwrap_or_default();
            let skip = next.wrapping_sub(s) as usize;
            if skip < d.len() {
                append(flow, &d[skip..], o, c);
            } else {
                c.retransmitted_bytes += d.len() as u64;
            }
        }
        frame(flow, c)
    }
}

impl TcpReassembler {
    /// Feeds bytes known to be in order (SCTP DATA chunks of one association and stream).
    pub fn push_in_order(
        &mut self,
        key: &str,
        data: &[u8],
        origin: Origin,
    ) -> Vec<(Vec<u8>, Origin)> {
        let next = self.flows.get(key).and_then(|f| f.next_seq).unwrap_or(0);
        self.push(key, next, false, data, origin)
    }
}

fn append(flow: &mut Flow, data: &[u8], origin: Origin, c: &mut TcpCounters) {
    flow.next_seq = Some(flow.next_seq.unwrap_or(0).wrapping_add(data.len() as u32));
    if flow.buf.len() + data.len() > FLOW_BYTES_MAX {
        c.overflows += 1;
        flow.buf.clear();
        flow.origins.clear();
    }
    flow.origins.push((flow.buf.len(), origin));
    flow.buf.extend_from_slice(data);
}

fn consume(flow: &mut Flow, n: usize) {
    let n = n.min(flow.buf.len());
    flow.buf.drain(..n);
    let last_before = flow.origins.iter().rev().find(|(s, _)| *s <= n).copied();
    flow.origins.retain(|(s, _)| *s > n);
    for (s, _) in flow.origins.iter_mut() {
        *s -= n;
    }
    if let Some((_, o)) = last_before {
        if !flow.buf.is_empty() && flow.origins.first().map(|(s, _)| *s) != Some(0) {
            flow.origins.insert(0, (0, o));
        }
    }
}

fn frame(flow: &mut Flow, c: &mut TcpCounters) -> Vec<(Vec<u8>, Origin)> {
    let mut out = Vec::new();
    loop {
        let lead = flow
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if lead > 0 {
            consume(flow, lead);
        }
        if flow.buf.is_empty() {
            break;
        }
        if !looks_like_sip(&flow.buf) {
            if flow.buf.len() < 16 && b"SIP/2.0 ".starts_with(&flow.buf[..flow.buf.len().min(8)]) {
                break; // a start line still arriving
            }
            // Resynchronise on the next line that starts a SIP message.
            let skip = (1..flow.buf.len())
                .find(|&i| flow.buf[i - 1] == b'\n' && looks_like_sip(&flow.buf[i..]))
                .unwrap_or_else(|| {
                    flow.buf
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map(|p| p + 1)
                        .unwrap_or(flow.buf.len())
                });
            c.garbage_bytes += skip as u64;
            consume(flow, skip);
            continue;
        }
        let Some(he) = head_end(&flow.buf) else { break };
        let cl = content_length(&flow.buf[..he]).unwrap_or(0);
        if cl > FLOW_BYTES_MAX {
            c.garbage_bytes += he as u64;
            consume(flow, he);
            continue;
        }
        let total = he + cl;
        if flow.buf.len() < total {
            break;
        }
        let origin = flow.origins.first().map(|(_, o)| *o).unwrap_or((0, 0, 0));
        out.push((flow.buf[..total].to_vec(), origin));
        consume(flow, total);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 4\r\n\r\nabcd";

    #[test]
    fn split_retransmitted_and_several() {
        let mut r = TcpReassembler::default();
        let mut all = MSG.to_vec();
        all.extend_from_slice(MSG);
        let (a, b) = all.split_at(20);
        assert!(r.push("f", 100, false, a, (1, 10, 0)).is_empty());
        assert!(r.push("f", 100, false, a, (1, 11, 0)).is_empty()); // retransmission
        let out = r.push("f", 120, false, b, (1, 12, 0));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, MSG);
        assert_eq!(out[0].1 .1, 10);
        assert_eq!(out[1].1 .1, 12);
        assert_eq!(r.counters.retransmitted_bytes, 20);
    }

    #[test]
    fn out_of_order_and_garbage() {
        let mut r = TcpReassembler::default();
        let mut all = b"junk\r\n".to_vec();
        all.extend_from_slice(MSG);
        let (a, b) = all.split_at(30);
        assert!(r.push("f", 999, true, b"", (1, 0, 0)).is_empty());
        assert!(r.push("f", 1030, false, b, (1, 2, 0)).is_empty());
        let out = r.push("f", 1000, false, a, (1, 1, 0));
        assert_eq!(out.len(), 1);
        assert_eq!(r.counters.garbage_bytes, 6);
    }
}
