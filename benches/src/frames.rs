//! Ethernet frames for the classification and capture benchmarks.

use crate::sip;

/// Caller side (198.51.100.0/24).
pub const CALLER_IP: [u8; 4] = [198, 51, 100, 10];
/// Callee side (203.0.113.0/24).
pub const CALLEE_IP: [u8; 4] = [203, 0, 113, 20];
const CALLER_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x01];
const CALLEE_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x02];

/// Ethernet II header + `payload`.
pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    v.extend_from_slice(&CALLEE_MAC);
    v.extend_from_slice(&CALLER_MAC);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// IPv4 header (no options, DF, valid checksum) + `payload`.
pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
    let mut v = Vec::with_capacity(20 + payload.len());
    v.extend_from_slice(&[0x45, 0]);
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    let sum = checksum(&v);
    v[10..12].copy_from_slice(&sum.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// RFC 1071 Internet checksum.
fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// UDP header (checksum 0, legal for IPv4) + `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// An Ethernet/IPv4/UDP frame from the caller to the callee.
pub fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(17, CALLER_IP, CALLEE_IP, &udp(sport, dport, payload)),
    )
}

/// An RTP packet: version 2, payload type `pt`, `payload_bytes` bytes of µ-law silence.
pub fn rtp(pt: u8, seq: u16, timestamp: u32, ssrc: u32, payload_bytes: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + payload_bytes);
    v.extend_from_slice(&[0x80, pt & 0x7f]);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&timestamp.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.resize(12 + payload_bytes, 0xff);
    v
}

/// RTP port of the caller and callee in the frames below.
pub const RTP_PORT: u16 = 16384;

/// A 214-byte G.711 (PCMU, 20 ms) RTP frame.
pub fn rtp_g711() -> Vec<u8> {
    rtp_g711_with(RTP_PORT, RTP_PORT + 2, 1000, 160_000, 0x1234_5678)
}

/// A 214-byte G.711 RTP frame with the given ports and RTP fields.
pub fn rtp_g711_with(sport: u16, dport: u16, seq: u16, timestamp: u32, ssrc: u32) -> Vec<u8> {
    udp4(sport, dport, &rtp(0, seq, timestamp, ssrc, 160))
}

/// A SIP INVITE with SDP, UDP 5060 -> 5060.
pub fn sip_invite_5060() -> Vec<u8> {
    udp4(5060, 5060, &sip::invite_with_sdp())
}

/// The same INVITE between ports 5080 and 15080: only the content says SIP.
pub fn sip_by_content() -> Vec<u8> {
    udp4(15080, 5080, &sip::invite_with_sdp())
}

/// The 214-byte RTP frame inside VXLAN (outer Ethernet/IPv4/UDP 4789/VXLAN VNI 42):
/// 264 bytes.
pub fn vxlan_rtp() -> Vec<u8> {
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vx.extend_from_slice(&rtp_g711());
    eth(
        0x0800,
        &ipv4(
            17,
            [198, 51, 100, 250],
            [203, 0, 113, 250],
            &udp(49152, 4789, &vx),
        ),
    )
}

/// A DNS query (UDP 53): not SIP, not in the RTP port range, so OTHER.
pub fn other_dns() -> Vec<u8> {
    let q: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x07example\x03com\x00\x00\x01\x00\x01";
    udp4(40000, 53, q)
}

/// The frames the classification benchmarks use, with their names.
pub fn classification_set() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("rtp_g711_214B", rtp_g711()),
        ("sip_invite_5060", sip_invite_5060()),
        ("sip_by_content_5080", sip_by_content()),
        ("vxlan_rtp", vxlan_rtp()),
        ("other_dns", other_dns()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdprec_classify::{Class, Classifier, ProbeConfig, Tunnel};

    #[test]
    fn rtp_frame_is_214_bytes_and_rtp() {
        let f = rtp_g711();
        assert_eq!(f.len(), crate::RTP_FRAME_BYTES);
        let mut c = Classifier::new(ProbeConfig::default());
        let r = c.classify(&f);
        assert_eq!(r.class, Class::Rtp);
        assert_eq!(r.error, None);
    }

    #[test]
    fn classification_set_has_the_expected_classes() {
        let mut c = Classifier::new(ProbeConfig::default());
        let want = [
            ("rtp_g711_214B", Class::Rtp, false, Tunnel::None),
            ("sip_invite_5060", Class::Sip, false, Tunnel::None),
            ("sip_by_content_5080", Class::Sip, true, Tunnel::None),
            ("vxlan_rtp", Class::Rtp, false, Tunnel::Vxlan),
            ("other_dns", Class::Other, false, Tunnel::None),
        ];
        let set = classification_set();
        assert_eq!(set.len(), want.len());
        for ((name, frame), (wname, class, by_content, tunnel)) in set.iter().zip(want) {
            assert_eq!(*name, wname);
            let r = c.classify(frame);
            assert_eq!(r.class, class, "{name}");
            assert_eq!(r.sip_by_content, by_content, "{name}");
            assert_eq!(r.tunnel, tunnel, "{name}");
            assert_eq!(r.error, None, "{name}");
        }
    }

    #[test]
    fn ipv4_checksum_verifies() {
        let f = rtp_g711();
        // A header with its checksum sums to 0xffff, i.e. the checksum over it is 0.
        assert_eq!(checksum(&f[14..34]), 0);
    }
}
