//! Test support: every UDP, TCP and SCTP payload of a capture, without the capture crate
//! (link types Ethernet with VLANs, Linux SLL/SLL2, BSD loopback, raw IP; tunnels GRE and
//! IP-in-IP; IPv4 fragments reassembled).

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use etherparse::IpSlice;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    Sctp,
}

#[derive(Debug, Clone)]
pub struct Seg {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// TCP sequence number of the first payload byte.
    pub seq: u32,
    pub syn: bool,
    pub ts_ns: u64,
    pub data: Vec<u8>,
}

/// Frames of a pcap or pcapng file: (link type, timestamp ns, bytes).
pub fn frames(path: &Path) -> Vec<(DataLink, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let bytes = std::fs::read(path).expect("read capture");
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes.starts_with(b"GMBU") {
        return netmon2(&bytes);
    }
    if magic == 0x0a0d0d0a {
        let mut r = PcapNgReader::new(BufReader::new(File::open(path).unwrap())).expect("pcapng");
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(b) = r.next_block() {
            let Ok(b) = b else { break };
            match b {
                Block::InterfaceDescription(i) => links.push(i.linktype),
                Block::EnhancedPacket(p) => {
                    let lt = links
                        .get(p.interface_id as usize)
                        .copied()
                        .unwrap_or(DataLink::ETHERNET);
                    out.push((lt, p.timestamp.as_nanos() as u64, p.data.to_vec()));
                }
                Block::SimplePacket(p) => {
                    let lt = links.first().copied().unwrap_or(DataLink::ETHERNET);
                    out.push((lt, 0, p.data.to_vec()));
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(BufReader::new(File::open(path).unwrap())).expect("pcap");
        let lt = r.header().datalink;
        while let Some(p) = r.next_packet() {
            let Ok(p) = p else { break };
            out.push((lt, p.timestamp.as_nanos() as u64, p.data.to_vec()));
        }
    }
    out
}

/// Microsoft Network Monitor 2.x (the PROTOS capture): header with a frame table of u32
/// offsets; each frame is ts_delta u64, frame length u32, captured length u32, data.
fn netmon2(b: &[u8]) -> Vec<(DataLink, u64, Vec<u8>)> {
    let u32le = |at: usize| -> Option<usize> {
        b.get(at..at + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    };
    let mut out = Vec::new();
    let link = match u16::from_le_bytes([b[6], b[7]]) {
        1 => DataLink::ETHERNET,
        _ => return out,
    };
    let (Some(table), Some(table_len)) = (u32le(24), u32le(28)) else {
        return out;
    };
    for i in 0..table_len / 4 {
        let Some(off) = u32le(table + 4 * i) else {
            break;
        };
        let Some(ts) = b.get(off..off + 8) else { break };
        let ts_us = u64::from_le_bytes(ts.try_into().unwrap());
        let Some(cap) = u32le(off + 12) else { break };
        let Some(data) = b.get(off + 16..off + 16 + cap) else {
            break;
        };
        out.push((link, ts_us * 1000, data.to_vec()));
    }
    out
}

/// IPv4 fragments by (src, dst, id, protocol): (offset in 8-byte units, more fragments, data).
type Fragments = HashMap<(IpAddr, IpAddr, u16, u8), Vec<(u16, bool, Vec<u8>)>>;

#[derive(Default)]
pub struct Extractor {
    frags: Fragments,
    pub segs: Vec<Seg>,
}

impl Extractor {
    pub fn frame(&mut self, lt: DataLink, ts_ns: u64, d: &[u8]) {
        match lt {
            DataLink::ETHERNET => self.ether(ts_ns, d, 0),
            DataLink::LINUX_SLL if d.len() >= 16 => {
                self.ethertype(ts_ns, u16::from_be_bytes([d[14], d[15]]), &d[16..], 0)
            }
            DataLink::LINUX_SLL2 if d.len() >= 20 => {
                self.ethertype(ts_ns, u16::from_be_bytes([d[0], d[1]]), &d[20..], 0)
            }
            DataLink::NULL | DataLink::LOOP if d.len() >= 4 => self.ip(ts_ns, &d[4..], 0),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => self.ip(ts_ns, d, 0),
            _ => {}
        }
    }

    fn ether(&mut self, ts: u64, d: &[u8], depth: u8) {
        if d.len() < 14 {
            return;
        }
        self.ethertype(ts, u16::from_be_bytes([d[12], d[13]]), &d[14..], depth)
    }

    fn ethertype(&mut self, ts: u64, et: u16, d: &[u8], depth: u8) {
        match et {
            0x0800 | 0x86dd => self.ip(ts, d, depth),
            0x8100 | 0x88a8 if d.len() >= 4 => {
                self.ethertype(ts, u16::from_be_bytes([d[2], d[3]]), &d[4..], depth)
            }
            0x6558 => self.ether(ts, d, depth),
            // PPPoE session: 6-byte header, then the PPP protocol.
            0x8864 if d.len() >= 8 => match u16::from_be_bytes([d[6], d[7]]) {
                0x0021 | 0x0057 => self.ip(ts, &d[8..], depth),
                _ => {}
            },
            _ => {}
        }
    }

    fn ip(&mut self, ts: u64, d: &[u8], depth: u8) {
        if depth > 3 {
            return;
        }
        let Ok(ip) = IpSlice::from_slice(d) else {
            return;
        };
        let src = ip.source_addr();
        let dst = ip.destination_addr();
        let pl = ip.payload();
        let proto = pl.ip_number.0;
        if pl.fragmented {
            // IPv4 only (no IPv6 fragments in the corpus).
            let Some(v4) = ip.ipv4() else { return };
            let h = v4.header();
            let key = (src, dst, h.identification(), proto);
            let list = self.frags.entry(key).or_default();
            list.push((
                h.fragments_offset().value(),
                h.more_fragments(),
                pl.payload.to_vec(),
            ));
            list.sort_by_key(|f| f.0);
            let mut next = 0usize;
            let mut whole = Vec::new();
            let mut complete = false;
            for (off, mf, data) in list.iter() {
                let off = usize::from(*off) * 8;
                if off > next {
                    break;
                }
                if off + data.len() > next {
                    whole.extend_from_slice(&data[next - off..]);
                    next = off + data.len();
                }
                if !mf {
                    complete = true;
                    break;
                }
            }
            if complete {
                self.frags.remove(&key);
                self.transport(ts, src, dst, proto, &whole, depth);
            }
            return;
        }
        let payload = pl.payload.to_vec();
        self.transport(ts, src, dst, proto, &payload, depth);
    }

    fn transport(&mut self, ts: u64, src: IpAddr, dst: IpAddr, proto: u8, d: &[u8], depth: u8) {
        match proto {
            17 if d.len() >= 8 => {
                let sp = u16::from_be_bytes([d[0], d[1]]);
                let dp = u16::from_be_bytes([d[2], d[3]]);
                let ulen = usize::from(u16::from_be_bytes([d[4], d[5]]));
                let end = if ulen >= 8 && ulen <= d.len() {
                    ulen
                } else {
                    d.len()
                };
                self.segs.push(Seg {
                    proto: Proto::Udp,
                    src: SocketAddr::new(src, sp),
                    dst: SocketAddr::new(dst, dp),
                    seq: 0,
                    syn: false,
                    ts_ns: ts,
                    data: d[8..end].to_vec(),
                });
            }
            6 if d.len() >= 20 => {
                let off = usize::from(d[12] >> 4) * 4;
                if off < 20 || off > d.len() {
                    return;
                }
                self.segs.push(Seg {
                    proto: Proto::Tcp,
                    src: SocketAddr::new(src, u16::from_be_bytes([d[0], d[1]])),
                    dst: SocketAddr::new(dst, u16::from_be_bytes([d[2], d[3]])),
                    seq: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                    syn: d[13] & 0x02 != 0,
                    ts_ns: ts,
                    data: d[off..].to_vec(),
                });
            }
            132 if d.len() >= 12 => {
                // SCTP DATA chunks (type 0): 16-byte chunk header, then user data.
                let (sp, dp) = (
                    u16::from_be_bytes([d[0], d[1]]),
                    u16::from_be_bytes([d[2], d[3]]),
                );
                let mut c = &d[12..];
                while c.len() >= 4 {
                    let len = usize::from(u16::from_be_bytes([c[2], c[3]]));
                    if len < 4 || len > c.len() {
                        break;
                    }
                    if c[0] == 0 && len > 16 {
                        self.segs.push(Seg {
                            proto: Proto::Sctp,
                            src: SocketAddr::new(src, sp),
                            dst: SocketAddr::new(dst, dp),
                            seq: 0,
                            syn: false,
                            ts_ns: ts,
                            data: c[16..len].to_vec(),
                        });
                    }
                    let padded = len.div_ceil(4) * 4;
                    c = &c[padded.min(c.len())..];
                }
            }
            47 if d.len() >= 4 => {
                // GRE (RFC 2784/2890, and PPTP's enhanced GRE with PPP inside).
                let flags = u16::from_be_bytes([d[0], d[1]]);
                let et = u16::from_be_bytes([d[2], d[3]]);
                let mut off = 4;
                if flags & 0x8000 != 0 {
                    off += 4;
                }
                if flags & 0x2000 != 0 {
                    off += 4;
                }
                if flags & 0x1000 != 0 {
                    off += 4;
                }
                if flags & 0x0080 != 0 {
                    off += 4; // PPTP acknowledgment number
                }
                if off > d.len() {
                    return;
                }
                let inner = &d[off..];
                if et == 0x880b {
                    // PPP: optional ff 03, then protocol (0x0021 IPv4, 0x0057 IPv6).
                    let p = if inner.starts_with(&[0xff, 0x03]) {
                        &inner[2..]
                    } else {
                        inner
                    };
                    if p.len() >= 2 && (p[..2] == [0x00, 0x21] || p[..2] == [0x00, 0x57]) {
                        self.ip(ts, &p[2..], depth + 1);
                    } else if !p.is_empty() && (p[0] == 0x21 || p[0] == 0x57) {
                        self.ip(ts, &p[1..], depth + 1);
                    }
                } else {
                    self.ethertype(ts, et, inner, depth + 1);
                }
            }
            4 | 41 => self.ip(ts, d, depth + 1),
            _ => {}
        }
    }
}

/// All transport payloads of a capture, in capture order.
pub fn segments(path: &Path) -> Vec<Seg> {
    let mut x = Extractor::default();
    for (lt, ts, d) in frames(path) {
        x.frame(lt, ts, &d);
    }
    x.segs
}

/// The "Number of SIP messages" tshark reported for a capture.
pub fn tshark_sip_messages(capture: &Path) -> Option<u64> {
    let txt = std::fs::read_to_string(format!("{}.tshark.txt", capture.display())).ok()?;
    txt.lines()
        .find_map(|l| l.strip_prefix("Number of SIP messages: "))
        .and_then(|n| n.trim().parse().ok())
}
