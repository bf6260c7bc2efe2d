//! One test per rule of xdprec_abi.h and per truncation/parse-error counter. Frames are built
//! by hand (tunnels, odd headers) or with etherparse (cross-checking offsets).

use std::net::{IpAddr, Ipv4Addr};
use xdprec_classify::abi::COUNTER_MAX;
use xdprec_classify::{
    rtp_header, Class, Classification, Classifier, Counter, ProbeConfig, RtpHeaderInfo, Tunnel,
};

// ---------- frame builders ----------

const SRC4: [u8; 4] = [198, 51, 100, 1];
const DST4: [u8; 4] = [203, 0, 113, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn vlan_eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for t in tags {
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&[0x00, 0x64]); // TCI: VLAN 100
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn ipv4_full(proto: u8, payload: &[u8], frag: u16, options: &[u8]) -> Vec<u8> {
    let ihl = 20 + options.len();
    let mut v = vec![0x40 | (ihl / 4) as u8, 0];
    v.extend_from_slice(&((ihl + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0x12, 0x34]);
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&SRC4);
    v.extend_from_slice(&DST4);
    v.extend_from_slice(options);
    v.extend_from_slice(payload);
    v
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(proto, payload, 0, &[])
}

fn ipv6_ext(nh: u8, exts: &[(u8, Vec<u8>)], payload: &[u8]) -> Vec<u8> {
    // exts: (type, body incl. the 2 leading bytes which are overwritten) chained in order.
    let mut chain = Vec::new();
    let mut first = nh;
    for (i, (t, body)) in exts.iter().enumerate().rev() {
        let mut b = body.clone();
        b[0] = first;
        if *t != 44 {
            b[1] = (b.len() / 8 - 1) as u8;
        }
        let _ = i;
        chain.splice(0..0, b);
        first = *t;
    }
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&((chain.len() + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[first, 64]);
    v.extend_from_slice(&SRC6);
    v.extend_from_slice(&DST6);
    v.extend_from_slice(&chain);
    v.extend_from_slice(payload);
    v
}

fn ipv6(nh: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_ext(nh, &[], payload)
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

fn tcp_opts(sport: u16, dport: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = sport.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    v.push((((20 + options.len()) / 4) as u8) << 4);
    v.extend_from_slice(&[0x18, 0xff, 0xff, 0, 0, 0, 0]);
    v.extend_from_slice(options);
    v.extend_from_slice(payload);
    v
}

fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    tcp_opts(sport, dport, &[], payload)
}

fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth(0x0800, &ipv4(17, &udp(sport, dport, payload)))
}

fn gre(flags: u16, proto: u16, extra: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = flags.to_be_bytes().to_vec();
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(extra);
    v.extend_from_slice(payload);
    v
}

fn rtp(pt: u8, cc: u8, payload_bytes: usize) -> Vec<u8> {
    let mut v = vec![
        0x80 | cc,
        pt,
        0x12,
        0x34,
        0,
        0,
        0x01,
        0x00,
        0xde,
        0xad,
        0xbe,
        0xef,
    ];
    v.extend(std::iter::repeat_n(0xd5, 4 * cc as usize + payload_bytes));
    v
}

const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n";

// ---------- helpers ----------

fn classifier() -> Classifier {
    Classifier::new(ProbeConfig::default())
}

/// Classifies with a fresh classifier; checks the one-class-counter invariant.
fn run(frame: &[u8]) -> (Classification, [u64; COUNTER_MAX as usize]) {
    let mut c = classifier();
    let r = c.classify(frame);
    let k = *c.counters();
    check_invariants(&r, &k, frame.len());
    (r, k)
}

fn check_invariants(r: &Classification, k: &[u64; COUNTER_MAX as usize], len: usize) {
    let classes = [
        Counter::ClassSipUdp,
        Counter::ClassSipTcp,
        Counter::ClassRtp,
        Counter::ClassRtcp,
        Counter::ClassFrag,
        Counter::ClassOther,
    ];
    assert_eq!(classes.iter().map(|&c| k[c as usize]).sum::<u64>(), 1);
    assert_eq!(k[Counter::RxPackets as usize], 1);
    assert_eq!(k[Counter::RxBytes as usize], len as u64);
    let errors = [
        Counter::ParseError,
        Counter::TruncEth,
        Counter::TruncVlan,
        Counter::TruncIpv4,
        Counter::TruncIpv6,
        Counter::TruncIpv6Ext,
        Counter::TruncUdp,
        Counter::TruncTcp,
        Counter::TruncTunnel,
        Counter::Ipv6ExtLimit,
        Counter::GtpuExtLimit,
    ];
    let errs: u64 = errors.iter().map(|&c| k[c as usize]).sum();
    assert_eq!(errs, u64::from(r.error.is_some()));
    if let Some(e) = r.error {
        assert_eq!(k[e as usize], 1);
        assert_eq!(r.class, Class::Other);
    }
    assert!(r.payload.start <= r.payload.end && r.payload.end <= len);
}

fn class_of(frame: &[u8]) -> Class {
    run(frame).0.class
}

fn error_of(frame: &[u8]) -> Option<Counter> {
    run(frame).0.error
}

// ---------- rule 4: UDP ----------

#[test]
fn udp_sip_by_port_either_direction() {
    for (s, d) in [(5060, 40000), (40000, 5060)] {
        let (r, k) = run(&udp4(s, d, b"garbage"));
        assert_eq!(r.class, Class::Sip);
        assert_eq!(k[Counter::ClassSipUdp as usize], 1);
        assert!(!r.sip_by_content);
        let t = r.tuple.unwrap();
        assert_eq!((t.src_port, t.dst_port, t.proto), (s, d, 17));
        assert_eq!(t.src, IpAddr::V4(Ipv4Addr::from(SRC4)));
        assert_eq!(r.l3_offset, Some(14));
        assert_eq!(r.payload, 42..49);
    }
}

#[test]
fn udp_sip_by_content_every_first_line() {
    for m in [
        "INVITE ",
        "ACK ",
        "BYE ",
        "CANCEL ",
        "OPTIONS ",
        "REGISTER ",
        "PRACK ",
        "SUBSCRIBE ",
        "NOTIFY ",
        "PUBLISH ",
        "INFO ",
        "REFER ",
        "MESSAGE ",
        "UPDATE ",
        "SIP/2.0 ",
    ] {
        let payload = format!("{m}sip:x SIP/2.0\r\n");
        let (r, k) = run(&udp4(40000, 40002, payload.as_bytes()));
        assert_eq!(r.class, Class::Sip, "{m}");
        assert!(r.sip_by_content);
        assert_eq!(k[Counter::SipByContent as usize], 1);
        // The token alone (exactly its length) is enough.
        assert_eq!(
            class_of(&udp4(40000, 40002, m.as_bytes())),
            Class::Sip,
            "{m}"
        );
        // One byte short, wrong case, or no space: not SIP.
        let short = &m.as_bytes()[..m.len() - 1];
        assert_ne!(class_of(&udp4(40000, 3, short)), Class::Sip, "{m}");
        let lower = m.to_lowercase();
        assert_ne!(
            class_of(&udp4(40000, 3, lower.as_bytes())),
            Class::Sip,
            "{m}"
        );
    }
    assert_eq!(class_of(&udp4(40000, 3, b"INVITEX sip:a")), Class::Other);
}

#[test]
fn udp_sip_by_content_can_be_disabled() {
    let cfg = ProbeConfig {
        sip_by_content: 0,
        ..ProbeConfig::default()
    };
    let mut c = Classifier::new(cfg);
    assert_eq!(c.classify(&udp4(40000, 3, INVITE)).class, Class::Other);
    assert_eq!(c.classify(&udp4(5060, 3, b"x")).class, Class::Sip);
}

#[test]
fn configured_sip_ports() {
    let mut cfg = ProbeConfig::default();
    cfg.sip_ports[1] = 5080;
    cfg.sip_ports[2] = 6060;
    cfg.sip_port_count = 2; // 6060 is not in use
    let mut c = Classifier::new(cfg);
    assert_eq!(c.classify(&udp4(5080, 9, b"x")).class, Class::Sip);
    assert_eq!(c.classify(&udp4(6060, 9, b"x")).class, Class::Other);
}

#[test]
fn rtp_and_rtcp() {
    assert_eq!(class_of(&udp4(10000, 20000, &rtp(0, 0, 160))), Class::Rtp);
    assert_eq!(
        class_of(&udp4(10000, 20000, &rtp(0x80 | 8, 2, 0))),
        Class::Rtp
    );
    assert_eq!(class_of(&udp4(10000, 20000, &rtp(0, 0, 0))), Class::Rtp); // 12 bytes
    assert_eq!(
        class_of(&udp4(10000, 20000, &rtp(0, 0, 0)[..11])),
        Class::Other
    );
    // CSRC list beyond the payload.
    assert_eq!(
        class_of(&udp4(10000, 20000, &rtp(0, 3, 0)[..23])),
        Class::Other
    );
    // Payload types 72..=76 never RTP.
    for pt in 72..=76u8 {
        let mut p = rtp(pt, 0, 20);
        assert_ne!(class_of(&udp4(10000, 20000, &p)), Class::Rtp);
        p[1] = 0x80 | pt; // = 200..204 with the marker: RTCP
        assert_eq!(class_of(&udp4(10000, 20000, &p)), Class::Rtcp, "{pt}");
    }
    // Version 1 / 3: neither.
    for b0 in [0x40u8, 0xc0] {
        let mut p = rtp(0, 0, 20);
        p[0] = b0;
        assert_eq!(class_of(&udp4(10000, 20000, &p)), Class::Other);
    }
    // RTCP needs 8 bytes.
    let rr = [0x81, 201, 0, 7, 1, 2, 3, 4];
    assert_eq!(class_of(&udp4(10001, 20001, &rr)), Class::Rtcp);
    assert_eq!(class_of(&udp4(10001, 20001, &rr[..7])), Class::Other);
    for pt in [199u8, 205] {
        let mut p = rr;
        p[1] = pt;
        assert_ne!(class_of(&udp4(10001, 20001, &p)), Class::Rtcp);
    }
}

#[test]
fn rtp_needs_both_ports_in_range() {
    let cfg = ProbeConfig {
        rtp_port_lo: 10000,
        rtp_port_hi: 20000,
        ..ProbeConfig::default()
    };
    let mut c = Classifier::new(cfg);
    assert_eq!(
        c.classify(&udp4(10000, 20000, &rtp(8, 0, 160))).class,
        Class::Rtp
    );
    assert_eq!(
        c.classify(&udp4(9999, 20000, &rtp(8, 0, 160))).class,
        Class::Other
    );
    assert_eq!(
        c.classify(&udp4(10000, 20001, &rtp(8, 0, 160))).class,
        Class::Other
    );
    // SIP port wins over RTP.
    assert_eq!(
        c.classify(&udp4(5060, 5060, &rtp(8, 0, 160))).class,
        Class::Sip
    );
}

#[test]
fn rtp_header_fields() {
    let p = rtp(0x80 | 8, 1, 10);
    assert_eq!(
        rtp_header(&p),
        Some(RtpHeaderInfo {
            ssrc: 0xdead_beef,
            seq: 0x1234,
            timestamp: 0x100,
            payload_type: 8,
            marker: true,
        })
    );
    assert_eq!(rtp_header(&p[..15]), None);
    assert_eq!(rtp_header(&[]), None);
    assert_eq!(rtp_header(&rtp(72, 0, 0)), None);
}

#[test]
fn ethernet_padding_is_not_payload() {
    // UDP length 8 (no payload); the frame is padded with what looks like SIP.
    let mut f = udp4(40000, 40002, b"");
    f.extend_from_slice(INVITE);
    assert_eq!(class_of(&f), Class::Other);
    // Same for RTP: the declared payload is 4 bytes, the frame holds 16.
    let mut f = udp4(10000, 20000, &rtp(0, 0, 0)[..4]);
    f.extend_from_slice(&[0; 12]);
    assert_eq!(class_of(&f), Class::Other);
}

#[test]
fn truncated_capture_needs_the_bytes_in_the_frame() {
    // The headers declare a full RTP packet, but the capture stops after 11 payload bytes.
    let f = udp4(10000, 20000, &rtp(0, 0, 160));
    let (r, _) = run(&f[..42 + 12]);
    assert_eq!(r.class, Class::Rtp);
    assert_eq!(r.error, None);
    assert_eq!(r.payload, 42..54);
    assert_eq!(run(&f[..42 + 11]).0.class, Class::Other);
    let f = udp4(40000, 40002, INVITE);
    assert_eq!(class_of(&f[..42 + 7]), Class::Sip);
    assert_eq!(class_of(&f[..42 + 6]), Class::Other);
}

// ---------- rule 3: fragments ----------

#[test]
fn ipv4_udp_fragments_are_frag() {
    let first = eth(0x0800, &ipv4_full(17, &udp(5, 6, b"x"), 0x2000, &[]));
    let (r, k) = run(&first);
    assert_eq!(r.class, Class::Frag);
    assert_eq!(k[Counter::ClassFrag as usize], 1);
    let fr = r.frag.unwrap();
    assert_eq!(
        (fr.id, fr.offset_bytes, fr.more, fr.proto),
        (0x1234, 0, true, 17)
    );
    assert_eq!(r.tuple, None);
    assert_eq!(r.payload, 34..43);
    let last = eth(0x0800, &ipv4_full(17, b"rest of it", 185, &[]));
    let r = run(&last).0;
    assert_eq!(r.class, Class::Frag);
    assert_eq!(r.frag.unwrap().offset_bytes, 1480);
    assert!(!r.frag.unwrap().more);
    // Even on a SIP port, a fragment is FRAG (fragments are never looked into).
    let sip_first = eth(
        0x0800,
        &ipv4_full(17, &udp(5060, 5060, INVITE), 0x2000, &[]),
    );
    assert_eq!(class_of(&sip_first), Class::Frag);
    // DF alone is not a fragment.
    assert_eq!(
        class_of(&eth(
            0x0800,
            &ipv4_full(17, &udp(5060, 9, b""), 0x4000, &[])
        )),
        Class::Sip
    );
}

#[test]
fn non_udp_fragments_and_disabled_frags_are_other() {
    let tcp_frag = eth(0x0800, &ipv4_full(6, &tcp(5060, 5060, INVITE), 0x2000, &[]));
    let r = run(&tcp_frag).0;
    assert_eq!((r.class, r.error), (Class::Other, None));
    assert!(r.frag.is_some());
    let cfg = ProbeConfig {
        capture_frags: 0,
        ..ProbeConfig::default()
    };
    let mut c = Classifier::new(cfg);
    let f = eth(0x0800, &ipv4_full(17, b"data", 100, &[]));
    assert_eq!(c.classify(&f).class, Class::Other);
}

#[test]
fn ipv6_fragment_header() {
    let frag_hdr = |off_flags: u16| {
        let mut b = vec![0, 0];
        b.extend_from_slice(&off_flags.to_be_bytes());
        b.extend_from_slice(&0xcafe_f00du32.to_be_bytes());
        b
    };
    let f = eth(
        0x86dd,
        &ipv6_ext(17, &[(44, frag_hdr(0x0001))], &udp(5060, 5060, INVITE)),
    );
    let (r, k) = run(&f);
    assert_eq!(r.class, Class::Frag);
    assert_eq!(k[Counter::Ipv6 as usize], 1);
    let fr = r.frag.unwrap();
    assert_eq!(
        (fr.id, fr.offset_bytes, fr.more, fr.proto),
        (0xcafe_f00d, 0, true, 17)
    );
    // After hop-by-hop; non-first fragment.
    let hbh = vec![0u8; 8];
    let f = eth(
        0x86dd,
        &ipv6_ext(17, &[(0, hbh.clone()), (44, frag_hdr(1480))], b"more data"),
    );
    let r = run(&f).0;
    assert_eq!(r.class, Class::Frag);
    assert_eq!(r.frag.unwrap().offset_bytes, 1480);
    assert!(!r.frag.unwrap().more);
    // A fragment of TCP: OTHER.
    let f = eth(0x86dd, &ipv6_ext(6, &[(44, frag_hdr(8))], b"xx"));
    assert_eq!(class_of(&f), Class::Other);
    // The fragment header ends the chain: a "next header" of 0 after it is not parsed.
    let f = eth(0x86dd, &ipv6_ext(0, &[(44, frag_hdr(8))], b"x"));
    let r = run(&f).0;
    assert_eq!((r.class, r.error), (Class::Other, None));
}

// ---------- rule 5: TCP ----------

#[test]
fn tcp_sip_by_port_and_by_flow() {
    let mut c = classifier();
    let seg = |s, d, p: &[u8]| eth(0x0800, &ipv4(6, &tcp(s, d, p)));
    let r = c.classify(&seg(5060, 40000, b"anything"));
    assert_eq!(r.class, Class::Sip);
    assert_eq!(c.counter(Counter::ClassSipTcp), 1);
    assert_eq!(c.tcp_flows(), 0, "a SIP port does not add the flow");
    // Non-SIP port: a continuation segment is OTHER until the flow shows a first line.
    assert_eq!(
        c.classify(&seg(40000, 6060, b"Via: x\r\n")).class,
        Class::Other
    );
    let r = c.classify(&seg(40000, 6060, INVITE));
    assert!(r.sip_by_content && !r.tcp_flow_hit);
    assert_eq!(c.tcp_flows(), 1);
    // Both directions now hit the flow.
    for (s, d) in [(40000, 6060), (6060, 40000)] {
        let mut f = seg(s, d, b"body bytes");
        if s == 6060 {
            // The reverse direction: swap the addresses too.
            let (a, b) = (f[26..30].to_vec(), f[30..34].to_vec());
            f[26..30].copy_from_slice(&b);
            f[30..34].copy_from_slice(&a);
        }
        let r = c.classify(&f);
        assert_eq!(r.class, Class::Sip);
        assert!(r.tcp_flow_hit);
    }
    assert_eq!(c.counter(Counter::TcpFlowHit), 2);
    assert_eq!(c.counter(Counter::SipByContent), 1);
    // Another flow (other port) does not.
    assert_eq!(c.classify(&seg(40001, 6060, b"x")).class, Class::Other);
    c.clear_tcp_flows();
    assert_eq!(c.classify(&seg(40000, 6060, b"x")).class, Class::Other);
}

#[test]
fn tcp_flow_table_is_bounded_and_counts_evictions() {
    let mut c = Classifier::with_tcp_flows_max(ProbeConfig::default(), 2);
    let seg = |s, p: &[u8]| eth(0x0800, &ipv4(6, &tcp(s, 6060, p)));
    for s in [40000, 40001, 40002] {
        assert_eq!(c.classify(&seg(s, INVITE)).class, Class::Sip);
    }
    assert_eq!(c.tcp_flows(), 2);
    assert_eq!(c.counter(Counter::TcpFlowFull), 1);
    assert_eq!(c.classify(&seg(40000, b"x")).class, Class::Other, "evicted");
    assert_eq!(c.classify(&seg(40002, b"x")).class, Class::Sip);
}

#[test]
fn tcp_ipv6_flow() {
    let mut c = classifier();
    let seg = |p: &[u8]| eth(0x86dd, &ipv6(6, &tcp(40000, 6060, p)));
    assert_eq!(c.classify(&seg(b"SIP/2.0 200 OK\r\n")).class, Class::Sip);
    assert!(c.classify(&seg(b"x")).tcp_flow_hit);
}

#[test]
fn tcp_header_errors() {
    // Header cut by the frame end.
    let f = eth(0x0800, &ipv4(6, &tcp(1, 2, b"")));
    assert_eq!(error_of(&f[..14 + 20 + 19]), Some(Counter::TruncTcp));
    // Data offset < 5.
    let mut t = tcp(1, 2, b"payload");
    t[12] = 4 << 4;
    assert_eq!(
        error_of(&eth(0x0800, &ipv4(6, &t))),
        Some(Counter::ParseError)
    );
    // Data offset beyond the IP payload.
    let mut t = tcp(1, 2, b"");
    t[12] = 6 << 4;
    assert_eq!(
        error_of(&eth(0x0800, &ipv4(6, &t))),
        Some(Counter::ParseError)
    );
    // Options cut by the frame end (the IP header declares them).
    let f = eth(
        0x0800,
        &ipv4(6, &tcp_opts(5060, 2, &[1, 1, 1, 1, 1, 1, 1, 1], b"")),
    );
    assert_eq!(error_of(&f[..f.len() - 2]), Some(Counter::TruncTcp));
    assert_eq!(class_of(&f), Class::Sip);
    // The TCP payload starts after the options.
    let f = eth(0x0800, &ipv4(6, &tcp_opts(40000, 2, &[1, 1, 1, 1], INVITE)));
    let r = run(&f).0;
    assert_eq!(r.class, Class::Sip);
    assert_eq!(r.payload.start, 14 + 20 + 24);
}

// ---------- rule 1: Ethernet, VLAN, IP ----------

#[test]
fn ethernet_errors_and_other_ethertypes() {
    assert_eq!(error_of(&[0u8; 13]), Some(Counter::TruncEth));
    assert_eq!(error_of(&[]), Some(Counter::TruncEth));
    let arp = eth(0x0806, &[0; 28]);
    let r = run(&arp).0;
    assert_eq!((r.class, r.error), (Class::Other, None));
    // PPPoE session frames are not in the rules: OTHER.
    assert_eq!(
        class_of(&eth(0x8864, &[0x11, 0, 0, 1, 0, 10, 0, 0x21])),
        Class::Other
    );
}

#[test]
fn vlan_tags() {
    let inner = ipv4(17, &udp(5060, 5060, b"x"));
    for tags in [&[0x8100u16][..], &[0x88a8, 0x8100], &[0x8100, 0x8100]] {
        let f = vlan_eth(tags, 0x0800, &inner);
        let (r, k) = run(&f);
        assert_eq!(r.class, Class::Sip);
        assert_eq!(r.vlans as usize, tags.len());
        assert_eq!(r.l3_offset, Some(14 + 4 * tags.len()));
        assert_eq!(k[Counter::Vlan as usize], 1);
    }
    // A third tag is an unknown EtherType: OTHER, no error.
    let f = vlan_eth(&[0x8100, 0x8100, 0x8100], 0x0800, &inner);
    let (r, k) = run(&f);
    assert_eq!((r.class, r.error), (Class::Other, None));
    assert_eq!(k[Counter::Vlan as usize], 1);
    // A cut tag.
    let f = vlan_eth(&[0x8100], 0x0800, &inner);
    assert_eq!(error_of(&f[..17]), Some(Counter::TruncVlan));
    let f = vlan_eth(&[0x8100, 0x8100], 0x0800, &inner);
    assert_eq!(error_of(&f[..21]), Some(Counter::TruncVlan));
    assert_eq!(error_of(&f[..22]), Some(Counter::TruncIpv4));
    assert_eq!(run(&udp4(5060, 1, b"")).1[Counter::Vlan as usize], 0);
}

#[test]
fn ipv4_header_errors() {
    let good = udp4(5060, 1, b"x");
    let (_, k) = run(&good);
    assert_eq!(k[Counter::Ipv4 as usize], 1);
    let (r, k) = run(&good[..14 + 19]);
    assert_eq!(r.error, Some(Counter::TruncIpv4));
    assert_eq!(k[Counter::Ipv4 as usize], 1, "counted before parsing");
    let mut bad = good.clone();
    bad[14] = 0x65; // version 6 behind 0x0800
    assert_eq!(error_of(&bad), Some(Counter::ParseError));
    let mut bad = good.clone();
    bad[14] = 0x44; // IHL 4
    assert_eq!(error_of(&bad), Some(Counter::ParseError));
    let mut bad = good.clone();
    bad[16..18].copy_from_slice(&19u16.to_be_bytes()); // total length < IHL*4
    assert_eq!(error_of(&bad), Some(Counter::ParseError));
    // Options: parsed past; cut by the frame end.
    let f = eth(0x0800, &ipv4_full(17, &udp(5060, 1, b""), 0, &[1, 1, 1, 0]));
    let r = run(&f).0;
    assert_eq!(r.class, Class::Sip);
    assert_eq!(r.payload.start, 14 + 24 + 8);
    assert_eq!(error_of(&f[..14 + 22]), Some(Counter::TruncIpv4));
    // IHL 15 with total length 40: options cut before the total length is compared.
    let mut bad = good.clone();
    bad[14] = 0x4f;
    assert_eq!(error_of(&bad), Some(Counter::TruncIpv4));
}

#[test]
fn ipv6_headers_and_extension_limit() {
    let u = udp(5060, 1, b"x");
    let (r, k) = run(&eth(0x86dd, &ipv6(17, &u)));
    assert_eq!(r.class, Class::Sip);
    assert_eq!(k[Counter::Ipv6 as usize], 1);
    assert_eq!(r.l3_offset, Some(14));
    let f = eth(0x86dd, &ipv6(17, &u));
    assert_eq!(error_of(&f[..14 + 39]), Some(Counter::TruncIpv6));
    let mut bad = f.clone();
    bad[14] = 0x40;
    assert_eq!(error_of(&bad), Some(Counter::ParseError));
    // Up to four extension headers are walked.
    let e8 = vec![0u8; 8];
    let e16 = vec![0u8; 16];
    let four = [
        (0, e8.clone()),
        (60, e16.clone()),
        (43, e8.clone()),
        (60, e8.clone()),
    ];
    let f = eth(0x86dd, &ipv6_ext(17, &four, &u));
    let r = run(&f).0;
    assert_eq!(r.class, Class::Sip);
    assert_eq!(r.payload.start, 14 + 40 + 40 + 8);
    // A fifth: IPV6_EXT_LIMIT.
    let mut five = four.to_vec();
    five.push((60, e8.clone()));
    assert_eq!(
        error_of(&eth(0x86dd, &ipv6_ext(17, &five, &u))),
        Some(Counter::Ipv6ExtLimit)
    );
    // Cut inside the first 8 bytes, and inside a longer header.
    let f = eth(0x86dd, &ipv6_ext(17, &[(60, e16)], &u));
    assert_eq!(error_of(&f[..14 + 40 + 7]), Some(Counter::TruncIpv6Ext));
    assert_eq!(error_of(&f[..14 + 40 + 15]), Some(Counter::TruncIpv6Ext));
    assert_eq!(error_of(&f[..14 + 40 + 16 + 7]), Some(Counter::TruncUdp));
}

#[test]
fn ipv6_payload_length_zero_is_the_largest() {
    let mut f = eth(0x86dd, &ipv6(17, &udp(40000, 40002, INVITE)));
    f[18] = 0;
    f[19] = 0;
    assert_eq!(class_of(&f), Class::Sip);
}

// ---------- UDP errors ----------

#[test]
fn udp_header_errors() {
    let f = udp4(5060, 1, b"");
    assert_eq!(error_of(&f[..14 + 20 + 7]), Some(Counter::TruncUdp));
    let mut bad = udp4(5060, 1, b"abc");
    bad[38..40].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(error_of(&bad), Some(Counter::ParseError));
    let mut bad = udp4(5060, 1, b"abc");
    bad[38..40].copy_from_slice(&12u16.to_be_bytes()); // > IP payload (11)
    assert_eq!(error_of(&bad), Some(Counter::ParseError));
    // A UDP length shorter than the IP payload clips the payload.
    let mut f = udp4(40000, 40002, INVITE);
    f[38..40].copy_from_slice(&14u16.to_be_bytes());
    let r = run(&f).0;
    assert_eq!(r.class, Class::Other, "6 bytes: 'INVITE' without its space");
    assert_eq!(r.payload, 42..48);
}

// ---------- rule 2: tunnels ----------

fn inner_sip4() -> Vec<u8> {
    ipv4(17, &udp(40000, 40002, INVITE))
}

#[test]
fn gre_carrying_ip_and_ethernet() {
    let cases: Vec<(Vec<u8>, usize)> = vec![
        (gre(0, 0x0800, &[], &inner_sip4()), 14 + 20 + 4),
        (gre(0x2000, 0x0800, &[0; 4], &inner_sip4()), 14 + 20 + 8),
        (gre(0xb000, 0x0800, &[0; 12], &inner_sip4()), 14 + 20 + 16),
        (
            gre(0, 0x86dd, &[], &ipv6(17, &udp(40000, 40002, INVITE))),
            14 + 20 + 4,
        ),
        (
            gre(0, 0x6558, &[], &eth(0x0800, &inner_sip4())),
            14 + 20 + 4 + 14,
        ),
        (
            gre(0, 0x6558, &[], &vlan_eth(&[0x8100], 0x0800, &inner_sip4())),
            14 + 20 + 4 + 18,
        ),
    ];
    for (g, l3) in cases {
        let (r, k) = run(&eth(0x0800, &ipv4(47, &g)));
        assert_eq!(r.class, Class::Sip);
        assert_eq!(r.tunnel, Tunnel::Gre);
        assert_eq!(r.l3_offset, Some(l3));
        assert!(r.sip_by_content);
        assert_eq!(k[Counter::TunnelGre as usize], 1);
        assert_eq!(
            k[Counter::Ipv4 as usize] + k[Counter::Ipv6 as usize],
            1,
            "outer only"
        );
        assert_eq!(k[Counter::Vlan as usize], 0, "inner tags are not counted");
    }
    // GRE over IPv6.
    let r = run(&eth(0x86dd, &ipv6(47, &gre(0, 0x0800, &[], &inner_sip4())))).0;
    assert_eq!((r.class, r.tunnel), (Class::Sip, Tunnel::Gre));
}

#[test]
fn gre_errors() {
    let ok = eth(
        0x0800,
        &ipv4(47, &gre(0x2000, 0x0800, &[0; 4], &inner_sip4())),
    );
    let (r, k) = run(&ok[..14 + 20 + 3]);
    assert_eq!(r.error, Some(Counter::TruncTunnel));
    assert_eq!(
        k[Counter::TunnelGre as usize],
        1,
        "counted as soon as IP says GRE"
    );
    assert_eq!(error_of(&ok[..14 + 20 + 7]), Some(Counter::TruncTunnel));
    // A cut inner header counts its own layer.
    assert_eq!(error_of(&ok[..14 + 20 + 8 + 10]), Some(Counter::TruncIpv4));
    for flags in [0x0002u16, 0x4000] {
        let f = eth(
            0x0800,
            &ipv4(47, &gre(flags, 0x0800, &[0; 8], &inner_sip4())),
        );
        assert_eq!(error_of(&f), Some(Counter::ParseError), "{flags:x}");
    }
    // Unknown protocol: OTHER.
    let f = eth(0x0800, &ipv4(47, &gre(0, 0x1234, &[], &inner_sip4())));
    let r = run(&f).0;
    assert_eq!(
        (r.class, r.error, r.tunnel),
        (Class::Other, None, Tunnel::Gre)
    );
}

#[test]
fn enhanced_gre_with_ppp() {
    let ppp = |addr: bool, proto: u16, inner: &[u8]| {
        let mut v = if addr { vec![0xff, 0x03] } else { vec![] };
        v.extend_from_slice(&proto.to_be_bytes());
        v.extend_from_slice(inner);
        v
    };
    // Version 1 with K; with S; with S and A (0x3081, as nDPI/gre.pcapng).
    for (flags, extra) in [(0x3001u16, 8usize), (0x2001, 4), (0x3081, 12)] {
        for addr in [true, false] {
            let g = gre(
                flags,
                0x880b,
                &vec![0; extra],
                &ppp(addr, 0x0021, &inner_sip4()),
            );
            let r = run(&eth(0x0800, &ipv4(47, &g))).0;
            assert_eq!(
                (r.class, r.tunnel),
                (Class::Sip, Tunnel::Gre),
                "{flags:x} {addr}"
            );
        }
    }
    let g = gre(
        0x2001,
        0x880b,
        &[0; 4],
        &ppp(true, 0x0057, &ipv6(17, &udp(5060, 1, b""))),
    );
    assert_eq!(class_of(&eth(0x0800, &ipv4(47, &g))), Class::Sip);
    let g = gre(0x2001, 0x880b, &[0; 4], &ppp(true, 0xc021, &inner_sip4())); // LCP
    let r = run(&eth(0x0800, &ipv4(47, &g))).0;
    assert_eq!((r.class, r.error), (Class::Other, None));
    // Cut PPP header.
    let g = gre(0x2001, 0x880b, &[0; 4], &[0xff, 0x03, 0x00]);
    assert_eq!(
        error_of(&eth(0x0800, &ipv4(47, &g))),
        Some(Counter::TruncTunnel)
    );
    let g = gre(0x2001, 0x880b, &[0; 4], &[0x00]);
    assert_eq!(
        error_of(&eth(0x0800, &ipv4(47, &g))),
        Some(Counter::TruncTunnel)
    );
}

#[test]
fn erspan_types() {
    let inner = eth(0x0800, &inner_sip4());
    let ty2 = |v: u8| {
        let mut h = vec![v << 4, 0x64, 0, 1, 0, 0, 0, 0];
        h.extend_from_slice(&inner);
        h
    };
    let ty3 = |v: u8, o: bool, ft: u8| {
        let mut h = vec![v << 4, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, ft << 2, u8::from(o)];
        if o {
            h.extend_from_slice(&[0; 8]);
        }
        h.extend_from_slice(&inner);
        h
    };
    let wrap = |flags: u16, proto: u16, extra: usize, body: &[u8]| {
        eth(0x0800, &ipv4(47, &gre(flags, proto, &vec![0; extra], body)))
    };
    // Type I: no sequence number, no ERSPAN header.
    let cases = [
        (wrap(0, 0x88be, 0, &inner), 14 + 20 + 4 + 14),
        (wrap(0x1000, 0x88be, 4, &ty2(1)), 14 + 20 + 8 + 8 + 14),
        (
            wrap(0x1000, 0x22eb, 4, &ty3(2, false, 0)),
            14 + 20 + 8 + 12 + 14,
        ),
        (
            wrap(0x1000, 0x22eb, 4, &ty3(2, true, 0)),
            14 + 20 + 8 + 20 + 14,
        ),
    ];
    for (f, l3) in cases {
        let (r, k) = run(&f);
        assert_eq!((r.class, r.tunnel), (Class::Sip, Tunnel::Erspan));
        assert_eq!(r.l3_offset, Some(l3));
        assert_eq!(k[Counter::TunnelErspan as usize], 1);
        assert_eq!(k[Counter::TunnelGre as usize], 1);
    }
    assert_eq!(
        error_of(&wrap(0x1000, 0x88be, 4, &ty2(2))),
        Some(Counter::ParseError)
    );
    assert_eq!(
        error_of(&wrap(0x1000, 0x22eb, 4, &ty3(1, false, 0))),
        Some(Counter::ParseError)
    );
    let r = run(&wrap(0x1000, 0x22eb, 4, &ty3(2, false, 2))).0;
    assert_eq!(
        (r.class, r.error),
        (Class::Other, None),
        "frame type IP is not unwrapped"
    );
    assert_eq!(
        error_of(&wrap(0x1000, 0x88be, 4, &ty2(1)[..7])),
        Some(Counter::TruncTunnel)
    );
    assert_eq!(
        error_of(&wrap(0x1000, 0x22eb, 4, &ty3(2, true, 0)[..19])),
        Some(Counter::TruncTunnel)
    );
    assert_eq!(
        error_of(&wrap(0x1000, 0x22eb, 4, &ty3(2, false, 0)[..11])),
        Some(Counter::TruncTunnel)
    );
    assert_eq!(
        error_of(&wrap(0x1000, 0x22eb, 4, &ty3(2, false, 0)[..12 + 13])),
        Some(Counter::TruncEth)
    );
}

#[test]
fn vxlan() {
    let body = |flags: u8| {
        let mut v = vec![flags, 0, 0, 0, 0, 0, 42, 0];
        v.extend_from_slice(&eth(0x0800, &inner_sip4()));
        v
    };
    let (r, k) = run(&udp4(50000, 4789, &body(0x08)));
    assert_eq!((r.class, r.tunnel), (Class::Sip, Tunnel::Vxlan));
    assert_eq!(r.l3_offset, Some(42 + 8 + 14));
    assert_eq!(k[Counter::TunnelVxlan as usize], 1);
    assert_eq!(r.tuple.unwrap().dst_port, 40002, "the inner tuple");
    let (r, k) = run(&udp4(50000, 4789, &body(0)));
    assert_eq!(r.error, Some(Counter::ParseError));
    assert_eq!(k[Counter::TunnelVxlan as usize], 1);
    assert_eq!(
        error_of(&udp4(50000, 4789, &body(0x08)[..7])),
        Some(Counter::TruncTunnel)
    );
    // The tunnel port wins over a SIP port.
    let mut cfg = ProbeConfig::default();
    cfg.sip_ports[0] = 4789;
    let mut c = Classifier::new(cfg);
    let r = c.classify(&udp4(50000, 4789, &body(0x08)[..8]));
    assert_eq!((r.class, r.error), (Class::Other, Some(Counter::TruncEth)));
    // Only the destination port announces VXLAN.
    assert_eq!(run(&udp4(4789, 50000, &body(0x08))).0.tunnel, Tunnel::None);
}

#[test]
fn gtpu() {
    let gtp = |flags: u8, ty: u8, opt: &[u8], inner: &[u8]| {
        let mut v = vec![flags, ty, 0, 0, 0, 0, 0, 1];
        v.extend_from_slice(opt);
        v.extend_from_slice(inner);
        v
    };
    let inner = inner_sip4();
    let (r, k) = run(&udp4(2152, 2152, &gtp(0x30, 255, &[], &inner)));
    assert_eq!((r.class, r.tunnel), (Class::Sip, Tunnel::Gtpu));
    assert_eq!(r.l3_offset, Some(42 + 8));
    assert_eq!(k[Counter::TunnelGtpu as usize], 1);
    // Sequence number; extension headers (PDU session container, 4 bytes).
    assert_eq!(
        class_of(&udp4(1, 2152, &gtp(0x32, 255, &[0, 1, 0, 0], &inner))),
        Class::Sip
    );
    let ext = [0, 1, 0, 0x85, 1, 0x10, 0x01, 0x00];
    let r = run(&udp4(1, 2152, &gtp(0x34, 255, &ext, &inner))).0;
    assert_eq!(r.class, Class::Sip);
    assert_eq!(r.l3_offset, Some(42 + 16));
    // The next-type byte is ignored without E.
    assert_eq!(
        class_of(&udp4(1, 2152, &gtp(0x32, 255, &[0, 1, 0, 0x85], &inner))),
        Class::Sip
    );
    // Five chained extension headers: limit.
    let mut many = vec![0, 1, 0, 0x85];
    for _ in 0..5 {
        many.extend_from_slice(&[1, 0, 0, 0x85]);
    }
    let f = udp4(1, 2152, &gtp(0x34, 255, &many, &inner));
    assert_eq!(error_of(&f), Some(Counter::GtpuExtLimit));
    let f = udp4(
        1,
        2152,
        &gtp(0x34, 255, &[0, 1, 0, 0x85, 0, 0, 0, 0], &inner),
    );
    assert_eq!(
        error_of(&f),
        Some(Counter::ParseError),
        "extension length 0"
    );
    let f = udp4(1, 2152, &gtp(0x34, 255, &[0, 1, 0, 0x85, 2, 0, 0, 0], &[]));
    assert_eq!(error_of(&f), Some(Counter::TruncTunnel), "extension cut");
    let f = udp4(1, 2152, &gtp(0x34, 255, &[0, 1, 0], &[]));
    assert_eq!(error_of(&f), Some(Counter::TruncTunnel), "options cut");
    assert_eq!(
        error_of(&udp4(1, 2152, &gtp(0x30, 255, &[], &[])[..7])),
        Some(Counter::TruncTunnel)
    );
    assert_eq!(
        error_of(&udp4(1, 2152, &gtp(0x30, 255, &[], &[]))),
        Some(Counter::TruncTunnel)
    );
    // Version 2 or GTP': parse error. Echo request: OTHER.
    assert_eq!(
        error_of(&udp4(1, 2152, &gtp(0x50, 255, &[], &inner))),
        Some(Counter::ParseError)
    );
    assert_eq!(
        error_of(&udp4(1, 2152, &gtp(0x20, 255, &[], &inner))),
        Some(Counter::ParseError)
    );
    let (r, k) = run(&udp4(1, 2152, &gtp(0x30, 1, &[], &inner)));
    assert_eq!((r.class, r.error), (Class::Other, None));
    assert_eq!(k[Counter::TunnelGtpu as usize], 1);
    // Inner not IP: OTHER.
    let r = run(&udp4(1, 2152, &gtp(0x30, 255, &[], &[0x00, 1, 2]))).0;
    assert_eq!((r.class, r.error), (Class::Other, None));
    // IPv6 inside.
    let r = run(&udp4(
        1,
        2152,
        &gtp(0x30, 255, &[], &ipv6(17, &udp(5060, 1, b""))),
    ))
    .0;
    assert_eq!(r.class, Class::Sip);
}

#[test]
fn ip_in_ip() {
    let (r, k) = run(&eth(0x0800, &ipv4(4, &inner_sip4())));
    assert_eq!(
        (r.class, r.tunnel, r.l3_offset),
        (Class::Sip, Tunnel::IpIp, Some(34))
    );
    assert_eq!(k[Counter::TunnelIpip as usize], 1);
    let r = run(&eth(0x86dd, &ipv6(41, &ipv6(17, &udp(5060, 1, b""))))).0;
    assert_eq!(
        (r.class, r.tunnel, r.l3_offset),
        (Class::Sip, Tunnel::IpIp, Some(54))
    );
    let r = run(&eth(0x0800, &ipv4(41, &ipv6(6, &tcp(1, 5060, b""))))).0;
    assert_eq!(r.class, Class::Sip);
    // Cut inner header: its own layer.
    let f = eth(0x0800, &ipv4(4, &inner_sip4()));
    assert_eq!(error_of(&f[..34 + 10]), Some(Counter::TruncIpv4));
    // Inner version mismatch.
    let f = eth(0x0800, &ipv4(4, &ipv6(17, &udp(5060, 1, b""))));
    assert_eq!(error_of(&f), Some(Counter::ParseError));
}

#[test]
fn one_tunnel_level_only() {
    let nested = [
        eth(0x0800, &ipv4(4, &ipv4(4, &inner_sip4()))),
        eth(
            0x0800,
            &ipv4(4, &ipv4(47, &gre(0, 0x0800, &[], &inner_sip4()))),
        ),
        eth(
            0x0800,
            &ipv4(47, &gre(0, 0x86dd, &[], &ipv6(41, &[0x60; 60]))),
        ),
    ];
    for f in nested {
        let r = run(&f).0;
        assert_eq!((r.class, r.error), (Class::Other, None));
    }
    // UDP to 4789 inside a tunnel is plain UDP: here SIP by content.
    let vx = {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        v.extend_from_slice(INVITE);
        v
    };
    let f = eth(0x0800, &ipv4(4, &ipv4(17, &udp(40000, 4789, &vx))));
    let r = run(&f).0;
    assert_eq!((r.class, r.tunnel), (Class::Other, Tunnel::IpIp));
    let f = eth(0x0800, &ipv4(4, &ipv4(17, &udp(40000, 4789, INVITE))));
    assert_eq!(run(&f).0.class, Class::Sip);
}

#[test]
fn inner_fragment_is_frag() {
    let f = eth(
        0x0800,
        &ipv4(
            47,
            &gre(0, 0x0800, &[], &ipv4_full(17, b"abc", 0x2000, &[])),
        ),
    );
    let r = run(&f).0;
    assert_eq!((r.class, r.tunnel), (Class::Frag, Tunnel::Gre));
}

// ---------- entry points, config, counters ----------

#[test]
fn classify_ip_for_raw_links() {
    let mut c = classifier();
    assert_eq!(c.classify_ip(&inner_sip4()).class, Class::Sip);
    let r = c.classify_ip(&ipv6(17, &udp(5060, 1, b"")));
    assert_eq!((r.class, r.l3_offset), (Class::Sip, Some(0)));
    assert_eq!(c.classify_ip(&[]).error, Some(Counter::TruncIpv4));
    assert_eq!(c.classify_ip(&[0x50; 40]).error, Some(Counter::ParseError));
    assert_eq!(c.counter(Counter::RxPackets), 4);
}

#[test]
fn abi_mismatch_classifies_nothing() {
    let cfg = ProbeConfig {
        abi_version: 99,
        ..ProbeConfig::default()
    };
    let mut c = Classifier::new(cfg);
    let r = c.classify(&udp4(5060, 5060, INVITE));
    assert_eq!(r.class, Class::Other);
    assert_eq!(c.counter(Counter::AbiMismatch), 1);
    assert_eq!(c.counter(Counter::ClassOther), 0);
}

#[test]
fn etherparse_built_frames_agree() {
    use etherparse::PacketBuilder;
    let mut c = classifier();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .single_vlan(100.try_into().unwrap())
        .ipv4(SRC4, DST4, 64)
        .udp(16384, 16386);
    let p = rtp(0, 0, 160);
    let mut f = Vec::new();
    b.write(&mut f, &p).unwrap();
    let r = c.classify(&f);
    assert_eq!((r.class, r.vlans), (Class::Rtp, 1));
    assert_eq!(&f[r.payload.clone()], &p[..]);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6(SRC6, DST6, 64)
        .tcp(40000, 5061, 1, 1000);
    let mut f = Vec::new();
    b.write(&mut f, INVITE).unwrap();
    let r = c.classify(&f);
    assert!(r.sip_by_content);
    assert_eq!(&f[r.payload.clone()], INVITE);
}

/// Random and mutated frames: no panic, the counter invariants hold. A fixed seed keeps the
/// run reproducible; cargo-fuzz (fuzz/) explores further.
#[test]
fn random_and_mutated_frames() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bases = [
        udp4(5060, 1, INVITE),
        udp4(10000, 20000, &rtp(8, 2, 40)),
        eth(
            0x0800,
            &ipv4(47, &gre(0x3081, 0x880b, &[0; 8], &[0xff, 3, 0, 0x21])),
        ),
        eth(
            0x86dd,
            &ipv6_ext(17, &[(0, vec![0; 8]), (44, vec![0; 8])], b"xx"),
        ),
        udp4(
            1,
            2152,
            &[0x34, 255, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0x85, 1, 0, 0, 0],
        ),
        udp4(1, 4789, &[0x08, 0, 0, 0, 0, 0, 1, 0]),
        eth(0x0800, &ipv4(6, &tcp(40000, 6060, INVITE))),
    ];
    let mut c = Classifier::with_tcp_flows_max(ProbeConfig::default(), 8);
    let mut frame = Vec::with_capacity(256);
    for i in 0..20_000u32 {
        frame.clear();
        if i % 4 == 0 {
            let n = (next() % 200) as usize;
            frame.extend((0..n).map(|_| next() as u8));
        } else {
            frame.extend_from_slice(&bases[(next() % bases.len() as u64) as usize]);
            for _ in 0..1 + next() % 6 {
                let at = (next() as usize) % frame.len();
                frame[at] = next() as u8;
            }
            if next() % 3 == 0 {
                let cut = (next() as usize) % (frame.len() + 1);
                frame.truncate(cut);
            }
        }
        let before = *c.counters();
        let r = c.classify(&frame);
        let mut delta = [0u64; COUNTER_MAX as usize];
        for (d, (a, b)) in delta.iter_mut().zip(c.counters().iter().zip(before.iter())) {
            *d = a - b;
        }
        check_invariants(&r, &delta, frame.len());
        let _ = c.classify_ip(&frame);
    }
    assert_eq!(c.counter(Counter::RxPackets), 40_000);
}
