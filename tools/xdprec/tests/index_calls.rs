//! `xdprec capture --pcap` → `xdprec index` → `xdprec calls --json`: the contract fields.

use std::path::{Path, PathBuf};
use std::process::Command;

fn xdprec(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xdprec")).args(args).output().expect("run xdprec");
    assert!(
        out.status.success(),
        "xdprec {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn calls(store: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["calls", "--store", store.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    xdprec(&args).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

#[test]
fn calls_json_from_a_captured_store() {
    let Some(corpus) = xdprec_testkit::corpus_dir() else { return };
    let t = Tmp(std::env::temp_dir().join(format!("xdprec-index-calls-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&t.0);
    let store = t.0.join("store");
    let pcap = corpus.join("sample-captures/sip-rtp-g711.pcap");
    let s = store.to_str().unwrap();
    xdprec(&["capture", "--pcap", pcap.to_str().unwrap(), "--store", s, "--recorder", "rec1"]);
    xdprec(&["index", "--store", s]);
    assert!(store.join("index.sqlite").is_file());

    let all = calls(&store, &[]);
    assert_eq!(all.len(), 2, "{all:?}");
    let c = &all[0];
    assert_eq!(c["call_id"], "1-1966@10.0.2.20");
    assert_eq!(c["from"], "sip:sipp@10.0.2.20:5060");
    assert_eq!(c["to"], "sip:test@10.0.2.15:5060");
    assert_eq!(c["start"], "2016-11-26T14:52:59.666393000Z");
    assert_eq!(c["answer"], "2016-11-26T14:52:59.670743000Z");
    assert_eq!(c["end"], "2016-11-26T14:53:08.170086000Z");
    assert_eq!(c["state"], "answered");
    assert_eq!(c["recorder"], "rec1");
    assert_eq!(c["role"], "primary");
    assert_eq!(c["sip_messages"], 6);
    let st = c["streams"].as_array().unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["src"], "10.0.2.15:27942");
    assert_eq!(st[0]["dst"], "10.0.2.20:6000");
    assert_eq!(st[0]["ssrc"], 0x343D_A99Bu32);
    assert_eq!(st[0]["payload_type"], 0);
    assert_eq!(st[0]["codec"], "PCMU");
    assert_eq!(st[0]["packets"], 425);
    assert_eq!(st[0]["lost"], 0);
    assert!(st[0]["jitter_ms"].as_f64().unwrap() < 1.0);
    // The second call has no BYE in the capture: end unknown.
    assert_eq!(all[1]["call_id"], "1-1968@10.0.2.20");
    assert!(all[1]["end"].is_null());
    assert_eq!(all[1]["streams"][0]["codec"], "PCMA");
    assert_eq!(all[1]["streams"][0]["packets"], 414);

    // Filters.
    assert_eq!(calls(&store, &["--number", "test"]).len(), 2);
    assert_eq!(calls(&store, &["--number", "nobody"]).len(), 0);
    assert_eq!(calls(&store, &["--call-id", "1-1968@10.0.2.20"]).len(), 1);
    assert_eq!(calls(&store, &["--since", "2016-11-26T14:53:00Z"]).len(), 1);
    assert_eq!(calls(&store, &["--until", "1480171980"]).len(), 1);

    // Indexing again changes nothing; the table for people lists both calls.
    xdprec(&["index", "--store", s]);
    assert_eq!(calls(&store, &[]), all);
    let table = xdprec(&["calls", "--store", s]);
    assert!(table.contains("1-1966@10.0.2.20") && table.contains("2 calls"), "{table}");
}
