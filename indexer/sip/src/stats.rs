//! Per-stream RTP statistics: interarrival jitter (RFC 3550 A.8) and sequence tracking
//! (RFC 3550 A.1). Both are fixed-size, allocate nothing and never panic.

/// RFC 3550 A.1 constants.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// How far back duplicates are recognised (bits of the history window).
const HISTORY_BITS: u16 = 128;

/// Interarrival jitter: `J += (|D| - J) / 16`, where `D` is the change in transit time
/// between consecutive packets, in timestamp units of the stream's clock rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterEstimator {
    clock_rate_hz: u32,
    last: Option<(u64, u32)>,
    jitter_units: f64,
}

impl JitterEstimator {
    /// `clock_rate_hz` of the payload (8000 for G.711); 0 disables the estimate.
    pub fn new(clock_rate_hz: u32) -> Self {
        JitterEstimator {
            clock_rate_hz,
            last: None,
            jitter_units: 0.0,
        }
    }

    /// Feeds one packet: arrival time in ns (any epoch, monotonic per stream) and its RTP
    /// timestamp. Timestamp wrap-around is handled; a packet arriving before the previous
    /// one (capture reordering) counts with a negative arrival delta, as in the RFC.
    pub fn update(&mut self, arrival_ns: u64, rtp_timestamp: u32) {
        if self.clock_rate_hz == 0 {
            return;
        }
        if let Some((last_ns, last_ts)) = self.last {
            let arrival_delta_ns = arrival_ns as i128 - last_ns as i128;
            let arrival_units = arrival_delta_ns as f64 * f64::from(self.clock_rate_hz) / 1e9;
            let ts_delta = f64::from(rtp_timestamp.wrapping_sub(last_ts) as i32);
            let d = (arrival_units - ts_delta).abs();
            if d.is_finite() {
                self.jitter_units += (d - self.jitter_units) / 16.0;
            }
        }
        self.last = Some((arrival_ns, rtp_timestamp));
    }

    /// Jitter in timestamp units (what RTCP report blocks carry).
    pub fn jitter_units(&self) -> f64 {
        self.jitter_units
    }

    /// Jitter in nanoseconds.
    pub fn jitter_ns(&self) -> f64 {
        if self.clock_rate_hz == 0 {
            0.0
        } else {
            self.jitter_units * 1e9 / f64::from(self.clock_rate_hz)
        }
    }

    pub fn clock_rate_hz(&self) -> u32 {
        self.clock_rate_hz
    }
}

/// What one sequence number meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    First,
    /// The next expected packet.
    InOrder,
    /// Ahead of the expected one: `missing` packets skipped (maybe late, maybe lost).
    Gap {
        missing: u16,
    },
    /// Seen before (within the last 128 sequence numbers).
    Duplicate,
    /// Behind the highest seen, not a known duplicate.
    Late,
    /// A big jump, not yet believed (ignored unless the next packet follows it).
    Jump,
    /// A second packet after a jump: the stream restarted at a new sequence number.
    Restart,
}

/// Extended sequence number, loss, duplicates and reordering of one RTP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqTracker {
    started: bool,
    base_ext: u64,
    max_seq: u16,
    cycles: u64,
    bad_seq: Option<u16>,
    history: u128,
    /// Expected packets of runs before a restart.
    expected_prior: u64,
    /// Unique packets accepted.
    pub received: u64,
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub late: u64,
    /// Packets ignored as a jump that the next packet did not confirm.
    pub jumps_ignored: u64,
    pub restarts: u64,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one sequence number.
    pub fn update(&mut self, seq: u16) -> SeqEvent {
        if !self.started {
            self.restart_at(seq);
            self.started = true;
            return SeqEvent::First;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta == 0 {
            self.duplicates += 1;
            return SeqEvent::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.history = if udelta >= HISTORY_BITS {
                1
            } else {
                (self.history << udelta) | 1
            };
            self.max_seq = seq;
            self.received += 1;
            self.bad_seq = None;
            return if udelta == 1 {
                SeqEvent::InOrder
            } else {
                SeqEvent::Gap {
                    missing: udelta - 1,
                }
            };
        }
        if udelta <= u16::MAX - MAX_MISORDER {
            // A large jump: believe it only when the next packet follows it.
            if self.bad_seq == Some(seq) {
                self.expected_prior += self.expected_current();
                self.restarts += 1;
                let rec = self.received;
                // The new run started with the jump packet (seq - 1): count it after all.
                self.restart_at(seq.wrapping_sub(1));
                if seq == 0 {
                    self.cycles += 1 << 16;
                }
                self.max_seq = seq;
                self.history = 0b11;
                self.received = rec + 2;
                self.jumps_ignored = self.jumps_ignored.saturating_sub(1);
                return SeqEvent::Restart;
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            self.jumps_ignored += 1;
            return SeqEvent::Jump;
        }
        // Behind the maximum by at most MAX_MISORDER.
        let back = self.max_seq.wrapping_sub(seq);
        if back < HISTORY_BITS {
            let bit = 1u128 << back;
            if self.history & bit != 0 {
                self.duplicates += 1;
                return SeqEvent::Duplicate;
            }
            self.history |= bit;
        }
        // A late packet from before the base (first packets reordered) extends the run.
        let ext = self.extended_of_late(back);
        if ext < self.base_ext {
            self.base_ext = ext;
        }
        self.received += 1;
        self.late += 1;
        SeqEvent::Late
    }

    fn restart_at(&mut self, seq: u16) {
        self.base_ext = u64::from(seq) + (1 << 16);
        self.cycles = 1 << 16;
        self.max_seq = seq;
        self.history = 1;
        self.bad_seq = None;
        self.received = 1;
    }

    fn extended_of_late(&self, back: u16) -> u64 {
        self.extended_max().saturating_sub(u64::from(back))
    }

    /// Highest extended sequence number seen (cycles in the upper bits). Starts at 65536
    /// plus the first sequence number so that late packets before it stay positive.
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    fn expected_current(&self) -> u64 {
        if !self.started {
            return 0;
        }
        self.extended_max() - self.base_ext + 1
    }

    /// Packets expected: highest - first + 1, summed over restarts.
    pub fn expected(&self) -> u64 {
        self.expected_prior + self.expected_current()
    }

    /// `expected - received` (negative when more unique packets came than expected,
    /// which only a restart miscount can cause).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_constant_and_step() {
        let mut j = JitterEstimator::new(8000);
        for i in 0..100u64 {
            j.update(
                i * 20_000_000,
                (i as u32).wrapping_mul(160).wrapping_add(u32::MAX - 500),
            );
        }
        assert!(j.jitter_units().abs() < 1e-6);
        // Every other packet 5 ms late -> |D| = 40 units each step; J converges to 40.
        let mut j = JitterEstimator::new(8000);
        for i in 0..2000u64 {
            let late = if i % 2 == 1 { 5_000_000 } else { 0 };
            j.update(i * 20_000_000 + late, (i as u32) * 160);
        }
        assert!(
            (j.jitter_units() - 40.0).abs() < 0.01,
            "{}",
            j.jitter_units()
        );
        assert!((j.jitter_ns() - 5_000_000.0).abs() < 2_000.0);
        let mut z = JitterEstimator::new(0);
        z.update(0, 0);
        z.update(1, 1);
        assert_eq!(z.jitter_ns(), 0.0);
    }

    #[test]
    fn seq_loss_dup_reorder_wrap() {
        let mut t = SeqTracker::new();
        assert_eq!(t.update(65530), SeqEvent::First);
        for s in [65531u16, 65532, 65534, 65535, 0, 1] {
            t.update(s);
        }
        assert_eq!(t.update(3), SeqEvent::Gap { missing: 1 });
        assert_eq!(t.update(2), SeqEvent::Late);
        assert_eq!(t.update(2), SeqEvent::Duplicate);
        assert_eq!(t.update(3), SeqEvent::Duplicate);
        // 65530..=3 is 10 packets, 65533 missing.
        assert_eq!(t.expected(), 10);
        assert_eq!(t.received, 9);
        assert_eq!(t.lost(), 1);
        assert_eq!((t.duplicates, t.late), (2, 1));
        assert_eq!(t.extended_max() - (1 << 16), 65536 + 3);
    }

    #[test]
    fn seq_restart_and_stray() {
        let mut t = SeqTracker::new();
        for s in 100u16..110 {
            t.update(s);
        }
        assert_eq!(t.update(30000), SeqEvent::Jump);
        assert_eq!(t.update(111), SeqEvent::Gap { missing: 1 });
        assert_eq!(t.update(40000), SeqEvent::Jump);
        assert_eq!(t.update(40001), SeqEvent::Restart);
        t.update(40002);
        // Run 1: 100..=111 expected 12, 11 received; run 2: 3 packets.
        assert_eq!(t.expected(), 15);
        assert_eq!(t.received, 14);
        assert_eq!(t.lost(), 1);
        assert_eq!((t.restarts, t.jumps_ignored), (1, 1));
        // Reordered start: a packet before the first extends the run.
        let mut t = SeqTracker::new();
        t.update(10);
        t.update(9);
        t.update(11);
        assert_eq!((t.expected(), t.lost()), (3, 0));
    }
}
