//! The indexer (xdprec-index) building calls from captured frames: SIP dialogs, SDP media
//! correlation, RTP/RTCP quality, and the SQLite transaction that stores them, on calls from
//! the replay crate's synthetic generator (`xdprec_replay::Synth`: INVITE/100/180/200/ACK,
//! G.711 RTP both ways, RTCP, BYE/200).
//!
//! Each iteration indexes the whole set into a fresh database file under /tmp as one pass
//! (`Indexer::begin`, `push` per frame, `commit`), like `xdprec index` over one segment.
//! Opening the database (schema creation) is outside the timing.
//! - `frames/<calls>x<secs>`: every frame of the calls. Throughput: frames.
//! - `sip_only/<calls>_calls`: only the SIP messages of the calls (7 per call): the
//!   dialog-tracking cost. Throughput: SIP messages.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::path::{Path, PathBuf};
use std::time::Duration;
use xdprec_benches::TempDir;
use xdprec_index::frame::Link;
use xdprec_index::{Config, FrameIn, Hint, Indexer};
use xdprec_replay::{FrameSource, Synth, SynthConfig};

const START_UNIX_NS: u64 = 1_790_000_000_000_000_000;

/// (timestamp, frame) of `calls` concurrent synthetic calls of `call_s` seconds.
fn generate(calls: u32, call_s: u64) -> Vec<(i64, Vec<u8>)> {
    let mut cfg = SynthConfig::new(calls);
    cfg.call_ns = call_s * 1_000_000_000;
    cfg.cps = Some(1000.0);
    cfg.generations = Some(1);
    cfg.start_unix_ns = START_UNIX_NS;
    let mut synth = Synth::new(cfg).expect("synthetic call configuration");
    let mut buf = vec![0u8; xdprec_replay::source::FRAME_BYTES_MAX];
    let mut out = Vec::new();
    while let Ok(Some(m)) = synth.next_frame(&mut buf) {
        out.push((m.ts_ns as i64, buf[..m.len].to_vec()));
    }
    out
}

/// UDP to or from port 5060 (the generator's SIP port), Ethernet/IPv4 without options.
fn is_sip(frame: &[u8]) -> bool {
    let port = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
    };
    frame.get(23) == Some(&17) && (port(34) == Some(5060) || port(36) == Some(5060))
}

fn open(dir: &Path, n: &mut u32) -> (Indexer, PathBuf) {
    *n += 1;
    let db = dir.join(format!("index-{n}.sqlite"));
    let _ = std::fs::remove_file(&db);
    let ix = Indexer::open(&db, Config::default()).expect("Indexer::open");
    (ix, db)
}

fn index_all(ix: &mut Indexer, frames: &[(i64, Vec<u8>)]) -> u64 {
    let rec = ix.recorder("bench", "bench-store").expect("recorder");
    let mut ctx = ix.begin(rec, "synthetic", "synthetic").expect("begin");
    for (i, (ts_ns, data)) in frames.iter().enumerate() {
        let f = FrameIn {
            ts_ns: *ts_ns,
            offset: i as u64,
            stream_id: -1,
            hint: Hint::Unknown,
            link: Link::Ethernet,
            data,
        };
        ix.push(&mut ctx, &f).expect("push");
    }
    let n = frames.len() as u64;
    ix.commit(&ctx, n, n, true).expect("commit");
    n
}

fn calls_in(ix: &Indexer) -> i64 {
    ix.conn()
        .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .unwrap_or(-1)
}

fn correlation(c: &mut Criterion) {
    let tmp = match TempDir::new("index") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dialog_correlation SKIPPED: cannot create a directory in /tmp: {e}");
            return;
        }
    };
    let mut n = 0u32;
    let mut g = c.benchmark_group("dialog_correlation");
    g.sample_size(10);

    let (calls, secs) = (100u32, 5u64);
    let all = generate(calls, secs);
    let sip_calls = 1_000u32;
    let sip: Vec<_> = generate(sip_calls, 1)
        .into_iter()
        .filter(|(_, f)| is_sip(f))
        .collect();

    for (name, set, want_calls) in [
        (format!("frames/{calls}x{secs}s"), &all, calls),
        (format!("sip_only/{sip_calls}_calls"), &sip, sip_calls),
    ] {
        // Check once that the work is the intended one: every call found.
        let (mut ix, db) = open(tmp.path(), &mut n);
        index_all(&mut ix, set);
        let found = calls_in(&ix);
        if found != i64::from(want_calls) {
            eprintln!(
                "dialog_correlation WARNING: {name}: {found} calls indexed, {want_calls} generated"
            );
        }
        drop(ix);
        let _ = std::fs::remove_file(&db);

        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || open(tmp.path(), &mut n),
                |(mut ix, db)| {
                    index_all(&mut ix, set);
                    (ix, db)
                },
                BatchSize::PerIteration,
            )
        });
        // Databases of the measured iterations.
        if let Ok(rd) = std::fs::read_dir(tmp.path()) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = correlation
}
criterion_main!(benches);
