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
            spool: cfg.spool == crate::config::Spool::Ram,
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

    /// Prepares `STORE/spool/` for `queues` writers when the configuration asks for a spool in
    /// memory (`--spool ram`): mounts a tmpfs there unless one is, sized for the most files a
    /// writer can hold ([`SegmentWriter::files_max`]; memory is only used by files that exist:
    /// `spare_segments + 1` of them normally, more only while seals fall behind). Returns
    /// whether it mounted one (then [`Self::release_spool`] unmounts it after a clean exit).
    /// A tmpfs already there is kept as it is: its files are what a killed capture had not
    /// sealed yet.
    ///
    /// It mounts only in the mount namespace of PID 1: in a private one (`ip netns exec`
    /// makes one) the mount, and every unsealed segment in it, would vanish with the process,
    /// so there it asks for a tmpfs mounted from outside instead.
    pub fn prepare_spool(cfg: &CaptureConfig, queues: usize) -> Result<bool, String> {
        if cfg.spool != crate::config::Spool::Ram {
            return Ok(false);
        }
        let dir = xdprec_segment::spool_dir(&cfg.store);
        let err = |op: &str, e: std::io::Error| format!("spool {}: {op}: {e}", dir.display());
        std::fs::create_dir_all(&dir).map_err(|e| err("mkdir", e))?;
        let segment = cfg.segment_bytes_max.div_ceil(4096) * 4096;
        let want = (queues as u64)
            .saturating_mul(SegmentWriter::files_max(cfg.spare_segments))
            .saturating_mul(segment);
        if let Some(size) = crate::sys::tmpfs_size(&dir).map_err(|e| err("statfs", e))? {
            if size < want {
                log::warn!(
                    "spool {} is a tmpfs of {} MiB, less than the {} MiB {queues} writer(s) may use",
                    dir.display(),
                    size >> 20,
                    want >> 20
                );
            } else {
                log::info!("spool {}: tmpfs of {} MiB", dir.display(), size >> 20);
            }
            return Ok(false);
        }
        let mount_cmd = format!(
            "mount -t tmpfs -o size={}m tmpfs {}",
            want.div_ceil(1 << 20),
            dir.display()
        );
        let ns = |p: &str| std::fs::read_link(p).map_err(|e| format!("{p}: {e}"));
        match (ns("/proc/self/ns/mnt"), ns("/proc/1/ns/mnt")) {
            (Ok(own), Ok(init)) if own == init => {}
            (Ok(_), Ok(_)) => {
                return Err(format!(
                    "--spool ram: {} is not a tmpfs, and this process runs in a private mount \
                     namespace (e.g. under `ip netns exec`), where a tmpfs it mounted would \
                     vanish with it, unsealed segments included; mount one from outside \
                     first: {mount_cmd}",
                    dir.display()
                ));
            }
            (Err(e), _) | (_, Err(e)) => {
                return Err(format!(
                    "--spool ram: {} is not a tmpfs, and whether a tmpfs mounted by this \
                     process would outlive it cannot be told ({e}); mount one first: {mount_cmd}",
                    dir.display()
                ));
            }
        }
        if std::fs::read_dir(&dir).map_or(0, |rd| rd.count()) > 0 {
            // Mounting would hide them.
            return Err(format!(
                "--spool ram: {} is not a tmpfs and not empty; move its files away, or mount \
                 a tmpfs there ({mount_cmd})",
                dir.display()
            ));
        }
        crate::sys::mount_tmpfs(&dir, want).map_err(|e| {
            err(
                "mount -t tmpfs",
                std::io::Error::new(
                    e.kind(),
                    format!("{e} (needs root; or mount it yourself: {mount_cmd})"),
                ),
            )
        })?;
        log::info!(
            "spool {}: mounted a tmpfs of {} MiB",
            dir.display(),
            want >> 20
        );
        Ok(true)
    }

    /// After a clean exit: unmounts the spool's tmpfs that [`Self::prepare_spool`] mounted
    /// (`mounted`), when nothing is left in it (every segment sealed into `segments/`, the
    /// spares removed), so that a stopped capture leaves no mount behind. Anything left (a
    /// segment whose seal failed) keeps it mounted for the next start's recovery.
    pub fn release_spool(cfg: &CaptureConfig, mounted: bool) {
        if !mounted {
            return;
        }
        let dir = xdprec_segment::spool_dir(&cfg.store);
        let left = std::fs::read_dir(&dir).map_or(0, |rd| rd.count());
        if left > 0 {
            log::warn!(
                "spool {}: {left} file(s) left (unsealed or not moved): kept mounted for the next start",
                dir.display()
            );
            return;
        }
        match crate::sys::unmount(&dir) {
            Ok(()) => log::info!("spool {}: empty, unmounted", dir.display()),
            Err(e) => log::warn!("spool {}: umount: {e}", dir.display()),
        }
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
