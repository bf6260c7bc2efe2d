//! Privileged: the AF_XDP sender, from one end of a veth pair in a network namespace (copy
//! mode: veth has no AF_XDP zero-copy), delivers exactly the K frames it was asked to send to
//! the peer, paced and at top speed, and gives every UMEM frame back.

use std::sync::atomic::AtomicBool;
use xdprec_replay::{
    enter_netns, run, AfXdpSender, EndReason, Limits, MonotonicClock, Pace, Sender, Synth,
    SynthConfig,
};
use xdprec_testkit::{require_privileges, Netns};

fn rx_packets(ns: &Netns, dev: &str) -> u64 {
    xdprec_testkit::link_counter(ns, dev, "rx_packets")
}

/// Sends K synthetic frames with the AF_XDP sender (in the namespace); returns what the
/// sender counted, what the peer received, and the frames still in flight after `finish`.
fn send_k(k: u64, pace: Pace) -> (u64, u64, usize) {
    let (ns, v) = xdprec_testkit::quiet_pair(1);
    let before = rx_packets(&ns, &v.b);
    let (name, iface) = (ns.name().to_string(), v.a.clone());
    let (sent, in_flight) = std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        let mut sender = AfXdpSender::open(&iface).unwrap();
        assert!(!sender.zero_copy(), "veth has no AF_XDP zero-copy");
        let mut cfg = SynthConfig::new(100);
        cfg.cps = Some(100_000.0);
        cfg.generations = None;
        let mut src = Synth::new(cfg).unwrap();
        let stop = AtomicBool::new(false);
        let limits = Limits {
            duration_ns: Some(20_000_000_000),
            frames_max: Some(k),
        };
        let s = run(
            &mut src,
            &mut sender as &mut dyn Sender,
            pace,
            limits,
            &MonotonicClock::new(),
            &stop,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(s.end, Some(EndReason::FramesMax), "{s:?}");
        assert_eq!(s.errors, 0, "{s:?}");
        let c = sender.counters();
        assert_eq!(
            (c.too_long, c.kick_errors, c.unfinished),
            (0, 0, 0),
            "{c:?}"
        );
        let (invalid, _) = sender.kernel_statistics().unwrap();
        assert_eq!(invalid, 0);
        (s.packets, sender.in_flight())
    })
    .join()
    .unwrap();
    let mut got = 0;
    for _ in 0..50 {
        got = rx_packets(&ns, &v.b) - before;
        if got >= k {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (sent, got, in_flight)
}

#[test]
fn afxdp_sender_delivers_exactly_k() {
    if !require_privileges("afxdp_sender_delivers_exactly_k") {
        return;
    }
    assert_eq!(send_k(4000, Pace::Pps(40_000)), (4000, 4000, 0));
}

#[test]
fn afxdp_sender_at_top_speed_reuses_frames_and_loses_nothing() {
    if !require_privileges("afxdp_sender_at_top_speed_reuses_frames_and_loses_nothing") {
        return;
    }
    // 5x the UMEM's frames: only completed frames coming back lets it finish.
    let k = 5 * u64::from(xdprec_replay::afxdp::UMEM_FRAMES);
    assert_eq!(send_k(k, Pace::TopSpeed), (k, k, 0));
}

#[test]
fn afxdp_sender_refuses_a_missing_interface() {
    if !require_privileges("afxdp_sender_refuses_a_missing_interface") {
        return;
    }
    let e = AfXdpSender::open("xdprec-nonexistent0")
        .err()
        .expect("no such interface");
    assert!(e.to_string().contains("xdprec-nonexistent0"), "{e}");
}

#[test]
fn afxdp_sender_counts_frames_longer_than_the_mtu_as_errors() {
    if !require_privileges("afxdp_sender_counts_frames_longer_than_the_mtu_as_errors") {
        return;
    }
    let (ns, v) = xdprec_testkit::quiet_pair(1);
    let before = rx_packets(&ns, &v.b);
    let (name, iface) = (ns.name().to_string(), v.a.clone());
    let (r, c) = std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        let mut s = AfXdpSender::open(&iface).unwrap();
        // MTU 1500: 1518 bytes fit (one VLAN tag allowed), 1519 do not.
        assert_eq!(s.frame_bytes_max(), 1518);
        let mut f = vec![0xffu8; 1519];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let short = f[..100].to_vec();
        let frames = [
            xdprec_replay::sender::Frame {
                ts_ns: 0,
                wire_len: 100,
                data: &short,
            },
            xdprec_replay::sender::Frame {
                ts_ns: 1,
                wire_len: 1519,
                data: &f,
            },
            xdprec_replay::sender::Frame {
                ts_ns: 2,
                wire_len: 100,
                data: &short,
            },
        ];
        let r = s.send(&frames).unwrap();
        s.finish().unwrap();
        (r, s.counters())
    })
    .join()
    .unwrap();
    assert_eq!((r.consumed, r.sent, r.errors, r.bytes), (3, 2, 1, 200));
    assert_eq!((c.too_long, c.unfinished), (1, 0));
    let mut got = 0;
    for _ in 0..50 {
        got = rx_packets(&ns, &v.b) - before;
        if got >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(got, 2);
}
