//! Failover: a call whose recording stops on recorder A (A died) and goes on on recorder B is
//! one call with two fragments; the index records the failover and its gap (time and RTP
//! sequence numbers nobody recorded); export returns the union of the parts in time order.
//!
//! - `failover_from_split_pcaps` (no privileges): the corpus capture cut in time into two
//!   stores by `xdprec capture --pcap`, 0.5 s of the second call dropped between them.
//! - `failover_live` (privileged): the same traffic replayed with tcpreplay into a veth whose
//!   ingress is mirrored (tc u32 + mirred) to recorder A's interface; A is killed with
//!   SIGKILL mid-call, the mirror is moved to recorder B's interface, the rest is replayed.
//!
//! Traffic stays inside a network namespace the test creates; every wait has a deadline;
//! processes are stopped by their pid.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    calls, export, import, index, read_pcap, steered, store_records, tmpdir, write_pcap, xdprec,
    Frame, Recorder, Topo, BIN,
};
use xdprec_testkit::{require_privileges, require_tool, sh};

const CALL2: &str = "1-1968@10.0.2.20";
/// Where the capture is cut (from its first frame), and how much is lost at the hand-over.
const SPLIT_NS: u64 = 12_500_000_000;
const LOST_NS: u64 = 500_000_000;

/// (src port, dst port, UDP payload) of an Ethernet/IPv4/UDP frame.
fn udp(f: &[u8]) -> Option<(u16, u16, &[u8])> {
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let u = f.get(14 + ihl..)?;
    let sp = u16::from_be_bytes([*u.first()?, *u.get(1)?]);
    let dp = u16::from_be_bytes([*u.get(2)?, *u.get(3)?]);
    Some((sp, dp, u.get(8..)?))
}

/// The frames of the second call: its SIP and its RTP (10.0.2.15:28102 -> 10.0.2.20:6000).
fn is_call2(f: &[u8]) -> bool {
    match udp(f) {
        Some((5060, 5060, p)) => p.windows(CALL2.len()).any(|w| w == CALL2.as_bytes()),
        Some((28102, 6000, p)) => p.len() > 12 && p[0] >> 6 == 2,
        _ => false,
    }
}

/// The corpus capture cut into (before, lost, after).
fn split() -> Option<(Vec<Frame>, Vec<Frame>, Vec<Frame>)> {
    let corpus = xdprec_testkit::corpus_dir()?;
    let all = read_pcap(&corpus.join("sample-captures/sip-rtp-g711.pcap"));
    let t0 = all[0].0;
    let (mut a, mut lost, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for f in all {
        let t = f.0 - t0;
        if t < SPLIT_NS {
            a.push(f);
        } else if t < SPLIT_NS + LOST_NS {
            lost.push(f);
        } else {
            b.push(f);
        }
    }
    // Only the second call's RTP is lost: the test's expected gap.
    assert!(lost
        .iter()
        .all(|f| is_call2(&f.2) && udp(&f.2).unwrap().0 == 28102));
    assert!(
        b.iter().all(|f| is_call2(&f.2)),
        "after the cut only call 2's RTP"
    );
    Some((a, lost, b))
}

/// Record times in a store: (first, last).
fn store_span(store: &Path) -> (u64, u64) {
    let (mut lo, mut hi) = (u64::MAX, 0);
    for (ts, _) in store_records(store) {
        lo = lo.min(ts);
        hi = hi.max(ts);
    }
    (lo, hi)
}

/// The second call's frames of both parts: what export of the call must give back.
fn call2_frames(a: &[Frame], b: &[Frame]) -> Vec<Vec<u8>> {
    a.iter()
        .chain(b.iter())
        .filter(|f| is_call2(&f.2))
        .map(|f| f.2.clone())
        .collect()
}

/// The checks both tests share: the index `db` of `stores`, the RTP lost at the hand-over,
/// the expected gap, the call's frames expected from export.
fn check_failover(
    db: &Path,
    stores: [&Path; 2],
    lost_rtp: usize,
    gap_ns: i64,
    want: &[Vec<u8>],
    dir: &Path,
) {
    let listed = calls(db, &[]);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let c1 = &listed[0];
    assert_eq!(c1["call_id"], "1-1966@10.0.2.20");
    assert!(c1["failover"].is_null(), "call 1 did not fail over: {c1}");
    assert_eq!(c1["recorders"], serde_json::json!(["A"]));
    let c = &listed[1];
    assert_eq!(c["call_id"], CALL2);
    assert_eq!(c["role"], "primary");
    assert_eq!(c["recorder"], "A");
    assert_eq!(c["recorders"], serde_json::json!(["A", "B"]), "{c}");
    let parts = c["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{c}");
    assert_eq!(parts[0]["role"], "primary");
    assert_eq!(parts[1]["role"], "fragment");
    assert_eq!(parts[1]["recorder"], "B");
    let f = &c["failover"];
    eprintln!("failover: {f}");
    assert_eq!(f["recorders"], serde_json::json!(["A", "B"]));
    assert_eq!(f["missing_rtp"], lost_rtp as u64, "{f}");
    assert_eq!(f["gap_ns"].as_i64().unwrap(), gap_ns, "{f}");
    let st = &f["streams"][0];
    assert_eq!(st["ssrc"], 0x343F_FA34u32);
    assert_eq!(st["missing"], lost_rtp as u64);
    assert_eq!(
        st["next_seq"].as_u64().unwrap(),
        (st["last_seq"].as_u64().unwrap() + lost_rtp as u64 + 1) % 65536
    );
    // The call's streams: A's part and B's part of the one RTP stream.
    let streams = c["streams"].as_array().unwrap();
    let recs: Vec<&str> = streams
        .iter()
        .map(|s| s["recorder"].as_str().unwrap())
        .collect();
    assert_eq!(recs, ["A", "B"], "{c}");
    assert_eq!(streams[1]["matched_by"], "failover");
    let (table, _) = xdprec(&["calls", "--db", db.to_str().unwrap()]);
    assert!(
        table.contains("failover A > B")
            && table.contains(&format!("{lost_rtp} RTP packets missing")),
        "{table}"
    );
    // --all lists no more calls: a fragment is a part, not a call.
    assert_eq!(calls(db, &["--all"]).len(), 2);

    // Export: the union of the two parts, in time order, byte for byte.
    let out = dir.join("call2.pcap");
    let (got, err) = export(&stores, db, CALL2, &out, false);
    eprintln!("{err}");
    assert!(
        err.contains("from A") && err.contains("from B"),
        "per-recorder report: {err}"
    );
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
    let mut got_bytes: Vec<Vec<u8>> = got.into_iter().map(|f| f.2).collect();
    let mut want = want.to_vec();
    got_bytes.sort();
    want.sort();
    assert_eq!(got_bytes.len(), want.len(), "frames of both parts");
    assert!(got_bytes == want, "exported frames differ from the parts");
}

#[test]
fn failover_from_split_pcaps() {
    let Some((a, lost, b)) = split() else { return };
    let dir = tmpdir("pcap");
    let (pa, pb) = (dir.join("a.pcap"), dir.join("b.pcap"));
    write_pcap(&pa, &a);
    write_pcap(&pb, &b);
    let (sa, sb) = (dir.join("A"), dir.join("B"));
    for (p, s, r) in [(&pa, &sa, "A"), (&pb, &sb, "B")] {
        import(p, s, r);
    }
    let db = dir.join("index.sqlite");
    eprintln!("{}", index(&db, &[&sa, &sb], &[]));
    let gap = (b[0].0 - a.last().unwrap().0) as i64;
    let want = call2_frames(&a, &b);
    check_failover(&db, [&sa, &sb], lost.len(), gap, &want, &dir);

    // WAV of the assembled call: both parts' audio (part A alone is ~3.9 s, B ~3.9 s).
    let wav = dir.join("call2.wav");
    xdprec(&[
        "export",
        "--store",
        sa.to_str().unwrap(),
        "--store",
        sb.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--call-id",
        CALL2,
        "--wav",
        wav.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&wav).unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    let samples = (bytes.len() - 44) / 2;
    assert!(samples > 8000 * 7, "{samples} samples: both parts decoded");

    // Re-indexing (nothing new) and indexing the stores in the other order give the same.
    let before = calls(&db, &["--all"]);
    index(&db, &[&sa, &sb], &[]);
    assert_eq!(calls(&db, &["--all"]), before);
    let db2 = dir.join("reversed.sqlite");
    index(&db2, &[&sb, &sa], &[]);
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|mut c| {
                c["id"] = serde_json::Value::Null;
                c
            })
            .collect()
    };
    assert_eq!(strip(calls(&db2, &["--all"])), strip(before));

    // A gap longer than --failover-gap-s keeps the parts apart: B's RTP stays an orphan.
    let db3 = dir.join("strict.sqlite");
    index(&db3, &[&sa, &sb], &["--failover-gap-s", "0.1"]);
    let strict = calls(&db3, &[]);
    assert!(strict.iter().all(|c| c["failover"].is_null()), "{strict:?}");
    let (orphans, _) = xdprec(&["calls", "--db", db3.to_str().unwrap(), "--orphans"]);
    assert_eq!(orphans.lines().count(), 1, "{orphans}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failover_live() {
    if !require_privileges("failover_live") || !require_tool("failover_live", "tcpreplay") {
        return;
    }
    let Some((a, lost, b)) = split() else { return };
    let dir = tmpdir("live");
    let (pa, pb) = (dir.join("a.pcap"), dir.join("b.pcap"));
    write_pcap(&pa, &a);
    write_pcap(&pb, &b);
    let topo = Topo::new(2);
    let (sa, sb) = (dir.join("A"), dir.join("B"));
    // Both recorders run; the media server's fork goes to A first.
    let rec_a = Recorder::start(&topo.ns, &topo.recs[0].b, &sa, "A");
    let rec_b = Recorder::start(&topo.ns, &topo.recs[1].b, &sb, "B");
    topo.mirror_to(&[0]);
    topo.replay(&pa, 1000);
    rec_a.wait_written(steered(&a));
    // A dies mid-call; the fork moves to B.
    rec_a.kill9();
    topo.mirror_to(&[1]);
    topo.replay(&pb, 1000);
    rec_b.wait_written(steered(&b));
    assert_eq!(
        rec_b.written(),
        steered(&b),
        "B records only the second part"
    );
    rec_b.stop();

    // A's last segment is still open (A was killed): index with --follow reads it.
    let db = dir.join("index.sqlite");
    let mut ix = Command::new(BIN)
        .args(["index", "--follow", "--poll-ms", "100", "--store"])
        .arg(&sa)
        .arg("--store")
        .arg(&sb)
        .arg("--db")
        .arg(&db)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn xdprec index");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if db.is_file() {
            let out = Command::new(BIN)
                .args(["calls", "--json", "--db"])
                .arg(&db)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains("\"failover\":{") {
                break;
            }
        }
        if Instant::now() > deadline {
            let _ = ix.kill();
            panic!("no failover call in the index within 60 s");
        }
    }
    sh(&["kill", "-INT", &ix.id().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ix.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = ix.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let (span_a, span_b) = (store_span(&sa), store_span(&sb));
    let gap = span_b.0 as i64 - span_a.1 as i64;
    eprintln!(
        "live failover: A recorded {} frames, B {}, hand-over gap {:.1} ms",
        steered(&a),
        steered(&b),
        gap as f64 / 1e6
    );
    let want = call2_frames(&a, &b);
    check_failover(&db, [&sa, &sb], lost.len(), gap, &want, &dir);
    let mut per_rec: BTreeMap<&str, u64> = BTreeMap::new();
    for (s, n) in [(&sa, "A"), (&sb, "B")] {
        *per_rec.entry(n).or_default() += store_records(s).len() as u64;
    }
    eprintln!("records per recorder: {per_rec:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
