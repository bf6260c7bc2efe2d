//! xdprec-replay: synthetic calls, pcap replay and paced senders.
//!
//! - [`synth::Synth`]: N concurrent synthetic SIP calls with G.711 RTP and RTCP (see its
//!   module docs for the exact traffic), [`source::PcapSource`]: frames of a capture file.
//!   Both are [`source::FrameSource`]s.
//! - [`sender`]: BPF_PROG_RUN live frames ([`sender::LiveSender`]; distinct preloaded frames
//!   at the live-frames rate: [`sender::RingSender`]), AF_PACKET `sendmmsg`
//!   ([`sender::PacketSender`]), AF_XDP TX ([`afxdp::AfXdpSender`]), pcap output
//!   ([`sender::PcapSender`], [`sender::Tee`]).
//! - [`pace::Pacer`]: token bucket (pps or bit/s) or the traffic's own timeline.
//! - [`run::run`]: the loop tying them together, with progress and a summary.
//! - G.711 µ-law and A-law companding: `xdprec_sip::g711`, shared with export's decoder.
#![deny(unsafe_code)]

pub use sys::afxdp;
pub mod pace;
pub mod run;
pub mod sender;
pub mod source;
pub mod synth;
mod sys;

pub use afxdp::{AfXdpCounters, AfXdpSender};
pub use pace::{Clock, MonotonicClock, Pace};
pub use run::{run, EndReason, Limits, Summary};
pub use sender::{
    IfaceCounters, LiveSender, PacketSender, PcapSender, RingSender, Sender, SenderKind, Tee,
};
pub use source::{FrameSource, PcapSource, Ticks};
pub use synth::{Synth, SynthConfig};
pub use sys::{enter_netns, if_index, stop_on_signals};

use std::path::PathBuf;

/// Errors of the replay tools, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Pcap(#[from] xdprec_pcapio::PcapError),
    #[error("interface {iface}: {source} (does it exist in this network namespace?)")]
    Interface {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("AF_PACKET sender on {iface}: {op}: {source}")]
    Packet {
        iface: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("BPF live-frames sender on {iface}: {what}")]
    Live { iface: String, what: String },
    #[error("AF_XDP sender on {iface} queue {queue}: {what}")]
    AfXdp {
        iface: String,
        queue: u32,
        what: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
