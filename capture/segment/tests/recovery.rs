//! Torn records, crash recovery (a child killed with SIGKILL), damaged directories.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use xdprec_segment::{list_segments, DirectorySource, SegmentReader, SegmentWriter, StreamKey};

fn keys() -> Vec<StreamKey> {
    (0..6).map(|n| key(n, (n % 2 == 1).then_some(n))).collect()
}

/// Writes `n` records into an open segment and copies the `.open` file into a fresh store
/// (the writer stays alive, so the copy is exactly what a killed writer would leave).
/// Returns the copy's store, its path and the record offsets.
fn open_copy(tag: &str, n: u64) -> (TempDir, std::path::PathBuf, Vec<u64>) {
    let src = TempDir::new(tag);
    let keys = keys();
    let mut w = SegmentWriter::open(cfg(src.path(), "torn", 1 << 20)).unwrap();
    let offs: Vec<u64> = (0..n)
        .map(|i| {
            let m = meta(i, &keys);
            w.append(&m, &frame(i), m.ts_ns).unwrap().offset
        })
        .collect();
    let dst = TempDir::new(tag);
    std::fs::create_dir_all(dst.path().join("segments")).unwrap();
    let from = w.active_path().unwrap().to_path_buf();
    let to = dst.path().join("segments").join(from.file_name().unwrap());
    std::fs::copy(&from, &to).unwrap();
    drop(w);
    (dst, to, offs)
}

fn indexes(r: &SegmentReader) -> Vec<u64> {
    r.records().map(|x| frame_index(x.frame).unwrap()).collect()
}

/// Recovers the store with a new writer and returns the indexes of the one sealed segment.
fn recover(store: &Path) -> (Vec<u64>, u64) {
    let w = SegmentWriter::open(cfg(store, "torn", 1 << 20)).unwrap();
    let st = w.stats().clone();
    drop(w);
    let segs = list_segments(store).unwrap();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].sealed);
    assert!(!files(store)
        .iter()
        .any(|f| f.ends_with(".open") || f.ends_with(".spare")));
    let r = SegmentReader::open(&segs[0].path).unwrap();
    assert_eq!(r.directory_source(), DirectorySource::Sealed);
    let tracked: u64 = r.streams().iter().map(|s| s.packets).sum();
    assert_eq!(tracked + r.untracked_records(), r.records().count() as u64);
    assert_eq!(st.recovered, 1);
    (indexes(&r), st.recovered_records)
}

#[test]
fn truncated_mid_record_reader_stops_and_recovery_keeps_the_valid_prefix() {
    for k in [0usize, 1, 57, 299] {
        let (store, path, offs) = open_copy("trunc", 300);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(offs[k] + 10).unwrap();
        drop(f);
        let r = SegmentReader::open(&path).unwrap();
        assert_eq!(
            indexes(&r),
            (0..k as u64).collect::<Vec<_>>(),
            "cut in record {k}"
        );
        drop(r);
        if k == 0 {
            // Nothing to keep: the empty segment is removed.
            let w = SegmentWriter::open(cfg(store.path(), "torn", 1 << 20)).unwrap();
            drop(w);
            assert!(list_segments(store.path()).unwrap().is_empty());
            continue;
        }
        let (idx, n) = recover(store.path());
        assert_eq!(idx, (0..k as u64).collect::<Vec<_>>());
        assert_eq!(n, k as u64);
    }
}

#[test]
fn flipped_byte_reader_stops_at_the_last_valid_record() {
    for (k, delta) in [(10usize, 0u64), (10, 4), (10, 40), (150, 8), (150, 25)] {
        let (store, path, offs) = open_copy("flip", 200);
        let mut b = std::fs::read(&path).unwrap();
        b[(offs[k] + delta) as usize] ^= 0x04;
        std::fs::write(&path, &b).unwrap();
        let r = SegmentReader::open(&path).unwrap();
        assert_eq!(
            indexes(&r),
            (0..k as u64).collect::<Vec<_>>(),
            "flip in record {k} at +{delta}"
        );
        // Records after the damage are not reachable through the directory either.
        for s in r.streams() {
            assert!(r
                .stream_records(s.id)
                .all(|x| frame_index(x.frame).unwrap() < k as u64));
        }
        drop(r);
        let (idx, _) = recover(store.path());
        assert_eq!(idx, (0..k as u64).collect::<Vec<_>>());
    }
}

#[test]
fn damaged_sealed_directory_falls_back_to_a_scan() {
    let dir = TempDir::new("dirdmg");
    let keys = keys();
    let mut w = SegmentWriter::open(cfg(dir.path(), "d", 1 << 20)).unwrap();
    for i in 0..500 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), m.ts_ns).unwrap();
    }
    w.seal().unwrap();
    drop(w);
    let p = list_segments(dir.path()).unwrap().remove(0).path;
    let good = SegmentReader::open(&p).unwrap();
    let streams = good.streams().to_vec();
    let lists: Vec<Vec<u64>> = streams
        .iter()
        .map(|s| good.stream_records(s.id).map(|x| x.offset).collect())
        .collect();
    let dir_at = good.header().dir_offset as usize;
    drop(good);
    let mut b = std::fs::read(&p).unwrap();
    b[dir_at + 40] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let r = SegmentReader::open(&p).unwrap();
    assert_eq!(r.directory_source(), DirectorySource::Scanned);
    assert_eq!(r.streams(), &streams[..]);
    for (s, l) in streams.iter().zip(&lists) {
        assert_eq!(
            &r.stream_records(s.id).map(|x| x.offset).collect::<Vec<_>>(),
            l
        );
    }
    assert_eq!(indexes(&r), (0..500).collect::<Vec<_>>());
}

const CHILD_STORE: &str = "XSEG_CRASH_CHILD_STORE";
const CHILD_START: &str = "XSEG_CRASH_CHILD_START";

/// Not a test by itself: the child process of `kill_9_loses_nothing_written`. It appends
/// records forever (small segments, so the sealer is busy) and reports progress on stdout.
#[test]
#[ignore = "child process of kill_9_loses_nothing_written"]
fn crash_child() {
    let (Ok(store), Ok(start)) = (std::env::var(CHILD_STORE), std::env::var(CHILD_START)) else {
        return;
    };
    let start: u64 = start.parse().unwrap();
    let keys = keys();
    let mut w = SegmentWriter::open(cfg(Path::new(&store), "crash", 64 * 1024)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in start..start + 50_000_000 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), m.ts_ns).unwrap();
        if i.is_multiple_of(64) {
            // The record is in the mapping before this line is written.
            writeln!(out, "done {i}").unwrap();
            out.flush().unwrap();
        }
    }
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn kill_9_loses_nothing_written() {
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().unwrap();
    // (first index, report to wait for, extra delay before the kill in µs): the kill lands
    // at varied points (mid-record, mid-rotation, mid-seal on the sealer thread).
    let rounds: [(u64, u64, u64); 6] = [
        (0, 3000, 0),
        (10_000_000, 777, 300),
        (20_000_000, 12_345, 1000),
        (30_000_000, 64, 0),
        (40_000_000, 5000, 2500),
        (50_000_000, 1500, 7000),
    ];
    let mut reported = Vec::new();
    for &(start, target, delay_us) in &rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_STORE, dir.path())
            .env(CHILD_START, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("done ") {
                let v: u64 = v.trim().parse().unwrap();
                last = Some(v);
                if v >= start + target {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "child too slow");
        }
        std::thread::sleep(Duration::from_micros(delay_us));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let last = last.expect("child reported progress");
        reported.push((start, last));

        // Recovery: every .open file sealed, capture can go on.
        let mut w = SegmentWriter::open(cfg(dir.path(), "crash", 64 * 1024)).unwrap();
        assert!(w.stats().recovered >= 1, "{:?}", w.stats());
        assert_eq!(w.stats().recover_errors, 0, "{:?}", w.stats().last_error);
        let seq_before = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .max()
            .unwrap();
        w.append(&meta(99, &[]), &frame(99), 1).unwrap();
        assert_eq!(w.active_seq(), Some(seq_before + 1));
        drop(w);
        // Leave no trace of this check in the store.
        let check = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .find(|s| s.seq == seq_before + 1)
            .unwrap();
        assert!(check.sealed);
        std::fs::remove_file(&check.path).unwrap();
        let segs = list_segments(dir.path()).unwrap();
        assert!(segs.iter().all(|s| s.sealed), "{segs:?}");
        assert!(!files(dir.path())
            .iter()
            .any(|f| f.ends_with(".open") || f.ends_with(".spare")));
    }
    // Every round: a contiguous run from its start, at least up to what was reported, with
    // every frame byte intact (read_store checks the bytes), segments in sequence order.
    let all = read_store(dir.path());
    let seqs: Vec<u64> = all.iter().map(|x| x.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]));
    let idx: Vec<u64> = all.iter().map(|x| x.1).collect();
    let mut pos = 0;
    for &(start, last) in &reported {
        let run: Vec<u64> = idx[pos..]
            .iter()
            .copied()
            .take_while(|&i| i >= start && i < start + 10_000_000)
            .collect();
        assert!(!run.is_empty());
        assert_eq!(
            run,
            (start..start + run.len() as u64).collect::<Vec<_>>(),
            "round starting at {start}"
        );
        eprintln!(
            "round {start}: reported {}, kept {}",
            last - start + 1,
            run.len()
        );
        assert!(
            start + run.len() as u64 > last,
            "lost records: reported {last}, kept up to {}",
            start + run.len() as u64 - 1
        );
        pos += run.len();
    }
    assert_eq!(pos, idx.len());
    // Every sealed segment's directory agrees with its records.
    for s in list_segments(dir.path()).unwrap() {
        let r = SegmentReader::open(&s.path).unwrap();
        assert_eq!(r.directory_source(), DirectorySource::Sealed);
        let tracked: u64 = r.streams().iter().map(|s| s.packets).sum();
        assert_eq!(tracked + r.untracked_records(), r.records().count() as u64);
    }
}

#[test]
fn damaged_files_never_panic_the_reader() {
    let dir = TempDir::new("fuzz");
    let keys = keys();
    let mut w = SegmentWriter::open(cfg(dir.path(), "fz", 64 * 1024)).unwrap();
    for i in 0..150 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), m.ts_ns).unwrap();
    }
    w.seal().unwrap();
    drop(w);
    let p = list_segments(dir.path()).unwrap().remove(0).path;
    let h = SegmentReader::open(&p).unwrap().header().clone();
    let good = std::fs::read(&p).unwrap();
    let used = (h.dir_offset + h.dir_len) as usize;
    assert_eq!(crc32c_of(&good[h.dir_offset as usize..used]), h.dir_crc);
    let target = dir.path().join("victim.xseg");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut opened = 0;
    for round in 0..400 {
        let mut b = good[..used].to_vec();
        match round % 4 {
            // A few bytes anywhere (header, records, directory).
            0 | 1 => {
                for _ in 0..1 + rnd() % 4 {
                    let i = (rnd() as usize) % b.len();
                    b[i] = rnd() as u8;
                }
            }
            // Bytes in the directory, with the seal part's CRCs made to match again, so that
            // the reader must rely on its own bounds checks.
            2 => {
                for _ in 0..1 + rnd() % 8 {
                    let i = h.dir_offset as usize + (rnd() as usize) % h.dir_len as usize;
                    b[i] = rnd() as u8;
                }
                let crc = crc32c_of(&b[h.dir_offset as usize..used]);
                b[124..128].copy_from_slice(&crc.to_le_bytes());
                let seal_crc = crc32c_of(&b[120..168]);
                b[168..172].copy_from_slice(&seal_crc.to_le_bytes());
            }
            // Cut anywhere.
            _ => b.truncate((rnd() as usize) % used),
        }
        std::fs::write(&target, &b).unwrap();
        if let Ok(r) = SegmentReader::open(&target) {
            opened += 1;
            let n = r.records().count();
            assert!(n <= 150);
            for s in r.streams() {
                for rec in r.stream_records(s.id) {
                    assert!(rec.offset < r.records_end());
                }
            }
            let _ = r.record_at(rnd() % (used as u64 + 100));
        }
    }
    assert!(opened > 100);
}

/// CRC-32C, bitwise (the test does not reach into the crate's dependencies).
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A segment written into a recycled file (one that held an earlier, larger segment) and left
/// `.open` by a killed writer: readers and recovery must see this segment's records only,
/// never the older ones that follow its end mark with valid CRCs.
#[test]
fn recycled_file_yields_only_its_own_records() {
    let src = TempDir::new("recyc");
    let keys = keys();
    let mut w = SegmentWriter::open(cfg(src.path(), "torn", 64 * 1024)).unwrap();
    // Frames of one length (`frame(i)` is 8 + i * 37 % 300 bytes), so that the older
    // segment's records lie at exactly the offsets where this one's would go on.
    let idx = |k: u64| 300 * k + 7;
    let (mut seq, mut first_of_active) = (u64::MAX, 0u64);
    let mut i = 0u64;
    loop {
        let m = meta(idx(i), &keys);
        let a = w.append(&m, &frame(idx(i)), m.ts_ns).unwrap();
        if a.segment_seq != seq {
            // Let the sealer return the file of the segment just retired to the pool.
            w.flush_sealer();
            (seq, first_of_active) = (a.segment_seq, i);
        }
        i += 1;
        if w.stats().recycled >= 2 && seq >= 3 && i - first_of_active == 20 {
            break;
        }
        assert!(
            i < 100_000,
            "no recycled file became active: {:?}",
            w.stats()
        );
    }
    let mine: Vec<u64> = (first_of_active..i).map(idx).collect();
    let from = w.active_path().unwrap().to_path_buf();
    for damage_last_crc in [false, true] {
        let dst = TempDir::new("recyc");
        std::fs::create_dir_all(dst.path().join("segments")).unwrap();
        let to = dst.path().join("segments").join(from.file_name().unwrap());
        std::fs::copy(&from, &to).unwrap();
        let r = SegmentReader::open(&to).unwrap();
        let end = r.records_end() as usize;
        drop(r);
        let mut b = std::fs::read(&to).unwrap();
        // The end mark, then an older segment's bytes: the case this test is about.
        assert_eq!(&b[end..end + 8], &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(
            b[end + 8..end + 4096].iter().any(|&x| x != 0),
            "not a recycled file"
        );
        let want = if damage_last_crc {
            // As if killed before the last record's CRC was written.
            let last = mine.len() - 1;
            let r = SegmentReader::open(&to).unwrap();
            let off = r.records().nth(last).unwrap().offset as usize;
            drop(r);
            b[off] ^= 0x10;
            std::fs::write(&to, &b).unwrap();
            &mine[..last]
        } else {
            &mine[..]
        };
        let r = SegmentReader::open(&to).unwrap();
        assert_eq!(indexes(&r), want);
        drop(r);
        let (idx, n) = recover(dst.path());
        assert_eq!(idx, want);
        assert_eq!(n, want.len() as u64);
    }
    drop(w);
}
