//! `xdprec calls --store DIR [--store DIR ...] [--json] [--all] [--number N] [--call-id ID]
//! [--since T] [--until T]` (contract): searches the call index.
//!
//! With `--json`: one JSON object per call per line (fields: `xdprec_index::query::CallOut`;
//! times RFC 3339 UTC with nanoseconds, null where unknown). Several recorders: `recorders`
//! and `parts` say who holds which part of the call; a 2N copy is listed once (its
//! `secondary` rows only with `--all`); a failed-over call is one call whose `failover`
//! object gives the recorders in order, `gap_ms`/`gap_ns` and `missing_rtp`, and whose
//! `streams` include the parts recorded by the next recorder (`recorder` of each stream). Without it, a table for people.
//! The index of a store is `DIR/index.sqlite` (see `xdprec index`) or `--db PATH`; an index
//! that already covers a later `--store` (indexed together) is not read twice.
//! `--since`/`--until` take RFC 3339 or Unix seconds and bound the call's start time.

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use xdprec_index::query::{list_calls, orphan_streams, CallOut, Filter};
use xdprec_index::timefmt::parse_time;

#[derive(clap::Args)]
pub struct Args {
    /// Store directory (repeatable).
    #[arg(long = "store", required_unless_present = "db")]
    pub stores: Vec<PathBuf>,
    /// Index database to read instead of the stores' index.sqlite.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// One JSON object per call per line.
    #[arg(long)]
    pub json: bool,
    /// Include secondary copies (2N).
    #[arg(long)]
    pub all: bool,
    /// Substring of the From or To user part.
    #[arg(long)]
    pub number: Option<String>,
    /// Exact Call-ID.
    #[arg(long = "call-id")]
    pub call_id: Option<String>,
    /// Calls that started at or after T (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub since: Option<String>,
    /// Calls that started at or before T (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub until: Option<String>,
    /// List the RTP streams no call claimed (orphans) instead of calls, one JSON object a line.
    #[arg(long)]
    pub orphans: bool,
    /// At most N calls (the earliest first; per index when several stores are given).
    #[arg(long)]
    pub limit: Option<u64>,
}

fn time_arg(name: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|s| {
            parse_time(s).with_context(|| {
                format!("--{name} {s}: not RFC 3339 (2024-01-02T03:04:05Z) or Unix seconds")
            })
        })
        .transpose()
}

fn open_ro(path: &std::path::Path) -> anyhow::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("open index {}", path.display()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let filter = Filter {
        number: args.number.clone(),
        call_id: args.call_id.clone(),
        since_ns: time_arg("since", &args.since)?,
        until_ns: time_arg("until", &args.until)?,
        all: args.all,
        limit: args.limit,
    };
    let mut calls: Vec<CallOut> = Vec::new();
    let mut orphans = Vec::new();
    if let Some(db) = &args.db {
        let conn = open_ro(db)?;
        calls.extend(list_calls(&conn, &filter)?);
        if args.orphans {
            orphans.extend(orphan_streams(&conn)?);
        }
    } else {
        let mut covered: BTreeSet<PathBuf> = BTreeSet::new();
        let mut found = false;
        for s in &args.stores {
            let store = s
                .canonicalize()
                .with_context(|| format!("store {}", s.display()))?;
            if covered.contains(&store) {
                continue;
            }
            let db = store.join("index.sqlite");
            if !db.is_file() {
                continue;
            }
            found = true;
            let conn = open_ro(&db)?;
            let mut st = conn.prepare("SELECT DISTINCT store FROM recorders")?;
            for p in st.query_map([], |r| r.get::<_, String>(0))? {
                covered.insert(PathBuf::from(p?));
            }
            covered.insert(store);
            calls.extend(list_calls(&conn, &filter)?);
            if args.orphans {
                orphans.extend(orphan_streams(&conn)?);
            }
        }
        if !found {
            anyhow::bail!(
                "no index in {}: run `xdprec index --store DIR` first",
                args.stores
                    .iter()
                    .map(|s| s.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    calls.sort_by(|a, b| {
        (a.start_ns, &a.recorder, &a.call_id).cmp(&(b.start_ns, &b.recorder, &b.call_id))
    });
    if args.orphans {
        let mut out = String::new();
        for o in &orphans {
            out.push_str(&serde_json::to_string(o)?);
            out.push('\n');
        }
        return match std::io::stdout().write_all(out.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.context("write to stdout"),
        };
    }
    match print(&calls, args.json) {
        // `xdprec calls | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write to stdout"),
    }
}

fn print(calls: &[CallOut], json: bool) -> std::io::Result<()> {
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    if json {
        for c in calls {
            serde_json::to_writer(&mut out, c)?;
            writeln!(out)?;
        }
        return out.flush();
    }
    writeln!(
        out,
        "{:<30} {:<11} {:>8} {:<20} {:<20} {:>7} {:>9} {:>6} {:>4}  CALL-ID",
        "START (UTC)", "STATE", "DUR s", "FROM", "TO", "STREAMS", "PACKETS", "LOST", "MOS"
    )?;
    for c in calls {
        let packets: i64 = c.streams.iter().map(|s| s.packets).sum();
        let lost: i64 = c.streams.iter().map(|s| s.lost).sum();
        writeln!(
            out,
            "{:<30} {:<11} {:>8} {:<20} {:<20} {:>7} {:>9} {:>6} {:>4}  {}",
            c.start.as_deref().unwrap_or("-"),
            c.state,
            c.duration_s
                .map(|d| format!("{d:.1}"))
                .unwrap_or_else(|| "-".into()),
            trunc(&c.from_user, 20),
            trunc(&c.to_user, 20),
            c.streams.len(),
            packets,
            lost,
            c.mos
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "-".into()),
            c.call_id
        )?;
        if let Some(f) = &c.failover {
            writeln!(
                out,
                "{:>30} failover {}: {:.1} ms not recorded, {} RTP packets missing",
                "",
                c.recorders.join(" > "),
                f["gap_ms"].as_f64().unwrap_or(0.0),
                f["missing_rtp"].as_u64().unwrap_or(0)
            )?;
        }
    }
    writeln!(out, "{} calls", calls.len())?;
    out.flush()
}

fn trunc(s: &str, n: usize) -> String {
    // Network strings may hold control characters: show them escaped.
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.chars().count() <= n {
        clean
    } else {
        clean.chars().take(n - 1).collect::<String>() + "…"
    }
}
