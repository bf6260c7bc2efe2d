//! Call model and media correlation on synthetic traffic (documentation addresses only).

use etherparse::PacketBuilder;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use xdprec_index::frame::Link;
use xdprec_index::query::{list_calls, orphan_streams, CallOut, Filter};
use xdprec_index::{Config, FrameIn, Hint, Indexer, NatMatch};

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let s: SocketAddr = src.parse().unwrap();
    let d: SocketAddr = dst.parse().unwrap();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let b = match (s.ip(), d.ip()) {
        (IpAddr::V4(a), IpAddr::V4(c)) => b.ipv4(a.octets(), c.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(c)) => b.ipv6(a.octets(), c.octets(), 64),
        _ => panic!("mixed families"),
    };
    let b = b.udp(s.port(), d.port());
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn rtp(seq: u16, ts: u32, ssrc: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[allow(clippy::too_many_arguments)]
fn sip(
    start: &str,
    call_id: &str,
    from_tag: &str,
    to_tag: &str,
    cseq: &str,
    branch: &str,
    sdp: Option<&str>,
) -> Vec<u8> {
    let body = sdp.unwrap_or("");
    let to = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch={branch}\r\nFrom: <sip:1001@example.com>;tag={from_tag}\r\n\
         To: <sip:2002@example.com>{to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n{}Content-Length: {}\r\n\r\n{body}",
        if sdp.is_some() { "Content-Type: application/sdp\r\n" } else { "" },
        body.len()
    )
    .into_bytes()
}

fn sdp(ip: &str, port: u16) -> String {
    let fam = if ip.contains(':') { "IP6" } else { "IP4" };
    format!("v=0\r\no=- 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
}

struct Run {
    _t: Tmp,
    ix: Indexer,
    frames: Vec<(i64, Vec<u8>)>,
}

impl Run {
    fn new(tag: &str, cfg: Config) -> Run {
        let p = std::env::temp_dir().join(format!("xdprec-scen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        let ix = Indexer::open(&p.join("i.sqlite"), cfg).unwrap();
        Run {
            _t: Tmp(p),
            ix,
            frames: Vec::new(),
        }
    }
    fn add(&mut self, t_ms: i64, frame: Vec<u8>) {
        self.frames
            .push((1_700_000_000_000_000_000 + t_ms * 1_000_000, frame));
    }
    fn sip(&mut self, t_ms: i64, src: &str, dst: &str, msg: Vec<u8>) {
        self.add(t_ms, udp(src, dst, &msg));
    }
    /// `n` packets of 20 ms from `t_ms`, skipping sequence numbers in `lose`.
    fn media(&mut self, t_ms: i64, src: &str, dst: &str, ssrc: u32, n: u16, lose: &[u16]) {
        for i in 0..n {
            if !lose.contains(&i) {
                self.add(
                    t_ms + i as i64 * 20,
                    udp(src, dst, &rtp(i, i as u32 * 160, ssrc, 0, &[0xff; 160])),
                );
            }
        }
    }
    fn finish(mut self) -> (Vec<CallOut>, Run) {
        self.commit_as("r");
        (
            list_calls(
                self.ix.conn(),
                &Filter {
                    all: true,
                    ..Default::default()
                },
            )
            .unwrap(),
            self,
        )
    }
    /// Indexes the frames added so far as recorder `name`.
    fn commit_as(&mut self, name: &str) {
        let rec = self.ix.recorder(name, "s").unwrap();
        let mut ctx = self.ix.begin(rec, name, name).unwrap();
        let frames = std::mem::take(&mut self.frames);
        for (i, (ts, f)) in frames.iter().enumerate() {
            let fr = FrameIn {
                ts_ns: *ts,
                offset: i as u64,
                stream_id: -1,
                hint: Hint::Unknown,
                link: Link::Ethernet,
                data: f,
            };
            self.ix.push(&mut ctx, &fr).unwrap();
        }
        self.ix
            .commit(&ctx, frames.len() as u64, frames.len() as u64, true)
            .unwrap();
    }
}

const A: &str = "198.51.100.1:5060";
const B: &str = "198.51.100.2:5060";

#[test]
fn auth_fork_late_offer_reinvite_bye() {
    let mut r = Run::new("full", Config::default());
    let c = "call-1@198.51.100.1";
    r.sip(
        0,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            c,
            "f1",
            "",
            "1 INVITE",
            "z9hG4bK1",
            None,
        ),
    );
    r.sip(
        10,
        B,
        A,
        sip(
            "SIP/2.0 407 Proxy Authentication Required",
            c,
            "f1",
            "x",
            "1 INVITE",
            "z9hG4bK1",
            None,
        ),
    );
    r.sip(
        20,
        A,
        B,
        sip(
            "ACK sip:2002@example.com SIP/2.0",
            c,
            "f1",
            "x",
            "1 ACK",
            "z9hG4bK1",
            None,
        ),
    );
    r.sip(
        30,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            c,
            "f1",
            "",
            "2 INVITE",
            "z9hG4bK2",
            None,
        ),
    );
    // Retransmission of the INVITE: not counted twice.
    r.sip(
        530,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            c,
            "f1",
            "",
            "2 INVITE",
            "z9hG4bK2",
            None,
        ),
    );
    r.sip(
        600,
        B,
        A,
        sip(
            "SIP/2.0 180 Ringing",
            c,
            "f1",
            "b1",
            "2 INVITE",
            "z9hG4bK2",
            None,
        ),
    );
    r.sip(
        610,
        B,
        A,
        sip(
            "SIP/2.0 180 Ringing",
            c,
            "f1",
            "b2",
            "2 INVITE",
            "z9hG4bK2",
            None,
        ),
    );
    // Late offer: SDP in the 200 OK, answer in the ACK.
    r.sip(
        2000,
        B,
        A,
        sip(
            "SIP/2.0 200 OK",
            c,
            "f1",
            "b1",
            "2 INVITE",
            "z9hG4bK2",
            Some(&sdp("198.51.100.2", 4000)),
        ),
    );
    r.sip(
        2010,
        A,
        B,
        sip(
            "ACK sip:2002@example.com SIP/2.0",
            c,
            "f1",
            "b1",
            "2 ACK",
            "z9hG4bK3",
            Some(&sdp("198.51.100.1", 5000)),
        ),
    );
    r.media(
        2020,
        "198.51.100.1:5000",
        "198.51.100.2:4000",
        0x1111,
        100,
        &[10, 11],
    );
    r.media(
        2030,
        "198.51.100.2:4000",
        "198.51.100.1:5000",
        0x2222,
        100,
        &[],
    );
    // re-INVITE moves B's media to port 4002.
    r.sip(
        5000,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            c,
            "f1",
            "b1",
            "3 INVITE",
            "z9hG4bK4",
            Some(&sdp("198.51.100.1", 5000)),
        ),
    );
    r.sip(
        5010,
        B,
        A,
        sip(
            "SIP/2.0 200 OK",
            c,
            "f1",
            "b1",
            "3 INVITE",
            "z9hG4bK4",
            Some(&sdp("198.51.100.2", 4002)),
        ),
    );
    r.media(
        5100,
        "198.51.100.1:5000",
        "198.51.100.2:4002",
        0x3333,
        50,
        &[],
    );
    r.sip(
        8000,
        A,
        B,
        sip(
            "BYE sip:2002@example.com SIP/2.0",
            c,
            "f1",
            "b1",
            "4 BYE",
            "z9hG4bK5",
            None,
        ),
    );
    r.sip(
        8010,
        B,
        A,
        sip("SIP/2.0 200 OK", c, "f1", "b1", "4 BYE", "z9hG4bK5", None),
    );
    let (calls, _r) = r.finish();
    assert_eq!(calls.len(), 1);
    let k = &calls[0];
    assert_eq!(k.state, "answered");
    assert_eq!(
        k.sip_messages, 12,
        "the retransmitted INVITE is not a new message"
    );
    assert_eq!(k.start.as_deref(), Some("2023-11-14T22:13:20.000000000Z"));
    assert_eq!(k.answer.as_deref(), Some("2023-11-14T22:13:22.000000000Z"));
    assert_eq!(k.end.as_deref(), Some("2023-11-14T22:13:28.000000000Z"));
    assert_eq!(k.from_user, "1001");
    assert_eq!(k.streams.len(), 3);
    let s1 = k.streams.iter().find(|s| s.ssrc == 0x1111).unwrap();
    assert_eq!((s1.packets, s1.lost), (98, 2));
    assert_eq!(s1.codec.as_deref(), Some("PCMU"));
    assert!(
        s1.mos.unwrap()
            < k.streams
                .iter()
                .find(|s| s.ssrc == 0x2222)
                .unwrap()
                .mos
                .unwrap()
    );
    assert!(k
        .streams
        .iter()
        .any(|s| s.ssrc == 0x3333 && s.dst == "198.51.100.2:4002"));
}

#[test]
fn cancelled_busy_and_timed_out() {
    let mut r = Run::new(
        "states",
        Config {
            invite_timeout_ns: 10_000_000_000,
            ..Config::default()
        },
    );
    r.sip(
        0,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "c1",
            "f",
            "",
            "1 INVITE",
            "z1",
            None,
        ),
    );
    r.sip(
        100,
        A,
        B,
        sip(
            "CANCEL sip:2002@example.com SIP/2.0",
            "c1",
            "f",
            "",
            "1 CANCEL",
            "z1",
            None,
        ),
    );
    r.sip(
        110,
        B,
        A,
        sip(
            "SIP/2.0 487 Request Terminated",
            "c1",
            "f",
            "t",
            "1 INVITE",
            "z1",
            None,
        ),
    );
    r.sip(
        200,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "c2",
            "f",
            "",
            "1 INVITE",
            "z2",
            None,
        ),
    );
    r.sip(
        300,
        B,
        A,
        sip(
            "SIP/2.0 486 Busy Here",
            "c2",
            "f",
            "t",
            "1 INVITE",
            "z2",
            None,
        ),
    );
    r.sip(
        400,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "c3",
            "f",
            "",
            "1 INVITE",
            "z3",
            None,
        ),
    );
    r.sip(
        500,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "c4",
            "f",
            "",
            "1 INVITE",
            "z4",
            None,
        ),
    );
    r.sip(
        600,
        B,
        A,
        sip(
            "SIP/2.0 503 Service Unavailable",
            "c4",
            "f",
            "t",
            "1 INVITE",
            "z4",
            None,
        ),
    );
    // Time goes on (an OPTIONS ping 60 s later): c3 never got an answer.
    r.sip(
        60_000,
        A,
        B,
        sip(
            "OPTIONS sip:x SIP/2.0",
            "ping",
            "f",
            "",
            "1 OPTIONS",
            "z9",
            None,
        ),
    );
    let (calls, _r) = r.finish();
    let state = |id: &str| {
        calls
            .iter()
            .find(|c| c.call_id == id)
            .map(|c| c.state.clone())
            .unwrap()
    };
    assert_eq!(state("c1"), "cancelled");
    assert_eq!(state("c2"), "busy");
    assert_eq!(state("c3"), "timed_out");
    assert_eq!(state("c4"), "failed");
    assert_eq!(calls.len(), 4, "OPTIONS is no call");
}

fn nat_run(mode: NatMatch) -> (Vec<CallOut>, Run) {
    let mut r = Run::new(
        &format!("nat{mode:?}"),
        Config {
            nat_match: mode,
            ..Config::default()
        },
    );
    // The caller sits behind NAT: its SDP says 10.0.0.5:7000, its packets come from 203.0.113.7.
    let caller = "203.0.113.7:5060";
    r.sip(
        0,
        caller,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "n1",
            "f",
            "",
            "1 INVITE",
            "z1",
            Some(&sdp("10.0.0.5", 7000)),
        ),
    );
    r.sip(
        100,
        B,
        caller,
        sip(
            "SIP/2.0 200 OK",
            "n1",
            "f",
            "t",
            "1 INVITE",
            "z1",
            Some(&sdp("198.51.100.2", 4000)),
        ),
    );
    // To the caller: its public address and the SDP port (a port-preserving NAT).
    r.media(
        200,
        "198.51.100.2:4000",
        "203.0.113.7:7000",
        0xAAAA,
        20,
        &[],
    );
    // Unrelated RTP: an orphan, never dropped.
    r.media(
        300,
        "198.51.100.9:9000",
        "198.51.100.8:9002",
        0xBBBB,
        5,
        &[],
    );
    r.finish()
}

#[test]
fn nat_port_matching_and_orphans() {
    let (calls, r) = nat_run(NatMatch::Port);
    assert_eq!(calls[0].streams.len(), 1);
    assert_eq!(
        calls[0].streams[0].matched_by.as_deref(),
        Some("sdp-reverse")
    );
    // The sender's own SDP endpoint claims it in reverse; now without symmetric evidence:
    let orphans = orphan_streams(r.ix.conn()).unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].packets, 5);
}

#[test]
fn nat_port_without_symmetric_rtp() {
    let mut r = Run::new("nat2", Config::default());
    let caller = "203.0.113.7:5060";
    r.sip(
        0,
        caller,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "n2",
            "f",
            "",
            "1 INVITE",
            "z1",
            Some(&sdp("10.0.0.5", 7000)),
        ),
    );
    r.sip(
        100,
        B,
        caller,
        sip(
            "SIP/2.0 200 OK",
            "n2",
            "f",
            "t",
            "1 INVITE",
            "z1",
            Some(&sdp("198.51.100.2", 4000)),
        ),
    );
    // Media from a gateway other than B's SDP address, to the caller's public address.
    r.media(
        200,
        "198.51.100.77:4100",
        "203.0.113.7:7000",
        0xCCCC,
        10,
        &[],
    );
    let (calls, r2) = r.finish();
    assert_eq!(calls[0].streams.len(), 1);
    assert_eq!(calls[0].streams[0].matched_by.as_deref(), Some("nat-port"));
    drop(r2);

    let mut r = Run::new(
        "nat3",
        Config {
            nat_match: NatMatch::Off,
            ..Config::default()
        },
    );
    r.sip(
        0,
        caller,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "n3",
            "f",
            "",
            "1 INVITE",
            "z1",
            Some(&sdp("10.0.0.5", 7000)),
        ),
    );
    r.sip(
        100,
        B,
        caller,
        sip(
            "SIP/2.0 200 OK",
            "n3",
            "f",
            "t",
            "1 INVITE",
            "z1",
            Some(&sdp("198.51.100.2", 4000)),
        ),
    );
    r.media(
        200,
        "198.51.100.77:4100",
        "203.0.113.7:7000",
        0xCCCC,
        10,
        &[],
    );
    let (calls, r3) = r.finish();
    assert!(calls[0].streams.is_empty());
    assert_eq!(orphan_streams(r3.ix.conn()).unwrap().len(), 1);
}

#[test]
fn nat_timing_takes_the_single_answered_call() {
    let mut r = Run::new(
        "nat4",
        Config {
            nat_match: NatMatch::Timing,
            ..Config::default()
        },
    );
    r.sip(
        0,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "t1",
            "f",
            "",
            "1 INVITE",
            "z1",
            Some(&sdp("10.0.0.5", 7000)),
        ),
    );
    r.sip(
        100,
        B,
        A,
        sip(
            "SIP/2.0 200 OK",
            "t1",
            "f",
            "t",
            "1 INVITE",
            "z1",
            Some(&sdp("10.0.0.6", 4000)),
        ),
    );
    r.media(
        300,
        "203.0.113.50:30000",
        "203.0.113.51:30002",
        0xDDDD,
        10,
        &[],
    );
    let (calls, _r) = r.finish();
    assert_eq!(calls[0].streams.len(), 1);
    assert_eq!(
        calls[0].streams[0].matched_by.as_deref(),
        Some("nat-timing")
    );
}

#[test]
fn sdp_after_media_and_ipv6_and_dtmf() {
    let mut r = Run::new("v6", Config::default());
    let a6 = "[2001:db8::1]:5060";
    let b6 = "[2001:db8::2]:5060";
    r.sip(
        0,
        a6,
        b6,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            "v6",
            "f",
            "",
            "1 INVITE",
            "z1",
            None,
        ),
    );
    // Early media before the SDP that describes it (capture order across queues).
    r.media(
        50,
        "[2001:db8::2]:4000",
        "[2001:db8::1]:5000",
        0x6666,
        10,
        &[],
    );
    for (i, ev) in [(0u16, 5u8), (1, 5), (2, 5)] {
        let p = rtp(100 + i, 9999, 0x7777, 101, &[ev, 0x0a, 0, 160]);
        r.add(
            60 + i as i64 * 20,
            udp("[2001:db8::1]:5000", "[2001:db8::2]:4000", &p),
        );
    }
    r.sip(
        100,
        b6,
        a6,
        sip(
            "SIP/2.0 200 OK",
            "v6",
            "f",
            "t",
            "1 INVITE",
            "z1",
            Some(&sdp("2001:db8::2", 4000)),
        ),
    );
    r.sip(
        110,
        a6,
        b6,
        sip(
            "ACK sip:2002@example.com SIP/2.0",
            "v6",
            "f",
            "t",
            "1 ACK",
            "z2",
            Some(&sdp("2001:db8::1", 5000)),
        ),
    );
    let (calls, _r) = r.finish();
    let k = &calls[0];
    assert_eq!(k.streams.len(), 2, "{:?}", k.streams);
    assert!(k
        .streams
        .iter()
        .any(|s| s.src == "[2001:db8::2]:4000" && s.packets == 10));
    assert_eq!(k.dtmf, "5");
}

#[test]
fn bounded_memory_loses_nothing() {
    let mut r = Run::new(
        "bound",
        Config {
            calls_open_max: 2,
            streams_open_max: 2,
            ..Config::default()
        },
    );
    for i in 0..10 {
        let c = format!("b{i}");
        r.sip(
            i * 10,
            A,
            B,
            sip(
                "INVITE sip:2002@example.com SIP/2.0",
                &c,
                "f",
                "",
                "1 INVITE",
                "z",
                Some(&sdp("198.51.100.1", 6000 + i as u16 * 2)),
            ),
        );
    }
    for i in 0..10 {
        let c = format!("b{i}");
        r.sip(
            1000 + i * 10,
            B,
            A,
            sip("SIP/2.0 200 OK", &c, "f", "t", "1 INVITE", "z", None),
        );
        r.media(
            1000 + i * 10,
            "198.51.100.2:4000",
            &format!("198.51.100.1:{}", 6000 + i * 2),
            100 + i as u32,
            3,
            &[],
        );
    }
    let (calls, r) = r.finish();
    assert_eq!(calls.len(), 10);
    assert!(calls
        .iter()
        .all(|c| c.state == "answered" && c.streams.len() == 1 && c.streams[0].packets == 3));
    let ev: i64 =
        r.ix.conn()
            .query_row(
                "SELECT value FROM counters WHERE name='calls_evicted'",
                [],
                |x| x.get(0),
            )
            .unwrap();
    assert!(ev > 0);
}

#[test]
fn garbage_never_panics_and_is_counted() {
    let mut r = Run::new("garbage", Config::default());
    let inv = sip(
        "INVITE sip:2002@example.com SIP/2.0",
        "g1",
        "f",
        "",
        "1 INVITE",
        "z",
        Some(&sdp("198.51.100.1", 6000)),
    );
    let mut x: u32 = 12345;
    for n in 0..400usize {
        // Truncations and bit flips of a real INVITE, and random bytes.
        let mut m = inv[..(n * 7) % inv.len()].to_vec();
        for _ in 0..4 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if !m.is_empty() {
                let i = x as usize % m.len();
                m[i] ^= (x >> 16) as u8;
            }
        }
        r.sip(n as i64, A, B, m.clone());
        let mut frame = udp(A, B, &m);
        frame.truncate((x as usize) % (frame.len() + 1));
        r.add(n as i64, frame);
    }
    let (_calls, r) = r.finish();
    let garbage: i64 = r.ix.conn().query_row("SELECT coalesce(sum(value),0) FROM counters WHERE name IN ('sip_garbage','records_undecodable')", [], |x| x.get(0)).unwrap();
    assert!(garbage > 0);
}

fn two_n_call(r: &mut Run, t0: i64, packets: u16) {
    let c = "dup@198.51.100.1";
    r.sip(
        t0,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            c,
            "f",
            "",
            "1 INVITE",
            "z1",
            Some(&sdp("198.51.100.1", 5000)),
        ),
    );
    r.sip(
        t0 + 100,
        B,
        A,
        sip(
            "SIP/2.0 200 OK",
            c,
            "f",
            "t",
            "1 INVITE",
            "z1",
            Some(&sdp("198.51.100.2", 4000)),
        ),
    );
    r.media(
        t0 + 200,
        "198.51.100.1:5000",
        "198.51.100.2:4000",
        0x1,
        packets,
        &[],
    );
    r.sip(
        t0 + 200 + packets as i64 * 20,
        A,
        B,
        sip(
            "BYE sip:2002@example.com SIP/2.0",
            c,
            "f",
            "t",
            "2 BYE",
            "z2",
            None,
        ),
    );
}

#[test]
fn two_n_primary_secondary_and_ambiguous() {
    let mut r = Run::new("2n", Config::default());
    // "a-rec" sorts first but lost packets: "b-rec" has the more complete copy.
    two_n_call(&mut r, 0, 150);
    r.commit_as("a-rec");
    two_n_call(&mut r, 30, 200);
    r.commit_as("b-rec");
    // "c-rec" saw the same Call-ID 10 s later: not a duplicate, flagged.
    two_n_call(&mut r, 10_000, 200);
    r.commit_as("c-rec");
    assert_eq!(xdprec_index::dedup::tag_2n(r.ix.conn()).unwrap(), 1);
    let all = list_calls(
        r.ix.conn(),
        &Filter {
            all: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(all.len(), 3);
    let by = |rec: &str| all.iter().find(|c| c.recorder == rec).unwrap().clone();
    assert_eq!(by("b-rec").role, "primary");
    assert_eq!(by("a-rec").role, "secondary");
    assert_eq!(by("a-rec").primary_recorder.as_deref(), Some("b-rec"));
    assert_eq!(by("c-rec").role, "primary");
    assert!(by("c-rec").dup_flags.unwrap().contains("starts differ"));
    // Without --all the secondary is hidden; tagging again changes nothing.
    assert_eq!(
        list_calls(r.ix.conn(), &Filter::default()).unwrap().len(),
        2
    );
    xdprec_index::dedup::tag_2n(r.ix.conn()).unwrap();
    assert_eq!(
        list_calls(
            r.ix.conn(),
            &Filter {
                all: true,
                ..Default::default()
            }
        )
        .unwrap(),
        all
    );
}

impl Run {
    /// `n` packets of 20 ms from `t_ms`, sequence numbers from `seq0` (timestamps follow).
    fn media_from(&mut self, t_ms: i64, src: &str, dst: &str, ssrc: u32, seq0: u16, n: u16) {
        for i in 0..n {
            let seq = seq0.wrapping_add(i);
            self.add(
                t_ms + i as i64 * 20,
                udp(
                    src,
                    dst,
                    &rtp(seq, u32::from(seq) * 160, ssrc, 0, &[0xff; 160]),
                ),
            );
        }
    }
    fn all(&self) -> Vec<CallOut> {
        list_calls(
            self.ix.conn(),
            &Filter {
                all: true,
                ..Default::default()
            },
        )
        .unwrap()
    }
}

/// The SIP of a call up to the ACK (INVITE and 200 with SDP).
fn call_setup(r: &mut Run, t0: i64, c: &str) {
    r.sip(
        t0,
        A,
        B,
        sip(
            "INVITE sip:2002@example.com SIP/2.0",
            c,
            "f",
            "",
            "1 INVITE",
            "z1",
            Some(&sdp("198.51.100.1", 5000)),
        ),
    );
    r.sip(
        t0 + 100,
        B,
        A,
        sip(
            "SIP/2.0 200 OK",
            c,
            "f",
            "t",
            "1 INVITE",
            "z1",
            Some(&sdp("198.51.100.2", 4000)),
        ),
    );
}

const M1: &str = "198.51.100.1:5000";
const M2: &str = "198.51.100.2:4000";

#[test]
fn two_n_needs_media_evidence() {
    let mut r = Run::new("2n-media", Config::default());
    // Same Call-ID, tags and times on both recorders, but other RTP: not copies.
    call_setup(&mut r, 0, "ssrc@x");
    r.media_from(200, M1, M2, 0x1, 0, 100);
    call_setup(&mut r, 0, "seq@x");
    r.media_from(200, M1, M2, 0x2, 0, 100);
    r.commit_as("a");
    call_setup(&mut r, 0, "ssrc@x");
    r.media_from(200, M1, M2, 0x9, 0, 100);
    call_setup(&mut r, 0, "seq@x");
    r.media_from(200, M1, M2, 0x2, 20_000, 100);
    r.commit_as("b");
    let o = xdprec_index::dedup::consolidate(r.ix.conn(), &Default::default()).unwrap();
    assert_eq!(o.secondaries, 0);
    let all = r.all();
    assert_eq!(all.len(), 4);
    for c in &all {
        assert_eq!(c.role, "primary");
    }
    let flag = |id: &str, rec: &str| {
        all.iter()
            .find(|c| c.call_id == id && c.recorder == rec)
            .unwrap()
            .dup_flags
            .clone()
            .unwrap_or_default()
    };
    assert!(
        flag("ssrc@x", "b").contains("no RTP SSRC in common"),
        "{all:?}"
    );
    assert!(
        flag("seq@x", "b").contains("covers other sequence numbers"),
        "{all:?}"
    );
    // With the evidence relaxed (no sequence overlap needed), the second pair is 2N... but the
    // timestamps still differ, so it stays apart.
    let cfg = xdprec_index::dedup::DedupConfig {
        seq_overlap_min: 0.0,
        ..Default::default()
    };
    let o = xdprec_index::dedup::consolidate(r.ix.conn(), &cfg).unwrap();
    assert_eq!(o.secondaries, 0);
}

#[test]
fn failover_with_sip_on_the_second_recorder() {
    let mut r = Run::new("failover-sip", Config::default());
    call_setup(&mut r, 0, "fo@x");
    r.media_from(200, M1, M2, 0x7, 100, 100); // seq 100..199 until 2.2 s
    r.media_from(200, M2, M1, 0x8, 500, 100);
    r.commit_as("a");
    // Recorder b takes over after 10 lost packets per direction, and sees the BYE.
    r.media_from(2400, M1, M2, 0x7, 210, 100);
    r.media_from(2400, M2, M1, 0x8, 610, 100);
    // A new stream on a path the call used, with another SSRC: not claimed.
    r.media_from(2400, M1, M2, 0x55, 0, 20);
    r.sip(
        4500,
        A,
        B,
        sip(
            "BYE sip:2002@example.com SIP/2.0",
            "fo@x",
            "f",
            "t",
            "2 BYE",
            "z2",
            None,
        ),
    );
    r.commit_as("b");
    // Recorder c (2N of a) recorded the whole call: a failover is never a 2N copy.
    call_setup(&mut r, 0, "fo@x");
    r.media_from(200, M1, M2, 0x7, 100, 210);
    r.commit_as("c");
    let o = r.ix.consolidate().unwrap();
    assert_eq!(o.fragments, 1, "{o:?}");
    assert_eq!(o.failovers, 1, "{o:?}");
    assert_eq!(o.secondaries, 0);
    let listed = list_calls(r.ix.conn(), &Filter::default()).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let head = listed.iter().find(|c| c.recorder == "a").unwrap();
    let f = head.failover.as_ref().expect("failover recorded");
    assert_eq!(f["recorders"], serde_json::json!(["a", "b"]));
    assert_eq!(f["missing_rtp"], 20, "{f}");
    assert_eq!(f["streams"].as_array().unwrap().len(), 2);
    assert_eq!(head.recorders, ["a", "b"]);
    assert_eq!(head.parts[1].role, "fragment");
    assert_eq!(head.parts[1].sip_messages, 1);
    // a's streams and b's two continuing ones; b's new SSRC stays an orphan.
    assert_eq!(head.streams.len(), 4, "{:?}", head.streams);
    let orphans = orphan_streams(r.ix.conn()).unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].ssrc, 0x55);
    let c = listed.iter().find(|c| c.recorder == "c").unwrap();
    assert!(
        c.dup_flags.as_deref().unwrap_or("").contains("failed over"),
        "{c:?}"
    );
    // Stable: consolidating again changes nothing.
    let before = r.all();
    r.ix.consolidate().unwrap();
    assert_eq!(r.all(), before);
}
