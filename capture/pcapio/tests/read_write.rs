//! Reader and writer tests: the public corpus, hand-built pcap/pcapng files in both byte
//! orders and timestamp units, and garbage.

use std::path::{Path, PathBuf};
use xdprec_pcapio::{
    network_offset, to_ethernet, LinkType, PcapError, PcapReader, PcapWriter, RECORD_BYTES_MAX,
};

/// A file in a directory of its own (tests run in parallel), removed with it on drop.
struct TmpFile {
    dir: PathBuf,
    path: PathBuf,
}

impl std::ops::Deref for TmpFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TmpFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tmp(name: &str, bytes: &[u8]) -> TmpFile {
    let dir = std::env::temp_dir().join(format!("xdprec-pcapio-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    TmpFile { dir, path }
}

/// (ts_ns, wire_len, link, data)
type Owned = (u64, u32, LinkType, Vec<u8>);

/// Reads every packet, or the first error.
fn read_all(path: &Path) -> Result<Vec<Owned>, PcapError> {
    let mut r = PcapReader::open(path)?;
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p?;
        v.push((p.ts_ns, p.wire_len, p.link, p.data.to_vec()));
    }
    Ok(v)
}

/// `| `file` | ... | packets | ...` rows of MANIFEST.md: (file, packets).
fn manifest(dir: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.md")).unwrap();
    let mut rows = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 7 || !cols[1].starts_with('`') {
            continue;
        }
        let file = cols[1].trim_matches('`').to_string();
        if let Ok(n) = cols[5].parse::<u64>() {
            rows.push((file, n));
        }
    }
    rows
}

#[test]
fn corpus_packet_counts_match_manifest() {
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let rows = manifest(&dir);
    assert!(rows.len() >= 60, "manifest rows: {}", rows.len());
    let captures = xdprec_testkit::corpus_captures(&dir);
    assert_eq!(
        captures.len(),
        rows.len(),
        "every capture has a manifest row"
    );
    let mut total = 0u64;
    for (file, want) in &rows {
        let path = dir.join(file);
        let mut r = PcapReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut n = 0u64;
        while let Some(p) = r.next_packet() {
            let p = p.unwrap_or_else(|e| panic!("{e}"));
            assert!(p.data.len() <= RECORD_BYTES_MAX);
            assert!(
                !matches!(p.link, LinkType::Unknown(_)),
                "{file}: {:?}",
                p.link
            );
            n += 1;
        }
        assert_eq!(n, *want, "{file}");
        total += n;
    }
    eprintln!("{} corpus files, {total} packets", rows.len());
}

#[test]
fn corpus_non_ethernet_frames_become_ethernet() {
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let mut out = Vec::new();
    let mut converted = 0;
    for file in [
        "rtpproxy/DLT_NULL.a.rtp",
        "heplify/sip_ipv4_tcp_retrans.pcap",
        "zeek/sip-long-request-response-paths.pcap",
        "hep-wireshark/hep3_compressed.pcap.pcapng",
    ] {
        let mut r = PcapReader::open(dir.join(file)).unwrap();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            assert_ne!(p.link, LinkType::Ethernet, "{file}");
            if let Some((at, et)) = network_offset(p.link, p.data) {
                assert!(to_ethernet(p.link, p.data, &mut out));
                assert_eq!(&out[14..], &p.data[at..]);
                assert_eq!(u16::from_be_bytes([out[12], out[13]]), et);
                converted += 1;
            }
        }
    }
    assert!(converted > 600, "converted {converted}");
}

fn pcap_file(big: bool, nanos: bool, link: u32, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let w32 = |v: &mut Vec<u8>, x: u32| {
        v.extend_from_slice(&if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    let w16 = |v: &mut Vec<u8>, x: u16| {
        v.extend_from_slice(&if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    let mut v = Vec::new();
    w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w16(&mut v, 2);
    w16(&mut v, 4);
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, 65535);
    w32(&mut v, link);
    for (sec, frac, data) in recs {
        w32(&mut v, *sec);
        w32(&mut v, *frac);
        w32(&mut v, data.len() as u32);
        w32(&mut v, data.len() as u32 + 4);
        v.extend_from_slice(data);
    }
    v
}

#[test]
fn pcap_both_byte_orders_and_units() {
    for big in [false, true] {
        for nanos in [false, true] {
            let f = pcap_file(big, nanos, 1, &[(10, 5, b"abc"), (11, 999, b"")]);
            let p = tmp(&format!("o{big}{nanos}.pcap"), &f);
            let v = read_all(&p).unwrap();
            let unit = if nanos { 1 } else { 1000 };
            assert_eq!(v.len(), 2);
            assert_eq!(v[0].0, 10_000_000_000 + 5 * unit);
            assert_eq!(v[1].0, 11_000_000_000 + 999 * unit);
            assert_eq!(v[0].1, 7);
            assert_eq!(v[0].2, LinkType::Ethernet);
            assert_eq!(v[0].3, b"abc");
        }
    }
}

struct Ng {
    v: Vec<u8>,
    big: bool,
}

impl Ng {
    fn u32(&self, x: u32) -> [u8; 4] {
        if self.big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        }
    }
    fn u16(&self, x: u16) -> [u8; 2] {
        if self.big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        }
    }
    fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() & 3 != 0 {
            body.push(0);
        }
        let total = body.len() as u32 + 12;
        let (a, b) = (self.u32(btype), self.u32(total));
        self.v.extend_from_slice(&a);
        self.v.extend_from_slice(&b);
        self.v.extend_from_slice(&body);
        self.v.extend_from_slice(&b);
    }
    fn shb(&mut self) {
        let mut body = self.u32(0x1a2b_3c4d).to_vec();
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0a0d_0d0a, &body);
    }
    fn idb(&mut self, link: u16, tsresol: Option<u8>) {
        let mut body = self.u16(link).to_vec();
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&self.u32(65535));
        if let Some(r) = tsresol {
            body.extend_from_slice(&self.u16(9));
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
            body.extend_from_slice(&[0; 4]); // opt_endofopt
        }
        self.block(1, &body);
    }
    fn epb(&mut self, iface: u32, ts: u64, data: &[u8]) {
        let mut body = self.u32(iface).to_vec();
        body.extend_from_slice(&self.u32((ts >> 32) as u32));
        body.extend_from_slice(&self.u32(ts as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(data);
        self.block(6, &body);
    }
}

#[test]
fn pcapng_interfaces_link_types_and_tsresol() {
    for big in [false, true] {
        let mut ng = Ng { v: Vec::new(), big };
        ng.shb();
        ng.idb(1, None); // microseconds
        ng.idb(113, Some(9)); // nanoseconds
        ng.idb(101, Some(0x80 | 10)); // 1/1024 s
        ng.block(5, &[1, 2, 3, 4, 5, 6, 7, 8]); // interface statistics: skipped
        ng.epb(0, 1_500_000, b"eth");
        ng.epb(1, 1_500_000, b"sll!x");
        ng.epb(2, 2048, b"raw");
        let p = tmp(&format!("ng{big}.pcapng"), &ng.v);
        let v = read_all(&p).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            (v[0].0, v[0].2, v[0].3.as_slice()),
            (1_500_000_000, LinkType::Ethernet, &b"eth"[..])
        );
        assert_eq!(
            (v[1].0, v[1].2, v[1].3.as_slice()),
            (1_500_000, LinkType::LinuxSll, &b"sll!x"[..])
        );
        assert_eq!((v[2].0, v[2].2), (2_000_000_000, LinkType::Raw));
    }
}

#[test]
fn pcapng_unknown_interface_is_an_error() {
    let mut ng = Ng {
        v: Vec::new(),
        big: false,
    };
    ng.shb();
    ng.idb(1, None);
    ng.epb(3, 0, b"x");
    let p = tmp("badif.pcapng", &ng.v);
    let e = read_all(&p).unwrap_err();
    assert!(
        matches!(e, PcapError::UnknownInterface { interface: 3, .. }),
        "{e}"
    );
}

#[test]
fn writer_round_trip() {
    let mut w = PcapWriter::new(Vec::new(), 8).unwrap();
    w.write_packet(1_700_000_000_123_456_789, 100, b"0123456789")
        .unwrap();
    w.write_packet(5, 3, b"abc").unwrap();
    let bytes = w.finish().unwrap();
    let p = tmp("rt.pcap", &bytes);
    let v = read_all(&p).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[0],
        (
            1_700_000_000_123_456_789,
            100,
            LinkType::Ethernet,
            b"01234567".to_vec()
        )
    );
    assert_eq!(v[1], (5, 3, LinkType::Ethernet, b"abc".to_vec()));
}

#[test]
fn absurd_record_length_names_file_and_record() {
    let mut f = pcap_file(false, false, 1, &[(1, 0, b"ok")]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&(RECORD_BYTES_MAX as u32 + 1).to_le_bytes());
    f.extend_from_slice(&[0; 4]);
    let p = tmp("huge.pcap", &f);
    let e = read_all(&p).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, PcapError::RecordTooLong { record: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("huge.pcap") && msg.contains("record 2"),
        "{msg}"
    );
}

#[test]
fn garbage_and_truncation_give_errors() {
    let p = tmp("text.pcap", b"this is not a capture file at all, really");
    assert!(matches!(
        PcapReader::open(&p),
        Err(PcapError::NotACapture { .. })
    ));
    let p = tmp("empty.pcap", b"");
    assert!(matches!(
        PcapReader::open(&p),
        Err(PcapError::NotACapture { .. })
    ));
    assert!(matches!(
        PcapReader::open("/nonexistent/xdprec.pcap"),
        Err(PcapError::Open { .. })
    ));
    let f = pcap_file(false, true, 1, &[(1, 0, b"abcdef")]);
    for cut in 25..f.len() {
        let p = tmp("cut.pcap", &f[..cut]);
        let e = read_all(&p).unwrap_err();
        assert!(
            matches!(e, PcapError::Truncated { record: 1, .. }),
            "{cut}: {e}"
        );
    }
    let mut ng = Ng {
        v: Vec::new(),
        big: false,
    };
    ng.shb();
    ng.idb(1, None);
    ng.epb(0, 0, b"abcdefgh");
    let full = ng.v.clone();
    for cut in 0..full.len() {
        let p = tmp("cut.pcapng", &full[..cut]);
        // Must not panic; any cut short of the whole file is an error or yields no packet.
        if let Ok(v) = read_all(&p) {
            assert!(v.is_empty(), "cut {cut}");
        }
    }
}

#[test]
fn mutated_files_never_panic() {
    let mut ng = Ng {
        v: Vec::new(),
        big: false,
    };
    ng.shb();
    ng.idb(1, Some(9));
    ng.idb(113, None);
    ng.epb(0, 7, b"abcdefgh");
    ng.epb(1, 9, b"ijkl");
    let bases = [
        ng.v,
        pcap_file(true, false, 0, &[(1, 2, b"xyz"), (3, 4, b"0123")]),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..2000 {
        let mut f = bases[i % 2].clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % f.len();
            f[at] = next() as u8;
        }
        let p = tmp("mut.bin", &f);
        if let Ok(mut r) = PcapReader::open(&p) {
            let mut n = 0;
            while let Some(x) = r.next_packet() {
                if x.is_err() {
                    break;
                }
                n += 1;
                assert!(n < 100);
            }
        }
    }
}

#[test]
fn corpus_netmon_and_pcapng_timestamps() {
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    // Network Monitor 2.x: start time 2005-07-17 15:39:20.502 UTC (capinfos), first delta 0.
    let mut r = PcapReader::open(dir.join("sample-captures/c07-sip-r2.cap")).unwrap();
    let p = r.next_packet().unwrap().unwrap();
    assert_eq!(p.ts_ns, 1_121_614_760_502_000_000);
    assert_eq!(
        (p.link, p.data.len(), p.wire_len),
        (LinkType::Ethernet, 92, 92)
    );
    let mut last = 0;
    while let Some(p) = r.next_packet() {
        last = p.unwrap().ts_ns;
    }
    // capinfos: duration 11.952 s.
    assert_eq!(last - 1_121_614_760_502_000_000, 11_952_000_000);
    // pcapng with the default microsecond resolution: tshark's epoch time of frame 1.
    let mut r = PcapReader::open(dir.join("nDPI/gre.pcapng")).unwrap();
    let p = r.next_packet().unwrap().unwrap();
    let tshark_us = tshark_first_epoch_us(&dir.join("nDPI/gre.pcapng"));
    if let Some(us) = tshark_us {
        assert_eq!(p.ts_ns / 1000, us);
    }
    assert_eq!(p.link, LinkType::Ethernet);
}

/// frame.time_epoch of frame 1 in microseconds, when tshark is installed.
fn tshark_first_epoch_us(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(path)
        .args(["-c", "1", "-T", "fields", "-e", "frame.time_epoch"])
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let (sec, frac) = s.trim().split_once('.')?;
    let frac = format!("{frac:0<6}");
    Some(sec.parse::<u64>().ok()? * 1_000_000 + frac[..6].parse::<u64>().ok()?)
}
