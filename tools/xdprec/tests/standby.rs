//! Hot standby on one appliance (privileged): an `--ha` active and a `--standby` capture on
//! the same veth end; synthetic calls at ~100 kpps; `kill -9` of the active mid-stream; the
//! standby must take over and record the rest. Reports the takeover gap in packets (the
//! probe's `no_socket` counter: frames the attached probe found no socket for) and in time
//! (last record of the active to first record of the standby), and the RTP sequence numbers
//! missing over both stores.
//!
//! Bounded: every wait has a deadline; traffic stays inside the namespace the test creates.
//! The bpffs both processes share is mounted by the test outside /sys, because each
//! `ip netns exec` remounts /sys.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xdprec_capture::stats::{Field, Snapshot, StatsReader};
use xdprec_classify::{Class, Counter};
use xdprec_segment::{list_segments, SegmentReader};
use xdprec_testkit::{require_privileges, run, sh, Netns, Veth};

const BIN: &str = env!("CARGO_BIN_EXE_xdprec");
const PPS: u64 = 100_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = run(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(ns: &Netns, args: &[&str], log: PathBuf) -> Proc {
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
    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    fn wait_exit(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process did not exit:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
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

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn snap(store: &Path, recorder: &str, iface: &str) -> Option<Snapshot> {
    let p = store
        .join("stats")
        .join(format!("{recorder}-{iface}-q0.stats"));
    StatsReader::open(&p).ok()?.read().ok()
}

#[derive(Default, Debug)]
struct Stored {
    records: u64,
    first_ns: u64,
    last_ns: u64,
}

/// Records of one recorder; RTP (ssrc -> seqs) collected into `rtp`.
fn stored(store: &Path, recorder: &str, rtp: &mut HashMap<u32, Vec<u16>>) -> Stored {
    let mut s = Stored {
        first_ns: u64::MAX,
        ..Default::default()
    };
    for seg in list_segments(store).unwrap() {
        if seg.recorder != recorder {
            continue;
        }
        let r = SegmentReader::open(&seg.path)
            .unwrap_or_else(|e| panic!("{}: {e}", seg.path.display()));
        for rec in r.records() {
            s.records += 1;
            s.first_ns = s.first_ns.min(rec.ts_ns);
            s.last_ns = s.last_ns.max(rec.ts_ns);
            if rec.class == Class::Rtp {
                // Synthetic RTP: Ethernet + IPv4 + UDP, SSRC at 50..54.
                if let (Some(m), Some(ssrc)) = (rec.rtp, rec.frame.get(50..54)) {
                    let ssrc = u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]);
                    rtp.entry(ssrc).or_default().push(m.seq);
                }
            }
        }
    }
    s
}

/// RTP packets missing inside each stream's stored range (sequence numbers not wrapping in
/// a few seconds of 50 pps per stream).
fn missing(rtp: &mut HashMap<u32, Vec<u16>>) -> u64 {
    let mut n = 0u64;
    for seqs in rtp.values_mut() {
        seqs.sort_unstable();
        seqs.dedup();
        // Unwrap: a stream that wrapped shows a jump of > 32768; split there.
        let mut prev: Option<u16> = None;
        for s in seqs.iter() {
            if let Some(p) = prev {
                let d = s - p;
                if d > 1 && d < 32768 {
                    n += u64::from(d - 1);
                }
            }
            prev = Some(*s);
        }
    }
    n
}

#[test]
fn standby_takes_over_after_kill_9() {
    if !require_privileges("standby_takes_over_after_kill_9") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("xdprec-standby-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bpffs = dir.join("bpffs");
    std::fs::create_dir_all(&bpffs).unwrap();
    sh(&["mount", "-t", "bpf", "bpf", bpffs.to_str().unwrap()]);
    let _mount = Mount(bpffs.clone());
    let run_dir = dir.join("run");
    let store = dir.join("store");

    let ns = Netns::new();
    let mut veth = Veth::new(1);
    veth.move_a(&ns);
    veth.move_b(&ns);
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
    for end in [&veth.a, &veth.b] {
        ns.exec(&["ip", "link", "set", end, "up"]);
    }
    let iface = veth.a.clone();
    let common = |role: &str| -> Vec<String> {
        vec![
            "capture".into(),
            role.into(),
            "--iface".into(),
            iface.clone(),
            "--store".into(),
            store.display().to_string(),
            "--recorder".into(),
            "ha".into(),
            "--ring-size".into(),
            "8192".into(),
            "--bpffs".into(),
            bpffs.display().to_string(),
            "--run-dir".into(),
            run_dir.display().to_string(),
            "--rtp-ports".into(),
            "1024-65535".into(),
        ]
    };
    let a_args = common("--ha");
    let a_refs: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let mut active = Proc::spawn(&ns, &a_refs, dir.join("active.log"));
    let apid = u64::from(active.child.id());
    wait_until(30, "the active capture", || {
        assert!(active.alive(), "active exited:\n{}", active.log_text());
        snap(&store, "ha", &iface).is_some_and(|s| s.pid == apid && s.seq >= 2)
    });
    let s_args = common("--standby");
    let s_refs: Vec<&str> = s_args.iter().map(String::as_str).collect();
    let mut standby = Proc::spawn(&ns, &s_refs, dir.join("standby.log"));
    wait_until(30, "the standby", || {
        assert!(standby.alive(), "standby exited:\n{}", standby.log_text());
        standby.log_text().contains("standby: waiting")
    });
    // A second active is refused while the first holds the lock.
    let out = ns.command(BIN).args(&a_refs).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another capture is active"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ~100 kpps for 4 s: 1000 synthetic calls, paced.
    let sender_log = dir.join("sender.log");
    let mut sender = Proc::spawn(
        &ns,
        &[
            "replay",
            "--iface",
            &veth.b,
            "--synth",
            "1000",
            "--pps",
            &PPS.to_string(),
            "--duration",
            "4",
            "--sender",
            "packet",
        ],
        sender_log,
    );
    wait_until(20, "traffic at the active", || {
        snap(&store, "ha", &iface).is_some_and(|s| s.get(Field::Written) > 50_000)
    });
    let before_kill = snap(&store, "ha", &iface).unwrap();
    sh(&["kill", "-9", &apid.to_string()]);
    let kill_ns = now_ns();
    let _ = active.child.wait();
    assert!(sender.wait_exit(60), "sender failed:\n{}", sender.log_text());
    let sb = "ha.sb";
    wait_until(30, "records of the standby", || {
        snap(&store, sb, &iface).is_some_and(|s| s.get(Field::Written) > 0)
    });
    // Let the standby publish its last snapshot, then stop it cleanly.
    std::thread::sleep(Duration::from_millis(1500));
    sh(&["kill", "-INT", &standby.child.id().to_string()]);
    let ok = standby.wait_exit(60);
    let slog = standby.log_text();
    assert!(ok, "standby failed:\n{slog}");
    assert!(slog.contains("took over"), "{slog}");
    // No standby behind it: the probe was unpinned and detached on its clean exit.
    assert!(
        !bpffs.join("xdprec").join(&iface).join("link").exists(),
        "pins left after the last capture stopped"
    );

    let last = snap(&store, sb, &iface).unwrap();
    let no_socket = last.probe(Counter::NoSocket);
    let redirected = last.probe(Counter::Redirected);
    let mut rtp = HashMap::new();
    let a = stored(&store, "ha", &mut rtp);
    let b = stored(&store, sb, &mut rtp);
    let lost_rtp = missing(&mut rtp);
    let sent_line = sender
        .log_text()
        .lines()
        .find(|l| l.contains("replay: done"))
        .unwrap_or_default()
        .to_string();
    let gap_ms = b.first_ns.saturating_sub(a.last_ns) as f64 / 1e6;
    let drops = |s: &Snapshot| {
        s.get(Field::XskRingFull) + s.get(Field::XskFillEmpty) + s.get(Field::XskRxDropped)
    };
    eprintln!(
        "STANDBY: {sent_line}\nSTANDBY: active stored {} records (written {} before the kill), \
         standby stored {}; probe redirected {redirected}, no_socket {no_socket} \
         (= {:.1} ms at {PPS} pps); time gap last-active -> first-standby record {gap_ms:.1} ms \
         (kill at +{:.1} ms after the active's last record); RTP seqs missing over both stores \
         {lost_rtp}; standby socket drops {}\nSTANDBY: {}",
        a.records,
        before_kill.get(Field::Written),
        b.records,
        no_socket as f64 * 1e3 / PPS as f64,
        kill_ns.saturating_sub(a.last_ns) as f64 / 1e6,
        drops(&last),
        slog.lines()
            .filter(|l| ["took over", "gone", "probes opened", "bound after"]
                .iter()
                .any(|k| l.contains(k)))
            .collect::<Vec<_>>()
            .join("\nSTANDBY: ")
    );
    assert!(a.records > 0 && b.records > 0);
    assert!(
        b.first_ns >= a.first_ns,
        "the standby recorded before the active"
    );
    // Generous bounds (not a timed test): the gap is below 2 s of traffic.
    assert!(no_socket < 2 * PPS, "no_socket {no_socket}");
    assert!(gap_ms < 2000.0, "gap {gap_ms} ms");
    let _ = std::fs::remove_dir_all(&dir);
}
