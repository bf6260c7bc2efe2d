//! SIP messages (RFC 3261 section 7): start line, header section, body.
//!
//! [`SipMessage::parse`] validates a whole message in one pass (start line, every header
//! line, the limits below, the body boundary) and remembers where the headers the indexer
//! needs are. Everything else is parsed on demand from borrowed text: the message is never
//! copied and parsing allocates nothing.
//!
//! Accepted: CRLF or bare LF line ends; header folding (a line starting with SP/HTAB
//! continues the previous header, and values keep the raw fold); compact header names;
//! repeated headers and comma-separated values. Header values are bytes; typed accessors
//! return `None` for a header whose value is not UTF-8 or does not parse.
//!
//! Body (see [`BodyFraming`]): with Content-Length, exactly that many bytes follow the blank
//! line. In a datagram a missing or invalid Content-Length means "the rest of the datagram",
//! and a Content-Length larger than what is there gives the bytes that are there (flagged
//! [`Warnings::BODY_TRUNCATED`]). Bytes after the body are flagged
//! [`Warnings::TRAILING_BYTES`] and exposed by [`SipMessage::trailing`].
//!
//! Limits ([`SipLimits`], each a typed [`SipError`] variant the caller can count):
//! message bytes (default 65535), header section bytes (16 KiB), one header line including
//! folds (8 KiB), header count (128), start line bytes (8 KiB).

use crate::header::{CSeq, ContentType, HeaderName, Method, NameAddr, Reason, Uri, Via};
use crate::multipart::{self, MultipartError};
use crate::text::{find_headers_end, is_token, parse_u32, split_list, trim, trim_bytes};

/// Limits applied by [`SipMessage::parse_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipLimits {
    pub message_bytes_max: usize,
    pub start_line_bytes_max: usize,
    pub header_section_bytes_max: usize,
    /// One header including its folded continuation lines.
    pub header_line_bytes_max: usize,
    pub headers_max: usize,
    pub multipart_parts_max: usize,
}

impl Default for SipLimits {
    fn default() -> Self {
        SipLimits {
            message_bytes_max: 65_535,
            start_line_bytes_max: 8192,
            header_section_bytes_max: 16 * 1024,
            header_line_bytes_max: 8 * 1024,
            headers_max: 128,
            multipart_parts_max: 8,
        }
    }
}

/// Why a message was rejected. Each variant is a counter for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("empty SIP message")]
    Empty,
    #[error("SIP message of {bytes} bytes exceeds the limit of {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("SIP start line is neither a request line nor a status line")]
    BadStartLine,
    #[error("SIP start line longer than {max} bytes")]
    StartLineTooLong { max: usize },
    #[error("SIP header section has no terminating blank line")]
    NoHeaderEnd,
    #[error("SIP header section longer than {max} bytes")]
    HeaderSectionTooLong { max: usize },
    #[error("a SIP header line is longer than {max} bytes")]
    HeaderTooLong { max: usize },
    #[error("SIP message has more than {max} headers")]
    TooManyHeaders { max: usize },
    #[error(
        "SIP message with Content-Length {declared} in a stream holds only {available} body bytes"
    )]
    BodyIncomplete { declared: usize, available: usize },
    #[error("SIP multipart body: {0}")]
    Multipart(#[from] MultipartError),
}

impl SipError {
    /// A stable snake_case label, for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            SipError::Empty => "empty",
            SipError::TooLarge { .. } => "too_large",
            SipError::BadStartLine => "bad_start_line",
            SipError::StartLineTooLong { .. } => "start_line_too_long",
            SipError::NoHeaderEnd => "no_header_end",
            SipError::HeaderSectionTooLong { .. } => "header_section_too_long",
            SipError::HeaderTooLong { .. } => "header_too_long",
            SipError::TooManyHeaders { .. } => "too_many_headers",
            SipError::BodyIncomplete { .. } => "body_incomplete",
            SipError::Multipart(_) => "multipart",
        }
    }
}

/// How the end of the message is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// UDP/SCTP datagram: one message per datagram; lenient about Content-Length.
    Datagram,
    /// A message cut from a stream by [`crate::SipStreamFramer`]: Content-Length is
    /// authoritative (absent means 0), and a short body is an error.
    Stream,
}

/// Non-fatal oddities found while parsing, as bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Warnings(pub u16);

impl Warnings {
    pub const CONTENT_LENGTH_MISSING: u16 = 1 << 0;
    pub const CONTENT_LENGTH_INVALID: u16 = 1 << 1;
    pub const CONTENT_LENGTH_DUPLICATE: u16 = 1 << 2;
    pub const BODY_TRUNCATED: u16 = 1 << 3;
    pub const TRAILING_BYTES: u16 = 1 << 4;
    pub const MALFORMED_HEADER_LINE: u16 = 1 << 5;
    pub const CALL_ID_DUPLICATE: u16 = 1 << 6;
    pub const BARE_LF: u16 = 1 << 7;
    pub const NO_HEADER_END: u16 = 1 << 8;

    pub fn contains(&self, flag: u16) -> bool {
        self.0 & flag != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    fn set(&mut self, flag: u16) {
        self.0 |= flag;
    }
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request {
        method: Method<'a>,
        uri: &'a str,
        version: &'a str,
    },
    Response {
        version: &'a str,
        code: u16,
        reason: &'a [u8],
    },
}

impl<'a> StartLine<'a> {
    /// Parses a start line (without its line end).
    pub fn parse(line: &'a [u8]) -> Option<StartLine<'a>> {
        if line.len() > 8 && line[..8].eq_ignore_ascii_case(b"SIP/2.0 ")
            || is_sip_version_prefix(line)
        {
            let sp = line.iter().position(|&b| b == b' ')?;
            let version = std::str::from_utf8(&line[..sp]).ok()?;
            let rest = &line[sp + 1..];
            if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
                return None;
            }
            if rest.len() > 3 && rest[3] != b' ' && rest[3] != b'\t' {
                return None;
            }
            let code = (u16::from(rest[0] - b'0')) * 100
                + u16::from(rest[1] - b'0') * 10
                + u16::from(rest[2] - b'0');
            if !(100..=699).contains(&code) {
                return None;
            }
            let reason = trim_bytes(rest.get(4..).unwrap_or(&[]));
            return Some(StartLine::Response {
                version,
                code,
                reason,
            });
        }
        let text = std::str::from_utf8(line).ok()?;
        let mut it = text.split(' ');
        let method = it.next()?;
        let uri = it.next()?;
        let version = it.next()?;
        if it.next().is_some()
            || method.is_empty()
            || !method.bytes().all(is_token)
            || uri.is_empty()
            || !is_sip_version(version.as_bytes())
        {
            return None;
        }
        Some(StartLine::Request {
            method: Method::parse(method),
            uri,
            version,
        })
    }
}

/// `SIP/d.d` (case-insensitive "SIP").
fn is_sip_version(v: &[u8]) -> bool {
    v.len() >= 7
        && v[..4].eq_ignore_ascii_case(b"SIP/")
        && v[4..].iter().all(|&b| b.is_ascii_digit() || b == b'.')
        && v[4..].contains(&b'.')
}

fn is_sip_version_prefix(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b' ') {
        Some(sp) => is_sip_version(&line[..sp]),
        None => false,
    }
}

/// Whether `line` (without line end) is a SIP request or status line. Used by the stream
/// framer to resynchronise.
pub fn is_start_line(line: &[u8]) -> bool {
    StartLine::parse(line).is_some()
}

/// One header: name and raw value (trimmed; folds kept as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: HeaderName<'a>,
    pub value: &'a [u8],
}

impl<'a> Header<'a> {
    /// The value as text, when it is UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }
}

/// Iterator over header lines of a header section (start line excluded). Lines that are
/// not `name: value` are skipped (they were flagged at parse time).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

/// Splits the next logical header line (with folds) off `rest`.
fn next_logical_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.is_empty() {
        return None;
    }
    let data = *rest;
    let mut end = 0;
    loop {
        match data[end..].iter().position(|&b| b == b'\n') {
            Some(p) => {
                end += p + 1;
                // Continuation when the next line starts with SP/HTAB.
                if end < data.len() && (data[end] == b' ' || data[end] == b'\t') {
                    continue;
                }
                break;
            }
            None => {
                end = data.len();
                break;
            }
        }
    }
    *rest = &data[end..];
    Some(&data[..end])
}

fn split_header(line: &[u8]) -> Option<Header<'_>> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = trim_bytes(&line[..colon]);
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return None;
    }
    let name = std::str::from_utf8(name).ok()?;
    Some(Header {
        name: HeaderName::parse(name),
        value: trim_bytes(&line[colon + 1..]),
    })
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;
    fn next(&mut self) -> Option<Header<'a>> {
        loop {
            let line = next_logical_line(&mut self.rest)?;
            if let Some(h) = split_header(line) {
                return Some(h);
            }
        }
    }
}

/// Content-Length as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentLength {
    Absent,
    Valid(u32),
    Invalid,
}

/// A parsed SIP message borrowing the bytes it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct SipMessage<'a> {
    pub start: StartLine<'a>,
    /// The header lines (after the start line, before the blank line).
    header_section: &'a [u8],
    pub body: &'a [u8],
    trailing: &'a [u8],
    pub header_count: usize,
    pub content_length: ContentLength,
    pub warnings: Warnings,
    call_id: Option<&'a [u8]>,
    from: Option<&'a [u8]>,
    to: Option<&'a [u8]>,
    cseq: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    content_encoding: Option<&'a [u8]>,
    via_count: usize,
    limits_parts_max: usize,
    len: usize,
}

impl<'a> SipMessage<'a> {
    /// Parses one datagram with the default limits.
    pub fn parse(data: &'a [u8]) -> Result<SipMessage<'a>, SipError> {
        Self::parse_with(data, &SipLimits::default(), BodyFraming::Datagram)
    }

    /// Parses one message with explicit limits and framing.
    pub fn parse_with(
        data: &'a [u8],
        limits: &SipLimits,
        framing: BodyFraming,
    ) -> Result<SipMessage<'a>, SipError> {
        if data.len() > limits.message_bytes_max {
            return Err(SipError::TooLarge {
                bytes: data.len(),
                max: limits.message_bytes_max,
            });
        }
        let mut warnings = Warnings::default();
        // Datagrams sometimes carry leading CRLFs (keep-alives glued to a message).
        let lead = data
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let msg = &data[lead..];
        if msg.is_empty() {
            return Err(SipError::Empty);
        }
        let line_end = msg.iter().position(|&b| b == b'\n');
        let first = match line_end {
            Some(p) => &msg[..p],
            None => msg,
        };
        if first.len() > limits.start_line_bytes_max {
            return Err(SipError::StartLineTooLong {
                max: limits.start_line_bytes_max,
            });
        }
        let first_trim = first.strip_suffix(b"\r").unwrap_or(first);
        if first_trim.len() == first.len() && line_end.is_some() {
            warnings.set(Warnings::BARE_LF);
        }
        let start = StartLine::parse(first_trim).ok_or(SipError::BadStartLine)?;
        let after_start = line_end.map_or(msg.len(), |p| p + 1);
        let rest = &msg[after_start..];
        // Header section ends at the blank line; a message with no header lines has the
        // blank line right after the start line.
        let (hdr_end, body_start) = if rest.starts_with(b"\r\n") {
            (0, 2)
        } else if rest.starts_with(b"\n") {
            (0, 1)
        } else {
            match find_headers_end(rest) {
                Some(p) => p,
                None => match framing {
                    BodyFraming::Stream => return Err(SipError::NoHeaderEnd),
                    BodyFraming::Datagram => {
                        // Truncated or sloppy datagram: all header lines, no body.
                        warnings.set(Warnings::NO_HEADER_END);
                        (rest.len(), rest.len())
                    }
                },
            }
        };
        if hdr_end > limits.header_section_bytes_max {
            return Err(SipError::HeaderSectionTooLong {
                max: limits.header_section_bytes_max,
            });
        }
        let header_section = &rest[..hdr_end];
        let mut m = SipMessage {
            start,
            header_section,
            body: &[],
            trailing: &[],
            header_count: 0,
            content_length: ContentLength::Absent,
            warnings,
            call_id: None,
            from: None,
            to: None,
            cseq: None,
            content_type: None,
            content_encoding: None,
            via_count: 0,
            limits_parts_max: limits.multipart_parts_max,
            len: 0,
        };
        let mut cursor = header_section;
        while let Some(line) = next_logical_line(&mut cursor) {
            if line.len() > limits.header_line_bytes_max {
                return Err(SipError::HeaderTooLong {
                    max: limits.header_line_bytes_max,
                });
            }
            let Some(h) = split_header(line) else {
                m.warnings.set(Warnings::MALFORMED_HEADER_LINE);
                continue;
            };
            m.header_count += 1;
            if m.header_count > limits.headers_max {
                return Err(SipError::TooManyHeaders {
                    max: limits.headers_max,
                });
            }
            match h.name {
                HeaderName::CallId => {
                    if m.call_id.is_some() {
                        m.warnings.set(Warnings::CALL_ID_DUPLICATE);
                    } else {
                        m.call_id = Some(h.value);
                    }
                }
                HeaderName::From => {
                    m.from.get_or_insert(h.value);
                }
                HeaderName::To => {
                    m.to.get_or_insert(h.value);
                }
                HeaderName::CSeq => {
                    m.cseq.get_or_insert(h.value);
                }
                HeaderName::ContentType => {
                    m.content_type.get_or_insert(h.value);
                }
                HeaderName::ContentEncoding => {
                    m.content_encoding.get_or_insert(h.value);
                }
                HeaderName::Via => m.via_count += 1,
                HeaderName::ContentLength => {
                    let v = match parse_u32(h.value) {
                        Some(n) => ContentLength::Valid(n),
                        None => ContentLength::Invalid,
                    };
                    if m.content_length != ContentLength::Absent {
                        m.warnings.set(Warnings::CONTENT_LENGTH_DUPLICATE);
                        if m.content_length != v {
                            m.content_length = ContentLength::Invalid;
                        }
                    } else {
                        m.content_length = v;
                    }
                }
                _ => {}
            }
        }
        let body_area = &rest[body_start..];
        let body_len = match (m.content_length, framing) {
            (ContentLength::Valid(n), _) => {
                let n = n as usize;
                if n > body_area.len() {
                    if framing == BodyFraming::Stream {
                        return Err(SipError::BodyIncomplete {
                            declared: n,
                            available: body_area.len(),
                        });
                    }
                    m.warnings.set(Warnings::BODY_TRUNCATED);
                    body_area.len()
                } else {
                    n
                }
            }
            (ContentLength::Absent, BodyFraming::Stream) => {
                m.warnings.set(Warnings::CONTENT_LENGTH_MISSING);
                0
            }
            (ContentLength::Invalid, BodyFraming::Stream) => {
                m.warnings.set(Warnings::CONTENT_LENGTH_INVALID);
                0
            }
            (ContentLength::Absent, BodyFraming::Datagram) => {
                m.warnings.set(Warnings::CONTENT_LENGTH_MISSING);
                body_area.len()
            }
            (ContentLength::Invalid, BodyFraming::Datagram) => {
                m.warnings.set(Warnings::CONTENT_LENGTH_INVALID);
                body_area.len()
            }
        };
        m.body = &body_area[..body_len];
        m.trailing = &body_area[body_len..];
        if !m.trailing.is_empty() {
            m.warnings.set(Warnings::TRAILING_BYTES);
        }
        m.len = lead + after_start + body_start + body_len;
        Ok(m)
    }

    /// Bytes of the input this message used (leading CRLFs, message, body).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes after the body (a datagram with more than Content-Length bytes).
    pub fn trailing(&self) -> &'a [u8] {
        self.trailing
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The Request-URI, or `None` for a response.
    pub fn request_uri(&self) -> Option<Uri<'a>> {
        match self.start {
            StartLine::Request { uri, .. } => Uri::parse(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// All header lines in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.header_section,
        }
    }

    /// The raw header section (header lines only).
    pub fn header_section(&self) -> &'a [u8] {
        self.header_section
    }

    /// The first header with this name (compact forms match), raw value.
    pub fn header(&self, name: HeaderName<'_>) -> Option<&'a [u8]> {
        self.headers().find(|h| h.name.same(&name)).map(|h| h.value)
    }

    /// The first header with this name as text.
    pub fn header_str(&self, name: HeaderName<'_>) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of a header: all headers with this name, each split at top-level
    /// commas (for list headers such as Via, Contact, Route, Allow, Supported).
    pub fn header_values<'n>(&self, name: HeaderName<'n>) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        self.headers()
            .filter(move |h| h.name.same(&name))
            .filter_map(|h| h.value_str())
            .flat_map(split_list)
    }

    /// Call-ID (trimmed). `None` when absent or not UTF-8.
    pub fn call_id(&self) -> Option<&'a str> {
        let v = self.call_id?;
        let s = std::str::from_utf8(v).ok()?;
        let s = trim(s);
        (!s.is_empty()).then_some(s)
    }

    fn name_addr(v: Option<&'a [u8]>) -> Option<NameAddr<'a>> {
        let s = std::str::from_utf8(v?).ok()?;
        NameAddr::parse(s)
    }

    pub fn from(&self) -> Option<NameAddr<'a>> {
        Self::name_addr(self.from)
    }

    pub fn to(&self) -> Option<NameAddr<'a>> {
        Self::name_addr(self.to)
    }

    pub fn cseq(&self) -> Option<CSeq<'a>> {
        CSeq::parse(std::str::from_utf8(self.cseq?).ok()?)
    }

    /// Via elements in order (top first).
    pub fn vias(&self) -> impl Iterator<Item = Via<'a>> + 'a {
        self.header_values(HeaderName::Via).filter_map(Via::parse)
    }

    /// Number of Via header lines.
    pub fn via_header_count(&self) -> usize {
        self.via_count
    }

    /// Branch parameters of all Via elements, top first.
    pub fn via_branches(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.vias().filter_map(|v| v.branch())
    }

    /// The Contact elements.
    pub fn contacts(&self) -> impl Iterator<Item = NameAddr<'a>> + 'a {
        self.header_values(HeaderName::Contact)
            .filter_map(NameAddr::parse)
    }

    /// The first Contact.
    pub fn contact(&self) -> Option<NameAddr<'a>> {
        self.contacts().next()
    }

    pub fn content_type(&self) -> Option<ContentType<'a>> {
        ContentType::parse(std::str::from_utf8(self.content_type?).ok()?)
    }

    pub fn content_encoding(&self) -> Option<&'a str> {
        std::str::from_utf8(self.content_encoding?).ok()
    }

    pub fn user_agent(&self) -> Option<&'a str> {
        self.header_str(HeaderName::UserAgent)
    }

    pub fn server(&self) -> Option<&'a str> {
        self.header_str(HeaderName::Server)
    }

    pub fn reason(&self) -> Option<Reason<'a>> {
        Reason::parse(self.header_str(HeaderName::Reason)?)
    }

    pub fn max_forwards(&self) -> Option<u32> {
        parse_u32(self.header(HeaderName::MaxForwards)?)
    }

    pub fn expires(&self) -> Option<u32> {
        parse_u32(self.header(HeaderName::Expires)?)
    }

    /// The SDP of this message: the body when Content-Type is application/sdp (or absent
    /// with a body starting `v=`), the application/sdp part of a multipart body, else
    /// `None`. Encoded bodies (Content-Encoding other than identity) are not decoded.
    pub fn sdp(&self) -> Result<Option<&'a [u8]>, SipError> {
        if self.body.is_empty() {
            return Ok(None);
        }
        if let Some(enc) = self.content_encoding() {
            let enc = trim(enc);
            if !enc.is_empty() && !enc.eq_ignore_ascii_case("identity") {
                return Ok(None);
            }
        }
        match self.content_type() {
            Some(ct) if ct.is_sdp() => Ok(Some(self.body)),
            Some(ct) if ct.is_multipart() => {
                Ok(multipart::find_sdp(self.body, &ct, self.limits_parts_max)?)
            }
            Some(_) => Ok(None),
            None if self.content_type.is_none() && self.body.starts_with(b"v=") => {
                Ok(Some(self.body))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKnashds8, SIP/2.0/TCP [2001:db8::9];branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
User-Agent: softphone 1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 157\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n\
s=-\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn invite_with_sdp() {
        assert_eq!(INVITE.len() - find_headers_end(INVITE).unwrap().1, 157);
        let m = SipMessage::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri().unwrap().user, Some("bob"));
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33.atlanta.example.com"));
        let from = m.from().unwrap();
        assert_eq!(from.display_name, Some("Alice"));
        assert_eq!(from.tag(), Some("1928301774"));
        assert_eq!(from.user(), Some("alice"));
        let to = m.to().unwrap();
        assert_eq!(
            (to.display_name, to.tag(), to.user()),
            (Some("Bob"), None, Some("bob"))
        );
        assert_eq!(
            m.cseq().unwrap(),
            CSeq {
                seq: 314159,
                method: Method::Invite
            }
        );
        let branches: Vec<_> = m.via_branches().collect();
        assert_eq!(branches, ["z9hG4bK776asdhds", "z9hG4bKnashds8", "z9hG4bK3"]);
        assert_eq!(m.via_header_count(), 2);
        assert_eq!(m.vias().nth(2).unwrap().host, "[2001:db8::9]");
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.user_agent(), Some("softphone 1.0"));
        assert_eq!(
            m.contact().unwrap().uri,
            "sip:alice@pc33.atlanta.example.com"
        );
        assert_eq!(m.content_length, ContentLength::Valid(157));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        assert_eq!(m.sdp().unwrap().unwrap().len(), 157);
        assert_eq!(m.len(), INVITE.len());
        assert_eq!(m.header_count, 11);
    }

    #[test]
    fn response_late_offer_200() {
        let msg = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx\r\nf: <sip:a@x>;tag=1\r\nt: <sip:b@y>;tag=2\r\ni: cid-1\r\nCSeq: 1 INVITE\r\nm: <sip:b@203.0.113.2>\r\nc: application/sdp\r\nl: 27\r\n\r\nv=0\r\nm=audio 4000 RTP/AVP 0";
        let m = SipMessage::parse(msg).unwrap();
        assert_eq!(m.status_code(), Some(200));
        assert!(matches!(m.start, StartLine::Response { reason: b"OK", .. }));
        assert_eq!(m.call_id(), Some("cid-1"));
        assert_eq!(m.to().unwrap().tag(), Some("2"));
        assert_eq!(m.content_length, ContentLength::Valid(27));
        assert_eq!(
            m.sdp().unwrap(),
            Some(&b"v=0\r\nm=audio 4000 RTP/AVP 0"[..])
        );
        assert_eq!(m.cseq().unwrap().method, Method::Invite);
    }

    #[test]
    fn folded_lines_and_lf_only() {
        let msg = b"BYE sip:x@y SIP/2.0\nVia: SIP/2.0/UDP h1;branch=b1,\n  SIP/2.0/UDP h2;branch=b2\nCall-ID:\n\tfolded-id\nSubject: I know you're there,\n pick up the phone\n   and talk to me!\nReason: SIP;cause=200;text=\"done\"\nl: 0\n\n";
        let m = SipMessage::parse(msg).unwrap();
        assert!(m.warnings.contains(Warnings::BARE_LF));
        assert_eq!(m.call_id(), Some("folded-id"));
        assert_eq!(m.via_branches().collect::<Vec<_>>(), ["b1", "b2"]);
        let subj = m.header_str(HeaderName::Subject).unwrap();
        assert!(subj.starts_with("I know") && subj.ends_with("talk to me!"));
        assert_eq!(m.reason().unwrap().cause, Some(200));
        assert_eq!(m.header_count, 5);
        assert!(m.body.is_empty());
    }

    #[test]
    fn content_length_cases() {
        // Missing: rest of datagram.
        let m = SipMessage::parse(b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nhello").unwrap();
        assert_eq!(m.body, b"hello");
        assert!(m.warnings.contains(Warnings::CONTENT_LENGTH_MISSING));
        // Invalid (as in zeek/invalid-content-length.pcap).
        let m = SipMessage::parse(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\nv=0\r\n")
            .unwrap();
        assert_eq!(m.content_length, ContentLength::Invalid);
        assert_eq!(m.body, b"v=0\r\n");
        assert_eq!(m.sdp().unwrap(), Some(&b"v=0\r\n"[..]));
        // Too large: body truncated in a datagram, error in a stream.
        let raw = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\nabc";
        let m = SipMessage::parse(raw).unwrap();
        assert!(m.warnings.contains(Warnings::BODY_TRUNCATED));
        assert_eq!(m.body, b"abc");
        let e = SipMessage::parse_with(raw, &SipLimits::default(), BodyFraming::Stream);
        assert_eq!(
            e.unwrap_err(),
            SipError::BodyIncomplete {
                declared: 99999,
                available: 3
            }
        );
        // Smaller: trailing bytes.
        let m = SipMessage::parse(b"SIP/2.0 100 Trying\r\nl: 1\r\n\r\nabc").unwrap();
        assert_eq!((m.body, m.trailing()), (&b"a"[..], &b"bc"[..]));
        // Conflicting duplicates.
        let m = SipMessage::parse(b"SIP/2.0 100 Trying\r\nl: 1\r\nContent-Length: 2\r\n\r\nabc")
            .unwrap();
        assert_eq!(m.content_length, ContentLength::Invalid);
        assert!(m.warnings.contains(Warnings::CONTENT_LENGTH_DUPLICATE));
    }

    #[test]
    fn multipart_sdp() {
        let msg = b"INVITE sip:a@b SIP/2.0\r\nContent-Type: multipart/mixed;boundary=unique-boundary-1\r\nMIME-Version: 1.0\r\n\r\n--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\ns=-\r\n\r\n--unique-boundary-1\r\nContent-Type: application/isup; version=nxv3\r\n\r\n\x01\x00\x49\r\n--unique-boundary-1--\r\n";
        let m = SipMessage::parse(msg).unwrap();
        assert_eq!(m.sdp().unwrap(), Some(&b"v=0\r\ns=-\r\n"[..]));
        // Gzip bodies are not decoded.
        let m =
            SipMessage::parse(b"SIP/2.0 200 OK\r\nc: application/sdp\r\ne: gzip\r\n\r\n\x1f\x8b")
                .unwrap();
        assert_eq!(m.sdp().unwrap(), None);
    }

    #[test]
    fn start_lines_and_errors() {
        assert!(is_start_line(b"SIP/2.0 180 Ringing"));
        assert!(is_start_line(b"SIP/2.0 200"));
        assert!(is_start_line(b"OPTIONS sip:x SIP/2.0"));
        assert!(!is_start_line(b"GET / HTTP/1.1"));
        assert!(!is_start_line(b"SIP/2.0 99 Low"));
        assert!(!is_start_line(b"SIP/2.0 2000 x"));
        assert!(!is_start_line(b"INVITE  sip:x SIP/2.0"));
        let m = SipMessage::parse(b"FOO sip:x SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some(Method::Unknown("FOO")));
        assert_eq!(SipMessage::parse(b"\r\n\r\n").unwrap_err(), SipError::Empty);
        assert_eq!(
            SipMessage::parse(b"hello\r\n\r\n").unwrap_err(),
            SipError::BadStartLine
        );
        let big = vec![b'a'; 70_000];
        assert!(matches!(
            SipMessage::parse(&big),
            Err(SipError::TooLarge { .. })
        ));
    }

    #[test]
    fn header_limits() {
        let mut msg = b"OPTIONS sip:x SIP/2.0\r\n".to_vec();
        for i in 0..129 {
            msg.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        assert_eq!(
            SipMessage::parse(&msg).unwrap_err(),
            SipError::TooManyHeaders { max: 128 }
        );
        let limits = SipLimits {
            header_line_bytes_max: 20,
            ..SipLimits::default()
        };
        let e = SipMessage::parse_with(
            b"OPTIONS sip:x SIP/2.0\r\nX: 0123456789\r\n 0123456789\r\n\r\n",
            &limits,
            BodyFraming::Datagram,
        );
        assert_eq!(e.unwrap_err(), SipError::HeaderTooLong { max: 20 });
        let m =
            SipMessage::parse(b"OPTIONS sip:x SIP/2.0\r\nnot a header\r\nX: 1\r\n\r\n").unwrap();
        assert!(m.warnings.contains(Warnings::MALFORMED_HEADER_LINE));
        assert_eq!(m.header_count, 1);
    }
}
