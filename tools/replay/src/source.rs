//! Where frames come from: a capture file ([`PcapSource`]) or the call generator
//! ([`crate::synth::Synth`]).

use crate::Error;
use std::path::{Path, PathBuf};
use xdprec_pcapio::{to_ethernet, PcapReader};

/// The largest frame a source hands out (jumbo frames); longer packets are skipped and counted.
pub const FRAME_BYTES_MAX: usize = 9216;

/// One frame written by a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// The frame's time on the traffic's own timeline (ns since the Unix epoch).
    pub ts_ns: u64,
    /// Bytes written.
    pub len: usize,
    /// Length on the wire as recorded (>= len for snapped captures).
    pub wire_len: u32,
}

/// A sequence of Ethernet frames in time order.
pub trait FrameSource {
    /// Writes the next frame into `out` (at least [`FRAME_BYTES_MAX`] bytes); `None` at the end.
    fn next_frame(&mut self, out: &mut [u8]) -> Result<Option<FrameMeta>, Error>;
    /// Packets of the input that were not turned into frames (no IP, unknown link, too long).
    fn skipped(&self) -> u64 {
        0
    }
}

/// Frames of a pcap or pcapng file, any link type (non-Ethernet packets get a synthetic Ethernet
/// header, see `xdprec_pcapio::to_ethernet`), in file order, optionally looped.
///
/// Looping: each pass shifts timestamps by the previous pass's span plus 1 ms, so the timeline
/// keeps going forward.
pub struct PcapSource {
    path: PathBuf,
    reader: PcapReader,
    /// Passes still to start after this one; `None`: forever.
    passes_left: Option<u64>,
    offset_ns: u64,
    /// First timestamp of the first pass: the output timeline starts there.
    origin_ns: Option<u64>,
    first_ts: Option<u64>,
    last_ts: u64,
    frames_this_pass: u64,
    conv: Vec<u8>,
    skipped: u64,
}

const LOOP_GAP_NS: u64 = 1_000_000;

impl PcapSource {
    /// `passes`: how many times to play the file (`None`: forever; bound the run elsewhere).
    pub fn open(path: &Path, passes: Option<u64>) -> Result<PcapSource, Error> {
        let reader = PcapReader::open(path)?;
        Ok(PcapSource {
            path: path.to_path_buf(),
            reader,
            passes_left: passes.map(|p| p.saturating_sub(1)),
            offset_ns: 0,
            origin_ns: None,
            first_ts: None,
            last_ts: 0,
            frames_this_pass: 0,
            conv: Vec::with_capacity(FRAME_BYTES_MAX),
            skipped: 0,
        })
    }

    fn next_pass(&mut self) -> Result<bool, Error> {
        if self.frames_this_pass == 0 {
            return Ok(false); // an empty file would loop forever
        }
        match &mut self.passes_left {
            Some(0) => return Ok(false),
            Some(n) => *n -= 1,
            None => {}
        }
        let span = self.last_ts.saturating_sub(self.first_ts.unwrap_or(0));
        self.offset_ns = self
            .offset_ns
            .saturating_add(span)
            .saturating_add(LOOP_GAP_NS);
        self.first_ts = None;
        self.frames_this_pass = 0;
        self.reader = PcapReader::open(&self.path)?;
        Ok(true)
    }
}

impl FrameSource for PcapSource {
    fn next_frame(&mut self, out: &mut [u8]) -> Result<Option<FrameMeta>, Error> {
        loop {
            let pkt = match self.reader.next_packet() {
                Some(p) => p?,
                None => {
                    if self.next_pass()? {
                        continue;
                    }
                    return Ok(None);
                }
            };
            let (ts, wire_len) = (pkt.ts_ns, pkt.wire_len);
            if !to_ethernet(pkt.link, pkt.data, &mut self.conv) || self.conv.len() > out.len() {
                self.skipped += 1;
                continue;
            }
            let len = self.conv.len();
            out[..len].copy_from_slice(&self.conv);
            // The first frame of each pass starts the shifted timeline.
            let first = *self.first_ts.get_or_insert(ts);
            self.last_ts = ts.max(self.last_ts);
            self.frames_this_pass += 1;
            let origin = *self.origin_ns.get_or_insert(ts);
            let rel = ts.saturating_sub(first);
            return Ok(Some(FrameMeta {
                ts_ns: origin.saturating_add(self.offset_ns).saturating_add(rel),
                len,
                wire_len: wire_len.max(len as u32),
            }));
        }
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// An endless source of empty 64-byte frames: the runner's clock for senders that bring their
/// own frames ([`crate::sender::RingSender`]); each tick is one send call.
pub struct Ticks;

impl FrameSource for Ticks {
    fn next_frame(&mut self, out: &mut [u8]) -> Result<Option<FrameMeta>, Error> {
        let len = out.len().min(64);
        out[..len].fill(0);
        Ok(Some(FrameMeta {
            ts_ns: 0,
            len,
            wire_len: len as u32,
        }))
    }
}
