//! SIP, SDP, RTP and RTCP wire views and parsers for the xdprec indexer.
//!
//! Packet data is hostile. Every parser here:
//! - never panics, whatever the input (checked by unit tests, a corpus and mutation test
//!   over every capture in `../shared/corpus`, and the cargo-fuzz targets in `fuzz/`);
//! - does bounded work and allocation: each limit is a field of a `*Limits` struct or a
//!   constant, and hitting it returns a typed error variant (with a `label()` for counters);
//! - borrows from the input (`&[u8]`/`&str` into the message) instead of copying.
//!
//! Modules and their limits:
//! - [`sip`]: [`SipMessage`] from a datagram or a framed stream message
//!   ([`SipLimits`]: message 65535 B, start line 8 KiB, header section 16 KiB, header line
//!   8 KiB, 128 headers, 8 multipart parts); typed header values in [`header`]
//!   ([`NameAddr`], [`Uri`], [`Via`], [`CSeq`], [`ContentType`], [`Reason`]).
//! - [`multipart`]: multipart bodies, SDP part extraction (boundary 100 B, nesting 2).
//! - [`stream`]: [`SipStreamFramer`] (buffer 64 KiB default) and [`TcpReassembler`]
//!   (32 held segments / 64 KiB by default), with counters for every dropped byte.
//! - [`sdp`]: [`Sdp`] ([`SdpLimits`]: 64 KiB, 512 lines, 4 KiB a line, 16 media),
//!   [`MediaEndpoint`], codecs, RFC 3551 static payload types.
//! - [`rtp`]: RTP header view, RFC 4733 [`TelephoneEvent`]; [`rtcp`]: packet view,
//!   [`Compound`] iterator (64 packets), [`RtcpRepr`].
//! - [`stats`]: [`JitterEstimator`] and [`SeqTracker`].
//! - [`websocket`]: [`WebSocketDeframer`] for SIP over WebSocket (RFC 7118), 64 KiB.
#![deny(unsafe_code)]

pub mod g711;
pub mod header;
pub mod multipart;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod sip;
pub mod stats;
pub mod stream;
mod text;
pub mod websocket;

pub use header::{CSeq, ContentType, HeaderName, Method, NameAddr, Reason, Uri, Via};
pub use multipart::MultipartError;
pub use rtcp::{Compound, RtcpRepr};
pub use rtp::{RtpRepr, TelephoneEvent, WireError};
pub use sdp::{
    Codec, Connection, Direction, Media, MediaEndpoint, MediaKind, Sdp, SdpError, SdpLimits,
};
pub use sip::{
    BodyFraming, ContentLength, Header, SipError, SipLimits, SipMessage, StartLine, Warnings,
};
pub use stats::{JitterEstimator, SeqEvent, SeqTracker};
pub use stream::{FramerStats, ReassemblerStats, SipStreamFramer, StreamConsumer, TcpReassembler};
pub use websocket::{WebSocketDeframer, WsStats};
