//! SIP over WebSocket (RFC 7118): unwrapping RFC 6455 frames from one direction of a TCP
//! stream so that each WebSocket message can go to [`crate::SipMessage::parse_with`].
//!
//! ```text
//! |F|R|R|R| opcode|M| len7 | [len16 | len64] | [mask key 32] | payload (XOR mask)
//! ```
//!
//! [`WebSocketDeframer`] skips the HTTP upgrade request or response at the start of the
//! stream, then yields the unmasked payload of every text/binary message (continuation
//! frames joined). Control frames (close, ping, pong) are skipped. Limits: a message or
//! an incomplete frame larger than `buffer_bytes_max` (default 64 KiB) is dropped and
//! counted, and its bytes skipped exactly; an unknown opcode or a reserved bit set means
//! the stream is not WebSocket (or is lost): the buffered bytes are dropped and counted,
//! and the deframer waits for the next [`WebSocketDeframer::reset`]. Allocation: two
//! buffers, each at most `buffer_bytes_max`.

use crate::text::find;

/// Counters of a [`WebSocketDeframer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    pub handshake_bytes: u64,
    pub frames: u64,
    pub control_frames: u64,
    pub messages: u64,
    /// Messages dropped for exceeding the buffer bound, and their bytes.
    pub oversized_messages: u64,
    pub oversized_bytes: u64,
    /// Bytes dropped because they did not parse as frames.
    pub bad_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Frames,
    /// Skipping the payload of an oversized frame.
    Skip(u64),
    /// Not WebSocket: drop until reset.
    Failed,
}

/// Whether a stream direction starting with `data` is a WebSocket upgrade.
pub fn looks_like_handshake(data: &[u8]) -> bool {
    let head = &data[..data.len().min(2048)];
    let lower_has = |needle: &[u8]| {
        head.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    (head.starts_with(b"GET ") || head.starts_with(b"HTTP/1.1 101"))
        && lower_has(b"upgrade: websocket")
}

/// Unwraps WebSocket messages from one in-order stream direction.
#[derive(Debug)]
pub struct WebSocketDeframer {
    buf: Vec<u8>,
    msg: Vec<u8>,
    msg_oversized: bool,
    buffer_bytes_max: usize,
    state: State,
    stats: WsStats,
}

impl Default for WebSocketDeframer {
    fn default() -> Self {
        Self::new(crate::stream::STREAM_BUFFER_BYTES_DEFAULT)
    }
}

impl WebSocketDeframer {
    pub fn new(buffer_bytes_max: usize) -> Self {
        WebSocketDeframer {
            buf: Vec::new(),
            msg: Vec::new(),
            msg_oversized: false,
            buffer_bytes_max: buffer_bytes_max.max(1024),
            state: State::Start,
            stats: WsStats::default(),
        }
    }

    pub fn stats(&self) -> &WsStats {
        &self.stats
    }

    /// Bytes held (incomplete frame plus incomplete message).
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() + self.msg.len()
    }

    /// Forget partial data (a gap in the stream); the next bytes must start a frame.
    pub fn reset(&mut self) {
        self.stats.bad_bytes += (self.buf.len() + self.msg.len()) as u64;
        self.buf.clear();
        self.msg.clear();
        self.msg_oversized = false;
        self.state = State::Frames;
    }

    /// Feeds stream bytes; `on_message` gets each complete text/binary message.
    pub fn push<F: FnMut(&[u8])>(&mut self, mut data: &[u8], mut on_message: F) {
        while !data.is_empty() {
            let room = self.buffer_bytes_max.saturating_sub(self.buf.len()).max(1);
            let take = room.min(data.len());
            // Skipped payload bytes need not be buffered.
            if let State::Skip(n) = self.state {
                let k = (n.min(data.len() as u64)) as usize;
                self.stats.oversized_bytes += k as u64;
                data = &data[k..];
                self.state = if k as u64 == n {
                    State::Frames
                } else {
                    State::Skip(n - k as u64)
                };
                continue;
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.process(&mut on_message);
            if self.buf.len() >= self.buffer_bytes_max {
                // Cannot happen: process() consumes or skips anything that large.
                self.stats.bad_bytes += self.buf.len() as u64;
                self.buf.clear();
                self.state = State::Failed;
            }
        }
    }

    fn process<F: FnMut(&[u8])>(&mut self, on_message: &mut F) {
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            if rest.is_empty() {
                break;
            }
            match self.state {
                State::Failed => {
                    self.stats.bad_bytes += rest.len() as u64;
                    pos = self.buf.len();
                }
                State::Skip(n) => {
                    let k = n.min(rest.len() as u64) as usize;
                    self.stats.oversized_bytes += k as u64;
                    pos += k;
                    self.state = if k as u64 == n {
                        State::Frames
                    } else {
                        State::Skip(n - k as u64)
                    };
                }
                State::Start => {
                    if rest.starts_with(b"GET ") || rest.starts_with(b"HTTP/") {
                        match find(rest, b"\r\n\r\n") {
                            Some(p) => {
                                self.stats.handshake_bytes += (p + 4) as u64;
                                pos += p + 4;
                                self.state = State::Frames;
                            }
                            None if rest.len() >= self.buffer_bytes_max => {
                                self.stats.bad_bytes += rest.len() as u64;
                                pos = self.buf.len();
                                self.state = State::Failed;
                            }
                            None => break,
                        }
                    } else if rest.len() < 4 {
                        break;
                    } else {
                        self.state = State::Frames;
                    }
                }
                State::Frames => {
                    let Some(FrameHeader {
                        header_len,
                        fin,
                        opcode,
                        mask,
                        payload_len: len,
                    }) = frame_header(rest)
                    else {
                        break;
                    };
                    if rest[0] & 0x70 != 0 || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
                        self.stats.bad_bytes += rest.len() as u64;
                        pos = self.buf.len();
                        self.state = State::Failed;
                        continue;
                    }
                    // A 64-bit length near u64::MAX must not overflow (found by fuzzing).
                    let total = (header_len as u64).saturating_add(len);
                    if total > self.buffer_bytes_max as u64 {
                        self.stats.frames += 1;
                        self.stats.oversized_messages += 1;
                        self.msg.clear();
                        self.msg_oversized = !fin;
                        let k = total.min(rest.len() as u64) as usize;
                        self.stats.oversized_bytes += k as u64;
                        pos += k;
                        if (k as u64) < total {
                            self.state = State::Skip(total - k as u64);
                        }
                        continue;
                    }
                    let total = total as usize;
                    if rest.len() < total {
                        break;
                    }
                    self.stats.frames += 1;
                    let payload = &rest[header_len..total];
                    if opcode >= 8 {
                        self.stats.control_frames += 1;
                    } else if self.msg_oversized {
                        self.stats.oversized_bytes += payload.len() as u64;
                        if fin {
                            self.msg_oversized = false;
                        }
                    } else if self.msg.len() + payload.len() > self.buffer_bytes_max {
                        self.stats.oversized_messages += 1;
                        self.stats.oversized_bytes += (self.msg.len() + payload.len()) as u64;
                        self.msg.clear();
                        self.msg_oversized = !fin;
                    } else {
                        let start = self.msg.len();
                        self.msg.extend_from_slice(payload);
                        if let Some(key) = mask {
                            for (i, b) in self.msg[start..].iter_mut().enumerate() {
                                *b ^= key[i & 3];
                            }
                        }
                        if fin {
                            self.stats.messages += 1;
                            on_message(&self.msg);
                            self.msg.clear();
                        }
                    }
                    pos += total;
                }
            }
        }
        self.buf.drain(..pos);
    }
}

/// A frame header.
struct FrameHeader {
    header_len: usize,
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload_len: u64,
}

/// The frame header at the start of `b`, or `None` when incomplete.
fn frame_header(b: &[u8]) -> Option<FrameHeader> {
    if b.len() < 2 {
        return None;
    }
    let fin = b[0] & 0x80 != 0;
    let opcode = b[0] & 0x0f;
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7f {
        126 => (u64::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4),
        127 => {
            let x: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(x), 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let k: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(k)
    } else {
        None
    };
    Some(FrameHeader {
        header_len: at,
        fin,
        opcode,
        mask,
        payload_len: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else if payload.len() < 65536 {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    #[test]
    fn handshake_masked_fragmented_control() {
        let sip = b"OPTIONS sip:x@198.51.100.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let mut s =
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n".to_vec();
        assert!(looks_like_handshake(&s));
        s.extend(frame(true, 1, Some([1, 2, 3, 4]), sip));
        s.extend(frame(true, 9, None, b"ping"));
        s.extend(frame(false, 1, Some([9, 9, 9, 9]), &sip[..10]));
        s.extend(frame(true, 0, Some([7, 7, 7, 7]), &sip[10..]));
        for cut in 0..s.len() {
            let mut d = WebSocketDeframer::default();
            let mut out = Vec::new();
            d.push(&s[..cut], |m| out.push(m.to_vec()));
            d.push(&s[cut..], |m| out.push(m.to_vec()));
            assert_eq!(out, vec![sip.to_vec(), sip.to_vec()], "cut {cut}");
            assert_eq!(d.stats().control_frames, 1);
            assert_eq!(d.buffered_bytes(), 0);
        }
    }

    #[test]
    fn oversized_and_garbage() {
        let big = vec![b'a'; 5000];
        let mut s = frame(true, 2, None, &big);
        s.extend(frame(true, 1, None, b"ok"));
        let mut d = WebSocketDeframer::new(1024);
        let mut out = Vec::new();
        for c in s.chunks(100) {
            d.push(c, |m| out.push(m.to_vec()));
            assert!(d.buffered_bytes() <= 2048);
        }
        assert_eq!(out, vec![b"ok".to_vec()]);
        assert_eq!(d.stats().oversized_messages, 1);
        let mut d = WebSocketDeframer::default();
        d.push(b"\x7f\x00garbage", |_| panic!());
        assert!(d.stats().bad_bytes > 0);
        assert!(!looks_like_handshake(b"INVITE sip:x SIP/2.0\r\n"));
        // 64-bit payload length of u64::MAX (fuzz regression): skipped, counted, no overflow.
        let mut d = WebSocketDeframer::default();
        let mut f = vec![0x82, 0xff];
        f.extend_from_slice(&u64::MAX.to_be_bytes());
        f.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        d.push(&f, |_| panic!());
        d.push(&[0u8; 100], |_| panic!());
        assert_eq!(d.stats().oversized_messages, 1);
        assert_eq!(d.buffered_bytes(), 0);
    }
}
