//! From a recorded frame to its transport payload: link layer, VLAN, PPPoE, IPv4/IPv6, IP-in-IP,
//! VXLAN and GRE (up to [`TUNNEL_DEPTH_MAX`] levels), then UDP or TCP.
//!
//! Non-first IP fragments have no transport header and are skipped: the capture engine stores
//! a reassembled copy of a fragmented datagram as its own record (`RECORD_FLAG_REASSEMBLED`),
//! and the indexer reads SIP from that one.

use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::{IpAddr, SocketAddr};

pub const TUNNEL_DEPTH_MAX: usize = 3;
pub const VXLAN_PORT: u16 = 4789;

/// The link type of a frame (pcap LINKTYPE numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    RawIp,
    Null,
    LinuxSll,
    LinuxSll2,
}

impl Link {
    pub fn from_linktype(lt: u32) -> Option<Link> {
        Some(match lt {
            1 => Link::Ethernet,
            101 | 228 | 229 | 12 | 14 => Link::RawIp,
            0 | 108 => Link::Null,
            113 => Link::LinuxSll,
            276 => Link::LinuxSll2,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// The first SCTP DATA chunk (possibly a fragment of a message).
    Sctp,
    Tcp {
        seq: u32,
        syn: bool,
        fin: bool,
        rst: bool,
    },
}

/// A transport-level view of a frame.
#[derive(Debug, Clone, Copy)]
pub struct L4<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub payload: &'a [u8],
}

/// Decodes `frame`; None when it has no UDP/TCP payload (non-first fragment, ICMP, ARP...).
pub fn decode(link: Link, frame: &[u8]) -> Option<L4<'_>> {
    let pkt = match link {
        Link::Ethernet => ethernet(frame)?,
        Link::RawIp => LaxSlicedPacket::from_ip(frame).ok()?,
        Link::Null => {
            let fam = frame.get(..4)?;
            let fam = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let fam = if fam > 0xffff { fam.swap_bytes() } else { fam };
            let et = if fam == 2 {
                EtherType::IPV4
            } else {
                EtherType::IPV6
            };
            LaxSlicedPacket::from_ether_type(et, frame.get(4..)?)
        }
        Link::LinuxSll => {
            let h = frame.get(..16)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([h[14], h[15]])),
                &frame[16..],
            )
        }
        Link::LinuxSll2 => {
            let h = frame.get(..20)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([h[0], h[1]])),
                &frame[20..],
            )
        }
    };
    from_sliced(pkt, 0)
}

/// Ethernet with up to three VLAN tags and PPPoE sessions (etherparse stops at PPPoE).
fn ethernet(frame: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    for _ in 0..3 {
        if !matches!(et, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        off += 4;
        et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    off += 2;
    if et == 0x8864 {
        // PPPoE session header (6 bytes), then the PPP protocol field.
        let p = frame.get(off + 6..off + 8)?;
        et = match u16::from_be_bytes([p[0], p[1]]) {
            0x0021 => 0x0800,
            0x0057 => 0x86dd,
            _ => return None,
        };
        off += 8;
    }
    Some(LaxSlicedPacket::from_ether_type(
        EtherType(et),
        frame.get(off..)?,
    ))
}

/// The first DATA chunk of an SCTP packet.
fn sctp_data(p: &[u8]) -> Option<(u16, u16, &[u8])> {
    let sport = u16::from_be_bytes([*p.first()?, *p.get(1)?]);
    let dport = u16::from_be_bytes([*p.get(2)?, *p.get(3)?]);
    let mut off = 12;
    for _ in 0..16 {
        let h = p.get(off..off + 4)?;
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        if len < 4 {
            return None;
        }
        // DATA chunk; fragments are joined by the stream framing in the engine.
        if h[0] == 0 && len > 16 {
            return Some((sport, dport, p.get(off + 16..off + len)?));
        }
        off += (len + 3) & !3;
    }
    None
}

fn from_sliced(pkt: LaxSlicedPacket<'_>, depth: usize) -> Option<L4<'_>> {
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match pkt.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        LaxNetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
    };
    match pkt.transport {
        Some(TransportSlice::Udp(u))
            if u.destination_port() == VXLAN_PORT && depth < TUNNEL_DEPTH_MAX =>
        {
            let inner = u.payload().get(8..)?;
            from_sliced(ethernet(inner)?, depth + 1)
        }
        Some(TransportSlice::Udp(u)) => Some(L4 {
            src: SocketAddr::new(src_ip, u.source_port()),
            dst: SocketAddr::new(dst_ip, u.destination_port()),
            transport: Transport::Udp,
            payload: u.payload(),
        }),
        Some(TransportSlice::Tcp(t)) => Some(L4 {
            src: SocketAddr::new(src_ip, t.source_port()),
            dst: SocketAddr::new(dst_ip, t.destination_port()),
            transport: Transport::Tcp {
                seq: t.sequence_number(),
                syn: t.syn(),
                fin: t.fin(),
                rst: t.rst(),
            },
            payload: t.payload(),
        }),
        Some(_) => None,
        None => {
            if depth >= TUNNEL_DEPTH_MAX {
                return None;
            }
            let ipp = pkt.ip_payload()?;
            if ipp.fragmented {
                return None;
            }
            let inner = match ipp.ip_number {
                IpNumber::IPV4 | IpNumber::IPV6 => LaxSlicedPacket::from_ip(ipp.payload).ok()?,
                IpNumber::GRE => {
                    let g = ipp.payload;
                    let h = g.get(..4)?;
                    let mut off = 4 + [0x80u8, 0x20, 0x10]
                        .iter()
                        .filter(|b| h[0] & **b != 0)
                        .count()
                        * 4;
                    if h[0] & 0x80 == 0 && h[0] & 0x40 != 0 {
                        off += 4; // routing present implies checksum/offset word
                    }
                    let proto = u16::from_be_bytes([h[2], h[3]]);
                    let rest = g.get(off..)?;
                    match proto {
                        0x6558 => LaxSlicedPacket::from_ethernet(rest).ok()?,
                        0x880b => {
                            // PPP: skip address/control and protocol field.
                            let (p, skip) = if rest.starts_with(&[0xff, 0x03]) {
                                (rest.get(2..4)?, 4)
                            } else {
                                (rest.get(..2)?, 2)
                            };
                            let et = match u16::from_be_bytes([p[0], p[1]]) {
                                0x0021 => EtherType::IPV4,
                                0x0057 => EtherType::IPV6,
                                _ => return None,
                            };
                            LaxSlicedPacket::from_ether_type(et, rest.get(skip..)?)
                        }
                        p => LaxSlicedPacket::from_ether_type(EtherType(p), rest),
                    }
                }
                IpNumber(132) => {
                    let (sp, dp, data) = sctp_data(ipp.payload)?;
                    return Some(L4 {
                        src: SocketAddr::new(src_ip, sp),
                        dst: SocketAddr::new(dst_ip, dp),
                        transport: Transport::Sctp,
                        payload: data,
                    });
                }
                _ => return None,
            };
            from_sliced(inner, depth + 1)
        }
    }
}
