//! The stream framer and the WebSocket deframer with input-chosen segmentation, and the
//! TCP reassembler with input-chosen reordering, duplication and loss.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdprec_sip::{
    BodyFraming, SipLimits, SipMessage, SipStreamFramer, TcpReassembler, WebSocketDeframer,
};

const BUF: usize = 2048;

fn on_message(m: &[u8]) {
    assert!(m.len() <= BUF);
    let _ = SipMessage::parse_with(m, &SipLimits::default(), BodyFraming::Stream)
        .map(|msg| (msg.call_id(), msg.cseq()));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (ctl, stream) = data.split_at(2);
    // Framer: chunks of 1..=ctl[0] bytes.
    let step = usize::from(ctl[0]).max(1);
    let mut f = SipStreamFramer::new(BUF);
    for c in stream.chunks(step) {
        f.push(c, on_message);
        assert!(f.buffered_bytes() <= BUF);
    }
    let s = *f.stats();
    assert!(
        s.message_bytes + s.keepalive_bytes + s.garbage_bytes + s.oversized_bytes
            <= stream.len() as u64
    );

    let mut ws = WebSocketDeframer::new(BUF);
    for c in stream.chunks(step) {
        ws.push(c, |m| {
            assert!(m.len() <= BUF);
            let _ = SipMessage::parse(m).map(|msg| msg.call_id());
        });
        assert!(ws.buffered_bytes() <= 2 * BUF);
    }

    // Reassembler: segments of `step` bytes, sent in an order derived from ctl[1].
    let mut r = TcpReassembler::new(SipStreamFramer::new(BUF), 4, 4096);
    let isn = u32::from(ctl[1])
        .wrapping_mul(0x0101_0101)
        .wrapping_sub(300);
    let segs: Vec<(u32, &[u8])> = stream
        .chunks(step)
        .enumerate()
        .map(|(i, c)| (isn.wrapping_add((i * step) as u32), c))
        .collect();
    let mut x = u64::from(ctl[1]) | 1;
    for _ in 0..segs.len() * 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % segs.len().max(1) as u64) as usize;
        if let Some((seq, c)) = segs.get(i) {
            r.push(*seq, c, on_message);
            assert!(r.held_bytes() <= 4096);
        }
    }
    r.skip_gap(on_message);
});
