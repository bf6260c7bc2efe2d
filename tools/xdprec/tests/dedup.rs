//! Deduplication through `xdprec capture --pcap` (no privileges): a capture in which every
//! frame appears twice (the copy with another TTL, IPv4 checksum and MAC, as a routed mirror
//! port would show it) is stored once and the copies are counted; identical packets outside
//! the window are kept; `--dedup-window-ms 0` keeps everything.

mod common;

use std::path::Path;

use common::{import_with, number_after, store_records, tmpdir};
use xdprec_pcapio::PcapWriter;

fn csum(h: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in h.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet/IPv4/UDP/RTP frame 198.51.100.1:20000 -> 203.0.113.2:30000.
fn rtp(seq: u16, ttl: u8, mac: u8) -> Vec<u8> {
    let mut payload = vec![0x80, 0x00];
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    payload.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    payload.extend(std::iter::repeat_n(0xd5, 160));
    let mut f = vec![0x02, 0, 0, 0, 0, mac, 0x02, 0, 0, 0, 0, 0x10, 0x08, 0x00];
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&seq.wrapping_mul(7).to_be_bytes());
    ip[8] = ttl;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 51, 100, 1]);
    ip[16..20].copy_from_slice(&[203, 0, 113, 2]);
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&20000u16.to_be_bytes());
    f.extend_from_slice(&30000u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&payload);
    f
}

fn stored(store: &Path) -> Vec<Vec<u8>> {
    store_records(store).into_iter().map(|(_, f)| f).collect()
}

/// `xdprec capture --pcap` with `extra` flags: its stdout (the summary).
fn import(pcap: &Path, store: &Path, extra: &[&str]) -> String {
    import_with(pcap, store, "dedup", extra)
}

#[test]
fn every_frame_twice_is_stored_once_and_retransmissions_are_kept() {
    let dir = tmpdir("twice");
    let pcap = dir.join("twice.pcap");
    let n = 500u16;
    let t0 = 1_700_000_000_000_000_000u64;
    {
        let f = std::fs::File::create(&pcap).unwrap();
        let mut w = PcapWriter::new(std::io::BufWriter::new(f), 65535).unwrap();
        for i in 0..n {
            // 20 ms apart like G.711; the mirror copy 1 ms later, one hop further.
            let ts = t0 + u64::from(i) * 20_000_000;
            let a = rtp(i, 64, 1);
            let b = rtp(i, 63, 2);
            assert_ne!(a, b);
            w.write_packet(ts, a.len() as u32, &a).unwrap();
            w.write_packet(ts + 1_000_000, b.len() as u32, &b).unwrap();
        }
        // The first 10 packets again, byte for byte, 30 s later: outside the window, kept.
        for i in 0..10u16 {
            let ts = t0 + 30_000_000_000 + u64::from(i) * 20_000_000;
            let a = rtp(i, 64, 1);
            w.write_packet(ts, a.len() as u32, &a).unwrap();
        }
    }
    let store = dir.join("store");
    let text = import(&pcap, &store, &[]);
    let got = stored(&store);
    assert_eq!(got.len(), usize::from(n) + 10, "{text}");
    assert_eq!(
        number_after(&text, "duplicates dropped"),
        u64::from(n),
        "{text}"
    );
    // The first copy is the one stored.
    assert!(got.iter().all(|f| f[5] == 1), "a mirror copy was stored");

    let store0 = dir.join("store0");
    let text0 = import(&pcap, &store0, &["--dedup-window-ms", "0"]);
    assert_eq!(stored(&store0).len(), 2 * usize::from(n) + 10, "{text0}");
    assert_eq!(number_after(&text0, "duplicates dropped"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn copies_farther_apart_than_the_window_are_kept() {
    let dir = tmpdir("late");
    let pcap = dir.join("late.pcap");
    let t0 = 1_700_000_000_000_000_000u64;
    {
        let f = std::fs::File::create(&pcap).unwrap();
        let mut w = PcapWriter::new(std::io::BufWriter::new(f), 65535).unwrap();
        for i in 0..100u16 {
            let ts = t0 + u64::from(i) * 1_000_000_000;
            let a = rtp(i, 64, 1);
            w.write_packet(ts, a.len() as u32, &a).unwrap();
            // 300 ms later: beyond two 50 ms windows.
            w.write_packet(ts + 300_000_000, a.len() as u32, &a)
                .unwrap();
        }
    }
    let store = dir.join("store");
    let text = import(&pcap, &store, &["--dedup-window-ms", "50"]);
    assert_eq!(stored(&store).len(), 200, "{text}");
    // With a 1 s window the same file loses the copies.
    let store2 = dir.join("store2");
    let text2 = import(&pcap, &store2, &["--dedup-window-ms", "1000"]);
    assert_eq!(stored(&store2).len(), 100, "{text2}");
    assert_eq!(number_after(&text2, "duplicates dropped"), 100);
    let _ = std::fs::remove_dir_all(&dir);
}
