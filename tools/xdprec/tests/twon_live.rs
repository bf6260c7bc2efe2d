//! 2N: the same calls recorded by two recorders are indexed together; each call appears once
//! as `primary` and once as `secondary`, `xdprec calls` shows it once (`--all` twice), and
//! `export --merge` fills each copy's gaps from the other and says how many packets came from
//! each recorder.
//!
//! - `twon_from_lossy_pcap_copies` (no privileges): two stores made by `xdprec capture --pcap`
//!   from the corpus capture, each losing other RTP packets; thresholds from the command line.
//! - `twon_live` (privileged): the capture replayed with tcpreplay into a veth whose ingress
//!   is mirrored (tc u32 + two mirred actions) to two recorders' interfaces.
//!
//! Traffic stays inside a network namespace the test creates; every wait has a deadline;
//! processes are stopped by their pid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xdprec_capture::stats::{Field, StatsReader};
use xdprec_pcapio::{PcapReader, PcapWriter};
use xdprec_testkit::{require_privileges, require_tool, run, sh, Netns, Veth};

const BIN: &str = env!("CARGO_BIN_EXE_xdprec");

fn xdprec(args: &[&str]) -> (String, String) {
    let out = Command::new(BIN).args(args).output().expect("run xdprec");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "xdprec {args:?} failed:\n{o}\n{e}");
    (o, e)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xdprec-2n-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

type Frame = (u64, u32, Vec<u8>);

fn read_pcap(path: &Path) -> Vec<Frame> {
    let mut r = PcapReader::open(path).expect("open pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("packet");
        out.push((p.ts_ns, p.wire_len, p.data.to_vec()));
    }
    out
}

fn write_pcap(path: &Path, frames: &[Frame]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), 262_144).unwrap();
    for (ts, len, data) in frames {
        w.write_packet(*ts, *len, data).unwrap();
    }
    w.flush().unwrap();
}

/// True for an RTP frame of the capture (UDP from port 27942 or 28102 to 6000).
fn is_rtp(f: &[u8]) -> bool {
    f.len() > 54
        && f[12..14] == [0x08, 0x00]
        && f[23] == 17
        && f[36..38] == 6000u16.to_be_bytes()
        && f[42] >> 6 == 2
}

fn calls(db: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["calls", "--db", db.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    xdprec(&args)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

fn index(db: &Path, stores: &[&Path], extra: &[&str]) -> String {
    let mut args = vec!["index".to_string()];
    for s in stores {
        args.push("--store".into());
        args.push(s.to_str().unwrap().into());
    }
    args.push("--db".into());
    args.push(db.to_str().unwrap().into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    xdprec(&refs).1
}

/// Every call once as primary and once as secondary (naming the primary's recorder).
fn check_roles(db: &Path, want_calls: usize, primary: &str, secondary: &str) {
    let listed = calls(db, &[]);
    assert_eq!(listed.len(), want_calls, "{listed:?}");
    for c in &listed {
        assert_eq!(c["role"], "primary");
        assert_eq!(c["recorder"], primary, "{c}");
        assert_eq!(
            c["recorders"],
            serde_json::json!([primary, secondary]),
            "{c}"
        );
        assert!(c["dup_flags"].is_null() && c["failover"].is_null(), "{c}");
    }
    let all = calls(db, &["--all"]);
    assert_eq!(all.len(), 2 * want_calls, "{all:?}");
    let mut roles: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for c in &all {
        roles
            .entry(c["call_id"].as_str().unwrap().to_string())
            .or_default()
            .push((
                c["role"].as_str().unwrap().to_string(),
                c["recorder"].as_str().unwrap().to_string(),
            ));
        if c["role"] == "secondary" {
            assert_eq!(c["primary_recorder"], primary, "{c}");
        }
    }
    for (id, mut r) in roles {
        r.sort();
        assert_eq!(
            r,
            [
                ("primary".to_string(), primary.to_string()),
                ("secondary".to_string(), secondary.to_string())
            ],
            "{id}"
        );
    }
}

/// `export --merge` of a call: (frames, stderr).
fn export(
    stores: &[&Path],
    db: &Path,
    call: &str,
    out: &Path,
    merge: bool,
) -> (Vec<Frame>, String) {
    let mut args = vec!["export".to_string()];
    for s in stores {
        args.push("--store".into());
        args.push(s.to_str().unwrap().into());
    }
    for a in [
        "--db",
        db.to_str().unwrap(),
        "--call-id",
        call,
        "--pcap",
        out.to_str().unwrap(),
    ] {
        args.push(a.into());
    }
    if merge {
        args.push("--merge".into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, err) = xdprec(&refs);
    (read_pcap(out), err)
}

fn number_before(text: &str, what: &str) -> u64 {
    let i = text
        .find(what)
        .unwrap_or_else(|| panic!("`{what}` not in {text}"));
    text[..i]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number before `{what}` in {text}"))
}

#[test]
fn twon_from_lossy_pcap_copies() {
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let all = read_pcap(&corpus.join("sample-captures/sip-rtp-g711.pcap"));
    let dir = tmpdir("pcap");
    // Copy A loses every 7th RTP packet, copy B every 11th (other ones): B is more complete.
    let rtp_index: Vec<Option<usize>> = {
        let mut n = 0;
        all.iter()
            .map(|f| {
                is_rtp(&f.2).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect()
    };
    let lost_a = |i: usize| i % 7 == 3;
    let lost_b = |i: usize| i % 11 == 5;
    let keep = |lost: &dyn Fn(usize) -> bool| -> Vec<Frame> {
        all.iter()
            .zip(&rtp_index)
            .filter(|(_, r)| !r.is_some_and(lost))
            .map(|(f, _)| f.clone())
            .collect()
    };
    let (fa, fb) = (keep(&lost_a), keep(&lost_b));
    let (pa, pb) = (dir.join("a.pcap"), dir.join("b.pcap"));
    write_pcap(&pa, &fa);
    write_pcap(&pb, &fb);
    let (sa, sb) = (dir.join("A"), dir.join("B"));
    for (p, s, r) in [(&pa, &sa, "A"), (&pb, &sb, "B")] {
        xdprec(&[
            "capture",
            "--pcap",
            p.to_str().unwrap(),
            "--store",
            s.to_str().unwrap(),
            "--recorder",
            r,
        ]);
    }
    let db = dir.join("index.sqlite");
    eprintln!("{}", index(&db, &[&sa, &sb], &[]));
    check_roles(&db, 2, "B", "A");

    // Merge: each copy's gaps filled from the other; what both lost stays lost.
    let call = "1-1966@10.0.2.20";
    let in_call = |f: &Frame| {
        f.0 <= all[432].0 // up to the 200 OK of the BYE (frame 433)
            && (is_rtp(&f.2) && f.2[34..36] == 27942u16.to_be_bytes() || f.2[36..38] == 5060u16.to_be_bytes())
    };
    let whole: Vec<&Frame> = all.iter().filter(|f| in_call(f)).collect();
    let both_lost = all
        .iter()
        .zip(&rtp_index)
        .filter(|(f, r)| in_call(f) && r.is_some_and(|i| lost_a(i) && lost_b(i)))
        .count();
    let only_b = all
        .iter()
        .zip(&rtp_index)
        .filter(|(f, r)| in_call(f) && r.is_some_and(|i| lost_a(i) && !lost_b(i)))
        .count() as u64;
    let (merged, report) = export(&[&sa, &sb], &db, call, &dir.join("m.pcap"), true);
    eprintln!("{report}");
    assert_eq!(merged.len(), whole.len() - both_lost, "{report}");
    let mut want: Vec<Vec<u8>> = whole.iter().map(|f| f.2.clone()).collect();
    let mut got: Vec<Vec<u8>> = merged.iter().map(|f| f.2.clone()).collect();
    want.sort();
    got.sort();
    // Every merged frame is one of the call's, once.
    got.dedup();
    assert_eq!(got.len(), merged.len(), "a frame twice");
    assert!(got.iter().all(|f| want.binary_search(f).is_ok()));
    // Identical timestamps: A's copy is kept where both have it; B fills A's gaps.
    assert_eq!(number_before(&report, "from B"), only_b, "{report}");
    assert_eq!(
        number_before(&report, "from A") + only_b,
        merged.len() as u64,
        "{report}"
    );
    // Without --merge: the primary copy (B's) only.
    let (primary, _) = export(&[&sa, &sb], &db, call, &dir.join("p.pcap"), false);
    let b_has = fb.iter().filter(|f| in_call(f)).count();
    assert_eq!(primary.len(), b_has);
    assert!(merged.len() > primary.len());

    // Thresholds are flags: copies whose RTP counts differ by more than 10 stay apart, flagged.
    let strict = dir.join("strict.sqlite");
    index(&strict, &[&sa, &sb], &["--dup-packets-diff", "10"]);
    let listed = calls(&strict, &[]);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().any(|c| c["dup_flags"]
        .as_str()
        .is_some_and(|f| f.contains("ambiguous: RTP packet counts differ"))));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A namespace with a traffic veth (tcpreplay sends on `src.a`, frames arrive at `src.b`)
/// and one veth per recorder (`rec.b` captured, `rec.a` the mirror's target).
struct Topo {
    ns: Netns,
    src: Veth,
    recs: Vec<Veth>,
}

impl Topo {
    fn new(recorders: usize) -> Topo {
        let ns = Netns::new();
        for k in ["all", "default"] {
            let _ = run(&[
                "ip",
                "netns",
                "exec",
                ns.name(),
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
            ]);
        }
        let mut pairs = Vec::new();
        for _ in 0..=recorders {
            let mut v = Veth::new(1);
            v.move_a(&ns);
            v.move_b(&ns);
            for end in [&v.a, &v.b] {
                ns.exec(&["ip", "link", "set", end, "up"]);
            }
            pairs.push(v);
        }
        let src = pairs.remove(0);
        ns.exec(&["tc", "qdisc", "add", "dev", &src.b, "ingress"]);
        Topo {
            ns,
            src,
            recs: pairs,
        }
    }

    /// Mirrors everything arriving on the traffic veth to the given recorders' veths.
    fn mirror_to(&self, which: &[usize]) {
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            self.ns.name(),
            "tc",
            "filter",
            "del",
            "dev",
            &self.src.b,
            "parent",
            "ffff:",
        ]);
        let mut args: Vec<String> = [
            "tc",
            "filter",
            "add",
            "dev",
            &self.src.b,
            "parent",
            "ffff:",
            "protocol",
            "all",
            "prio",
            "1",
            "u32",
            "match",
            "u32",
            "0",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (i, r) in which.iter().enumerate() {
            if i > 0 {
                args.push("pipe".into());
            }
            for s in [
                "action",
                "mirred",
                "egress",
                "mirror",
                "dev",
                &self.recs[*r].a,
            ] {
                args.push(s.to_string());
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ns.exec(&refs);
    }

    fn replay(&self, pcap: &Path, pps: u32) {
        // tcpreplay exits non-zero when a frame could not be sent; the counts checked later
        // tell.
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            self.ns.name(),
            "tcpreplay",
            "-q",
            &format!("--pps={pps}"),
            "-i",
            &self.src.a,
            pcap.to_str().unwrap(),
        ]);
    }
}

/// A running `xdprec capture --iface`, killed on drop if still running.
struct Recorder {
    child: Child,
    stats: PathBuf,
    log: PathBuf,
}

impl Recorder {
    fn start(ns: &Netns, iface: &str, store: &Path, name: &str) -> Recorder {
        std::fs::create_dir_all(store).unwrap();
        let log = store.with_extension("log");
        let f = std::fs::File::create(&log).unwrap();
        let child = ns
            .command(BIN)
            .args(["capture", "--iface", iface, "--store"])
            .arg(store)
            .args(["--recorder", name, "--ring-size", "8192"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn xdprec capture");
        let stats = store.join("stats").join(format!("{name}-{iface}-q0.stats"));
        let mut r = Recorder { child, stats, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(r.alive(), "capture exited early:\n{}", r.log_text());
            let pid = u64::from(r.child.id());
            if let Ok(s) = StatsReader::open(&r.stats) {
                if s.read()
                    .map(|s| s.seq >= 2 && s.pid == pid)
                    .unwrap_or(false)
                {
                    return r;
                }
            }
            assert!(
                Instant::now() < deadline,
                "capture not ready:\n{}",
                r.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn written(&self) -> u64 {
        StatsReader::open(&self.stats)
            .and_then(|r| r.read())
            .map(|s| s.get(Field::Written))
            .unwrap_or(0)
    }

    /// Waits (bounded) until `n` records are written.
    fn wait_written(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.written() < n {
            assert!(
                Instant::now() < deadline,
                "recorder wrote {} of {n} records:\n{}",
                self.written(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        sh(&["kill", sig, &self.child.id().to_string()]);
    }

    /// SIGINT, then a bounded wait for a clean exit.
    fn stop(mut self) {
        self.signal("-INT");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(st.success(), "capture failed:\n{}", self.log_text());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "capture did not stop:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Frames the probe steers to the recorder (SIP and RTP here; not the odd keep-alives).
fn steered(frames: &[Frame]) -> u64 {
    let mut c = xdprec_classify::Classifier::new(xdprec_classify::ProbeConfig::default());
    frames
        .iter()
        .filter(|f| c.classify(&f.2).class.is_captured())
        .count() as u64
}

#[test]
fn twon_live() {
    if !require_privileges("twon_live") || !require_tool("twon_live", "tcpreplay") {
        return;
    }
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let pcap = corpus.join("sample-captures/sip-rtp-g711.pcap");
    let frames = read_pcap(&pcap);
    let want = steered(&frames);
    let dir = tmpdir("live");
    let topo = Topo::new(2);
    let (sa, sb) = (dir.join("A"), dir.join("B"));
    let rec_a = Recorder::start(&topo.ns, &topo.recs[0].b, &sa, "A");
    let rec_b = Recorder::start(&topo.ns, &topo.recs[1].b, &sb, "B");
    topo.mirror_to(&[0, 1]);
    topo.replay(&pcap, 2000);
    rec_a.wait_written(want);
    rec_b.wait_written(want);
    let (wa, wb) = (rec_a.written(), rec_b.written());
    rec_a.stop();
    rec_b.stop();
    eprintln!("steered {want}; recorder A wrote {wa}, B wrote {wb}");
    assert_eq!((wa, wb), (want, want));
    let db = dir.join("index.sqlite");
    eprintln!("{}", index(&db, &[&sa, &sb], &[]));
    // Equal copies: the tie goes to the recorder whose name sorts first.
    check_roles(&db, 2, "A", "B");
    // The per-recorder report of a merge of identical copies: every frame once.
    let call = "1-1966@10.0.2.20";
    let (merged, report) = export(&[&sa, &sb], &db, call, &dir.join("m.pcap"), true);
    let (primary, _) = export(&[&sa, &sb], &db, call, &dir.join("p.pcap"), false);
    eprintln!("{report}");
    assert_eq!(merged.len(), primary.len(), "{report}");
    assert_eq!(
        number_before(&report, "duplicates dropped"),
        merged.len() as u64,
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
