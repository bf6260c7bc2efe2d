//! SIP header names and typed header values (RFC 3261 section 20).
//!
//! Values are parsed on demand from the borrowed header text; nothing is copied.

use crate::text::{is_token, param, split_list, trim};

/// A SIP method (RFC 3261 and the common extensions). Methods are case-sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    Unknown(&'a str),
}

impl<'a> Method<'a> {
    /// Parses a method token; anything that is not a known method becomes `Unknown`.
    pub fn parse(s: &'a str) -> Method<'a> {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "PUBLISH" => Method::Publish,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "UPDATE" => Method::Update,
            other => Method::Unknown(other),
        }
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Unknown(s) => s,
        }
    }
}

/// A header name, with compact forms (RFC 3261 7.3.3, RFC 3515, RFC 3892, RFC 4028,
/// RFC 6665) folded into the long form. Names compare case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName<'a> {
    Accept,
    Allow,
    AllowEvents,
    Authorization,
    CallId,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Event,
    Expires,
    From,
    MaxForwards,
    PAssertedIdentity,
    ProxyAuthenticate,
    ProxyAuthorization,
    Reason,
    RecordRoute,
    ReferTo,
    ReferredBy,
    Require,
    Route,
    Server,
    SessionExpires,
    Subject,
    Supported,
    To,
    UserAgent,
    Via,
    WwwAuthenticate,
    /// Any other (syntactically valid) header name, as written.
    Other(&'a str),
}

/// Canonical spelling; matched case-insensitively.
const NAMES: &[(&str, HeaderName<'static>)] = &[
    ("Accept", HeaderName::Accept),
    ("Allow", HeaderName::Allow),
    ("Allow-Events", HeaderName::AllowEvents),
    ("Authorization", HeaderName::Authorization),
    ("Call-ID", HeaderName::CallId),
    ("Contact", HeaderName::Contact),
    ("Content-Disposition", HeaderName::ContentDisposition),
    ("Content-Encoding", HeaderName::ContentEncoding),
    ("Content-Length", HeaderName::ContentLength),
    ("Content-Type", HeaderName::ContentType),
    ("CSeq", HeaderName::CSeq),
    ("Date", HeaderName::Date),
    ("Event", HeaderName::Event),
    ("Expires", HeaderName::Expires),
    ("From", HeaderName::From),
    ("Max-Forwards", HeaderName::MaxForwards),
    ("P-Asserted-Identity", HeaderName::PAssertedIdentity),
    ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ("Reason", HeaderName::Reason),
    ("Record-Route", HeaderName::RecordRoute),
    ("Refer-To", HeaderName::ReferTo),
    ("Referred-By", HeaderName::ReferredBy),
    ("Require", HeaderName::Require),
    ("Route", HeaderName::Route),
    ("Server", HeaderName::Server),
    ("Session-Expires", HeaderName::SessionExpires),
    ("Subject", HeaderName::Subject),
    ("Supported", HeaderName::Supported),
    ("To", HeaderName::To),
    ("User-Agent", HeaderName::UserAgent),
    ("Via", HeaderName::Via),
    ("WWW-Authenticate", HeaderName::WwwAuthenticate),
];

impl<'a> HeaderName<'a> {
    /// Classifies a header name (already checked to be a token).
    pub fn parse(name: &'a str) -> HeaderName<'a> {
        if name.len() == 1 {
            let compact = match name.as_bytes()[0].to_ascii_lowercase() {
                b'i' => Some(HeaderName::CallId),
                b'f' => Some(HeaderName::From),
                b't' => Some(HeaderName::To),
                b'm' => Some(HeaderName::Contact),
                b'v' => Some(HeaderName::Via),
                b'l' => Some(HeaderName::ContentLength),
                b'c' => Some(HeaderName::ContentType),
                b'e' => Some(HeaderName::ContentEncoding),
                b'k' => Some(HeaderName::Supported),
                b's' => Some(HeaderName::Subject),
                b'o' => Some(HeaderName::Event),
                b'r' => Some(HeaderName::ReferTo),
                b'u' => Some(HeaderName::AllowEvents),
                b'b' => Some(HeaderName::ReferredBy),
                b'x' => Some(HeaderName::SessionExpires),
                _ => None,
            };
            if let Some(h) = compact {
                return h;
            }
        }
        for (n, h) in NAMES {
            if n.eq_ignore_ascii_case(name) {
                return *h;
            }
        }
        HeaderName::Other(name)
    }

    /// The canonical long name (or the name as written for `Other`).
    pub fn as_str(&self) -> &'a str {
        match self {
            HeaderName::Other(s) => s,
            _ => NAMES.iter().find(|(_, h)| h == self).map_or("", |(n, _)| n),
        }
    }

    /// Whether two names denote the same header (`Other` compares case-insensitively).
    pub fn same(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// A SIP/SIPS/TEL (or other scheme) URI, split into the parts the indexer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The whole URI as written.
    pub raw: &'a str,
    /// Scheme, e.g. `sip`, `sips`, `tel` (as written).
    pub scheme: &'a str,
    /// The user part (`sip:USER@host`, password removed) or a tel number.
    pub user: Option<&'a str>,
    /// Host (IPv6 references keep their brackets); empty for `tel:`.
    pub host: &'a str,
    pub port: Option<u16>,
    /// URI parameters after the first `;` of the host part (without it).
    pub params: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses `scheme:[user[:password]@]host[:port][;params][?headers]`. Returns `None`
    /// when there is no scheme.
    pub fn parse(raw: &'a str) -> Option<Uri<'a>> {
        let raw = trim(raw);
        let (scheme, rest) = raw.split_once(':')?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return None;
        }
        let rest = rest.split_once('?').map_or(rest, |(a, _)| a);
        if scheme.eq_ignore_ascii_case("tel") {
            let (num, params) = rest.split_once(';').unwrap_or((rest, ""));
            return Some(Uri {
                raw,
                scheme,
                user: Some(num),
                host: "",
                port: None,
                params,
            });
        }
        let (user, hostpart) = match rest.rfind('@') {
            Some(at) => {
                let u = &rest[..at];
                let u = u.split_once(':').map_or(u, |(a, _)| a);
                (Some(u), &rest[at + 1..])
            }
            None => (None, rest),
        };
        let (hostport, params) = hostpart.split_once(';').unwrap_or((hostpart, ""));
        let (host, port) = split_host_port(hostport);
        Some(Uri {
            raw,
            scheme,
            user,
            host,
            port,
            params,
        })
    }

    /// A URI parameter (`;transport=tcp`, `;lr`): `Some(None)` for a flag, `Some(Some(v))`
    /// for `name=v`; names compare case-insensitively.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(self.params, name)
    }
}

/// Splits `host[:port]`, with `[v6]:port` support. An unparsable port gives `None`.
pub(crate) fn split_host_port(s: &str) -> (&str, Option<u16>) {
    let s = trim(s);
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            let host = &s[..=end];
            let port = s[end + 1..]
                .strip_prefix(':')
                .and_then(|p| trim(p).parse().ok());
            return (host, port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address, no port.
        Some((h, _)) if h.contains(':') => (s, None),
        Some((h, p)) => (trim(h), trim(p).parse().ok()),
        None => (s, None),
    }
}

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact, Refer-To,
/// Referred-By, P-Asserted-Identity, Route...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name without surrounding quotes (escapes are kept as written).
    pub display_name: Option<&'a str>,
    /// The URI text (inside `<...>` when present).
    pub uri: &'a str,
    /// Header parameters after the URI (without the leading `;`).
    pub params: &'a str,
    /// `Contact: *`.
    pub wildcard: bool,
}

impl<'a> NameAddr<'a> {
    /// Parses one element (the caller splits comma-separated lists).
    pub fn parse(s: &'a str) -> Option<NameAddr<'a>> {
        let s = trim(s);
        if s.is_empty() {
            return None;
        }
        if s == "*" {
            return Some(NameAddr {
                display_name: None,
                uri: "*",
                params: "",
                wildcard: true,
            });
        }
        let (display_name, rest) = if let Some(q) = s.strip_prefix('"') {
            let end = closing_quote(q)?;
            (Some(&q[..end]), trim(&q[end + 1..]))
        } else {
            match s.find('<') {
                Some(lt) => {
                    let d = trim(&s[..lt]);
                    (if d.is_empty() { None } else { Some(d) }, &s[lt..])
                }
                None => (None, s),
            }
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner.find('>')?;
            let uri = trim(&inner[..gt]);
            let after = trim(&inner[gt + 1..]);
            let params = after.strip_prefix(';').unwrap_or(after);
            return Some(NameAddr {
                display_name,
                uri,
                params,
                wildcard: false,
            });
        }
        if display_name.is_some() {
            // A quoted display name must be followed by <uri>.
            return None;
        }
        // addr-spec: parameters after the URI belong to the header (RFC 3261 20.10).
        let (uri, params) = rest.split_once(';').unwrap_or((rest, ""));
        Some(NameAddr {
            display_name: None,
            uri: trim(uri),
            params,
            wildcard: false,
        })
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&'a str> {
        param(self.params, "tag").flatten()
    }

    /// A header parameter by name.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(self.params, name)
    }

    /// The parsed URI.
    pub fn parsed_uri(&self) -> Option<Uri<'a>> {
        Uri::parse(self.uri)
    }

    /// The user part of the URI (or the number of a tel: URI).
    pub fn user(&self) -> Option<&'a str> {
        self.parsed_uri().and_then(|u| u.user)
    }
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return Some(i);
        }
    }
    None
}

/// One Via header element: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP/2.0` as written.
    pub protocol: &'a str,
    /// Transport (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`...), as written.
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    /// Parameters without the leading `;`.
    pub params: &'a str,
}

impl<'a> Via<'a> {
    pub fn parse(s: &'a str) -> Option<Via<'a>> {
        let s = trim(s);
        // sent-protocol = name SLASH version SLASH transport, LWS allowed around slashes.
        let mut parts = s.splitn(3, '/');
        let name_raw = parts.next()?;
        let name = trim(name_raw);
        let version = parts.next()?;
        let rest = trim(parts.next()?);
        let tlen = rest
            .bytes()
            .position(|b| !is_token(b))
            .unwrap_or(rest.len());
        let transport = &rest[..tlen];
        if name.is_empty() || transport.is_empty() {
            return None;
        }
        let protocol_end = name_raw.len() + 1 + version.len();
        let protocol = trim(&s[..protocol_end.min(s.len())]);
        let sent = trim(&rest[tlen..]);
        let (sent_by, params) = sent.split_once(';').unwrap_or((sent, ""));
        let (host, port) = split_host_port(sent_by);
        if host.is_empty() {
            return None;
        }
        Some(Via {
            protocol,
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        param(self.params, "branch").flatten()
    }

    pub fn received(&self) -> Option<&'a str> {
        param(self.params, "received").flatten()
    }

    /// `Some(None)` for a bare `;rport`, `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        param(self.params, "rport").map(|v| v.and_then(|p| p.parse().ok()))
    }
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    pub fn parse(s: &'a str) -> Option<CSeq<'a>> {
        let mut it = trim(s).split([' ', '\t', '\r', '\n']);
        let seq = crate::text::parse_u32(it.next()?.as_bytes())?;
        let method = it.find(|p| !p.is_empty())?;
        if !method.bytes().all(is_token) {
            return None;
        }
        Some(CSeq {
            seq,
            method: Method::parse(method),
        })
    }
}

/// A media type (Content-Type, or a multipart part's Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    pub mtype: &'a str,
    pub subtype: &'a str,
    /// Parameters without the leading `;`.
    pub params: &'a str,
}

impl<'a> ContentType<'a> {
    pub fn parse(s: &'a str) -> Option<ContentType<'a>> {
        let s = trim(s);
        let (mt, params) = s.split_once(';').unwrap_or((s, ""));
        let (mtype, subtype) = mt.split_once('/')?;
        let (mtype, subtype) = (trim(mtype), trim(subtype));
        if mtype.is_empty() || subtype.is_empty() {
            return None;
        }
        Some(ContentType {
            mtype,
            subtype,
            params,
        })
    }

    /// `application/sdp`.
    pub fn is_sdp(&self) -> bool {
        self.mtype.eq_ignore_ascii_case("application") && self.subtype.eq_ignore_ascii_case("sdp")
    }

    /// `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.mtype.eq_ignore_ascii_case("multipart")
    }

    /// The `boundary` parameter (quotes removed).
    pub fn boundary(&self) -> Option<&'a str> {
        param(self.params, "boundary").flatten()
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(self.params, name)
    }
}

/// Reason header (RFC 3326): `SIP ;cause=200 ;text="Call completed elsewhere"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason<'a> {
    pub protocol: &'a str,
    pub cause: Option<u32>,
    pub text: Option<&'a str>,
}

impl<'a> Reason<'a> {
    pub fn parse(s: &'a str) -> Option<Reason<'a>> {
        let first = split_list(s).next()?;
        let (protocol, params) = first.split_once(';').unwrap_or((first, ""));
        Some(Reason {
            protocol: trim(protocol),
            cause: param(params, "cause")
                .flatten()
                .and_then(|c| crate::text::parse_u32(c.as_bytes())),
            text: param(params, "text").flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("CALL-ID"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("x"), HeaderName::SessionExpires);
        assert_eq!(HeaderName::parse("X-Foo"), HeaderName::Other("X-Foo"));
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert_eq!(HeaderName::ContentLength.as_str(), "Content-Length");
        assert_eq!(
            HeaderName::parse("www-AUTHENTICATE").as_str(),
            "WWW-Authenticate"
        );
        assert!(HeaderName::Other("x-a").same(&HeaderName::Other("X-A")));
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""Alice \"A\"" <sip:alice:pw@example.com:5070;transport=tcp>;tag=88sja8x"#,
        )
        .unwrap();
        assert_eq!(n.display_name, Some(r#"Alice \"A\""#));
        assert_eq!(n.uri, "sip:alice:pw@example.com:5070;transport=tcp");
        assert_eq!(n.tag(), Some("88sja8x"));
        let u = n.parsed_uri().unwrap();
        assert_eq!(
            (u.user, u.host, u.port),
            (Some("alice"), "example.com", Some(5070))
        );
        assert_eq!(u.param("transport"), Some(Some("tcp")));

        let n = NameAddr::parse("Bob <sip:bob@[2001:db8::1]:5060>").unwrap();
        assert_eq!(n.display_name, Some("Bob"));
        let u = n.parsed_uri().unwrap();
        assert_eq!((u.host, u.port), ("[2001:db8::1]", Some(5060)));

        let n = NameAddr::parse("sip:carol@203.0.113.5;tag=abc").unwrap();
        assert_eq!(n.uri, "sip:carol@203.0.113.5");
        assert_eq!(n.tag(), Some("abc"));
        assert_eq!(n.user(), Some("carol"));

        let n = NameAddr::parse("<tel:+15551234;phone-context=x>").unwrap();
        assert_eq!(n.user(), Some("+15551234"));
        assert!(NameAddr::parse("*").unwrap().wildcard);
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_none());
    }

    #[test]
    fn via_cseq_ctype_reason() {
        let v = Via::parse(
            "SIP / 2.0 / UDP 198.51.100.1:5060;branch=z9hG4bK776;rport=5061;received=203.0.113.9",
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!((v.host, v.port), ("198.51.100.1", Some(5060)));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert_eq!(v.rport(), Some(Some(5061)));
        assert_eq!(v.received(), Some("203.0.113.9"));
        assert!(Via::parse("garbage").is_none());

        let c = CSeq::parse(" 314159 INVITE").unwrap();
        assert_eq!((c.seq, c.method), (314159, Method::Invite));
        assert!(CSeq::parse("x INVITE").is_none());
        assert_eq!(CSeq::parse("1 FOO").unwrap().method, Method::Unknown("FOO"));

        let t = ContentType::parse("multipart/mixed;boundary=\"unique-boundary-1\"").unwrap();
        assert!(t.is_multipart());
        assert_eq!(t.boundary(), Some("unique-boundary-1"));
        assert!(ContentType::parse("Application/SDP").unwrap().is_sdp());

        let r = Reason::parse("Q.850;cause=16;text=\"Normal call clearing\"").unwrap();
        assert_eq!(
            (r.protocol, r.cause, r.text),
            ("Q.850", Some(16), Some("Normal call clearing"))
        );
    }
}
