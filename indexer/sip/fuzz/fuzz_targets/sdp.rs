//! SDP parser, endpoints, codecs and attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdprec_sip::{Sdp, SdpLimits};

fuzz_target!(|data: &[u8]| {
    for limits in [
        SdpLimits::default(),
        SdpLimits {
            lines_max: 16,
            media_max: 2,
            line_bytes_max: 80,
            ..SdpLimits::default()
        },
    ] {
        let Ok(s) = Sdp::parse_with(data, &limits) else {
            continue;
        };
        assert!(s.media.len() <= limits.media_max);
        let _ = s.attributes().count();
        for e in s.endpoints() {
            let _ = (
                e.addr,
                e.rtcp_port,
                e.rtcp_addr,
                e.direction,
                e.media.is_rtp(),
            );
            for pt in e.media.payload_types() {
                let _ = (e.media.codec(pt), e.media.fmtp(pt));
            }
            let _ = e.media.attributes().count();
        }
    }
});
