//! 2N: the same call recorded by several recorders (capture points). One copy is kept as
//! `primary`, the others become `secondary` (`calls.primary_id` names the primary).
//!
//! Copies are the calls of different recorders with the same Call-ID and the same From-tag
//! whose To-tags (when both have some) overlap. A pair counts as duplicates only when
//! (thresholds of commercial recorders, see shared NOTES):
//! - their starts differ by at most [`START_DIFF_NS_MAX`] (5 s),
//! - their media lengths (first to last RTP packet) differ by at most [`MEDIA_DIFF_NS_MAX`] (3 s),
//! - their RTP packet counts differ by at most [`PACKETS_DIFF_MAX`] (200).
//!
//! The primary is the most complete copy: most RTP packets, then most SIP messages, then most
//! streams; ties go to the recorder whose name sorts first, then the lower row id, so the
//! choice is deterministic and stable when re-indexed. Copies that fail a threshold stay
//! separate (both primary) and are flagged in `dup_flags` (`ambiguous: ...`), as they may be
//! a failover or a different call reusing the Call-ID. Tagging is recomputed from the index
//! after every indexing pass, so it is the same whatever the order of consumption. (Cost: one
//! grouped scan of `calls` by Call-ID per pass when the index holds several recorders; an
//! incremental version would look only at Call-IDs touched by the pass.)

use crate::error::Result;
use rusqlite::{params, Connection};

pub const START_DIFF_NS_MAX: i64 = 5_000_000_000;
pub const MEDIA_DIFF_NS_MAX: i64 = 3_000_000_000;
pub const PACKETS_DIFF_MAX: i64 = 200;

#[derive(Debug, Clone)]
struct Copy {
    id: i64,
    recorder: String,
    start_ns: i64,
    from_tag: String,
    to_tags: Vec<String>,
    sip_messages: i64,
    packets: i64,
    streams: i64,
    media_ns: i64,
}

fn copies(conn: &Connection, call_id: &str) -> Result<Vec<Copy>> {
    let mut st = conn.prepare_cached(
        "SELECT c.id, r.name, coalesce(c.start_ns, 0), c.facts, c.sip_messages,
           (SELECT coalesce(sum(packets),0) FROM streams s WHERE s.call=c.id AND s.kind='rtp'),
           (SELECT count(*) FROM streams s WHERE s.call=c.id AND s.kind='rtp'),
           (SELECT coalesce(max(last_ns) - min(first_ns), 0) FROM streams s WHERE s.call=c.id AND s.kind='rtp')
         FROM calls c JOIN recorders r ON r.id=c.recorder WHERE c.call_id=?1 AND c.has_invite=1",
    )?;
    let rows = st.query_map([call_id], |r| {
        let facts: String = r.get(3)?;
        let v: serde_json::Value = serde_json::from_str(&facts).unwrap_or_default();
        let to_tags = v["to_tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Copy {
            id: r.get(0)?,
            recorder: r.get(1)?,
            start_ns: r.get(2)?,
            from_tag: v["from_tag"].as_str().unwrap_or("").to_string(),
            to_tags,
            sip_messages: r.get(4)?,
            packets: r.get(5)?,
            streams: r.get(6)?,
            media_ns: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Why two copies are not duplicates (None: they are).
fn mismatch(a: &Copy, b: &Copy) -> Option<String> {
    if a.from_tag != b.from_tag {
        return Some("From-tags differ".into());
    }
    if !a.to_tags.is_empty()
        && !b.to_tags.is_empty()
        && !a.to_tags.iter().any(|t| b.to_tags.contains(t))
    {
        return Some("To-tags differ".into());
    }
    let ds = (a.start_ns - b.start_ns).abs();
    if ds > START_DIFF_NS_MAX {
        return Some(format!("starts differ by {:.1} s", ds as f64 / 1e9));
    }
    let dm = (a.media_ns - b.media_ns).abs();
    if dm > MEDIA_DIFF_NS_MAX {
        return Some(format!("media lengths differ by {:.1} s", dm as f64 / 1e9));
    }
    let dp = (a.packets - b.packets).abs();
    if dp > PACKETS_DIFF_MAX {
        return Some(format!("RTP packet counts differ by {dp}"));
    }
    None
}

/// Recomputes roles for every Call-ID recorded by more than one recorder. Returns the number
/// of secondary copies.
pub fn tag_2n(conn: &Connection) -> Result<u64> {
    let recorders: i64 = conn.query_row("SELECT count(*) FROM recorders", [], |r| r.get(0))?;
    if recorders < 2 {
        return Ok(0);
    }
    let ids: Vec<String> = conn
        .prepare(
            "SELECT call_id FROM calls WHERE has_invite=1 GROUP BY call_id HAVING count(DISTINCT recorder) > 1 ORDER BY call_id",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    let tx = conn.unchecked_transaction()?;
    let mut secondaries = 0;
    for call_id in ids {
        let mut cs = copies(&tx, &call_id)?;
        cs.sort_by(|a, b| {
            (b.packets, b.sip_messages, b.streams)
                .cmp(&(a.packets, a.sip_messages, a.streams))
                .then_with(|| a.recorder.cmp(&b.recorder))
                .then(a.id.cmp(&b.id))
        });
        let mut primaries: Vec<Copy> = Vec::new();
        for c in cs {
            // Same recorder, same Call-ID is one call already; compare with earlier primaries.
            let mut role = ("primary", None::<i64>, None::<String>);
            let mut reasons = Vec::new();
            for p in primaries.iter().filter(|p| p.recorder != c.recorder) {
                match mismatch(p, &c) {
                    None => {
                        role = ("secondary", Some(p.id), None);
                        break;
                    }
                    Some(why) => {
                        reasons.push(format!("ambiguous: {why} from the copy of {}", p.recorder))
                    }
                }
            }
            if role.0 == "primary" && !reasons.is_empty() {
                role.2 = Some(reasons.join("; "));
            }
            tx.execute(
                "UPDATE calls SET role=?2, primary_id=?3, dup_flags=?4 WHERE id=?1",
                params![c.id, role.0, role.1, role.2],
            )?;
            if role.0 == "secondary" {
                secondaries += 1;
            } else {
                primaries.push(c);
            }
        }
    }
    tx.commit()?;
    Ok(secondaries)
}
