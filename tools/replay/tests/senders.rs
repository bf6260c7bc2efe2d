//! Privileged: each sender, from one end of a veth pair in a network namespace, delivers
//! exactly the K frames it was asked to send to the peer.

use std::sync::atomic::AtomicBool;
use xdprec_replay::{
    enter_netns, run, EndReason, Limits, LiveSender, MonotonicClock, Pace, PacketSender, Sender,
    Synth, SynthConfig,
};
use xdprec_testkit::{require_privileges, Netns, Veth};

fn rx_packets(ns: &Netns, dev: &str) -> u64 {
    xdprec_testkit::link_counter(ns, dev, "rx_packets")
}

fn pair() -> (Netns, Veth) {
    let (ns, v) = xdprec_testkit::quiet_pair(1);
    // Live frames leave a veth through ndo_xdp_xmit, which needs NAPI on the peer.
    ns.exec(&["ethtool", "-K", &v.b, "gro", "on"]);
    (ns, v)
}

/// Sends K synthetic frames with the sender `open` makes (in the namespace); returns what the
/// sender counted and what the peer received.
fn send_k(k: u64, pace: Pace, open: fn(&str) -> Box<dyn Sender>) -> (u64, u64) {
    let (ns, v) = pair();
    let before = rx_packets(&ns, &v.b);
    let (name, iface) = (ns.name().to_string(), v.a.clone());
    let sent = std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        let mut sender = open(&iface);
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
            sender.as_mut(),
            pace,
            limits,
            &MonotonicClock::new(),
            &stop,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(s.end, Some(EndReason::FramesMax), "{s:?}");
        assert_eq!(s.errors, 0, "{s:?}");
        s.packets
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
    (sent, got)
}

#[test]
fn packet_sender_delivers_exactly_k() {
    if !require_privileges("packet_sender_delivers_exactly_k") {
        return;
    }
    let (sent, got) = send_k(4000, Pace::Pps(40_000), |i| {
        Box::new(PacketSender::open(i).unwrap())
    });
    assert_eq!((sent, got), (4000, 4000));
}

#[test]
fn live_frames_sender_delivers_exactly_k() {
    if !require_privileges("live_frames_sender_delivers_exactly_k") {
        return;
    }
    let (sent, got) = send_k(4000, Pace::Pps(40_000), |i| {
        Box::new(LiveSender::open(i, xdprec_probe::REPLAY_TX_OBJECT).unwrap())
    });
    assert_eq!((sent, got), (4000, 4000));
}

#[test]
fn top_speed_senders_lose_nothing_on_veth() {
    if !require_privileges("top_speed_senders_lose_nothing_on_veth") {
        return;
    }
    let (sent, got) = send_k(20_000, Pace::TopSpeed, |i| {
        Box::new(PacketSender::open(i).unwrap())
    });
    assert_eq!((sent, got), (20_000, 20_000));
    let (sent, got) = send_k(20_000, Pace::TopSpeed, |i| {
        Box::new(LiveSender::open(i, xdprec_probe::REPLAY_TX_OBJECT).unwrap())
    });
    assert_eq!((sent, got), (20_000, 20_000));
}
