//! pcap import of every corpus capture: what is stored is exactly what the classifier says
//! the probe would steer (per class, byte for byte, with the capture timestamps), plus the
//! synthetic reassembled datagrams (flagged).

use std::path::Path;

use xdprec_capture::config::{CaptureConfig, FlagValues};
use xdprec_capture::import::import_pcap;
use xdprec_capture::sink::SegmentSink;
use xdprec_capture::stats::Field;
use xdprec_classify::{Class, Classifier};
use xdprec_pcapio::{to_ethernet, PcapReader};
use xdprec_segment::{list_segments, SegmentReader, RECORD_FLAG_REASSEMBLED};

type Stored = Vec<(Class, u64, Vec<u8>)>;
type Synthetic = Vec<(Class, Vec<u8>)>;

/// (class, ts_ns, frame) of every stored record, in write order; reassembled records apart.
fn read_store(store: &Path) -> (Stored, Synthetic) {
    let mut segs = list_segments(store).expect("list segments");
    segs.sort_by(|a, b| {
        (&a.recorder, &a.iface, a.queue, a.seq).cmp(&(&b.recorder, &b.iface, b.queue, b.seq))
    });
    let mut recs = Vec::new();
    let mut synth = Vec::new();
    for s in &segs {
        assert!(s.sealed, "{} left unsealed", s.path.display());
        let r = SegmentReader::open(&s.path).expect("open segment");
        for rec in r.records() {
            if rec.flags & RECORD_FLAG_REASSEMBLED != 0 {
                synth.push((rec.class, rec.frame.to_vec()));
            } else {
                recs.push((rec.class, rec.ts_ns, rec.frame.to_vec()));
            }
        }
    }
    (recs, synth)
}

/// What the probe would steer: (class, ts, Ethernet frame), in file order.
fn expected(path: &Path, cfg: &CaptureConfig) -> Option<Vec<(Class, u64, Vec<u8>)>> {
    let mut rd = PcapReader::open(path).ok()?;
    let mut c = Classifier::new(cfg.probe_config());
    let mut out = Vec::new();
    let mut eth = Vec::new();
    while let Some(p) = rd.next_packet() {
        let Ok(p) = p else { break };
        if !to_ethernet(p.link, p.data, &mut eth) {
            continue;
        }
        let k = c.classify(&eth).class;
        if k.is_captured() {
            out.push((k, p.ts_ns, eth.clone()));
        }
    }
    Some(out)
}

fn config(store: &Path) -> CaptureConfig {
    CaptureConfig::from_sources(
        &FlagValues {
            store: Some(store.to_path_buf()),
            recorder: Some("import-test".into()),
            ..Default::default()
        },
        None,
    )
    .expect("config")
}

#[test]
fn every_corpus_capture_imports_exactly_the_steered_frames() {
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let files = xdprec_testkit::corpus_captures(&dir);
    assert!(files.len() > 50, "corpus has {} captures", files.len());
    let tmp = std::env::temp_dir().join(format!("xdprec-import-{}", std::process::id()));
    let mut imported = 0;
    let mut total_records = 0usize;
    let mut total_synth = 0u64;
    for (i, f) in files.iter().enumerate() {
        let store = tmp.join(i.to_string());
        let cfg = config(&store);
        let Some(want) = expected(f, &cfg) else {
            eprintln!("skipping {} (not a pcap/pcapng file)", f.display());
            continue;
        };
        let sink = SegmentSink::open(&cfg, "pcap", 0).expect("writer");
        let (summary, sink) = match import_pcap(f, sink, cfg.probe_config(), cfg.reasm) {
            Ok(x) => x,
            Err(e) => panic!("{}: {e}", f.display()),
        };
        drop(sink);
        let (got, synth) = read_store(&store);
        let name = f.display();
        for class in [Class::Sip, Class::Rtp, Class::Rtcp, Class::Frag] {
            let w = want.iter().filter(|r| r.0 == class).count();
            let g = got.iter().filter(|r| r.0 == class).count();
            assert_eq!(g, w, "{name}: {} records of class {}", g, class.name());
        }
        assert_eq!(got.len(), want.len(), "{name}: record count");
        for (k, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert_eq!(g.0, w.0, "{name}: record {k} class");
            assert_eq!(g.1, w.1, "{name}: record {k} timestamp");
            assert!(g.2 == w.2, "{name}: record {k} bytes differ");
        }
        assert_eq!(
            summary.get(Field::Written) as usize,
            got.len() + synth.len(),
            "{name}"
        );
        assert_eq!(
            summary.get(Field::Reassembled),
            synth.len() as u64 + summary.get(Field::ReasmNotCaptured),
            "{name}"
        );
        for (class, frame) in &synth {
            assert!(
                matches!(class, Class::Sip | Class::Rtp | Class::Rtcp),
                "{name}"
            );
            assert!(
                frame.len() > 1500,
                "{name}: a reassembled datagram is larger than a fragment"
            );
        }
        total_synth += synth.len() as u64;
        total_records += got.len();
        imported += 1;
        let _ = std::fs::remove_dir_all(&store);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("{imported} captures imported, {total_records} records, {total_synth} reassembled datagrams");
    assert!(imported > 50);
    assert!(total_records > 10_000);
}

/// Frames of one file import in the same way whatever the link type: the SLL corpus files
/// store Ethernet frames with the synthetic header.
#[test]
fn non_ethernet_links_are_stored_as_ethernet() {
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let f = dir.join("nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap");
    if !f.exists() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("xdprec-import-sll-{}", std::process::id()));
    let cfg = config(&tmp);
    let sink = SegmentSink::open(&cfg, "pcap", 0).expect("writer");
    let (summary, sink) = import_pcap(&f, sink, cfg.probe_config(), cfg.reasm).expect("import");
    drop(sink);
    let (got, _) = read_store(&tmp);
    assert_eq!(summary.get(Field::ClassRtcp), 5);
    assert_eq!(got.len(), 5);
    for (class, _, frame) in &got {
        assert_eq!(*class, Class::Rtcp);
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

fn csum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in h.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A UDP datagram 198.51.100.1:5060 -> 198.51.100.2:5060 (or IPv6 2001:db8::1/2) holding a
/// SIP INVITE of about `body` bytes.
fn sip_datagram(body: usize) -> Vec<u8> {
    let mut msg =
        b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: frag-test\r\nContent-Length: ".to_vec();
    msg.extend_from_slice(format!("{body}\r\n\r\n").as_bytes());
    msg.extend((0..body).map(|i| b'a' + (i % 26) as u8));
    let mut u = Vec::new();
    u.extend_from_slice(&5060u16.to_be_bytes());
    u.extend_from_slice(&5060u16.to_be_bytes());
    u.extend_from_slice(&((msg.len() + 8) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(&msg);
    u
}

fn v4_frags(udp: &[u8], id: u16, chunk: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < udp.len() {
        let end = (off + chunk).min(udp.len());
        let more = end < udp.len();
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6..8]
            .copy_from_slice(&(((off / 8) as u16) | if more { 0x2000 } else { 0 }).to_be_bytes());
        h[8] = 64;
        h[9] = 17;
        h[12..16].copy_from_slice(&[198, 51, 100, 1]);
        h[16..20].copy_from_slice(&[198, 51, 100, 2]);
        let c = csum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(&udp[off..end]);
        out.push(f);
        off = end;
    }
    out
}

fn v6_frags(udp: &[u8], id: u32, chunk: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < udp.len() {
        let end = (off + chunk).min(udp.len());
        let more = end < udp.len();
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        let mut h = [0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&((8 + end - off) as u16).to_be_bytes());
        h[6] = 44;
        h[7] = 64;
        h[8..10].copy_from_slice(&[0x20, 0x01]);
        h[10..12].copy_from_slice(&[0x0d, 0xb8]);
        h[23] = 1;
        h[24..26].copy_from_slice(&[0x20, 0x01]);
        h[26..28].copy_from_slice(&[0x0d, 0xb8]);
        h[39] = 2;
        f.extend_from_slice(&h);
        let fo = (off as u16) | u16::from(more);
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&fo.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&udp[off..end]);
        out.push(f);
        off = end;
    }
    out
}

/// Fragmented SIP (IPv4 out of order, IPv6 in order) imports as the fragments plus one
/// reassembled SIP record per datagram holding the whole UDP datagram.
#[test]
fn fragmented_sip_is_reassembled_into_a_flagged_record() {
    let tmp = std::env::temp_dir().join(format!("xdprec-import-frag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let pcap = tmp.join("frags.pcap");
    let d4 = sip_datagram(4000);
    let d6 = sip_datagram(2500);
    let mut f4 = v4_frags(&d4, 0x1234, 1480);
    f4.swap(0, 2);
    let f6 = v6_frags(&d6, 0xabcdef, 1232);
    let mut w =
        xdprec_pcapio::PcapWriter::new(std::fs::File::create(&pcap).unwrap(), 65535).unwrap();
    let mut ts = 1_700_000_000_000_000_000u64;
    for f in f4.iter().chain(f6.iter()) {
        w.write_packet(ts, f.len() as u32, f).unwrap();
        ts += 1000;
    }
    w.finish().unwrap();
    let store = tmp.join("store");
    let cfg = config(&store);
    let sink = SegmentSink::open(&cfg, "pcap", 0).unwrap();
    let (summary, sink) = import_pcap(&pcap, sink, cfg.probe_config(), cfg.reasm).unwrap();
    drop(sink);
    let (got, synth) = read_store(&store);
    assert_eq!(got.len(), f4.len() + f6.len());
    assert!(got.iter().all(|r| r.0 == Class::Frag));
    assert_eq!(summary.get(Field::Reassembled), 2);
    assert_eq!(synth.len(), 2);
    assert_eq!(synth[0].0, Class::Sip);
    assert_eq!(&synth[0].1[14 + 20..], &d4[..]);
    assert_eq!(csum(&synth[0].1[14..34]), 0, "IPv4 header checksum");
    assert_eq!(synth[1].0, Class::Sip);
    assert_eq!(&synth[1].1[12..14], &[0x86, 0xdd]);
    assert_eq!(&synth[1].1[14 + 40..], &d6[..]);
    let _ = std::fs::remove_dir_all(&tmp);
}
