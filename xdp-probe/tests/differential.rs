//! Differential test: the XDP program (run with BPF_PROG_RUN) and the user-space classifier
//! (xdprec-classify) over every frame of every capture in ../shared/corpus must agree on the
//! class of each frame and on every counter both keep: the class counters (SIP over UDP and
//! over TCP apart), the truncation and parse-error counters, and the informational ones
//! (tunnels, VLAN, IPv4/IPv6, SIP by content, TCP flow hits). Verdict counters are the
//! probe's alone and are not compared.
//!
//! Frames of non-Ethernet link types are given an Ethernet header (xdprec_pcapio::to_ethernet);
//! frames of those links that do not carry IP are skipped (counted). The TCP flow state is
//! reset on both sides between files.
//!
//! BPF_PROG_RUN puts at most one page's worth of a frame in the linear buffer (4096 less 256
//! of headroom and 320 of skb_shared_info: 3520 bytes) and the rest in fragments the
//! (single-buffer) program cannot read: the program sees a frame cut there. On a NIC with a
//! 1500-byte MTU this never happens; here the Rust side is given the same cut frame so that
//! both judge the same bytes (a handful of loopback frames in the corpus are larger).

use std::collections::BTreeMap;
use xdprec_classify::abi::{Counter, COUNTER_MAX};
use xdprec_classify::{Classifier, ProbeConfig};
use xdprec_pcapio::{to_ethernet, PcapReader};
use xdprec_probe::Probe;

/// What BPF_PROG_RUN leaves readable in the linear part of a test frame.
const TEST_RUN_LINEAR_BYTES: usize = 4096 - 256 - 320;

/// Counters compared frame by frame (everything but the verdicts, rx_bytes, which the
/// program counts over all fragments, and tcp_flow_full, which only user space can count).
const COMPARED: &[Counter] = &[
    Counter::RxPackets,
    Counter::ClassSipUdp,
    Counter::ClassSipTcp,
    Counter::ClassRtp,
    Counter::ClassRtcp,
    Counter::ClassFrag,
    Counter::ClassOther,
    Counter::SipByContent,
    Counter::TcpFlowHit,
    Counter::TunnelGre,
    Counter::TunnelErspan,
    Counter::TunnelVxlan,
    Counter::TunnelGtpu,
    Counter::TunnelIpip,
    Counter::Vlan,
    Counter::Ipv4,
    Counter::Ipv6,
    Counter::ParseError,
    Counter::TruncEth,
    Counter::TruncVlan,
    Counter::TruncIpv4,
    Counter::TruncIpv6,
    Counter::TruncIpv6Ext,
    Counter::TruncUdp,
    Counter::TruncTcp,
    Counter::TruncTunnel,
    Counter::Ipv6ExtLimit,
    Counter::AbiMismatch,
    Counter::GtpuExtLimit,
];

const CLASSES: &[(Counter, &str)] = &[
    (Counter::ClassSipUdp, "sip_udp"),
    (Counter::ClassSipTcp, "sip_tcp"),
    (Counter::ClassRtp, "rtp"),
    (Counter::ClassRtcp, "rtcp"),
    (Counter::ClassFrag, "frag"),
    (Counter::ClassOther, "other"),
];

type Counters = [u64; COUNTER_MAX as usize];

fn delta(after: &Counters, before: &Counters) -> Counters {
    let mut d = [0u64; COUNTER_MAX as usize];
    for (i, v) in d.iter_mut().enumerate() {
        *v = after[i].wrapping_sub(before[i]);
    }
    d
}

/// The counters that moved, for messages: "class_rtp trunc_udp ...".
fn moved(d: &Counters) -> String {
    let mut s = String::new();
    for &c in COMPARED {
        let n = d[c as usize];
        if n != 0 && c != Counter::RxPackets {
            s.push_str(&format!("{}={n} ", c.label()));
        }
    }
    s
}

/// Runs one frame through both; returns a description when they disagree.
fn compare(
    probe: &mut Probe,
    rust: &mut Classifier,
    bpf_prev: &mut Counters,
    frame: &[u8],
) -> (Counters, Option<String>) {
    probe
        .test_run(frame, 0)
        .unwrap_or_else(|e| panic!("test_run of {}: {e}", hex(frame)));
    let bpf_now = probe.counters().expect("reading counters");
    let bpf = delta(&bpf_now, bpf_prev);
    *bpf_prev = bpf_now;
    let seen = &frame[..frame.len().min(TEST_RUN_LINEAR_BYTES)];
    let rust_prev = *rust.counters();
    let res = rust.classify(seen);
    let rs = delta(rust.counters(), &rust_prev);
    assert_eq!(bpf[Counter::RxBytes as usize], frame.len() as u64);
    let differs = COMPARED.iter().any(|&c| bpf[c as usize] != rs[c as usize]);
    let msg = differs.then(|| {
        format!(
            "({} bytes): bpf [{}] rust [{}] (rust: {:?}, error {:?}, tunnel {:?})\n  {}",
            frame.len(),
            moved(&bpf),
            moved(&rs),
            res.class,
            res.error,
            res.tunnel,
            hex(frame)
        )
    });
    (bpf, msg)
}

fn hex(b: &[u8]) -> String {
    b.iter().take(96).map(|x| format!("{x:02x}")).collect()
}

#[test]
fn bpf_and_rust_classifiers_agree_on_the_corpus() {
    if !xdprec_testkit::require_privileges("differential") {
        return;
    }
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let config = ProbeConfig::default();
    let mut probe = Probe::load(&config).expect("loading the probe");
    let mut rust = Classifier::new(config);
    let mut eth = Vec::with_capacity(65536);
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut frames, mut skipped, mut cut) = (0u64, 0u64, 0u64);
    let mut disagreements = Vec::new();
    let mut bpf_prev = probe.counters().expect("reading counters");

    let captures = xdprec_testkit::corpus_captures(&dir);
    assert!(!captures.is_empty());
    for path in &captures {
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        probe
            .clear_tcp_flows()
            .expect("clearing the probe's TCP flows");
        rust.clear_tcp_flows();
        let mut r = PcapReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        let mut per_class: BTreeMap<&str, u64> = BTreeMap::new();
        let (mut n, mut index) = (0u64, 0u64);
        while let Some(p) = r.next_packet() {
            let p = p.unwrap_or_else(|e| panic!("{e}"));
            index += 1;
            if !to_ethernet(p.link, p.data, &mut eth) {
                skipped += 1;
                continue;
            }
            let seen_len = eth.len().min(TEST_RUN_LINEAR_BYTES);
            cut += u64::from(seen_len < eth.len());
            let (bpf, msg) = compare(&mut probe, &mut rust, &mut bpf_prev, &eth);
            if let Some(m) = msg {
                disagreements.push(format!("{name} frame {index} {m}"));
            }
            let class = CLASSES
                .iter()
                .find(|(c, _)| bpf[*c as usize] == 1)
                .map(|(_, l)| *l)
                .unwrap_or("none");
            *per_class.entry(class).or_insert(0) += 1;
            n += 1;
        }
        eprintln!("{name}: {n} frames {per_class:?}");
        for (k, v) in per_class {
            *totals.entry(k).or_insert(0) += v;
        }
        frames += n;
    }
    eprintln!(
        "differential: {} files, {frames} frames compared ({skipped} non-IP frames of non-Ethernet links skipped, {cut} cut to {TEST_RUN_LINEAR_BYTES} bytes), per class {totals:?}, {} disagreements",
        captures.len(),
        disagreements.len()
    );
    for d in disagreements.iter().take(40) {
        eprintln!("DISAGREE {d}");
    }
    assert!(frames > 40_000, "only {frames} frames compared");
    assert!(
        !totals.contains_key("none"),
        "a frame moved no class counter"
    );
    assert!(
        disagreements.is_empty(),
        "{} frames classified differently by BPF and Rust; first: {}",
        disagreements.len(),
        disagreements[0]
    );
}

/// The corpus again under a configuration that turns the other switches: no content
/// matching, no fragments, three SIP ports (TCP 6060 of heplify's capture becomes SIP by
/// port), a narrow RTP range. Only totals are printed.
#[test]
fn bpf_and_rust_agree_under_another_config() {
    if !xdprec_testkit::require_privileges("differential") {
        return;
    }
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let mut config = ProbeConfig::default();
    config.sip_ports[1] = 6060;
    config.sip_ports[2] = 5080;
    config.sip_port_count = 3;
    config.sip_by_content = 0;
    config.capture_frags = 0;
    config.rtp_port_lo = 10_000;
    config.rtp_port_hi = 40_000;
    let mut probe = Probe::load(&config).expect("loading the probe");
    let mut rust = Classifier::new(config);
    let mut bpf_prev = probe.counters().expect("reading counters");
    let mut eth = Vec::new();
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut disagreements = Vec::new();
    let mut frames = 0u64;
    for path in xdprec_testkit::corpus_captures(&dir) {
        probe.clear_tcp_flows().expect("clearing flows");
        rust.clear_tcp_flows();
        let mut r = PcapReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut index = 0u64;
        while let Some(p) = r.next_packet() {
            let p = p.unwrap_or_else(|e| panic!("{e}"));
            index += 1;
            if !to_ethernet(p.link, p.data, &mut eth) {
                continue;
            }
            let (bpf, msg) = compare(&mut probe, &mut rust, &mut bpf_prev, &eth);
            if let Some(m) = msg {
                disagreements.push(format!("{} frame {index} {m}", path.display()));
            }
            if let Some((_, l)) = CLASSES.iter().find(|(c, _)| bpf[*c as usize] == 1) {
                *totals.entry(l).or_insert(0) += 1;
            }
            frames += 1;
        }
    }
    eprintln!(
        "differential (second config): {frames} frames, per class {totals:?}, {} disagreements",
        disagreements.len()
    );
    for d in disagreements.iter().take(40) {
        eprintln!("DISAGREE {d}");
    }
    assert!(frames > 40_000);
    assert_eq!(totals.get("frag"), None, "capture_frags is off");
    assert!(
        disagreements.is_empty(),
        "{} frames classified differently by BPF and Rust; first: {}",
        disagreements.len(),
        disagreements[0]
    );
}

/// The fuzz seeds (one frame of every tunnel kind and header chain the rules know) and the
/// first frames of every corpus file, each cut at every length and mutated at random (fixed
/// seed): both sides must count the same truncation or parse error at the same layer.
#[test]
fn bpf_and_rust_agree_on_cut_and_mutated_frames() {
    if !xdprec_testkit::require_privileges("differential") {
        return;
    }
    let mut bases: Vec<Vec<u8>> = Vec::new();
    let seeds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("classify/fuzz/corpus/classify");
    let mut names: Vec<_> = std::fs::read_dir(&seeds)
        .unwrap_or_else(|e| panic!("{}: {e}", seeds.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        let b = std::fs::read(&p).unwrap();
        // The first byte selects the fuzz target's configuration.
        if b.len() > 1 {
            bases.push(b[1..].to_vec());
        }
    }
    assert!(
        bases.len() >= 10,
        "fuzz seeds missing in {}",
        seeds.display()
    );
    if let Some(dir) = xdprec_testkit::corpus_dir() {
        let mut eth = Vec::new();
        for path in xdprec_testkit::corpus_captures(&dir) {
            let mut r = PcapReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
            let mut taken = 0;
            while let Some(p) = r.next_packet() {
                let p = p.unwrap_or_else(|e| panic!("{e}"));
                if taken < 3 && to_ethernet(p.link, p.data, &mut eth) {
                    bases.push(eth[..eth.len().min(600)].to_vec());
                    taken += 1;
                }
            }
        }
    }
    let config = ProbeConfig::default();
    let mut probe = Probe::load(&config).expect("loading the probe");
    let mut rust = Classifier::new(config);
    let mut bpf_prev = probe.counters().expect("reading counters");
    let mut disagreements = Vec::new();
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    let mut frames = 0u64;
    let mut seed = 0x243f_6a88_85a3_08d3u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut frame = Vec::with_capacity(1024);
    for base in &bases {
        // From 14 bytes: BPF_PROG_RUN refuses frames shorter than an Ethernet header (EINVAL on
        // this kernel even behind metadata); the Rust unit tests cover those (trunc_eth).
        let mut variants: Vec<Vec<u8>> = (14..=base.len().min(200))
            .map(|n| base[..n].to_vec())
            .collect();
        for _ in 0..40 {
            frame.clear();
            frame.extend_from_slice(base);
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % frame.len().max(1);
                if let Some(b) = frame.get_mut(at) {
                    *b = next() as u8;
                }
            }
            variants.push(frame.clone());
        }
        for v in &variants {
            probe.clear_tcp_flows().expect("clearing flows");
            rust.clear_tcp_flows();
            let (bpf, msg) = compare(&mut probe, &mut rust, &mut bpf_prev, v);
            if let Some(m) = msg {
                disagreements.push(m);
            }
            for &c in COMPARED {
                let l = c.label();
                if bpf[c as usize] != 0
                    && (l.starts_with("trunc") || l.contains("error") || l.contains("limit"))
                {
                    *errors.entry(l).or_insert(0) += 1;
                }
            }
            frames += 1;
        }
    }
    eprintln!(
        "differential (cut and mutated): {} base frames, {frames} frames, BPF error counters {errors:?}, {} disagreements",
        bases.len(),
        disagreements.len()
    );
    for d in disagreements.iter().take(40) {
        eprintln!("DISAGREE {d}");
    }
    // Every truncation counter the corpus and seeds can reach was reached.
    for l in [
        "trunc_eth",
        "trunc_vlan",
        "trunc_ipv4",
        "trunc_ipv6",
        "trunc_ipv6_ext",
        "trunc_udp",
        "trunc_tcp",
        "trunc_tunnel",
        "parse_error",
    ] {
        assert!(errors.contains_key(l), "{l} never counted: {errors:?}");
    }
    assert!(
        disagreements.is_empty(),
        "{} frames classified differently by BPF and Rust; first: {}",
        disagreements.len(),
        disagreements[0]
    );
}
