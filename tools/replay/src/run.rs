//! The replay loop: pull frames from a source into a preallocated ring, let the pacer decide
//! how many may go, hand them to the sender, report once a second.
//!
//! Nothing is allocated per frame: the ring holds `2 × batch` slots of
//! [`FRAME_BYTES_MAX`] bytes. A busy sender (`consumed == 0`) is retried after 50 µs; a frame
//! the sender refuses [`BUSY_RETRIES_MAX`] times in a row is dropped and counted as an error.
//! The run ends at the end of the source, at `duration_ns` (wall clock), or when `stop` is set
//! (Ctrl-C); every wait is cut into slices of at most 100 ms so that stopping is prompt.

use crate::pace::{Clock, Pace, Pacer};
use crate::sender::{Frame, Sender};
use crate::source::{FrameMeta, FrameSource, FRAME_BYTES_MAX};
use crate::Error;
use std::sync::atomic::{AtomicBool, Ordering};

/// The most frames the loop hands a sender at once.
pub const BATCH_MAX: usize = 256;
/// Consecutive busy answers after which the frame at the head is dropped (about 0.5 s).
pub const BUSY_RETRIES_MAX: u32 = 10_000;
const BUSY_WAIT_NS: u64 = 50_000;
const WAIT_SLICE_NS: u64 = 100_000_000;
const PROGRESS_EVERY_NS: u64 = 1_000_000_000;

/// Bounds of a run (besides the end of the source).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// Wall-clock length of the run.
    pub duration_ns: Option<u64>,
    /// Frames to send at most.
    pub frames_max: Option<u64>,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    SourceEnd,
    Duration,
    FramesMax,
    Stopped,
}

/// Counters of a run so far (also the final summary).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub sender: &'static str,
    pub packets: u64,
    pub bytes: u64,
    /// Frames the sender refused for good.
    pub errors: u64,
    /// Busy answers (each retried).
    pub busy: u64,
    /// Input packets the source could not turn into frames.
    pub skipped: u64,
    pub elapsed_ns: u64,
    /// Packets and bytes in the last progress interval, and its length.
    pub interval_packets: u64,
    pub interval_bytes: u64,
    pub interval_ns: u64,
    pub end: Option<EndReason>,
}

impl Summary {
    pub fn pps(&self) -> f64 {
        rate(self.packets, self.elapsed_ns)
    }

    /// Mbit/s of frame data (no preamble or inter-frame gap).
    pub fn mbps(&self) -> f64 {
        rate(self.bytes * 8, self.elapsed_ns) / 1e6
    }

    pub fn interval_pps(&self) -> f64 {
        rate(self.interval_packets, self.interval_ns)
    }

    pub fn interval_mbps(&self) -> f64 {
        rate(self.interval_bytes * 8, self.interval_ns) / 1e6
    }
}

fn rate(n: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / ns as f64
    }
}

struct Ring {
    buf: Vec<u8>,
    meta: Vec<FrameMeta>,
    head: usize,
    count: usize,
}

impl Ring {
    fn new(slots: usize) -> Ring {
        Ring {
            buf: vec![0; slots * FRAME_BYTES_MAX],
            meta: vec![
                FrameMeta {
                    ts_ns: 0,
                    len: 0,
                    wire_len: 0
                };
                slots
            ],
            head: 0,
            count: 0,
        }
    }

    fn slots(&self) -> usize {
        self.meta.len()
    }

    fn idx(&self, i: usize) -> usize {
        (self.head + i) % self.slots()
    }

    fn frame(&self, i: usize) -> Frame<'_> {
        let s = self.idx(i);
        let m = self.meta[s];
        Frame {
            ts_ns: m.ts_ns,
            wire_len: m.wire_len,
            data: &self.buf[s * FRAME_BYTES_MAX..s * FRAME_BYTES_MAX + m.len],
        }
    }

    fn pop(&mut self, n: usize) {
        let n = n.min(self.count);
        self.head = (self.head + n) % self.slots();
        self.count -= n;
    }
}

/// Replays `source` through `sender` at `pace`. `progress` is called about once a second with
/// the counters so far. Returns the summary (also when stopped).
pub fn run(
    source: &mut dyn FrameSource,
    sender: &mut dyn Sender,
    pace: Pace,
    limits: Limits,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&Summary),
) -> Result<Summary, Error> {
    let batch_max = sender.batch_max().clamp(1, BATCH_MAX);
    let mut ring = Ring::new(2 * batch_max);
    let start = clock.now_ns();
    let mut pacer = Pacer::weighted(pace, start, batch_max, sender.repeat());
    let mut s = Summary {
        sender: sender.name(),
        packets: 0,
        bytes: 0,
        errors: 0,
        busy: 0,
        skipped: 0,
        elapsed_ns: 0,
        interval_packets: 0,
        interval_bytes: 0,
        interval_ns: 0,
        end: None,
    };
    let mut source_done = false;
    let mut taken: u64 = 0;
    let mut busy_in_a_row: u32 = 0;
    let mut next_progress = start + PROGRESS_EVERY_NS;
    let (mut last_p, mut last_b, mut last_t) = (0u64, 0u64, start);
    let mut pending = [(0u64, 0u32); BATCH_MAX];
    let end = loop {
        let now = clock.now_ns();
        if stop.load(Ordering::Relaxed) {
            break EndReason::Stopped;
        }
        if limits.duration_ns.is_some_and(|d| now - start >= d) {
            break EndReason::Duration;
        }
        if now >= next_progress {
            s.elapsed_ns = now - start;
            s.interval_packets = s.packets - last_p;
            s.interval_bytes = s.bytes - last_b;
            s.interval_ns = now - last_t;
            s.skipped = source.skipped();
            progress(&s);
            (last_p, last_b, last_t) = (s.packets, s.bytes, now);
            next_progress = now + PROGRESS_EVERY_NS;
        }
        // Top up the ring.
        while !source_done && ring.count < ring.slots() {
            if limits.frames_max.is_some_and(|m| taken >= m) {
                source_done = true;
                break;
            }
            let slot = ring.idx(ring.count);
            let out = &mut ring.buf[slot * FRAME_BYTES_MAX..(slot + 1) * FRAME_BYTES_MAX];
            match source.next_frame(out)? {
                Some(m) => {
                    ring.meta[slot] = m;
                    ring.count += 1;
                    taken += 1;
                }
                None => source_done = true,
            }
        }
        if ring.count == 0 {
            break if limits.frames_max.is_some_and(|m| taken >= m) {
                EndReason::FramesMax
            } else {
                EndReason::SourceEnd
            };
        }
        let n = ring.count.min(batch_max);
        for (i, p) in pending[..n].iter_mut().enumerate() {
            let f = ring.frame(i);
            *p = (f.ts_ns, f.data.len() as u32);
        }
        let g = pacer.grant(now, &pending[..n]);
        if g.count == 0 {
            let cap = limits
                .duration_ns
                .map(|d| (start + d).saturating_sub(now))
                .unwrap_or(WAIT_SLICE_NS)
                .clamp(1, WAIT_SLICE_NS);
            clock.sleep_until(g.retry_at_ns, cap);
            continue;
        }
        let mut frames = [Frame {
            ts_ns: 0,
            wire_len: 0,
            data: &[],
        }; BATCH_MAX];
        for (i, f) in frames[..g.count].iter_mut().enumerate() {
            *f = ring.frame(i);
        }
        let r = sender.send(&frames[..g.count])?;
        let consumed = r.consumed.min(g.count);
        pacer.refund(pending[consumed..g.count].iter().map(|&(_, l)| l));
        s.packets += r.sent as u64;
        s.bytes += r.bytes;
        s.errors += r.errors as u64;
        ring.pop(consumed);
        if consumed == 0 {
            s.busy += 1;
            busy_in_a_row += 1;
            if busy_in_a_row >= BUSY_RETRIES_MAX {
                ring.pop(1);
                s.errors += 1;
                busy_in_a_row = 0;
            }
            let now = clock.now_ns();
            clock.sleep_until(now + BUSY_WAIT_NS, BUSY_WAIT_NS);
        } else {
            busy_in_a_row = 0;
        }
    };
    sender.finish()?;
    let now = clock.now_ns();
    s.elapsed_ns = now - start;
    s.interval_packets = s.packets - last_p;
    s.interval_bytes = s.bytes - last_b;
    s.interval_ns = now - last_t;
    s.skipped = source.skipped();
    s.end = Some(end);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::FakeClock;
    use crate::sender::RecordingSender;
    use crate::synth::{Synth, SynthConfig};

    /// A source of `n` 100-byte frames 1 ms apart.
    struct Counting {
        n: u64,
        i: u64,
    }

    impl FrameSource for Counting {
        fn next_frame(&mut self, out: &mut [u8]) -> Result<Option<FrameMeta>, Error> {
            if self.i >= self.n {
                return Ok(None);
            }
            out[..8].copy_from_slice(&self.i.to_be_bytes());
            self.i += 1;
            Ok(Some(FrameMeta {
                ts_ns: self.i * 1_000_000,
                len: 100,
                wire_len: 100,
            }))
        }
    }

    fn go(
        src: &mut dyn FrameSource,
        snd: &mut RecordingSender,
        pace: Pace,
        limits: Limits,
    ) -> Summary {
        let clock = FakeClock::new();
        let stop = AtomicBool::new(false);
        let mut lines = 0;
        let s = run(src, snd, pace, limits, &clock, &stop, &mut |_| lines += 1).unwrap();
        assert!(lines as u64 >= (s.elapsed_ns / 1_000_000_000).saturating_sub(1));
        s
    }

    #[test]
    fn everything_arrives_in_order_despite_busy_sender() {
        let mut src = Counting { n: 10_000, i: 0 };
        let mut snd = RecordingSender {
            busy_every: 3,
            ..Default::default()
        };
        let s = go(&mut src, &mut snd, Pace::TopSpeed, Limits::default());
        assert_eq!(s.end, Some(EndReason::SourceEnd));
        assert_eq!(s.packets, 10_000);
        assert_eq!(s.bytes, 1_000_000);
        assert!(s.busy > 0);
        for (i, (_, f)) in snd.frames.iter().enumerate() {
            assert_eq!(f[..8], (i as u64).to_be_bytes());
        }
        assert_eq!(snd.frames.len(), 10_000);
    }

    #[test]
    fn duration_and_rate_bound_the_run() {
        let mut src = Synth::new(SynthConfig {
            generations: None,
            ..SynthConfig::new(500)
        })
        .unwrap();
        let mut snd = RecordingSender::default();
        let s = go(
            &mut src,
            &mut snd,
            Pace::Pps(20_000),
            Limits {
                duration_ns: Some(2_000_000_000),
                frames_max: None,
            },
        );
        assert_eq!(s.end, Some(EndReason::Duration));
        let err = (s.packets as f64 - 40_000.0).abs() / 40_000.0;
        assert!(err < 0.01, "{} packets in 2 s at 20 kpps", s.packets);
    }

    #[test]
    fn timeline_pacing_keeps_the_synthetic_rate() {
        // 50 calls with media up: 100 packets/s each; over 3 s of timeline the run takes 3 s.
        let mut cfg = SynthConfig::new(50);
        cfg.call_ns = 3_000_000_000;
        cfg.cps = Some(1000.0);
        let mut src = Synth::new(cfg).unwrap();
        let mut snd = RecordingSender::default();
        let s = go(&mut src, &mut snd, Pace::Timeline, Limits::default());
        assert_eq!(s.end, Some(EndReason::SourceEnd));
        let secs = s.elapsed_ns as f64 / 1e9;
        assert!((3.0..3.1).contains(&secs), "{secs} s");
    }

    #[test]
    fn frames_max_and_stop_end_the_run() {
        let mut src = Counting { n: 1000, i: 0 };
        let mut snd = RecordingSender::default();
        let s = go(
            &mut src,
            &mut snd,
            Pace::TopSpeed,
            Limits {
                duration_ns: None,
                frames_max: Some(77),
            },
        );
        assert_eq!(s.packets, 77);
        assert_eq!(s.end, Some(EndReason::FramesMax));

        let stop = AtomicBool::new(true);
        let clock = FakeClock::new();
        let mut src = Counting { n: 1000, i: 0 };
        let s = run(
            &mut src,
            &mut snd,
            Pace::TopSpeed,
            Limits::default(),
            &clock,
            &stop,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!((s.packets, s.end), (0, Some(EndReason::Stopped)));
    }
}
