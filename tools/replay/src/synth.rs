//! Synthetic SIP calls with G.711 RTP and RTCP, generated in time order.
//!
//! `N` call slots run concurrently. Each call (global call number `k`) is, on UDP over IPv4
//! between a caller in 198.51.100.0/24 and a callee in 203.0.113.0/24 (port 5060 both sides):
//!
//! | offset from INVITE | message | direction |
//! |---|---|---|
//! | 0 | INVITE with SDP offer | caller -> callee |
//! | 5 ms | 100 Trying | callee -> caller |
//! | 40 ms | 180 Ringing | callee -> caller |
//! | ring (1 s, or call/4 if shorter) | 200 OK with SDP answer | callee -> caller |
//! | ring + 5 ms | ACK | caller -> callee |
//! | ring + 20 ms / + 30 ms | RTP every 20 ms, each direction | both |
//! | every 5 s of media | RTCP sender report + SDES CNAME, to RTP port + 1 | both |
//! | call length | BYE | caller -> callee |
//! | call length + 5 ms | 200 OK (BYE) | callee -> caller |
//!
//! RTP is G.711 with 160-byte payloads (214-byte frames, 218 with `vlan`): even call numbers
//! µ-law (PT 0), odd ones A-law (PT 8). The caller sends a tone of 400 + 20·(k mod 16) Hz, the
//! callee 700 + 20·(k mod 16) Hz. Call-ID, From/To numbers, IP addresses, RTP ports and SSRCs
//! are distinct per call (addresses and ports repeat only after 4 million call numbers). MACs
//! are documentation MACs (RFC 7042): caller side 00:00:5e:00:53:01, callee side :02.
//!
//! Slot `i` first starts at `i / cps` seconds; a call that ends is replaced in its slot 10 ms
//! later by a new call (the next generation, call number `k + N`), so `N` calls stay up.
//! `generations` bounds how many calls each slot runs; `duration_ns` bounds the timeline.
//!
//! Speed: each RTP stream keeps its prebuilt headers (Ethernet to RTP); a packet is one copy of
//! the headers, a patch of sequence number, timestamp and marker, and one copy of 160 bytes from
//! a per-tone table. IPv4 identification is constant, so the IP checksum of the template stays
//! valid; the UDP checksum of RTP is 0 (legal for IPv4). Events are ordered by a binary heap
//! with one entry per slot. SIP and RTCP (rare) are formatted into a reused buffer.

use crate::source::{FrameMeta, FrameSource};
use crate::Error;
use etherparse::{PacketBuilder, PacketBuilderStep, UdpHeader, VlanId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use xdprec_sip::g711::{tone_second, Law};

/// Concurrent calls accepted (each slot holds about 300 bytes).
pub const CALLS_MAX: u32 = 1_000_000;
/// RTP payload bytes per packet (20 ms of G.711).
pub const RTP_PAYLOAD_BYTES: usize = 160;
const RTP_PERIOD_NS: u64 = 20_000_000;
const RTCP_PERIOD_NS: u64 = 5_000_000_000;
const MS: u64 = 1_000_000;
const RESTART_GAP_NS: u64 = 10 * MS;
const TONES: usize = 16;
const TONE_AMPLITUDE: i16 = 8000;
const SIP_PORT: u16 = 5060;
const RTP_PORT_BASE: u16 = 16384;
const PORT_BLOCKS: u64 = 16000;
const HOSTS: u64 = 254;

/// Documentation MACs (RFC 7042) for the caller and callee sides.
pub const CALLER_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x01];
pub const CALLEE_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x02];

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Concurrent calls (1..=[`CALLS_MAX`]).
    pub calls: u32,
    /// Length of a call from INVITE to BYE, in ns (at least 200 ms).
    pub call_ns: u64,
    /// Calls started per second while ramping up; `None`: calls / call length.
    pub cps: Option<f64>,
    /// 802.1Q tag on every frame.
    pub vlan: Option<u16>,
    /// Calls per slot; `None`: unbounded (bound the run with `duration_ns` or the runner).
    pub generations: Option<u64>,
    /// No event at or after this offset from the start is generated.
    pub duration_ns: Option<u64>,
    /// Absolute time of offset 0 (ns since the Unix epoch), for frame timestamps.
    pub start_unix_ns: u64,
    /// Mixed into Call-IDs, tags and SSRCs so that two runs differ.
    pub seed: u64,
}

impl SynthConfig {
    pub fn new(calls: u32) -> SynthConfig {
        SynthConfig {
            calls,
            call_ns: 10_000_000_000,
            cps: None,
            vlan: None,
            generations: Some(1),
            duration_ns: None,
            start_unix_ns: 0,
            seed: 0x5eed,
        }
    }
}

/// Counts of what was generated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynthCounts {
    pub calls_started: u64,
    pub calls_completed: u64,
    pub sip: u64,
    pub rtp: u64,
    pub rtcp: u64,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: distinct, well spread SSRCs and sequence starts.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One RTP direction of a call.
#[derive(Clone)]
struct Stream {
    /// Ethernet..RTP headers; sequence, timestamp and marker are patched per packet.
    hdr: [u8; 64],
    hdr_len: u8,
    next_ns: u64,
    seq: u16,
    rtp_ts: u32,
    ssrc: u32,
    packets: u32,
    octets: u32,
    next_rtcp_ns: u64,
    tone: u16,
}

impl Stream {
    fn empty() -> Stream {
        Stream {
            hdr: [0; 64],
            hdr_len: 0,
            next_ns: u64::MAX,
            seq: 0,
            rtp_ts: 0,
            ssrc: 0,
            packets: 0,
            octets: 0,
            next_rtcp_ns: u64::MAX,
            tone: 0,
        }
    }
}

#[derive(Clone)]
struct Call {
    k: u64,
    generation: u64,
    start_ns: u64,
    ring_ns: u64,
    /// Next SIP message (0..7); 7 = done.
    sip_step: u8,
    law: Law,
    streams: [Stream; 2],
}

/// Which event a call has next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Sip,
    Rtp(usize),
    Rtcp(usize),
    Restart,
}

/// The synthetic call generator (a [`FrameSource`]).
pub struct Synth {
    cfg: SynthConfig,
    calls: Vec<Call>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// 2 laws x 2 directions x TONES tables of 8000 bytes.
    tones: Vec<Vec<u8>>,
    sip_buf: Vec<u8>,
    sdp_buf: Vec<u8>,
    counts: SynthCounts,
}

/// The addresses, ports and names of call `k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallIdentity {
    pub caller_ip: [u8; 4],
    pub callee_ip: [u8; 4],
    pub caller_rtp_port: u16,
    pub callee_rtp_port: u16,
    pub caller_user: u64,
    pub callee_user: u64,
}

impl CallIdentity {
    pub fn of(k: u64) -> CallIdentity {
        let host = 1 + (k % HOSTS) as u8;
        let block = ((k / HOSTS) % PORT_BLOCKS) as u16;
        CallIdentity {
            caller_ip: [198, 51, 100, host],
            callee_ip: [203, 0, 113, host],
            caller_rtp_port: RTP_PORT_BASE + 2 * block,
            callee_rtp_port: RTP_PORT_BASE + 2 * block,
            caller_user: 1_000_000_000 + k % 1_000_000_000,
            callee_user: 2_000_000_000 + k % 1_000_000_000,
        }
    }
}

fn udp_builder(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    vlan: Option<VlanId>,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> PacketBuilderStep<UdpHeader> {
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    let ip = match vlan {
        Some(v) => eth.single_vlan(v).ipv4(src, dst, 64),
        None => eth.ipv4(src, dst, 64),
    };
    ip.udp(sport, dport)
}

/// Writes a UDP frame into `out`; returns its length.
fn write_udp(b: PacketBuilderStep<UdpHeader>, payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let size = b.size(payload.len());
    if size > out.len() {
        return None;
    }
    let mut w: &mut [u8] = out;
    b.write(&mut w, payload).ok()?;
    Some(size)
}

impl Synth {
    pub fn new(cfg: SynthConfig) -> Result<Synth, Error> {
        if cfg.calls == 0 || cfg.calls > CALLS_MAX {
            return Err(Error::Config(format!(
                "--synth {} is out of range: give 1..={CALLS_MAX} concurrent calls",
                cfg.calls
            )));
        }
        if cfg.call_ns < 200 * MS {
            return Err(Error::Config(
                "--call-secs must be at least 0.2 s (the call set-up alone takes 45 ms)".into(),
            ));
        }
        if let Some(v) = cfg.vlan {
            if v == 0 || v > 4094 {
                return Err(Error::Config(format!("--vlan {v}: give 1..=4094")));
            }
        }
        let cps = cfg
            .cps
            .unwrap_or(f64::from(cfg.calls) * 1e9 / cfg.call_ns as f64);
        if !(cps.is_finite() && cps > 0.0) {
            return Err(Error::Config(format!("--cps {cps}: give a positive rate")));
        }
        let mut tones = Vec::with_capacity(4 * TONES);
        for law in [Law::Ulaw, Law::Alaw] {
            for dir in 0..2u32 {
                for t in 0..TONES as u32 {
                    tones.push(tone_second(law, 400 + 300 * dir + 20 * t, TONE_AMPLITUDE));
                }
            }
        }
        let mut s = Synth {
            calls: Vec::with_capacity(cfg.calls as usize),
            heap: BinaryHeap::with_capacity(cfg.calls as usize),
            tones,
            sip_buf: Vec::with_capacity(2048),
            sdp_buf: Vec::with_capacity(512),
            counts: SynthCounts::default(),
            cfg,
        };
        for slot in 0..s.cfg.calls {
            let start = (f64::from(slot) * 1e9 / cps) as u64;
            let call = s.new_call(slot, 0, start);
            s.calls.push(call);
            s.schedule(slot);
        }
        Ok(s)
    }

    pub fn counts(&self) -> SynthCounts {
        self.counts
    }

    fn new_call(&self, slot: u32, generation: u64, start_ns: u64) -> Call {
        let k = generation * u64::from(self.cfg.calls) + u64::from(slot);
        let id = CallIdentity::of(k);
        let law = if k & 1 == 0 { Law::Ulaw } else { Law::Alaw };
        let ring_ns = (self.cfg.call_ns / 4).min(1_000_000_000);
        let vlan = self.cfg.vlan.and_then(|v| VlanId::try_new(v).ok());
        let mut streams = [Stream::empty(), Stream::empty()];
        for (dir, st) in streams.iter_mut().enumerate() {
            let (smac, dmac, sip, dip, sp, dp) = if dir == 0 {
                let i = &id;
                (
                    CALLER_MAC,
                    CALLEE_MAC,
                    i.caller_ip,
                    i.callee_ip,
                    i.caller_rtp_port,
                    i.callee_rtp_port,
                )
            } else {
                let i = &id;
                (
                    CALLEE_MAC,
                    CALLER_MAC,
                    i.callee_ip,
                    i.caller_ip,
                    i.callee_rtp_port,
                    i.caller_rtp_port,
                )
            };
            let r = mix(k.wrapping_mul(2).wrapping_add(dir as u64) ^ self.cfg.seed);
            st.ssrc = r as u32;
            st.seq = (r >> 32) as u16;
            st.rtp_ts = (r >> 48) as u32 * 160;
            st.tone = (k % TONES as u64) as u16;
            let mut rtp = [0u8; 12 + RTP_PAYLOAD_BYTES];
            rtp[0] = 0x80;
            rtp[1] = law.payload_type();
            rtp[8..12].copy_from_slice(&st.ssrc.to_be_bytes());
            let b = udp_builder(smac, dmac, vlan, sip, dip, sp, dp);
            let mut frame = [0u8; 256];
            // 218 bytes at most: the write cannot fail, but a failure must not panic either.
            let len = write_udp(b, &rtp, &mut frame).unwrap_or(0);
            let hdr_len = len.saturating_sub(RTP_PAYLOAD_BYTES).min(st.hdr.len());
            if hdr_len >= 14 + 20 + 8 + 12 {
                st.hdr[..hdr_len].copy_from_slice(&frame[..hdr_len]);
                st.hdr_len = hdr_len as u8;
                // UDP checksum 0: the template is patched per packet (legal for IPv4).
                let udp_at = hdr_len - 12 - 8;
                st.hdr[udp_at + 6] = 0;
                st.hdr[udp_at + 7] = 0;
            }
            let media_start = start_ns + ring_ns + if dir == 0 { 20 * MS } else { 30 * MS };
            st.next_ns = media_start;
            st.next_rtcp_ns = media_start + RTCP_PERIOD_NS;
        }
        Call {
            k,
            generation,
            start_ns,
            ring_ns,
            sip_step: 0,
            law,
            streams,
        }
    }

    fn sip_time(c: &Call, call_ns: u64) -> u64 {
        let off = match c.sip_step {
            0 => 0,
            1 => 5 * MS,
            2 => 40 * MS,
            3 => c.ring_ns,
            4 => c.ring_ns + 5 * MS,
            5 => call_ns,
            6 => call_ns + 5 * MS,
            _ => return u64::MAX,
        };
        c.start_ns + off
    }

    fn next_event(&self, c: &Call) -> (u64, Ev) {
        let bye = c.start_ns + self.cfg.call_ns;
        let mut best = (Self::sip_time(c, self.cfg.call_ns), Ev::Sip);
        if c.sip_step >= 7 {
            best = (bye + 5 * MS + RESTART_GAP_NS, Ev::Restart);
        }
        for (d, st) in c.streams.iter().enumerate() {
            if st.next_ns < bye && st.next_ns < best.0 {
                best = (st.next_ns, Ev::Rtp(d));
            }
            if st.next_rtcp_ns < bye && st.next_rtcp_ns < best.0 {
                best = (st.next_rtcp_ns, Ev::Rtcp(d));
            }
        }
        best
    }

    fn schedule(&mut self, slot: u32) {
        let (t, _) = self.next_event(&self.calls[slot as usize]);
        if let Some(end) = self.cfg.duration_ns {
            if t >= end {
                return;
            }
        }
        self.heap.push(Reverse((t, slot)));
    }

    fn sdp(&mut self, c: &Call, offer: bool) {
        let id = CallIdentity::of(c.k);
        let (ip, port) = if offer {
            (id.caller_ip, id.caller_rtp_port)
        } else {
            (id.callee_ip, id.callee_rtp_port)
        };
        let ip = std::net::Ipv4Addr::from(ip);
        let pt = c.law.payload_type();
        self.sdp_buf.clear();
        let _ = write!(
            self.sdp_buf,
            "v=0\r\no=- {k} {v} IN IP4 {ip}\r\ns=xdprec synthetic call\r\nc=IN IP4 {ip}\r\n\
             t=0 0\r\nm=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\n\
             a=ptime:20\r\na=sendrecv\r\n",
            k = c.k,
            v = if offer { 1 } else { 2 },
            name = c.law.encoding_name(),
        );
    }

    /// Formats SIP message `step` of call `c` into `sip_buf`; returns (from caller?).
    fn sip_message(&mut self, c: &Call) -> bool {
        let id = CallIdentity::of(c.k);
        let a_ip = std::net::Ipv4Addr::from(id.caller_ip);
        let b_ip = std::net::Ipv4Addr::from(id.callee_ip);
        let (a, b) = (id.caller_user, id.callee_user);
        let k = c.k;
        let seed = self.cfg.seed as u32;
        let step = c.sip_step;
        let with_sdp = step == 0 || step == 3;
        if with_sdp {
            self.sdp(c, step == 0);
        } else {
            self.sdp_buf.clear();
        }
        let buf = &mut self.sip_buf;
        buf.clear();
        let (cseq, from_caller, to_tag, branch) = match step {
            0 => {
                let _ = write!(buf, "INVITE sip:{b}@{b_ip} SIP/2.0");
                ("1 INVITE", true, false, 'a')
            }
            1 => {
                let _ = write!(buf, "SIP/2.0 100 Trying");
                ("1 INVITE", false, false, 'a')
            }
            2 => {
                let _ = write!(buf, "SIP/2.0 180 Ringing");
                ("1 INVITE", false, true, 'a')
            }
            3 => {
                let _ = write!(buf, "SIP/2.0 200 OK");
                ("1 INVITE", false, true, 'a')
            }
            4 => {
                let _ = write!(buf, "ACK sip:{b}@{b_ip} SIP/2.0");
                ("1 ACK", true, true, 'b')
            }
            5 => {
                let _ = write!(buf, "BYE sip:{b}@{b_ip} SIP/2.0");
                ("2 BYE", true, true, 'c')
            }
            _ => {
                let _ = write!(buf, "SIP/2.0 200 OK");
                ("2 BYE", false, true, 'c')
            }
        };
        let _ = write!(
            buf,
            "\r\nVia: SIP/2.0/UDP {a_ip}:5060;branch=z9hG4bK{k:x}{seed:x}{branch}\r\n"
        );
        if from_caller {
            let _ = write!(buf, "Max-Forwards: 70\r\n");
        }
        let _ = write!(
            buf,
            "From: <sip:{a}@{a_ip}>;tag={k:x}a{seed:x}\r\nTo: <sip:{b}@{b_ip}>"
        );
        if to_tag {
            let _ = write!(buf, ";tag={k:x}b{seed:x}");
        }
        let _ = write!(
            buf,
            "\r\nCall-ID: {k:x}-{seed:x}@xdprec.invalid\r\nCSeq: {cseq}\r\n"
        );
        if step == 0 || step == 3 {
            let (u, ip) = if step == 0 { (a, a_ip) } else { (b, b_ip) };
            let _ = write!(buf, "Contact: <sip:{u}@{ip}:5060>\r\n");
        }
        if step == 0 {
            let _ = write!(buf, "User-Agent: xdprec-replay\r\n");
        }
        if with_sdp {
            let _ = write!(buf, "Content-Type: application/sdp\r\n");
        }
        let _ = write!(buf, "Content-Length: {}\r\n\r\n", self.sdp_buf.len());
        buf.extend_from_slice(&self.sdp_buf);
        from_caller
    }

    fn emit_sip(&mut self, slot: usize, out: &mut [u8]) -> Option<usize> {
        let c = self.calls[slot].clone_head();
        let from_caller = self.sip_message(&c);
        let id = CallIdentity::of(c.k);
        let vlan = self.cfg.vlan.and_then(|v| VlanId::try_new(v).ok());
        let b = if from_caller {
            udp_builder(
                CALLER_MAC,
                CALLEE_MAC,
                vlan,
                id.caller_ip,
                id.callee_ip,
                SIP_PORT,
                SIP_PORT,
            )
        } else {
            udp_builder(
                CALLEE_MAC,
                CALLER_MAC,
                vlan,
                id.callee_ip,
                id.caller_ip,
                SIP_PORT,
                SIP_PORT,
            )
        };
        let len = write_udp(b, &self.sip_buf, out);
        let call = &mut self.calls[slot];
        if call.sip_step == 0 {
            self.counts.calls_started += 1;
        }
        if call.sip_step == 6 {
            self.counts.calls_completed += 1;
        }
        call.sip_step += 1;
        self.counts.sip += 1;
        len
    }

    fn emit_rtp(&mut self, slot: usize, dir: usize, out: &mut [u8]) -> Option<usize> {
        let call = &mut self.calls[slot];
        let law_idx = if call.law == Law::Ulaw { 0 } else { 1 };
        let st = &mut call.streams[dir];
        let h = st.hdr_len as usize;
        let len = h + RTP_PAYLOAD_BYTES;
        if out.len() < len || h < 12 {
            return None;
        }
        out[..h].copy_from_slice(&st.hdr[..h]);
        let rtp = h - 12;
        if st.packets == 0 {
            out[rtp + 1] |= 0x80; // marker: start of talkspurt
        }
        out[rtp + 2..rtp + 4].copy_from_slice(&st.seq.to_be_bytes());
        out[rtp + 4..rtp + 8].copy_from_slice(&st.rtp_ts.to_be_bytes());
        let table = &self.tones[(law_idx * 2 + dir) * TONES + st.tone as usize];
        let at = (st.packets as usize % (8000 / RTP_PAYLOAD_BYTES)) * RTP_PAYLOAD_BYTES;
        out[h..len].copy_from_slice(&table[at..at + RTP_PAYLOAD_BYTES]);
        st.seq = st.seq.wrapping_add(1);
        st.rtp_ts = st.rtp_ts.wrapping_add(RTP_PAYLOAD_BYTES as u32);
        st.packets = st.packets.wrapping_add(1);
        st.octets = st.octets.wrapping_add(RTP_PAYLOAD_BYTES as u32);
        st.next_ns += RTP_PERIOD_NS;
        self.counts.rtp += 1;
        Some(len)
    }

    fn emit_rtcp(&mut self, slot: usize, dir: usize, t: u64, out: &mut [u8]) -> Option<usize> {
        let unix_ns = self.cfg.start_unix_ns.saturating_add(t);
        let call = &mut self.calls[slot];
        let id = CallIdentity::of(call.k);
        let st = &mut call.streams[dir];
        st.next_rtcp_ns += RTCP_PERIOD_NS;
        // NTP time: seconds since 1900 and a binary fraction.
        let ntp_sec = (unix_ns / 1_000_000_000 + 2_208_988_800) as u32;
        let ntp_frac = (((unix_ns % 1_000_000_000) << 32) / 1_000_000_000) as u32;
        let mut p = [0u8; 28 + 20];
        p[0] = 0x80;
        p[1] = 200; // SR
        p[2..4].copy_from_slice(&6u16.to_be_bytes());
        p[4..8].copy_from_slice(&st.ssrc.to_be_bytes());
        p[8..12].copy_from_slice(&ntp_sec.to_be_bytes());
        p[12..16].copy_from_slice(&ntp_frac.to_be_bytes());
        p[16..20].copy_from_slice(&st.rtp_ts.to_be_bytes());
        p[20..24].copy_from_slice(&st.packets.to_be_bytes());
        p[24..28].copy_from_slice(&st.octets.to_be_bytes());
        // SDES with one chunk: CNAME "xdprec" (6 bytes), END, padded to 32 bits: 20 bytes.
        p[28] = 0x81;
        p[29] = 202;
        p[30..32].copy_from_slice(&4u16.to_be_bytes());
        p[32..36].copy_from_slice(&st.ssrc.to_be_bytes());
        p[36] = 1;
        p[37] = 6;
        p[38..44].copy_from_slice(b"xdprec");
        let vlan = self.cfg.vlan.and_then(|v| VlanId::try_new(v).ok());
        let b = if dir == 0 {
            udp_builder(
                CALLER_MAC,
                CALLEE_MAC,
                vlan,
                id.caller_ip,
                id.callee_ip,
                id.caller_rtp_port + 1,
                id.callee_rtp_port + 1,
            )
        } else {
            udp_builder(
                CALLEE_MAC,
                CALLER_MAC,
                vlan,
                id.callee_ip,
                id.caller_ip,
                id.callee_rtp_port + 1,
                id.caller_rtp_port + 1,
            )
        };
        self.counts.rtcp += 1;
        write_udp(b, &p, out)
    }
}

impl Call {
    /// A copy of what SIP formatting reads (the streams are not needed).
    fn clone_head(&self) -> Call {
        Call {
            k: self.k,
            generation: self.generation,
            start_ns: self.start_ns,
            ring_ns: self.ring_ns,
            sip_step: self.sip_step,
            law: self.law,
            streams: [Stream::empty(), Stream::empty()],
        }
    }
}

impl FrameSource for Synth {
    fn next_frame(&mut self, out: &mut [u8]) -> Result<Option<FrameMeta>, Error> {
        loop {
            let Some(Reverse((t, slot))) = self.heap.pop() else {
                return Ok(None);
            };
            let i = slot as usize;
            let (_, ev) = self.next_event(&self.calls[i]);
            let len = match ev {
                Ev::Sip => self.emit_sip(i, out),
                Ev::Rtp(d) => self.emit_rtp(i, d, out),
                Ev::Rtcp(d) => self.emit_rtcp(i, d, t, out),
                Ev::Restart => {
                    let generation = self.calls[i].generation + 1;
                    if self.cfg.generations.is_none_or(|g| generation < g) {
                        self.calls[i] = self.new_call(slot, generation, t);
                        self.schedule(slot);
                    }
                    continue;
                }
            };
            self.schedule(slot);
            let Some(len) = len else {
                return Err(Error::Config(format!(
                    "frame buffer of {} bytes too small for a synthetic frame",
                    out.len()
                )));
            };
            return Ok(Some(FrameMeta {
                ts_ns: self.cfg.start_unix_ns.saturating_add(t),
                len,
                wire_len: len as u32,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(cfg: SynthConfig) -> (Vec<(u64, Vec<u8>)>, SynthCounts) {
        let mut s = Synth::new(cfg).unwrap();
        let mut out = vec![0u8; 2048];
        let mut v = Vec::new();
        while let Some(m) = s.next_frame(&mut out).unwrap() {
            v.push((m.ts_ns, out[..m.len].to_vec()));
            assert!(v.len() < 1_000_000);
        }
        (v, s.counts())
    }

    #[test]
    fn one_call_has_the_expected_messages_in_time_order() {
        let mut cfg = SynthConfig::new(1);
        cfg.call_ns = 7_000_000_000;
        let (frames, counts) = collect(cfg);
        assert_eq!(counts.calls_started, 1);
        assert_eq!(counts.calls_completed, 1);
        assert_eq!(counts.sip, 7);
        // Media from 1.02 s / 1.03 s to 7 s: 299 packets each way.
        assert_eq!(counts.rtp, 2 * 299);
        // One sender report per direction (at media start + 5 s).
        assert_eq!(counts.rtcp, 2);
        assert!(frames.windows(2).all(|w| w[0].0 <= w[1].0));
        let rtp: Vec<_> = frames.iter().filter(|(_, f)| f.len() == 214).collect();
        assert_eq!(rtp.len(), 598);
        let sips: Vec<String> = frames
            .iter()
            .filter_map(|(_, f)| {
                let p = &f[42..];
                (p.starts_with(b"INVITE")
                    || p.starts_with(b"SIP/")
                    || p.starts_with(b"ACK")
                    || p.starts_with(b"BYE"))
                .then(|| {
                    String::from_utf8_lossy(p)
                        .lines()
                        .next()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        assert_eq!(
            sips,
            [
                "INVITE sip:2000000000@203.0.113.1 SIP/2.0",
                "SIP/2.0 100 Trying",
                "SIP/2.0 180 Ringing",
                "SIP/2.0 200 OK",
                "ACK sip:2000000000@203.0.113.1 SIP/2.0",
                "BYE sip:2000000000@203.0.113.1 SIP/2.0",
                "SIP/2.0 200 OK"
            ]
        );
    }

    #[test]
    fn rtp_frames_parse_and_sequence_numbers_advance() {
        let mut cfg = SynthConfig::new(3);
        cfg.call_ns = 2_000_000_000;
        cfg.vlan = Some(42);
        let (frames, _) = collect(cfg);
        let mut last_seq = std::collections::HashMap::new();
        for (_, f) in &frames {
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            assert!(p.vlan.is_some());
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
                panic!("not UDP")
            };
            if u.destination_port() == 5060 {
                continue;
            }
            let r = u.payload();
            if r[1] >= 200 {
                continue; // RTCP
            }
            assert_eq!(f.len(), 218);
            assert_eq!(r.len(), 172);
            let ssrc = u32::from_be_bytes(r[8..12].try_into().unwrap());
            let seq = u16::from_be_bytes([r[2], r[3]]);
            if let Some(prev) = last_seq.insert(ssrc, seq) {
                assert_eq!(seq, u16::wrapping_add(prev, 1));
            }
            assert!(r[1] & 0x7f == 0 || r[1] & 0x7f == 8);
        }
        assert_eq!(last_seq.len(), 6);
    }

    #[test]
    fn slots_restart_and_duration_bounds_the_timeline() {
        let mut cfg = SynthConfig::new(2);
        cfg.call_ns = 1_000_000_000;
        cfg.cps = Some(100.0);
        cfg.generations = None;
        cfg.duration_ns = Some(3_500_000_000);
        let (frames, counts) = collect(cfg);
        assert!(frames.iter().all(|(t, _)| *t < 3_500_000_000));
        // Each slot runs calls of 1.015 s + 10 ms gap: 4 starts in 3.5 s, 3 completed.
        assert_eq!(counts.calls_started, 8);
        assert_eq!(counts.calls_completed, 6);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(Synth::new(SynthConfig::new(0)).is_err());
        let mut c = SynthConfig::new(1);
        c.vlan = Some(4095);
        assert!(Synth::new(c).is_err());
        let mut c = SynthConfig::new(1);
        c.call_ns = 1000;
        assert!(Synth::new(c).is_err());
    }
}
