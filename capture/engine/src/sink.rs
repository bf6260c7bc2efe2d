//! [`RecordSink`] over the segment writer (`xdprec_segment::SegmentWriter`).

use xdprec_segment::{
    AppendError, RecordMeta, RtpMeta, SegmentWriter, StreamKey, WriterConfig,
    RECORD_FLAG_REASSEMBLED,
};

use crate::config::{CaptureConfig, QueuePlan};
use crate::pipeline::{Rec, RecordSink, SinkGauges, SinkResult};

/// A segment writer as the pipeline's sink.
pub struct SegmentSink {
    w: SegmentWriter,
    tick_errors: u64,
}

impl SegmentSink {
    pub fn new(w: SegmentWriter) -> Self {
        SegmentSink { w, tick_errors: 0 }
    }

    /// Opens the writer of one queue (recovering an unsealed segment a killed capture left).
    pub fn open(cfg: &CaptureConfig, iface: &str, queue: u32) -> Result<Self, String> {
        let wc = WriterConfig {
            dir: cfg.store.clone(),
            recorder: cfg.recorder.clone(),
            iface: iface.to_string(),
            queue,
            segment_bytes_max: cfg.segment_bytes_max,
            seal_after_ns: cfg.seal_after_ns,
            streams_max: cfg.streams_max,
            compress_sealed: cfg.compress_sealed,
            spares: cfg.spare_segments,
        };
        let t0 = std::time::Instant::now();
        let w = SegmentWriter::open(wc).map_err(|e| e.to_string())?;
        // Making the files takes long where memory is fresh (0.3-0.5 GB/s on this project's
        // VMs); fewer ready than asked means the first rotations may find none.
        let (ready, want) = (w.spares_ready(), u64::from(cfg.spare_segments) + 1);
        let ms = t0.elapsed().as_millis();
        if ready < want {
            log::warn!("{iface} q{queue}: {ready} of {want} segment files ready after {ms} ms");
        } else {
            log::info!("{iface} q{queue}: {want} segment files ready in {ms} ms");
        }
        let st = w.stats();
        if st.recovered > 0 {
            log::info!(
                "{iface} q{queue}: recovered {} unsealed segment(s) with {} record(s)",
                st.recovered,
                st.recovered_records
            );
        }
        Ok(SegmentSink::new(w))
    }

    /// For [`crate::live::run_live`]'s `make_sink`.
    pub fn for_plan(cfg: &CaptureConfig, qp: &QueuePlan) -> Result<Self, String> {
        Self::open(cfg, &qp.iface, qp.queue)
    }

    pub fn writer(&self) -> &SegmentWriter {
        &self.w
    }
}

fn stream_key(k: &crate::pipeline::KeyParts) -> StreamKey {
    StreamKey {
        proto: k.proto,
        src: k.src,
        dst: k.dst,
        src_port: k.src_port,
        dst_port: k.dst_port,
        ssrc: k.ssrc,
    }
}

impl RecordSink for SegmentSink {
    #[inline]
    fn prefetch(&mut self, key: &crate::pipeline::KeyParts) {
        self.w.prefetch_stream(&stream_key(key));
    }

    #[inline]
    fn append(&mut self, rec: &Rec, frame: &[u8], now_ns: u64) -> SinkResult {
        let key = rec.key.as_ref().map(stream_key);
        let meta = RecordMeta {
            ts_ns: rec.ts_ns,
            wire_len: rec.wire_len,
            class: rec.class,
            flags: if rec.reassembled {
                RECORD_FLAG_REASSEMBLED
            } else {
                0
            },
            key: key.as_ref(),
            rtp: rec.rtp.map(|r| RtpMeta {
                ssrc: r.ssrc,
                seq: r.seq,
                timestamp: r.timestamp,
                payload_type: r.payload_type,
            }),
        };
        match self.w.append(&meta, frame, now_ns) {
            Ok(_) => SinkResult::Written,
            Err(AppendError::DiskFull) => SinkResult::DiskFull,
            Err(AppendError::TooLarge { .. }) => SinkResult::TooLong,
            Err(AppendError::Unavailable) => SinkResult::Failed,
        }
    }

    fn tick(&mut self, now_ns: u64) {
        if let Err(e) = self.w.tick(now_ns) {
            self.tick_errors += 1;
            log::warn!("segment writer: {e}");
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        self.w.seal().map_err(|e| e.to_string())
    }

    fn gauges(&self) -> SinkGauges {
        let s = self.w.stats();
        SinkGauges {
            active_streams: s.active_streams,
            seals: s.seals,
            segments_opened: s.segments_opened,
            spare_misses: s.spare_misses,
            seal_queue_waits: s.seal_queue_waits,
            seals_in_place: s.seals_in_place,
            seal_max_ns: s.seal_max_ns,
        }
    }
}
