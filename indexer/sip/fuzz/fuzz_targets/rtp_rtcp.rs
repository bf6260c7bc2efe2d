//! RTP header view, telephone events, RTCP compound packets, and the per-stream trackers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdprec_sip::rtcp::{Compound, RtcpRepr};
use xdprec_sip::rtp::{looks_like_rtcp, Packet, RtpRepr, TelephoneEvent};
use xdprec_sip::{JitterEstimator, SeqTracker};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_rtcp(data);
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.csrc(0), p.extension_header(), p.payload().len());
        if let Ok(r) = RtpRepr::parse(&p) {
            assert_eq!(r.header_len + r.payload_len + r.padding_len, data.len());
        }
        if let Ok(e) = TelephoneEvent::new_checked(p.payload()) {
            let _ = (e.digit(), e.end(), e.volume(), e.duration());
        }
    }
    for p in Compound::new(data) {
        let Ok(p) = p else { break };
        match RtcpRepr::parse(&p) {
            Ok(RtcpRepr::SenderReport { reports, .. })
            | Ok(RtcpRepr::ReceiverReport { reports, .. }) => {
                assert!(reports.count() <= 31);
            }
            Ok(RtcpRepr::SourceDescription { chunks }) => {
                for c in chunks {
                    let _ = c.cname();
                    assert!(c.items().count() <= data.len());
                }
            }
            _ => {}
        }
    }
    // Trackers over (seq, timestamp, arrival) triples taken from the input.
    let mut t = SeqTracker::new();
    let mut j = JitterEstimator::new(u32::from(data.first().copied().unwrap_or(0)) * 1000);
    for w in data.chunks_exact(8) {
        t.update(u16::from_be_bytes([w[0], w[1]]));
        j.update(
            u64::from(u32::from_be_bytes([w[4], w[5], w[6], w[7]])) * 1000,
            u32::from_be_bytes([w[2], w[3], w[0], w[1]]),
        );
    }
    assert!(t.received + t.duplicates + t.jumps_ignored <= (data.len() / 8) as u64 + 1);
    assert!(j.jitter_ns().is_finite());
});
