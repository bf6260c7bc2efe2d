//! Synthetic calls written to pcap are what tshark calls N dialogs with 2N clean RTP streams.

use std::sync::atomic::AtomicBool;
use xdprec_replay::pace::MonotonicClock;
use xdprec_replay::{run, Limits, Pace, PcapSender, Synth, SynthConfig};

fn write_calls(path: &std::path::Path, cfg: SynthConfig) -> xdprec_replay::Summary {
    let mut src = Synth::new(cfg).unwrap();
    let mut out = PcapSender::create(path).unwrap();
    let stop = AtomicBool::new(false);
    run(
        &mut src,
        &mut out,
        Pace::TopSpeed,
        Limits::default(),
        &MonotonicClock::new(),
        &stop,
        &mut |_| {},
    )
    .unwrap()
}

/// The count in the row `LABEL : COUNT Packets` of `tshark -z sip,stat`.
fn sip_count(stat: &str, label: &str) -> u64 {
    stat.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == label)
        .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` row in:\n{stat}"))
}

#[test]
fn tshark_sees_n_dialogs_and_2n_lossless_rtp_streams() {
    if !xdprec_testkit::require_tool("tshark_sees_n_dialogs", "tshark") {
        return;
    }
    let n = 12u32;
    let dir = std::env::temp_dir().join(format!("xdprec-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("synth.pcap");
    let mut cfg = SynthConfig::new(n);
    cfg.call_ns = 7_000_000_000;
    cfg.cps = Some(20.0);
    cfg.start_unix_ns = 1_700_000_000_000_000_000;
    let s = write_calls(&path, cfg);
    assert!(s.packets > 0);

    let out = xdprec_testkit::sh(&[
        "tshark",
        "-r",
        path.to_str().unwrap(),
        "-q",
        "-2",
        "-z",
        "sip,stat",
        "-z",
        "rtp,streams",
    ]);
    eprintln!("{out}");
    // Distinct Call-IDs: N dialogs, not N messages of one.
    let ids = xdprec_testkit::sh(&[
        "tshark",
        "-r",
        path.to_str().unwrap(),
        "-Y",
        "sip.Method == \"INVITE\"",
        "-T",
        "fields",
        "-e",
        "sip.Call-ID",
    ]);
    let mut ids: Vec<&str> = ids.lines().collect();
    ids.sort_unstable();
    ids.dedup();
    // RTCP sender reports: one per direction per call (media 5.98 s long).
    let rtcp = xdprec_testkit::sh(&[
        "tshark",
        "-r",
        path.to_str().unwrap(),
        "-Y",
        "rtcp.pt == 200",
        "-T",
        "fields",
        "-e",
        "rtcp.senderssrc",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ids.len(), n as usize, "distinct Call-IDs");
    assert_eq!(
        rtcp.lines().count(),
        2 * n as usize,
        "one report per direction"
    );
    let n64 = u64::from(n);
    assert_eq!(sip_count(&out, "INVITE"), n64);
    assert_eq!(sip_count(&out, "ACK"), n64);
    assert_eq!(sip_count(&out, "BYE"), n64);
    assert_eq!(sip_count(&out, "SIP 100 Trying"), n64);
    assert_eq!(sip_count(&out, "SIP 180 Ringing"), n64);
    assert_eq!(sip_count(&out, "SIP 200 OK"), 2 * n64);
    assert!(out.contains(&format!("Number of SIP messages: {}", 7 * n64)));

    // rtp,streams rows: "src_ip src_port dst_ip dst_port ssrc payload packets lost (pct) ...".
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("0x") && (l.contains("g711U") || l.contains("g711A")))
        .collect();
    assert_eq!(rows.len(), 2 * n as usize, "RTP streams:\n{out}");
    let ulaw = rows.iter().filter(|r| r.contains("g711U")).count();
    assert_eq!(ulaw, n as usize, "half the streams are µ-law");
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        // Media runs from 1.02 s (1.03 s) to 7 s: 299 packets per stream.
        assert!(f.contains(&"299"), "packet count in {r}");
        let lost_at = f.iter().position(|&x| x == "299").unwrap() + 1;
        assert_eq!(f[lost_at], "0", "lost in {r}");
    }
}
