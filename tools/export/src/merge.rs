//! 2N merge: two (or more) recorders' copies of one call merged packet by packet, each copy's
//! gaps filled from the other, so the result is better than either copy. It also assembles a
//! failover call (parts recorded by different recorders) into one, since the union of the
//! parts in time order is the same operation.
//!
//! Identity of a packet across recorders cannot be the frame bytes (each capture point may see
//! other VLAN tags or tunnel headers), so it is taken from the inner packet:
//! - RTP: 5-tuple + SSRC + sequence number + RTP timestamp (the timestamp tells a wrapped
//!   sequence number apart on long calls);
//! - everything else (SIP, RTCP, fragments): 5-tuple + the L4 payload bytes (SIP "by content").
//!
//! The copy kept is the earliest by capture time (ties: recorder name order), so the result is
//! deterministic.

use crate::pcap::Frame;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use xdprec_classify::{rtp_header, Class, Classifier, ProbeConfig};

/// What a merge took from whom.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Frames kept, by recorder.
    pub kept_by_recorder: BTreeMap<String, u64>,
    /// Frames dropped because another recorder's copy was kept.
    pub duplicates: u64,
}

#[derive(PartialEq, Eq, Hash)]
enum Identity {
    Rtp {
        tuple: u64,
        ssrc: u32,
        seq: u16,
        ts: u32,
    },
    Content {
        tuple: u64,
        payload: u64,
    },
}

fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

fn identity(classifier: &mut Classifier, frame: &[u8]) -> Identity {
    let c = classifier.classify(frame);
    let tuple = c
        .tuple
        .map(|t| hash_of(&(t.src, t.dst, t.proto, t.src_port, t.dst_port)))
        .or_else(|| {
            c.frag
                .map(|f| hash_of(&(f.src, f.dst, f.proto, f.id, f.offset_bytes)))
        })
        .unwrap_or(0);
    let payload = frame.get(c.payload.clone()).unwrap_or(frame);
    if c.class == Class::Rtp {
        if let Some(h) = rtp_header(payload) {
            return Identity::Rtp {
                tuple,
                ssrc: h.ssrc,
                seq: h.seq,
                ts: h.timestamp,
            };
        }
    }
    // Fragments and unparsed frames: the whole frame is the content.
    let content = if c.tuple.is_some() { payload } else { frame };
    Identity::Content {
        tuple,
        payload: hash_of(content),
    }
}

/// Merges copies: `frames` from any number of recorders, in any order.
pub fn merge(mut frames: Vec<Frame>) -> (Vec<Frame>, MergeReport) {
    frames.sort_by(|a, b| (a.ts_ns, &a.recorder).cmp(&(b.ts_ns, &b.recorder)));
    let mut classifier = Classifier::new(ProbeConfig::default());
    let mut seen: HashSet<Identity> = HashSet::with_capacity(frames.len());
    let mut report = MergeReport::default();
    let mut out = Vec::with_capacity(frames.len());
    for f in frames {
        if seen.insert(identity(&mut classifier, &f.data)) {
            *report
                .kept_by_recorder
                .entry(f.recorder.clone())
                .or_default() += 1;
            out.push(f);
        } else {
            report.duplicates += 1;
        }
    }
    (out, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn rtp_frame(vlan: Option<u16>, seq: u16) -> Vec<u8> {
        let mut rtp = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
        rtp[2..4].copy_from_slice(&seq.to_be_bytes());
        rtp[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        rtp.extend_from_slice(&[0xff; 160]);
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let (src, dst) = ([198, 51, 100, 1], [203, 0, 113, 1]);
        let mut out = Vec::new();
        match vlan {
            Some(id) => eth
                .single_vlan(id.try_into().unwrap())
                .ipv4(src, dst, 64)
                .udp(40000, 50000)
                .write(&mut out, &rtp)
                .unwrap(),
            None => eth
                .ipv4(src, dst, 64)
                .udp(40000, 50000)
                .write(&mut out, &rtp)
                .unwrap(),
        }
        out
    }

    fn frame(rec: &str, ts: u64, data: Vec<u8>) -> Frame {
        Frame {
            ts_ns: ts,
            wire_len: data.len() as u32,
            data,
            recorder: rec.into(),
        }
    }

    #[test]
    fn copies_fill_each_others_gaps() {
        // Recorder a lost seq 3, recorder b lost seq 1 and sees the traffic with a VLAN tag.
        let mut frames = Vec::new();
        for seq in [1u16, 2, 4] {
            frames.push(frame("a", u64::from(seq) * 20, rtp_frame(None, seq)));
        }
        for seq in [2u16, 3, 4] {
            frames.push(frame("b", u64::from(seq) * 20 + 1, rtp_frame(Some(7), seq)));
        }
        let (out, report) = merge(frames);
        assert_eq!(out.len(), 4, "seq 1..4 once each");
        assert_eq!(report.duplicates, 2);
        assert_eq!(report.kept_by_recorder["a"], 3);
        assert_eq!(report.kept_by_recorder["b"], 1);
        assert!(out.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }
}
