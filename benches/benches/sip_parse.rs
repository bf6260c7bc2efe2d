//! SIP and SDP parsing (xdprec-sip), on an INVITE with an SDP offer (~1.1 KB), its 200 OK
//! with the answer, and a compact-form BYE (`xdprec_benches::sip`).
//!
//! - `message/<msg>`: `SipMessage::parse` alone (start line, header index, body framing).
//! - `message_fields/<msg>`: parse plus what call building reads: Call-ID, From/To tags,
//!   CSeq, top Via branch, Contact, and the SDP body.
//! - `sdp/<body>`: `Sdp::parse` plus the media endpoints (address, RTP/RTCP ports, codecs).
//! - `indexer_sipmsg/<msg>`: `xdprec_index::sipmsg::parse`, the indexer's owned extraction
//!   (fields copied into Strings, SDP included): the per-message cost inside `xdprec index`.
//!
//! Throughput: messages (bytes are in the names' sizes: 1.1 KB, 0.9 KB, 0.4 KB).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use xdprec_benches::sip;
use xdprec_sip::{Sdp, SipMessage};

fn fields(m: &SipMessage<'_>) -> usize {
    let mut n = 0;
    n += m.call_id().map_or(0, str::len);
    n += m.from().and_then(|f| f.tag()).map_or(0, str::len);
    n += m.to().and_then(|t| t.tag()).map_or(0, str::len);
    n += m.cseq().map_or(0, |c| c.seq as usize);
    n += m.via_branches().next().map_or(0, str::len);
    n += m.contact().map_or(0, |c| c.uri.len());
    n += m.sdp().ok().flatten().map_or(0, <[u8]>::len);
    n
}

fn parse(c: &mut Criterion) {
    let msgs = [
        ("invite_sdp", sip::invite_with_sdp()),
        ("ok200_sdp", sip::ok_200_with_sdp()),
        ("bye_compact", sip::compact_bye()),
    ];
    let mut g = c.benchmark_group("sip_parse");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in &msgs {
        g.bench_function(format!("message/{name}"), |b| {
            b.iter(|| SipMessage::parse(black_box(msg)).map(|m| m.header_count))
        });
    }
    for (name, msg) in &msgs {
        g.bench_function(format!("message_fields/{name}"), |b| {
            b.iter(|| SipMessage::parse(black_box(msg)).map(|m| fields(&m)))
        });
    }
    for (name, body) in [
        ("offer_4codecs", sip::SDP_OFFER),
        ("answer_2codecs", sip::SDP_ANSWER),
    ] {
        g.bench_function(format!("sdp/{name}"), |b| {
            b.iter(|| {
                Sdp::parse(black_box(body.as_bytes())).map(|s| {
                    s.endpoints()
                        .map(|e| usize::from(e.rtp_port) + e.media.codecs().count())
                        .sum::<usize>()
                })
            })
        });
    }
    for (name, msg) in &msgs {
        g.bench_function(format!("indexer_sipmsg/{name}"), |b| {
            b.iter(|| xdprec_index::sipmsg::parse(black_box(msg)).map(|m| m.cseq_num))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = parse
}
criterion_main!(benches);
