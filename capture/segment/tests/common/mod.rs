//! Shared by the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use xdprec_segment::{
    list_segments, Class, RecordMeta, RtpMeta, SegmentReader, StreamKey, WriterConfig,
};

static N: AtomicU32 = AtomicU32::new(0);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("xseg-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn cfg(dir: &Path, recorder: &str, capacity: u64) -> WriterConfig {
    let mut c = WriterConfig::new(dir, recorder, "eth0", 0);
    c.segment_bytes_max = capacity;
    c
}

pub fn key(n: u32, ssrc: Option<u32>) -> StreamKey {
    let src: IpAddr = if n % 3 == 2 {
        format!("2001:db8::{:x}", n + 1).parse().unwrap()
    } else {
        format!("198.51.100.{}", n % 250 + 1).parse().unwrap()
    };
    StreamKey {
        proto: if n % 5 == 4 { 6 } else { 17 },
        src,
        dst: "203.0.113.7".parse().unwrap(),
        src_port: 10000 + n as u16,
        dst_port: 5060,
        ssrc,
    }
}

/// A frame whose bytes say which record it is: 8 bytes of index, then a pattern.
pub fn frame(i: u64) -> Vec<u8> {
    let len = 8 + (i * 37 % 300) as usize;
    let mut f = vec![0u8; len];
    f[..8].copy_from_slice(&i.to_le_bytes());
    for (j, b) in f[8..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(j as u8);
    }
    f
}

/// The index a frame encodes, if the frame is exactly `frame(i)`.
pub fn frame_index(f: &[u8]) -> Option<u64> {
    let i = u64::from_le_bytes(f.get(..8)?.try_into().ok()?);
    (frame(i) == f).then_some(i)
}

pub const CLASSES: [Class; 6] = [
    Class::Sip,
    Class::Rtp,
    Class::Rtcp,
    Class::Frag,
    Class::Other,
    Class::Unknown(9),
];

/// Deterministic metadata of record `i` (class, key, RTP); keys are owned by the caller.
pub fn meta<'a>(i: u64, keys: &'a [StreamKey]) -> RecordMeta<'a> {
    let class = CLASSES[(i % 6) as usize];
    let k = (i % 11) as usize;
    RecordMeta {
        ts_ns: 1_000_000_000 + i * 1000,
        wire_len: frame(i).len() as u32 + (i % 4) as u32,
        class,
        flags: if i.is_multiple_of(13) {
            xdprec_segment::RECORD_FLAG_REASSEMBLED
        } else {
            0
        },
        key: if k < keys.len() { Some(&keys[k]) } else { None },
        rtp: (class == Class::Rtp).then_some(RtpMeta {
            ssrc: 7,
            seq: i as u16,
            timestamp: (i * 160) as u32,
            payload_type: 0,
        }),
    }
}

/// All packet records of the store's segments in segment order: (seq, frame index).
pub fn read_store(store: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for s in list_segments(store).unwrap() {
        let r = SegmentReader::open(&s.path).unwrap();
        for rec in r.records() {
            out.push((s.seq, frame_index(rec.frame).expect("frame bytes intact")));
        }
    }
    out
}

/// Files (names) in the store's segments directory.
pub fn files(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("segments"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
