//! Indexing throughput on synthetic calls: `cargo run --release --example throughput [CALLS]`.
//! Each call: INVITE/200/ACK with SDP, two G.711 streams of 500 packets, BYE/200; calls overlap
//! (all media interleaved). Prints records per second through `Indexer::push` + commit.
use etherparse::PacketBuilder;
use std::time::Instant;
use xdprec_index::frame::Link;
use xdprec_index::{Config, FrameIn, Hint, Indexer};

fn udp(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16, p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(s, d, 64)
        .udp(sp, dp);
    b.write(&mut out, p).unwrap();
    out
}

fn main() {
    let calls: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let (a, b) = ([198, 51, 100, 1], [198, 51, 100, 2]);
    let mut frames: Vec<(i64, Vec<u8>)> = Vec::new();
    for c in 0..calls {
        let t0 = c as i64 * 50_000_000;
        let pa = 10_000 + (c % 20_000) as u16 * 2;
        let pb = 40_000 + (c % 10_000) as u16 * 2;
        let sdp = |ip: &str, port: u16| {
            format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
        };
        let msg = |start: &str, tag: &str, cseq: &str, body: &str| {
            format!("{start}\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK{c}{cseq}\r\nFrom: <sip:{c}@example.com>;tag=f{c}\r\nTo: <sip:2002@example.com>{tag}\r\nCall-ID: {c}@bench\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        };
        frames.push((
            t0,
            udp(
                a,
                5060,
                b,
                5060,
                msg(
                    "INVITE sip:2002@example.com SIP/2.0",
                    "",
                    "1 INVITE",
                    &sdp("198.51.100.1", pa),
                )
                .as_bytes(),
            ),
        ));
        frames.push((
            t0 + 1_000_000,
            udp(
                b,
                5060,
                a,
                5060,
                msg(
                    "SIP/2.0 200 OK",
                    ";tag=t",
                    "1 INVITE",
                    &sdp("198.51.100.2", pb),
                )
                .as_bytes(),
            ),
        ));
        for i in 0..500u32 {
            let ts = t0 + 2_000_000 + i as i64 * 20_000_000;
            for (s, sp, d, dp, ssrc) in [(a, pa, b, pb, c * 2), (b, pb, a, pa, c * 2 + 1)] {
                let mut r = vec![0x80, 0];
                r.extend_from_slice(&(i as u16).to_be_bytes());
                r.extend_from_slice(&(i * 160).to_be_bytes());
                r.extend_from_slice(&ssrc.to_be_bytes());
                r.extend_from_slice(&[0xff; 160]);
                frames.push((ts, udp(s, sp, d, dp, &r)));
            }
        }
        frames.push((
            t0 + 10_100_000_000,
            udp(
                a,
                5060,
                b,
                5060,
                msg("BYE sip:2002@example.com SIP/2.0", ";tag=t", "2 BYE", "").as_bytes(),
            ),
        ));
    }
    frames.sort_by_key(|f| f.0);
    let dir = std::env::temp_dir().join(format!("xdprec-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut ix = Indexer::open(&dir.join("i.sqlite"), Config::default()).unwrap();
    let rec = ix.recorder("bench", "bench").unwrap();
    let start = Instant::now();
    // One transaction per 100,000 records, like segments of that size.
    for (n, chunk) in frames.chunks(100_000).enumerate() {
        let key = format!("seg{n}");
        let mut ctx = ix.begin(rec, &key, &key).unwrap();
        for (i, (ts, f)) in chunk.iter().enumerate() {
            let fr = FrameIn {
                ts_ns: *ts,
                offset: i as u64,
                stream_id: -1,
                hint: Hint::Unknown,
                link: Link::Ethernet,
                data: f,
            };
            ix.push(&mut ctx, &fr).unwrap();
        }
        ix.commit(&ctx, chunk.len() as u64, chunk.len() as u64, true)
            .unwrap();
    }
    let el = start.elapsed().as_secs_f64();
    let n: i64 = ix
        .conn()
        .query_row(
            "SELECT count(*) FROM calls WHERE state='answered'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "{} records, {calls} calls ({n} answered) in {el:.2} s: {:.0} records/s",
        frames.len(),
        frames.len() as f64 / el
    );
    let _ = std::fs::remove_dir_all(&dir);
}
