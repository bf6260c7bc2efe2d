//! `xdprec stat --store DIR [--interval S] [--json] [--count N]`: tails the per-core stats
//! files of a store like vmstat: one row per capture thread per interval.
//!
//! Rates are differences of two snapshots over the writer's own clock (`update_ns`); counters
//! are totals since the capture started; `ring_fill`, `active_streams`, `p99_write_us` and
//! `gapms` (`max_loop_gap_ns`: the longest time the capture thread was away from its ring) are
//! gauges over the last second; the JSON's `run_delay_ns`, `steal_ns` and
//! `involuntary_switches` tell where a long gap came from. `dupdrop` counts frames not stored because a copy of the same
//! IP packet was stored within the dedup window (`xdprec_capture::dedup`); the JSON rows
//! carry every counter, `dup_dropped` and `dedup_evicted` included. A hot standby's rows show
//! recorder `NAME.sb`. The file layout is documented in `xdprec_capture::stats`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xdprec_capture::stats::{list_stats_files, Field, Snapshot, StatsReader};
use xdprec_classify::Counter;

#[derive(clap::Args)]
pub struct Args {
    /// Store directory of a running (or finished) capture.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Seconds between rows.
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub interval: f64,
    /// One JSON object per row and line.
    #[arg(long)]
    pub json: bool,
    /// Stop after N intervals (default: run until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

fn civil(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

struct Row {
    time: String,
    snap: Snapshot,
    pps: f64,
    mbps: f64,
    alive: bool,
}

fn row(prev: Option<&Snapshot>, cur: &Snapshot, interval_s: f64) -> Row {
    let (dp, db, dt) = match prev {
        Some(p) => {
            let dt_ns = cur
                .get(Field::UpdateNs)
                .saturating_sub(p.get(Field::UpdateNs));
            let dt = if dt_ns > 0 {
                dt_ns as f64 / 1e9
            } else {
                interval_s
            };
            (
                cur.get(Field::RxPackets)
                    .saturating_sub(p.get(Field::RxPackets)),
                cur.get(Field::RxBytes)
                    .saturating_sub(p.get(Field::RxBytes)),
                dt,
            )
        }
        None => (0, 0, interval_s),
    };
    let now = xdprec_capture::live::wall_ns();
    Row {
        time: civil(now),
        snap: cur.clone(),
        pps: dp as f64 / dt,
        mbps: db as f64 * 8.0 / dt / 1e6,
        alive: alive(cur.pid),
    }
}

fn json(r: &Row) -> serde_json::Value {
    let s = &r.snap;
    let mut m = serde_json::Map::new();
    m.insert("time".into(), r.time.clone().into());
    m.insert(
        "core".into(),
        s.id.core.map_or(serde_json::Value::Null, |c| c.into()),
    );
    m.insert("queue".into(), s.id.queue.into());
    m.insert("iface".into(), s.id.iface.clone().into());
    m.insert("recorder".into(), s.id.recorder.clone().into());
    m.insert("pid".into(), s.pid.into());
    m.insert("alive".into(), r.alive.into());
    m.insert("pps".into(), ((r.pps * 10.0).round() / 10.0).into());
    m.insert("mbps".into(), ((r.mbps * 1000.0).round() / 1000.0).into());
    m.insert(
        "p99_write_us".into(),
        ((s.get(Field::P99WriteNs) as f64 / 100.0).round() / 10.0).into(),
    );
    for f in Field::ALL {
        m.insert(f.label().into(), s.get(*f).into());
    }
    let mut probe = serde_json::Map::new();
    for c in Counter::ALL {
        probe.insert(c.label().into(), s.probe(*c).into());
    }
    m.insert("probe".into(), probe.into());
    serde_json::Value::Object(m)
}

const HEADER: &str = "time                 iface            q core        pps    Mbit/s    written    dupdrop  ringfull fillempty  invalid diskfull  streams ringfill p99us gapms recorder";

fn text(r: &Row) -> String {
    let s = &r.snap;
    format!(
        "{:20} {:<15} {:>2} {:>4} {:>10.0} {:>9.2} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>5.0} {:>5} {}{}",
        r.time,
        s.id.iface,
        s.id.queue,
        s.id.core.map_or("-".to_string(), |c| c.to_string()),
        r.pps,
        r.mbps,
        s.get(Field::Written),
        s.get(Field::DupDropped),
        s.get(Field::XskRingFull),
        s.get(Field::XskFillEmpty),
        s.get(Field::XskInvalidDescs),
        s.get(Field::DiskFull),
        s.get(Field::ActiveStreams),
        s.get(Field::RingFill),
        s.get(Field::P99WriteNs) as f64 / 1000.0,
        s.get(Field::MaxLoopGapNs) / 1_000_000,
        s.id.recorder,
        if r.alive { "" } else { " (capture not running)" }
    )
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.interval > 0.0 && args.interval <= 3600.0) {
        anyhow::bail!("--interval must be in (0, 3600] seconds");
    }
    if !args.store.is_dir() {
        anyhow::bail!("store {} does not exist", args.store.display());
    }
    let mut readers: BTreeMap<PathBuf, StatsReader> = BTreeMap::new();
    let mut prev: BTreeMap<PathBuf, Snapshot> = BTreeMap::new();
    let refresh = |readers: &mut BTreeMap<PathBuf, StatsReader>| {
        readers.retain(|_, r| !r.is_stale());
        for p in list_stats_files(&args.store) {
            if let std::collections::btree_map::Entry::Vacant(slot) = readers.entry(p) {
                match StatsReader::open(slot.key()) {
                    Ok(r) => {
                        slot.insert(r);
                    }
                    Err(e) => log::warn!("{e}"),
                }
            }
        }
    };
    refresh(&mut readers);
    for (p, r) in &readers {
        if let Ok(s) = r.read() {
            prev.insert(p.clone(), s);
        }
    }
    let mut rows_printed = 0u64;
    let mut n = 0u64;
    loop {
        if args.count.is_some_and(|c| n >= c) {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
        n += 1;
        refresh(&mut readers);
        if readers.is_empty() {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"time": civil(xdprec_capture::live::wall_ns()), "error": "no stats files in the store (is a capture running?)"})
                );
            } else {
                println!(
                    "no stats files in {}/stats (is a capture running?)",
                    args.store.display()
                );
            }
            continue;
        }
        if !args.json && rows_printed.is_multiple_of(20) {
            println!("{HEADER}");
        }
        for (p, r) in &readers {
            let cur = match r.read() {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("{e}");
                    continue;
                }
            };
            let rw = row(prev.get(p), &cur, args.interval);
            if args.json {
                println!("{}", json(&rw));
            } else {
                println!("{}", text(&rw));
            }
            rows_printed += 1;
            prev.insert(p.clone(), cur);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_time_formats() {
        assert_eq!(super::civil(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::civil(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
    }
}
