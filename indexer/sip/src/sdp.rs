//! SDP session descriptions (RFC 8866, formerly RFC 4566) as carried in SIP bodies.
//!
//! [`Sdp::parse`] reads the session-level fields the indexer needs (v=, o=, s=, c=, t=,
//! direction) and splits the body into media sections ([`Media`]: m= plus its c=,
//! direction, a=rtcp, a=rtcp-mux, a=ptime). Other attributes are read on demand
//! ([`Media::attributes`], [`Media::rtpmap`], [`Media::fmtp`]) from the borrowed text.
//! [`Sdp::endpoints`] gives per media the effective address (media c= else session c=),
//! RTP and RTCP ports (a=rtcp, else rtcp-mux, else RTP+1) and direction, and
//! [`Media::codecs`] maps payload types to codecs (a=rtpmap, else the RFC 3551 static
//! table, [`static_payload_type`]).
//!
//! Lenient: CRLF or LF line ends; a line that is not `<letter>=<value>` or not UTF-8 is
//! skipped and counted in [`Sdp::malformed_lines`]. The first line must be `v=`.
//! Limits ([`SdpLimits`], each a typed [`SdpError`]): body bytes (64 KiB), lines (512),
//! one line (4 KiB), media sections (16). The media list is the only allocation (one
//! `Vec` of at most `media_max` entries).

use std::net::IpAddr;

use crate::text::trim;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpLimits {
    pub sdp_bytes_max: usize,
    pub lines_max: usize,
    pub line_bytes_max: usize,
    pub media_max: usize,
}

impl Default for SdpLimits {
    fn default() -> Self {
        SdpLimits {
            sdp_bytes_max: 64 * 1024,
            lines_max: 512,
            line_bytes_max: 4096,
            media_max: 16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP does not start with a v= line")]
    NotSdp,
    #[error("SDP of {bytes} bytes exceeds the limit of {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("SDP has more than {max} lines")]
    TooManyLines { max: usize },
    #[error("an SDP line is longer than {max} bytes")]
    LineTooLong { max: usize },
    #[error("SDP has more than {max} media sections")]
    TooManyMedia { max: usize },
}

impl SdpError {
    /// A stable snake_case label, for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            SdpError::NotSdp => "not_sdp",
            SdpError::TooLarge { .. } => "too_large",
            SdpError::TooManyLines { .. } => "too_many_lines",
            SdpError::LineTooLong { .. } => "line_too_long",
            SdpError::TooManyMedia { .. } => "too_many_media",
        }
    }
}

/// `c=IN IP4 203.0.113.1/127/3` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection<'a> {
    pub net_type: &'a str,
    /// `IP4`, `IP6` (as written).
    pub addr_type: &'a str,
    /// The address as written (without /ttl/count).
    pub address: &'a str,
    /// The address when it is a literal IPv4/IPv6 address.
    pub ip: Option<IpAddr>,
    /// IPv4 multicast TTL.
    pub ttl: Option<u8>,
    /// Number of consecutive multicast addresses.
    pub count: Option<u32>,
}

impl<'a> Connection<'a> {
    pub fn parse(v: &'a str) -> Option<Connection<'a>> {
        let mut it = v.split_ascii_whitespace();
        let net_type = it.next()?;
        let addr_type = it.next()?;
        let spec = it.next()?;
        let mut parts = spec.split('/');
        let address = parts.next()?;
        let a = parts.next();
        let b = parts.next();
        let is_v6 = addr_type.eq_ignore_ascii_case("IP6");
        let (ttl, count) = if is_v6 {
            (None, a.and_then(|c| c.parse().ok()))
        } else {
            (
                a.and_then(|t| t.parse().ok()),
                b.and_then(|c| c.parse().ok()),
            )
        };
        Some(Connection {
            net_type,
            addr_type,
            address,
            ip: address.parse().ok(),
            ttl,
            count,
        })
    }
}

/// `o=username sess-id sess-version nettype addrtype unicast-address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub username: &'a str,
    pub session_id: &'a str,
    pub session_version: &'a str,
    pub net_type: &'a str,
    pub addr_type: &'a str,
    pub address: &'a str,
    pub ip: Option<IpAddr>,
}

impl<'a> Origin<'a> {
    pub fn parse(v: &'a str) -> Option<Origin<'a>> {
        let mut it = v.split_ascii_whitespace();
        let o = Origin {
            username: it.next()?,
            session_id: it.next()?,
            session_version: it.next()?,
            net_type: it.next()?,
            addr_type: it.next()?,
            address: it.next()?,
            ip: None,
        };
        Some(Origin {
            ip: o.address.parse().ok(),
            ..o
        })
    }
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attr(name: &str) -> Option<Direction> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
}

/// The media type of an m= line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind<'a> {
    Audio,
    Video,
    Text,
    Application,
    Message,
    Image,
    Unknown(&'a str),
}

impl<'a> MediaKind<'a> {
    pub fn parse(s: &'a str) -> MediaKind<'a> {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "text" => MediaKind::Text,
            "application" => MediaKind::Application,
            "message" => MediaKind::Message,
            "image" => MediaKind::Image,
            other => MediaKind::Unknown(other),
        }
    }

    /// The media type as written in the m= line.
    pub fn as_str(&self) -> &'a str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
            MediaKind::Application => "application",
            MediaKind::Message => "message",
            MediaKind::Image => "image",
            MediaKind::Unknown(s) => s,
        }
    }
}

/// One `a=` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMap<'a> {
    pub payload_type: u8,
    pub encoding: &'a str,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl<'a> RtpMap<'a> {
    pub fn parse(v: &'a str) -> Option<RtpMap<'a>> {
        let v = trim(v);
        let (pt, rest) = v.split_once([' ', '\t'])?;
        let payload_type: u8 = pt.parse().ok().filter(|&p| p < 128)?;
        let mut it = trim(rest).split('/');
        let encoding = it.next().filter(|e| !e.is_empty())?;
        let clock_rate = it.next()?.trim().parse().ok()?;
        let channels = it.next().and_then(|c| c.trim().parse().ok());
        Some(RtpMap {
            payload_type,
            encoding,
            clock_rate,
            channels,
        })
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttr {
    pub port: u16,
    pub ip: Option<IpAddr>,
}

impl RtcpAttr {
    pub fn parse(v: &str) -> Option<RtcpAttr> {
        let mut it = v.split_ascii_whitespace();
        let port = it.next()?.parse().ok()?;
        let _net = it.next();
        let _atype = it.next();
        let ip = it.next().and_then(|a| a.parse().ok());
        Some(RtcpAttr { port, ip })
    }
}

/// A payload type's codec, from a=rtpmap or the static table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec<'a> {
    pub payload_type: u8,
    pub encoding: &'a str,
    pub clock_rate: u32,
    pub channels: Option<u16>,
    /// From the RFC 3551 table rather than an a=rtpmap line.
    pub is_static: bool,
}

/// RFC 3551 static payload types: (pt, encoding, clock rate, channels).
const STATIC_PT: &[(u8, &str, u32, u16)] = &[
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (5, "DVI4", 8000, 1),
    (6, "DVI4", 16000, 1),
    (7, "LPC", 8000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (10, "L16", 44100, 2),
    (11, "L16", 44100, 1),
    (12, "QCELP", 8000, 1),
    (13, "CN", 8000, 1),
    (14, "MPA", 90000, 0),
    (15, "G728", 8000, 1),
    (16, "DVI4", 11025, 1),
    (17, "DVI4", 22050, 1),
    (18, "G729", 8000, 1),
    (25, "CelB", 90000, 0),
    (26, "JPEG", 90000, 0),
    (28, "nv", 90000, 0),
    (31, "H261", 90000, 0),
    (32, "MPV", 90000, 0),
    (33, "MP2T", 90000, 0),
    (34, "H263", 90000, 0),
];

/// The RFC 3551 static assignment of `pt`, if any.
pub fn static_payload_type(pt: u8) -> Option<Codec<'static>> {
    STATIC_PT
        .iter()
        .find(|e| e.0 == pt)
        .map(|&(payload_type, encoding, clock_rate, ch)| Codec {
            payload_type,
            encoding,
            clock_rate,
            channels: (ch != 0).then_some(ch),
            is_static: true,
        })
}

/// Iterator over the `x=value` lines of a section (malformed lines skipped).
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u8, &'a str);
    fn next(&mut self) -> Option<(u8, &'a str)> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = self
                .rest
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(self.rest.len());
            let line = &self.rest[..end];
            self.rest = &self.rest[(end + 1).min(self.rest.len())..];
            if let Some(l) = split_line(line) {
                return Some(l);
            }
        }
    }
}

fn split_line(line: &[u8]) -> Option<(u8, &str)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < 2 || line[1] != b'=' || !line[0].is_ascii_lowercase() {
        return None;
    }
    let v = std::str::from_utf8(&line[2..]).ok()?;
    Some((line[0], v))
}

fn attributes(section: &[u8]) -> impl Iterator<Item = Attribute<'_>> + '_ {
    Lines { rest: section }
        .filter(|(t, _)| *t == b'a')
        .map(|(_, v)| match v.split_once(':') {
            Some((n, val)) => Attribute {
                name: trim(n),
                value: Some(val),
            },
            None => Attribute {
                name: trim(v),
                value: None,
            },
        })
}

/// One media section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media<'a> {
    pub kind: MediaKind<'a>,
    pub port: u16,
    /// `m=audio 49170/2 ...`
    pub port_count: Option<u16>,
    /// Transport protocol as written (`RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, `udptl`).
    pub proto: &'a str,
    /// The format list as written.
    pub format_list: &'a str,
    pub connection: Option<Connection<'a>>,
    pub direction: Option<Direction>,
    pub rtcp: Option<RtcpAttr>,
    pub rtcp_mux: bool,
    pub ptime_ms: Option<u32>,
    /// The section's lines after m=.
    section: &'a [u8],
}

impl<'a> Media<'a> {
    fn parse_mline(v: &'a str, section: &'a [u8]) -> Option<Media<'a>> {
        let mut it = v.split_ascii_whitespace();
        let kind = MediaKind::parse(it.next()?);
        let portspec = it.next()?;
        let (port, port_count) = match portspec.split_once('/') {
            Some((p, n)) => (p.parse().ok()?, n.parse().ok()),
            None => (portspec.parse().ok()?, None),
        };
        let proto = it.next()?;
        // The rest of the line after proto is the format list (`proto` is a subslice of
        // `v`, so its offset is the difference of the pointers).
        let idx = proto.as_ptr() as usize - v.as_ptr() as usize + proto.len();
        let format_list = trim(v.get(idx..).unwrap_or(""));
        Some(Media {
            kind,
            port,
            port_count,
            proto,
            format_list,
            connection: None,
            direction: None,
            rtcp: None,
            rtcp_mux: false,
            ptime_ms: None,
            section,
        })
    }

    /// Whether the transport is RTP (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`...).
    pub fn is_rtp(&self) -> bool {
        self.proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
    }

    /// The formats of the m= line.
    pub fn formats(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.format_list.split_ascii_whitespace()
    }

    /// The formats that are RTP payload types (0..=127).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + 'a {
        self.formats()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|&p| p < 128)
    }

    /// Attributes of this media section in order.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'a>> + 'a {
        attributes(self.section)
    }

    /// The first attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<Attribute<'a>> {
        self.attributes().find(|a| a.name == name)
    }

    /// The a=rtpmap line for `pt`.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap<'a>> {
        self.attributes()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| RtpMap::parse(a.value?))
            .find(|m| m.payload_type == pt)
    }

    /// The a=fmtp parameters for `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&'a str> {
        self.attributes()
            .filter(|a| a.name == "fmtp")
            .filter_map(|a| {
                let v = trim(a.value?);
                let (p, params) = v.split_once([' ', '\t'])?;
                (p.parse::<u8>().ok()? == pt).then(|| trim(params))
            })
            .next()
    }

    /// The codec of `pt`: a=rtpmap, else the static table.
    pub fn codec(&self, pt: u8) -> Option<Codec<'a>> {
        match self.rtpmap(pt) {
            Some(m) => Some(Codec {
                payload_type: pt,
                encoding: m.encoding,
                clock_rate: m.clock_rate,
                channels: m.channels,
                is_static: false,
            }),
            None => static_payload_type(pt),
        }
    }

    /// Payload type -> codec for every format of the m= line that has one.
    pub fn codecs(&self) -> impl Iterator<Item = Codec<'a>> + 'a {
        let me = *self;
        self.payload_types().filter_map(move |pt| me.codec(pt))
    }
}

/// Where a media stream is expected, from the SDP's point of view (its sender receives
/// there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaEndpoint<'a> {
    /// Index of the m= line (0-based), for matching answers to offers.
    pub index: usize,
    /// Media-level c= address, else session-level; `None` if neither is an IP literal.
    pub addr: Option<IpAddr>,
    pub rtp_port: u16,
    /// a=rtcp port, else the RTP port with rtcp-mux, else RTP port + 1.
    pub rtcp_port: Option<u16>,
    /// a=rtcp address when given, else `addr`.
    pub rtcp_addr: Option<IpAddr>,
    /// Media direction, else session direction, else sendrecv.
    pub direction: Direction,
    /// Port 0: the stream is rejected or disabled.
    pub disabled: bool,
    pub media: Media<'a>,
}

/// A parsed session description.
#[derive(Debug, Clone)]
pub struct Sdp<'a> {
    pub version: u32,
    pub origin: Option<Origin<'a>>,
    pub session_name: Option<&'a str>,
    pub connection: Option<Connection<'a>>,
    /// The first `t=<start> <stop>` (NTP seconds; 0 0 for an unbounded session).
    pub timing: Option<(u64, u64)>,
    pub direction: Option<Direction>,
    pub media: Vec<Media<'a>>,
    /// Lines skipped as malformed (not `x=value`, not UTF-8, or an unparsable m=/c=/o=).
    pub malformed_lines: u32,
    session: &'a [u8],
}

impl<'a> Sdp<'a> {
    /// Parses with the default limits.
    pub fn parse(data: &'a [u8]) -> Result<Sdp<'a>, SdpError> {
        Self::parse_with(data, &SdpLimits::default())
    }

    pub fn parse_with(data: &'a [u8], limits: &SdpLimits) -> Result<Sdp<'a>, SdpError> {
        if data.len() > limits.sdp_bytes_max {
            return Err(SdpError::TooLarge {
                bytes: data.len(),
                max: limits.sdp_bytes_max,
            });
        }
        // Tolerate leading blank lines / whitespace.
        let start = data
            .iter()
            .position(|&b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .unwrap_or(data.len());
        let data = &data[start..];
        if !data.starts_with(b"v=") {
            return Err(SdpError::NotSdp);
        }
        let mut sdp = Sdp {
            version: 0,
            origin: None,
            session_name: None,
            connection: None,
            timing: None,
            direction: None,
            media: Vec::new(),
            malformed_lines: 0,
            session: data,
        };
        let mut pos = 0;
        let mut lines = 0;
        // Which section the current line belongs to: None = session level, Some(None) =
        // after an unparsable m= line (ignored), Some(Some(i)) = media i.
        let mut section: Option<Option<usize>> = None;
        while pos < data.len() {
            let end = data[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |p| pos + p);
            let line_start = pos;
            pos = (end + 1).min(data.len());
            let raw = &data[line_start..end];
            if raw.len() > limits.line_bytes_max {
                return Err(SdpError::LineTooLong {
                    max: limits.line_bytes_max,
                });
            }
            lines += 1;
            if lines > limits.lines_max {
                return Err(SdpError::TooManyLines {
                    max: limits.lines_max,
                });
            }
            if raw.is_empty() || raw == b"\r" {
                continue;
            }
            let Some((t, v)) = split_line(raw) else {
                sdp.malformed_lines += 1;
                continue;
            };
            if t == b'm' {
                match section {
                    None => sdp.session = &data[..line_start],
                    Some(Some(i)) => {
                        let prev = &mut sdp.media[i];
                        prev.section = cut_section(data, prev.section, line_start);
                    }
                    Some(None) => {}
                }
                if sdp.media.len() >= limits.media_max {
                    return Err(SdpError::TooManyMedia {
                        max: limits.media_max,
                    });
                }
                // The section runs to the next m= line (cut there) or the end.
                section = match Media::parse_mline(v, &data[pos..]) {
                    Some(m) => {
                        sdp.media.push(m);
                        Some(Some(sdp.media.len() - 1))
                    }
                    None => {
                        sdp.malformed_lines += 1;
                        Some(None)
                    }
                };
                continue;
            }
            match section {
                None => match t {
                    b'v' => sdp.version = v.trim().parse().unwrap_or(0),
                    b'o' => {
                        sdp.origin = Origin::parse(v);
                        if sdp.origin.is_none() {
                            sdp.malformed_lines += 1;
                        }
                    }
                    b's' => sdp.session_name = Some(v),
                    b't' if sdp.timing.is_none() => {
                        let mut it = v.split_ascii_whitespace().map(|n| n.parse::<u64>().ok());
                        match (it.next().flatten(), it.next().flatten()) {
                            (Some(a), Some(b)) => sdp.timing = Some((a, b)),
                            _ => sdp.malformed_lines += 1,
                        }
                    }
                    b'c' => match Connection::parse(v) {
                        Some(c) => {
                            sdp.connection.get_or_insert(c);
                        }
                        None => sdp.malformed_lines += 1,
                    },
                    b'a' => {
                        if let Some(d) = Direction::from_attr(trim(v)) {
                            sdp.direction = Some(d);
                        }
                    }
                    _ => {}
                },
                Some(None) => {}
                Some(Some(i)) => {
                    let m = &mut sdp.media[i];
                    match t {
                        b'c' => match Connection::parse(v) {
                            Some(c) => {
                                m.connection.get_or_insert(c);
                            }
                            None => sdp.malformed_lines += 1,
                        },
                        b'a' => {
                            let (name, value) = match v.split_once(':') {
                                Some((n, val)) => (trim(n), Some(val)),
                                None => (trim(v), None),
                            };
                            if let Some(d) = Direction::from_attr(name) {
                                m.direction = Some(d);
                            } else if name == "rtcp" {
                                m.rtcp = value.and_then(RtcpAttr::parse);
                            } else if name == "rtcp-mux" {
                                m.rtcp_mux = true;
                            } else if name == "ptime" {
                                m.ptime_ms = value.and_then(|p| p.trim().parse().ok());
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(sdp)
    }

    /// Session-level attributes.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'a>> + 'a {
        attributes(self.session)
    }

    /// The effective endpoint of each media section.
    pub fn endpoints(&self) -> impl Iterator<Item = MediaEndpoint<'a>> + '_ {
        self.media.iter().enumerate().map(move |(index, m)| {
            let addr = m.connection.or(self.connection).and_then(|c| c.ip);
            let rtcp_port = match (m.rtcp, m.rtcp_mux) {
                (Some(r), _) => Some(r.port),
                (None, true) => Some(m.port),
                (None, false) => m.port.checked_add(1),
            };
            MediaEndpoint {
                index,
                addr,
                rtp_port: m.port,
                rtcp_port,
                rtcp_addr: m.rtcp.and_then(|r| r.ip).or(addr),
                direction: m
                    .direction
                    .or(self.direction)
                    .unwrap_or(Direction::SendRecv),
                disabled: m.port == 0,
                media: *m,
            }
        })
    }
}

/// `section` (a suffix of `data`) cut to end at `end` (an offset in `data`).
fn cut_section<'a>(data: &'a [u8], section: &'a [u8], end: usize) -> &'a [u8] {
    let start = data.len() - section.len();
    if end >= start {
        &data[start..end]
    } else {
        &section[..0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OFFER: &[u8] = b"v=0\r\n\
o=alice 2890844526 2890844527 IN IP4 198.51.100.7\r\n\
s=-\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
a=sendrecv\r\n\
m=audio 49172 RTP/AVP 0 8 97 101\r\n\
a=rtpmap:97 opus/48000/2\r\n\
a=fmtp:97 useinbandfec=1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=rtcp:53020 IN IP4 203.0.113.9\r\n\
m=video 51372/2 RTP/AVPF 31 34\r\n\
c=IN IP4 224.2.1.1/127/3\r\n\
a=recvonly\r\n\
m=image 0 udptl t38\r\n";

    #[test]
    fn offer() {
        let s = Sdp::parse(OFFER).unwrap();
        assert_eq!(s.malformed_lines, 0);
        assert_eq!(s.origin.unwrap().session_version, "2890844527");
        assert_eq!(s.timing, Some((0, 0)));
        assert_eq!(s.session_name, Some("-"));
        assert_eq!(s.media.len(), 3);
        let a = &s.media[0];
        assert_eq!(
            (a.kind, a.port, a.proto),
            (MediaKind::Audio, 49172, "RTP/AVP")
        );
        assert_eq!(a.payload_types().collect::<Vec<_>>(), [0, 8, 97, 101]);
        let codecs: Vec<_> = a
            .codecs()
            .map(|c| (c.payload_type, c.encoding, c.clock_rate, c.channels))
            .collect();
        assert_eq!(
            codecs,
            [
                (0, "PCMU", 8000, Some(1)),
                (8, "PCMA", 8000, Some(1)),
                (97, "opus", 48000, Some(2)),
                (101, "telephone-event", 8000, None)
            ]
        );
        assert_eq!(a.fmtp(101), Some("0-15"));
        assert_eq!(a.ptime_ms, Some(20));
        // The video section's attributes are not in the audio section.
        assert!(a.attribute("recvonly").is_none());
        let v = &s.media[1];
        assert_eq!(v.port_count, Some(2));
        let c = v.connection.unwrap();
        assert_eq!(
            (c.ip, c.ttl, c.count),
            (
                Some(IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1))),
                Some(127),
                Some(3)
            )
        );
        assert_eq!(
            v.codecs().map(|c| c.encoding).collect::<Vec<_>>(),
            ["H261", "H263"]
        );

        let e: Vec<_> = s.endpoints().collect();
        assert_eq!(e[0].addr, Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))));
        assert_eq!((e[0].rtp_port, e[0].rtcp_port), (49172, Some(53020)));
        assert_eq!(
            e[0].rtcp_addr,
            Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)))
        );
        assert_eq!(e[0].direction, Direction::SendRecv);
        assert_eq!(e[1].addr, Some(IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1))));
        assert_eq!(
            (e[1].rtcp_port, e[1].direction),
            (Some(51373), Direction::RecvOnly)
        );
        assert!(e[2].disabled && !e[2].media.is_rtp());
    }

    #[test]
    fn ipv6_lf_mux_and_malformed() {
        let s = Sdp::parse(b"v=0\no=- 1 1 IN IP6 2001:db8::1\ns=x\nc=IN IP6 2001:db8::2\nbogus\nt=0 0\nm=audio 5004 RTP/SAVPF 111\na=rtcp-mux\na=sendonly\nc=IN IP6 ff15::101/3\n").unwrap();
        assert_eq!(s.malformed_lines, 1);
        let e = s.endpoints().next().unwrap();
        assert_eq!(
            e.addr,
            Some(IpAddr::V6("ff15::101".parse::<Ipv6Addr>().unwrap()))
        );
        assert_eq!(s.media[0].connection.unwrap().count, Some(3));
        assert_eq!(
            (e.rtp_port, e.rtcp_port, e.direction),
            (5004, Some(5004), Direction::SendOnly)
        );
        assert_eq!(s.media[0].codec(111), None);
        assert_eq!(
            s.connection.unwrap().ip,
            Some(IpAddr::V6("2001:db8::2".parse().unwrap()))
        );
    }

    #[test]
    fn limits_and_static() {
        assert_eq!(Sdp::parse(b"o=x\r\n").unwrap_err(), SdpError::NotSdp);
        let mut many = b"v=0\r\n".to_vec();
        for _ in 0..17 {
            many.extend_from_slice(b"m=audio 1 RTP/AVP 0\r\n");
        }
        assert_eq!(
            Sdp::parse(&many).unwrap_err(),
            SdpError::TooManyMedia { max: 16 }
        );
        let l = SdpLimits {
            lines_max: 3,
            ..SdpLimits::default()
        };
        assert_eq!(
            Sdp::parse_with(&many, &l).unwrap_err(),
            SdpError::TooManyLines { max: 3 }
        );
        for (pt, name, rate) in [
            (0, "PCMU", 8000),
            (9, "G722", 8000),
            (10, "L16", 44100),
            (18, "G729", 8000),
            (26, "JPEG", 90000),
            (34, "H263", 90000),
        ] {
            let c = static_payload_type(pt).unwrap();
            assert_eq!((c.encoding, c.clock_rate), (name, rate));
        }
        assert!(static_payload_type(2).is_none() && static_payload_type(96).is_none());
        // The format list is what follows the proto field, even if the proto text occurs
        // earlier in the line.
        let s = Sdp::parse(b"v=0\nm=RTP/AVP 9 RTP/AVP 0 8\n").unwrap();
        assert_eq!(s.media[0].format_list, "0 8");
        // A bad m= line does not attach its attributes to the previous media.
        let s = Sdp::parse(b"v=0\nm=audio 1 RTP/AVP 0\nm=audio x\na=sendonly\n").unwrap();
        assert_eq!(s.media.len(), 1);
        assert_eq!(s.malformed_lines, 1);
        assert_eq!(s.media[0].attribute("sendonly"), None);
    }
}
