//! Agreement with tshark: for every corpus capture with INVITE dialogs (MANIFEST.md), the calls
//! (Call-IDs with an INVITE) and each call's RTP streams (src, dst, SSRC) with their packet
//! counts must equal tshark's (`tshark -2`, RTP set up from SDP), except for the differences
//! listed with their reasons in KNOWN_DIFFERENCES.md.
//!
//! tshark's side: `-Y sip.Method==INVITE -T fields -e sip.Call-ID` for calls; `-Y rtp -T fields`
//! with `rtp.setup-frame` per packet (the SIP frame whose SDP set the stream up), aggregated per
//! (src, dst, SSRC), mapped to the Call-ID of that setup frame. The capture is indexed straight
//! from the pcap (`source::index_pcap`), the same engine `xdprec index` runs over segments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use xdprec_index::query::{list_calls, orphan_streams, Filter};
use xdprec_index::{source::index_pcap, Config, Indexer};

/// (capture, kind, key) of a difference; kind: call-missing, call-extra, stream-missing,
/// stream-extra, stream-call, stream-packets.
type Diff = (String, String, String);

fn tshark(file: &Path, extra: &[String], args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .arg("-2")
        .args(extra)
        .args(args)
        .output()
        .expect("run tshark");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn endpoint(ip4: &str, ip6: &str, port: &str) -> String {
    let first = |s: &str| s.split(',').next().unwrap_or("").to_string();
    let port = first(port);
    if !first(ip4).is_empty() {
        format!("{}:{}", first(ip4), port)
    } else {
        format!("[{}]:{}", first(ip6), port)
    }
}

/// Captures with INVITE dialogs and the extra tshark arguments MANIFEST.md says they need.
fn captures(corpus: &Path) -> Vec<(String, Vec<String>)> {
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.md")).expect("MANIFEST.md");
    let mut out = Vec::new();
    for line in manifest.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let file = cols[1].trim_matches('`').to_string();
        let invites: u32 = cols[7]
            .split('/')
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if invites == 0 {
            continue;
        }
        let mut extra = Vec::new();
        if let Some(p) = line.find("needs `") {
            let rest = &line[p + 7..];
            let arg = &rest[..rest.find('`').unwrap_or(0)];
            extra = arg.split_whitespace().map(str::to_string).collect();
        }
        out.push((file, extra));
    }
    out
}

struct Figures {
    captures: usize,
    calls: usize,
    streams: usize,
}

fn compare(corpus: &Path, rel: &str, extra: &[String], fig: &mut Figures) -> Vec<Diff> {
    let file = corpus.join(rel);
    // tshark: frame → Call-ID, INVITE Call-IDs.
    let sip = tshark(
        &file,
        extra,
        &[
            "-Y",
            "sip",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-e",
            "frame.number",
            "-e",
            "sip.Call-ID",
            "-e",
            "sip.Method",
        ],
    );
    let mut frame_call: BTreeMap<u64, String> = BTreeMap::new();
    let mut t_calls: BTreeSet<String> = BTreeSet::new();
    for l in sip.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let (Some(n), Some(cid)) = (f.first().and_then(|n| n.parse().ok()), f.get(1)) else {
            continue;
        };
        let cid = cid.split(',').next().unwrap_or("").to_string();
        if f.get(2)
            .is_some_and(|m| m.split(',').any(|m| m == "INVITE"))
            && !cid.is_empty()
        {
            t_calls.insert(cid.clone());
        }
        frame_call.insert(n, cid);
    }
    // tshark: RTP streams with setup frame and packet count.
    let rtp = tshark(
        &file,
        extra,
        &[
            "-Y",
            "rtp",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "udp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.ssrc",
            "-e",
            "rtp.setup-frame",
        ],
    );
    let mut t_streams: BTreeMap<(String, String, u32), (u64, String)> = BTreeMap::new();
    for l in rtp.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() < 8 {
            continue;
        }
        let Ok(ssrc) = u32::from_str_radix(
            f[6].split(',')
                .next()
                .unwrap_or("")
                .trim_start_matches("0x"),
            16,
        ) else {
            continue;
        };
        let setup: u64 = f[7]
            .split(',')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let call = frame_call.get(&setup).cloned().unwrap_or_default();
        let e = t_streams
            .entry((endpoint(f[0], f[1], f[2]), endpoint(f[3], f[4], f[5]), ssrc))
            .or_insert((0, call));
        e.0 += 1;
    }
    // Ours.
    let dir = std::env::temp_dir().join(format!(
        "xdprec-tshark-{}-{}",
        rel.replace('/', "_"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut ix = Indexer::open(&dir.join("index.sqlite"), Config::default()).unwrap();
    if index_pcap(&mut ix, &file, "r").is_err() {
        // A format pcap-file cannot read (NetMon): let editcap convert it.
        let conv = dir.join("converted.pcap");
        let ok = Command::new("editcap")
            .args(["-F", "pcap"])
            .arg(&file)
            .arg(&conv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{rel}: unreadable and editcap could not convert it");
        index_pcap(&mut ix, &conv, "r").unwrap();
    }
    let calls = list_calls(
        ix.conn(),
        &Filter {
            all: true,
            ..Default::default()
        },
    )
    .unwrap();
    let orphans = orphan_streams(ix.conn()).unwrap();
    drop(ix);
    let _ = std::fs::remove_dir_all(&dir);
    let o_calls: BTreeSet<String> = calls.iter().map(|c| c.call_id.clone()).collect();
    let mut o_streams: BTreeMap<(String, String, u32), (u64, String)> = BTreeMap::new();
    for c in &calls {
        for s in &c.streams {
            o_streams.insert(
                (s.src.clone(), s.dst.clone(), s.ssrc),
                (s.packets as u64, c.call_id.clone()),
            );
        }
    }
    // Streams tshark set up from something other than SIP (MGCP...) are orphans for us.
    for s in &orphans {
        let k = (s.src.clone(), s.dst.clone(), s.ssrc);
        if t_streams.get(&k).is_some_and(|t| t.1.is_empty()) {
            o_streams.insert(k, (s.packets as u64, String::new()));
        }
    }
    fig.captures += 1;
    fig.calls += t_calls.len();
    fig.streams += t_streams.len();
    let mut diffs = Vec::new();
    let d = |k: &str, key: String| (rel.to_string(), k.to_string(), key);
    for c in t_calls.difference(&o_calls) {
        diffs.push(d("call-missing", c.clone()));
    }
    for c in o_calls.difference(&t_calls) {
        diffs.push(d("call-extra", c.clone()));
    }
    for (k, (n, call)) in &t_streams {
        let key = format!("{}>{} 0x{:08X}", k.0, k.1, k.2);
        match o_streams.get(k) {
            None => diffs.push(d("stream-missing", key)),
            Some((on, ocall)) => {
                if ocall != call {
                    diffs.push(d("stream-call", key.clone()));
                }
                if on != n {
                    diffs.push(d("stream-packets", format!("{key} tshark={n} ours={on}")));
                }
            }
        }
    }
    for k in o_streams.keys() {
        if !t_streams.contains_key(k) {
            diffs.push(d("stream-extra", format!("{}>{} 0x{:08X}", k.0, k.1, k.2)));
        }
    }
    diffs
}

/// Rows of the table in KNOWN_DIFFERENCES.md: | capture | kind | key | reason |.
fn known() -> BTreeSet<Diff> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("KNOWN_DIFFERENCES.md"))
            .expect("KNOWN_DIFFERENCES.md");
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((
                c.get(1)?.trim_matches('`').to_string(),
                c.get(2)?.to_string(),
                c.get(3)?.trim_matches('`').to_string(),
            ))
        })
        .collect()
}

#[test]
fn agrees_with_tshark() {
    if !xdprec_testkit::require_tool("agrees_with_tshark", "tshark") {
        return;
    }
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let known = known();
    let mut fig = Figures {
        captures: 0,
        calls: 0,
        streams: 0,
    };
    let mut all = Vec::new();
    for (rel, extra) in captures(&corpus) {
        all.extend(compare(&corpus, &rel, &extra, &mut fig));
    }
    let unexplained: Vec<&Diff> = all.iter().filter(|d| !known.contains(*d)).collect();
    let stale: Vec<&Diff> = known.iter().filter(|k| !all.contains(k)).collect();
    println!(
        "tshark agreement: {} captures, {} calls, {} RTP streams (tshark's), {} differences ({} listed in KNOWN_DIFFERENCES.md)",
        fig.captures,
        fig.calls,
        fig.streams,
        all.len(),
        all.len() - unexplained.len()
    );
    for d in &unexplained {
        println!("UNEXPLAINED | `{}` | {} | `{}` |", d.0, d.1, d.2);
    }
    for d in &stale {
        println!(
            "STALE (listed but not seen) | `{}` | {} | `{}` |",
            d.0, d.1, d.2
        );
    }
    assert!(
        fig.captures >= 20,
        "MANIFEST.md lists too few captures with calls: {}",
        fig.captures
    );
    assert!(
        unexplained.is_empty(),
        "{} differences from tshark are not in KNOWN_DIFFERENCES.md",
        unexplained.len()
    );
    assert!(
        stale.is_empty(),
        "{} rows of KNOWN_DIFFERENCES.md no longer occur: remove them",
        stale.len()
    );
}
