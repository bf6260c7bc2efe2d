//! Pacing: a token bucket on a monotonic clock, or the traffic's own timeline.
//!
//! Credit is kept in token·ns (tokens × 10⁹, so refilling is `elapsed_ns × rate` in integers).
//! A token is a packet (`Pps`) or a bit of frame data (`BitsPerSec`, frame bytes × 8, no
//! preamble or gap). The bucket holds at most 20 ms of traffic (or one batch, if larger), so a
//! late wake-up is made up within the bucket but an idle sender cannot save up a burst.
//! Frames go out in batches of about 1 ms of traffic ([`Pacer::batch_hint`]): small enough to
//! hold a rate within 5 % over a second, large enough to amortise a system call.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How fast to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the sender goes.
    TopSpeed,
    /// Follow the frames' own timestamps (gaps of the capture or of the synthetic calls).
    Timeline,
    /// Packets per second.
    Pps(u64),
    /// Bits of frame data per second.
    BitsPerSec(u64),
}

const BURST_NS: u128 = 20_000_000;
const NS: u128 = 1_000_000_000;
/// Traffic per send call, in ns of traffic at the asked rate.
const BATCH_NS: u64 = 1_000_000;
/// Frame size assumed when sizing batches for a bit rate (a G.711 RTP frame).
const TYPICAL_FRAME_BYTES: u64 = 214;

/// A monotonic clock that can also wait; tests use [`FakeClock`].
pub trait Clock {
    fn now_ns(&self) -> u64;
    /// Waits until `now_ns() >= deadline_ns` or about `max_ns` passed, whichever is first.
    fn sleep_until(&self, deadline_ns: u64, max_ns: u64);
}

/// The real clock: `Instant` since creation.
pub struct MonotonicClock {
    t0: Instant,
}

impl MonotonicClock {
    pub fn new() -> MonotonicClock {
        MonotonicClock { t0: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn sleep_until(&self, deadline_ns: u64, max_ns: u64) {
        let now = self.now_ns();
        let wait = deadline_ns.saturating_sub(now).min(max_ns);
        if wait > 60_000 {
            // The kernel's timer slack (50 µs) makes shorter sleeps pointless; the bucket
            // absorbs the overshoot.
            std::thread::sleep(Duration::from_nanos(wait - 10_000));
        } else if wait > 0 {
            std::thread::yield_now();
        }
    }
}

/// A clock that moves only when told (or when slept on): deterministic pacing tests.
#[derive(Default)]
pub struct FakeClock {
    now: Cell<u64>,
}

impl FakeClock {
    pub fn new() -> FakeClock {
        FakeClock::default()
    }

    pub fn advance(&self, ns: u64) {
        self.now.set(self.now.get() + ns);
    }
}

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn sleep_until(&self, deadline_ns: u64, max_ns: u64) {
        let now = self.now.get();
        self.now
            .set(deadline_ns.clamp(now, now.saturating_add(max_ns)));
    }
}

/// The answer of [`Pacer::grant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Frames (from the front of the pending ones) that may go now.
    pub count: usize,
    /// When `count` is 0: the clock time at which to ask again.
    pub retry_at_ns: u64,
}

/// Decides how many pending frames may be sent now.
#[derive(Debug)]
pub struct Pacer {
    pace: Pace,
    rate: u128,
    credit: u128,
    burst: u128,
    last_ns: u64,
    start_ns: u64,
    first_ts: Option<u64>,
    batch: usize,
    weight: u128,
}

impl Pacer {
    /// `batch_max`: the most frames the sender takes in one call.
    pub fn new(pace: Pace, now_ns: u64, batch_max: usize) -> Pacer {
        Pacer::weighted(pace, now_ns, batch_max, 1)
    }

    /// Like [`Pacer::new`] where each frame becomes `packets` packets (a sender's repeat): a
    /// frame costs that many tokens and batches shrink to match.
    pub fn weighted(pace: Pace, now_ns: u64, batch_max: usize, packets: u32) -> Pacer {
        let batch_max = batch_max.max(1);
        let weight = u64::from(packets.max(1));
        let (rate, unit_max, frames_per_s) = match pace {
            Pace::Pps(r) => (u128::from(r.max(1)), 1u128, r.max(1) / weight),
            Pace::BitsPerSec(r) => (
                u128::from(r.max(1)),
                (crate::source::FRAME_BYTES_MAX as u128) * 8,
                r.max(1) / (TYPICAL_FRAME_BYTES * 8) / weight,
            ),
            Pace::TopSpeed | Pace::Timeline => (0, 0, 0),
        };
        let batch = match pace {
            Pace::TopSpeed => batch_max,
            Pace::Timeline => 1,
            _ => ((frames_per_s.saturating_mul(BATCH_NS) / 1_000_000_000) as usize)
                .clamp(1, batch_max),
        };
        let w = u128::from(weight);
        let burst = (rate * BURST_NS).max((batch as u128 + 1) * unit_max * w * NS);
        Pacer {
            pace,
            rate,
            // Start with one batch of credit so that the first send does not wait.
            credit: (batch as u128 * w * NS).min(burst),
            burst,
            last_ns: now_ns,
            start_ns: now_ns,
            first_ts: None,
            batch,
            weight: w,
        }
    }

    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// Frames to hand the sender per call: about 1 ms of traffic at the asked rate, at least
    /// 1, at most the sender's batch.
    pub fn batch_hint(&self) -> usize {
        self.batch
    }

    fn cost(&self, len: u32) -> u128 {
        self.weight
            * match self.pace {
                Pace::BitsPerSec(_) => u128::from(len) * 8 * NS,
                _ => NS,
            }
    }

    fn refill(&mut self, now_ns: u64) {
        let dt = u128::from(now_ns.saturating_sub(self.last_ns));
        self.last_ns = self.last_ns.max(now_ns);
        self.credit = (self.credit + dt * self.rate).min(self.burst);
    }

    /// How many of `frames` ((timestamp, length) in send order) may go at `now_ns`. In rate
    /// modes it waits for `min(batch_hint, frames.len())` frames' worth of credit so that
    /// system calls carry full batches. Granted frames are paid for; call
    /// [`Pacer::refund`] for those the sender did not take.
    pub fn grant(&mut self, now_ns: u64, frames: &[(u64, u32)]) -> Grant {
        let none = Grant {
            count: 0,
            retry_at_ns: now_ns,
        };
        if frames.is_empty() {
            return none;
        }
        match self.pace {
            Pace::TopSpeed => Grant {
                count: frames.len(),
                retry_at_ns: now_ns,
            },
            Pace::Timeline => {
                let first = *self.first_ts.get_or_insert(frames[0].0);
                let elapsed = now_ns.saturating_sub(self.start_ns);
                let count = frames
                    .iter()
                    .take_while(|(ts, _)| ts.saturating_sub(first) <= elapsed)
                    .count();
                if count == 0 {
                    let due = self.start_ns + (frames[0].0 - first);
                    return Grant {
                        count: 0,
                        retry_at_ns: due,
                    };
                }
                Grant {
                    count,
                    retry_at_ns: now_ns,
                }
            }
            Pace::Pps(_) | Pace::BitsPerSec(_) => {
                self.refill(now_ns);
                let want = self.batch.min(frames.len());
                let mut need: u128 = 0;
                let mut count = 0;
                for &(_, len) in frames {
                    let c = self.cost(len);
                    if need + c > self.credit {
                        break;
                    }
                    need += c;
                    count += 1;
                }
                if count < want {
                    let need_want: u128 = frames[..want]
                        .iter()
                        .map(|&(_, l)| self.cost(l))
                        .sum::<u128>()
                        .min(self.burst);
                    let deficit = need_want.saturating_sub(self.credit);
                    let wait = deficit.div_ceil(self.rate).max(1);
                    return Grant {
                        count: 0,
                        retry_at_ns: now_ns.saturating_add(u64::try_from(wait).unwrap_or(u64::MAX)),
                    };
                }
                self.credit -= need;
                Grant {
                    count,
                    retry_at_ns: now_ns,
                }
            }
        }
    }

    /// Gives back the credit of granted frames that were not sent.
    pub fn refund(&mut self, lens: impl Iterator<Item = u32>) {
        if matches!(self.pace, Pace::Pps(_) | Pace::BitsPerSec(_)) {
            let c: u128 = lens.map(|l| self.cost(l)).sum();
            self.credit = (self.credit + c).min(self.burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a pacer the way the runner does, with a sender that takes `per_frame_ns` per
    /// frame; returns the send times of the frames.
    fn drive(pace: Pace, frames: &[(u64, u32)], until_ns: u64, per_frame_ns: u64) -> Vec<u64> {
        let clock = FakeClock::new();
        let mut p = Pacer::new(pace, clock.now_ns(), 64);
        let mut sent_at = Vec::new();
        let mut i = 0;
        while i < frames.len() && clock.now_ns() < until_ns {
            let hi = (i + 64).min(frames.len());
            let g = p.grant(clock.now_ns(), &frames[i..hi]);
            if g.count == 0 {
                assert!(g.retry_at_ns > clock.now_ns() || pace == Pace::Timeline);
                clock.sleep_until(g.retry_at_ns, 100_000_000);
                continue;
            }
            for _ in 0..g.count {
                sent_at.push(clock.now_ns());
                clock.advance(per_frame_ns);
            }
            i += g.count;
        }
        sent_at
    }

    fn frames(n: usize, len: u32) -> Vec<(u64, u32)> {
        (0..n).map(|i| (i as u64, len)).collect()
    }

    #[test]
    fn pps_holds_the_rate_over_each_second() {
        for rate in [50u64, 1_000, 37_000, 400_000] {
            let f = frames(rate as usize * 3 + 1000, 214);
            let t = drive(Pace::Pps(rate), &f, 3_000_000_000, 200);
            for s in 0..3u64 {
                let n = t
                    .iter()
                    .filter(|&&x| x >= s * 1_000_000_000 && x < (s + 1) * 1_000_000_000)
                    .count() as f64;
                let err = (n - rate as f64).abs() / rate as f64;
                assert!(err < 0.01, "rate {rate}, second {s}: {n} packets");
            }
        }
    }

    #[test]
    fn bit_rate_counts_frame_bytes() {
        // 10 Mbit/s of 1250-byte frames is 1000 frames a second.
        let f = frames(5000, 1250);
        let t = drive(Pace::BitsPerSec(10_000_000), &f, 2_000_000_000, 100);
        let n = t.iter().filter(|&&x| x < 2_000_000_000).count();
        assert!((1990..=2010).contains(&n), "{n}");
    }

    #[test]
    fn a_slow_sender_cannot_bank_a_burst() {
        // The sender stalls 500 ms; afterwards at most 20 ms of traffic goes out at once.
        let clock = FakeClock::new();
        let mut p = Pacer::new(Pace::Pps(10_000), 0, 64);
        clock.advance(500_000_000);
        let f = frames(100_000, 214);
        let mut total = 0;
        loop {
            let g = p.grant(clock.now_ns(), &f[total..total + 64]);
            if g.count == 0 {
                break;
            }
            total += g.count;
        }
        assert!(total <= 210, "burst of {total}");
        assert!(total >= 190, "burst of {total}");
    }

    #[test]
    fn batches_are_sized_by_rate() {
        assert_eq!(Pacer::new(Pace::Pps(100), 0, 64).batch_hint(), 1);
        assert_eq!(Pacer::new(Pace::Pps(20_000), 0, 64).batch_hint(), 20);
        assert_eq!(Pacer::new(Pace::Pps(5_000_000), 0, 64).batch_hint(), 64);
        assert_eq!(Pacer::new(Pace::TopSpeed, 0, 32).batch_hint(), 32);
    }

    #[test]
    fn timeline_follows_the_gaps() {
        let f = [
            (1_000, 100),
            (1_000 + 5_000_000, 100),
            (1_000 + 30_000_000, 100),
        ];
        let t = drive(Pace::Timeline, &f, u64::MAX, 1_000);
        assert_eq!(t, vec![0, 5_000_000, 30_000_000]);
    }

    #[test]
    fn refund_returns_credit() {
        let mut p = Pacer::new(Pace::Pps(1000), 0, 64);
        let g = p.grant(0, &frames(1, 214));
        assert_eq!(g.count, 1);
        assert_eq!(p.grant(0, &frames(1, 214)).count, 0);
        p.refund([214].into_iter());
        assert_eq!(p.grant(0, &frames(1, 214)).count, 1);
    }

    #[test]
    fn weighted_frames_cost_their_packets() {
        // 10 copies per frame at 100 kpps: 10 k frames a second, batches of 10 frames.
        let clock = FakeClock::new();
        let mut p = Pacer::weighted(Pace::Pps(100_000), 0, 64, 10);
        assert_eq!(p.batch_hint(), 10);
        let f = frames(100_000, 214);
        let mut i = 0;
        while clock.now_ns() < 1_000_000_000 {
            let g = p.grant(clock.now_ns(), &f[i..i + 64]);
            if g.count == 0 {
                clock.sleep_until(g.retry_at_ns, u64::MAX);
            }
            i += g.count;
        }
        assert!((9_900..=10_100).contains(&i), "{i} frames");
    }

    #[test]
    fn top_speed_grants_everything() {
        let mut p = Pacer::new(Pace::TopSpeed, 0, 64);
        assert_eq!(p.grant(0, &frames(64, 214)).count, 64);
    }
}
