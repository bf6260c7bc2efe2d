//! `xdprec export` from a store made by `xdprec capture --pcap` and indexed: every call's pcap
//! holds exactly that call's frames, byte-identical with their original timestamps, and the
//! calls together give back every recorded frame; `--all` gives every frame; WAV decodes.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{import, read_pcap, store_calls, tmpdir, xdprec, BIN};

#[test]
fn calls_export_back_frame_for_frame() {
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let input = corpus.join("sample-captures/sip-rtp-g711.pcap");
    let dir = tmpdir("calls");
    let store = dir.join("store");
    let s = store.to_str().unwrap();
    import(&input, &store, "r1");
    xdprec(&["index", "--store", s]);
    let calls = store_calls(&store, &[]);
    let ids: Vec<String> = calls
        .iter()
        .map(|c| c["call_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{calls:?}");

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
    let all_frames = read_pcap(&all);
    // The input's SIP and RTP frames (3 frames of the input are neither).
    let input_frames = read_pcap(&input);
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
        let fr = read_pcap(&out);
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
    let dir = tmpdir("errors");
    let s = dir.to_str().unwrap();
    let out = Command::new(BIN)
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
