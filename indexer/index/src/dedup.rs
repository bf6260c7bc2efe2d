//! Several recorders, one call: 2N copies and failover parts.
//!
//! Every recorder (capture point) indexes what it saw into its own `calls` rows (one per
//! Call-ID per recorder). After every indexing pass [`consolidate`] looks at the Call-IDs held
//! by more than one recorder and decides, from the index alone (so the result does not depend
//! on the order of consumption and is the same when re-indexed), what each row is:
//!
//! | `calls.role` | meaning | listed by `xdprec calls` |
//! |---|---|---|
//! | `primary` | the call (or a copy kept apart, with `dup_flags` saying why) | yes (when it had an INVITE) |
//! | `secondary` | a 2N copy of `primary_id` | only with `--all` |
//! | `fragment` | a later part of `primary_id` recorded elsewhere after a failover | no: its streams are shown with the call |
//!
//! ## Step 1: media of a failed-over call (orphans claimed across recorders)
//! A recorder that takes over mid-call sees no INVITE and no SDP, so its RTP stays orphaned
//! there. An orphan RTP stream O on recorder B is claimed for Call-ID K when K has a row with
//! an INVITE on another recorder (the head H) and:
//! - evidence: O's destination or source is an SDP media address of K on another recorder
//!   (`call_endpoints`), or another recorder holds a stream of K with O's source, destination
//!   and SSRC;
//! - K has no INVITE on B (else B's own SDP would have claimed O);
//! - H did not end (BYE/final response) before O's first packet;
//! - adjacency: O's first packet is at most `failover_gap_ns_max` after, and at most
//!   `failover_overlap_ns_max` before, the last packet or message of K on the other recorders;
//! - continuity: when another recorder holds a stream with O's source, destination and SSRC,
//!   O's first sequence number follows that stream's highest one by 1..=`failover_seq_gap_max`
//!   (or overlaps its tail by at most `failover_seq_gap_max`, make-before-break) and O's
//!   first RTP timestamp is not before that stream's last one (modulo 2^32).
//!
//! An orphan that fits more than one Call-ID is left alone and counted
//! (`failover_ambiguous`). A claimed stream (and the RTCP of its SSRC on B) is tied to K's row
//! on B (created with `has_invite` 0 when B saw no SIP of K) with `how` = `failover`.
//!
//! ## Step 2: roles
//! For each Call-ID held by several recorders, the rows with an INVITE are *heads*, the
//! others *parts*. A part P continues a head's chain (the head, then the parts already
//! attached, in time order) when P's recorder holds no other part of the chain, the head did
//! not end before P began, P's first activity is in the adjacency window above after the
//! chain's last activity, P's dialog tags (From/To tags of any message) meet the chain's when
//! both are known, and every RTP stream of P that has a counterpart in the chain (same
//! source, destination, SSRC) passes the continuity rule above. A part that continues exactly
//! one chain becomes a `fragment` of its head; one that fits several stays apart, flagged.
//!
//! A head whose chain has fragments is a *failover*: `calls.failover` (JSON, see
//! [`FailoverInfo`]) records the recorders in order, the time gaps and the RTP sequence
//! numbers nobody recorded, per stream. A failover is never taken for a 2N copy: when any
//! head of a Call-ID failed over, no row of it becomes `secondary` and the other heads are
//! flagged `ambiguous: ... failed over`.
//!
//! Otherwise heads of different recorders are 2N copies when (thresholds of commercial
//! recorders, see shared NOTES; all configurable, [`DedupConfig`]):
//! - the From-tags are equal and the To-tags overlap (when both have some),
//! - the starts differ by at most `start_diff_ns_max` (5 s),
//! - the media lengths (first to last RTP packet) differ by at most `media_diff_ns_max` (3 s),
//! - the RTP packet counts differ by at most `packets_diff_max` (200),
//! - media evidence, when both have RTP: at least one SSRC in common, and for every SSRC in
//!   common the sequence ranges overlap by at least `seq_overlap_min` (50 %) of the shorter one
//!   and the RTP timestamp ranges overlap.
//!
//! The primary is the most complete copy: most RTP packets, then most SIP messages, then most
//! streams; ties go to the recorder whose name sorts first, then the lower row id, so the
//! choice is deterministic and stable when re-indexed. Copies that fail a rule stay separate
//! (both primary) and are flagged in `dup_flags` (`ambiguous: ...`), never merged silently.
//!
//! Cost: every pass reloads the Call-IDs held by several recorders and scans the orphan RTP
//! streams (at most [`ORPHANS_SCAN_MAX`]) when the index holds several recorders; an
//! incremental version would look only at what the pass touched.

use crate::error::Result;
use crate::quality::RtpTracker;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

pub const START_DIFF_NS_MAX: i64 = 5_000_000_000;
pub const MEDIA_DIFF_NS_MAX: i64 = 3_000_000_000;
pub const PACKETS_DIFF_MAX: i64 = 200;
pub const SEQ_OVERLAP_MIN: f64 = 0.5;
pub const FAILOVER_GAP_NS_MAX: i64 = 60_000_000_000;
pub const FAILOVER_OVERLAP_NS_MAX: i64 = 2_000_000_000;
pub const FAILOVER_SEQ_GAP_MAX: u32 = 3000;
/// Orphan RTP streams looked at per pass (oldest first).
pub const ORPHANS_SCAN_MAX: usize = 100_000;
/// Candidate Call-IDs looked at per orphan stream.
const CANDIDATES_MAX: usize = 64;

/// Thresholds of 2N and failover matching (`xdprec index --dup-* --failover-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct DedupConfig {
    pub start_diff_ns_max: i64,
    pub media_diff_ns_max: i64,
    pub packets_diff_max: i64,
    /// Share (0..=1) of the shorter copy's RTP sequence range that both copies must cover.
    pub seq_overlap_min: f64,
    pub failover_gap_ns_max: i64,
    pub failover_overlap_ns_max: i64,
    pub failover_seq_gap_max: u32,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            start_diff_ns_max: START_DIFF_NS_MAX,
            media_diff_ns_max: MEDIA_DIFF_NS_MAX,
            packets_diff_max: PACKETS_DIFF_MAX,
            seq_overlap_min: SEQ_OVERLAP_MIN,
            failover_gap_ns_max: FAILOVER_GAP_NS_MAX,
            failover_overlap_ns_max: FAILOVER_OVERLAP_NS_MAX,
            failover_seq_gap_max: FAILOVER_SEQ_GAP_MAX,
        }
    }
}

/// What one consolidation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rows that are 2N secondaries.
    pub secondaries: u64,
    /// Rows that are failover fragments.
    pub fragments: u64,
    /// Calls that failed over (heads with fragments).
    pub failovers: u64,
    /// Orphan streams claimed in this pass.
    pub claimed_streams: u64,
    /// Orphan streams that fit several calls (left alone) in this pass.
    pub ambiguous_orphans: u64,
}

/// One stream's gap at a failover.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamGap {
    pub src: String,
    pub dst: String,
    pub ssrc: u32,
    /// Recorders before and after.
    pub from: String,
    pub to: String,
    /// Highest sequence number recorded before, first one after.
    pub last_seq: u16,
    pub next_seq: u16,
    /// Sequence numbers nobody recorded (0 when the parts overlap).
    pub missing: u32,
    /// Time between the last packet before and the first after (negative: overlap).
    pub gap_ns: i64,
}

/// `calls.failover` of a head: how the call was assembled.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailoverInfo {
    /// Recorders holding the parts, in time order.
    pub recorders: Vec<String>,
    /// Time nobody recorded anything of the call (sum over the hand-overs), ns and ms.
    pub gap_ns: i64,
    pub gap_ms: f64,
    /// RTP sequence numbers nobody recorded (sum over the streams that continue).
    pub missing_rtp: u64,
    pub streams: Vec<StreamGap>,
}

#[derive(Debug, Clone)]
struct Media {
    src: String,
    dst: String,
    ssrc: u32,
    first_ns: i64,
    last_ns: i64,
    packets: i64,
    seq: Option<(u16, u16)>,
    ts: Option<(u32, u32)>,
    /// Expected packets from the sequence range.
    span: u64,
}

#[derive(Debug, Clone)]
struct Part {
    id: i64,
    rec: i64,
    recorder: String,
    has_invite: bool,
    start_ns: i64,
    end_ns: Option<i64>,
    /// First and last message or packet of this row.
    first_ns: i64,
    last_ns: i64,
    from_tag: String,
    to_tags: Vec<String>,
    tags: Vec<String>,
    sip_messages: i64,
    rtp: Vec<Media>,
    streams: i64,
}

impl Part {
    fn packets(&self) -> i64 {
        self.rtp.iter().map(|m| m.packets).sum()
    }
    fn media_ns(&self) -> i64 {
        let first = self.rtp.iter().map(|m| m.first_ns).min();
        let last = self.rtp.iter().map(|m| m.last_ns).max();
        match (first, last) {
            (Some(f), Some(l)) => l - f,
            _ => 0,
        }
    }
    fn all_tags(&self) -> BTreeSet<&str> {
        let mut t: BTreeSet<&str> = self.tags.iter().map(String::as_str).collect();
        t.extend(self.to_tags.iter().map(String::as_str));
        if !self.from_tag.is_empty() {
            t.insert(&self.from_tag);
        }
        t
    }
}

/// (first, highest) sequence numbers, their RTP timestamps, expected packets.
type Bounds = (Option<(u16, u16)>, Option<(u32, u32)>, u64);

fn tracker_bounds(t: Option<String>) -> Bounds {
    match t.and_then(|t| serde_json::from_str::<RtpTracker>(&t).ok()) {
        Some(t) => (t.seq_bounds(), t.ts_bounds(), t.expected()),
        None => (None, None, 0),
    }
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every row of a Call-ID with its RTP streams.
fn load_parts(conn: &Connection, call_id: &str) -> Result<Vec<Part>> {
    let mut st = conn.prepare_cached(
        "SELECT c.id, c.recorder, r.name, c.has_invite, coalesce(c.start_ns, 0), c.end_ns, c.last_ns,
           c.facts, c.sip_messages
         FROM calls c JOIN recorders r ON r.id=c.recorder WHERE c.call_id=?1 ORDER BY c.id",
    )?;
    type Row = (
        i64,
        i64,
        String,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        String,
        i64,
    );
    let rows: Vec<Row> = st
        .query_map([call_id], |r| {
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
            ))
        })?
        .collect::<std::result::Result<_, _>>()?;
    let mut ms = conn.prepare_cached(
        "SELECT kind, src, dst, ssrc, first_ns, last_ns, packets, tracker FROM streams WHERE call=?1 ORDER BY id",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, rec, recorder, has_invite, start_ns, end_ns, last_ns, facts, sip_messages) in rows {
        let v: serde_json::Value = serde_json::from_str(&facts).unwrap_or_default();
        let mut first = if sip_messages > 0 {
            v["first_ns"].as_i64().unwrap_or(start_ns)
        } else {
            i64::MAX
        };
        let mut last = if sip_messages > 0 {
            last_ns.unwrap_or(start_ns)
        } else {
            i64::MIN
        };
        let mut rtp = Vec::new();
        let mut streams = 0;
        let media = ms.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        for m in media {
            let (kind, src, dst, ssrc, f, l, packets, tracker) = m?;
            first = first.min(f);
            last = last.max(l);
            if kind != "rtp" {
                continue;
            }
            streams += 1;
            let (seq, ts, span) = tracker_bounds(tracker);
            rtp.push(Media {
                src,
                dst,
                ssrc: ssrc as u32,
                first_ns: f,
                last_ns: l,
                packets,
                seq,
                ts,
                span,
            });
        }
        if first > last {
            (first, last) = (start_ns, start_ns);
        }
        out.push(Part {
            id,
            rec,
            recorder,
            has_invite: has_invite != 0,
            start_ns,
            end_ns,
            first_ns: first,
            last_ns: last,
            from_tag: v["from_tag"].as_str().unwrap_or("").to_string(),
            to_tags: strs(&v["to_tags"]),
            tags: strs(&v["tags"]),
            sip_messages,
            rtp,
            streams,
        });
    }
    Ok(out)
}

/// Does stream `next` continue stream `prev` (same source, destination and SSRC, recorded
/// by another recorder)? Ok(missing sequence numbers) or why not.
fn continuity(prev: &Media, next: &Media, cfg: &DedupConfig) -> std::result::Result<u32, String> {
    let (Some((_, last)), Some((first, next_last))) = (prev.seq, next.seq) else {
        // No sequence numbers to compare (a tracker without them): time decides alone.
        return Ok(0);
    };
    let d = first.wrapping_sub(last) as i16 as i32;
    let ahead = next_last.wrapping_sub(last) as i16 as i32;
    let limit = cfg.failover_seq_gap_max.min(32_767) as i32;
    let missing = if (1..=limit).contains(&d) {
        (d - 1) as u32
    } else if d <= 0 && -d <= limit && ahead > 0 {
        0 // the parts overlap (make-before-break): nothing missing
    } else {
        return Err(format!(
            "RTP of SSRC {:#010x} does not continue (sequence {last} then {first})",
            next.ssrc
        ));
    };
    if let (Some((_, last_ts)), Some((first_ts, _))) = (prev.ts, next.ts) {
        if d > 0 && (first_ts.wrapping_sub(last_ts) as i32) < 0 {
            return Err(format!(
                "RTP of SSRC {:#010x} goes back in time (timestamp {last_ts} then {first_ts})",
                next.ssrc
            ));
        }
    }
    Ok(missing)
}

/// Signed overlap of two ranges given by their starts (b relative to a) and lengths.
fn overlap(off: i64, a_len: i64, b_len: i64) -> i64 {
    (a_len.min(off + b_len) - off.max(0)).max(0)
}

/// Media evidence of two 2N copies; None when consistent.
fn media_mismatch(a: &Part, b: &Part, cfg: &DedupConfig) -> Option<String> {
    if a.rtp.is_empty() || b.rtp.is_empty() {
        return None; // the packet count rule decides
    }
    let mut common = 0;
    for x in &a.rtp {
        // The counterpart: same SSRC, preferably the same addresses (a capture point behind
        // NAT may see other ones).
        let Some(y) = b
            .rtp
            .iter()
            .filter(|y| y.ssrc == x.ssrc)
            .max_by_key(|y| (y.src == x.src && y.dst == x.dst, y.packets))
        else {
            continue;
        };
        common += 1;
        if let (Some((xf, _)), Some((yf, _))) = (x.seq, y.seq) {
            let off = i64::from(yf.wrapping_sub(xf) as i16);
            let (xl, yl) = (x.span as i64, y.span as i64);
            let shared = overlap(off, xl, yl);
            let shorter = xl.min(yl).max(1);
            if (shared as f64) < cfg.seq_overlap_min * shorter as f64 {
                return Some(format!(
                    "RTP of SSRC {:#010x} covers other sequence numbers ({shared} of {shorter} in common)",
                    x.ssrc
                ));
            }
        }
        if let (Some((xf, xl)), Some((yf, yl))) = (x.ts, y.ts) {
            let off = i64::from(yf.wrapping_sub(xf) as i32);
            let (xs, ys) = (
                i64::from(xl.wrapping_sub(xf)) + 1,
                i64::from(yl.wrapping_sub(yf)) + 1,
            );
            if overlap(off, xs, ys) == 0 {
                return Some(format!(
                    "RTP of SSRC {:#010x} covers other timestamps",
                    x.ssrc
                ));
            }
        }
    }
    if common == 0 {
        return Some("no RTP SSRC in common".into());
    }
    None
}

/// Why two heads are not 2N copies (None: they are).
fn mismatch(a: &Part, b: &Part, cfg: &DedupConfig) -> Option<String> {
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
    if ds > cfg.start_diff_ns_max {
        return Some(format!("starts differ by {:.1} s", ds as f64 / 1e9));
    }
    let dm = (a.media_ns() - b.media_ns()).abs();
    if dm > cfg.media_diff_ns_max {
        return Some(format!("media lengths differ by {:.1} s", dm as f64 / 1e9));
    }
    let dp = (a.packets() - b.packets()).abs();
    if dp > cfg.packets_diff_max {
        return Some(format!("RTP packet counts differ by {dp}"));
    }
    media_mismatch(a, b, cfg)
}

/// Does `next` continue the chain `chain` (head first)? The gaps of its streams, or why not.
fn continues(
    chain: &[&Part],
    next: &Part,
    cfg: &DedupConfig,
) -> std::result::Result<(i64, Vec<StreamGap>), String> {
    let head = chain[0];
    if chain.iter().any(|p| p.rec == next.rec) {
        return Err("same recorder".into());
    }
    if let Some(end) = head.end_ns {
        if next.first_ns > end {
            return Err(format!("the call ended on {} before", head.recorder));
        }
    }
    let before = chain.iter().max_by_key(|p| p.last_ns).unwrap_or(&head);
    let gap = next.first_ns - before.last_ns;
    if gap > cfg.failover_gap_ns_max || gap < -cfg.failover_overlap_ns_max {
        return Err(format!("{:.1} s apart", gap as f64 / 1e9));
    }
    let theirs: BTreeSet<&str> = chain.iter().flat_map(|p| p.all_tags()).collect();
    let ours = next.all_tags();
    if !theirs.is_empty() && !ours.is_empty() && theirs.is_disjoint(&ours) {
        return Err("dialog tags differ".into());
    }
    let mut gaps = Vec::new();
    for s in &next.rtp {
        let prev = chain
            .iter()
            .flat_map(|p| p.rtp.iter().map(move |m| (p, m)))
            .filter(|(_, m)| m.ssrc == s.ssrc && m.src == s.src && m.dst == s.dst)
            .max_by_key(|(_, m)| m.last_ns);
        let Some((p, m)) = prev else { continue };
        let missing = continuity(m, s, cfg)?;
        gaps.push(StreamGap {
            src: s.src.clone(),
            dst: s.dst.clone(),
            ssrc: s.ssrc,
            from: p.recorder.clone(),
            to: next.recorder.clone(),
            last_seq: m.seq.map_or(0, |x| x.1),
            next_seq: s.seq.map_or(0, |x| x.0),
            missing,
            gap_ns: s.first_ns - m.last_ns,
        });
    }
    Ok((gap.max(0), gaps))
}

fn completeness(a: &Part, b: &Part) -> std::cmp::Ordering {
    (b.packets(), b.sip_messages, b.streams)
        .cmp(&(a.packets(), a.sip_messages, a.streams))
        .then_with(|| a.recorder.cmp(&b.recorder))
        .then(a.id.cmp(&b.id))
}

/// Role of one row: (role, primary_id, dup_flags, failover JSON).
type Role = (&'static str, Option<i64>, Option<String>, Option<String>);

/// Roles of every row of one Call-ID.
fn roles(parts: &[Part], cfg: &DedupConfig) -> Result<BTreeMap<i64, Role>> {
    let mut heads: Vec<&Part> = parts.iter().filter(|p| p.has_invite).collect();
    heads.sort_by(|a, b| completeness(a, b));
    let mut rest: Vec<&Part> = parts.iter().filter(|p| !p.has_invite).collect();
    rest.sort_by(|a, b| (a.first_ns, &a.recorder, a.id).cmp(&(b.first_ns, &b.recorder, b.id)));
    let mut out: BTreeMap<i64, Role> = BTreeMap::new();
    let mut chains: Vec<Vec<&Part>> = heads.iter().map(|h| vec![*h]).collect();
    let mut gaps: Vec<(i64, Vec<StreamGap>)> = heads.iter().map(|_| (0, Vec::new())).collect();
    for p in rest {
        let mut fits: Vec<(usize, (i64, Vec<StreamGap>))> = chains
            .iter()
            .enumerate()
            .filter_map(|(i, c)| continues(c, p, cfg).ok().map(|g| (i, g)))
            .collect();
        if fits.len() == 1 {
            let Some((i, (gap, streams))) = fits.pop() else {
                continue;
            };
            gaps[i].0 += gap;
            gaps[i].1.extend(streams);
            chains[i].push(p);
            out.insert(p.id, ("fragment", Some(chains[i][0].id), None, None));
        } else if fits.is_empty() {
            out.insert(p.id, ("primary", None, None, None));
        } else {
            let names: Vec<&str> = fits
                .iter()
                .map(|(i, _)| chains[*i][0].recorder.as_str())
                .collect();
            let why = format!("ambiguous: continues the calls of {}", names.join(" and "));
            out.insert(p.id, ("primary", None, Some(why), None));
        }
    }
    let failed_over: Vec<usize> = (0..chains.len()).filter(|i| chains[*i].len() > 1).collect();
    if !failed_over.is_empty() {
        for (i, chain) in chains.iter().enumerate() {
            if chain.len() > 1 {
                let (gap_ns, streams) = std::mem::take(&mut gaps[i]);
                let info = FailoverInfo {
                    recorders: chain.iter().map(|p| p.recorder.clone()).collect(),
                    gap_ns,
                    gap_ms: gap_ns as f64 / 1e6,
                    missing_rtp: streams.iter().map(|s| u64::from(s.missing)).sum(),
                    streams,
                };
                out.insert(
                    chain[0].id,
                    ("primary", None, None, Some(serde_json::to_string(&info)?)),
                );
            } else {
                let who: Vec<&str> = failed_over
                    .iter()
                    .map(|j| chains[*j][0].recorder.as_str())
                    .collect();
                out.insert(
                    chain[0].id,
                    (
                        "primary",
                        None,
                        Some(format!(
                            "ambiguous: not a 2N copy: the call of {} failed over",
                            who.join(" and ")
                        )),
                        None,
                    ),
                );
            }
        }
        return Ok(out);
    }
    // 2N among the heads.
    let mut primaries: Vec<&Part> = Vec::new();
    for c in heads {
        let mut role: Role = ("primary", None, None, None);
        let mut reasons = Vec::new();
        // Rows of one recorder are one call already; compare with earlier primaries.
        for p in primaries.iter().filter(|p| p.rec != c.rec) {
            match mismatch(p, c, cfg) {
                None => {
                    role = ("secondary", Some(p.id), None, None);
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
        if role.0 == "primary" {
            primaries.push(c);
        }
        out.insert(c.id, role);
    }
    Ok(out)
}

/// An orphan RTP stream as step 1 sees it.
struct Orphan {
    id: i64,
    rec: i64,
    media: Media,
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// Step 1: claims orphan streams that continue a call recorded by another recorder.
fn claim_orphans(conn: &Connection, cfg: &DedupConfig, outcome: &mut Outcome) -> Result<()> {
    let mut st = conn.prepare(
        "SELECT id, recorder, src, dst, ssrc, first_ns, last_ns, packets, tracker FROM streams
         WHERE call IS NULL AND kind='rtp' ORDER BY first_ns, id LIMIT ?1",
    )?;
    let orphans: Vec<Orphan> = st
        .query_map([ORPHANS_SCAN_MAX as i64], |r| {
            let (seq, ts, span) = tracker_bounds(r.get(8)?);
            Ok(Orphan {
                id: r.get(0)?,
                rec: r.get(1)?,
                media: Media {
                    src: r.get(2)?,
                    dst: r.get(3)?,
                    ssrc: r.get::<_, i64>(4)? as u32,
                    first_ns: r.get(5)?,
                    last_ns: r.get(6)?,
                    packets: r.get(7)?,
                    seq,
                    ts,
                    span,
                },
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    drop(st);
    let mut by_sdp = conn.prepare_cached(
        "SELECT DISTINCT c.call_id FROM call_endpoints e JOIN calls c ON c.id=e.call
         WHERE e.addr=?1 AND e.port=?2 AND e.recorder!=?3 AND e.ts_ns <= ?4 LIMIT ?5",
    )?;
    let mut by_ssrc = conn.prepare_cached(
        "SELECT DISTINCT c.call_id FROM streams s JOIN calls c ON c.id=s.call
         WHERE s.ssrc=?1 AND s.kind='rtp' AND s.src=?2 AND s.dst=?3 AND s.recorder!=?4 LIMIT ?5",
    )?;
    for o in orphans {
        let m = &o.media;
        let mut cands: BTreeSet<String> = BTreeSet::new();
        for end in [&m.dst, &m.src] {
            let Some(a) = parse_addr(end) else { continue };
            let rows = by_sdp.query_map(
                params![
                    a.ip().to_string(),
                    a.port(),
                    o.rec,
                    m.first_ns.saturating_add(5_000_000_000),
                    CANDIDATES_MAX as i64
                ],
                |r| r.get::<_, String>(0),
            )?;
            for r in rows {
                cands.insert(r?);
            }
        }
        let rows = by_ssrc.query_map(
            params![m.ssrc, m.src, m.dst, o.rec, CANDIDATES_MAX as i64],
            |r| r.get::<_, String>(0),
        )?;
        for r in rows {
            cands.insert(r?);
        }
        let mut fits: Vec<(String, i64)> = Vec::new();
        for k in cands.into_iter().take(CANDIDATES_MAX) {
            let parts = load_parts(conn, &k)?;
            if parts.iter().any(|p| p.rec == o.rec && p.has_invite) {
                continue;
            }
            let me = Part {
                id: -o.id,
                rec: o.rec,
                recorder: String::new(),
                has_invite: false,
                start_ns: m.first_ns,
                end_ns: None,
                first_ns: m.first_ns,
                last_ns: m.last_ns,
                from_tag: String::new(),
                to_tags: Vec::new(),
                tags: Vec::new(),
                sip_messages: 0,
                rtp: vec![m.clone()],
                streams: 1,
            };
            let mut heads: Vec<&Part> = parts
                .iter()
                .filter(|p| p.rec != o.rec && p.has_invite)
                .collect();
            heads.sort_by(|a, b| completeness(a, b));
            // Each head's chain on its own: a 2N copy that recorded the whole call must not
            // hide the failover of another recorder's copy.
            let later: Vec<&Part> = parts
                .iter()
                .filter(|p| p.rec != o.rec && !p.has_invite)
                .collect();
            let fit = heads.iter().find(|h| {
                let mut chain = vec![**h];
                chain.extend(later.iter().filter(|p| p.rec != h.rec));
                // Media evidence: the same stream continues, or the chain never had media
                // on this path (a direction that started after the failover). A new SSRC on
                // a path the call already used is a new stream, perhaps of another call
                // reusing the ports.
                let same = chain.iter().any(|p| {
                    p.rtp
                        .iter()
                        .any(|r| r.ssrc == m.ssrc && r.src == m.src && r.dst == m.dst)
                });
                let used = chain
                    .iter()
                    .any(|p| p.rtp.iter().any(|r| r.dst == m.dst || r.src == m.src));
                (same || !used) && continues(&chain, &me, cfg).is_ok()
            });
            if let Some(h) = fit {
                fits.push((k.clone(), h.id));
            }
        }
        match fits.as_slice() {
            [(k, head)] => {
                claim(conn, o.rec, k, *head, &o)?;
                outcome.claimed_streams += 1;
            }
            [] => {}
            _ => outcome.ambiguous_orphans += 1,
        }
    }
    Ok(())
}

/// Ties orphan `o` (and the RTCP of its SSRC on its recorder) to Call-ID `k`'s row on its
/// recorder, creating that row when the recorder saw no SIP of the call.
fn claim(conn: &Connection, rec: i64, k: &str, head: i64, o: &Orphan) -> Result<()> {
    let row: Option<i64> = conn
        .query_row(
            "SELECT id FROM calls WHERE recorder=?1 AND call_id=?2",
            params![rec, k],
            |r| r.get(0),
        )
        .optional()?;
    let part = match row {
        Some(id) => id,
        None => conn.query_row(
            "INSERT INTO calls(recorder, call_id, from_uri, to_uri, from_user, to_user, state, start_ns, last_ns,
               has_invite, sip_messages, role, primary_id, facts)
             SELECT ?1, call_id, from_uri, to_uri, from_user, to_user, 'in_progress', ?3, ?4, 0, 0, 'fragment', id, ?5
             FROM calls WHERE id=?2 RETURNING id",
            params![
                rec,
                head,
                o.media.first_ns,
                o.media.last_ns,
                crate::engine::fragment_facts_json(o.media.first_ns, o.media.last_ns)?
            ],
            |r| r.get(0),
        )?,
    };
    conn.execute(
        "UPDATE streams SET call=?2, how='failover' WHERE id=?1 AND call IS NULL",
        params![o.id, part],
    )?;
    conn.execute(
        "UPDATE streams SET call=?2, how='failover' WHERE recorder=?1 AND kind='rtcp' AND call IS NULL
           AND ssrc=?3 AND last_ns >= ?4",
        params![rec, part, o.media.ssrc, o.media.first_ns],
    )?;
    Ok(())
}

/// Steps 1 and 2 over the whole index, in one transaction.
pub fn consolidate(conn: &Connection, cfg: &DedupConfig) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let recorders: i64 = conn.query_row("SELECT count(*) FROM recorders", [], |r| r.get(0))?;
    if recorders < 2 {
        return Ok(outcome);
    }
    let tx = conn.unchecked_transaction()?;
    claim_orphans(&tx, cfg, &mut outcome)?;
    let ids: Vec<String> = tx
        .prepare(
            "SELECT call_id FROM calls GROUP BY call_id
             HAVING count(DISTINCT recorder) > 1 AND max(has_invite) = 1 ORDER BY call_id",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    for call_id in ids {
        let parts = load_parts(&tx, &call_id)?;
        let roles = roles(&parts, cfg)?;
        for (id, (role, primary, flags, failover)) in roles {
            match role {
                "secondary" => outcome.secondaries += 1,
                "fragment" => outcome.fragments += 1,
                _ if failover.is_some() => outcome.failovers += 1,
                _ => {}
            }
            tx.execute(
                "UPDATE calls SET role=?2, primary_id=?3, dup_flags=?4, failover=?5 WHERE id=?1",
                params![id, role, primary, flags, failover],
            )?;
        }
    }
    if outcome.claimed_streams + outcome.ambiguous_orphans > 0 {
        for (name, v) in [
            ("failover_streams_claimed", outcome.claimed_streams),
            ("failover_ambiguous", outcome.ambiguous_orphans),
        ] {
            tx.execute(
                "INSERT INTO counters(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                params![name, v as i64],
            )?;
        }
    }
    tx.commit()?;
    Ok(outcome)
}

/// [`consolidate`] with the default thresholds; returns the number of secondary copies.
pub fn tag_2n(conn: &Connection) -> Result<u64> {
    Ok(consolidate(conn, &DedupConfig::default())?.secondaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(seq: (u16, u16), ts: (u32, u32)) -> Media {
        Media {
            src: "198.51.100.1:4000".into(),
            dst: "198.51.100.2:5000".into(),
            ssrc: 7,
            first_ns: 0,
            last_ns: 0,
            packets: 0,
            seq: Some(seq),
            ts: Some(ts),
            span: u64::from(seq.1.wrapping_sub(seq.0)) + 1,
        }
    }

    #[test]
    fn continuity_counts_missing_and_refuses_copies() {
        let cfg = DedupConfig::default();
        let a = media((100, 200), (0, 16000));
        // 25 sequence numbers nobody recorded.
        assert_eq!(
            continuity(&a, &media((226, 400), (16000 + 26 * 160, 60000)), &cfg),
            Ok(25)
        );
        // Across the 16-bit wrap.
        let w = media((65000, 65530), (0, 1000));
        assert_eq!(continuity(&w, &media((3, 90), (1160, 9000)), &cfg), Ok(8));
        // Make-before-break overlap: nothing missing.
        assert_eq!(
            continuity(&a, &media((190, 300), (14400, 30000)), &cfg),
            Ok(0)
        );
        // The same range again is a copy, not a continuation.
        assert!(continuity(&a, &media((100, 200), (0, 16000)), &cfg).is_err());
        // Too far ahead.
        assert!(continuity(&a, &media((5000, 5100), (800000, 900000)), &cfg).is_err());
        // Sequence goes on but the timestamp goes back.
        assert!(continuity(&a, &media((201, 300), (100, 16000)), &cfg).is_err());
    }

    #[test]
    fn overlap_of_ranges() {
        assert_eq!(overlap(0, 10, 10), 10);
        assert_eq!(overlap(5, 10, 10), 5);
        assert_eq!(overlap(-5, 10, 10), 5);
        assert_eq!(overlap(20, 10, 10), 0);
    }
}
