//! The whole path with synthetic calls (issue "Tools": "replayed synthetic calls captured,
//! indexed and exported back, frame for frame"): `xdprec replay --synth` writes a pcap,
//! tcpreplay sends it through a veth pair in a namespace, `xdprec capture` records it,
//! `xdprec index` finds the calls, and `xdprec export` of each call gives back exactly that
//! call's frames, byte-identical; together the calls give back every frame that was sent.

mod common;

use common::*;
use std::collections::BTreeMap;

#[test]
fn synthetic_calls_come_back_frame_for_frame() {
    if !xdprec_testkit::require_privileges("replay_export_e2e")
        || !xdprec_testkit::require_tool("replay_export_e2e", "tcpreplay")
    {
        return;
    }
    let dir = Tmp(tmpdir("e2e"));
    let pcap = dir.0.join("synth.pcap");
    let calls_n = 6;
    xdprec(&[
        "replay",
        "--synth",
        &calls_n.to_string(),
        "--call-secs",
        "2",
        "--loop",
        "1",
        "--seed",
        "42",
        "--write-pcap",
        pcap.to_str().unwrap(),
    ]);
    let sent = read_pcap(&pcap);
    let steered_n = steered(&sent);
    assert!(steered_n > 500, "{steered_n} frames generated");

    let topo = Topo::new(1);
    topo.mirror_to(&[0]);
    let store = dir.0.join("store");
    let rec = Recorder::start(&topo.ns, &topo.recs[0].b, &store, "e2e");
    topo.replay(&pcap, 3000);
    rec.wait_written(steered_n);
    rec.stop();

    let db = store.join("index.sqlite");
    index(&db, &[&store], &[]);
    let calls = store_calls(&store, &[]);
    assert_eq!(
        calls.len(),
        calls_n,
        "every synthetic call is found: {calls:?}"
    );

    // Multiset of the bytes of every frame sent (timestamps differ: capture time is not the
    // generator's time).
    let mut want: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for f in &sent {
        *want.entry(f.2.clone()).or_default() += 1;
    }
    let mut got: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        let id = c["call_id"].as_str().unwrap();
        assert_eq!(c["state"], "answered", "{c}");
        assert_eq!(
            c["streams"].as_array().unwrap().len(),
            2,
            "both directions: {c}"
        );
        let out = dir.0.join(format!("call{i}.pcap"));
        let s = store.to_str().unwrap();
        xdprec(&[
            "export",
            "--store",
            s,
            "--call-id",
            id,
            "--pcap",
            out.to_str().unwrap(),
        ]);
        let frames = read_pcap(&out);
        assert!(frames.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
        let needle = format!("Call-ID: {id}");
        let mut sip = 0;
        for f in frames {
            let text = String::from_utf8_lossy(&f.2);
            if text.contains("SIP/2.0") {
                assert!(
                    text.contains(&needle),
                    "call {id} exported another call's SIP"
                );
                sip += 1;
            }
            *got.entry(f.2).or_default() += 1;
        }
        assert!(sip >= 7, "call {id}: {sip} SIP messages");
    }
    // Every frame sent came back exactly once, in some call's export.
    let missing: u32 = want
        .iter()
        .map(|(k, n)| n.saturating_sub(*got.get(k).unwrap_or(&0)))
        .sum();
    let extra: u32 = got
        .iter()
        .map(|(k, n)| n.saturating_sub(*want.get(k).unwrap_or(&0)))
        .sum();
    assert_eq!((missing, extra), (0, 0), "frames missing / not sent");
}
