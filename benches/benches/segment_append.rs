//! `SegmentWriter::append` of 214-byte G.711 RTP frames, round-robin over 1,000 and 10,000
//! RTP streams (each its own 5-tuple and SSRC), into 64 MiB segments in a temporary store
//! under /tmp: what one capture thread does per received frame after classification.
//!
//! The measured time includes everything `append` does on the data path: the stream table
//! lookup, stream definition records at the start of each segment, the record copy into
//! the mapping (page faults of fresh pages included) and rotation to the preallocated spare
//! when a segment is full. Sealing runs on the writer's own sealer thread, concurrently, as in
//! capture. Between samples (not timed) sealed segments are deleted so the disk use stays
//! bounded. Throughput: frames.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};
use xdprec_benches::{frames, TempDir, RTP_FRAME_BYTES};
use xdprec_segment::{Class, RecordMeta, RtpMeta, SegmentWriter, StreamKey, WriterConfig};

const SEGMENT_BYTES: u64 = 64 << 20;
/// 214-byte frames at 10 GbE line rate arrive every ~190 ns.
const FRAME_GAP_NS: u64 = 190;
const START_NS: u64 = 1_790_000_000_000_000_000;

fn keys(n: u32) -> Vec<StreamKey> {
    (0..n)
        .map(|i| StreamKey {
            proto: 17,
            src: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + (i % 250) as u8)),
            dst: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1 + (i % 250) as u8)),
            src_port: 16384 + 2 * (i / 250) as u16,
            dst_port: 20000 + 2 * (i / 250) as u16,
            ssrc: Some(0x1000_0000 + i),
        })
        .collect()
}

/// Removes sealed (and compressed) segments; the open one and the spare stay.
fn remove_sealed(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".xseg") || name.ends_with(".xseg.zst") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn append(c: &mut Criterion) {
    let frame = frames::rtp_g711();
    assert_eq!(frame.len(), RTP_FRAME_BYTES);
    let mut g = c.benchmark_group("segment_append");
    g.throughput(Throughput::Elements(1));
    for streams in [1_000u32, 10_000] {
        let tmp = match TempDir::new("segment") {
            Ok(t) => t,
            Err(e) => {
                eprintln!("segment_append SKIPPED: cannot create a directory in /tmp: {e}");
                return;
            }
        };
        let mut cfg = WriterConfig::new(tmp.path(), "bench", "bench0", 0);
        cfg.segment_bytes_max = SEGMENT_BYTES;
        cfg.seal_after_ns = 3_600_000_000_000;
        let mut w = match SegmentWriter::open(cfg) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("segment_append SKIPPED: SegmentWriter::open failed: {e}");
                return;
            }
        };
        let seg_dir = w.segments_dir().to_path_buf();
        let keys = keys(streams);
        let mut i: u64 = 0;
        g.bench_with_input(
            BenchmarkId::new("rtp_214B_streams", streams),
            &streams,
            |b, _| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        let s = (i % u64::from(streams)) as usize;
                        let round = i / u64::from(streams);
                        let now = START_NS + i * FRAME_GAP_NS;
                        let meta = RecordMeta {
                            ts_ns: now,
                            wire_len: RTP_FRAME_BYTES as u32,
                            class: Class::Rtp,
                            flags: 0,
                            key: Some(&keys[s]),
                            rtp: Some(RtpMeta {
                                ssrc: 0x1000_0000 + s as u32,
                                seq: round as u16,
                                timestamp: (round as u32).wrapping_mul(160),
                                payload_type: 0,
                            }),
                        };
                        // Errors are counted in the writer's stats, checked below.
                        let _ = w.append(&meta, &frame, now);
                        i += 1;
                    }
                    let took = t0.elapsed();
                    w.flush_sealer();
                    remove_sealed(&seg_dir);
                    took
                })
            },
        );
        let st = w.stats().clone();
        let dropped = st.disk_full_drops + st.too_large_drops + st.unavailable_drops;
        if dropped != 0 || st.stream_table_full != 0 || st.seal_errors != 0 {
            eprintln!(
                "segment_append WARNING ({streams} streams): {dropped} appends refused, \
                 {} untracked (table full), {} seal errors; last error: {:?}",
                st.stream_table_full, st.seal_errors, st.last_error
            );
        }
        drop(w);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = append
}
criterion_main!(benches);
