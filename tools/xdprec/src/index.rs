//! `xdprec index --store DIR [--store DIR ...] [--follow]` (contract): builds the call index.
//!
//! The index lives in `DIR/index.sqlite` of the first store (or `--db PATH`); its schema is
//! documented in `xdprec_index::schema`. It reads sealed segments; with `--follow` it keeps
//! polling (`--poll-ms`) for new records in the segment being written and for new segments,
//! until SIGINT/SIGTERM. Restart-safe: each segment's work is committed with its progress
//! mark, so running it again only reads what is new, and a killed run resumes where its last
//! commit ended. Capture never waits for it: it only reads segment files.
//!
//! Several stores (several recorders) go into one index; after each pass the calls held by
//! several recorders are consolidated (`xdprec_index::dedup`): 2N copies become primary and
//! secondary, the parts of a call that failed over from one recorder to another become one
//! call with fragments and a recorded gap. `--dup-*` and `--failover-*` set the thresholds.

use anyhow::Context;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use xdprec_index::dedup::DedupConfig;
use xdprec_index::{source, Config, Indexer, NatMatch};

fn secs_ns(s: f64, flag: &str) -> anyhow::Result<i64> {
    if !(0.0..=86_400.0).contains(&s) {
        anyhow::bail!("{flag} takes seconds between 0 and 86400");
    }
    Ok((s * 1e9) as i64)
}

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
    /// 2N: copies whose starts differ by more than this many seconds are kept apart.
    #[arg(long, default_value_t = 5.0)]
    pub dup_start_diff_s: f64,
    /// 2N: copies whose media lengths differ by more than this many seconds are kept apart.
    #[arg(long, default_value_t = 3.0)]
    pub dup_media_diff_s: f64,
    /// 2N: copies whose RTP packet counts differ by more than this are kept apart.
    #[arg(long, default_value_t = 200)]
    pub dup_packets_diff: i64,
    /// 2N: share (0..1) of the shorter copy's RTP sequence range both copies must cover, for
    /// every SSRC they share.
    #[arg(long, default_value_t = 0.5)]
    pub dup_seq_overlap: f64,
    /// Failover: the most time, in seconds, between the last packet on one recorder and the
    /// first on the next for the two to be parts of one call.
    #[arg(long, default_value_t = 60.0)]
    pub failover_gap_s: f64,
    /// Failover: how long, in seconds, the next recorder's part may overlap the previous one.
    #[arg(long, default_value_t = 2.0)]
    pub failover_overlap_s: f64,
    /// Failover: the most RTP sequence numbers a stream may skip across the hand-over.
    #[arg(long, default_value_t = 3000)]
    pub failover_seq_gap: u32,
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
        dedup: DedupConfig {
            start_diff_ns_max: secs_ns(args.dup_start_diff_s, "--dup-start-diff-s")?,
            media_diff_ns_max: secs_ns(args.dup_media_diff_s, "--dup-media-diff-s")?,
            packets_diff_max: args.dup_packets_diff.max(0),
            seq_overlap_min: if (0.0..=1.0).contains(&args.dup_seq_overlap) {
                args.dup_seq_overlap
            } else {
                anyhow::bail!("--dup-seq-overlap is a share between 0 and 1")
            },
            failover_gap_ns_max: secs_ns(args.failover_gap_s, "--failover-gap-s")?,
            failover_overlap_ns_max: secs_ns(args.failover_overlap_s, "--failover-overlap-s")?,
            failover_seq_gap_max: args.failover_seq_gap,
        },
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
    let mut first = true;
    loop {
        let mut did = source::PassStats::default();
        for s in &stores {
            let st = source::index_store(&mut ix, s, args.follow)?;
            did.segments += st.segments;
            did.records += st.records;
            did.unreadable += st.unreadable;
        }
        if did.segments > 0 || first {
            // Also on the first pass with nothing new: thresholds given now apply.
            let o = ix.consolidate()?;
            if o != Default::default() {
                log::info!(
                    "several recorders: {} 2N secondaries, {} failed-over calls in {} fragments, {} streams claimed across recorders ({} ambiguous)",
                    o.secondaries, o.failovers, o.fragments, o.claimed_streams, o.ambiguous_orphans
                );
            }
        }
        first = false;
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
