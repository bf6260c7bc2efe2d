//! Runs the classifier over every frame of the public corpus: no panic, one class counter per
//! frame, and the classes the manifest leads us to expect in a few known files.

use std::collections::BTreeMap;
use xdprec_classify::{Class, Classifier, Counter, ProbeConfig};
use xdprec_pcapio::{to_ethernet, PcapReader};

/// Per file: (frames, class counts).
fn classify_file(c: &mut Classifier, path: &std::path::Path) -> (u64, BTreeMap<&'static str, u64>) {
    let mut r = PcapReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut eth = Vec::new();
    let mut frames = 0;
    let mut classes = BTreeMap::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap_or_else(|e| panic!("{e}"));
        if !to_ethernet(p.link, p.data, &mut eth) {
            continue;
        }
        let before = *c.counters();
        let res = c.classify(&eth);
        let after = c.counters();
        let moved: u64 = [
            Counter::ClassSipUdp,
            Counter::ClassSipTcp,
            Counter::ClassRtp,
            Counter::ClassRtcp,
            Counter::ClassFrag,
            Counter::ClassOther,
        ]
        .iter()
        .map(|&k| after[k as usize] - before[k as usize])
        .sum();
        assert_eq!(moved, 1, "{}: frame {}", path.display(), frames + 1);
        assert!(res.payload.end <= eth.len());
        *classes.entry(res.class.name()).or_insert(0) += 1;
        frames += 1;
    }
    (frames, classes)
}

#[test]
fn corpus_classes() {
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let mut c = Classifier::new(ProbeConfig::default());
    let mut total = BTreeMap::new();
    let mut frames = 0;
    let mut per_file = BTreeMap::new();
    for path in xdprec_testkit::corpus_captures(&dir) {
        c.clear_tcp_flows();
        let (n, classes) = classify_file(&mut c, &path);
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        eprintln!("{name}: {n} frames {classes:?}");
        for (k, v) in &classes {
            *total.entry(*k).or_insert(0u64) += v;
        }
        frames += n;
        per_file.insert(name, classes);
    }
    eprintln!("total {frames} frames {total:?}");
    let get = |f: &str, k: &str| per_file.get(f).and_then(|m| m.get(k)).copied().unwrap_or(0);
    // Every frame of these is SIP (on 5060, or by content on other ports / TCP 6060).
    assert_eq!(get("nDPI/gre.pcapng", "sip"), 1, "SIP in VLAN/GRE/PPP");
    assert_eq!(
        get("heplify/erspan_sip_ipv4_udp.pcapng", "sip"),
        140,
        "SIP in GRE"
    );
    assert_eq!(get("PcapPlusPlus/sip_non_default_port.pcap", "sip"), 2);
    // RTP-only files are mostly RTP.
    assert!(get("sipp/g711a.pcap", "rtp") >= 230);
    assert!(get("rtpproxy/DLT_NULL.a.rtp", "rtp") >= 590);
    // IP-fragmented SIPREC: 3 fragments in the capture.
    assert!(get("sipp-siprec/siprec_dual_channel_udp.pcap", "frag") >= 3);
    assert!(get("heplify/rtp_rtcp_sip_ipv4_udp.pcap", "rtcp") >= 20);
    assert_eq!(c.counter(Counter::RxPackets), frames);
    let _ = Class::Other;
}
