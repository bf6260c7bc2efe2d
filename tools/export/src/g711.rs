//! G.711 decoding (ITU-T G.711): u-law (RTP payload type 0, PCMU) and A-law (8, PCMA) to
//! 16-bit linear PCM. Written out as the standard's segment arithmetic: two tiny functions,
//! no table to get wrong, and the unit tests check them against the standard's known values.

/// Decodes one u-law byte to a 16-bit sample.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let sample = magnitude - 0x84;
    (if sign != 0 { -sample } else { sample }) as i16
}

/// Decodes one A-law byte to a 16-bit sample.
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// The G.711 codecs export can decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G711 {
    Ulaw,
    Alaw,
}

impl G711 {
    /// By static RTP payload type (RFC 3551).
    pub fn from_payload_type(pt: u8) -> Option<G711> {
        match pt {
            0 => Some(G711::Ulaw),
            8 => Some(G711::Alaw),
            _ => None,
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            G711::Ulaw => ulaw_to_linear(byte),
            G711::Alaw => alaw_to_linear(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // 0xff and 0x7f are the two zeros; 0x00 / 0x80 the extremes (G.711 table 2a).
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xfe), 8);
        assert_eq!(ulaw_to_linear(0x7e), -8);
    }

    #[test]
    fn alaw_known_values() {
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
}
