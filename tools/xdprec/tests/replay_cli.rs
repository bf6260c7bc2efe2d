//! `xdprec replay`: the contract command line, writing a pcap, and both senders on a veth pair
//! in a network namespace (each must deliver exactly the frames it was asked to send).

use std::path::Path;
use std::process::Command;
use xdprec_testkit::{require_privileges, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_xdprec");

fn count_frames(path: &Path) -> (u64, u64) {
    let mut r = xdprec_pcapio::PcapReader::open(path).unwrap();
    let (mut n, mut rtp) = (0, 0);
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        n += 1;
        if p.data.len() == 214 {
            rtp += 1;
        }
    }
    (n, rtp)
}

#[test]
fn write_pcap_only_makes_the_calls_asked_for() {
    let dir = std::env::temp_dir().join(format!("xdprec-replay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("calls.pcap");
    let st = Command::new(BIN)
        .args(["replay", "--synth", "4", "--call-secs", "2", "--cps", "100"])
        .arg("--write-pcap")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let (n, rtp) = count_frames(&out);
    // Per call: 7 SIP; media from 520/530 ms to 2 s at 20 ms: 74 packets each way.
    assert_eq!(rtp, 4 * 2 * 74);
    assert_eq!(n, 4 * 7 + rtp);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_command_lines_are_refused() {
    for args in [
        vec!["replay", "--synth", "2"],  // no --iface, no output
        vec!["replay", "--iface", "lo"], // no input
        vec!["replay", "--iface", "lo", "--synth", "1", "--pcap", "x"], // two inputs
        vec![
            "replay",
            "--iface",
            "lo",
            "--synth",
            "1",
            "--pps",
            "5",
            "--topspeed",
        ],
        vec![
            "replay",
            "--iface",
            "lo",
            "--synth",
            "1",
            "--sender",
            "carrier-pigeon",
        ],
    ] {
        let st = Command::new(BIN).args(&args).output().unwrap();
        assert!(!st.status.success(), "{args:?} was accepted");
    }
}

fn rx_packets(ns: &Netns, dev: &str) -> u64 {
    xdprec_testkit::link_counter(ns, dev, "rx_packets")
}

/// Sends `k` frames with `sender` from end a; returns (frames the peer received, stderr).
fn send_k(sender: &str, k: u64) -> (u64, String) {
    let (ns, v) = xdprec_testkit::quiet_pair(1);
    // Live frames leave a veth through ndo_xdp_xmit, which needs NAPI on the peer.
    ns.exec(&["ethtool", "-K", &v.b, "gro", "on"]);
    let before = rx_packets(&ns, &v.b);
    let out = ns
        .command(BIN)
        .args([
            "replay", "--iface", &v.a, "--synth", "200", "--cps", "100000",
        ])
        .args(["--call-secs", "30", "--pps", "50000", "--duration", "20"])
        .args(["--count", &k.to_string(), "--sender", sender])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{sender}: {stderr}");
    // Delivery on veth is synchronous with the send, or done by the peer's NAPI right after.
    let mut got = 0;
    for _ in 0..50 {
        got = rx_packets(&ns, &v.b) - before;
        if got >= k {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (got, stderr)
}

#[test]
fn packet_sender_delivers_exactly_k_frames() {
    if !require_privileges("packet_sender_delivers_exactly_k_frames") {
        return;
    }
    let (got, err) = send_k("packet", 5000);
    assert!(err.contains("sender: packet"), "{err}");
    assert!(err.contains(": 5000 packets"), "{err}");
    assert_eq!(got, 5000, "{err}");
}

#[test]
fn live_frames_sender_delivers_exactly_k_frames() {
    if !require_privileges("live_frames_sender_delivers_exactly_k_frames") {
        return;
    }
    let (got, err) = send_k("live", 5000);
    assert!(err.contains("sender: live"), "{err}");
    assert!(err.contains(": 5000 packets"), "{err}");
    assert_eq!(got, 5000, "{err}");
}
