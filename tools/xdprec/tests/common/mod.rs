//! Helpers shared by the `xdprec` CLI integration tests: running the binary, temporary
//! directories, pcap reading and writing, store records, the JSON of `xdprec calls`, and the
//! live set-up (a network namespace with veths mirrored by tc to recorders running
//! `xdprec capture --iface`).
//!
//! Each test file includes this with `mod common;`; not every file uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use xdprec_capture::stats::{Field, StatsReader};
use xdprec_pcapio::{PcapReader, PcapWriter};
use xdprec_segment::{list_segments, SegmentReader};
use xdprec_testkit::{run, sh, Netns, Veth};

pub const BIN: &str = env!("CARGO_BIN_EXE_xdprec");

/// Runs `xdprec args`, asserts it succeeded: (stdout, stderr).
pub fn xdprec(args: &[&str]) -> (String, String) {
    let out = Command::new(BIN).args(args).output().expect("run xdprec");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "xdprec {args:?} failed:\n{o}\n{e}");
    (o, e)
}

/// A fresh, empty directory for one test: `xdprec-<test file>-<tag>-<pid>` in the temp dir.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "xdprec-{}-{tag}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Wall clock in ns since 1970.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A file system mounted on the path by the test, lazily unmounted when dropped (drop it
/// before removing the directory: a mount point cannot be removed).
pub struct Mount(pub PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = run(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

/// Whether a capture's log says the probe is attached and every capture thread runs: only
/// then are steered frames recorded. Its stats files exist earlier, one queue at a time,
/// while later queues still prepare their segments.
pub fn capture_running(log: &str) -> bool {
    log.contains("capture thread(s) running")
}

/// A directory removed when dropped (also when the test fails).
pub struct Tmp(pub PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (timestamp ns, wire length, bytes) of a frame.
pub type Frame = (u64, u32, Vec<u8>);

/// Every frame of a pcap.
pub fn read_pcap(path: &Path) -> Vec<Frame> {
    let mut r = PcapReader::open(path).expect("open pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("packet");
        out.push((p.ts_ns, p.wire_len, p.data.to_vec()));
    }
    out
}

pub fn write_pcap(path: &Path, frames: &[Frame]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), 262_144).unwrap();
    for (ts, len, data) in frames {
        w.write_packet(*ts, *len, data).unwrap();
    }
    w.flush().unwrap();
}

/// Every record of every segment of a store: (timestamp ns, frame), segment by segment.
pub fn store_records(store: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for s in list_segments(store).unwrap() {
        let r = SegmentReader::open(&s.path).unwrap();
        for rec in r.records() {
            out.push((rec.ts_ns, rec.frame.to_vec()));
        }
    }
    out
}

/// One JSON object a line, as `xdprec calls --json` writes them.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

/// `xdprec calls --db DB --json EXTRA...`.
pub fn calls(db: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["calls", "--db", db.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    json_lines(&xdprec(&args).0)
}

/// `xdprec calls --store STORE --json EXTRA...` (the index in the store).
pub fn store_calls(store: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["calls", "--store", store.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    json_lines(&xdprec(&args).0)
}

/// `xdprec capture --pcap PCAP --store STORE --recorder NAME`.
pub fn import(pcap: &Path, store: &Path, recorder: &str) {
    import_with(pcap, store, recorder, &[]);
}

/// `xdprec capture --pcap PCAP --store STORE --recorder NAME EXTRA...`: its stdout (the
/// summary).
pub fn import_with(pcap: &Path, store: &Path, recorder: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "capture",
        "--pcap",
        pcap.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--recorder",
        recorder,
    ];
    args.extend_from_slice(extra);
    xdprec(&args).0
}

/// `xdprec index --store S... --db DB EXTRA...`: its stderr (the log).
pub fn index(db: &Path, stores: &[&Path], extra: &[&str]) -> String {
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

/// `xdprec export` of a call as pcap (with `--merge` if asked): (frames, stderr).
pub fn export(
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

/// The number just before `what` in `text` ("12 from B" -> 12).
pub fn number_before(text: &str, what: &str) -> u64 {
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

/// The number just after `what` in `text` ("duplicates dropped 12" -> 12).
pub fn number_after(text: &str, what: &str) -> u64 {
    let i = text
        .find(what)
        .unwrap_or_else(|| panic!("`{what}` not in {text}"));
    text[i + what.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{what}` in {text}"))
}

/// Frames the probe steers to the recorder (SIP and RTP here; not the odd keep-alives).
pub fn steered(frames: &[Frame]) -> u64 {
    let mut c = xdprec_classify::Classifier::new(xdprec_classify::ProbeConfig::default());
    frames
        .iter()
        .filter(|f| c.classify(&f.2).class.is_captured())
        .count() as u64
}

/// A namespace with a traffic veth (tcpreplay sends on `src.a`, frames arrive at `src.b`)
/// and one veth per recorder (`rec.b` captured, `rec.a` the mirror's target).
pub struct Topo {
    pub ns: Netns,
    pub src: Veth,
    pub recs: Vec<Veth>,
}

impl Topo {
    pub fn new(recorders: usize) -> Topo {
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
    pub fn mirror_to(&self, which: &[usize]) {
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

    pub fn replay(&self, pcap: &Path, pps: u32) {
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

/// A running `xdprec` (any subcommand) inside a namespace, its stdout and stderr in `log`;
/// killed on drop if still running. Every wait is bounded.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(ns: &Netns, args: &[&str], log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        let child = ns
            .command(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn xdprec");
        Proc { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal: "-INT", "-9", "-STOP"...
    pub fn signal(&self, sig: &str) {
        sh(&["kill", sig, &self.pid().to_string()]);
    }

    /// Waits up to `secs` for the exit; whether it succeeded. Kills it and panics after that.
    pub fn wait_exit(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("xdprec did not exit in {secs} s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGINT, then (bounded) whether it exited cleanly, and its log.
    pub fn stop(mut self) -> (bool, String) {
        self.signal("-INT");
        let ok = self.wait_exit(60);
        (ok, self.log_text())
    }

    /// Waits (bounded) until a capture is ready: its stats file `stats` published at least
    /// twice by this process (the pid tells it from one a killed predecessor left) and its
    /// log says every capture thread runs (`capture_running`).
    pub fn wait_capture_ready(&mut self, stats: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = u64::from(self.pid());
        loop {
            assert!(self.alive(), "capture exited early:\n{}", self.log_text());
            let published = StatsReader::open(stats)
                .and_then(|r| r.read())
                .map(|s| s.seq >= 2 && s.pid == pid)
                .unwrap_or(false);
            if published && capture_running(&self.log_text()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "capture not ready:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `xdprec capture --iface` for the live 2N and failover tests.
pub struct Recorder {
    proc: Proc,
    stats: PathBuf,
}

impl Recorder {
    pub fn start(ns: &Netns, iface: &str, store: &Path, name: &str) -> Recorder {
        std::fs::create_dir_all(store).unwrap();
        let store_arg = store.to_str().unwrap();
        let args = [
            "capture",
            "--iface",
            iface,
            "--store",
            store_arg,
            "--recorder",
            name,
            "--ring-size",
            "8192",
        ];
        let mut proc = Proc::spawn(ns, &args, store.with_extension("log"));
        let stats = store.join("stats").join(format!("{name}-{iface}-q0.stats"));
        proc.wait_capture_ready(&stats);
        Recorder { proc, stats }
    }

    pub fn alive(&mut self) -> bool {
        self.proc.alive()
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    pub fn written(&self) -> u64 {
        StatsReader::open(&self.stats)
            .and_then(|r| r.read())
            .map(|s| s.get(Field::Written))
            .unwrap_or(0)
    }

    /// Waits (bounded) until `n` records are written.
    pub fn wait_written(&self, n: u64) {
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

    /// SIGINT; asserts a clean exit (bounded wait).
    pub fn stop(self) {
        let (ok, log) = self.proc.stop();
        assert!(ok, "capture failed:\n{log}");
    }

    /// SIGKILL: the recorder dies without closing its segment.
    pub fn kill9(mut self) {
        self.proc.signal("-9");
        let _ = self.proc.wait_exit(30);
    }
}
