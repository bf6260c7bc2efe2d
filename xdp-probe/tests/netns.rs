//! The probe on a real interface: a veth pair whose end `b` sits in a fresh network namespace
//! and sends known traffic (a python3 sender run with `ip netns exec`) to end `a`, where the
//! probe is attached, in native mode and in SKB mode. With no socket registered, every
//! classified frame is passed and counted NO_SOCKET.
//!
//! End `a` stays in the test's namespace without an address, and the peer reaches
//! 198.51.100.1 through a static neighbour entry with a MAC that is not `a`'s: the kernel
//! drops the frames after XDP as "for another host", so nothing is answered, routed or
//! forwarded, and IPv6 is disabled on both ends so no neighbour discovery adds frames.

use std::time::{Duration, Instant};

use xdprec_classify::abi::{Counter, COUNTER_MAX};
use xdprec_classify::ProbeConfig;
use xdprec_probe::{
    interface_index, interface_rx_queues, AttachedMode, Counters, Probe, ProbeError, XdpMode,
};
use xdprec_testkit::{sh, Netns, Veth};

use Counter::*;

/// Frames the sender sends, by kind.
#[derive(Clone, Copy)]
struct Traffic {
    sip_5060: u32,
    sip_content: u32,
    rtp: u32,
    rtcp: u32,
    other_udp: u32,
    icmp: u32,
}

impl Traffic {
    fn total(&self) -> u64 {
        u64::from(
            self.sip_5060 + self.sip_content + self.rtp + self.rtcp + self.other_udp + self.icmp,
        )
    }
}

const SENDER: &str = r#"
import socket, struct, sys
src, dst = "198.51.100.2", "198.51.100.1"
n_sip, n_content, n_rtp, n_rtcp, n_udp, n_icmp = map(int, sys.argv[1:7])

def udp(sport, dport, payload, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, sport))
    for _ in range(n):
        s.sendto(payload, (dst, dport))
    s.close()

udp(5060, 5060, b"INVITE sip:bob@198.51.100.1 SIP/2.0\r\nCall-ID: netns-1\r\n\r\n", n_sip)
udp(40000, 7000, b"OPTIONS sip:bob@198.51.100.1 SIP/2.0\r\nCall-ID: netns-2\r\n\r\n", n_content)
udp(40002, 40004, bytes([0x80, 0x00, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4]) + bytes(160), n_rtp)
udp(40003, 40005, bytes([0x80, 200, 0, 6, 1, 2, 3, 4]) + bytes(20), n_rtcp)
udp(40010, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", n_udp)

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for i in range(n_icmp):
    body = struct.pack("!BBHHH", 8, 0, 0, 7, i) + b"xdprec!!"
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    raw.sendto(body, (dst, 0))
"#;

const TRAFFIC: Traffic = Traffic {
    sip_5060: 20,
    sip_content: 10,
    rtp: 50,
    rtcp: 5,
    other_udp: 15,
    icmp: 7,
};

/// A veth pair, `b` in `ns` with 198.51.100.2/24, `a` here, both up, IPv6 off.
struct Link {
    // Field order is drop order: the veth before its namespace.
    veth: Veth,
    ns: Netns,
}

fn setup(queues: u32) -> Link {
    let ns = Netns::new();
    let mut veth = Veth::new(queues);
    veth.move_b(&ns);
    sh(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{}.disable_ipv6=1", veth.a),
    ]);
    sh(&["ip", "link", "set", &veth.a, "up"]);
    ns.exec(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{}.disable_ipv6=1", veth.b),
    ]);
    ns.exec(&["ip", "addr", "add", "198.51.100.2/24", "dev", &veth.b]);
    ns.exec(&["ip", "link", "set", &veth.b, "up"]);
    ns.exec(&[
        "ip",
        "neigh",
        "replace",
        "198.51.100.1",
        "lladdr",
        "02:00:5e:00:53:01",
        "dev",
        &veth.b,
        "nud",
        "permanent",
    ]);
    Link { veth, ns }
}

fn send(link: &Link, t: Traffic) {
    let args: Vec<String> = [
        t.sip_5060,
        t.sip_content,
        t.rtp,
        t.rtcp,
        t.other_udp,
        t.icmp,
    ]
    .iter()
    .map(|n| n.to_string())
    .collect();
    let mut cmd: Vec<&str> = vec!["python3", "-c", SENDER];
    cmd.extend(args.iter().map(String::as_str));
    link.ns.exec(&cmd);
}

/// Waits (at most 5 s) until the probe has seen `frames` frames: on veth the receive side
/// runs in the sender's softirq, but not necessarily before the sender has exited.
fn wait_for(probe: &Probe, frames: u64) -> Counters {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = probe.counters().expect("counters");
        if c[RxPackets as usize] >= frames || Instant::now() >= deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check(c: &Counters, t: Traffic, mode: &str) {
    let get = |x: Counter| c[x as usize];
    let classified = u64::from(t.sip_5060 + t.sip_content + t.rtp + t.rtcp);
    let want: &[(Counter, u64)] = &[
        (RxPackets, t.total()),
        (ClassSipUdp, u64::from(t.sip_5060 + t.sip_content)),
        (SipByContent, u64::from(t.sip_content)),
        (ClassRtp, u64::from(t.rtp)),
        (ClassRtcp, u64::from(t.rtcp)),
        (ClassOther, u64::from(t.other_udp + t.icmp)),
        (ClassSipTcp, 0),
        (ClassFrag, 0),
        (Ipv4, t.total()),
        (NoSocket, classified),
        (Passed, t.total()),
        (Redirected, 0),
        (Dropped, 0),
        (ParseError, 0),
        (AbiMismatch, 0),
    ];
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, n)| get(*k) != *n)
        .map(|(k, n)| format!("{}: want {n} got {}", k.label(), get(*k)))
        .collect();
    assert!(wrong.is_empty(), "{mode} mode: {}", wrong.join(", "));
}

fn counts_real_traffic(mode: XdpMode, expect: AttachedMode) {
    let link = setup(1);
    let mut probe = Probe::load(&ProbeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let attached = probe
        .attach(&link.veth.a, mode)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(attached, expect);
    send(&link, TRAFFIC);
    let c = wait_for(&probe, TRAFFIC.total());
    check(&c, TRAFFIC, &attached.to_string());
    assert_eq!(c.len(), COUNTER_MAX as usize);
}

#[test]
fn native_mode_counts_real_traffic() {
    if !xdprec_testkit::require_privileges("native_mode_counts_real_traffic") {
        return;
    }
    counts_real_traffic(XdpMode::Native, AttachedMode::Native);
}

#[test]
fn skb_mode_counts_real_traffic() {
    if !xdprec_testkit::require_privileges("skb_mode_counts_real_traffic") {
        return;
    }
    counts_real_traffic(XdpMode::Skb, AttachedMode::Skb);
}

/// veth refuses native XDP when the peer's MTU exceeds one page's worth of frame: the error
/// names the limit, the limit is exact, and Auto falls back to SKB mode.
#[test]
fn large_mtu_is_explained_and_auto_falls_back() {
    if !xdprec_testkit::require_privileges("large_mtu_is_explained_and_auto_falls_back") {
        return;
    }
    let link = setup(1);
    let set_mtu = |mtu: u32| {
        link.ns
            .exec(&["ip", "link", "set", &link.veth.b, "mtu", &mtu.to_string()])
    };
    set_mtu(9000);
    let mut probe = Probe::load(&ProbeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let e = probe.attach(&link.veth.a, XdpMode::Native).unwrap_err();
    let ProbeError::MtuTooLarge { mtu_max, .. } = e else {
        panic!("want MtuTooLarge, got: {e}");
    };
    assert!(
        e.to_string()
            .contains(&format!("lower the MTU to {mtu_max}")),
        "{e}"
    );

    set_mtu(mtu_max + 1);
    let e = probe.attach(&link.veth.a, XdpMode::Native).unwrap_err();
    assert!(
        matches!(e, ProbeError::MtuTooLarge { .. }),
        "at {}: {e}",
        mtu_max + 1
    );
    set_mtu(mtu_max);
    assert_eq!(
        probe.attach(&link.veth.a, XdpMode::Native).unwrap(),
        AttachedMode::Native
    );
    drop(probe);

    set_mtu(9000);
    let mut probe = Probe::load(&ProbeConfig::default()).unwrap();
    assert_eq!(
        probe.attach(&link.veth.a, XdpMode::Auto).unwrap(),
        AttachedMode::Skb
    );
    send(&link, TRAFFIC);
    check(&wait_for(&probe, TRAFFIC.total()), TRAFFIC, "auto (skb)");
}

#[test]
fn interface_queries_and_errors() {
    if !xdprec_testkit::require_privileges("interface_queries_and_errors") {
        return;
    }
    let link = setup(2);
    assert_eq!(interface_rx_queues(&link.veth.a).unwrap(), 2);
    let sys_index =
        std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", link.veth.a)).unwrap();
    assert_eq!(
        interface_index(&link.veth.a).unwrap().to_string(),
        sys_index.trim()
    );

    let mut probe = Probe::load(&ProbeConfig::default()).unwrap();
    let e = probe.attach("xdprec-nope0", XdpMode::Auto).unwrap_err();
    assert!(matches!(e, ProbeError::NoSuchInterface { .. }), "{e}");
    // Two attachments of one probe to one interface: the second is refused and explained.
    probe.attach(&link.veth.a, XdpMode::Skb).unwrap();
    let e = probe.attach(&link.veth.a, XdpMode::Skb).unwrap_err();
    assert!(matches!(e, ProbeError::AttachBusy { .. }), "{e}");
    assert_eq!(probe.attachments().count(), 1);
}
