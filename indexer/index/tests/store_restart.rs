//! Segment stores: restart safety (killed anywhere, the index ends the same), idempotence
//! (a second run changes nothing), and following a segment while it is written.

use pcap_file::pcap::PcapReader;
use std::path::{Path, PathBuf};
use xdprec_index::query::{list_calls, orphan_streams, CallOut, Filter};
use xdprec_index::source::{index_store, index_store_until};
use xdprec_index::{Config, Indexer};
use xdprec_segment::{Class, RecordMeta, SegmentWriter, WriterConfig};

struct Tmp(PathBuf);
impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("xdprec-index-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn frames(rel: &str) -> Option<Vec<(u64, Vec<u8>)>> {
    let corpus = xdprec_testkit::corpus_dir()?;
    let bytes = std::fs::read(corpus.join(rel)).unwrap();
    let mut rd = PcapReader::new(&bytes[..]).unwrap();
    let mut out = Vec::new();
    while let Some(Ok(p)) = rd.next_packet() {
        out.push((p.timestamp.as_nanos() as u64, p.data.to_vec()));
    }
    Some(out)
}

fn writer(store: &Path) -> SegmentWriter {
    let mut cfg = WriterConfig::new(store, "rec1", "eth0", 0);
    cfg.segment_bytes_max = 1 << 20;
    cfg.seal_after_ns = 2_000_000_000; // several segments per capture
    SegmentWriter::open(cfg).unwrap()
}

fn append(w: &mut SegmentWriter, frames: &[(u64, Vec<u8>)]) {
    for (ts, f) in frames {
        let meta = RecordMeta {
            ts_ns: *ts,
            wire_len: f.len() as u32,
            class: Class::Other,
            flags: 0,
            key: None,
            rtp: None,
        };
        w.append(&meta, f, *ts).unwrap();
    }
}

/// The index's calls and orphans, without row ids and segment paths (which name files).
fn snapshot(db: &Path) -> String {
    let ix = Indexer::open(db, Config::default()).unwrap();
    let mut calls: Vec<CallOut> = list_calls(
        ix.conn(),
        &Filter {
            all: true,
            ..Default::default()
        },
    )
    .unwrap();
    for c in &mut calls {
        c.id = 0;
    }
    format!(
        "{}\n{}",
        serde_json::to_string(&calls).unwrap(),
        serde_json::to_string(&orphan_streams(ix.conn()).unwrap()).unwrap()
    )
}

#[test]
fn killed_anywhere_ends_the_same() {
    let Some(fr) = frames("sample-captures/sip-rtp-g711.pcap") else {
        return;
    };
    let t = Tmp::new("restart");
    let store = t.0.join("store");
    let mut w = writer(&store);
    append(&mut w, &fr);
    w.seal().unwrap();
    drop(w);
    let segs = xdprec_segment::list_segments(&store).unwrap();
    assert!(segs.len() >= 4, "want several segments, got {}", segs.len());

    let db_a = t.0.join("a.sqlite");
    let mut ix = Indexer::open(&db_a, Config::default()).unwrap();
    let st = index_store(&mut ix, &store, false).unwrap();
    assert_eq!(st.segments as usize, segs.len());
    drop(ix);
    let a = snapshot(&db_a);
    assert!(
        a.contains("\"packets\":425") && a.contains("\"packets\":414"),
        "{a}"
    );

    // Idempotent: a second run reads nothing and changes nothing.
    let mut ix = Indexer::open(&db_a, Config::default()).unwrap();
    assert_eq!(index_store(&mut ix, &store, false).unwrap().segments, 0);
    drop(ix);
    assert_eq!(snapshot(&db_a), a);

    // Killed after 120..200 records (a fresh process each time, often in the middle of a
    // segment, whose transaction is then lost), the index ends the same.
    let db_b = t.0.join("b.sqlite");
    let mut kills = 0u64;
    loop {
        let mut ix = Indexer::open(&db_b, Config::default()).unwrap();
        let budget = 120 + (kills * 37) % 80;
        let (_, finished) = index_store_until(&mut ix, &store, false, budget).unwrap();
        if finished {
            break;
        }
        kills += 1;
        assert!(kills < 100, "no progress");
    }
    assert!(kills >= 3, "only {kills} kills");
    assert_eq!(snapshot(&db_b), a);
}

#[test]
fn follows_a_segment_being_written() {
    let Some(fr) = frames("sample-captures/sip-rtp-g711.pcap") else {
        return;
    };
    let t = Tmp::new("follow");
    let store = t.0.join("store");
    let mut cfg = WriterConfig::new(&store, "rec1", "eth0", 0);
    cfg.seal_after_ns = u64::MAX; // one segment, open until sealed
    let mut w = SegmentWriter::open(cfg).unwrap();
    let db = t.0.join("f.sqlite");
    let half = fr.len() / 2;
    append(&mut w, &fr[..half]);
    let mut ix = Indexer::open(&db, Config::default()).unwrap();
    // Without --follow an open segment is left alone; with it, its records so far are read.
    assert_eq!(index_store(&mut ix, &store, false).unwrap().segments, 0);
    let st = index_store(&mut ix, &store, true).unwrap();
    assert_eq!(st.segments, 1);
    assert!(st.records > 0 && st.records <= half as u64);
    append(&mut w, &fr[half..]);
    w.seal().unwrap();
    drop(w);
    index_store(&mut ix, &store, true).unwrap();
    drop(ix);
    let followed = snapshot(&db);

    let db2 = t.0.join("g.sqlite");
    let mut ix = Indexer::open(&db2, Config::default()).unwrap();
    index_store(&mut ix, &store, false).unwrap();
    drop(ix);
    assert_eq!(followed, snapshot(&db2));
}
