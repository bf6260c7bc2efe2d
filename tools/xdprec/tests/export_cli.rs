//! `xdprec export` from a store made by `xdprec capture --pcap` and indexed: every call's pcap
//! holds exactly that call's frames, byte-identical with their original timestamps, and the
//! calls together give back every recorded frame; `--all` gives every frame; WAV decodes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use xdprec_pcapio::PcapReader;

fn xdprec(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xdprec"))
        .args(args)
        .output()
        .expect("run xdprec");
    assert!(
        out.status.success(),
        "xdprec {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (timestamp, wire length, bytes) of every frame of a pcap.
fn frames(path: &Path) -> Vec<(u64, u32, Vec<u8>)> {
    let mut r = PcapReader::open(path).expect("open pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("packet");
        out.push((p.ts_ns, p.wire_len, p.data.to_vec()));
    }
    out
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xdprec-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn calls_export_back_frame_for_frame() {
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let input = corpus.join("sample-captures/sip-rtp-g711.pcap");
    let dir = tempdir("calls");
    let store = dir.join("store");
    let s = store.to_str().unwrap();
    xdprec(&[
        "capture",
        "--pcap",
        input.to_str().unwrap(),
        "--store",
        s,
        "--recorder",
        "r1",
    ]);
    xdprec(&["index", "--store", s]);
    let calls = xdprec(&["calls", "--store", s, "--json"]);
    let ids: Vec<String> = calls
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["call_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{calls}");

    // Every recorded frame: --all.
    let all = dir.join("all.pcap");
    xdprec(&[
        "export",
        "--store",
        s,
        "--all",
        "--pcap",
        all.to_str().unwrap(),
    ]);
    let all_frames = frames(&all);
    // The input's SIP and RTP frames (3 frames of the input are neither).
    let input_frames = frames(&input);
    let input_set: BTreeSet<_> = input_frames.iter().cloned().collect();
    assert_eq!(all_frames.len(), 849);
    for f in &all_frames {
        assert!(
            input_set.contains(f),
            "exported frame not byte-identical to an input frame"
        );
    }
    assert!(
        all_frames.windows(2).all(|w| w[0].0 <= w[1].0),
        "time order"
    );

    // Each call: its frames only, time-ordered; together, all of them.
    let mut union = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let out = dir.join(format!("call{i}.pcap"));
        xdprec(&[
            "export",
            "--store",
            s,
            "--call-id",
            id,
            "--pcap",
            out.to_str().unwrap(),
        ]);
        let fr = frames(&out);
        assert!(fr.len() > 400, "call {id}: {} frames", fr.len());
        assert!(fr.windows(2).all(|w| w[0].0 <= w[1].0));
        for f in fr {
            assert!(input_set.contains(&f));
            assert!(union.insert(f), "a frame exported for two calls");
        }
        // tshark opens it and sees this call's SIP.
        if xdprec_testkit::require_tool("export_cli", "tshark") {
            let t = Command::new("tshark")
                .args([
                    "-r",
                    out.to_str().unwrap(),
                    "-Y",
                    "sip",
                    "-T",
                    "fields",
                    "-e",
                    "sip.Call-ID",
                ])
                .output()
                .unwrap();
            let seen = String::from_utf8_lossy(&t.stdout);
            assert!(
                seen.lines().count() >= 4 && seen.lines().all(|l| l == id),
                "{seen}"
            );
        }
        let wav = dir.join(format!("call{i}.wav"));
        xdprec(&[
            "export",
            "--store",
            s,
            "--call-id",
            id,
            "--wav",
            wav.to_str().unwrap(),
        ]);
        let bytes = std::fs::read(&wav).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        // ~8.3 s of one direction at 8 kHz, 16-bit: the audio is there, not silence.
        let samples: Vec<i16> = bytes[44..]
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert!(samples.len() > 8000 * 8, "{} samples", samples.len());
        let loud = samples.iter().filter(|s| s.unsigned_abs() > 300).count();
        assert!(loud > samples.len() / 10, "decoded audio is mostly silence");
    }
    assert_eq!(
        union.len(),
        all_frames.len(),
        "the calls together give every frame back"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_call_and_missing_index_are_clear_errors() {
    let dir = tempdir("errors");
    let s = dir.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xdprec"))
        .args([
            "export",
            "--store",
            s,
            "--call-id",
            "nope",
            "--pcap",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("xdprec index"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
