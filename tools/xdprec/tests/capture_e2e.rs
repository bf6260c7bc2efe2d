//! `xdprec capture` end to end on a veth pair inside a network namespace (privileged):
//! corpus captures replayed with tcpreplay must land in the store exactly (every steered
//! frame, byte for byte, nothing else); kill -9 and restart recovers; a full store is counted,
//! not fatal; `xdprec stat --json` reads a running capture.
//!
//! Bounded: every wait has a deadline; traffic stays inside the namespace the test creates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xdprec_capture::stats::{Field, Snapshot, StatsReader};
use xdprec_classify::{Class, Classifier, ProbeConfig};
use xdprec_pcapio::{LinkType, PcapReader};
use xdprec_segment::{list_segments, SegmentReader, RECORD_FLAG_REASSEMBLED};
use xdprec_testkit::{require_privileges, require_tool, run, sh, Netns, Veth};

mod common;

use common::{now_ns, tmpdir, Mount, Proc, BIN};

const MTU: usize = 3000;

/// A namespace with a veth pair inside, both ends up, IPv6 off (no stray ND/MLD frames).
struct Link {
    ns: Netns,
    veth: Veth,
}

impl Link {
    fn new() -> Link {
        let ns = Netns::new();
        let mut veth = Veth::new(1);
        veth.move_a(&ns);
        veth.move_b(&ns);
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            ns.name(),
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            ns.name(),
            "sysctl",
            "-qw",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        for end in [&veth.a, &veth.b] {
            ns.exec(&["ip", "link", "set", end, "mtu", &MTU.to_string(), "up"]);
        }
        Link { ns, veth }
    }
}

/// Starts `xdprec capture` on the link's `a` end as recorder "e2e" (ring of 8192 unless
/// `extra` sets one) and waits until it records.
fn start_capture(link: &Link, store: &Path, extra: &[&str]) -> Proc {
    let mut args = vec![
        "capture",
        "--iface",
        &link.veth.a,
        "--store",
        store.to_str().unwrap(),
        "--recorder",
        "e2e",
    ];
    if !extra.contains(&"--ring-size") {
        args.extend(["--ring-size", "8192"]);
    }
    args.extend(extra);
    let log = store.with_extension(format!("log{}", now_ns() % 1000));
    let mut cap = Proc::spawn(&link.ns, &args, log);
    let stats = store
        .join("stats")
        .join(format!("e2e-{}-q0.stats", link.veth.a));
    cap.wait_capture_ready(&stats);
    cap
}

/// The stats of queue `q` of `iface` (recorder "e2e"), if published.
fn queue_stats(store: &Path, iface: &str, q: u32) -> Option<Snapshot> {
    let path = store.join("stats").join(format!("e2e-{iface}-q{q}.stats"));
    StatsReader::open(&path).and_then(|r| r.read()).ok()
}

fn snapshot(store: &Path, iface: &str) -> Snapshot {
    queue_stats(store, iface, 0).expect("stats of queue 0")
}

/// Waits until `f(snapshot)` holds (bounded).
fn wait_for(
    store: &Path,
    iface: &str,
    secs: u64,
    what: &str,
    f: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = snapshot(store, iface);
        if f(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Steered frames of an Ethernet capture that fit the MTU: (class, frame).
fn steered(path: &Path) -> Vec<(Class, Vec<u8>)> {
    let mut rd = PcapReader::open(path).unwrap();
    let mut c = Classifier::new(ProbeConfig::default());
    let mut out = Vec::new();
    while let Some(p) = rd.next_packet() {
        let p = p.unwrap();
        assert_eq!(p.link, LinkType::Ethernet);
        // tcpreplay sends what was captured; it cannot send more than the MTU.
        if p.data.len() > MTU + 14 || p.data.len() < 14 || p.data.len() as u32 != p.wire_len {
            continue;
        }
        let k = c.classify(p.data).class;
        if k.is_captured() {
            out.push((k, p.data.to_vec()));
        }
    }
    out
}

/// Every record of the store: (class, frame) of originals, count of reassembled.
fn stored(store: &Path) -> (Vec<(Class, Vec<u8>)>, usize) {
    let mut out = Vec::new();
    let mut synth = 0;
    for s in list_segments(store).unwrap() {
        let r =
            SegmentReader::open(&s.path).unwrap_or_else(|e| panic!("{}: {e}", s.path.display()));
        for rec in r.records() {
            if rec.flags & RECORD_FLAG_REASSEMBLED != 0 {
                synth += 1;
            } else {
                out.push((rec.class, rec.frame.to_vec()));
            }
        }
    }
    (out, synth)
}

fn corpus_file(rel: &str) -> Option<PathBuf> {
    let dir = xdprec_testkit::corpus_dir()?;
    let p = dir.join(rel);
    p.exists().then_some(p)
}

fn replay(link: &Link, file: &Path, extra: &[&str]) {
    let mut args = vec!["ip", "netns", "exec", link.ns.name(), "tcpreplay", "-q"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-i", &link.veth.b]);
    let f = file.to_str().unwrap();
    args.push(f);
    // tcpreplay exits non-zero when some frames could not be sent; the expected set already
    // leaves those out.
    let _ = run(&args);
}

fn background_replay(link: &Link, file: &Path, pps: u32) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            link.ns.name(),
            "tcpreplay",
            "-q",
            "--loop",
            "0",
        ])
        .arg(format!("--pps={pps}"))
        .args(["-i", &link.veth.b])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpreplay")
}

fn sorted(mut v: Vec<(Class, Vec<u8>)>) -> Vec<(Class, Vec<u8>)> {
    v.sort();
    v
}

#[test]
fn replayed_corpus_is_stored_exactly() {
    if !require_privileges("replayed_corpus_is_stored_exactly")
        || !require_tool("capture_e2e", "tcpreplay")
    {
        return;
    }
    let files: Vec<PathBuf> = [
        "sample-captures/sip-rtp-g711.pcap",
        "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
        "sipp-siprec/siprec_dual_channel_udp.pcap",
        "heplify/erspan_sip_ipv4_udp.pcapng",
        "nDPI/rtp.pcapng",
        "heplify/sip_ipv6_udp.pcap",
    ]
    .iter()
    .filter_map(|f| corpus_file(f))
    .collect();
    if files.is_empty() {
        return;
    }
    let link = Link::new();
    let dir = tmpdir("exact");
    let store = dir.join("store");
    // Rings larger than all the steered frames together: a debug build descheduled on a
    // busy machine still loses nothing, so any difference is a real defect.
    let cap = start_capture(&link, &store, &["--ring-size", "32768"]);
    let mut want = Vec::new();
    for f in &files {
        want.extend(steered(f));
        replay(&link, f, &["--topspeed"]);
    }
    // All frames are in once rx_packets stops moving (probe-steered frames only reach us).
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let s = snapshot(&store, &link.veth.a);
        if s.get(Field::RxPackets) >= want.len() as u64 && s.get(Field::RxPackets) == last {
            break;
        }
        last = s.get(Field::RxPackets);
        if Instant::now() > deadline {
            break;
        }
    }
    let (ok, log) = cap.stop();
    assert!(ok, "capture failed:\n{log}");
    let (got, _synth) = stored(&store);
    let s = snapshot(&store, &link.veth.a);
    eprintln!(
        "sent {} steered frames; stored {}; stats {:?}",
        want.len(),
        got.len(),
        Field::ALL
            .iter()
            .map(|f| (f.label(), s.get(*f)))
            .filter(|x| x.1 != 0)
            .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(
        s.get(Field::XskRingFull) + s.get(Field::XskFillEmpty) + s.get(Field::XskRxDropped),
        0
    );
    assert_eq!(got.len(), want.len(), "stored vs steered frame count");
    assert!(
        sorted(got) == sorted(want),
        "stored frames differ from the steered frames"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_then_restart_recovers_and_continues() {
    if !require_privileges("kill_9_then_restart_recovers_and_continues")
        || !require_tool("capture_e2e", "tcpreplay")
    {
        return;
    }
    kill_9_then_restart("kill9", &[]);
}

/// The same with the active and spare files in a tmpfs (`--spool ram`), mounted by the test
/// (the capture runs under `ip netns exec`, in a private mount namespace, where it refuses to
/// mount one itself: checked first): they outlive the killed process, the restart recovers
/// them from the spool, and a clean stop leaves the spool empty.
#[test]
fn kill_9_then_restart_with_the_spool_in_ram() {
    if !require_privileges("kill_9_then_restart_with_the_spool_in_ram")
        || !require_tool("capture_e2e", "tcpreplay")
    {
        return;
    }
    let link = Link::new();
    let dir = tmpdir("spool-refused");
    let store = dir.join("store");
    let out = link
        .ns
        .command(BIN)
        .args(["capture", "--iface", &link.veth.a, "--recorder", "e2e"])
        .args(["--spool", "ram", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    // (Where /proc/1/ns/mnt cannot be read, it cannot tell, and refuses too.)
    assert!(
        err.contains("private mount namespace") || err.contains("cannot be told"),
        "{err}"
    );
    assert!(err.contains("mount -t tmpfs"), "says how: {err}");
    assert!(!is_tmpfs(&xdprec_segment::spool_dir(&store)));
    drop(link);
    let _ = std::fs::remove_dir_all(&dir);
    kill_9_then_restart("kill9ram", &["--spool", "ram"]);
}

fn is_tmpfs(dir: &Path) -> bool {
    run(&["stat", "-f", "-c", "%T", dir.to_str().unwrap()]).is_ok_and(|t| t.trim() == "tmpfs")
}

fn kill_9_then_restart(tag: &str, extra: &[&str]) {
    let Some(file) = corpus_file("heplify/rtp_rtcp_sip_ipv4_udp.pcap") else {
        return;
    };
    let ram = extra.contains(&"ram");
    let link = Link::new();
    let dir = tmpdir(tag);
    let store = dir.join("store");
    let spool = xdprec_segment::spool_dir(&store);
    // Unmounted when done, or when the test fails (before the directory is removed).
    let _spool_mount = Mount(spool.clone());
    if ram {
        std::fs::create_dir_all(&spool).unwrap();
        sh(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=4g",
            "tmpfs",
            spool.to_str().unwrap(),
        ]);
    }
    let args: Vec<&str> = ["--seal-secs", "600"]
        .iter()
        .chain(extra)
        .copied()
        .collect();
    let mut sender = background_replay(&link, &file, 3000);
    let mut cap = start_capture(&link, &store, &args);
    let iface = link.veth.a.clone();
    let before = wait_for(&store, &iface, 30, "records before the kill", |s| {
        s.get(Field::Written) >= 2000
    });
    cap.signal("-9");
    let kill_ns = now_ns();
    let _ = cap.wait_exit(30);
    drop(cap);
    // The segment of the killed capture is still open (unsealed).
    let open_before: Vec<_> = list_segments(&store)
        .unwrap()
        .into_iter()
        .filter(|s| !s.sealed)
        .collect();
    assert!(
        !open_before.is_empty(),
        "a killed capture leaves an open segment"
    );
    for s in &open_before {
        let want = if ram {
            &spool
        } else {
            &xdprec_segment::segments_dir(&store)
        };
        assert_eq!(s.path.parent(), Some(want.as_path()), "{s:?}");
    }
    assert_eq!(
        is_tmpfs(&spool),
        ram,
        "the spool is a tmpfs with --spool ram only"
    );

    let restart_ns = now_ns();
    let cap = start_capture(&link, &store, &args);
    wait_for(&store, &iface, 30, "records after the restart", |s| {
        s.get(Field::Written) >= 1000
    });
    // stat reads the running capture; the numbers move between its two rows.
    let out = Command::new(BIN)
        .args([
            "stat",
            "--json",
            "--count",
            "2",
            "--interval",
            "1",
            "--store",
        ])
        .arg(&store)
        .output()
        .expect("xdprec stat");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2, "one row per core per interval");
    for r in &rows {
        for k in [
            "time",
            "core",
            "queue",
            "iface",
            "pps",
            "mbps",
            "rx_packets",
            "rx_bytes",
            "written",
            "drops_ring_full",
            "drops_fill_empty",
            "invalid_descs",
            "disk_full",
            "active_streams",
            "ring_fill",
            "p99_write_us",
            "max_loop_gap_ns",
            "run_delay_ns",
            "steal_ns",
            "involuntary_switches",
        ] {
            assert!(r.get(k).is_some(), "field {k} missing in {r}");
        }
        assert_eq!(r["iface"], serde_json::Value::from(iface.clone()));
        assert!(r["pps"].as_f64().unwrap() > 0.0, "{r}");
        // Measured: time passes between two looks at the ring. (How long it is depends on
        // the machine, so no bound is asserted.)
        assert!(r["max_loop_gap_ns"].as_u64().unwrap() > 0, "{r}");
    }
    assert!(rows[1]["rx_packets"].as_u64() > rows[0]["rx_packets"].as_u64());
    // Counters sampled by the control thread from procfs only grow.
    for k in ["run_delay_ns", "steal_ns", "involuntary_switches"] {
        assert!(rows[1][k].as_u64() >= rows[0][k].as_u64(), "{k}: {rows:?}");
    }
    let (ok, log) = cap.stop();
    let _ = sender.kill();
    let _ = sender.wait();
    assert!(ok, "capture failed:\n{log}");

    // Everything sealed; every record readable; the records up to the kill are there.
    let segs = list_segments(&store).unwrap();
    assert!(segs.iter().all(|s| s.sealed), "{segs:?}");
    let mut before_kill = 0u64;
    let mut after_restart = 0u64;
    for s in &segs {
        let r = SegmentReader::open(&s.path).unwrap();
        for rec in r.records() {
            if rec.ts_ns <= kill_ns {
                before_kill += 1;
            } else if rec.ts_ns >= restart_ns {
                after_restart += 1;
            }
        }
    }
    assert!(
        before_kill >= before.get(Field::Written),
        "{before_kill} records before the kill, stats said {} were written",
        before.get(Field::Written)
    );
    assert!(after_restart >= 1000);
    if ram {
        assert!(
            is_tmpfs(&spool),
            "a spool mounted by someone else stays mounted"
        );
        assert_eq!(
            std::fs::read_dir(&spool).unwrap().count(),
            0,
            "spool emptied"
        );
        let segs_dir = xdprec_segment::segments_dir(&store);
        assert!(segs
            .iter()
            .all(|s| s.path.parent() == Some(segs_dir.as_path())));
    }
    drop(_spool_mount);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs mount removed on drop.
#[test]
fn full_store_is_counted_not_fatal() {
    if !require_privileges("full_store_is_counted_not_fatal")
        || !require_tool("capture_e2e", "tcpreplay")
    {
        return;
    }
    let Some(file) = corpus_file("heplify/rtp_rtcp_sip_ipv4_udp.pcap") else {
        return;
    };
    let link = Link::new();
    let dir = tmpdir("full");
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=6m",
        "tmpfs",
        store.to_str().unwrap(),
    ]);
    let mount = Mount(store.clone());
    let mut cap = start_capture(&link, &store, &["--segment-mb", "1"]);
    let iface = link.veth.a.clone();
    // About 0.9 MB a pass: 12 passes overflow the 6 MB store.
    // Paced so that a debug build keeps up: the drops this test wants are disk-full ones.
    replay(&link, &file, &["--pps=20000", "--loop", "12"]);
    let s = wait_for(&store, &iface, 30, "disk-full drops", |s| {
        s.get(Field::DiskFull) > 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        cap.alive(),
        "capture died on a full store:\n{}",
        cap.log_text()
    );
    assert!(s.get(Field::Written) > 0);
    let (ok, log) = cap.stop();
    assert!(ok, "capture failed:\n{log}");
    assert!(
        log.contains("store full"),
        "no log line about the full store:\n{log}"
    );
    let last = snapshot(&store, &iface);
    // No corruption: every segment opens and every record reads; the count matches.
    let (got, synth) = stored(&store);
    assert_eq!(
        (got.len() + synth) as u64,
        last.get(Field::Written),
        "records in the store vs written"
    );
    let g = |f| last.get(f);
    assert_eq!(
        g(Field::RxPackets) + g(Field::Reassembled) - g(Field::ReasmNotCaptured),
        g(Field::Written)
            + g(Field::DiskFull)
            + g(Field::WriteErrors)
            + g(Field::ClassOther)
            + g(Field::DupDropped),
        "every frame (and reassembled datagram) is written or counted: {:?}",
        Field::ALL
            .iter()
            .map(|f| (f.label(), last.get(*f)))
            .filter(|(_, v)| *v != 0)
            .collect::<Vec<_>>()
    );
    // Unmounted first: a mount point cannot be removed.
    drop(mount);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_settings_fail_before_anything_starts() {
    let dir = tmpdir("bad");
    let store = dir.join("store");
    for (args, needle) in [
        (vec!["--iface", "lo", "--sip-ports", "0"], "port 0"),
        (
            vec!["--iface", "lo", "--rtp-ports", "3000-2000"],
            "rtp-ports",
        ),
        (vec!["--iface", "nonexistent0"], "does not exist"),
        (vec!["--iface", "lo", "--queues", "7"], "queue 7"),
        (vec!["--iface", "lo", "--cores", "4096"], "core 4096"),
        (vec!["--iface", "lo", "--xdp-mode", "turbo"], "turbo"),
    ] {
        let out = Command::new(BIN)
            .arg("capture")
            .args(&args)
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!store.join("stats").exists(), "{args:?} started something");
    }
    for (toml, needle) in [
        ("sip_ports = [0]\n", "port 0"),
        ("ifcae = \"lo\"\n", "unknown field"),
        ("rtp_ports = \"9-1\"\n", "LO is greater than HI"),
    ] {
        let cfg = dir.join("bad.toml");
        std::fs::write(&cfg, toml).unwrap();
        let out = Command::new(BIN)
            .args(["capture", "--iface", "lo", "--config"])
            .arg(&cfg)
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{toml}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two interfaces (`--iface` twice): one probe and one thread each, one stats file each, and
/// each interface's frames in its own segments.
#[test]
fn two_interfaces_are_captured_side_by_side() {
    if !require_privileges("two_interfaces_are_captured_side_by_side")
        || !require_tool("capture_e2e", "tcpreplay")
    {
        return;
    }
    let (Some(f1), Some(f2)) = (
        corpus_file("sample-captures/sip-rtp-g711.pcap"),
        corpus_file("sample-captures/sip-rtp-g722.pcap"),
    ) else {
        return;
    };
    let link = Link::new();
    let mut second = Veth::new(1);
    second.move_a(&link.ns);
    second.move_b(&link.ns);
    for end in [&second.a, &second.b] {
        link.ns
            .exec(&["ip", "link", "set", end, "mtu", &MTU.to_string(), "up"]);
    }
    let dir = tmpdir("two");
    let store = dir.join("store");
    // Also the non-default paths: capture threads that block in poll() when idle
    // (`--idle-us 0`), and housekeeping threads pinned to a core of their own.
    let cap = start_capture(
        &link,
        &store,
        &[
            "--iface",
            &second.a,
            "--idle-us",
            "0",
            "--housekeeping-cores",
            "0",
        ],
    );
    let want1 = steered(&f1);
    let want2 = steered(&f2);
    replay(&link, &f1, &["--topspeed"]);
    let _ = run(&[
        "ip",
        "netns",
        "exec",
        link.ns.name(),
        "tcpreplay",
        "-q",
        "--topspeed",
        "-i",
        &second.b,
        f2.to_str().unwrap(),
    ]);
    wait_for(&store, &link.veth.a, 20, "first interface", |s| {
        s.get(Field::Written) >= want1.len() as u64
    });
    wait_for(&store, &second.a, 20, "second interface", |s| {
        s.get(Field::Written) >= want2.len() as u64
    });
    let (ok, log) = cap.stop();
    assert!(ok, "capture failed:\n{log}");
    assert!(
        log.contains("housekeeping threads on core(s) [0]"),
        "housekeeping cores not applied:\n{log}"
    );
    let mut per_iface: BTreeMap<String, Vec<(Class, Vec<u8>)>> = BTreeMap::new();
    for s in list_segments(&store).unwrap() {
        let r = SegmentReader::open(&s.path).unwrap();
        let v = per_iface.entry(s.iface.clone()).or_default();
        for rec in r.records() {
            if rec.flags & RECORD_FLAG_REASSEMBLED == 0 {
                v.push((rec.class, rec.frame.to_vec()));
            }
        }
    }
    assert!(sorted(per_iface.remove(&link.veth.a).unwrap_or_default()) == sorted(want1));
    assert!(sorted(per_iface.remove(&second.a).unwrap_or_default()) == sorted(want2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A two-queue device: one socket and one thread per queue (default `--queues`), one stats
/// file each; whatever queue a frame arrives on, it is stored once.
#[test]
fn every_queue_of_a_device_is_captured() {
    if !require_privileges("every_queue_of_a_device_is_captured")
        || !require_tool("capture_e2e", "tcpreplay")
        || !require_tool("capture_e2e", "taskset")
    {
        return;
    }
    let Some(file) = corpus_file("sample-captures/sip-rtp-g711.pcap") else {
        return;
    };
    let ns = Netns::new();
    let mut veth = Veth::new(2);
    veth.move_a(&ns);
    veth.move_b(&ns);
    let _ = run(&[
        "ip",
        "netns",
        "exec",
        ns.name(),
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
    ]);
    for end in [&veth.a, &veth.b] {
        ns.exec(&["ip", "link", "set", end, "up"]);
    }
    let link = Link { ns, veth };
    let dir = tmpdir("queues");
    let store = dir.join("store");
    // The same file is sent twice, once per CPU: copies less than the dedup window apart would
    // be stored once (dup_dropped), and the second send often starts within 50 ms.
    let cap = start_capture(&link, &store, &["--dedup-window-ms", "0"]);
    let q1 = store
        .join("stats")
        .join(format!("e2e-{}-q1.stats", link.veth.a));
    assert!(q1.exists(), "no stats file for queue 1");
    // AF_PACKET senders land on the queue of the CPU they run on: send from each CPU.
    let mut want = Vec::new();
    let cpus = xdprec_capture::config::allowed_cores();
    for cpu in cpus.iter().take(2) {
        want.extend(steered(&file));
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            link.ns.name(),
            "taskset",
            "-c",
            &cpu.to_string(),
            "tcpreplay",
            "-q",
            "--topspeed",
            "-i",
            &link.veth.b,
            file.to_str().unwrap(),
        ]);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let total = || -> u64 {
        (0..2)
            .filter_map(|q| queue_stats(&store, &link.veth.a, q))
            .map(|s| s.get(Field::Written))
            .sum()
    };
    while total() < want.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, log) = cap.stop();
    assert!(ok, "capture failed:\n{log}");
    let (got, _) = stored(&store);
    let counts = (0..2)
        .map(|q| {
            queue_stats(&store, &link.veth.a, q)
                .map(|s| {
                    Field::ALL
                        .iter()
                        .map(|f| (f.label(), s.get(*f)))
                        .filter(|(_, v)| *v != 0)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect::<Vec<_>>();
    assert!(
        sorted(got.clone()) == sorted(want.clone()),
        "stored frames differ: {} stored, {} sent; per queue {counts:?}",
        got.len(),
        want.len()
    );
    let queues: std::collections::BTreeSet<u32> = list_segments(&store)
        .unwrap()
        .iter()
        .map(|s| s.queue)
        .collect();
    eprintln!("segments from queues {queues:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `xdprec capture --pcap`: no privileges, the summary per class, segments named after the
/// recorder.
#[test]
fn pcap_import_from_the_command_line() {
    let Some(file) = corpus_file("heplify/rtp_rtcp_sip_ipv4_udp.pcap") else {
        return;
    };
    let dir = tmpdir("cli-import");
    let store = dir.join("store");
    let out = Command::new(BIN)
        .args(["capture", "--pcap"])
        .arg(&file)
        .arg("--store")
        .arg(&store)
        .args(["--recorder", "imp1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let want = steered(&file);
    let sip = want.iter().filter(|w| w.0 == Class::Sip).count();
    let rtp = want.iter().filter(|w| w.0 == Class::Rtp).count();
    assert!(text.contains(&format!("sip {sip} rtp {rtp} ")), "{text}");
    let segs = list_segments(&store).unwrap();
    assert!(!segs.is_empty() && segs.iter().all(|s| s.recorder == "imp1" && s.sealed));
    let (got, _) = stored(&store);
    assert!(sorted(got) == sorted(want));
    let _ = std::fs::remove_dir_all(&dir);
}
