//! SIP over stream transports (TCP, TLS after decryption, WebSocket payloads): cutting a
//! byte stream into messages, and putting one direction of a TCP connection back in order.
//!
//! [`SipStreamFramer`] takes the bytes of one direction in order and yields each complete
//! message (start line + headers + Content-Length bytes of body, RFC 3261 18.3). Between
//! messages, CR/LF keep-alives (RFC 5626 "double CRLF" pings and CRLF pongs) are skipped.
//! Bytes that do not begin with a request or status line are garbage: the framer skips to
//! the next line that is a start line and counts the skipped bytes. A message whose header
//! section or declared length exceeds the buffer (`buffer_bytes_max`, default 64 KiB) is
//! dropped and counted; when its length is known the framer skips exactly its bytes and
//! stays in sync.
//!
//! [`TcpReassembler`] takes `(seq, payload)` segments of one direction, drops bytes already
//! delivered (retransmissions, overlaps), holds a bounded number of out-of-order segments
//! (`segments_max`, `bytes_max`) and feeds the framer in sequence order. When the hold is
//! full, or the caller calls [`TcpReassembler::skip_gap`] (e.g. at end of capture or on a
//! timeout), the missing bytes are declared lost: the framer drops its partial message and
//! resynchronises. Every dropped byte is counted in [`FramerStats`] or [`ReassemblerStats`].

use crate::sip::is_start_line;
use crate::text::{find_headers_end, parse_u32, trim_bytes};

/// Default buffer bound for one direction of one connection.
pub const STREAM_BUFFER_BYTES_DEFAULT: usize = 64 * 1024;

/// Counters of a [`SipStreamFramer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    pub messages: u64,
    pub message_bytes: u64,
    /// CR/LF keep-alive bytes skipped between messages.
    pub keepalive_bytes: u64,
    /// Bytes skipped while resynchronising (no start line).
    pub garbage_bytes: u64,
    /// Messages dropped because they do not fit `buffer_bytes_max`.
    pub oversized_messages: u64,
    pub oversized_bytes: u64,
    /// Messages framed with Content-Length absent (taken as 0).
    pub missing_content_length: u64,
    /// Messages framed with an unparsable Content-Length (taken as 0).
    pub invalid_content_length: u64,
    /// Bytes of partial messages discarded at a stream gap or reset.
    pub gap_discarded_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a start line (skip keep-alives).
    Idle,
    /// Skipping garbage up to the next start line.
    Resync,
    /// Dropping the rest of an oversized message.
    Skip(usize),
}

/// Splits an in-order byte stream into SIP messages. One per connection direction.
#[derive(Debug)]
pub struct SipStreamFramer {
    buf: Vec<u8>,
    buffer_bytes_max: usize,
    state: State,
    stats: FramerStats,
    /// For the incomplete message at the start of `buf`: where the search for the end of
    /// its header section resumes, and its total length once known. They keep the work per
    /// pushed segment proportional to the segment, not to the buffered message.
    header_scan_from: usize,
    known_total: Option<usize>,
}

impl Default for SipStreamFramer {
    fn default() -> Self {
        Self::new(STREAM_BUFFER_BYTES_DEFAULT)
    }
}

/// Whether `partial` (an incomplete first line) could still become a start line.
fn could_be_start(partial: &[u8]) -> bool {
    // Method token then SP, or "SIP/"; be generous: token characters, '/', '.', ' ', ':'
    // and URI characters are all fine in a start line; control bytes are not.
    partial
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b >= 0x80 || b == b'\r' || b == b'\t')
}

impl SipStreamFramer {
    /// A framer holding at most `buffer_bytes_max` bytes of an incomplete message (at
    /// least 1 KiB is used).
    pub fn new(buffer_bytes_max: usize) -> Self {
        SipStreamFramer {
            buf: Vec::new(),
            buffer_bytes_max: buffer_bytes_max.max(1024),
            state: State::Idle,
            stats: FramerStats::default(),
            header_scan_from: 0,
            known_total: None,
        }
    }

    pub fn stats(&self) -> &FramerStats {
        &self.stats
    }

    /// Bytes held for an incomplete message.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The stream lost bytes (a gap the reassembler gave up on, or a new connection on the
    /// same tuple): drop any partial message and resynchronise on the next start line.
    pub fn reset(&mut self) {
        self.stats.gap_discarded_bytes += self.buf.len() as u64;
        self.buf.clear();
        self.state = State::Resync;
        self.header_scan_from = 0;
        self.known_total = None;
    }

    /// Feeds the next bytes of the stream; `on_message` is called with each complete
    /// message (start line to end of body). Messages fully inside `data` are passed
    /// without copying.
    pub fn push<F: FnMut(&[u8])>(&mut self, data: &[u8], mut on_message: F) {
        if self.buf.is_empty() {
            let used = self.process(data, &mut on_message, false);
            self.stash(&data[used..]);
            return;
        }
        // Append in chunks so the buffer never exceeds its bound.
        let mut data = data;
        while !data.is_empty() {
            let room = self.buffer_bytes_max.saturating_sub(self.buf.len());
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            let mut buf = std::mem::take(&mut self.buf);
            let full = buf.len() >= self.buffer_bytes_max;
            let used = self.process(&buf, &mut on_message, full);
            buf.drain(..used);
            self.buf = buf;
            if self.buf.is_empty() && !data.is_empty() {
                let used = self.process(data, &mut on_message, false);
                self.stash(&data[used..]);
                return;
            }
        }
    }

    /// Keeps an unconsumed tail (bounded: `process` consumed everything beyond the bound).
    fn stash(&mut self, tail: &[u8]) {
        if tail.len() > self.buffer_bytes_max {
            // Cannot happen: process() only leaves an incomplete message it judged to fit;
            // guard anyway so the bound holds.
            self.stats.oversized_bytes += tail.len() as u64;
            self.stats.oversized_messages += 1;
            self.state = State::Resync;
            return;
        }
        self.buf.extend_from_slice(tail);
    }

    /// Consumes as much of `data` as possible; returns the bytes used. `full` means `data`
    /// is the whole buffer at its bound (an incomplete message there can never complete).
    fn process<F: FnMut(&[u8])>(&mut self, data: &[u8], on_message: &mut F, full: bool) -> usize {
        let mut pos = 0;
        // Hints about the message at data[0], from the previous call.
        let mut scan_hint = std::mem::take(&mut self.header_scan_from);
        let mut total_hint = self.known_total.take();
        loop {
            let rest = &data[pos..];
            if rest.is_empty() {
                return pos;
            }
            match self.state {
                State::Skip(n) => {
                    let k = n.min(rest.len());
                    self.stats.oversized_bytes += k as u64;
                    pos += k;
                    self.state = if k == n {
                        State::Idle
                    } else {
                        State::Skip(n - k)
                    };
                }
                State::Resync => {
                    // Find a line start that begins a start line.
                    let mut i = 0;
                    let mut found = None;
                    let mut incomplete_from = None;
                    while i < rest.len() {
                        let at_line_start = i == 0 || rest[i - 1] == b'\n';
                        if at_line_start && rest[i] != b'\r' && rest[i] != b'\n' {
                            match rest[i..].iter().position(|&b| b == b'\n') {
                                Some(p) => {
                                    let line = &rest[i..i + p];
                                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                                    if is_start_line(line) {
                                        found = Some(i);
                                        break;
                                    }
                                    i += p + 1;
                                    continue;
                                }
                                None => {
                                    if rest.len() - i <= self.line_bytes_max()
                                        && could_be_start(&rest[i..])
                                    {
                                        incomplete_from = Some(i);
                                    }
                                    break;
                                }
                            }
                        }
                        match rest[i..].iter().position(|&b| b == b'\n') {
                            Some(p) => i += p + 1,
                            None => break,
                        }
                    }
                    match found {
                        Some(i) => {
                            self.stats.garbage_bytes += i as u64;
                            pos += i;
                            self.state = State::Idle;
                        }
                        None => {
                            // Keep a trailing partial line that may become a start line.
                            let keep_from = incomplete_from.unwrap_or(rest.len());
                            let keep_from = if full { rest.len() } else { keep_from };
                            self.stats.garbage_bytes += keep_from as u64;
                            return pos + keep_from;
                        }
                    }
                }
                State::Idle => {
                    let ka = rest
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    if ka > 0 {
                        self.stats.keepalive_bytes += ka as u64;
                        pos += ka;
                        continue;
                    }
                    if let Some(total) = total_hint.take().filter(|_| pos == 0) {
                        if rest.len() < total {
                            self.known_total = Some(total);
                            return pos;
                        }
                        self.emit(&rest[..total], on_message);
                        pos += total;
                        continue;
                    }
                    let scan_from = std::mem::take(&mut scan_hint);
                    let scan_from = if pos == 0 {
                        scan_from.min(rest.len())
                    } else {
                        0
                    };
                    // Check the first line once it is complete.
                    let Some(p) = rest.iter().position(|&b| b == b'\n') else {
                        if full || rest.len() > self.line_bytes_max() || !could_be_start(rest) {
                            self.state = State::Resync;
                            continue;
                        }
                        return pos;
                    };
                    let line = &rest[..p];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !is_start_line(line) {
                        self.state = State::Resync;
                        continue;
                    }
                    // The blank line ending the headers; a message with no header lines has
                    // it right after the start line, which this search also finds.
                    let found = find_headers_end(&rest[scan_from..])
                        .map(|(a, b)| (a + scan_from, b + scan_from));
                    let Some((_, body_start)) = found else {
                        if full || rest.len() >= self.buffer_bytes_max {
                            // Header section larger than the buffer: unknown length, drop
                            // what we have and resynchronise.
                            self.stats.oversized_messages += 1;
                            self.stats.oversized_bytes += rest.len() as u64;
                            pos += rest.len();
                            self.state = State::Resync;
                            continue;
                        }
                        // A terminator can start at most 3 bytes before the end.
                        self.header_scan_from = rest.len().saturating_sub(3);
                        return pos;
                    };
                    let body_len = self.content_length(&rest[p + 1..body_start]);
                    let total = body_start.saturating_add(body_len);
                    if total > self.buffer_bytes_max {
                        self.stats.oversized_messages += 1;
                        let k = total.min(rest.len());
                        self.stats.oversized_bytes += k as u64;
                        pos += k;
                        self.state = if k == total {
                            State::Idle
                        } else {
                            State::Skip(total - k)
                        };
                        continue;
                    }
                    if rest.len() < total {
                        self.known_total = Some(total);
                        return pos;
                    }
                    self.emit(&rest[..total], on_message);
                    pos += total;
                }
            }
        }
    }

    fn emit<F: FnMut(&[u8])>(&mut self, msg: &[u8], on_message: &mut F) {
        self.stats.messages += 1;
        self.stats.message_bytes += msg.len() as u64;
        on_message(msg);
    }

    /// Longest incomplete start line worth waiting for.
    fn line_bytes_max(&self) -> usize {
        self.buffer_bytes_max.min(4096)
    }

    /// The Content-Length of a header section (first one wins), counting absent/invalid.
    fn content_length(&mut self, headers: &[u8]) -> usize {
        let mut rest = headers;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |p| p + 1);
            let line = &rest[..end];
            rest = &rest[end..];
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = trim_bytes(&line[..colon]);
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                // Folded Content-Length values are not supported (never seen in practice).
                return match parse_u32(trim_bytes(&line[colon + 1..])) {
                    Some(n) => n as usize,
                    None => {
                        self.stats.invalid_content_length += 1;
                        0
                    }
                };
            }
        }
        self.stats.missing_content_length += 1;
        0
    }
}

/// What a [`TcpReassembler`] feeds: a consumer of in-order stream bytes that yields
/// messages ([`SipStreamFramer`], [`crate::WebSocketDeframer`]).
pub trait StreamConsumer {
    /// The next in-order bytes.
    fn push_bytes<F: FnMut(&[u8])>(&mut self, data: &[u8], on_message: F);
    /// Bytes were lost before the next push: drop partial state and resynchronise.
    fn gap(&mut self);
}

impl StreamConsumer for SipStreamFramer {
    fn push_bytes<F: FnMut(&[u8])>(&mut self, data: &[u8], on_message: F) {
        self.push(data, on_message);
    }
    fn gap(&mut self) {
        self.reset();
    }
}

impl StreamConsumer for crate::websocket::WebSocketDeframer {
    fn push_bytes<F: FnMut(&[u8])>(&mut self, data: &[u8], on_message: F) {
        self.push(data, on_message);
    }
    fn gap(&mut self) {
        self.reset();
    }
}

/// Counters of a [`TcpReassembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblerStats {
    pub segments: u64,
    /// Bytes handed to the framer in order.
    pub delivered_bytes: u64,
    /// Bytes dropped because they were already delivered (retransmission or overlap).
    pub duplicate_bytes: u64,
    /// Segments held because they arrived ahead of a hole.
    pub out_of_order_segments: u64,
    /// Out-of-order segments dropped: hold full, or too far ahead.
    pub dropped_segments: u64,
    pub dropped_bytes: u64,
    /// Holes given up on, and their total size in bytes.
    pub gaps: u64,
    pub gap_bytes: u64,
}

/// Puts one direction of a TCP connection in order and feeds a [`SipStreamFramer`] (or
/// another [`StreamConsumer`]).
#[derive(Debug)]
pub struct TcpReassembler<C: StreamConsumer = SipStreamFramer> {
    framer: C,
    next_seq: Option<u32>,
    held: Vec<(u32, Vec<u8>)>,
    held_bytes: usize,
    segments_max: usize,
    bytes_max: usize,
    stats: ReassemblerStats,
}

/// `a - b` in sequence space (RFC 793 modular arithmetic).
fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

impl TcpReassembler<SipStreamFramer> {
    /// Defaults: 64 KiB framer buffer, 32 segments / 64 KiB held.
    pub fn with_defaults() -> Self {
        Self::new(SipStreamFramer::default(), 32, 64 * 1024)
    }
}

impl<C: StreamConsumer> TcpReassembler<C> {
    /// Holds at most `segments_max` out-of-order segments totalling `bytes_max` bytes.
    pub fn new(framer: C, segments_max: usize, bytes_max: usize) -> Self {
        TcpReassembler {
            framer,
            next_seq: None,
            held: Vec::new(),
            held_bytes: 0,
            segments_max,
            bytes_max,
            stats: ReassemblerStats::default(),
        }
    }

    pub fn stats(&self) -> &ReassemblerStats {
        &self.stats
    }

    /// The consumer (framer) this reassembler feeds.
    pub fn framer(&self) -> &C {
        &self.framer
    }

    /// The sequence number expected next, once known.
    pub fn next_seq(&self) -> Option<u32> {
        self.next_seq
    }

    /// A SYN was seen with initial sequence number `isn`: data starts at `isn + 1`.
    pub fn syn(&mut self, isn: u32) {
        if self.next_seq.is_some() {
            self.reset_stream();
        }
        self.next_seq = Some(isn.wrapping_add(1));
    }

    fn reset_stream(&mut self) {
        self.held.clear();
        self.held_bytes = 0;
        self.framer.gap();
    }

    /// Feeds one segment: `seq` is the sequence number of the first payload byte.
    /// Without a SYN, the first segment seen sets the stream position (the framer
    /// resynchronises if it starts mid-message).
    pub fn push<F: FnMut(&[u8])>(&mut self, seq: u32, payload: &[u8], mut on_message: F) {
        self.stats.segments += 1;
        if payload.is_empty() {
            return;
        }
        let next = *self.next_seq.get_or_insert(seq);
        let d = seq_diff(seq, next);
        if d <= 0 {
            let already = (-d) as u64;
            if already >= payload.len() as u64 {
                self.stats.duplicate_bytes += payload.len() as u64;
                return;
            }
            let already = already as usize;
            self.stats.duplicate_bytes += already as u64;
            self.deliver(&payload[already..], &mut on_message);
            self.drain_held(&mut on_message);
            return;
        }
        // Ahead of a hole: hold it if there is room.
        let len = payload.len();
        let fits = self.held.len() < self.segments_max
            && self.held_bytes + len <= self.bytes_max
            && d < (1 << 30);
        if fits {
            self.stats.out_of_order_segments += 1;
            self.held.push((seq, payload.to_vec()));
            self.held_bytes += len;
            return;
        }
        if d >= (1 << 30) {
            // Far outside any plausible window: a bogus segment or a new connection.
            self.stats.dropped_segments += 1;
            self.stats.dropped_bytes += len as u64;
            return;
        }
        // Hold full: give up on the hole, then retry this segment.
        self.skip_gap(&mut on_message);
        self.push_after_gap(seq, payload, &mut on_message);
    }

    fn push_after_gap<F: FnMut(&[u8])>(&mut self, seq: u32, payload: &[u8], on_message: &mut F) {
        let next = self.next_seq.unwrap_or(seq);
        let d = seq_diff(seq, next);
        if d > 0 {
            // Still ahead (the held segments were before it): declare the hole lost.
            self.stats.gaps += 1;
            self.stats.gap_bytes += d as u64;
            self.framer.gap();
            self.next_seq = Some(seq);
        }
        let skip = (-d).max(0) as usize;
        if skip >= payload.len() {
            self.stats.duplicate_bytes += payload.len() as u64;
            return;
        }
        self.stats.duplicate_bytes += skip as u64;
        self.deliver(&payload[skip..], on_message);
        self.drain_held(on_message);
    }

    /// Declares the first hole lost: jumps to the earliest held segment and delivers what
    /// follows. Does nothing when nothing is held.
    pub fn skip_gap<F: FnMut(&[u8])>(&mut self, mut on_message: F) {
        let Some(next) = self.next_seq else { return };
        let Some(earliest) = self
            .held
            .iter()
            .map(|(s, _)| *s)
            .min_by_key(|s| seq_diff(*s, next))
        else {
            return;
        };
        let d = seq_diff(earliest, next);
        if d > 0 {
            self.stats.gaps += 1;
            self.stats.gap_bytes += d as u64;
            self.framer.gap();
            self.next_seq = Some(earliest);
        }
        self.drain_held(&mut on_message);
    }

    fn deliver<F: FnMut(&[u8])>(&mut self, data: &[u8], on_message: &mut F) {
        self.stats.delivered_bytes += data.len() as u64;
        let next = self.next_seq.unwrap_or(0);
        self.next_seq = Some(next.wrapping_add(data.len() as u32));
        self.framer.push_bytes(data, &mut *on_message);
    }

    /// Delivers held segments that are now in order (bounded by `segments_max` rounds).
    fn drain_held<F: FnMut(&[u8])>(&mut self, on_message: &mut F) {
        loop {
            let Some(next) = self.next_seq else { return };
            let Some(idx) = self.held.iter().position(|(s, _)| seq_diff(*s, next) <= 0) else {
                return;
            };
            let (seq, data) = self.held.swap_remove(idx);
            self.held_bytes -= data.len();
            let already = (-seq_diff(seq, next)) as usize;
            if already >= data.len() {
                self.stats.duplicate_bytes += data.len() as u64;
                continue;
            }
            self.stats.duplicate_bytes += already as u64;
            self.deliver(&data[already..], on_message);
        }
    }

    /// Bytes held out of order.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(cid: &str, body: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:x@198.51.100.1 SIP/2.0\r\nCall-ID: {cid}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn collect(f: &mut SipStreamFramer, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, |m| out.push(m.to_vec()));
        }
        out
    }

    #[test]
    fn several_in_one_and_split_across() {
        let a = msg("a", "hello");
        let b = msg("b", "");
        let c = msg("c", "v=0\r\n");
        let mut all = Vec::new();
        all.extend_from_slice(&a);
        all.extend_from_slice(b"\r\n\r\n");
        all.extend_from_slice(&b);
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(&c);
        // Every split point.
        for cut in 0..all.len() {
            let mut f = SipStreamFramer::default();
            let out = collect(&mut f, &[&all[..cut], &all[cut..]]);
            assert_eq!(out, vec![a.clone(), b.clone(), c.clone()], "cut {cut}");
            assert_eq!(f.stats().keepalive_bytes, 6);
            assert_eq!(f.buffered_bytes(), 0);
        }
        // Byte by byte.
        let mut f = SipStreamFramer::default();
        let chunks: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(collect(&mut f, &chunks).len(), 3);
    }

    #[test]
    fn resync_on_garbage() {
        let a = msg("a", "x\r\n");
        let mut all = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01junk".to_vec();
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(&a);
        let mut f = SipStreamFramer::default();
        let out = collect(&mut f, &[&all]);
        assert_eq!(out, vec![a.clone()]);
        assert!(f.stats().garbage_bytes > 20);
        // Garbage mid-body of a broken message after a gap.
        let mut f = SipStreamFramer::default();
        f.push(&a[..10], |_| panic!());
        f.reset();
        let out = collect(&mut f, &[&a[20..], &a]);
        assert_eq!(out, vec![a.clone()]);
        assert_eq!(f.stats().gap_discarded_bytes, 10);
    }

    #[test]
    fn oversized_is_skipped_exactly() {
        let big = msg("big", &"x".repeat(3000));
        let small = msg("s", "ok");
        let mut f = SipStreamFramer::new(1024);
        let mut all = big.clone();
        all.extend_from_slice(&small);
        let chunks: Vec<&[u8]> = all.chunks(100).collect();
        let out = collect(&mut f, &chunks);
        assert_eq!(out, vec![small]);
        assert_eq!(f.stats().oversized_messages, 1);
        assert_eq!(f.stats().oversized_bytes, big.len() as u64);
        assert!(f.buffered_bytes() <= 1024);
        // Endless header section: dropped at the bound.
        let mut f = SipStreamFramer::new(1024);
        f.push(b"OPTIONS sip:x SIP/2.0\r\n", |_| {});
        for _ in 0..100 {
            f.push(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaa\r\n", |_| {});
            assert!(f.buffered_bytes() <= 1024);
        }
        assert!(f.stats().oversized_messages >= 1);
    }

    #[test]
    fn missing_and_invalid_content_length() {
        let mut f = SipStreamFramer::default();
        let out = collect(
            &mut f,
            &[b"SIP/2.0 100 Trying\r\nCall-ID: a\r\n\r\nSIP/2.0 180 Ringing\r\nl: bogus\r\n\r\n"],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(f.stats().missing_content_length, 1);
        assert_eq!(f.stats().invalid_content_length, 1);
    }

    #[test]
    fn tcp_reorder_retransmit() {
        let a = msg("a", "first");
        let b = msg("b", "second");
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let segs: Vec<(u32, &[u8])> = all
            .chunks(17)
            .enumerate()
            .map(|(i, c)| (1000u32.wrapping_add((i * 17) as u32), c))
            .collect();
        // Reverse order after the first segment, plus a retransmission of each.
        let mut r = TcpReassembler::with_defaults();
        r.syn(999);
        let mut out = Vec::new();
        for (s, c) in segs.iter().rev() {
            r.push(*s, c, |m| out.push(m.to_vec()));
            r.push(*s, c, |m| out.push(m.to_vec()));
        }
        assert_eq!(out, vec![a.clone(), b.clone()]);
        assert_eq!(r.stats().delivered_bytes, all.len() as u64);
        assert!(r.stats().duplicate_bytes > 0);
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn tcp_wraparound_and_gap() {
        // Bodies end with CRLF so that after the loss the tail of `a` is not glued to `b`.
        let a = msg("a", "x\r\n");
        let b = msg("b", "y\r\n");
        let mut r = TcpReassembler::new(SipStreamFramer::default(), 2, 4096);
        let mut out = Vec::new();
        let base = u32::MAX - 5;
        r.push(base, &a[..10], |m| out.push(m.to_vec()));
        // Lose a[10..20]; the rest of a then b arrive; the hold fills and the gap is skipped.
        let s2 = base.wrapping_add(20);
        r.push(s2, &a[20..], |m| out.push(m.to_vec()));
        let s3 = base.wrapping_add(a.len() as u32);
        r.push(s3, &b[..5], |m| out.push(m.to_vec()));
        r.push(s3.wrapping_add(5), &b[5..], |m| out.push(m.to_vec()));
        assert_eq!(out, vec![b.clone()]);
        assert_eq!(r.stats().gaps, 1);
        assert_eq!(r.stats().gap_bytes, 10);
        assert!(r.framer().stats().gap_discarded_bytes + r.framer().stats().garbage_bytes > 0);
    }
}
