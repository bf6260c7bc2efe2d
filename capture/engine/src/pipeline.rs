//! The per-thread pipeline shared by live capture and pcap import:
//! classify → stream key (+ RTP meta) → segment append, plus fragment reassembly.
//!
//! One [`Pipeline`] per thread; nothing in it is shared, locked, allocated or logged per
//! packet. Counting rule: every frame handed to [`Pipeline::process`] increases `rx_packets`
//! and ends in exactly one of `written`, `class_other`, `dup_dropped`, `disk_full`,
//! `write_errors` (synthetic reassembled records are counted in `reassembled` and, when stored,
//! `written`). Class counters (`class_sip`, ...) count a frame before deduplication.
//!
//! Deduplication ([`crate::dedup`], optional): a captured frame whose inner IP packet was seen
//! within the window (by any thread sharing the table) is counted `dup_dropped` and neither
//! stored nor reassembled.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use xdprec_classify::Class;

use crate::config::ReasmLimits;
use crate::dedup::{fingerprint, DedupTable, DedupVerdict};
use crate::reasm::{parse_fragment, Push, Reassembler};
use crate::stats::{CoreStats, Counters, Field};

/// Flow identity of a record (the segment's stream key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyParts {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// RTP: the SSRC (one stream per SSRC); `None` otherwise.
    pub ssrc: Option<u32>,
}

/// RTP header fields of an RTP record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpParts {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub payload_type: u8,
}

/// What the classifier says about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub class: Class,
    /// Offset of the (inner, classified) IP header.
    pub l3_offset: usize,
    pub key: Option<KeyParts>,
    pub rtp: Option<RtpParts>,
}

/// Classifies frames (Ethernet framed). Implemented over `xdprec_classify::Classifier`.
pub trait FrameClassifier {
    fn classify(&mut self, frame: &[u8]) -> Verdict;
}

/// [`FrameClassifier`] over the user-space mirror of the probe (`xdprec_classify`).
pub struct ProbeClassifier {
    inner: xdprec_classify::Classifier,
}

impl ProbeClassifier {
    pub fn new(inner: xdprec_classify::Classifier) -> Self {
        ProbeClassifier { inner }
    }
}

impl FrameClassifier for ProbeClassifier {
    #[inline]
    fn classify(&mut self, frame: &[u8]) -> Verdict {
        let c = self.inner.classify(frame);
        let rtp = if c.class == Class::Rtp {
            frame
                .get(c.payload.clone())
                .and_then(xdprec_classify::rtp_header)
                .map(|h| RtpParts {
                    ssrc: h.ssrc,
                    seq: h.seq,
                    timestamp: h.timestamp,
                    payload_type: h.payload_type,
                })
        } else {
            None
        };
        let key = c.tuple.map(|t| KeyParts {
            proto: t.proto,
            src: t.src,
            dst: t.dst,
            src_port: t.src_port,
            dst_port: t.dst_port,
            ssrc: rtp.map(|r| r.ssrc),
        });
        Verdict {
            class: c.class,
            l3_offset: c.l3_offset.unwrap_or(0),
            key,
            rtp,
        }
    }
}

/// One record to append.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    pub ts_ns: u64,
    pub wire_len: u32,
    pub class: Class,
    pub reassembled: bool,
    pub key: Option<KeyParts>,
    pub rtp: Option<RtpParts>,
}

/// Result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkResult {
    Written,
    DiskFull,
    Failed,
    /// The frame is longer than a record holds.
    TooLong,
}

/// Writer-side gauges, read once a second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkGauges {
    pub active_streams: u64,
    pub seals: u64,
    pub segments_opened: u64,
    pub spare_misses: u64,
    pub seal_queue_waits: u64,
    pub seals_in_place: u64,
    pub seal_max_ns: u64,
}

/// Where records go. Implemented over `xdprec_segment::SegmentWriter`.
pub trait RecordSink {
    fn append(&mut self, rec: &Rec, frame: &[u8], now_ns: u64) -> SinkResult;
    /// Time passes (seal by age).
    fn tick(&mut self, now_ns: u64);
    /// Seals what is open (at shutdown).
    fn finish(&mut self) -> Result<(), String>;
    fn gauges(&self) -> SinkGauges;
    /// A record of this stream is to be appended soon: start loading what its append will
    /// look up. A hint; the default does nothing.
    #[inline]
    fn prefetch(&mut self, _key: &KeyParts) {}
}

/// Frames [`Pipeline::process_chunk`] classifies before it appends the first of them.
pub const CHUNK: usize = 16;

/// The pipeline of one thread.
pub struct Pipeline<C, S> {
    pub classifier: C,
    pub sink: S,
    reasm: Reassembler,
    pub counters: Counters,
    hist: Histogram<u64>,
    last_housekeeping_ns: u64,
    ring_fill_max: u64,
    loop_gap_max_ns: u64,
    disk_full_logged: u64,
    errors_logged: u64,
    name: String,
    dedup: Option<Arc<DedupTable>>,
}

impl<C: FrameClassifier, S: RecordSink> Pipeline<C, S> {
    /// `name` identifies the thread in log lines (e.g. "eth1 q0").
    pub fn new(classifier: C, sink: S, limits: ReasmLimits, name: String) -> Self {
        Pipeline {
            classifier,
            sink,
            reasm: Reassembler::new(limits),
            counters: Counters::default(),
            // 1 ns .. 60 s, 2 significant digits: a few KiB.
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 2)
                .expect("constant histogram bounds are valid"),
            last_housekeeping_ns: 0,
            ring_fill_max: 0,
            loop_gap_max_ns: 0,
            disk_full_logged: 0,
            errors_logged: 0,
            name,
            dedup: None,
        }
    }

    /// Deduplicates captured frames through `table` (shared with the other threads).
    pub fn with_dedup(mut self, table: Option<Arc<DedupTable>>) -> Self {
        self.dedup = table;
        self
    }

    /// Processes one frame: count, classify, append, reassemble.
    #[inline]
    pub fn process(&mut self, frame: &[u8], wire_len: u32, ts_ns: u64, now_ns: u64) {
        let v = self.classifier.classify(frame);
        self.process_classified(frame, v, wire_len, ts_ns, now_ns);
    }

    /// Processes frames (each its own wire length) like [`Self::process`], [`CHUNK`] at a
    /// time in two passes: classify them and let the sink prefetch their streams, then append
    /// them. The stream table lookup of each append otherwise waits for a cache miss: with
    /// thousands of streams interleaved (every G.711 call sends 50 packets a second per
    /// direction) the next packet's stream is never the last one's.
    pub fn process_chunk(&mut self, frames: &[&[u8]], ts_ns: u64, now_ns: u64) {
        for chunk in frames.chunks(CHUNK) {
            let mut verdicts = [None; CHUNK];
            for (v, f) in verdicts.iter_mut().zip(chunk) {
                let c = self.classifier.classify(f);
                if let Some(k) = &c.key {
                    self.sink.prefetch(k);
                }
                *v = Some(c);
            }
            for (v, f) in verdicts.iter().zip(chunk) {
                if let Some(v) = v {
                    self.process_classified(f, *v, f.len() as u32, ts_ns, now_ns);
                }
            }
        }
    }

    fn process_classified(
        &mut self,
        frame: &[u8],
        v: Verdict,
        wire_len: u32,
        ts_ns: u64,
        now_ns: u64,
    ) {
        let c = &mut self.counters;
        c.add(Field::RxPackets, 1);
        c.add(Field::RxBytes, u64::from(wire_len));
        let field = match v.class {
            Class::Sip => Field::ClassSip,
            Class::Rtp => Field::ClassRtp,
            Class::Rtcp => Field::ClassRtcp,
            Class::Frag => Field::ClassFrag,
            Class::Other | Class::Unknown(_) => {
                c.add(Field::ClassOther, 1);
                return;
            }
        };
        c.add(field, 1);
        if let Some(t) = &self.dedup {
            if let Some(fp) = fingerprint(frame, v.l3_offset) {
                match t.check_insert(fp, ts_ns) {
                    DedupVerdict::Unique => {}
                    DedupVerdict::UniqueEvicted => c.add(Field::DedupEvicted, 1),
                    DedupVerdict::Duplicate => {
                        c.add(Field::DupDropped, 1);
                        return;
                    }
                }
            }
        }
        let rec = Rec {
            ts_ns,
            wire_len,
            class: v.class,
            reassembled: false,
            key: v.key,
            rtp: v.rtp,
        };
        let r = self.sink.append(&rec, frame, now_ns);
        count_append(&mut self.counters, r, frame.len());
        if v.class == Class::Frag {
            self.fragment(frame, v.l3_offset, ts_ns, now_ns);
        }
    }

    fn fragment(&mut self, frame: &[u8], l3: usize, ts_ns: u64, now_ns: u64) {
        let Some(fv) = parse_fragment(frame, l3) else {
            self.counters.add(Field::ReasmBad, 1);
            return;
        };
        // Reassembly time is capture time, so imports and live capture behave alike.
        let Push::Complete(datagram) = self.reasm.push(ts_ns, frame, &fv, &mut self.counters)
        else {
            return;
        };
        let v = self.classifier.classify(datagram);
        if !v.class.is_captured() || v.class == Class::Frag {
            self.counters.add(Field::ReasmNotCaptured, 1);
            return;
        }
        let rec = Rec {
            ts_ns,
            wire_len: datagram.len() as u32,
            class: v.class,
            reassembled: true,
            key: v.key,
            rtp: v.rtp,
        };
        let r = self.sink.append(&rec, datagram, now_ns);
        count_append(&mut self.counters, r, datagram.len());
    }

    /// Counts a frame that is not classified at all (no IP in it): `class_other`.
    pub fn count_other(&mut self, wire_len: u32) {
        self.counters.add(Field::RxPackets, 1);
        self.counters.add(Field::RxBytes, u64::from(wire_len));
        self.counters.add(Field::ClassOther, 1);
    }

    /// Sets a counter the pipeline does not own (AF_XDP socket statistics).
    pub fn set_counter(&mut self, f: Field, v: u64) {
        self.counters.set(f, v);
    }

    /// The counters and the sink, consuming the pipeline.
    pub fn into_parts(self) -> (Counters, S) {
        (self.counters, self.sink)
    }

    /// Records the rx ring occupancy seen at a batch start.
    #[inline]
    pub fn note_ring_fill(&mut self, entries: u64) {
        self.ring_fill_max = self.ring_fill_max.max(entries);
    }

    /// Records the time since the thread last looked at its ring (see
    /// [`Field::MaxLoopGapNs`]).
    #[inline]
    pub fn note_loop_gap(&mut self, gap: std::time::Duration) {
        let ns = gap.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.loop_gap_max_ns = self.loop_gap_max_ns.max(ns);
    }

    /// Records the time one batch took (classify + write).
    #[inline]
    pub fn note_batch(&mut self, started: Instant) {
        let ns = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.hist.saturating_record(ns.max(1));
        self.counters.add(Field::Batches, 1);
    }

    /// Once a second or so: ages reassembly, ticks the writer, computes the gauges, logs
    /// (rate-limited) what could not be written. Returns true when it ran.
    pub fn housekeeping(&mut self, now_ns: u64, ts_ns: u64) -> bool {
        if now_ns.saturating_sub(self.last_housekeeping_ns) < 1_000_000_000 {
            return false;
        }
        self.last_housekeeping_ns = now_ns;
        self.reasm.expire(ts_ns, &mut self.counters);
        self.sink.tick(now_ns);
        self.update_gauges();
        let full = self.counters.get(Field::DiskFull);
        if full != self.disk_full_logged {
            log::error!(
                "{}: store full: {} record(s) not written so far (capture goes on)",
                self.name,
                full
            );
            self.disk_full_logged = full;
        }
        let errs = self.counters.get(Field::WriteErrors);
        if errs != self.errors_logged {
            log::error!(
                "{}: {} record(s) not written (write errors)",
                self.name,
                errs
            );
            self.errors_logged = errs;
        }
        true
    }

    fn update_gauges(&mut self) {
        let g = self.sink.gauges();
        let c = &mut self.counters;
        c.set(Field::ActiveStreams, g.active_streams);
        c.set(Field::Seals, g.seals);
        c.set(Field::SegmentsOpened, g.segments_opened);
        c.set(Field::SpareMisses, g.spare_misses);
        c.set(Field::SealQueueWaits, g.seal_queue_waits);
        c.set(Field::SealsInPlace, g.seals_in_place);
        c.set(Field::SealMaxMs, g.seal_max_ns / 1_000_000);
        if self.hist.is_empty() {
            c.set(Field::P99WriteNs, 0);
            c.set(Field::MaxWriteNs, 0);
        } else {
            c.set(Field::P99WriteNs, self.hist.value_at_quantile(0.99));
            c.set(Field::MaxWriteNs, self.hist.max());
        }
        self.hist.reset();
        c.set(Field::RingFill, self.ring_fill_max);
        self.ring_fill_max = 0;
        c.set(Field::MaxLoopGapNs, self.loop_gap_max_ns);
        self.loop_gap_max_ns = 0;
    }

    /// Publishes the counters (once per batch).
    #[inline]
    pub fn publish(&self, stats: &CoreStats) {
        stats.publish(&self.counters);
    }

    /// Seals the writer and updates the gauges (shutdown).
    pub fn finish(&mut self) -> Result<(), String> {
        let r = self.sink.finish();
        self.update_gauges();
        r
    }
}

#[inline]
fn count_append(c: &mut Counters, r: SinkResult, len: usize) {
    match r {
        SinkResult::Written => {
            c.add(Field::Written, 1);
            c.add(Field::WrittenBytes, len as u64);
        }
        SinkResult::DiskFull => c.add(Field::DiskFull, 1),
        SinkResult::Failed => c.add(Field::WriteErrors, 1),
        SinkResult::TooLong => {
            c.add(Field::Truncated, 1);
            c.add(Field::WriteErrors, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reasm::tests::v4_fragments;

    /// Classifies by the first payload byte (test stand-in).
    struct ByPort;
    impl FrameClassifier for ByPort {
        fn classify(&mut self, frame: &[u8]) -> Verdict {
            let l3 = 14;
            let class = if frame.len() < 34 {
                Class::Other
            } else if u16::from_be_bytes([frame[20], frame[21]]) & 0x3fff != 0 {
                Class::Frag
            } else if frame.get(34..36) == Some(&[0x13, 0xc4]) {
                Class::Sip
            } else {
                Class::Other
            };
            Verdict {
                class,
                l3_offset: l3,
                key: None,
                rtp: None,
            }
        }
    }

    #[derive(Default)]
    struct VecSink {
        recs: Vec<(Rec, Vec<u8>)>,
        full_after: Option<usize>,
    }
    impl RecordSink for VecSink {
        fn append(&mut self, rec: &Rec, frame: &[u8], _now: u64) -> SinkResult {
            if self.full_after.is_some_and(|n| self.recs.len() >= n) {
                return SinkResult::DiskFull;
            }
            self.recs.push((*rec, frame.to_vec()));
            SinkResult::Written
        }
        fn tick(&mut self, _now: u64) {}
        fn finish(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn gauges(&self) -> SinkGauges {
            SinkGauges::default()
        }
    }

    fn sip_udp(n: usize) -> Vec<u8> {
        let mut u = vec![0x13, 0xc4, 0x13, 0xc4];
        u.extend_from_slice(&((n + 8) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend(std::iter::repeat_n(b'x', n));
        u
    }

    #[test]
    fn fragments_are_kept_and_the_datagram_is_added() {
        let mut p = Pipeline::new(
            ByPort,
            VecSink::default(),
            ReasmLimits::default(),
            "t".into(),
        );
        let udp = sip_udp(4000);
        let frags = v4_fragments(&udp, 1480, 3);
        for (i, f) in frags.iter().enumerate() {
            p.process(f, f.len() as u32, 100 + i as u64, 0);
        }
        let other = vec![0u8; 20];
        p.process(&other, 20, 5, 0);
        let recs = &p.sink.recs;
        assert_eq!(recs.len(), frags.len() + 1);
        for (i, f) in frags.iter().enumerate() {
            assert_eq!(&recs[i].1, f);
            assert_eq!(recs[i].0.class, Class::Frag);
            assert!(!recs[i].0.reassembled);
        }
        let last = &recs[frags.len()];
        assert!(last.0.reassembled);
        assert_eq!(last.0.class, Class::Sip);
        assert_eq!(&last.1[34..], &udp[..]);
        assert_eq!(p.counters.get(Field::RxPackets), frags.len() as u64 + 1);
        assert_eq!(p.counters.get(Field::ClassOther), 1);
        assert_eq!(p.counters.get(Field::Written), frags.len() as u64 + 1);
    }

    #[test]
    fn chunks_are_processed_like_single_frames() {
        // Fragments (reassembled along the way), SIP and short frames, more than two chunks.
        let mut frames = v4_fragments(&sip_udp(4000), 1480, 3);
        let mut sip = vec![0u8; 14];
        sip[12] = 8;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        sip.extend_from_slice(&ip);
        sip.extend_from_slice(&sip_udp(10));
        for i in 0..2 * CHUNK + 3 {
            frames.push(if i % 3 == 0 {
                vec![0u8; 20]
            } else {
                sip.clone()
            });
        }
        let new = || {
            Pipeline::new(
                ByPort,
                VecSink::default(),
                ReasmLimits::default(),
                "t".into(),
            )
        };
        let (mut one, mut many) = (new(), new());
        for f in &frames {
            one.process(f, f.len() as u32, 7, 0);
        }
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        many.process_chunk(&refs, 7, 0);
        let recs = |p: &Pipeline<ByPort, VecSink>| {
            p.sink
                .recs
                .iter()
                .map(|(r, f)| (r.class, r.reassembled, f.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(recs(&many), recs(&one));
        assert!(recs(&one).iter().any(|r| r.1), "a datagram was reassembled");
        for f in Field::ALL {
            assert_eq!(many.counters.get(*f), one.counters.get(*f), "{}", f.label());
        }
    }

    #[test]
    fn disk_full_is_counted_not_fatal() {
        let mut p = Pipeline::new(
            ByPort,
            VecSink {
                full_after: Some(1),
                ..Default::default()
            },
            ReasmLimits::default(),
            "t".into(),
        );
        let mut f = vec![0u8; 14];
        f[12] = 8;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sip_udp(10));
        for _ in 0..3 {
            p.process(&f, f.len() as u32, 1, 0);
        }
        assert_eq!(p.counters.get(Field::Written), 1);
        assert_eq!(p.counters.get(Field::DiskFull), 2);
        assert!(p.housekeeping(2_000_000_000, 2));
    }
}
