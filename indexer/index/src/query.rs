//! Reading the index back: the calls of `xdprec calls`, with their streams.
//!
//! A call is listed when its Call-ID had an INVITE. Filters: `number` is a substring of the
//! From or To user part; `since`/`until` bound the call's start time (inclusive); without
//! `all`, secondary copies (2N) are hidden.

use crate::error::Result;
use crate::timefmt::rfc3339;
use rusqlite::Connection;
use serde::Serialize;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub number: Option<String>,
    pub call_id: Option<String>,
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    pub all: bool,
    /// At most this many calls (the earliest first); `None`: all.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamOut {
    pub src: String,
    pub dst: String,
    pub ssrc: u32,
    pub ssrc_hex: String,
    pub payload_type: Option<u8>,
    pub codec: Option<String>,
    pub packets: i64,
    pub lost: i64,
    pub duplicates: i64,
    pub out_of_order: i64,
    pub jitter_ms: Option<f64>,
    pub max_jitter_ms: Option<f64>,
    pub mos: Option<f64>,
    pub dtmf: String,
    pub first: String,
    pub last: String,
    /// How the stream was tied to the call: sdp, sdp-reverse, nat-port, nat-timing.
    pub matched_by: Option<String>,
    /// (segment file, stream id, first record offset, packets) of each piece.
    pub parts: Vec<(String, i64, i64, i64)>,
    /// The recorder that holds it (a failed-over call has streams on several).
    pub recorder: String,
}

/// One recorder's part of a call (`xdprec calls --json`: `parts`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartOut {
    pub recorder: String,
    /// primary, secondary (2N copy) or fragment (recorded after a failover).
    pub role: String,
    pub first: Option<String>,
    pub last: Option<String>,
    pub sip_messages: i64,
    pub rtp_packets: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RtcpOut {
    pub src: String,
    pub dst: String,
    pub ssrc: u32,
    pub packets: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallOut {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub from_user: String,
    pub to_user: String,
    pub start: Option<String>,
    pub answer: Option<String>,
    pub end: Option<String>,
    pub duration_s: Option<f64>,
    pub state: String,
    /// The final SIP status code the state comes from (200 for answered calls).
    pub disposition: Option<u16>,
    pub recorder: String,
    pub role: String,
    /// 2N: for a secondary copy, the Call-ID's primary copy's recorder; flags such as
    /// `ambiguous: starts differ by 7.0 s ...` for copies kept apart.
    pub primary_recorder: Option<String>,
    pub dup_flags: Option<String>,
    /// Every recorder holding a part of this call (this row's first), and the parts.
    pub recorders: Vec<String>,
    pub parts: Vec<PartOut>,
    /// Set when the recording moved between recorders mid-call (`xdprec_index::dedup::FailoverInfo`):
    /// recorders in order, gap_ns/gap_ms, missing_rtp, per-stream gaps.
    pub failover: Option<serde_json::Value>,
    pub sip_messages: i64,
    pub streams: Vec<StreamOut>,
    pub rtcp: Vec<RtcpOut>,
    pub mos: Option<f64>,
    pub dtmf: String,
    /// Index row id (stable within one index file).
    pub id: i64,
    #[serde(skip)]
    pub start_ns: i64,
    /// The row every part of this call points at (the primary's id).
    #[serde(skip)]
    pub group: i64,
}

/// Lists the calls of one index matching `f`, ordered by start time.
pub fn list_calls(conn: &Connection, f: &Filter) -> Result<Vec<CallOut>> {
    // The WHERE clause holds only the filters that are set, so SQLite can use the index that
    // fits (calls_callid for a Call-ID, calls_start for a time range); a form like
    // `(?2 IS NULL OR c.call_id = ?2)` would scan every call (measured: about 1 s on a million
    // calls, against milliseconds; benches/results/search.md).
    let mut cond = vec!["c.has_invite=1".to_string()];
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if !f.all {
        cond.push("c.role='primary'".into());
    }
    if let Some(id) = &f.call_id {
        args.push(id.clone().into());
        cond.push(format!("c.call_id=?{}", args.len()));
    }
    if let Some(t) = f.since_ns {
        args.push(t.into());
        cond.push(format!("c.start_ns >= ?{}", args.len()));
    }
    if let Some(t) = f.until_ns {
        args.push(t.into());
        cond.push(format!("c.start_ns <= ?{}", args.len()));
    }
    if let Some(n) = &f.number {
        args.push(n.clone().into());
        let i = args.len();
        cond.push(format!(
            "(instr(c.from_user, ?{i}) > 0 OR instr(c.to_user, ?{i}) > 0)"
        ));
    }
    let limit = f.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let sql = format!(
        "SELECT c.id, c.call_id, coalesce(c.from_uri,''), coalesce(c.to_uri,''), coalesce(c.from_user,''), coalesce(c.to_user,''),
           c.start_ns, c.answer_ns, c.end_ns, c.state, c.final_code, r.name, c.role, c.sip_messages,
           (SELECT r2.name FROM calls p JOIN recorders r2 ON r2.id=p.recorder WHERE p.id=c.primary_id), c.dup_flags,
           c.failover, coalesce(c.primary_id, c.id)
         FROM calls c JOIN recorders r ON r.id=c.recorder
         WHERE {}
         ORDER BY c.start_ns, c.id{limit}",
        cond.join(" AND ")
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        let start: Option<i64> = r.get(6)?;
        let answer: Option<i64> = r.get(7)?;
        let end: Option<i64> = r.get(8)?;
        Ok(CallOut {
            id: r.get(0)?,
            call_id: r.get(1)?,
            from: r.get(2)?,
            to: r.get(3)?,
            from_user: r.get(4)?,
            to_user: r.get(5)?,
            start: start.map(rfc3339),
            answer: answer.map(rfc3339),
            end: end.map(rfc3339),
            duration_s: match (answer, end) {
                (Some(a), Some(e)) if e >= a => Some((e - a) as f64 / 1e9),
                _ => None,
            },
            state: r.get(9)?,
            disposition: r.get(10)?,
            recorder: r.get(11)?,
            role: r.get(12)?,
            sip_messages: r.get(13)?,
            primary_recorder: r.get(14)?,
            dup_flags: r.get(15)?,
            recorders: Vec::new(),
            parts: Vec::new(),
            failover: r
                .get::<_, Option<String>>(16)?
                .and_then(|j| serde_json::from_str(&j).ok()),
            group: r.get(17)?,
            streams: Vec::new(),
            rtcp: Vec::new(),
            mos: None,
            dtmf: String::new(),
            start_ns: start.unwrap_or(0),
        })
    })?;
    let mut calls = rows.collect::<std::result::Result<Vec<_>, _>>()?;
    let mut parts_st = conn.prepare_cached(
        "SELECT c.id, r.name, c.role, c.start_ns, c.last_ns, c.facts, c.sip_messages,
           (SELECT coalesce(sum(packets), 0) FROM streams s WHERE s.call=c.id AND s.kind='rtp'),
           (SELECT min(first_ns) FROM streams s WHERE s.call=c.id),
           (SELECT max(last_ns) FROM streams s WHERE s.call=c.id)
         FROM calls c JOIN recorders r ON r.id=c.recorder WHERE c.id=?1 OR c.primary_id=?1",
    )?;
    for c in &mut calls {
        type PartRow = (
            i64,
            String,
            String,
            Option<i64>,
            Option<i64>,
            String,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<PartRow> = parts_st
            .query_map([c.group], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })?
            .collect::<std::result::Result<_, _>>()?;
        let mut parts: Vec<(i64, i64, PartOut)> = Vec::new();
        for (id, rec, role, start, last, facts, sip, packets, mfirst, mlast) in rows {
            let sip_first = (sip > 0)
                .then(|| {
                    serde_json::from_str::<serde_json::Value>(&facts)
                        .ok()
                        .and_then(|v| v["first_ns"].as_i64())
                        .or(start)
                })
                .flatten();
            let first = [sip_first, mfirst].into_iter().flatten().min();
            let last = [(sip > 0).then_some(last).flatten(), mlast]
                .into_iter()
                .flatten()
                .max();
            let order = if id == c.id {
                i64::MIN
            } else {
                first.unwrap_or(0)
            };
            parts.push((
                order,
                id,
                PartOut {
                    recorder: rec,
                    role,
                    first: first.map(rfc3339),
                    last: last.map(rfc3339),
                    sip_messages: sip,
                    rtp_packets: packets,
                },
            ));
        }
        parts.sort_by_key(|p| (p.0, p.1));
        for (_, _, p) in &parts {
            if !c.recorders.contains(&p.recorder) {
                c.recorders.push(p.recorder.clone());
            }
        }
        let (mut s, mut r) = streams_of(conn, c.id)?;
        if c.role == "primary" {
            // A failed-over call's media recorded by the other recorders.
            for (_, id, p) in &parts {
                if p.role == "fragment" {
                    let (fs, fr) = streams_of(conn, *id)?;
                    s.extend(fs);
                    r.extend(fr);
                }
            }
            s.sort_by(|a, b| (&a.first, &a.recorder).cmp(&(&b.first, &b.recorder)));
        }
        c.parts = parts.into_iter().map(|p| p.2).collect();
        c.mos = s.iter().filter_map(|s| s.mos).reduce(f64::min);
        c.dtmf = s
            .iter()
            .map(|s| s.dtmf.as_str())
            .collect::<Vec<_>>()
            .join("");
        c.streams = s;
        c.rtcp = r;
    }
    Ok(calls)
}

/// The RTP and RTCP streams of a call.
pub fn streams_of(conn: &Connection, call: i64) -> Result<(Vec<StreamOut>, Vec<RtcpOut>)> {
    let mut st = conn.prepare_cached(
        "SELECT id, kind, src, dst, ssrc, payload_type, codec, packets, lost, duplicates, out_of_order, jitter_ms,
           max_jitter_ms, mos, coalesce(dtmf,''), first_ns, last_ns, how,
           (SELECT name FROM recorders r WHERE r.id=streams.recorder)
         FROM streams WHERE call=?1 ORDER BY first_ns, id",
    )?;
    let mut parts = conn.prepare_cached(
        "SELECT g.path, p.stream_id, p.first_offset, p.packets FROM stream_parts p JOIN segments g ON g.id=p.segment
         WHERE p.stream=?1 ORDER BY p.first_offset",
    )?;
    let mut rtp = Vec::new();
    let mut rtcp = Vec::new();
    let rows = st.query_map([call], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            StreamOut {
                src: r.get(2)?,
                dst: r.get(3)?,
                ssrc: r.get::<_, i64>(4)? as u32,
                ssrc_hex: format!("0x{:08X}", r.get::<_, i64>(4)? as u32),
                payload_type: r.get(5)?,
                codec: r.get(6)?,
                packets: r.get(7)?,
                lost: r.get(8)?,
                duplicates: r.get(9)?,
                out_of_order: r.get(10)?,
                jitter_ms: r.get(11)?,
                max_jitter_ms: r.get(12)?,
                mos: r.get(13)?,
                dtmf: r.get(14)?,
                first: rfc3339(r.get(15)?),
                last: rfc3339(r.get(16)?),
                matched_by: r.get(17)?,
                parts: Vec::new(),
                recorder: r.get::<_, Option<String>>(18)?.unwrap_or_default(),
            },
        ))
    })?;
    for row in rows {
        let (id, kind, mut s) = row?;
        if kind == "rtcp" {
            rtcp.push(RtcpOut {
                src: s.src,
                dst: s.dst,
                ssrc: s.ssrc,
                packets: s.packets,
            });
            continue;
        }
        s.parts = parts
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<std::result::Result<_, _>>()?;
        rtp.push(s);
    }
    Ok((rtp, rtcp))
}

/// RTP streams no call claimed.
pub fn orphan_streams(conn: &Connection) -> Result<Vec<StreamOut>> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM streams WHERE call IS NULL AND kind='rtp' ORDER BY first_ns, id")?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::new();
    for id in ids {
        // Reuse streams_of through a temporary single-stream query.
        let mut st = conn.prepare_cached(
            "SELECT src, dst, ssrc, payload_type, codec, packets, lost, duplicates, out_of_order, jitter_ms, max_jitter_ms,
               mos, coalesce(dtmf,''), first_ns, last_ns,
               (SELECT name FROM recorders r WHERE r.id=streams.recorder) FROM streams WHERE id=?1",
        )?;
        let s = st.query_row([id], |r| {
            Ok(StreamOut {
                src: r.get(0)?,
                dst: r.get(1)?,
                ssrc: r.get::<_, i64>(2)? as u32,
                ssrc_hex: format!("0x{:08X}", r.get::<_, i64>(2)? as u32),
                payload_type: r.get(3)?,
                codec: r.get(4)?,
                packets: r.get(5)?,
                lost: r.get(6)?,
                duplicates: r.get(7)?,
                out_of_order: r.get(8)?,
                jitter_ms: r.get(9)?,
                max_jitter_ms: r.get(10)?,
                mos: r.get(11)?,
                dtmf: r.get(12)?,
                first: rfc3339(r.get(13)?),
                last: rfc3339(r.get(14)?),
                matched_by: None,
                parts: Vec::new(),
                recorder: r.get::<_, Option<String>>(15)?.unwrap_or_default(),
            })
        })?;
        out.push(s);
    }
    Ok(out)
}
