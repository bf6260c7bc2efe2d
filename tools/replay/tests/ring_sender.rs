//! Privileged: the live-ring sender (BPF_PROG_RUN live frames of preloaded templates) delivers
//! exactly the packets it counted, all of them different: the first pass is the source's
//! frames in order, later passes continue each RTP stream's sequence numbers.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use xdprec_replay::{
    enter_netns, run, EndReason, FrameSource, Limits, MonotonicClock, Pace, RingSender, Synth,
    SynthConfig, Ticks,
};
use xdprec_testkit::{require_privileges, require_tool, Netns};

const TEMPLATES: usize = 3000;
const PER_CALL: u32 = 1000;
const CALLS: u64 = 10;

fn synth() -> Synth {
    let mut cfg = SynthConfig::new(200);
    cfg.cps = Some(100_000.0);
    cfg.generations = None;
    cfg.seed = 7;
    Synth::new(cfg).unwrap()
}

fn rx_packets(ns: &Netns, dev: &str) -> u64 {
    xdprec_testkit::link_counter(ns, dev, "rx_packets")
}

/// RTP (ssrc, seq) of a frame built by `Synth` (UDP/IPv4, no VLAN), if it is RTP.
fn rtp_key(f: &[u8]) -> Option<(u32, u16)> {
    if f.len() < 54 || f[12..14] != [8, 0] || f[23] != 17 {
        return None;
    }
    let sport = u16::from_be_bytes([f[34], f[35]]);
    let rtp = 42;
    if sport == 5060 || f[rtp] >> 6 != 2 || (72..=76).contains(&(f[rtp + 1] & 0x7f)) {
        return None;
    }
    Some((
        u32::from_be_bytes([f[rtp + 8], f[rtp + 9], f[rtp + 10], f[rtp + 11]]),
        u16::from_be_bytes([f[rtp + 2], f[rtp + 3]]),
    ))
}

#[test]
fn ring_sender_sends_distinct_frames_exactly() {
    if !require_privileges("ring_sender_sends_distinct_frames_exactly")
        || !require_tool("ring_sender_sends_distinct_frames_exactly", "tcpdump")
    {
        return;
    }
    let (ns, v) = xdprec_testkit::quiet_pair(1);
    ns.exec(&["ethtool", "-K", &v.b, "gro", "on"]);
    let dir = std::env::temp_dir().join(xdprec_testkit::unique_name("ringtest"));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("peer.pcap");
    let mut td = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "tcpdump",
            "-i",
            &v.b,
            "-n",
            "-U",
            "--immediate-mode",
        ])
        .args(["-B", "65536", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // tcpdump has no "ready" signal: wait for its file header.
    for _ in 0..100 {
        if std::fs::metadata(&pcap).is_ok_and(|m| m.len() >= 24) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = rx_packets(&ns, &v.b);

    let (name, iface) = (ns.name().to_string(), v.a.clone());
    let (sent, counter, templates) = std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        let mut src = synth();
        let mut s = RingSender::open(&iface, xdprec_probe::REPLAY_TX_OBJECT, &mut src, TEMPLATES)
            .unwrap()
            .with_repeat(PER_CALL)
            .with_kernel_batch(64);
        assert_eq!(s.templates(), TEMPLATES);
        assert!(s.rtp_templates > 0);
        let limits = Limits {
            duration_ns: Some(20_000_000_000),
            frames_max: Some(CALLS),
        };
        // 20 kpps: one call of 1000 packets every 50 ms, gentle enough for tcpdump.
        let r = run(
            &mut Ticks,
            &mut s,
            Pace::Pps(20_000),
            limits,
            &MonotonicClock::new(),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.end, Some(EndReason::FramesMax), "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
        (r.packets, s.program_counter().unwrap(), s.templates())
    })
    .join()
    .unwrap();
    let total = CALLS * u64::from(PER_CALL);
    assert_eq!((sent, counter), (total, total));
    let mut got = 0;
    for _ in 0..100 {
        got = rx_packets(&ns, &v.b) - before;
        if got >= total {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(got, total, "peer rx_packets");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &td.id().to_string()])
        .status();
    td.wait().unwrap();

    // The source's first frames that fit a template, for comparison with the first pass.
    let mut src = synth();
    let mut expect = Vec::new();
    let mut buf = vec![0u8; 9216];
    while expect.len() < templates {
        let m = src.next_frame(&mut buf).unwrap().unwrap();
        if m.len <= 256 {
            expect.push(buf[..m.len].to_vec());
        }
    }
    let mut r = xdprec_pcapio::PcapReader::open(&pcap).unwrap();
    let (mut n, mut rtp, mut keys) = (0usize, 0usize, HashSet::new());
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        if n < templates {
            assert_eq!(p.data, &expect[n][..], "frame {n} of the first pass");
        } else {
            // Later passes: the same frame except RTP sequence number and timestamp.
            let e = &expect[n % templates];
            assert_eq!(p.data.len(), e.len());
            if rtp_key(e).is_some() {
                assert_eq!(p.data[..44], e[..44]);
                assert_eq!(p.data[50..], e[50..]);
            } else {
                assert_eq!(p.data, &e[..]);
            }
        }
        if let Some(k) = rtp_key(p.data) {
            rtp += 1;
            keys.insert(k);
        }
        n += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(n as u64, total, "frames tcpdump recorded");
    assert!(rtp as u64 > total * 9 / 10, "{rtp} RTP frames");
    assert_eq!(
        keys.len(),
        rtp,
        "every RTP frame is a different (SSRC, sequence number)"
    );
}
