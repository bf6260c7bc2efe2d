//! xdprec-index: SIP dialogs into calls, media correlation, RTP quality, the SQLite call index.
//!
//! - [`engine`]: the call model, media correlation and the consumption transaction.
//! - [`schema`]: the SQLite schema (documented there).
//! - [`quality`]: RTP loss/jitter/DTMF and the MOS formula.
//! - [`query`]: reading calls back (`xdprec calls`).
//! - [`dedup`]: 2N, one call recorded by several recorders (primary/secondary).
//! - [`source`]: feeding segment stores (and pcap files, for tests) into the engine.
#![deny(unsafe_code)]

pub mod dedup;
pub mod engine;
pub mod error;
pub mod frame;
pub mod quality;
pub mod query;
pub mod schema;
pub mod sipmsg;
pub mod source;
pub mod tcp;
pub mod timefmt;

pub use engine::{Config, FrameIn, Hint, Indexer, NatMatch, SegCtx};
pub use error::{IndexError, Result};
