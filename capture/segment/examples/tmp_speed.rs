use std::time::Instant;
use xdprec_segment::*;
fn main() {
    let dir = std::env::temp_dir().join(format!("xseg-speed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = WriterConfig::new(&dir, "speed", "eth0", 0);
    c.segment_bytes_max = 256 << 20;
    let mut w = SegmentWriter::open(c).unwrap();
    let keys: Vec<StreamKey> = (0..2000u32).map(|n| StreamKey { proto: 17, src: std::net::Ipv4Addr::new(198,51,100,(n%250) as u8).into(), dst: std::net::Ipv4Addr::new(203,0,113,1).into(), src_port: 10000 + (n/250) as u16 * 2, dst_port: 20000, ssrc: Some(n) }).collect();
    let f = [0x55u8; 214];
    let n = 3_000_000u64;
    let t = Instant::now();
    for i in 0..n {
        let k = &keys[(i % 2000) as usize];
        let m = RecordMeta { ts_ns: i, wire_len: 214, class: Class::Rtp, flags: 0, key: Some(k), rtp: Some(RtpMeta { ssrc: k.ssrc.unwrap(), seq: (i / 2000) as u16, timestamp: 0, payload_type: 0 }) };
        w.append(&m, &f, 1 + i).unwrap();
    }
    let el = t.elapsed();
    println!("append: {:.1} ns/record ({} records, {:?})", el.as_nanos() as f64 / n as f64, n, el);
    let t = Instant::now();
    w.seal().unwrap();
    println!("seal (last segment inline + wait for the sealer): {:?}; stats {:?}", t.elapsed(), w.stats());
    drop(w);
    let t = Instant::now();
    let mut cnt = 0;
    for s in list_segments(&dir).unwrap() {
        let r = SegmentReader::open(&s.path).unwrap();
        for st in r.streams() { cnt += r.stream_records(st.id).count(); }
    }
    println!("read all streams back: {:?} for {cnt}", t.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
