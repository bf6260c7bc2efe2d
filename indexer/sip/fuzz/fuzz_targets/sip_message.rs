//! One datagram through the SIP message parser (datagram and stream framing), every
//! accessor, and the SDP it carries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdprec_sip::{BodyFraming, HeaderName, Sdp, SipLimits, SipMessage};

fn exercise(m: &SipMessage<'_>) {
    for h in m.headers() {
        let _ = h.value_str();
    }
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.user_agent(),
        m.reason(),
    );
    let _ = (m.request_uri(), m.status_code(), m.method(), m.expires());
    for na in [m.from(), m.to(), m.contact()].into_iter().flatten() {
        let _ = (na.tag(), na.user(), na.parsed_uri());
    }
    let _ = m.via_branches().count();
    let _ = m.contacts().count();
    let _ = m.header_values(HeaderName::Supported).count();
    if let Some(ct) = m.content_type() {
        let _ = ct.boundary();
    }
    if let Ok(Some(sdp)) = m.sdp() {
        if let Ok(s) = Sdp::parse(sdp) {
            for e in s.endpoints() {
                let _ = e.media.codecs().count();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SipMessage::parse(data) {
        assert!(m.len() <= data.len());
        exercise(&m);
    }
    let small = SipLimits {
        headers_max: 8,
        header_line_bytes_max: 64,
        multipart_parts_max: 2,
        ..SipLimits::default()
    };
    if let Ok(m) = SipMessage::parse_with(data, &small, BodyFraming::Stream) {
        assert!(m.header_count <= 8);
        exercise(&m);
    }
});
