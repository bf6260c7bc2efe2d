//! Export (xdprec-export) on a 60-second G.711 call (3,000 RTP frames, both directions, plus
//! its SIP):
//! - `write_pcap`: the frames written as a nanosecond pcap into /tmp (a temporary file,
//!   fsynced, renamed: the whole `write_pcap`, durability included). Throughput: frames.
//! - `merge_2n`: two recorders' copies of the call (each missing a different 2 % of the
//!   packets, the second 40 µs later) merged into one (`merge::merge`; the input copy is made
//!   outside the timing). Throughput: input frames.
//! - `decode_channel`: one direction's 1,500 packets decoded to 16-bit PCM
//!   (`wav::decode_channel`). Throughput: packets.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use xdprec_benches::{frames, sip, TempDir};
use xdprec_export::pcap::Frame;
use xdprec_export::wav::{decode_channel, RtpPacket};

const PACKETS_PER_DIRECTION: u32 = 1_500;
const START_NS: u64 = 1_790_000_000_000_000_000;
const PERIOD_NS: u64 = 20_000_000;

/// One recorder's copy of the call, frames in time order; `skip(i)` drops packet i of each
/// direction, `delay_ns` shifts the capture times.
fn call(recorder: &str, delay_ns: u64, skip: impl Fn(u32) -> bool) -> Vec<Frame> {
    let mk = |ts_ns: u64, data: Vec<u8>| Frame {
        ts_ns: ts_ns + delay_ns,
        wire_len: data.len() as u32,
        data,
        recorder: recorder.to_string(),
    };
    let mut out = vec![mk(START_NS, frames::sip_invite_5060())];
    for i in 0..PACKETS_PER_DIRECTION {
        let t = START_NS + 1_000_000_000 + u64::from(i) * PERIOD_NS;
        if skip(i) {
            continue;
        }
        let (seq, ts) = (i as u16, i * 160);
        out.push(mk(
            t,
            frames::rtp_g711_with(16384, 16386, seq, ts, 0x1111_1111),
        ));
        out.push(mk(
            t + 7_000_000,
            frames::rtp_g711_with(16386, 16384, seq, ts, 0x2222_2222),
        ));
    }
    let end = START_NS + 1_000_000_000 + u64::from(PACKETS_PER_DIRECTION) * PERIOD_NS;
    out.push(mk(end, frames::udp4(5060, 5060, &sip::compact_bye())));
    out
}

fn export(c: &mut Criterion) {
    let whole = call("a", 0, |_| false);
    let mut g = c.benchmark_group("export");

    match TempDir::new("export") {
        Ok(tmp) => {
            let path = tmp.path().join("call.pcap");
            g.throughput(Throughput::Elements(whole.len() as u64));
            g.bench_function(format!("write_pcap/{}_frames", whole.len()), |b| {
                b.iter(|| xdprec_export::pcap::write_pcap(&path, &whole).expect("write_pcap"))
            });
        }
        Err(e) => eprintln!("export/write_pcap SKIPPED: cannot create a directory in /tmp: {e}"),
    }

    let mut both = call("a", 0, |i| i % 50 == 7);
    both.extend(call("b", 40_000, |i| i % 50 == 31));
    let (merged, report) = xdprec_export::merge::merge(both.clone());
    if merged.len() != whole.len() || report.duplicates as usize + merged.len() != both.len() {
        eprintln!(
            "export/merge_2n WARNING: merged {} frames of {} (the whole call has {}); {:?}",
            merged.len(),
            both.len(),
            whole.len(),
            report
        );
    }
    g.throughput(Throughput::Elements(both.len() as u64));
    g.bench_function(format!("merge_2n/{}_frames", both.len()), |b| {
        b.iter_batched(
            || both.clone(),
            xdprec_export::merge::merge,
            BatchSize::LargeInput,
        )
    });

    let rtp: Vec<Vec<u8>> = (0..PACKETS_PER_DIRECTION)
        .map(|i| frames::rtp(0, i as u16, i * 160, 0x1111_1111, 160))
        .collect();
    let packets: Vec<RtpPacket<'_>> = rtp
        .iter()
        .enumerate()
        .map(|(i, p)| RtpPacket {
            arrival_ns: START_NS + i as u64 * PERIOD_NS,
            seq: i as u16,
            timestamp: i as u32 * 160,
            payload_type: 0,
            payload: &p[12..],
        })
        .collect();
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function(format!("decode_channel/{}_packets", packets.len()), |b| {
        b.iter(|| {
            decode_channel(&packets, START_NS, 8000 * 3600)
                .map(|(pcm, _)| pcm.len())
                .expect("decode_channel")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = export
}
criterion_main!(benches);
