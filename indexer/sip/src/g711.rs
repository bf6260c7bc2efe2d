//! G.711 companding (ITU-T G.711): µ-law (RTP payload type 0, PCMU) and A-law (PT 8, PCMA).
//!
//! G.711 is the RTP payload the recorder decodes (export writes a call's audio as WAV) and
//! generates (the replay tools' synthetic calls). Both directions live here, once.
//!
//! The algorithm is the classic Sun reference implementation (public domain), which matches the
//! ITU tables: µ-law works on 14-bit magnitude with a bias of 0x84, A-law on 13 bits with
//! alternate bits inverted (XOR 0x55). Inputs are 16-bit linear PCM. The unit tests check both
//! directions against the standard's known values.

const SEG_SHIFT: u32 = 4;
const QUANT_MASK: u8 = 0x0f;
const SEG_MASK: u8 = 0x70;
const SIGN_BIT: u8 = 0x80;
const ULAW_BIAS: i32 = 0x84;
/// µ-law clips the 14-bit magnitude here (32635 >> 2).
const ULAW_CLIP: i32 = 8159;

const SEG_AEND: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
const SEG_UEND: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

fn segment(v: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&e| v <= e).unwrap_or(8)
}

/// Encodes one 16-bit linear sample as µ-law.
pub fn linear_to_ulaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    v = v.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let u = ((seg as u8) << SEG_SHIFT) | (((v >> (seg + 1)) as u8) & QUANT_MASK);
    u ^ mask
}

/// Decodes one µ-law byte to 16-bit linear.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = (i32::from(u & QUANT_MASK) << 3) + ULAW_BIAS;
    t <<= u32::from((u & SEG_MASK) >> SEG_SHIFT);
    let v = if u & SIGN_BIT != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    };
    v as i16
}

/// Encodes one 16-bit linear sample as A-law.
pub fn linear_to_alaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 3;
    let mask: u8 = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let mut a = (seg as u8) << SEG_SHIFT;
    a |= if seg < 2 {
        ((v >> 1) as u8) & QUANT_MASK
    } else {
        ((v >> seg) as u8) & QUANT_MASK
    };
    a ^ mask
}

/// Decodes one A-law byte to 16-bit linear.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & QUANT_MASK) << 4;
    let seg = u32::from((a & SEG_MASK) >> SEG_SHIFT);
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    let v = if a & SIGN_BIT != 0 { t } else { -t };
    v as i16
}

/// The two G.711 laws, with their static RTP payload types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// PCMU, payload type 0.
    Ulaw,
    /// PCMA, payload type 8.
    Alaw,
}

impl Law {
    /// By static RTP payload type (RFC 3551); `None` for any other payload type.
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The SDP `rtpmap` encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Law::Ulaw => "PCMU",
            Law::Alaw => "PCMA",
        }
    }

    pub fn encode(self, pcm: i16) -> u8 {
        match self {
            Law::Ulaw => linear_to_ulaw(pcm),
            Law::Alaw => linear_to_alaw(pcm),
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_to_linear(code),
            Law::Alaw => alaw_to_linear(code),
        }
    }
}

/// One second (8000 samples at 8 kHz) of a sine tone of `freq_hz`, encoded with `law`.
/// An integer frequency repeats exactly after one second, so the table loops without a click.
pub fn tone_second(law: Law, freq_hz: u32, amplitude: i16) -> Vec<u8> {
    (0..8000u32)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * f64::from(freq_hz) * f64::from(n) / 8000.0;
            let s = (f64::from(amplitude) * phase.sin()).round() as i16;
            law.encode(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // Encoder end points and silence.
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        // Decoder: the ITU table starts -32124, -31100, -30076 ... and has two zeros.
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x01), -31100);
        assert_eq!(ulaw_to_linear(0x02), -30076);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0xf0), 120);
        assert_eq!(ulaw_to_linear(0x70), -120);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(32767), 0xaa);
        assert_eq!(linear_to_alaw(-32768), 0x2a);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        // The A-law table starts -5504, -5248 ...
        assert_eq!(alaw_to_linear(0x00), -5504);
        assert_eq!(alaw_to_linear(0x01), -5248);
        assert_eq!(alaw_to_linear(0x80), 5504);
    }

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            let back = linear_to_alaw(alaw_to_linear(c));
            assert_eq!(back, c, "A-law code {c:#04x}");
            // µ-law has a negative zero (0x7f) that encodes back as positive zero (0xff).
            let want = if c == 0x7f { 0xff } else { c };
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(c)),
                want,
                "µ-law code {c:#04x}"
            );
        }
    }

    #[test]
    fn quantisation_error_is_bounded_and_decoding_monotonic() {
        for law in [Law::Ulaw, Law::Alaw] {
            for x in (-32768i32..=32767).step_by(7) {
                let y = i32::from(law.decode(law.encode(x as i16)));
                // Largest G.711 step is 1024 (µ-law) / 1024 (A-law); error is under a step,
                // plus the µ-law clip at 32124.
                assert!((x - y).abs() <= 1024, "{law:?}: {x} -> {y}");
                assert!(x.signum() * y.signum() >= 0, "{law:?}: sign of {x} -> {y}");
            }
            // Larger input never decodes smaller.
            let mut last = i32::MIN;
            for x in (-32768i32..=32767).step_by(3) {
                let y = i32::from(law.decode(law.encode(x as i16)));
                assert!(y >= last, "{law:?} not monotonic at {x}");
                last = y;
            }
        }
    }

    #[test]
    fn tone_decodes_to_a_sine() {
        let t = tone_second(Law::Alaw, 400, 8000);
        assert_eq!(t.len(), 8000);
        // 400 Hz at 8 kHz: period 20 samples; sample 5 is the peak, 15 the trough.
        let peak = i32::from(alaw_to_linear(t[5]));
        let trough = i32::from(alaw_to_linear(t[15]));
        assert!((peak - 8000).abs() < 300, "peak {peak}");
        assert!((trough + 8000).abs() < 300, "trough {trough}");
        assert!(i32::from(alaw_to_linear(t[0])).abs() < 16);
        assert_eq!(Law::Ulaw.payload_type(), 0);
        assert_eq!(Law::Alaw.payload_type(), 8);
    }

    #[test]
    fn ulaw_decoder_known_values() {
        // 0xff and 0x7f are the two zeros; 0x00 / 0x80 the extremes (G.711 table 2a).
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xfe), 8);
        assert_eq!(ulaw_to_linear(0x7e), -8);
    }

    #[test]
    fn alaw_decoder_known_values() {
        // 0xd5 / 0x55 are the smallest magnitudes; 0xaa / 0x2a the extremes (G.711 table 1a).
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    #[test]
    fn decoding_is_monotonic_in_each_half() {
        // u-law: codes 0x80..=0xff decode to decreasing positive values.
        let pos: Vec<i16> = (0x80..=0xffu8).map(ulaw_to_linear).collect();
        assert!(pos.windows(2).all(|w| w[0] >= w[1]));
        // A-law: every code decodes to a distinct value.
        let mut all: Vec<i16> = (0..=255u8).map(alaw_to_linear).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn law_by_payload_type() {
        assert_eq!(Law::from_payload_type(0), Some(Law::Ulaw));
        assert_eq!(Law::from_payload_type(8), Some(Law::Alaw));
        assert_eq!(Law::from_payload_type(18), None);
        for law in [Law::Ulaw, Law::Alaw] {
            assert_eq!(Law::from_payload_type(law.payload_type()), Some(law));
        }
    }
}
