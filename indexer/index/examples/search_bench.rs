//! Search latency on a large generated index:
//! `cargo run --release -p xdprec-index --example search_bench -- --calls 1000000 --db /tmp/x.sqlite
//! [--runs 50] [--xdprec PATH] [--reuse] [--full]`.
//!
//! Generates `--calls` primary calls through the real schema (`engine::open_db`), rows inserted
//! directly in large transactions: random Call-IDs, From/To users drawn from a pool of
//! subscribers, start/answer/end spread over 30 days, two RTP streams per call (each with one
//! `stream_parts` row), and 10% of the calls recorded a second time by another recorder as 2N
//! `secondary` rows (so `--all` matters). Then times `query::list_calls` (which also runs the
//! per-call parts and `streams_of` queries, as `xdprec calls` does) for the filters of
//! `xdprec calls`, with keys drawn from a fixed-seed PRNG, and prints a markdown table (median,
//! p95, rows returned) plus SQLite's query plan of the list query. With `--xdprec PATH`, also
//! times `xdprec calls --db DB --call-id X --json` as a process. `--reuse` keeps an existing DB.
//! `--full` also times the unfiltered listing once (every call: slow by design, no limit).
use rusqlite::{params, Connection};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xdprec_index::query::{list_calls, Filter};

/// Fixed-seed splitmix64: the same keys on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DAYS: i64 = 30;
const DAY_NS: i64 = 86_400_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;
/// 2026-10-01T00:00:00Z.
const T0_NS: i64 = 1_790_812_800_000_000_000;
const SUBSCRIBERS: u64 = 50_000;

fn call_id(i: u64) -> String {
    // Deterministic per call so the query side can rebuild any Call-ID.
    let mut r = Rng(i ^ 0x5eed);
    format!(
        "{:016x}{:08x}@pbx{}.example.com",
        r.next(),
        r.next() as u32,
        i % 7
    )
}

fn number(sub: u64) -> String {
    format!("+4930{:07}", 1_000_000 + sub * 37)
}

fn start_ns(i: u64, calls: u64) -> i64 {
    // Evenly spread with jitter: start order follows i, as the indexer writes them.
    T0_NS
        + (i as i128 * (DAYS * DAY_NS) as i128 / calls.max(1) as i128) as i64
        + (Rng(i).next() % 1_000_000_000) as i64
}

fn generate(conn: &mut Connection, calls: u64, store: &str) -> rusqlite::Result<()> {
    let mut rng = Rng(42);
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO recorders(id, name, store, now_ns) VALUES (1, 'rec-a', ?1, 0), (2, 'rec-b', ?1, 0)",
        [store],
    )?;
    // One segment per recorder and hour.
    let hours = DAYS * 24;
    for rec in 1..=2i64 {
        for h in 0..hours {
            tx.execute(
                "INSERT INTO segments(id, recorder, key, path, offset_reached, records, done)
                 VALUES (?1, ?2, ?3, ?4, 1073741824, 100000, 1)",
                params![
                    rec * 10_000 + h,
                    rec,
                    format!("rec-{rec}/eth0/0/{h}"),
                    format!("{store}/rec-{rec}/eth0-q0-{h:06}.seg.zst")
                ],
            )?;
        }
    }
    tx.commit()?;
    let batch = 50_000u64;
    let mut next_call_row = 1i64;
    let mut next_stream_row = 1i64;
    let mut i = 0u64;
    while i < calls {
        let tx = conn.transaction()?;
        {
            let mut ins_call = tx.prepare_cached(
                "INSERT INTO calls(id, recorder, call_id, from_uri, to_uri, from_user, to_user, state, final_code,
                   start_ns, answer_ns, end_ns, last_ns, has_invite, sip_messages, role, primary_id, facts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 1, ?13, ?14, ?15, ?16)",
            )?;
            let mut ins_stream = tx.prepare_cached(
                "INSERT INTO streams(id, recorder, kind, src, dst, ssrc, call, how, first_ns, last_ns, packets, bytes,
                   lost, jitter_ms, max_jitter_ms, payload_type, payload_types, codec, dtmf, mos, tracker)
                 VALUES (?1, ?2, 'rtp', ?3, ?4, ?5, ?6, 'sdp', ?7, ?8, ?9, ?10, ?11, 0.4, 1.2, 0, '[0]', 'PCMU', '', 4.3, '{}')",
            )?;
            let mut ins_part = tx.prepare_cached(
                "INSERT INTO stream_parts(stream, segment, stream_id, first_offset, packets) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let end = (i + batch).min(calls);
            while i < end {
                let start = start_ns(i, calls);
                let answered = rng.below(10) < 7;
                let dur_ns = (5 + rng.below(600)) as i64 * 1_000_000_000;
                let answer = answered.then_some(start + 2_000_000_000);
                let end_ns = start + 2_000_000_000 + if answered { dur_ns } else { 0 };
                let (state, code) = if answered {
                    ("answered", 200)
                } else if rng.below(2) == 0 {
                    ("busy", 486)
                } else {
                    ("cancelled", 487)
                };
                let from = number(rng.below(SUBSCRIBERS));
                let to = number(rng.below(SUBSCRIBERS));
                let cid = call_id(i);
                let copies = if i % 10 == 3 { 2 } else { 1 };
                let primary = next_call_row;
                for rec in 1..=copies {
                    let row = next_call_row;
                    next_call_row += 1;
                    let facts = format!("{{\"first_ns\":{start},\"tags\":[\"f{i}\",\"t{i}\"]}}");
                    ins_call.execute(params![
                        row,
                        rec,
                        cid,
                        format!("sip:{from}@example.com"),
                        format!("sip:{to}@example.com"),
                        from,
                        to,
                        state,
                        code,
                        start,
                        answer,
                        end_ns,
                        5 + rng.below(4) as i64,
                        if rec == 1 { "primary" } else { "secondary" },
                        (rec > 1).then_some(primary),
                        facts
                    ])?;
                    if !answered {
                        continue;
                    }
                    let seg = rec * 10_000 + ((start - T0_NS) / HOUR_NS).min(DAYS * 24 - 1);
                    let packets = dur_ns / 20_000_000;
                    let pa = 10_000 + 2 * rng.below(20_000) as i64;
                    let pb = 10_000 + 2 * rng.below(20_000) as i64;
                    let a = format!("198.51.100.{}:{pa}", 1 + rng.below(250));
                    let b = format!("203.0.113.{}:{pb}", 1 + rng.below(250));
                    for (src, dst) in [(&a, &b), (&b, &a)] {
                        let sid = next_stream_row;
                        next_stream_row += 1;
                        ins_stream.execute(params![
                            sid,
                            rec,
                            src,
                            dst,
                            rng.below(1 << 32) as i64,
                            row,
                            answer.unwrap_or(start),
                            end_ns,
                            packets,
                            packets * 172,
                            rng.below(3) as i64
                        ])?;
                        ins_part.execute(params![
                            sid,
                            seg,
                            rng.below(60_000) as i64,
                            rng.below(1 << 30) as i64,
                            packets
                        ])?;
                    }
                }
                i += 1;
            }
        }
        tx.commit()?;
    }
    conn.execute_batch("ANALYZE")?;
    Ok(())
}

struct Row {
    name: String,
    median: Duration,
    p95: Duration,
    rows: String,
    runs: usize,
}

fn stats(name: &str, mut times: Vec<Duration>, rows: &[usize]) -> Row {
    times.sort();
    let n = times.len();
    let (lo, hi) = (
        rows.iter().min().copied().unwrap_or(0),
        rows.iter().max().copied().unwrap_or(0),
    );
    let mean = rows.iter().sum::<usize>() as f64 / rows.len().max(1) as f64;
    Row {
        name: name.to_string(),
        median: times[n / 2],
        p95: times[((n * 95).div_ceil(100)).saturating_sub(1).min(n - 1)],
        rows: if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}..{hi} (mean {mean:.0})")
        },
        runs: n,
    }
}

fn time_query(
    conn: &Connection,
    name: &str,
    runs: usize,
    mut make: impl FnMut(usize) -> Filter,
) -> Row {
    let mut times = Vec::with_capacity(runs);
    let mut rows = Vec::with_capacity(runs);
    for k in 0..runs {
        let f = make(k);
        let t = Instant::now();
        let out = list_calls(conn, &f).expect("list_calls");
        times.push(t.elapsed());
        rows.push(out.len());
    }
    stats(name, times, &rows)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    let mut calls = 1_000_000u64;
    let mut db = PathBuf::from("/tmp/search_bench.sqlite");
    let mut runs = 50usize;
    let mut xdprec: Option<PathBuf> = None;
    let mut reuse = false;
    let mut full = false;
    let mut fix = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = args.next().and_then(|v| v.parse().ok()).expect("--calls N"),
            "--db" => db = args.next().expect("--db PATH").into(),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--xdprec" => xdprec = Some(args.next().expect("--xdprec PATH").into()),
            "--reuse" => reuse = true,
            "--full" => full = true,
            "--fix" => fix = true,
            _ => {
                eprintln!("usage: search_bench [--calls N] [--db PATH] [--runs N] [--xdprec PATH] [--reuse] [--full] [--fix]");
                std::process::exit(2);
            }
        }
    }
    let runs = runs.max(1);
    if !reuse || !db.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).expect("create the database's directory");
        }
        let t = Instant::now();
        let mut conn = xdprec_index::engine::open_db(&db).expect("open_db");
        let store = db
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        generate(&mut conn, calls, &store).expect("generate");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        drop(conn);
        println!(
            "generated {calls} calls in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let conn = xdprec_index::engine::open_db(&db).expect("open_db");
    if fix {
        // The change this benchmark proposes: list_calls looks up every result's parts with
        // `c.id=?1 OR c.primary_id=?1`, a full scan of `calls` without this index.
        conn.execute_batch("CREATE INDEX IF NOT EXISTS calls_primary ON calls(primary_id)")
            .expect("create calls_primary");
    } else {
        conn.execute_batch("DROP INDEX IF EXISTS calls_primary")
            .expect("drop calls_primary");
    }
    // Without the index each result costs a scan of `calls`: few runs, no 1 h window.
    let slow_runs = if fix { runs } else { runs.min(3) };
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "index: {} call rows ({} secondary), {} streams, {} stream_parts; {:.1} MiB",
        count("SELECT count(*) FROM calls"),
        count("SELECT count(*) FROM calls WHERE role='secondary'"),
        count("SELECT count(*) FROM streams"),
        count("SELECT count(*) FROM stream_parts"),
        db_bytes as f64 / (1 << 20) as f64
    );
    // The list query's plan, with every filter bound (what SQLite can use).
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT c.id FROM calls c JOIN recorders r ON r.id=c.recorder
             WHERE c.has_invite=1 AND (?1 OR c.role='primary') AND (?2 IS NULL OR c.call_id=?2)
               AND (?3 IS NULL OR c.start_ns >= ?3) AND (?4 IS NULL OR c.start_ns <= ?4)
               AND (?5 IS NULL OR instr(c.from_user, ?5) > 0 OR instr(c.to_user, ?5) > 0)
             ORDER BY c.start_ns, c.id",
        )
        .and_then(|mut st| {
            st.query_map(params![false, "x", 1, 2, "1"], |r| r.get::<_, String>(3))?
                .collect()
        })
        .expect("plan");
    println!("list_calls plan: {}", plan.join(" | "));

    let mut rng = Rng(7);
    let n = calls.max(1);
    let mut table = Vec::new();
    // Warm the page cache once, as a recorder that serves searches would have it.
    let _ = list_calls(
        &conn,
        &Filter {
            call_id: Some(call_id(0)),
            ..Default::default()
        },
    );
    table.push(time_query(&conn, "--call-id X", runs, |_| Filter {
        call_id: Some(call_id(rng.below(n))),
        ..Default::default()
    }));
    let mut rng = Rng(8);
    table.push(time_query(
        &conn,
        "--call-id X --all (2N ids)",
        runs,
        |_| Filter {
            call_id: Some(call_id(rng.below(n / 10) * 10 + 3)),
            all: true,
            ..Default::default()
        },
    ));
    let mut rng = Rng(9);
    table.push(time_query(&conn, "--number N (full number)", runs, |_| {
        Filter {
            number: Some(number(rng.below(SUBSCRIBERS))),
            ..Default::default()
        }
    }));
    let mut rng = Rng(10);
    let window = |rng: &mut Rng, len_ns: i64| {
        let s = T0_NS + rng.below((DAYS * DAY_NS - len_ns) as u64) as i64;
        (Some(s), Some(s + len_ns))
    };
    if fix {
        table.push(time_query(&conn, "--since/--until 1 h", runs, |_| {
            let (since_ns, until_ns) = window(&mut rng, HOUR_NS);
            Filter {
                since_ns,
                until_ns,
                ..Default::default()
            }
        }));
    }
    let mut rng = Rng(11);
    table.push(time_query(
        &conn,
        "--since/--until 1 min",
        slow_runs,
        |_| {
            let (since_ns, until_ns) = window(&mut rng, HOUR_NS / 60);
            Filter {
                since_ns,
                until_ns,
                ..Default::default()
            }
        },
    ));
    let mut rng = Rng(12);
    table.push(time_query(&conn, "--number N + 1 day window", runs, |_| {
        let (since_ns, until_ns) = window(&mut rng, DAY_NS);
        Filter {
            number: Some(number(rng.below(SUBSCRIBERS))),
            since_ns,
            until_ns,
            ..Default::default()
        }
    }));
    let mut rng = Rng(13);
    table.push(time_query(&conn, "--number N + 1 h window", runs, |_| {
        let (since_ns, until_ns) = window(&mut rng, HOUR_NS);
        Filter {
            number: Some(number(rng.below(SUBSCRIBERS))),
            since_ns,
            until_ns,
            ..Default::default()
        }
    }));
    if full {
        table.push(time_query(&conn, "no filter (every call)", 1, |_| {
            Filter::default()
        }));
    }
    if let Some(bin) = &xdprec {
        let mut rng = Rng(14);
        let proc_runs = 20;
        let mut times = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..proc_runs {
            let id = call_id(rng.below(n));
            let t = Instant::now();
            let out = std::process::Command::new(bin)
                .args(["calls", "--db"])
                .arg(&db)
                .args(["--call-id", &id, "--json"])
                .output()
                .expect("run xdprec");
            times.push(t.elapsed());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            rows.push(out.stdout.iter().filter(|&&b| b == b'\n').count());
        }
        table.push(stats(
            "process: xdprec calls --call-id X --json",
            times,
            &rows,
        ));
    }
    println!();
    let variant = if fix {
        "schema + calls_primary index"
    } else {
        "schema as is"
    };
    println!("| query ({calls} calls, {variant}) | runs | median ms | p95 ms | rows returned |");
    println!("|---|---:|---:|---:|---|");
    for r in &table {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.name,
            r.runs,
            ms(r.median),
            ms(r.p95),
            r.rows
        );
    }
}
