//! SIP and SDP as the call model needs them: owned, capped fields taken from xdprec-sip's
//! parser ([`parse`]), plus the framing helpers the TCP reassembler uses and a small
//! tolerant reader of its own ([`parse_fallback`]).
//!
//! Input is hostile: every accessor works on byte slices with bounds checks, nothing panics,
//! lengths are capped ([`HEADERS_MAX`], [`SDP_MEDIA_MAX`]). Header names are matched case
//! insensitively with their compact forms (RFC 3261 §7.3.3: i, f, t, l, c, v, m).
//! Multipart bodies (RFC 5621, e.g. SIPREC) are searched for their `application/sdp` part.

use std::net::IpAddr;

/// Headers read per message at most; more are counted as garbage.
pub const HEADERS_MAX: usize = 128;
/// `m=` lines kept per SDP at most.
pub const SDP_MEDIA_MAX: usize = 16;
/// Longest field kept (Call-ID, URIs, tags), in bytes.
pub const FIELD_BYTES_MAX: usize = 512;

/// Request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { status: u16, reason: String },
}

/// The parts of one SIP message the indexer uses.
#[derive(Debug, Clone, Default)]
pub struct SipMessage {
    pub start: Option<StartLine>,
    pub call_id: String,
    pub from_uri: String,
    pub from_tag: String,
    pub to_uri: String,
    pub to_tag: String,
    pub cseq_num: u32,
    pub cseq_method: String,
    pub branch: String,
    pub content_length: Option<usize>,
    pub content_type: String,
    /// Length of start line plus headers plus the blank line.
    pub head_bytes: usize,
    pub sdp: Option<Sdp>,
}

impl SipMessage {
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Some(StartLine::Request { method, .. }) => Some(method),
            _ => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            Some(StartLine::Response { status, .. }) => Some(*status),
            _ => None,
        }
    }
}

/// Why a datagram was not a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipError {
    NotSip,
    NoCallId,
    Truncated,
    TooManyHeaders,
}

/// One SDP media description with its transport address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpMedia {
    pub media: String,
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub rtcp_port: u16,
    pub proto: String,
    /// (payload type, encoding name, clock rate)
    pub rtpmap: Vec<(u8, String, u32)>,
    pub payload_types: Vec<u8>,
    pub inactive: bool,
}

/// Parsed SDP: media descriptions with the session-level address applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sdp {
    pub media: Vec<SdpMedia>,
}

const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

/// True when `buf` starts like a SIP message (a known method or `SIP/2.0 `).
pub fn looks_like_sip(buf: &[u8]) -> bool {
    if buf.starts_with(b"SIP/2.0 ") {
        return true;
    }
    METHODS.iter().any(|m| {
        buf.len() > m.len() && buf.starts_with(m.as_bytes()) && buf.get(m.len()) == Some(&b' ')
    })
}

fn cap(s: &str) -> String {
    let mut end = s.len().min(FIELD_BYTES_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Finds the end of the header block: index just past the empty line.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads the Content-Length of a header block (None when absent or unreadable).
pub fn content_length(head: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(head);
    for line in text.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let n = name.trim();
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l") {
                return value.trim().parse().ok();
            }
        }
    }
    None
}

fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    // Parameters after the URI's closing '>' (or after the URI when not bracketed).
    let rest = match value.find('>') {
        Some(p) => &value[p + 1..],
        None => value,
    };
    rest.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn uri_of(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.find('>')) {
        if a < b {
            return &value[a + 1..b];
        }
    }
    value.split(';').next().unwrap_or("").trim()
}

/// The user part of a SIP URI (`sip:alice@host` → `alice`), or the URI when it has none.
pub fn user_part(uri: &str) -> &str {
    let s = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    let s = s.split('@').next().unwrap_or(s);
    s.split(';').next().unwrap_or(s)
}

/// Parses one SIP message from `buf` (a datagram or one framed TCP/SCTP message) with
/// xdprec-sip's parser, into the owned fields the call model keeps.
pub fn parse(buf: &[u8]) -> Result<SipMessage, SipError> {
    use xdprec_sip as xs;
    if !looks_like_sip(buf) {
        return Err(SipError::NotSip);
    }
    // Stream-framed messages may exceed a datagram's 64 KiB (the TCP framer caps them).
    let limits = xs::SipLimits {
        message_bytes_max: crate::tcp::FLOW_BYTES_MAX,
        ..Default::default()
    };
    let m = xs::SipMessage::parse_with(buf, &limits, xs::BodyFraming::Datagram).map_err(
        |e| match e {
            xs::SipError::TooManyHeaders { .. } => SipError::TooManyHeaders,
            xs::SipError::BadStartLine => SipError::NotSip,
            _ => SipError::Truncated,
        },
    )?;
    let start = if let Some(code) = m.status_code() {
        if !(100..700).contains(&code) {
            return Err(SipError::NotSip);
        }
        StartLine::Response {
            status: code,
            reason: String::new(),
        }
    } else {
        let method = m.method().map(|x| x.as_str()).unwrap_or("");
        let uri = m.request_uri().map(|u| u.raw).unwrap_or("");
        StartLine::Request {
            method: cap(method),
            uri: cap(uri),
        }
    };
    // RFC 3261 §7.1: a request line ends with SIP/2.0; a damaged one is not trusted
    // (tshark does not take it for SIP either).
    if let StartLine::Request { .. } = start {
        let first = buf.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let first = String::from_utf8_lossy(first);
        if !first
            .trim_end()
            .rsplit(' ')
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/2.0"))
        {
            return Err(SipError::NotSip);
        }
    }
    let call_id = m.call_id().map(str::trim).unwrap_or("");
    if call_id.is_empty() {
        return Err(SipError::NoCallId);
    }
    let from = m.from();
    let to = m.to();
    let cseq = m.cseq();
    let mut out = SipMessage {
        start: Some(start),
        call_id: cap(call_id),
        from_uri: cap(from.map(|f| f.uri).unwrap_or("")),
        from_tag: cap(from.and_then(|f| f.tag()).unwrap_or("")),
        to_uri: cap(to.map(|f| f.uri).unwrap_or("")),
        to_tag: cap(to.and_then(|f| f.tag()).unwrap_or("")),
        cseq_num: cseq.map(|c| c.seq).unwrap_or(0),
        cseq_method: cap(cseq.map(|c| c.method.as_str()).unwrap_or("")),
        branch: cap(m.via_branches().next().unwrap_or("")),
        content_length: None,
        content_type: String::new(),
        head_bytes: m.header_section().len(),
        sdp: None,
    };
    if let Ok(Some(body)) = m.sdp() {
        if let Ok(sdp) = xs::Sdp::parse(body) {
            let media: Vec<SdpMedia> = sdp
                .endpoints()
                .take(SDP_MEDIA_MAX)
                .map(|e| SdpMedia {
                    media: media_kind(&e.media.kind).to_string(),
                    addr: e.addr,
                    port: e.rtp_port,
                    rtcp_port: e.rtcp_port.unwrap_or(0),
                    proto: cap(e.media.proto),
                    rtpmap: e
                        .media
                        .codecs()
                        .take(64)
                        .map(|c| (c.payload_type, cap(c.encoding), c.clock_rate))
                        .collect(),
                    payload_types: e.media.payload_types().take(64).collect(),
                    inactive: e.direction == xs::Direction::Inactive,
                })
                .collect();
            if !media.is_empty() {
                out.sdp = Some(Sdp { media });
            }
        }
    }
    Ok(out)
}

fn media_kind<'a>(k: &xdprec_sip::MediaKind<'a>) -> &'a str {
    use xdprec_sip::MediaKind as K;
    match k {
        K::Audio => "audio",
        K::Video => "video",
        K::Text => "text",
        K::Application => "application",
        K::Message => "message",
        K::Image => "image",
        K::Unknown(s) => s,
    }
}

/// The indexer's own tolerant reader (kept for comparison in tests; [`parse`] is used).
pub fn parse_fallback(buf: &[u8]) -> Result<SipMessage, SipError> {
    if !looks_like_sip(buf) {
        return Err(SipError::NotSip);
    }
    let (head, body) = match head_end(buf) {
        Some(e) => (&buf[..e], &buf[e..]),
        // A datagram without the blank line: headers only (tolerated, as tshark does).
        None => (buf, &buf[buf.len()..]),
    };
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let first = lines.next().ok_or(SipError::Truncated)?;
    let start = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status: u16 = code.trim().parse().map_err(|_| SipError::NotSip)?;
        if !(100..700).contains(&status) {
            return Err(SipError::NotSip);
        }
        StartLine::Response {
            status,
            reason: cap(reason.trim()),
        }
    } else {
        let mut it = first.split(' ');
        let method = it.next().unwrap_or("");
        let uri = it.next().unwrap_or("");
        // RFC 3261 §7.1: Method SP Request-URI SP SIP-Version. A damaged version means the
        // start line cannot be trusted (tshark does not take it for SIP either).
        if !it
            .next()
            .is_some_and(|v| v.trim_end().eq_ignore_ascii_case("SIP/2.0"))
        {
            return Err(SipError::NotSip);
        }
        StartLine::Request {
            method: cap(method),
            uri: cap(uri),
        }
    };
    let mut m = SipMessage {
        start: Some(start),
        head_bytes: head.len(),
        ..Default::default()
    };
    let mut count = 0usize;
    let mut via_seen = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > HEADERS_MAX {
            return Err(SipError::TooManyHeaders);
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        let is = |long: &str, short: &str| {
            name.eq_ignore_ascii_case(long)
                || (!short.is_empty() && name.eq_ignore_ascii_case(short))
        };
        if is("call-id", "i") {
            m.call_id = cap(value);
        } else if is("from", "f") {
            m.from_uri = cap(uri_of(value));
            m.from_tag = cap(param(value, "tag").unwrap_or(""));
        } else if is("to", "t") {
            m.to_uri = cap(uri_of(value));
            m.to_tag = cap(param(value, "tag").unwrap_or(""));
        } else if is("cseq", "") {
            let mut it = value.split_whitespace();
            m.cseq_num = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            m.cseq_method = cap(it.next().unwrap_or(""));
        } else if is("via", "v") && !via_seen {
            via_seen = true;
            // The top Via's branch; a header may carry several comma-separated Vias.
            let top = value.split(',').next().unwrap_or(value);
            m.branch = cap(top
                .split(';')
                .skip(1)
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("branch").then(|| v.trim())
                })
                .unwrap_or(""));
        } else if is("content-length", "l") {
            m.content_length = value.parse().ok();
        } else if is("content-type", "c") {
            m.content_type = cap(value);
        }
    }
    if m.call_id.is_empty() {
        return Err(SipError::NoCallId);
    }
    let body = match m.content_length {
        Some(n) if n <= body.len() => &body[..n],
        _ => body,
    };
    if !body.is_empty() {
        let ct = m.content_type.to_ascii_lowercase();
        if ct.starts_with("application/sdp") || (ct.is_empty() && body.starts_with(b"v=0")) {
            m.sdp = parse_sdp(body);
        } else if ct.starts_with("multipart/") {
            m.sdp = multipart_sdp(body, &m.content_type);
        }
    }
    Ok(m)
}

fn multipart_sdp(body: &[u8], content_type: &str) -> Option<Sdp> {
    let boundary = param(
        &format!("x;{}", content_type.split_once(';')?.1),
        "boundary",
    )?
    .trim_matches('"')
    .to_string();
    if boundary.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    let delim = format!("--{boundary}");
    for part in text.split(delim.as_str()).skip(1) {
        let part_bytes = part.as_bytes();
        let Some(e) = head_end(part_bytes) else {
            continue;
        };
        let head = String::from_utf8_lossy(&part_bytes[..e]).to_ascii_lowercase();
        if head.contains("application/sdp") {
            return parse_sdp(&part_bytes[e..]);
        }
    }
    None
}

/// Parses an SDP body. Returns None when it holds no `m=` line.
pub fn parse_sdp(body: &[u8]) -> Option<Sdp> {
    let text = String::from_utf8_lossy(body);
    let mut session_addr: Option<IpAddr> = None;
    let mut session_inactive = false;
    let mut media: Vec<SdpMedia> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "c" => {
                // c=IN IP4 203.0.113.1[/ttl]
                let addr = v
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok());
                match media.last_mut() {
                    Some(m) => m.addr = addr.or(m.addr),
                    None => session_addr = addr,
                }
            }
            "m" => {
                if media.len() >= SDP_MEDIA_MAX {
                    continue;
                }
                let mut it = v.split_whitespace();
                let kind = it.next().unwrap_or("");
                let port: u16 = it
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let proto = it.next().unwrap_or("");
                let pts: Vec<u8> = it.filter_map(|p| p.parse().ok()).take(64).collect();
                media.push(SdpMedia {
                    media: cap(kind),
                    addr: session_addr,
                    port,
                    rtcp_port: port.wrapping_add(1),
                    proto: cap(proto),
                    rtpmap: Vec::new(),
                    payload_types: pts,
                    inactive: session_inactive,
                });
            }
            "a" => {
                if let Some(rest) = v.strip_prefix("rtpmap:") {
                    let Some(m) = media.last_mut() else { continue };
                    let mut it = rest.split_whitespace();
                    let pt: Option<u8> = it.next().and_then(|p| p.parse().ok());
                    let enc = it.next().unwrap_or("");
                    let mut e = enc.split('/');
                    let name = e.next().unwrap_or("");
                    let rate: u32 = e.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                    if let Some(pt) = pt {
                        if m.rtpmap.len() < 64 {
                            m.rtpmap.push((pt, cap(name), rate));
                        }
                    }
                } else if let Some(rest) = v.strip_prefix("rtcp:") {
                    if let (Some(m), Some(p)) = (
                        media.last_mut(),
                        rest.split_whitespace().next().and_then(|p| p.parse().ok()),
                    ) {
                        m.rtcp_port = p;
                    }
                }
            }
            _ => {}
        }
        if k == "a" && v == "inactive" {
            match media.last_mut() {
                Some(m) => m.inactive = true,
                None => session_inactive = true,
            }
        }
    }
    (!media.is_empty()).then_some(Sdp { media })
}

/// The encoding name of a static RTP payload type (RFC 3551), if it has one.
pub fn static_codec(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 | 6 | 16 | 17 => "DVI4",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 | 11 => "L16",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        18 => "G729",
        25 => "CelB",
        26 => "JPEG",
        28 => "nv",
        31 => "H261",
        32 => "MPV",
        33 => "MP2T",
        34 => "H263",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@198.51.100.2 SIP/2.0\r\n\
v: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK1\r\n\
f: \"Alice\" <sip:alice@198.51.100.1>;tag=a1\r\n\
t: <sip:bob@198.51.100.2>\r\n\
i: abc@198.51.100.1\r\n\
CSeq: 1 INVITE\r\n\
c: application/sdp\r\n\
\r\n\
v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn compact_headers_and_sdp() {
        let m = parse(INVITE).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.call_id, "abc@198.51.100.1");
        assert_eq!(m.from_tag, "a1");
        assert_eq!(m.to_tag, "");
        assert_eq!(user_part(&m.from_uri), "alice");
        assert_eq!(m.cseq_num, 1);
        assert_eq!(m.branch, "z9hG4bK1");
        let sdp = m.sdp.unwrap();
        assert_eq!(sdp.media[0].port, 4000);
        assert_eq!(sdp.media[0].addr, Some("198.51.100.1".parse().unwrap()));
        assert!(sdp.media[0]
            .rtpmap
            .iter()
            .any(|m| m.0 == 101 && m.1 == "telephone-event"));
        let own = parse_fallback(INVITE).unwrap();
        assert_eq!(
            (own.call_id, own.from_tag, own.cseq_num),
            (m.call_id.clone(), m.from_tag.clone(), 1)
        );
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        for n in 0..INVITE.len() {
            let _ = parse(&INVITE[..n]);
        }
        assert_eq!(parse(b"\x00\x01garbage").unwrap_err(), SipError::NotSip);
        assert_eq!(
            parse(b"SIP/2.0 999 X\r\n\r\n").unwrap_err(),
            SipError::NotSip
        );
        assert_eq!(
            parse(b"INVITE sip:x SIP/a.0\r\nCall-ID: 1\r\n\r\n").unwrap_err(),
            SipError::NotSip
        );
    }
}
