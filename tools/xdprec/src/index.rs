//! `xdprec index --store DIR [--store DIR ...] [--follow]` (contract): builds the call index.
//!
//! The index lives in `DIR/index.sqlite` of the first store (or `--db PATH`); its schema is
//! documented in `xdprec_index::schema`. It reads sealed segments; with `--follow` it keeps
//! polling (`--poll-ms`) for new records in the segment being written and for new segments,
//! until SIGINT/SIGTERM. Restart-safe: each segment's work is committed with its progress
//! mark, so running it again only reads what is new, and a killed run resumes where its last
//! commit ended. Capture never waits for it: it only reads segment files.

use anyhow::Context;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use xdprec_index::{source, Config, Indexer, NatMatch};

#[derive(clap::Args)]
pub struct Args {
    /// Store directory (repeatable; each may hold several recorders).
    #[arg(long = "store", required_unless_present = "pcap")]
    pub stores: Vec<PathBuf>,
    /// Keep following the stores: new records of open segments and new segments.
    #[arg(long)]
    pub follow: bool,
    /// Index database (default: index.sqlite in the first store).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Media behind NAT: off (SDP addresses only), port (also the SIP source address with
    /// the SDP port), timing (also the one call answered near the stream's first packet).
    #[arg(long, default_value = "port")]
    pub nat_match: NatMatch,
    /// Window for `--nat-match timing` and for SDP that arrives after its media, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub nat_window_s: f64,
    /// Calls kept in memory at once (least recently used evicted; the index keeps them).
    #[arg(long, default_value_t = 100_000)]
    pub calls_open_max: usize,
    /// RTP/RTCP streams kept in memory at once (evicted ones are written back).
    #[arg(long, default_value_t = 200_000)]
    pub streams_open_max: usize,
    /// A call without a final response is timed out after this many seconds of silence.
    #[arg(long, default_value_t = 64.0)]
    pub invite_timeout_s: f64,
    /// Poll interval with --follow, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Also index these pcap/pcapng files directly (no store; for tools and tests).
    #[arg(long)]
    pub pcap: Vec<PathBuf>,
    /// Recorder name for --pcap files.
    #[arg(long, default_value = "pcap")]
    pub recorder: String,
}

/// Where the index of these stores lives.
pub fn db_path(db: &Option<PathBuf>, stores: &[PathBuf]) -> anyhow::Result<PathBuf> {
    match (db, stores.first()) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(s)) => Ok(s.join("index.sqlite")),
        (None, None) => anyhow::bail!("give --store DIR or --db PATH"),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let stores: Vec<PathBuf> = args
        .stores
        .iter()
        .map(|s| {
            s.canonicalize()
                .with_context(|| format!("store {}", s.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let db = db_path(&args.db, &stores)?;
    let cfg = Config {
        calls_open_max: args.calls_open_max,
        streams_open_max: args.streams_open_max,
        invite_timeout_ns: (args.invite_timeout_s * 1e9) as i64,
        nat_match: args.nat_match,
        nat_window_ns: (args.nat_window_s * 1e9) as i64,
        ..Config::default()
    };
    let mut ix = Indexer::open(&db, cfg)?;
    log::info!("index {}", db.display());
    for p in &args.pcap {
        let n = source::index_pcap(&mut ix, p, &args.recorder)?;
        log::info!("{}: {n} frames", p.display());
    }
    let stop = Arc::new(AtomicBool::new(false));
    if args.follow {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone()).context("install signal handler")?;
        }
    }
    loop {
        let mut did = source::PassStats::default();
        for s in &stores {
            let st = source::index_store(&mut ix, s, args.follow)?;
            did.segments += st.segments;
            did.records += st.records;
            did.unreadable += st.unreadable;
        }
        if did.segments > 0 || !args.follow {
            log::info!(
                "read {} records from {} segments ({} unreadable, retried later); counters {:?}",
                did.records,
                did.segments,
                did.unreadable,
                ix.session_counters()
            );
        }
        if !args.follow || stop.load(Ordering::Relaxed) {
            break;
        }
        // Sleep in small steps so a signal ends the loop promptly.
        let mut left = args.poll_ms;
        while left > 0 && !stop.load(Ordering::Relaxed) {
            let step = left.min(100);
            std::thread::sleep(std::time::Duration::from_millis(step));
            left -= step;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(())
}
