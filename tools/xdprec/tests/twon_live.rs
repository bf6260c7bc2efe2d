//! 2N: the same calls recorded by two recorders are indexed together; each call appears once
//! as `primary` and once as `secondary`, `xdprec calls` shows it once (`--all` twice), and
//! `export --merge` fills each copy's gaps from the other and says how many packets came from
//! each recorder.
//!
//! - `twon_from_lossy_pcap_copies` (no privileges): two stores made by `xdprec capture --pcap`
//!   from the corpus capture, each losing other RTP packets; thresholds from the command line.
//! - `twon_live` (privileged): the capture replayed with tcpreplay into a veth whose ingress
//!   is mirrored (tc u32 + two mirred actions) to two recorders' interfaces.
//!
//! Traffic stays inside a network namespace the test creates; every wait has a deadline;
//! processes are stopped by their pid.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{
    calls, export, import, index, number_before, read_pcap, steered, tmpdir, write_pcap, Frame,
    Recorder, Topo,
};
use xdprec_testkit::{require_privileges, require_tool};

/// True for an RTP frame of the capture (UDP from port 27942 or 28102 to 6000).
fn is_rtp(f: &[u8]) -> bool {
    f.len() > 54
        && f[12..14] == [0x08, 0x00]
        && f[23] == 17
        && f[36..38] == 6000u16.to_be_bytes()
        && f[42] >> 6 == 2
}

/// Every call once as primary and once as secondary (naming the primary's recorder).
fn check_roles(db: &Path, want_calls: usize, primary: &str, secondary: &str) {
    let listed = calls(db, &[]);
    assert_eq!(listed.len(), want_calls, "{listed:?}");
    for c in &listed {
        assert_eq!(c["role"], "primary");
        assert_eq!(c["recorder"], primary, "{c}");
        assert_eq!(
            c["recorders"],
            serde_json::json!([primary, secondary]),
            "{c}"
        );
        assert!(c["dup_flags"].is_null() && c["failover"].is_null(), "{c}");
    }
    let all = calls(db, &["--all"]);
    assert_eq!(all.len(), 2 * want_calls, "{all:?}");
    let mut roles: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for c in &all {
        roles
            .entry(c["call_id"].as_str().unwrap().to_string())
            .or_default()
            .push((
                c["role"].as_str().unwrap().to_string(),
                c["recorder"].as_str().unwrap().to_string(),
            ));
        if c["role"] == "secondary" {
            assert_eq!(c["primary_recorder"], primary, "{c}");
        }
    }
    for (id, mut r) in roles {
        r.sort();
        assert_eq!(
            r,
            [
                ("primary".to_string(), primary.to_string()),
                ("secondary".to_string(), secondary.to_string())
            ],
            "{id}"
        );
    }
}

#[test]
fn twon_from_lossy_pcap_copies() {
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let all = read_pcap(&corpus.join("sample-captures/sip-rtp-g711.pcap"));
    let dir = tmpdir("pcap");
    // Copy A loses every 7th RTP packet, copy B every 11th (other ones): B is more complete.
    let rtp_index: Vec<Option<usize>> = {
        let mut n = 0;
        all.iter()
            .map(|f| {
                is_rtp(&f.2).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect()
    };
    let lost_a = |i: usize| i % 7 == 3;
    let lost_b = |i: usize| i % 11 == 5;
    let keep = |lost: &dyn Fn(usize) -> bool| -> Vec<Frame> {
        all.iter()
            .zip(&rtp_index)
            .filter(|(_, r)| !r.is_some_and(lost))
            .map(|(f, _)| f.clone())
            .collect()
    };
    let (fa, fb) = (keep(&lost_a), keep(&lost_b));
    let (pa, pb) = (dir.join("a.pcap"), dir.join("b.pcap"));
    write_pcap(&pa, &fa);
    write_pcap(&pb, &fb);
    let (sa, sb) = (dir.join("A"), dir.join("B"));
    for (p, s, r) in [(&pa, &sa, "A"), (&pb, &sb, "B")] {
        import(p, s, r);
    }
    let db = dir.join("index.sqlite");
    eprintln!("{}", index(&db, &[&sa, &sb], &[]));
    check_roles(&db, 2, "B", "A");

    // Merge: each copy's gaps filled from the other; what both lost stays lost.
    let call = "1-1966@10.0.2.20";
    let in_call = |f: &Frame| {
        f.0 <= all[432].0 // up to the 200 OK of the BYE (frame 433)
            && (is_rtp(&f.2) && f.2[34..36] == 27942u16.to_be_bytes() || f.2[36..38] == 5060u16.to_be_bytes())
    };
    let whole: Vec<&Frame> = all.iter().filter(|f| in_call(f)).collect();
    let both_lost = all
        .iter()
        .zip(&rtp_index)
        .filter(|(f, r)| in_call(f) && r.is_some_and(|i| lost_a(i) && lost_b(i)))
        .count();
    let only_b = all
        .iter()
        .zip(&rtp_index)
        .filter(|(f, r)| in_call(f) && r.is_some_and(|i| lost_a(i) && !lost_b(i)))
        .count() as u64;
    let (merged, report) = export(&[&sa, &sb], &db, call, &dir.join("m.pcap"), true);
    eprintln!("{report}");
    assert_eq!(merged.len(), whole.len() - both_lost, "{report}");
    let mut want: Vec<Vec<u8>> = whole.iter().map(|f| f.2.clone()).collect();
    let mut got: Vec<Vec<u8>> = merged.iter().map(|f| f.2.clone()).collect();
    want.sort();
    got.sort();
    // Every merged frame is one of the call's, once.
    got.dedup();
    assert_eq!(got.len(), merged.len(), "a frame twice");
    assert!(got.iter().all(|f| want.binary_search(f).is_ok()));
    // Identical timestamps: A's copy is kept where both have it; B fills A's gaps.
    assert_eq!(number_before(&report, "from B"), only_b, "{report}");
    assert_eq!(
        number_before(&report, "from A") + only_b,
        merged.len() as u64,
        "{report}"
    );
    // Without --merge: the primary copy (B's) only.
    let (primary, _) = export(&[&sa, &sb], &db, call, &dir.join("p.pcap"), false);
    let b_has = fb.iter().filter(|f| in_call(f)).count();
    assert_eq!(primary.len(), b_has);
    assert!(merged.len() > primary.len());

    // Thresholds are flags: copies whose RTP counts differ by more than 10 stay apart, flagged.
    let strict = dir.join("strict.sqlite");
    index(&strict, &[&sa, &sb], &["--dup-packets-diff", "10"]);
    let listed = calls(&strict, &[]);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().any(|c| c["dup_flags"]
        .as_str()
        .is_some_and(|f| f.contains("ambiguous: RTP packet counts differ"))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn twon_live() {
    if !require_privileges("twon_live") || !require_tool("twon_live", "tcpreplay") {
        return;
    }
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let pcap = corpus.join("sample-captures/sip-rtp-g711.pcap");
    let frames = read_pcap(&pcap);
    let want = steered(&frames);
    let dir = tmpdir("live");
    let topo = Topo::new(2);
    let (sa, sb) = (dir.join("A"), dir.join("B"));
    let rec_a = Recorder::start(&topo.ns, &topo.recs[0].b, &sa, "A");
    let rec_b = Recorder::start(&topo.ns, &topo.recs[1].b, &sb, "B");
    topo.mirror_to(&[0, 1]);
    topo.replay(&pcap, 2000);
    rec_a.wait_written(want);
    rec_b.wait_written(want);
    let (wa, wb) = (rec_a.written(), rec_b.written());
    rec_a.stop();
    rec_b.stop();
    eprintln!("steered {want}; recorder A wrote {wa}, B wrote {wb}");
    assert_eq!((wa, wb), (want, want));
    let db = dir.join("index.sqlite");
    eprintln!("{}", index(&db, &[&sa, &sb], &[]));
    // Equal copies: the tie goes to the recorder whose name sorts first.
    check_roles(&db, 2, "A", "B");
    // The per-recorder report of a merge of identical copies: every frame once.
    let call = "1-1966@10.0.2.20";
    let (merged, report) = export(&[&sa, &sb], &db, call, &dir.join("m.pcap"), true);
    let (primary, _) = export(&[&sa, &sb], &db, call, &dir.join("p.pcap"), false);
    eprintln!("{report}");
    assert_eq!(merged.len(), primary.len(), "{report}");
    assert_eq!(
        number_before(&report, "duplicates dropped"),
        merged.len() as u64,
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
