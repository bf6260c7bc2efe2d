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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xdprec_capture::stats::{Field, Snapshot, StatsReader};
use xdprec_classify::{Class, Counter};
use xdprec_segment::{list_segments, SegmentReader};
use xdprec_testkit::{require_privileges, run, sh, Netns, Veth};

mod common;

use common::{now_ns, Mount, Proc};

const PPS: u64 = 100_000;

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

/// Tests here share the CPU-heavy traffic: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A namespace with a veth pair, a bpffs mounted outside /sys, a lock directory, a store.
struct Rig {
    dir: PathBuf,
    bpffs: PathBuf,
    run_dir: PathBuf,
    store: PathBuf,
    veth: Veth,
    // Drop order: unmount before the namespace goes.
    _mount: Mount,
    ns: Netns,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let dir = std::env::temp_dir().join(format!("xdprec-standby-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bpffs = dir.join("bpffs");
        std::fs::create_dir_all(&bpffs).unwrap();
        sh(&["mount", "-t", "bpf", "bpf", bpffs.to_str().unwrap()]);
        let mount = Mount(bpffs.clone());
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
        Rig {
            run_dir: dir.join("run"),
            store: dir.join("store"),
            dir,
            bpffs,
            veth,
            _mount: mount,
            ns,
        }
    }

    fn capture(&self, role: &str, recorder: &str, log: &str, extra: &[&str]) -> Proc {
        let mut args: Vec<String> = vec![
            "capture".into(),
            role.into(),
            "--iface".into(),
            self.veth.a.clone(),
            "--store".into(),
            self.store.display().to_string(),
            "--recorder".into(),
            recorder.into(),
            "--ring-size".into(),
            "8192".into(),
            "--bpffs".into(),
            self.bpffs.display().to_string(),
            "--run-dir".into(),
            self.run_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn(&self.ns, &refs, self.dir.join(log))
    }

    fn sender(&self, pps: u64, secs: u32) -> Proc {
        Proc::spawn(
            &self.ns,
            &[
                "replay",
                "--iface",
                &self.veth.b,
                "--synth",
                "1000",
                "--pps",
                &pps.to_string(),
                "--duration",
                &secs.to_string(),
                "--sender",
                "packet",
            ],
            self.dir.join(format!("sender-{pps}.log")),
        )
    }

    /// Waits until `p` runs as the active (its stats file, its pid) under `recorder`.
    fn wait_active(&self, p: &mut Proc, recorder: &str) {
        let pid = u64::from(p.pid());
        wait_until(30, "an active capture", || {
            assert!(p.alive(), "capture exited:\n{}", p.log_text());
            snap(&self.store, recorder, &self.veth.a).is_some_and(|s| s.pid == pid && s.seq >= 2)
        });
    }

    /// After a passing test: unmount the bpffs, then remove the directory.
    fn finish(self) {
        let _ = run(&["umount", "-l", self.bpffs.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn wait_standby(&self, p: &mut Proc) {
        wait_until(30, "a waiting standby", || {
            assert!(p.alive(), "standby exited:\n{}", p.log_text());
            p.log_text().contains("standby: waiting")
        });
    }
}

#[test]
fn standby_takes_over_after_kill_9() {
    if !require_privileges("standby_takes_over_after_kill_9") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new("kill9");
    let (store, bpffs, dir) = (rig.store.clone(), rig.bpffs.clone(), rig.dir.clone());
    let iface = rig.veth.a.clone();
    let mut active = rig.capture("--ha", "ha", "active.log", &[]);
    rig.wait_active(&mut active, "ha");
    let apid = u64::from(active.pid());
    let mut standby = rig.capture("--standby", "ha", "standby.log", &[]);
    rig.wait_standby(&mut standby);
    // A second active is refused while the first holds the lock.
    let mut second = rig.capture("--ha", "other", "second.log", &[]);
    assert!(!second.wait_exit(30), "a second active started");
    assert!(
        second.log_text().contains("another capture is active"),
        "{}",
        second.log_text()
    );

    // ~100 kpps for 4 s: 1000 synthetic calls, paced.
    let mut sender = rig.sender(PPS, 4);
    wait_until(20, "traffic at the active", || {
        snap(&store, "ha", &iface).is_some_and(|s| s.get(Field::Written) > 50_000)
    });
    let before_kill = snap(&store, "ha", &iface).unwrap();
    sh(&["kill", "-9", &apid.to_string()]);
    let kill_ns = now_ns();
    let _ = active.wait_exit(30);
    assert!(
        sender.wait_exit(60),
        "sender failed:\n{}",
        sender.log_text()
    );
    let sb = "ha.sb";
    wait_until(30, "records of the standby", || {
        snap(&store, sb, &iface).is_some_and(|s| s.get(Field::Written) > 0)
    });
    // Let the standby publish its last snapshot, then stop it cleanly.
    std::thread::sleep(Duration::from_millis(1500));
    standby.signal("-INT");
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
    // rx_dropped includes the fill-ring-empty drops; ring-full ones are apart.
    let drops = |s: &Snapshot| s.get(Field::XskRingFull) + s.get(Field::XskRxDropped);
    eprintln!(
        "STANDBY: {sent_line}\nSTANDBY: active stored {} records (written {} before the kill), \
         standby stored {}; probe redirected {redirected}, no_socket {no_socket} \
         (= {:.1} ms at {PPS} pps); time gap last-active -> first-standby record {gap_ms:.1} ms \
         (kill at +{:.1} ms after the active's last record); RTP seqs missing over both stores \
         {lost_rtp}; socket drops: active before the kill {}, standby {}\nSTANDBY: {}",
        a.records,
        before_kill.get(Field::Written),
        b.records,
        no_socket as f64 * 1e3 / PPS as f64,
        kill_ns.saturating_sub(a.last_ns) as f64 / 1e6,
        drops(&before_kill),
        drops(&last),
        slog.lines()
            .filter(|l| ["took over", "gone", "probes opened", "socket bound"]
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
    let _ = dir;
    rig.finish();
}

#[test]
fn hung_active_is_replaced_and_a_clean_exit_hands_over() {
    if !require_privileges("hung_active_is_replaced_and_a_clean_exit_hands_over") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new("hung");
    let iface = rig.veth.a.clone();
    let mut active = rig.capture("--ha", "hb", "active.log", &[]);
    rig.wait_active(&mut active, "hb");
    let apid = active.pid();
    let mut standby = rig.capture(
        "--standby",
        "hb",
        "standby.log",
        &["--heartbeat-timeout-ms", "300"],
    );
    rig.wait_standby(&mut standby);
    let mut sender = rig.sender(5_000, 8);
    wait_until(20, "traffic at the active", || {
        snap(&rig.store, "hb", &iface).is_some_and(|s| s.get(Field::Written) > 1000)
    });
    // A hung active: stopped, its sockets still bound. The standby must kill it.
    sh(&["kill", "-STOP", &apid.to_string()]);
    wait_until(20, "the standby to replace the hung active", || {
        snap(&rig.store, "hb.sb", &iface).is_some_and(|s| s.get(Field::Written) > 500)
    });
    let _ = active.wait_exit(30);
    let slog = standby.log_text();
    assert!(slog.contains("is hung"), "{slog}");
    assert!(slog.contains("took over"), "{slog}");

    // The crashed active comes back as a standby: it must record as `hb` (the active is
    // `hb.sb`). Then a clean stop of `hb.sb` hands over to it, the probe staying attached.
    let mut back = rig.capture("--standby", "hb", "back.log", &[]);
    rig.wait_standby(&mut back);
    standby.signal("-INT");
    assert!(standby.wait_exit(60), "{}", standby.log_text());
    assert!(
        standby.log_text().contains("a standby is waiting"),
        "{}",
        standby.log_text()
    );
    let back_pid = u64::from(back.pid());
    wait_until(20, "the restarted capture to take over", || {
        snap(&rig.store, "hb", &iface)
            .is_some_and(|s| s.pid == back_pid && s.get(Field::Written) > 500)
    });
    assert!(sender.wait_exit(60), "{}", sender.log_text());
    back.signal("-INT");
    assert!(back.wait_exit(60), "{}", back.log_text());
    assert!(!rig.bpffs.join("xdprec").join(&iface).join("link").exists());
    let mut rtp = HashMap::new();
    let a = stored(&rig.store, "hb", &mut rtp);
    let b = stored(&rig.store, "hb.sb", &mut rtp);
    eprintln!(
        "HUNG: hb stored {} records, hb.sb {}; RTP seqs missing {}",
        a.records,
        b.records,
        missing(&mut rtp)
    );
    assert!(a.records > 1000 && b.records > 500);
    rig.finish();
}

#[test]
fn stale_pins_of_a_crashed_active_are_cleared() {
    if !require_privileges("stale_pins_of_a_crashed_active_are_cleared") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new("stale");
    let iface = rig.veth.a.clone();
    let mut first = rig.capture("--ha", "st", "first.log", &[]);
    rig.wait_active(&mut first, "st");
    first.signal("-9");
    let _ = first.wait_exit(30);
    // No standby: the pinned probe stays attached, steering into an empty XSKMAP.
    let link = rig.bpffs.join("xdprec").join(&iface).join("link");
    assert!(link.exists(), "the crashed active's link pin is gone");
    let mut next = rig.capture("--ha", "st", "next.log", &[]);
    rig.wait_active(&mut next, "st");
    assert!(
        next.log_text().contains("removed stale probe pins"),
        "{}",
        next.log_text()
    );
    let mut sender = rig.sender(5_000, 2);
    assert!(sender.wait_exit(60), "{}", sender.log_text());
    let pid = u64::from(next.pid());
    wait_until(20, "records of the restarted active", || {
        snap(&rig.store, "st", &iface).is_some_and(|s| s.pid == pid && s.get(Field::Written) > 1000)
    });
    next.signal("-INT");
    assert!(next.wait_exit(60), "{}", next.log_text());
    assert!(!link.exists(), "a clean exit with no standby leaves pins");
    rig.finish();
}
