//! Fuzzes the classifier: any bytes, as an Ethernet frame and as a raw IP packet. The first
//! byte picks a configuration so that content matching, fragments and a tiny TCP flow table
//! (evictions) are all exercised. Run: `cargo +nightly fuzz run classify` in
//! xdp-probe/classify (seeds in fuzz/corpus/classify).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdprec_classify::{rtp_header, Classifier, Counter, ProbeConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let mut cfg = ProbeConfig::default();
    cfg.sip_by_content = sel & 1;
    cfg.capture_frags = (sel >> 1) & 1;
    if sel & 4 != 0 {
        cfg.rtp_port_lo = 10000;
        cfg.rtp_port_hi = 20000;
    }
    let mut c = Classifier::with_tcp_flows_max(cfg, usize::from(sel >> 6));
    // Twice, so that a TCP flow learnt from the first pass is looked up in the second.
    for _ in 0..2 {
        let r = c.classify(frame);
        assert!(r.payload.start <= r.payload.end && r.payload.end <= frame.len());
        if let Some(p) = frame.get(r.payload.clone()) {
            let _ = rtp_header(p);
        }
        let r = c.classify_ip(frame);
        assert!(r.payload.end <= frame.len());
    }
    assert_eq!(c.counter(Counter::RxPackets), 4);
});
