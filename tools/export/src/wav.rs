//! WAV export: G.711 RTP decoded to 16-bit PCM at 8 kHz, one channel per direction.
//!
//! Samples are placed by RTP timestamp, not by arrival: a lost packet leaves its 20 ms as
//! silence, so the timing of the call holds. Each channel starts at the arrival time of its
//! first packet relative to the earliest channel, so the two directions line up. Packets of
//! other payload types in a G.711 stream (comfort noise, RFC 4733 events) are left as silence.
//! A stream whose packets are never G.711 is an error naming the payload type.

use crate::ExportError;
use std::io::Write;
use xdprec_sip::g711::Law;

/// One RTP packet of a direction, as recorded.
#[derive(Clone, Debug)]
pub struct RtpPacket<'a> {
    pub arrival_ns: u64,
    pub seq: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub payload: &'a [u8],
}

/// G.711 audio is 8000 samples a second.
pub const SAMPLE_RATE_HZ: u32 = 8000;

/// Builds the PCM of one direction: `samples_max` bounds memory (a hostile or broken stream
/// whose timestamps jump cannot make us allocate without limit; what lies beyond is cut and
/// reported through the return value).
pub fn decode_channel(
    packets: &[RtpPacket<'_>],
    start_ns: u64,
    samples_max: usize,
) -> Result<(Vec<i16>, ChannelReport), ExportError> {
    let mut report = ChannelReport::default();
    let Some(first) = packets
        .iter()
        .find(|p| Law::from_payload_type(p.payload_type).is_some())
    else {
        let pt = packets.first().map(|p| p.payload_type);
        return Err(ExportError::UnsupportedCodec { payload_type: pt });
    };
    // Offset of this channel from the call start, in samples.
    let lead = first.arrival_ns.saturating_sub(start_ns) as u128 * u128::from(SAMPLE_RATE_HZ)
        / 1_000_000_000;
    let lead = usize::try_from(lead).unwrap_or(usize::MAX).min(samples_max);
    let base_ts = first.timestamp;
    let mut pcm: Vec<i16> = Vec::new();
    for p in packets {
        let Some(codec) = Law::from_payload_type(p.payload_type) else {
            report.skipped_packets += 1;
            continue;
        };
        // Wrapping difference: timestamps before the first packet (reordering) come out
        // as huge values and are cut by samples_max below.
        let rel = p.timestamp.wrapping_sub(base_ts) as usize;
        let pos = lead.saturating_add(rel);
        let end = pos.saturating_add(p.payload.len());
        if end > samples_max {
            report.cut_packets += 1;
            continue;
        }
        if pcm.len() < end {
            pcm.resize(end, 0);
        }
        for (slot, b) in pcm[pos..end].iter_mut().zip(p.payload) {
            *slot = codec.decode(*b);
        }
        report.decoded_packets += 1;
    }
    Ok((pcm, report))
}

/// What happened to one channel's packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelReport {
    pub decoded_packets: u64,
    /// Not G.711 (comfort noise, events): silence.
    pub skipped_packets: u64,
    /// Beyond `samples_max`.
    pub cut_packets: u64,
}

/// Writes interleaved 16-bit PCM WAV with one channel per input (shorter channels padded with
/// silence).
pub fn write_wav<W: Write>(out: &mut W, channels: &[Vec<i16>]) -> std::io::Result<()> {
    let nch = channels.len().max(1) as u16;
    let frames = channels.iter().map(Vec::len).max().unwrap_or(0);
    let data_bytes = frames as u64 * u64::from(nch) * 2;
    let data_bytes = u32::try_from(data_bytes)
        .map_err(|_| std::io::Error::other("audio longer than a WAV file can hold (4 GiB)"))?;
    let byte_rate = SAMPLE_RATE_HZ * u32::from(nch) * 2;
    out.write_all(b"RIFF")?;
    out.write_all(&(36 + data_bytes).to_le_bytes())?;
    out.write_all(b"WAVEfmt ")?;
    out.write_all(&16u32.to_le_bytes())?;
    out.write_all(&1u16.to_le_bytes())?; // PCM
    out.write_all(&nch.to_le_bytes())?;
    out.write_all(&SAMPLE_RATE_HZ.to_le_bytes())?;
    out.write_all(&byte_rate.to_le_bytes())?;
    out.write_all(&(nch * 2).to_le_bytes())?; // block align
    out.write_all(&16u16.to_le_bytes())?; // bits per sample
    out.write_all(b"data")?;
    out.write_all(&data_bytes.to_le_bytes())?;
    let mut buf = Vec::with_capacity(64 * 1024);
    for i in 0..frames {
        for ch in channels {
            buf.extend_from_slice(&ch.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        if buf.len() >= 60 * 1024 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32, arrival_ms: u64, byte: u8) -> (u16, u32, u64, Vec<u8>) {
        (seq, ts, arrival_ms * 1_000_000, vec![byte; 160])
    }

    #[test]
    fn lost_packet_is_silence_and_timing_holds() {
        // Packets 0, 1, 3 of a PCMU stream: packet 2 lost.
        let raw = [
            pkt(10, 1000, 0, 0x80),
            pkt(11, 1160, 20, 0x80),
            pkt(13, 1480, 60, 0x80),
        ];
        let pkts: Vec<RtpPacket> = raw
            .iter()
            .map(|(s, t, a, p)| RtpPacket {
                arrival_ns: *a,
                seq: *s,
                timestamp: *t,
                payload_type: 0,
                payload: p,
            })
            .collect();
        let (pcm, rep) = decode_channel(&pkts, 0, 1 << 20).unwrap();
        assert_eq!(pcm.len(), 640);
        assert_eq!(rep.decoded_packets, 3);
        assert!(pcm[..320].iter().all(|&s| s == 32124));
        assert!(
            pcm[320..480].iter().all(|&s| s == 0),
            "lost packet must be silence"
        );
        assert!(pcm[480..].iter().all(|&s| s == 32124));
    }

    #[test]
    fn channel_starts_at_its_arrival_and_limit_holds() {
        let payload = vec![0xd5u8; 160];
        let pkts = [RtpPacket {
            arrival_ns: 100_000_000, // 100 ms after the call start: 800 samples of lead
            seq: 1,
            timestamp: 7,
            payload_type: 8,
            payload: &payload,
        }];
        let (pcm, _) = decode_channel(&pkts, 0, 1 << 20).unwrap();
        assert_eq!(pcm.len(), 960);
        assert!(pcm[..800].iter().all(|&s| s == 0));
        assert!(pcm[800..].iter().all(|&s| s == 8));
        let (pcm, rep) = decode_channel(&pkts, 0, 900).unwrap();
        assert!(pcm.is_empty());
        assert_eq!(rep.cut_packets, 1);
    }

    #[test]
    fn other_codec_is_an_error() {
        let payload = [0u8; 20];
        let pkts = [RtpPacket {
            arrival_ns: 0,
            seq: 1,
            timestamp: 0,
            payload_type: 18,
            payload: &payload,
        }];
        let err = decode_channel(&pkts, 0, 1000).unwrap_err();
        assert!(err.to_string().contains("18"), "{err}");
    }

    #[test]
    fn wav_header_is_valid() {
        let mut out = Vec::new();
        write_wav(&mut out, &[vec![1, 2, 3], vec![4]]).unwrap();
        assert_eq!(&out[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 36 + 12);
        assert_eq!(u16::from_le_bytes([out[22], out[23]]), 2);
        assert_eq!(out.len(), 44 + 12);
        // Interleaved: L0 R0 L1 R1 L2 R2 (R padded with silence).
        let s: Vec<i16> = out[44..]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(s, vec![1, 4, 2, 0, 3, 0]);
    }
}
