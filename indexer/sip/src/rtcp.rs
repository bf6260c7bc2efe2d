//! RTCP (RFC 3550 section 6): packet view, compound iterator, parsed reports.
//!
//! ```text
//! |V=2|P|   RC    |      PT       |            length (words - 1) |
//! ```
//!
//! A datagram is a compound of packets laid end to end. [`Compound`] yields each packet as
//! a checked [`Packet`] (its length fits the datagram) and stops at the first error or
//! after [`COMPOUND_PACKETS_MAX`] packets. [`RtcpRepr::parse`] checks that the report
//! count fits the packet; after that the report/chunk/SSRC iterators cannot run past it.

use crate::rtp::WireError;

/// Packets parsed from one compound datagram before giving up.
pub const COMPOUND_PACKETS_MAX: usize = 64;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    SenderReport,
    ReceiverReport,
    SourceDescription,
    Goodbye,
    App,
    /// RFC 4585 transport-layer feedback.
    Rtpfb,
    /// RFC 4585 payload-specific feedback.
    Psfb,
    /// RFC 3611 extended reports.
    Xr,
    Unknown(u8),
}

impl From<u8> for PacketType {
    fn from(v: u8) -> Self {
        match v {
            200 => PacketType::SenderReport,
            201 => PacketType::ReceiverReport,
            202 => PacketType::SourceDescription,
            203 => PacketType::Goodbye,
            204 => PacketType::App,
            205 => PacketType::Rtpfb,
            206 => PacketType::Psfb,
            207 => PacketType::Xr,
            other => PacketType::Unknown(other),
        }
    }
}

/// One RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// The buffer holds the whole packet (as its length field says) and its padding fits.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < 4 {
            return Err(WireError::Truncated);
        }
        let total = self.total_len();
        if b.len() < total {
            return Err(WireError::Truncated);
        }
        if self.padding() {
            let pad = usize::from(b[total - 1]);
            if pad == 0 || pad > total - 4 {
                return Err(WireError::BadPadding);
            }
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }
    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[0] & 0x20 != 0
    }
    /// Report count, source count or APP subtype.
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[0] & 0x1f
    }
    pub fn packet_type(&self) -> PacketType {
        PacketType::from(self.buffer.as_ref()[1])
    }
    /// The length field: words minus one.
    pub fn length_words(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// Packet length in bytes, header included.
    pub fn total_len(&self) -> usize {
        (usize::from(self.length_words()) + 1) * 4
    }

    /// Everything after the 4-byte header, padding removed.
    pub fn body(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let total = self.total_len();
        let pad = if self.padding() {
            usize::from(b[total - 1])
        } else {
            0
        };
        &b[4..total - pad]
    }
}

/// Sender info of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp, 32.32 fixed point seconds since 1900.
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    pub const LEN: usize = 24;

    fn parse(b: &[u8]) -> ReportBlock {
        let lost = (u32::from(b[5]) << 16) | (u32::from(b[6]) << 8) | u32::from(b[7]);
        // Sign-extend 24 bits.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            last_sr: be32(b, 16),
            delay_since_last_sr: be32(b, 20),
        }
    }
}

/// Report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    rest: &'a [u8],
    left: usize,
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        if self.left == 0 || self.rest.len() < ReportBlock::LEN {
            return None;
        }
        self.left -= 1;
        let (b, rest) = self.rest.split_at(ReportBlock::LEN);
        self.rest = rest;
        Some(ReportBlock::parse(b))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdesType {
    Cname,
    Name,
    Email,
    Phone,
    Loc,
    Tool,
    Note,
    Priv,
    Unknown(u8),
}

impl From<u8> for SdesType {
    fn from(v: u8) -> Self {
        match v {
            1 => SdesType::Cname,
            2 => SdesType::Name,
            3 => SdesType::Email,
            4 => SdesType::Phone,
            5 => SdesType::Loc,
            6 => SdesType::Tool,
            7 => SdesType::Note,
            8 => SdesType::Priv,
            other => SdesType::Unknown(other),
        }
    }
}

/// One SDES chunk: an SSRC and its items.
#[derive(Debug, Clone)]
pub struct SdesChunk<'a> {
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// The items `(type, value)`; stops at the end item or a truncated item.
    pub fn items(&self) -> impl Iterator<Item = (SdesType, &'a [u8])> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || {
            if rest.len() < 2 || rest[0] == 0 {
                return None;
            }
            let len = usize::from(rest[1]);
            if rest.len() < 2 + len {
                return None;
            }
            let item = (SdesType::from(rest[0]), &rest[2..2 + len]);
            rest = &rest[2 + len..];
            Some(item)
        })
    }

    /// The CNAME item.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items()
            .find(|(t, _)| *t == SdesType::Cname)
            .map(|(_, v)| v)
    }
}

/// SDES chunks of a packet.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;
    fn next(&mut self) -> Option<SdesChunk<'a>> {
        if self.left == 0 || self.rest.len() < 4 {
            return None;
        }
        self.left -= 1;
        let ssrc = be32(self.rest, 0);
        let items_start = 4;
        // Walk the items to find the end item, then the 32-bit boundary.
        let mut i = items_start;
        loop {
            if i >= self.rest.len() {
                break;
            }
            if self.rest[i] == 0 {
                i += 1;
                break;
            }
            if i + 1 >= self.rest.len() {
                i = self.rest.len();
                break;
            }
            i += 2 + usize::from(self.rest[i + 1]);
        }
        let end = i.min(self.rest.len());
        let chunk = SdesChunk {
            ssrc,
            items: &self.rest[items_start..end],
        };
        let next = end.div_ceil(4) * 4;
        self.rest = &self.rest[next.min(self.rest.len())..];
        Some(chunk)
    }
}

/// A parsed RTCP packet.
#[derive(Debug, Clone)]
pub enum RtcpRepr<'a> {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: ReportBlocks<'a>,
    },
    SourceDescription {
        chunks: SdesChunks<'a>,
    },
    Goodbye {
        /// The SSRCs leaving (4 bytes each).
        sources: &'a [u8],
        reason: Option<&'a [u8]>,
    },
    App {
        subtype: u8,
        ssrc: u32,
        name: [u8; 4],
        data: &'a [u8],
    },
    /// Feedback, XR and unknown types: type and body after the header.
    Other {
        packet_type: PacketType,
        body: &'a [u8],
    },
}

impl<'a> RtcpRepr<'a> {
    /// Parses a checked packet; the version must be 2 and counts must fit.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<RtcpRepr<'a>, WireError> {
        p.check_len()?;
        if p.version() != 2 {
            return Err(WireError::Version);
        }
        let body: &'a [u8] = {
            let b: &'a [u8] = p.buffer;
            let total = p.total_len();
            let pad = if p.padding() {
                usize::from(b[total - 1])
            } else {
                0
            };
            &b[4..total - pad]
        };
        let count = usize::from(p.count());
        Ok(match p.packet_type() {
            PacketType::SenderReport => {
                if body.len() < 24 + count * ReportBlock::LEN {
                    return Err(WireError::Truncated);
                }
                RtcpRepr::SenderReport {
                    ssrc: be32(body, 0),
                    info: SenderInfo {
                        ntp_timestamp: (u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8)),
                        rtp_timestamp: be32(body, 12),
                        packet_count: be32(body, 16),
                        octet_count: be32(body, 20),
                    },
                    reports: ReportBlocks {
                        rest: &body[24..],
                        left: count,
                    },
                }
            }
            PacketType::ReceiverReport => {
                if body.len() < 4 + count * ReportBlock::LEN {
                    return Err(WireError::Truncated);
                }
                RtcpRepr::ReceiverReport {
                    ssrc: be32(body, 0),
                    reports: ReportBlocks {
                        rest: &body[4..],
                        left: count,
                    },
                }
            }
            PacketType::SourceDescription => RtcpRepr::SourceDescription {
                chunks: SdesChunks {
                    rest: body,
                    left: count,
                },
            },
            PacketType::Goodbye => {
                let n = count * 4;
                if body.len() < n {
                    return Err(WireError::Truncated);
                }
                let reason = body
                    .get(n)
                    .and_then(|&len| body.get(n + 1..n + 1 + usize::from(len)));
                RtcpRepr::Goodbye {
                    sources: &body[..n],
                    reason,
                }
            }
            PacketType::App => {
                if body.len() < 8 {
                    return Err(WireError::Truncated);
                }
                RtcpRepr::App {
                    subtype: p.count(),
                    ssrc: be32(body, 0),
                    name: [body[4], body[5], body[6], body[7]],
                    data: &body[8..],
                }
            }
            other => RtcpRepr::Other {
                packet_type: other,
                body,
            },
        })
    }
}

/// Iterator over the packets of a compound RTCP datagram.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
    seen: usize,
    failed: bool,
}

impl<'a> Compound<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Compound {
            rest: datagram,
            seen: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<Packet<&'a [u8]>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        if self.seen >= COMPOUND_PACKETS_MAX {
            self.failed = true;
            return Some(Err(WireError::TooManyPackets {
                max: COMPOUND_PACKETS_MAX,
            }));
        }
        self.seen += 1;
        let p = Packet::new_unchecked(self.rest);
        if let Err(e) = p.check_len() {
            self.failed = true;
            return Some(Err(e));
        }
        if p.version() != 2 {
            self.failed = true;
            return Some(Err(WireError::Version));
        }
        let total = p.total_len();
        let (this, rest) = self.rest.split_at(total);
        self.rest = rest;
        Some(Ok(Packet::new_unchecked(this)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr_rr_sdes_bye() -> Vec<u8> {
        let mut d = Vec::new();
        // SR with one report block.
        d.extend_from_slice(&[0x81, 200, 0, 12]);
        d.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        d.extend_from_slice(&[0xe0, 0, 0, 1, 0x80, 0, 0, 0]); // NTP
        d.extend_from_slice(&1600u32.to_be_bytes());
        d.extend_from_slice(&10u32.to_be_bytes());
        d.extend_from_slice(&1600u32.to_be_bytes());
        d.extend_from_slice(&0x2222_2222u32.to_be_bytes());
        d.extend_from_slice(&[64, 0xff, 0xff, 0xfe]); // 25% lost, cumulative -2
        d.extend_from_slice(&70000u32.to_be_bytes());
        d.extend_from_slice(&37u32.to_be_bytes());
        d.extend_from_slice(&[0; 8]);
        // SDES: one chunk with CNAME "ab" and an end item, padded.
        d.extend_from_slice(&[0x81, 202, 0, 2]);
        d.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        d.extend_from_slice(&[1, 2, b'a', b'b']);
        d.extend_from_slice(&[0x81, 203, 0, 2]);
        d.extend_from_slice(&0x1111_1111u32.to_be_bytes());
        d.extend_from_slice(&[3, b'b', b'y', b'e']);
        d
    }

    #[test]
    fn compound() {
        let d = sr_rr_sdes_bye();
        let pkts: Vec<_> = Compound::new(&d).map(|p| p.unwrap()).collect();
        assert_eq!(pkts.len(), 3);
        match RtcpRepr::parse(&pkts[0]).unwrap() {
            RtcpRepr::SenderReport {
                ssrc,
                info,
                reports,
            } => {
                assert_eq!(ssrc, 0x1111_1111);
                assert_eq!(info.packet_count, 10);
                assert_eq!(info.ntp_timestamp >> 32, 0xe000_0001);
                let r: Vec<_> = reports.collect();
                assert_eq!(r.len(), 1);
                assert_eq!(
                    (r[0].fraction_lost, r[0].cumulative_lost, r[0].jitter),
                    (64, -2, 37)
                );
                assert_eq!(r[0].highest_seq, 70000);
            }
            other => panic!("{other:?}"),
        }
        match RtcpRepr::parse(&pkts[1]).unwrap() {
            RtcpRepr::SourceDescription { mut chunks } => {
                let c = chunks.next().unwrap();
                assert_eq!(c.cname(), Some(&b"ab"[..]));
                assert!(chunks.next().is_none());
            }
            other => panic!("{other:?}"),
        }
        match RtcpRepr::parse(&pkts[2]).unwrap() {
            RtcpRepr::Goodbye { sources, reason } => {
                assert_eq!(sources.len(), 4);
                assert_eq!(reason, Some(&b"bye"[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors() {
        let d = sr_rr_sdes_bye();
        // Truncated last packet: two good packets then an error.
        let r: Vec<_> = Compound::new(&d[..d.len() - 1]).collect();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2], Err(WireError::Truncated));
        // Report count larger than the packet.
        let mut bad = d[..52].to_vec();
        bad[0] = 0x82;
        let p = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(RtcpRepr::parse(&p).unwrap_err(), WireError::Truncated);
        // Version 1.
        let r: Vec<_> = Compound::new(&[0x41, 201, 0, 1, 0, 0, 0, 0]).collect();
        assert_eq!(r, vec![Err(WireError::Version)]);
        // Too many packets.
        let many: Vec<u8> = std::iter::repeat_n([0x80u8, 201, 0, 1, 0, 0, 0, 1], 70)
            .flatten()
            .collect();
        let r: Vec<_> = Compound::new(&many).collect();
        assert_eq!(r.len(), COMPOUND_PACKETS_MAX + 1);
        assert!(r.last().unwrap().is_err());
        // Padding count beyond the packet.
        assert_eq!(
            Packet::new_checked(&[0xa0u8, 201, 0, 1, 0, 0, 0, 9][..]).unwrap_err(),
            WireError::BadPadding
        );
    }
}
