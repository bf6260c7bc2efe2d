//! SIP messages and SDP bodies for the parsing benchmarks, shaped like what a PBX or SBC
//! sends (several Via headers, Record-Route, Allow, Supported, an audio offer with three
//! codecs and telephone-event). Content-Length is computed.

/// An audio offer: PCMU, PCMA, G.729 and telephone-event, with a=rtcp and ptime.
pub const SDP_OFFER: &str = "v=0\r\n\
o=- 3912345678 3912345678 IN IP4 198.51.100.10\r\n\
s=xdprec bench\r\n\
c=IN IP4 198.51.100.10\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=rtcp:16385 IN IP4 198.51.100.10\r\n\
a=sendrecv\r\n";

/// The answer: PCMU and telephone-event.
pub const SDP_ANSWER: &str = "v=0\r\n\
o=- 1234 1235 IN IP4 203.0.113.20\r\n\
s=-\r\n\
c=IN IP4 203.0.113.20\r\n\
t=0 0\r\n\
m=audio 16386 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn with_body(headers: &str, body: &str) -> Vec<u8> {
    format!("{headers}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// An INVITE with an SDP offer (about 1.1 KB).
pub fn invite_with_sdp() -> Vec<u8> {
    with_body(
        "INVITE sip:+12025550123@203.0.113.20:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---a3f1c2d4e5f60718;rport\r\n\
Via: SIP/2.0/UDP 198.51.100.2:5060;received=198.51.100.2;branch=z9hG4bKabc123def456\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:198.51.100.10;lr;ftag=as7f3c2e1d>\r\n\
Contact: <sip:+12025550100@198.51.100.10:5060;transport=udp>\r\n\
To: <sip:+12025550123@203.0.113.20;user=phone>\r\n\
From: \"Bench Caller\" <sip:+12025550100@198.51.100.10;user=phone>;tag=as7f3c2e1d\r\n\
Call-ID: 3c4a5b6c7d8e9f00112233445566778899aabbcc@198.51.100.10\r\n\
CSeq: 102 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
User-Agent: xdprec-bench PBX 1.0\r\n\
P-Asserted-Identity: <sip:+12025550100@198.51.100.10>\r\n\
Content-Type: application/sdp\r\n",
        SDP_OFFER,
    )
}

/// The 200 OK answering [`invite_with_sdp`], with an SDP answer.
pub fn ok_200_with_sdp() -> Vec<u8> {
    with_body(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---a3f1c2d4e5f60718;rport=5060\r\n\
Via: SIP/2.0/UDP 198.51.100.2:5060;received=198.51.100.2;branch=z9hG4bKabc123def456\r\n\
Record-Route: <sip:198.51.100.10;lr;ftag=as7f3c2e1d>\r\n\
Contact: <sip:+12025550123@203.0.113.20:5060>\r\n\
To: <sip:+12025550123@203.0.113.20;user=phone>;tag=8d7c6b5a\r\n\
From: \"Bench Caller\" <sip:+12025550100@198.51.100.10;user=phone>;tag=as7f3c2e1d\r\n\
Call-ID: 3c4a5b6c7d8e9f00112233445566778899aabbcc@198.51.100.10\r\n\
CSeq: 102 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY\r\n\
Supported: replaces, timer\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Server: xdprec-bench SBC 2.0\r\n\
Content-Type: application/sdp\r\n",
        SDP_ANSWER,
    )
}

/// A BYE in compact form (RFC 3261 section 7.3.3: v, f, t, i, m, l), no body.
pub fn compact_bye() -> Vec<u8> {
    b"BYE sip:+12025550123@203.0.113.20:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---ffe1d2c3b4a59687;rport\r\n\
f: <sip:+12025550100@198.51.100.10>;tag=as7f3c2e1d\r\n\
t: <sip:+12025550123@203.0.113.20>;tag=8d7c6b5a\r\n\
i: 3c4a5b6c7d8e9f00112233445566778899aabbcc@198.51.100.10\r\n\
CSeq: 103 BYE\r\n\
m: <sip:+12025550100@198.51.100.10:5060>\r\n\
Max-Forwards: 70\r\n\
l: 0\r\n\r\n"
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdprec_sip::{Sdp, SipMessage};

    #[test]
    fn messages_parse_with_their_bodies() {
        let inv = invite_with_sdp();
        let m = SipMessage::parse(&inv).expect("INVITE parses");
        assert!(m.is_request());
        assert_eq!(m.cseq().map(|c| c.seq), Some(102));
        assert_eq!(m.sdp().ok().flatten(), Some(SDP_OFFER.as_bytes()));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);

        let ok = ok_200_with_sdp();
        let m = SipMessage::parse(&ok).expect("200 parses");
        assert_eq!(m.status_code(), Some(200));
        assert_eq!(m.to().and_then(|t| t.tag()), Some("8d7c6b5a"));
        assert_eq!(m.sdp().ok().flatten(), Some(SDP_ANSWER.as_bytes()));

        let bye = compact_bye();
        let m = SipMessage::parse(&bye).expect("compact BYE parses");
        assert_eq!(
            m.call_id(),
            Some("3c4a5b6c7d8e9f00112233445566778899aabbcc@198.51.100.10")
        );
        assert_eq!(m.from().and_then(|f| f.tag()), Some("as7f3c2e1d"));
        assert_eq!(m.via_branches().count(), 1);
        assert!(m.body.is_empty());
    }

    #[test]
    fn sdp_bodies_parse() {
        let offer = Sdp::parse(SDP_OFFER.as_bytes()).expect("offer parses");
        assert_eq!(offer.malformed_lines, 0);
        let ep: Vec<_> = offer.endpoints().collect();
        assert_eq!(ep.len(), 1);
        assert_eq!(ep[0].rtp_port, 16384);
        assert_eq!(ep[0].rtcp_port, Some(16385));
        assert_eq!(ep[0].media.payload_types().count(), 4);
        let answer = Sdp::parse(SDP_ANSWER.as_bytes()).expect("answer parses");
        assert_eq!(answer.endpoints().next().map(|e| e.rtp_port), Some(16386));
    }
}
