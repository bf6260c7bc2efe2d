//! RTP (RFC 3550 section 5.1) header view and the RFC 4733 telephone-event payload.
//!
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |                             SSRC                              |
//! |                 CSRC list (CC x 32 bits)                      |
//! | extension profile (16)        |   extension length (words)    |  if X
//! |                 extension data (length x 32 bits)             |
//! |                 payload ...          | padding | pad count    |  if P
//! ```
//!
//! [`Packet::new_checked`] verifies that the fixed header, CSRC list, extension and padding
//! all fit; after that no accessor panics. The version is checked by [`RtpRepr::parse`]
//! (and [`Packet::check_version`]) so that a caller can still look at a non-v2 packet.

use thiserror::Error;

/// Errors of the RTP/RTCP views. Each variant is a counter for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("packet shorter than its header says")]
    Truncated,
    #[error("RTP/RTCP version is not 2")]
    Version,
    #[error("padding count is zero or larger than the payload")]
    BadPadding,
    #[error("RTCP compound packet holds more than {max} packets")]
    TooManyPackets { max: usize },
    #[error("malformed field")]
    Malformed,
}

impl WireError {
    /// A stable snake_case label, for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::Version => "version",
            WireError::BadPadding => "bad_padding",
            WireError::TooManyPackets { .. } => "too_many_packets",
            WireError::Malformed => "malformed",
        }
    }
}

pub const HEADER_LEN: usize = 12;

/// A read-only view of an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks: accessors may panic on a short buffer.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps and runs [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Ensures every accessor stays within the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let mut len = HEADER_LEN + 4 * usize::from(b[0] & 0x0f);
        if b[0] & 0x10 != 0 {
            if b.len() < len + 4 {
                return Err(WireError::Truncated);
            }
            len += 4 + 4 * usize::from(be16(b, len + 2));
        }
        if b.len() < len {
            return Err(WireError::Truncated);
        }
        if b[0] & 0x20 != 0 {
            let pad = usize::from(b[b.len() - 1]);
            if pad == 0 || len + pad > b.len() {
                return Err(WireError::BadPadding);
            }
        }
        Ok(())
    }

    pub fn check_version(&self) -> Result<(), WireError> {
        if self.version() == 2 {
            Ok(())
        } else {
            Err(WireError::Version)
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }
    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[0] & 0x20 != 0
    }
    pub fn extension(&self) -> bool {
        self.buffer.as_ref()[0] & 0x10 != 0
    }
    pub fn csrc_count(&self) -> u8 {
        self.buffer.as_ref()[0] & 0x0f
    }
    pub fn marker(&self) -> bool {
        self.buffer.as_ref()[1] & 0x80 != 0
    }
    pub fn payload_type(&self) -> u8 {
        self.buffer.as_ref()[1] & 0x7f
    }
    pub fn sequence_number(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    pub fn timestamp(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
    pub fn ssrc(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }

    /// CSRC `i` (`None` past the count).
    pub fn csrc(&self, i: usize) -> Option<u32> {
        (i < usize::from(self.csrc_count())).then(|| be32(self.buffer.as_ref(), HEADER_LEN + 4 * i))
    }

    fn ext_offset(&self) -> usize {
        HEADER_LEN + 4 * usize::from(self.csrc_count())
    }

    /// Header extension: (profile, data), where data is `length` 32-bit words.
    pub fn extension_header(&self) -> Option<(u16, &[u8])> {
        if !self.extension() {
            return None;
        }
        let b = self.buffer.as_ref();
        let o = self.ext_offset();
        let words = usize::from(be16(b, o + 2));
        Some((be16(b, o), &b[o + 4..o + 4 + 4 * words]))
    }

    /// Total header length: fixed header, CSRCs and extension.
    pub fn header_len(&self) -> usize {
        let o = self.ext_offset();
        match self.extension_header() {
            Some((_, data)) => o + 4 + data.len(),
            None => o,
        }
    }

    /// Padding bytes at the end (including the count byte).
    pub fn padding_len(&self) -> usize {
        if self.padding() {
            let b = self.buffer.as_ref();
            usize::from(b[b.len() - 1])
        } else {
            0
        }
    }

    /// The payload without header and padding.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..b.len() - self.padding_len()]
    }
}

/// The fields of an RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpRepr {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    /// (profile, length in bytes) of a header extension.
    pub extension: Option<(u16, usize)>,
    pub header_len: usize,
    pub payload_len: usize,
    pub padding_len: usize,
}

impl RtpRepr {
    /// Parses a checked view; rejects versions other than 2.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<RtpRepr, WireError> {
        p.check_len()?;
        p.check_version()?;
        Ok(RtpRepr {
            marker: p.marker(),
            payload_type: p.payload_type(),
            sequence_number: p.sequence_number(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            csrc_count: p.csrc_count(),
            extension: p.extension_header().map(|(prof, d)| (prof, d.len())),
            header_len: p.header_len(),
            payload_len: p.payload().len(),
            padding_len: p.padding_len(),
        })
    }
}

/// Whether a datagram starting with these bytes is RTCP rather than RTP when both share a
/// port (RFC 5761 section 4: RTCP packet types 192..=223 occupy RTP PT 64..=95).
pub fn looks_like_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

/// RFC 4733 telephone-event payload (DTMF and friends).
///
/// ```text
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TelephoneEvent<T> {
    pub const LEN: usize = 4;

    pub fn new_unchecked(buffer: T) -> Self {
        TelephoneEvent { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let e = TelephoneEvent { buffer };
        e.check_len()?;
        Ok(e)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < Self::LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn event(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn end(&self) -> bool {
        self.buffer.as_ref()[1] & 0x80 != 0
    }
    /// Power level in -dBm0 (0..=63).
    pub fn volume(&self) -> u8 {
        self.buffer.as_ref()[1] & 0x3f
    }
    /// Duration in timestamp units.
    pub fn duration(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// The DTMF character for events 0..=15 (`0-9 * # A-D`).
    pub fn digit(&self) -> Option<char> {
        b"0123456789*#ABCD"
            .get(usize::from(self.event()))
            .map(|&c| char::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_basic() {
        let mut p = vec![
            0x80, 0x88, 0x12, 0x34, 0, 0, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef,
        ];
        p.extend_from_slice(&[0xaa; 160]);
        let v = Packet::new_checked(&p[..]).unwrap();
        let r = RtpRepr::parse(&v).unwrap();
        assert_eq!(
            (r.marker, r.payload_type, r.sequence_number),
            (true, 8, 0x1234)
        );
        assert_eq!((r.timestamp, r.ssrc, r.payload_len), (256, 0xdeadbeef, 160));
        assert!(!looks_like_rtcp(&p));
    }

    #[test]
    fn rtp_csrc_ext_padding() {
        let mut p = vec![0xb1, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0, 0, 0, 7]); // CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, 1 word
        p.extend_from_slice(&[9, 9, 9]); // payload
        p.extend_from_slice(&[0, 0, 3]); // padding 3
        let v = Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.csrc(0), Some(7));
        assert_eq!(v.csrc(1), None);
        assert_eq!(v.extension_header(), Some((0xbede, &[1u8, 2, 3, 4][..])));
        assert_eq!(v.payload(), &[9, 9, 9]);
        // Bad padding and truncations.
        let mut q = p.clone();
        *q.last_mut().unwrap() = 200;
        assert_eq!(
            Packet::new_checked(&q[..]).unwrap_err(),
            WireError::BadPadding
        );
        for n in 0..19 {
            assert!(Packet::new_checked(&p[..n]).is_err(), "len {n}");
        }
        let mut v1 = p.clone();
        v1[0] = 0x40;
        assert_eq!(
            RtpRepr::parse(&Packet::new_unchecked(&v1[..])),
            Err(WireError::Version)
        );
    }

    #[test]
    fn telephone_event() {
        let e = TelephoneEvent::new_checked(&[11u8, 0x8a, 0x03, 0x20][..]).unwrap();
        assert_eq!(
            (e.event(), e.end(), e.volume(), e.duration()),
            (11, true, 10, 800)
        );
        assert_eq!(e.digit(), Some('#'));
        assert!(TelephoneEvent::new_checked(&[1u8, 2][..]).is_err());
        assert_eq!(
            TelephoneEvent::new_unchecked(&[16u8, 0, 0, 0][..]).digit(),
            None
        );
    }
}
