//! Writer, reader, sealing, rotation, streams, compression, names.

mod common;

use std::collections::HashMap;

use common::*;
use xdprec_segment::{
    compress_segment, list_segments, AppendError, Class, DirectorySource, RecordMeta, RtpMeta,
    SegmentError, SegmentReader, SegmentWriter, StreamKey, WriterConfig,
};

#[test]
fn round_trip_of_every_class_and_scan_equals_sealed_directory() {
    let dir = TempDir::new("rt");
    let keys: Vec<StreamKey> = (0..9)
        .map(|n| key(n, (n % 2 == 0).then_some(n * 1000)))
        .collect();
    let mut w = SegmentWriter::open(cfg(dir.path(), "rt", 4 << 20)).unwrap();
    let n = 5000u64;
    let mut appended = Vec::new();
    for i in 0..n {
        let m = meta(i, &keys);
        appended.push(w.append(&m, &frame(i), m.ts_ns).unwrap());
    }
    assert_eq!(w.stats().records, n);
    assert_eq!(w.stats().active_streams, keys.len() as u64);
    // The open file, read while the writer holds it: directory built by scanning.
    let open_path = w.active_path().unwrap().to_path_buf();
    let open = SegmentReader::open(&open_path).unwrap();
    assert!(!open.header().sealed);
    assert_eq!(open.directory_source(), DirectorySource::Scanned);
    assert_eq!(open.records().count() as u64, n);
    let open_streams = open.streams().to_vec();
    let open_lists: Vec<Vec<u64>> = open_streams
        .iter()
        .map(|s| open.stream_records(s.id).map(|r| r.offset).collect())
        .collect();
    drop(open);
    w.seal().unwrap();
    assert_eq!(w.stats().seals, 1);

    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].sealed && !segs[0].compressed);
    let r = SegmentReader::open(&segs[0].path).unwrap();
    assert!(r.header().sealed);
    assert_eq!(r.directory_source(), DirectorySource::Sealed);
    assert_eq!(
        (r.header().recorder.as_str(), r.header().iface.as_str()),
        ("rt", "eth0")
    );
    assert_eq!(r.header().created_ns, meta(0, &keys).ts_ns);
    let recs: Vec<_> = r.records().collect();
    assert_eq!(recs.len() as u64, n);
    let mut seen_classes = std::collections::HashSet::new();
    for (i, (rec, a)) in recs.iter().zip(&appended).enumerate() {
        let m = meta(i as u64, &keys);
        assert_eq!(rec.frame, &frame(i as u64)[..]);
        assert_eq!(
            (rec.ts_ns, rec.wire_len, rec.class, rec.flags),
            (m.ts_ns, m.wire_len, m.class, m.flags)
        );
        assert_eq!((rec.offset, rec.stream_id), (a.offset, a.stream_id));
        assert_eq!(rec.rtp.map(|x| x.seq), m.rtp.map(|x| x.seq));
        assert_eq!(r.record_at(a.offset), Some(*rec));
        seen_classes.insert(rec.class);
    }
    assert_eq!(seen_classes.len(), CLASSES.len());
    // Not a record boundary, or past the end: nothing.
    assert!(r.record_at(appended[1].offset + 8).is_none());
    assert!(r.record_at(r.records_end()).is_none());
    // Per stream: counts and bytes match what was appended; lists hold exactly its records.
    let mut per_key: HashMap<StreamKey, (u64, u64)> = HashMap::new();
    for i in 0..n {
        let m = meta(i, &keys);
        if let Some(k) = m.key {
            let e = per_key.entry(*k).or_default();
            e.0 += 1;
            e.1 += u64::from(m.wire_len);
        }
    }
    assert_eq!(r.streams().len(), keys.len());
    let tracked: u64 = r.streams().iter().map(|s| s.packets).sum();
    assert_eq!(tracked + r.untracked_records(), n);
    for s in r.streams() {
        assert_eq!((s.packets, s.bytes), per_key[&s.key]);
        let list: Vec<_> = r.stream_records(s.id).collect();
        assert_eq!(list.len() as u64, s.packets);
        assert!(list.iter().all(|x| x.stream_id == s.id));
        assert!(s.first_ns <= s.last_ns);
    }
    // The scan of the open file and the sealed directory agree.
    assert_eq!(open_streams, r.streams());
    for (s, l) in open_streams.iter().zip(&open_lists) {
        assert_eq!(
            &r.stream_records(s.id).map(|x| x.offset).collect::<Vec<_>>(),
            l
        );
    }
    drop(w);
    // Only the sealed segment and the lock remain (the spare is removed on drop).
    let f = files(dir.path());
    assert_eq!(f.len(), 2, "{f:?}");
}

#[test]
fn rotation_when_full_keeps_every_record_in_order() {
    let dir = TempDir::new("rot");
    let keys = vec![key(1, None), key(2, Some(5))];
    let mut w = SegmentWriter::open(cfg(dir.path(), "rot", 64 * 1024)).unwrap();
    let n = 3000u64;
    let mut seqs = Vec::new();
    for i in 0..n {
        let m = meta(i, &keys);
        let a = w.append(&m, &frame(i), m.ts_ns).unwrap();
        seqs.push(a.segment_seq);
    }
    w.seal().unwrap();
    let st = w.stats().clone();
    drop(w);
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() >= 5, "{} segments", segs.len());
    assert_eq!(st.rotations_full, segs.len() as u64 - 1);
    assert_eq!(st.seals, segs.len() as u64);
    assert_eq!(st.segments_opened, segs.len() as u64);
    for (i, s) in segs.iter().enumerate() {
        assert!(s.sealed);
        assert_eq!(s.seq, i as u64, "sequence numbers contiguous from 0");
        let r = SegmentReader::open(&s.path).unwrap();
        assert_eq!(r.header().capacity, 64 * 1024);
        assert!(r.header().dir_offset + r.header().dir_len <= 64 * 1024);
        // Untracked + tracked = records, in every segment (stream table reset per segment).
        let tracked: u64 = r.streams().iter().map(|s| s.packets).sum();
        assert_eq!(tracked + r.untracked_records(), r.records().count() as u64);
    }
    let all = read_store(dir.path());
    assert_eq!(
        all.iter().map(|x| x.1).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    assert_eq!(all.iter().map(|x| x.0).collect::<Vec<_>>(), seqs);
}

#[test]
fn spares_are_ready_before_the_first_packet_and_removed_at_the_end() {
    for spares in [2u32, 3] {
        let dir = TempDir::new("spares");
        let mut c = cfg(dir.path(), "sp", 64 * 1024);
        c.spares = spares;
        let mut w = SegmentWriter::open(c).unwrap();
        // `open` returns once the spare thread has `spares` segments ready, beside the first.
        // One of them it still holds in its blocked `send`, which completes only when that
        // thread next runs: `spares - 1` rotations in a burst (microseconds apart here, a
        // second apart in capture) certainly need no spare made on this thread.
        let keys = vec![key(1, Some(9))];
        let mut i = 0u64;
        while w.stats().rotations_full < u64::from(spares - 1) {
            let m = meta(i, &keys);
            w.append(&m, &frame(i), m.ts_ns).unwrap();
            i += 1;
        }
        assert_eq!(
            w.stats().spare_misses,
            0,
            "spares {spares}: {:?}",
            w.stats()
        );
        w.seal().unwrap();
        drop(w);
        // No spare file outlives the writer.
        let f = files(dir.path());
        assert!(
            f.iter()
                .all(|n| !n.ends_with(".spare") && !n.ends_with(".open")),
            "{f:?}"
        );
        let got: Vec<u64> = read_store(dir.path()).iter().map(|x| x.1).collect();
        assert_eq!(got, (0..i).collect::<Vec<_>>());
    }
    let dir = TempDir::new("spares0");
    let mut c = cfg(dir.path(), "sp", 64 * 1024);
    c.spares = 0;
    assert!(SegmentWriter::open(c).is_err());
}

#[test]
fn time_based_seal_by_tick_and_by_append() {
    let dir = TempDir::new("time");
    let mut c = cfg(dir.path(), "time", 1 << 20);
    c.seal_after_ns = 1_000_000_000;
    let mut w = SegmentWriter::open(c).unwrap();
    let keys = vec![key(1, None)];
    let t0 = 5_000_000_000u64;
    let m = |i: u64| RecordMeta {
        ts_ns: t0 + i,
        ..meta(i, &keys)
    };
    w.append(&m(0), &frame(0), t0).unwrap();
    w.append(&m(1), &frame(1), t0 + 500_000_000).unwrap();
    w.tick(t0 + 999_999_999).unwrap();
    w.flush_sealer();
    assert_eq!(
        list_segments(dir.path())
            .unwrap()
            .iter()
            .filter(|s| s.sealed)
            .count(),
        0
    );
    w.tick(t0 + 1_000_000_000).unwrap();
    w.flush_sealer();
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!((segs.len(), segs[0].sealed, segs[0].seq), (1, true, 0));
    assert_eq!(w.stats().rotations_time, 1);
    assert_eq!(w.active_seq(), None);
    // The next append opens seq 1; an append after the limit seals it without a tick.
    assert_eq!(
        w.append(&m(2), &frame(2), t0 + 1_100_000_000)
            .unwrap()
            .segment_seq,
        1
    );
    assert_eq!(
        w.append(&m(3), &frame(3), t0 + 2_100_000_000)
            .unwrap()
            .segment_seq,
        2
    );
    w.flush_sealer();
    assert_eq!(w.stats().rotations_time, 2);
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(
        segs.iter().map(|s| (s.seq, s.sealed)).collect::<Vec<_>>(),
        vec![(0, true), (1, true), (2, false)]
    );
    assert_eq!(segs[1].created_ns, t0 + 1_100_000_000);
    // A segment with no record is never sealed by time.
    w.seal().unwrap();
    w.tick(t0 + 10_000_000_000).unwrap();
    w.flush_sealer();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 3);
    drop(w);
    assert_eq!(
        read_store(dir.path())
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
}

#[test]
fn stream_table_full_is_counted_and_records_still_written() {
    let dir = TempDir::new("full");
    let mut c = cfg(dir.path(), "full", 1 << 20);
    c.streams_max = 4;
    let mut w = SegmentWriter::open(c).unwrap();
    let keys: Vec<StreamKey> = (0..10).map(|n| key(n, None)).collect();
    let mut untracked = 0;
    for i in 0..200u64 {
        let k = &keys[(i % 10) as usize];
        let m = RecordMeta {
            ts_ns: i,
            wire_len: 100,
            class: Class::Sip,
            flags: 0,
            key: Some(k),
            rtp: None,
        };
        let a = w.append(&m, &frame(i), i).unwrap();
        if i % 10 < 4 {
            assert_eq!(a.stream_id, (i % 10) as u32 + 1);
        } else {
            assert_eq!(a.stream_id, 0);
            untracked += 1;
        }
    }
    assert_eq!(w.stats().stream_table_full, untracked);
    assert_eq!(w.stats().active_streams, 4);
    w.seal().unwrap();
    drop(w);
    let segs = list_segments(dir.path()).unwrap();
    let r = SegmentReader::open(&segs[0].path).unwrap();
    assert_eq!(r.streams().len(), 4);
    assert_eq!(r.untracked_records(), untracked);
    assert_eq!(r.records().count(), 200);
    assert_eq!(
        r.streams().iter().map(|s| s.key).collect::<Vec<_>>(),
        keys[..4].to_vec()
    );
}

/// Appends RTP packets with the given sequence numbers (one stream) and returns the reader.
fn rtp_stream(dir: &TempDir, seqs: &[u16], compress: bool) -> (SegmentReader, u32) {
    let k = key(3, Some(0x1234_5678));
    let mut c = cfg(dir.path(), "rtp", 1 << 20);
    c.compress_sealed = compress;
    let mut w = SegmentWriter::open(c).unwrap();
    let mut id = 0;
    for (i, &seq) in seqs.iter().enumerate() {
        let m = RecordMeta {
            ts_ns: 1000 + i as u64,
            wire_len: 214,
            class: Class::Rtp,
            flags: 0,
            key: Some(&k),
            rtp: Some(RtpMeta {
                ssrc: 0x1234_5678,
                seq,
                timestamp: u32::from(seq).wrapping_mul(160),
                payload_type: 0,
            }),
        };
        let mut f = frame(i as u64);
        f.extend_from_slice(&seq.to_be_bytes());
        id = w.append(&m, &f, m.ts_ns).unwrap().stream_id;
    }
    w.seal().unwrap();
    drop(w);
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].compressed, compress);
    (SegmentReader::open(&segs[0].path).unwrap(), id)
}

#[test]
fn rtp_in_sequence_order_across_wrap_with_loss_duplicates_reordering() {
    let dir = TempDir::new("rtpw");
    // 65532 reordered; 2 lost; 1 and 65535 duplicated (65535 arrives again, late, after 4).
    let arrival = [
        65530u16, 65531, 65533, 65532, 65534, 65535, 0, 1, 1, 3, 4, 65535, 5,
    ];
    let (r, id) = rtp_stream(&dir, &arrival, false);
    let got: Vec<u16> = r.stream_records(id).map(|x| x.rtp.unwrap().seq).collect();
    assert_eq!(
        got,
        vec![65530, 65531, 65532, 65533, 65534, 65535, 65535, 0, 1, 1, 3, 4, 5]
    );
    // Duplicates come after their original (arrival order among equals).
    let idx: Vec<u64> = r
        .stream_records(id)
        .map(|x| frame_index(&x.frame[..x.frame.len() - 2]).unwrap())
        .collect();
    assert_eq!(idx, vec![0, 1, 3, 2, 4, 5, 11, 6, 7, 8, 9, 10, 12]);
    let s = r.stream(id).unwrap();
    assert_eq!(s.packets, 13);
    let rtp = s.rtp.unwrap();
    assert_eq!(rtp.ssrc, 0x1234_5678);
    assert_eq!((rtp.first_seq, rtp.last_ext_seq), (65530, 65536 + 5));
    assert_eq!((rtp.lost, rtp.duplicates, rtp.reordered), (1, 2, 1));
    assert_eq!(
        (rtp.first_ts, rtp.last_ts),
        (65530u32.wrapping_mul(160), 5 * 160)
    );
    // In file order the records are still in arrival order.
    let file_order: Vec<u16> = r.records().map(|x| x.rtp.unwrap().seq).collect();
    assert_eq!(file_order, arrival);
}

/// A tiny deterministic generator (no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn rtp_statistics_match_a_brute_force_count() {
    for seed in [1u64, 2, 3] {
        let dir = TempDir::new("rtpb");
        let mut g = Lcg(seed);
        // True extended numbers: start near a wrap, 3000 packets; drop 3%, duplicate 2%,
        // swap neighbours 5%.
        let start = 64000 + g.next() % 1000;
        let mut arr: Vec<u64> = Vec::new();
        for e in start..start + 3000 {
            if g.next() % 100 < 3 {
                continue;
            }
            arr.push(e);
            if g.next() % 100 < 2 {
                arr.push(e);
            }
        }
        for i in 1..arr.len() {
            if g.next() % 100 < 5 {
                arr.swap(i - 1, i);
            }
        }
        let seqs: Vec<u16> = arr.iter().map(|&e| e as u16).collect();
        let (r, id) = rtp_stream(&dir, &seqs, seed == 2);
        // Brute force from the true numbers.
        let mut seen = std::collections::HashSet::new();
        let (mut dups, mut reordered, mut max) = (0u64, 0u64, 0u64);
        for &e in &arr {
            if !seen.insert(e) {
                dups += 1;
            } else if e < max {
                reordered += 1;
            }
            max = max.max(e);
        }
        let (lo, hi) = (*arr.iter().min().unwrap(), *arr.iter().max().unwrap());
        let lost = (hi - lo + 1) - seen.len() as u64;
        let rtp = r.stream(id).unwrap().rtp.unwrap();
        assert_eq!(
            (rtp.lost, rtp.duplicates, rtp.reordered),
            (lost, dups, reordered),
            "seed {seed}"
        );
        assert_eq!(rtp.first_seq, lo as u16);
        assert_eq!(
            u64::from(rtp.last_ext_seq),
            u64::from(lo as u16) + (hi - lo)
        );
        let mut sorted = arr.clone();
        sorted.sort();
        let got: Vec<u16> = r.stream_records(id).map(|x| x.rtp.unwrap().seq).collect();
        assert_eq!(
            got,
            sorted.iter().map(|&e| e as u16).collect::<Vec<_>>(),
            "seed {seed}"
        );
    }
}

#[test]
fn compressed_and_uncompressed_read_identically() {
    let dir = TempDir::new("zst");
    let keys: Vec<StreamKey> = (0..5).map(|n| key(n, Some(n))).collect();
    let mut w = SegmentWriter::open(cfg(dir.path(), "zst", 1 << 20)).unwrap();
    for i in 0..3000u64 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), m.ts_ns).unwrap();
    }
    w.seal().unwrap();
    drop(w);
    let plain = list_segments(dir.path()).unwrap().remove(0).path;
    let copy = dir.path().join("copy.xseg");
    std::fs::copy(&plain, &copy).unwrap();
    let zst = compress_segment(&plain).unwrap();
    assert!(!plain.exists() && zst.to_string_lossy().ends_with(".xseg.zst"));
    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].compressed && segs[0].sealed);
    let a = SegmentReader::open(&copy).unwrap();
    let b = SegmentReader::open(&zst).unwrap();
    assert!(std::fs::metadata(&zst).unwrap().len() < a.records_end());
    assert_eq!(a.header(), b.header());
    assert_eq!(
        a.records().collect::<Vec<_>>(),
        b.records().collect::<Vec<_>>()
    );
    assert_eq!(a.records().count(), 3000);
    assert_eq!(a.streams(), b.streams());
    for s in a.streams() {
        assert_eq!(
            a.stream_records(s.id).collect::<Vec<_>>(),
            b.stream_records(s.id).collect::<Vec<_>>()
        );
    }
    // The decompression limit holds.
    let e = SegmentReader::open_with_limit(&zst, 4096).err().unwrap();
    assert!(matches!(e, SegmentError::TooLarge { .. }), "{e}");
    // The writer compresses on its sealer thread when asked to.
    let dir2 = TempDir::new("zst2");
    let mut c = cfg(dir2.path(), "zst", 64 * 1024);
    c.compress_sealed = true;
    let mut w = SegmentWriter::open(c).unwrap();
    for i in 0..1000u64 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), m.ts_ns).unwrap();
    }
    w.seal().unwrap();
    assert_eq!(w.stats().compressed, w.stats().seals);
    drop(w);
    let segs = list_segments(dir2.path()).unwrap();
    assert!(segs.len() > 1 && segs.iter().all(|s| s.compressed));
    assert_eq!(
        read_store(dir2.path())
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        (0..1000).collect::<Vec<_>>()
    );
}

#[test]
fn names_from_config_are_sanitized() {
    let dir = TempDir::new("names");
    let store = dir.path().join("store");
    let mut c = WriterConfig::new(&store, "../../evil/..", "eth0/../../x y+z", 3);
    c.segment_bytes_max = 64 * 1024;
    let mut w = SegmentWriter::open(c).unwrap();
    let keys = vec![key(1, None)];
    w.append(&meta(0, &keys), &frame(0), 1).unwrap();
    w.seal().unwrap();
    drop(w);
    // Nothing outside <store>/segments, and names only from the safe set.
    let top: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec!["store"]);
    let inner: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(inner, vec!["segments"]);
    for f in files(&store) {
        assert!(
            f.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-+".contains(&c)),
            "{f}"
        );
        assert!(!f.starts_with('.'), "{f}");
    }
    let s = list_segments(&store).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].recorder.as_str(), s[0].iface.as_str(), s[0].queue),
        ("_._.._evil_..", "eth0_.._.._x_y_z", 3)
    );
    let r = SegmentReader::open(&s[0].path).unwrap();
    assert_eq!(r.header().recorder, "_._.._evil_..");
}

#[test]
fn foreign_files_ignored_and_one_writer_per_queue() {
    let dir = TempDir::new("foreign");
    let seg = dir.path().join("segments");
    std::fs::create_dir_all(&seg).unwrap();
    for f in [
        "notes.txt",
        "a+b+q1+12.xseg",
        "a+b+q1+0000000001.xseg.zst.tmp",
        "x.xseg.open",
    ] {
        std::fs::write(seg.join(f), b"not a segment").unwrap();
    }
    let mut w = SegmentWriter::open(cfg(dir.path(), "fw", 64 * 1024)).unwrap();
    w.append(&meta(1, &[]), &frame(1), 1).unwrap();
    // A second writer on the same queue is refused; another queue is fine.
    let e = SegmentWriter::open(cfg(dir.path(), "fw", 64 * 1024))
        .err()
        .unwrap();
    assert!(matches!(e, SegmentError::Locked { .. }), "{e}");
    let mut c = cfg(dir.path(), "fw", 64 * 1024);
    c.queue = 1;
    let w2 = SegmentWriter::open(c).unwrap();
    let s = list_segments(dir.path()).unwrap();
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(!s[0].sealed);
    assert_eq!(s[0].created_ns, 1);
    drop(w2);
    drop(w);
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    // A junk file with our name is not recovered into anything, and does not stop the writer.
    std::fs::write(seg.join("fw+eth0+q0+0000000009.xseg.open"), vec![0u8; 4096]).unwrap();
    let w = SegmentWriter::open(cfg(dir.path(), "fw", 64 * 1024)).unwrap();
    assert_eq!(w.stats().recover_errors, 1);
    assert!(w
        .stats()
        .last_error
        .as_deref()
        .unwrap()
        .contains("not a valid segment"));
}

#[test]
fn too_large_and_bad_config_are_refused() {
    let dir = TempDir::new("big");
    let mut w = SegmentWriter::open(cfg(dir.path(), "big", 64 * 1024)).unwrap();
    let max = w.frame_len_max();
    assert!(max > 60_000 && max < 64 * 1024);
    let big = vec![1u8; max + 1];
    let m = meta(0, &[]);
    assert!(matches!(
        w.append(&m, &big, 1),
        Err(AppendError::TooLarge { .. })
    ));
    assert_eq!(w.stats().too_large_drops, 1);
    // The largest frame fits, even in a segment that already holds records (it rotates).
    w.append(&m, &[2u8; 100], 1).unwrap();
    let keys = [key(1, None)];
    let keyed = meta(0, &keys);
    let a = w.append(&keyed, &vec![3u8; max], 2).unwrap();
    assert_eq!((a.segment_seq, a.stream_id), (1, 1));
    assert_eq!(w.stats().too_large_drops, 1);
    drop(w);
    for bad in [1000u64, 32 << 30] {
        let c = cfg(dir.path(), "big2", bad);
        assert!(matches!(
            SegmentWriter::open(c),
            Err(SegmentError::Config(_))
        ));
    }
}

#[test]
fn sizes_follow_the_documented_format() {
    // A correctness check of the append path at volume (speed is for benches/).
    let dir = TempDir::new("sizes");
    let k = key(1, Some(9));
    let mut w = SegmentWriter::open(cfg(dir.path(), "sizes", 64 << 20)).unwrap();
    let f = [0x55u8; 214];
    let n = 100_000u64;
    for i in 0..n {
        let m = RecordMeta {
            ts_ns: i,
            wire_len: 214,
            class: Class::Rtp,
            flags: 0,
            key: Some(&k),
            rtp: Some(RtpMeta {
                ssrc: 9,
                seq: i as u16,
                timestamp: 0,
                payload_type: 0,
            }),
        };
        w.append(&m, &f, i).unwrap();
    }
    // 32-byte header + 214 bytes rounded up to 8 = 248; one 80-byte stream definition.
    assert_eq!(w.stats().record_bytes, n * 248 + 80);
    assert_eq!(w.stats().segment_fill_bytes, 256 + n * 248 + 80);
    w.seal().unwrap();
    drop(w);
    let s = list_segments(dir.path()).unwrap();
    let r = SegmentReader::open(&s[0].path).unwrap();
    let h = r.header();
    assert_eq!(h.records_end, 256 + n * 248 + 80);
    assert_eq!(h.dir_len, 32 + 128 + n * 4);
    assert_eq!(h.packet_records, n);
    let rtp = r.streams()[0].rtp.unwrap();
    assert_eq!(
        (rtp.lost, rtp.duplicates, rtp.reordered, rtp.last_ext_seq),
        (0, 0, 0, (n - 1) as u32)
    );
    // The unused tail is deallocated: disk use is about the used size.
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&s[0].path).unwrap();
    assert_eq!(md.len(), 64 << 20);
    assert!(
        md.blocks() * 512 < h.dir_offset + h.dir_len + (1 << 20),
        "{} blocks",
        md.blocks()
    );
}

#[test]
fn reader_of_the_open_file_survives_its_sealing_and_knows_when_it_was_recycled() {
    let dir = TempDir::new("live");
    let keys: Vec<StreamKey> = (0..3).map(|n| key(n, None)).collect();
    let mut w = SegmentWriter::open(cfg(dir.path(), "live", 64 * 1024)).unwrap();
    for i in 0..50u64 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), m.ts_ns).unwrap();
    }
    let r = SegmentReader::open(w.active_path().unwrap()).unwrap();
    let seq = r.header().seq;
    let before: Vec<u64> = r.records().map(|x| frame_index(x.frame).unwrap()).collect();
    assert_eq!(before, (0..50).collect::<Vec<_>>());
    assert!(r.is_current());
    // The writer goes on, fills, seals by copy and reuses the file for later segments.
    for i in 50..2000u64 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), m.ts_ns).unwrap();
    }
    w.seal().unwrap();
    assert!(w.stats().seals >= 2);
    assert!(w.stats().recycled >= 1, "{:?}", w.stats());
    // The old mapping still reads (no SIGBUS), and says that its file is another segment's now.
    assert!(!r.is_current());
    let _ = r.records().count();
    // The records read before are those of the sealed segment, at the same offsets.
    let infos = list_segments(dir.path()).unwrap();
    let sealed = infos.iter().find(|i| i.seq == seq).unwrap();
    assert!(sealed.sealed);
    let s = SegmentReader::open(&sealed.path).unwrap();
    assert!(s.is_current());
    let got: Vec<u64> = s.records().map(|x| frame_index(x.frame).unwrap()).collect();
    assert_eq!(&got[..50], &before[..]);
    for st in s.streams() {
        assert_eq!(s.stream_records(st.id).count() as u64, st.packets);
    }
}
