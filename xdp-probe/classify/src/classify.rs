//! The user-space classifier: the rules of `xdp-probe/bpf/xdprec_abi.h`, decision for decision
//! and counter for counter as `probe.c` applies them.
//!
//! # Why a hand-written parser (and not etherparse)
//!
//! The classifier must agree with the BPF program on every frame, including the odd ones: it
//! must unwrap exactly one tunnel level of exactly the kinds the probe knows (GRE with Ethernet,
//! IP, ERSPAN II/III and PPP payloads, VXLAN, GTP-U G-PDUs, IP-in-IP), stop where the probe
//! stops (two VLAN tags, four IPv6 extension headers), and count a truncated or malformed
//! frame at the same layer with the same counter. A general parser decides all of these its own
//! way (it knows other tunnels, reports errors by its own taxonomy, parses further than the
//! probe, or not as far), so the differential test would measure etherparse, not our rules.
//! Here every step is one bounds-checked read at a computed offset, in the order the BPF
//! program reads, so a reviewer can lay the two side by side. etherparse is used by the tests
//! to build frames, which also cross-checks the offsets.
//!
//! # Conventions shared with probe.c
//!
//! - A header "fits" when its fixed part lies inside the frame (`data_end` in BPF); otherwise
//!   the frame is counted `trunc_<layer>` and classified OTHER.
//! - The payload the content checks see is what the headers declare (UDP: its length field
//!   less 8; TCP: the IP payload length less the data offset), clipped to the frame: a check
//!   "N bytes" needs them both declared and captured, and Ethernet padding is never payload.
//!   A declared length smaller than its header (IPv4 total length < IHL*4, UDP length < 8,
//!   TCP data offset < 5) or a UDP length / TCP data offset beyond the IP payload is a parse
//!   error; a declared length beyond the frame (a truncated capture) is not.
//! - Tunnel headers (GRE and its payload headers, VXLAN, GTP-U, ERSPAN) that do not fit count
//!   `trunc_tunnel`; the inner Ethernet/IP/L4 headers count as their own layer.
//! - Per frame: `rx_packets`, `rx_bytes`; `vlan` when the outer Ethernet has a tag;
//!   `ipv4`/`ipv6` for the outer IP header; a `tunnel_*` counter as soon as the outer header
//!   announces a tunnel, whether or not the inner packet parses (`tunnel_gre` for every GRE,
//!   plus `tunnel_erspan` for ERSPAN in GRE); exactly one class counter; at most one error
//!   counter (a `trunc_*`, `parse_error`, `ipv6_ext_limit` or `gtpu_ext_limit`).
//! - The detailed rules are in the header's "Details of the rules" section.
//!
//! No panics on any input (every read is checked; `cargo fuzz` target in `fuzz/`), no
//! allocation per packet (the TCP flow table is allocated whole at construction: about 9 MB
//! for the default [`abi::TCP_FLOWS_MAX`] entries).

use crate::abi::{self, Class, Counter, FlowKey, ProbeConfig};
use crate::flows::{FlowTable, Inserted};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// The tunnel that was unwrapped (at most one level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Tunnel {
    #[default]
    None,
    Gre,
    Erspan,
    Vxlan,
    Gtpu,
    IpIp,
}

/// Addresses, protocol and ports of the classified (inner) packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// An IP fragment (the classified packet is one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frag {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The fragmented datagram's protocol (IPv6: the fragment header's next header).
    pub proto: u8,
    /// IPv4: the 16-bit identification; IPv6: the fragment header's 32-bit identification.
    pub id: u32,
    pub offset_bytes: u32,
    /// More fragments follow.
    pub more: bool,
}

/// The outcome of classifying one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub class: Class,
    /// Of the inner (classified) packet, when its UDP/TCP header was parsed.
    pub tuple: Option<FiveTuple>,
    /// When the inner IP packet is a fragment.
    pub frag: Option<Frag>,
    pub tunnel: Tunnel,
    /// VLAN tags seen (outer and inner Ethernet together).
    pub vlans: u8,
    /// Offset of the innermost IP header that parsed (the classified packet's, unless an inner
    /// header was cut or malformed).
    pub l3_offset: Option<usize>,
    /// Inner L4 payload (for fragments: the IP payload), clipped to the IP length and the
    /// frame. Empty when not parsed that far.
    pub payload: Range<usize>,
    /// SIP recognised by its first line on a non-SIP port.
    pub sip_by_content: bool,
    /// TCP segment classified SIP because its flow had carried SIP before.
    pub tcp_flow_hit: bool,
    /// The truncation or parse-error counter hit, if any.
    pub error: Option<Counter>,
}

impl Classification {
    fn new() -> Self {
        Classification {
            class: Class::Other,
            tuple: None,
            frag: None,
            tunnel: Tunnel::None,
            vlans: 0,
            l3_offset: None,
            payload: 0..0,
            sip_by_content: false,
            tcp_flow_hit: false,
            error: None,
        }
    }
}

/// Fields of an RTP fixed header (RFC 3550 section 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RtpHeaderInfo {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub marker: bool,
}

/// The RTP header of a UDP payload that passes the probe's RTP test (rule 4: at least 12
/// bytes, version 2, the CSRC list inside the payload, payload type not 72..=76, which are
/// RTCP packet types seen through RTP's marker bit).
pub fn rtp_header(payload: &[u8]) -> Option<RtpHeaderInfo> {
    if !is_rtp(payload) {
        return None;
    }
    Some(RtpHeaderInfo {
        ssrc: be32(payload, 8)?,
        seq: be16(payload, 2)?,
        timestamp: be32(payload, 4)?,
        payload_type: payload.get(1)? & 0x7f,
        marker: payload.get(1)? & 0x80 != 0,
    })
}

fn is_rtp(p: &[u8]) -> bool {
    let (Some(&b0), Some(&b1)) = (p.first(), p.get(1)) else {
        return false;
    };
    let cc = usize::from(b0 & 0x0f);
    let pt = b1 & 0x7f;
    p.len() >= 12 && b0 >> 6 == 2 && 12 + 4 * cc <= p.len() && !(72..=76).contains(&pt)
}

fn is_rtcp(p: &[u8]) -> bool {
    let (Some(&b0), Some(&b1)) = (p.first(), p.get(1)) else {
        return false;
    };
    p.len() >= 8 && b0 >> 6 == 2 && (200..=204).contains(&b1)
}

/// Request methods and the status-line prefix of rule 4, each with its trailing space.
pub const SIP_FIRST_LINE_PREFIXES: &[&[u8]] = &[
    b"INVITE ",
    b"ACK ",
    b"BYE ",
    b"CANCEL ",
    b"OPTIONS ",
    b"REGISTER ",
    b"PRACK ",
    b"SUBSCRIBE ",
    b"NOTIFY ",
    b"PUBLISH ",
    b"INFO ",
    b"REFER ",
    b"MESSAGE ",
    b"UPDATE ",
    b"SIP/2.0 ",
];

/// Whether a payload starts like a SIP message (rule 4). Case-sensitive, as on the wire.
pub fn looks_like_sip(payload: &[u8]) -> bool {
    SIP_FIRST_LINE_PREFIXES
        .iter()
        .any(|p| payload.starts_with(p))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn addr16(b: &[u8], at: usize) -> Option<[u8; 16]> {
    b.get(at..at.checked_add(16)?)?.try_into().ok()
}

/// True when `len` bytes from `at` lie inside the frame.
fn fits(f: &[u8], at: usize, len: usize) -> bool {
    at.checked_add(len).is_some_and(|end| end <= f.len())
}

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_VLAN: u16 = 0x8100;
const ETH_P_QINQ: u16 = 0x88a8;
const ETH_P_TEB: u16 = 0x6558;
const ETH_P_ERSPAN2: u16 = 0x88be;
const ETH_P_ERSPAN3: u16 = 0x22eb;
const ETH_P_PPP: u16 = 0x880b;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_DSTOPTS: u8 = 60;

/// Where the walk goes next.
#[derive(Clone, Copy, Debug)]
enum Step {
    Eth(usize),
    Ip4(usize),
    Ip6(usize),
    Done(Class),
}

/// What an IP header led to: protocol, L4 offset, and the L4 length the IP header(s) declare
/// (may reach beyond the frame: a truncated capture).
struct L3 {
    proto: u8,
    l4: usize,
    l4_len: usize,
    src: IpAddr,
    dst: IpAddr,
    /// (id, offset_bytes, more) when a fragment.
    frag: Option<(u32, u32, bool)>,
}

/// The user-space classifier. One per thread; not shared.
#[derive(Debug)]
pub struct Classifier {
    config: ProbeConfig,
    flows: FlowTable,
    counters: [u64; abi::COUNTER_MAX as usize],
}

impl Classifier {
    /// With a TCP-SIP flow table of [`abi::TCP_FLOWS_MAX`] entries, as the probe's map.
    pub fn new(config: ProbeConfig) -> Self {
        Self::with_tcp_flows_max(config, abi::TCP_FLOWS_MAX as usize)
    }

    pub fn with_tcp_flows_max(config: ProbeConfig, flows_max: usize) -> Self {
        Classifier {
            config,
            flows: FlowTable::new(flows_max),
            counters: [0; abi::COUNTER_MAX as usize],
        }
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Counters with the probe's meaning (the verdict counters stay 0; `tcp_flow_full` counts
    /// LRU evictions, which the kernel map cannot report).
    pub fn counters(&self) -> &[u64; abi::COUNTER_MAX as usize] {
        &self.counters
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c as usize).copied().unwrap_or(0)
    }

    pub fn reset_counters(&mut self) {
        self.counters = [0; abi::COUNTER_MAX as usize];
    }

    /// Forgets every TCP flow seen carrying SIP.
    pub fn clear_tcp_flows(&mut self) {
        self.flows.clear();
    }

    /// TCP flows currently remembered.
    pub fn tcp_flows(&self) -> usize {
        self.flows.len()
    }

    fn bump(&mut self, c: Counter) {
        if let Some(x) = self.counters.get_mut(c as usize) {
            *x += 1;
        }
    }

    /// Classifies a frame that starts with an Ethernet header.
    pub fn classify(&mut self, frame: &[u8]) -> Classification {
        self.run(frame, Step::Eth(0))
    }

    /// Classifies a packet that starts with an IPv4 or IPv6 header (raw IP link types).
    pub fn classify_ip(&mut self, packet: &[u8]) -> Classification {
        let step = match packet.first().map(|b| b >> 4) {
            Some(6) => Step::Ip6(0),
            // An empty packet is a truncated IPv4 header; a wrong version a parse error.
            _ => Step::Ip4(0),
        };
        self.run(packet, step)
    }

    fn run(&mut self, f: &[u8], start: Step) -> Classification {
        self.bump(Counter::RxPackets);
        self.counters[Counter::RxBytes as usize] += f.len() as u64;
        let mut c = Classification::new();
        if self.config.abi_version != abi::ABI_VERSION {
            // As the probe: a loader/program mismatch passes everything, with no class.
            self.bump(Counter::AbiMismatch);
            return c;
        }
        let class = match self.walk(f, start, &mut c) {
            Ok(class) => class,
            Err(e) => {
                self.bump(e);
                c.error = Some(e);
                Class::Other
            }
        };
        c.class = class;
        let counter = match class {
            Class::Sip if c.tuple.is_some_and(|t| t.proto == IPPROTO_TCP) => Counter::ClassSipTcp,
            Class::Sip => Counter::ClassSipUdp,
            Class::Rtp => Counter::ClassRtp,
            Class::Rtcp => Counter::ClassRtcp,
            Class::Frag => Counter::ClassFrag,
            Class::Other | Class::Unknown(_) => Counter::ClassOther,
        };
        self.bump(counter);
        c
    }

    fn walk(&mut self, f: &[u8], start: Step, c: &mut Classification) -> Result<Class, Counter> {
        let mut step = start;
        let mut tunneled = false;
        let mut outer_ip_counted = false;
        // Each step advances through a header; a bound on steps keeps this finite whatever the
        // input (at most: Ethernet, IP, tunnel, Ethernet, IP, L4).
        for _ in 0..8 {
            step = match step {
                Step::Done(class) => return Ok(class),
                Step::Eth(off) => {
                    let next = self.eth(f, off, c);
                    // VLAN counts the outer Ethernet only (also when a tag is cut).
                    if off == 0 && c.vlans > 0 {
                        self.bump(Counter::Vlan);
                    }
                    next?
                }
                Step::Ip4(off) | Step::Ip6(off) => {
                    let v6 = matches!(step, Step::Ip6(_));
                    // Counted before parsing, also when the header turns out cut or bad.
                    if !outer_ip_counted {
                        outer_ip_counted = true;
                        self.bump(if v6 { Counter::Ipv6 } else { Counter::Ipv4 });
                    }
                    let l3 = if v6 {
                        self.ipv6(f, off)?
                    } else {
                        self.ipv4(f, off)?
                    };
                    c.l3_offset = Some(off);
                    self.l4(f, &l3, &mut tunneled, c)?
                }
            };
        }
        Ok(Class::Other)
    }

    /// Ethernet and up to [`abi::VLAN_MAX`] VLAN tags.
    fn eth(&mut self, f: &[u8], off: usize, c: &mut Classification) -> Result<Step, Counter> {
        if !fits(f, off, 14) {
            return Err(Counter::TruncEth);
        }
        let mut et = be16(f, off + 12).ok_or(Counter::TruncEth)?;
        let mut at = off + 14;
        for _ in 0..abi::VLAN_MAX {
            if et != ETH_P_VLAN && et != ETH_P_QINQ {
                break;
            }
            if !fits(f, at, 4) {
                return Err(Counter::TruncVlan);
            }
            c.vlans = c.vlans.saturating_add(1);
            et = be16(f, at + 2).ok_or(Counter::TruncVlan)?;
            at += 4;
        }
        Ok(match et {
            ETH_P_IPV4 => Step::Ip4(at),
            ETH_P_IPV6 => Step::Ip6(at),
            _ => Step::Done(Class::Other),
        })
    }

    fn ipv4(&mut self, f: &[u8], off: usize) -> Result<L3, Counter> {
        if !fits(f, off, 20) {
            return Err(Counter::TruncIpv4);
        }
        let b0 = f[off];
        let ihl = usize::from(b0 & 0x0f) * 4;
        if b0 >> 4 != 4 || ihl < 20 {
            return Err(Counter::ParseError);
        }
        if !fits(f, off, ihl) {
            return Err(Counter::TruncIpv4);
        }
        let total = usize::from(be16(f, off + 2).ok_or(Counter::TruncIpv4)?);
        if total < ihl {
            return Err(Counter::ParseError);
        }
        let frag_field = be16(f, off + 6).ok_or(Counter::TruncIpv4)?;
        let id = be16(f, off + 4).ok_or(Counter::TruncIpv4)?;
        let frag = (frag_field & 0x3fff != 0).then(|| {
            (
                u32::from(id),
                u32::from(frag_field & 0x1fff) * 8,
                frag_field & 0x2000 != 0,
            )
        });
        let src = Ipv4Addr::new(f[off + 12], f[off + 13], f[off + 14], f[off + 15]);
        let dst = Ipv4Addr::new(f[off + 16], f[off + 17], f[off + 18], f[off + 19]);
        Ok(L3 {
            proto: f[off + 9],
            l4: off + ihl,
            l4_len: total - ihl,
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            frag,
        })
    }

    fn ipv6(&mut self, f: &[u8], off: usize) -> Result<L3, Counter> {
        if !fits(f, off, 40) {
            return Err(Counter::TruncIpv6);
        }
        if f[off] >> 4 != 6 {
            return Err(Counter::ParseError);
        }
        // A payload length of 0 (jumbogram or unset) is taken as the largest.
        let mut l4_len = match be16(f, off + 4).ok_or(Counter::TruncIpv6)? {
            0 => 0xffff,
            x => usize::from(x),
        };
        let src = addr16(f, off + 8).ok_or(Counter::TruncIpv6)?;
        let dst = addr16(f, off + 24).ok_or(Counter::TruncIpv6)?;
        let mut nh = f[off + 6];
        let mut at = off + 40;
        let mut frag = None;
        let mut seen = 0;
        loop {
            if !matches!(
                nh,
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT | IPPROTO_DSTOPTS
            ) {
                break;
            }
            if seen == abi::IPV6_EXT_MAX {
                return Err(Counter::Ipv6ExtLimit);
            }
            seen += 1;
            if !fits(f, at, 8) {
                return Err(Counter::TruncIpv6Ext);
            }
            let next = f[at];
            let len = if nh == IPPROTO_FRAGMENT {
                let fo = be16(f, at + 2).ok_or(Counter::TruncIpv6Ext)?;
                let id = be32(f, at + 4).ok_or(Counter::TruncIpv6Ext)?;
                frag = Some((id, u32::from(fo & 0xfff8), fo & 1 != 0));
                8
            } else {
                (usize::from(f[at + 1]) + 1) * 8
            };
            if !fits(f, at, len) {
                return Err(Counter::TruncIpv6Ext);
            }
            l4_len = l4_len.saturating_sub(len);
            at += len;
            nh = next;
            if frag.is_some() {
                // The fragment header ends the chain: what follows is the fragment's data.
                break;
            }
        }
        Ok(L3 {
            proto: nh,
            l4: at,
            l4_len,
            src: IpAddr::V6(Ipv6Addr::from(src)),
            dst: IpAddr::V6(Ipv6Addr::from(dst)),
            frag,
        })
    }

    fn l4(
        &mut self,
        f: &[u8],
        l3: &L3,
        tunneled: &mut bool,
        c: &mut Classification,
    ) -> Result<Step, Counter> {
        // Rule 3, tested before anything else above IP.
        if let Some((id, offset_bytes, more)) = l3.frag {
            c.frag = Some(Frag {
                src: l3.src,
                dst: l3.dst,
                proto: l3.proto,
                id,
                offset_bytes,
                more,
            });
            c.payload = clip(f, l3.l4, l3.l4 + l3.l4_len);
            let class = if l3.proto == IPPROTO_UDP && self.config.capture_frags != 0 {
                Class::Frag
            } else {
                Class::Other
            };
            return Ok(Step::Done(class));
        }
        match l3.proto {
            IPPROTO_UDP => self.udp(f, l3, tunneled, c),
            IPPROTO_TCP => self.tcp(f, l3, c),
            IPPROTO_GRE if !*tunneled => {
                *tunneled = true;
                c.tunnel = Tunnel::Gre;
                self.bump(Counter::TunnelGre);
                self.gre(f, l3.l4, c)
            }
            IPPROTO_IPIP | IPPROTO_IPV6 if !*tunneled => {
                *tunneled = true;
                c.tunnel = Tunnel::IpIp;
                self.bump(Counter::TunnelIpip);
                Ok(if l3.proto == IPPROTO_IPIP {
                    Step::Ip4(l3.l4)
                } else {
                    Step::Ip6(l3.l4)
                })
            }
            _ => Ok(Step::Done(Class::Other)),
        }
    }

    fn udp(
        &mut self,
        f: &[u8],
        l3: &L3,
        tunneled: &mut bool,
        c: &mut Classification,
    ) -> Result<Step, Counter> {
        let off = l3.l4;
        if !fits(f, off, 8) {
            return Err(Counter::TruncUdp);
        }
        let sport = be16(f, off).ok_or(Counter::TruncUdp)?;
        let dport = be16(f, off + 2).ok_or(Counter::TruncUdp)?;
        let ulen = usize::from(be16(f, off + 4).ok_or(Counter::TruncUdp)?);
        if ulen < 8 || ulen > l3.l4_len {
            return Err(Counter::ParseError);
        }
        if !*tunneled {
            if dport == abi::VXLAN_PORT {
                *tunneled = true;
                c.tunnel = Tunnel::Vxlan;
                self.bump(Counter::TunnelVxlan);
                return self.vxlan(f, off + 8);
            }
            if dport == abi::GTPU_PORT {
                *tunneled = true;
                c.tunnel = Tunnel::Gtpu;
                self.bump(Counter::TunnelGtpu);
                return self.gtpu(f, off + 8);
            }
        }
        c.tuple = Some(FiveTuple {
            src: l3.src,
            dst: l3.dst,
            proto: IPPROTO_UDP,
            src_port: sport,
            dst_port: dport,
        });
        c.payload = clip(f, off + 8, off + ulen);
        let p = f.get(c.payload.clone()).unwrap_or(&[]);
        let cfg = &self.config;
        if cfg.is_sip_port(sport) || cfg.is_sip_port(dport) {
            return Ok(Step::Done(Class::Sip));
        }
        if cfg.sip_by_content != 0 && looks_like_sip(p) {
            c.sip_by_content = true;
            self.bump(Counter::SipByContent);
            return Ok(Step::Done(Class::Sip));
        }
        if cfg.in_rtp_range(sport) && cfg.in_rtp_range(dport) {
            if is_rtcp(p) {
                return Ok(Step::Done(Class::Rtcp));
            }
            if is_rtp(p) {
                return Ok(Step::Done(Class::Rtp));
            }
        }
        Ok(Step::Done(Class::Other))
    }

    fn tcp(&mut self, f: &[u8], l3: &L3, c: &mut Classification) -> Result<Step, Counter> {
        let off = l3.l4;
        if !fits(f, off, 20) {
            return Err(Counter::TruncTcp);
        }
        let doff = usize::from(f[off + 12] >> 4) * 4;
        if doff < 20 || doff > l3.l4_len {
            return Err(Counter::ParseError);
        }
        if !fits(f, off, doff) {
            return Err(Counter::TruncTcp);
        }
        let sport = be16(f, off).ok_or(Counter::TruncTcp)?;
        let dport = be16(f, off + 2).ok_or(Counter::TruncTcp)?;
        c.tuple = Some(FiveTuple {
            src: l3.src,
            dst: l3.dst,
            proto: IPPROTO_TCP,
            src_port: sport,
            dst_port: dport,
        });
        c.payload = clip(f, off + doff, off + l3.l4_len);
        if self.config.is_sip_port(sport) || self.config.is_sip_port(dport) {
            return Ok(Step::Done(Class::Sip));
        }
        let key = flow_key(l3.src, sport, l3.dst, dport);
        if self.flows.touch(&key) {
            c.tcp_flow_hit = true;
            self.bump(Counter::TcpFlowHit);
            return Ok(Step::Done(Class::Sip));
        }
        let p = f.get(c.payload.clone()).unwrap_or(&[]);
        if self.config.sip_by_content != 0 && looks_like_sip(p) {
            c.sip_by_content = true;
            self.bump(Counter::SipByContent);
            if self.flows.insert(key) == Inserted::Evicted {
                self.bump(Counter::TcpFlowFull);
            }
            return Ok(Step::Done(Class::Sip));
        }
        Ok(Step::Done(Class::Other))
    }

    /// GRE (counted by the caller) and what it carries.
    fn gre(&mut self, f: &[u8], off: usize, c: &mut Classification) -> Result<Step, Counter> {
        if !fits(f, off, 4) {
            return Err(Counter::TruncTunnel);
        }
        let flags = be16(f, off).ok_or(Counter::TruncTunnel)?;
        let proto = be16(f, off + 2).ok_or(Counter::TruncTunnel)?;
        let version = flags & 0x7;
        // Version 0 (RFC 2784/2890) or 1 (enhanced GRE, RFC 2637); source routing (RFC 1701)
        // is not supported.
        if version > 1 || flags & 0x4000 != 0 {
            return Err(Counter::ParseError);
        }
        let seq = flags & 0x1000 != 0;
        let mut len = 4;
        len += 4 * usize::from(flags & 0x8000 != 0);
        len += 4 * usize::from(flags & 0x2000 != 0);
        len += 4 * usize::from(seq);
        if version == 1 {
            len += 4 * usize::from(flags & 0x0080 != 0);
        }
        if !fits(f, off, len) {
            return Err(Counter::TruncTunnel);
        }
        let at = off + len;
        match proto {
            ETH_P_TEB => Ok(Step::Eth(at)),
            ETH_P_IPV4 => Ok(Step::Ip4(at)),
            ETH_P_IPV6 => Ok(Step::Ip6(at)),
            ETH_P_ERSPAN2 => {
                c.tunnel = Tunnel::Erspan;
                self.bump(Counter::TunnelErspan);
                if !seq {
                    // ERSPAN type I: no header, Ethernet follows.
                    return Ok(Step::Eth(at));
                }
                // ERSPAN type II: 8-byte header, version 1 in the top nibble.
                if !fits(f, at, 8) {
                    return Err(Counter::TruncTunnel);
                }
                if f[at] >> 4 != 1 {
                    return Err(Counter::ParseError);
                }
                Ok(Step::Eth(at + 8))
            }
            ETH_P_ERSPAN3 => {
                c.tunnel = Tunnel::Erspan;
                self.bump(Counter::TunnelErspan);
                // ERSPAN type III: 12-byte header, version 2; the O bit (byte 11 bit 0)
                // announces an 8-byte platform-specific subheader.
                if !fits(f, at, 12) {
                    return Err(Counter::TruncTunnel);
                }
                if f[at] >> 4 != 2 {
                    return Err(Counter::ParseError);
                }
                let mut hlen = 12;
                if f[at + 11] & 0x01 != 0 {
                    hlen += 8;
                    if !fits(f, at, hlen) {
                        return Err(Counter::TruncTunnel);
                    }
                }
                // Frame type (byte 10 bits 6..2): 0 is Ethernet, 2 IP (not followed).
                if (f[at + 10] >> 2) & 0x1f != 0 {
                    return Ok(Step::Done(Class::Other));
                }
                Ok(Step::Eth(at + hlen))
            }
            ETH_P_PPP => {
                // PPP in HDLC-like framing: optional address/control ff 03, then a 2-byte
                // protocol.
                let mut p = at;
                if fits(f, p, 2) && f[p] == 0xff && f[p + 1] == 0x03 {
                    p += 2;
                }
                if !fits(f, p, 2) {
                    return Err(Counter::TruncTunnel);
                }
                Ok(match be16(f, p).ok_or(Counter::TruncTunnel)? {
                    PPP_IPV4 => Step::Ip4(p + 2),
                    PPP_IPV6 => Step::Ip6(p + 2),
                    _ => Step::Done(Class::Other),
                })
            }
            _ => Ok(Step::Done(Class::Other)),
        }
    }

    /// VXLAN (counted by the caller).
    fn vxlan(&mut self, f: &[u8], off: usize) -> Result<Step, Counter> {
        if !fits(f, off, 8) {
            return Err(Counter::TruncTunnel);
        }
        // RFC 7348: the I flag (VNI valid) must be set.
        if f[off] & 0x08 == 0 {
            return Err(Counter::ParseError);
        }
        Ok(Step::Eth(off + 8))
    }

    /// GTP-U (counted by the caller): G-PDUs carry user IP packets.
    fn gtpu(&mut self, f: &[u8], off: usize) -> Result<Step, Counter> {
        if !fits(f, off, 8) {
            return Err(Counter::TruncTunnel);
        }
        let flags = f[off];
        // Version 1, protocol type GTP (not GTP').
        if flags & 0xf0 != 0x30 {
            return Err(Counter::ParseError);
        }
        if f[off + 1] != 255 {
            // Echo, error indication, end marker...: signalling, not user data.
            return Ok(Step::Done(Class::Other));
        }
        let mut at = off + 8;
        if flags & 0x07 != 0 {
            // Sequence number, N-PDU number, next extension header type.
            if !fits(f, at, 4) {
                return Err(Counter::TruncTunnel);
            }
            let mut next = f[at + 3];
            at += 4;
            if flags & 0x04 != 0 {
                let mut n = 0;
                while next != 0 {
                    if n == abi::GTPU_EXT_MAX {
                        return Err(Counter::GtpuExtLimit);
                    }
                    n += 1;
                    if !fits(f, at, 1) {
                        return Err(Counter::TruncTunnel);
                    }
                    let len = usize::from(f[at]) * 4;
                    if len == 0 {
                        return Err(Counter::ParseError);
                    }
                    if !fits(f, at, len) {
                        return Err(Counter::TruncTunnel);
                    }
                    next = f[at + len - 1];
                    at += len;
                }
            }
        }
        if !fits(f, at, 1) {
            return Err(Counter::TruncTunnel);
        }
        Ok(match f[at] >> 4 {
            4 => Step::Ip4(at),
            6 => Step::Ip6(at),
            _ => Step::Done(Class::Other),
        })
    }
}

/// `from..to` clipped to the frame (and empty when reversed).
fn clip(f: &[u8], from: usize, to: usize) -> Range<usize> {
    let to = to.min(f.len());
    from.min(to)..to
}

/// The `xdprec_tcp_sip` key: the lower (address, port) endpoint first, IPv4 as ::ffff:a.b.c.d,
/// ports in network byte order.
pub fn flow_key(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> FlowKey {
    let a = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let (sa, da) = (a(src), a(dst));
    let (addr_a, port_a, addr_b, port_b) = if (sa, sport) <= (da, dport) {
        (sa, sport, da, dport)
    } else {
        (da, dport, sa, sport)
    };
    FlowKey {
        addr_a,
        addr_b,
        port_a: port_a.to_be(),
        port_b: port_b.to_be(),
        _pad: 0,
    }
}
