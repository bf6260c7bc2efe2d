//! The indexer proper: records in, calls and streams out (into the SQLite index).
//!
//! ## Call model (RFC 3261)
//! A call is the set of INVITE dialogs sharing a Call-ID inside one recorder: forks (several
//! To-tags) and auth retries (401/407 then a new INVITE with a higher CSeq) stay in one call.
//! The call keeps *facts* (earliest INVITE, earliest 2xx to INVITE, earliest CANCEL and BYE,
//! the final non-2xx response to the highest INVITE CSeq, To-tags, re-INVITEs). The state is
//! derived from facts, never from message order, so records read out of order (several capture
//! queues) or retransmitted give the same result:
//!
//! | state | rule |
//! |---|---|
//! | answered | a 2xx to an INVITE was seen (answer = earliest one; end = earliest BYE) |
//! | cancelled | 487, or a CANCEL and a final 4xx |
//! | busy | 486, 600 |
//! | rejected | other 3xx/4xx (incl. unanswered 401/407), 603, 604, 606 |
//! | timed_out | 408, or no final response `invite_timeout_ns` after the last message |
//! | failed | 5xx and other 6xx |
//! | in_progress | otherwise |
//!
//! Retransmissions: a message whose (direction, start line, CSeq, top Via branch, To-tag) was
//! already stored for the call only increments `retransmissions`.
//!
//! ## Media correlation
//! Every SDP (offer or answer, INVITE/2xx/re-INVITE/UPDATE, IPv4/IPv6, session or media `c=`)
//! adds `call_endpoints`. A new RTP stream is claimed by the call whose endpoint equals its
//! destination (`sdp`) or, failing that, its source (`sdp-reverse`: symmetric RTP); the most
//! recent announcement not later than the stream's first packet + 5 s wins. RTCP matches the
//! endpoint's RTCP port. Behind NAT (`NatMatch`): `port` also matches a destination (or source)
//! whose address is the one the SDP's SIP message came from and whose port is the SDP port;
//! `timing` additionally gives a still-unmatched stream to the single call answered within
//! `nat_window_ns` of its first packet (ambiguous cases are counted and left as orphans).
//! An SDP seen after its stream started claims the orphan streams it describes.
//! Streams no call claims stay in the index as orphans (`call` NULL).
//!
//! ## Bounds
//! Calls and streams live in SQLite; memory holds at most `calls_open_max` calls and
//! `streams_open_max` streams (least recently used evicted, counted as `calls_evicted` and
//! `streams_evicted`: calls are written through, streams are written back on eviction, so no
//! eviction loses data).

use crate::error::Result;
use crate::frame::{decode, Link, Transport};
use crate::quality::{is_rtcp, mos_from_r, parse_rtp, r_factor, RtpTracker};
use crate::sipmsg::{self, looks_like_sip, SipMessage};
use crate::tcp::{Origin, TcpReassembler};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;

/// How hard to look for media behind NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatMatch {
    Off,
    #[default]
    Port,
    Timing,
}

impl std::str::FromStr for NatMatch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(NatMatch::Off),
            "port" => Ok(NatMatch::Port),
            "timing" => Ok(NatMatch::Timing),
            _ => Err(format!("unknown NAT match mode `{s}` (off, port, timing)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub calls_open_max: usize,
    pub streams_open_max: usize,
    pub invite_timeout_ns: i64,
    pub nat_match: NatMatch,
    pub nat_window_ns: i64,
    pub sip_ports: Vec<u16>,
    /// 2N and failover thresholds.
    pub dedup: crate::dedup::DedupConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            calls_open_max: 100_000,
            streams_open_max: 200_000,
            invite_timeout_ns: 64 * 500_000_000 * 2, // 64 × T1, doubled for slow networks
            nat_match: NatMatch::Port,
            nat_window_ns: 5_000_000_000,
            sip_ports: vec![5060, 5061, 5080],
            dedup: crate::dedup::DedupConfig::default(),
        }
    }
}

/// What the capture engine said a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    Unknown,
    Sip,
    Rtp,
    Rtcp,
}

/// One record as the indexer reads it.
#[derive(Debug, Clone, Copy)]
pub struct FrameIn<'a> {
    pub ts_ns: i64,
    pub offset: u64,
    /// The segment stream table id (-1 when the source has none).
    pub stream_id: i64,
    pub hint: Hint,
    pub link: Link,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Facts {
    invite_seen: bool,
    start_ns: Option<i64>,
    answer_ns: Option<i64>,
    bye_ns: Option<i64>,
    cancel_ns: Option<i64>,
    max_invite_cseq: u32,
    /// (CSeq, status, time) of the final non-2xx response to the highest INVITE CSeq.
    final_resp: Option<(u32, u16, i64)>,
    to_tags: Vec<String>,
    from_tag: String,
    first_ns: i64,
    last_ns: i64,
    reinvites: u32,
    /// Every From- and To-tag seen on any message of the call (at most TO_TAGS_MAX): a
    /// recorder that joined mid-call (failover) sees no INVITE, only in-dialog messages.
    #[serde(default)]
    tags: Vec<String>,
}

/// The facts JSON of a call part made by failover consolidation (no SIP seen yet).
pub(crate) fn fragment_facts_json(first_ns: i64, last_ns: i64) -> Result<String> {
    Ok(serde_json::to_string(&Facts {
        first_ns,
        last_ns,
        ..Default::default()
    })?)
}

const TO_TAGS_MAX: usize = 16;

/// (payload type, encoding name, clock rate) from an SDP `a=rtpmap` or the static table.
pub type RtpMap = Vec<(u8, String, u32)>;
/// (call row, how matched, the matched endpoint's payload map).
type StreamMatch = (i64, String, RtpMap);
/// A stream row as loaded: id, call, how, first_ns, last_ns, tracker JSON, rtpmap JSON.
type StreamRow = (
    i64,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

struct CallEntry {
    id: i64,
    facts: Facts,
    from_uri: String,
    to_uri: String,
    sip_messages: i64,
    last_use: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StreamKey {
    rec: i64,
    kind: &'static str,
    src: SocketAddr,
    dst: SocketAddr,
    ssrc: u32,
}

struct StreamEntry {
    id: Option<i64>,
    call: Option<i64>,
    how: Option<String>,
    first_ns: i64,
    last_ns: i64,
    tracker: RtpTracker,
    /// (pt, name, clock) from the SDP that matched.
    rtpmap: Vec<(u8, String, u32)>,
    /// (segment, stream id) → (first offset, packets) not yet written.
    parts: BTreeMap<(i64, i64), (u64, u64)>,
    dirty: bool,
    last_use: u64,
}

/// A segment being consumed (between [`Indexer::begin`] and [`Indexer::commit`]).
#[derive(Debug, Clone)]
pub struct SegCtx {
    pub recorder: i64,
    pub segment: i64,
    pub path: String,
    pub offset_reached: u64,
    pub done: bool,
    now_ns: i64,
}

/// The indexer: owns the SQLite connection and the bounded in-memory caches.
pub struct Indexer {
    conn: Connection,
    cfg: Config,
    calls: HashMap<(i64, String), CallEntry>,
    streams: HashMap<StreamKey, StreamEntry>,
    /// Cached orphan streams by their source and by their destination address, so an SDP
    /// finds the streams it describes without scanning the cache.
    orphans: HashMap<(i64, SocketAddr), Vec<StreamKey>>,
    tcp: HashMap<i64, TcpReassembler>,
    clock: u64,
    /// Not yet written to the `counters` table.
    counters: BTreeMap<&'static str, i64>,
    /// Since this process started.
    totals: BTreeMap<&'static str, i64>,
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> crate::IndexError + '_ {
    move |source| crate::IndexError::Db {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating if needed) an index database in WAL mode with the current schema.
pub fn open_db(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sql_err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sql_err(path))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err(path))?;
    conn.execute_batch(crate::schema::SCHEMA)
        .map_err(sql_err(path))?;
    crate::schema::migrate(&conn).map_err(sql_err(path))?;
    conn.pragma_update(None, "user_version", crate::schema::SCHEMA_VERSION)
        .map_err(sql_err(path))?;
    Ok(conn)
}

fn derive_state(
    f: &Facts,
    now_ns: i64,
    timeout_ns: i64,
) -> (&'static str, Option<u16>, Option<i64>) {
    if let Some(a) = f.answer_ns {
        let _ = a;
        return ("answered", Some(200), f.bye_ns);
    }
    if let Some((cseq, code, ts)) = f.final_resp {
        if cseq >= f.max_invite_cseq {
            let s = match code {
                487 => "cancelled",
                _ if f.cancel_ns.is_some() && (400..500).contains(&code) => "cancelled",
                486 | 600 => "busy",
                408 => "timed_out",
                300..=499 | 603 | 604 | 606 => "rejected",
                _ => "failed",
            };
            return (s, Some(code), Some(ts));
        }
    }
    if let Some(c) = f.cancel_ns {
        return ("cancelled", None, Some(c));
    }
    if f.last_ns.saturating_add(timeout_ns) < now_ns {
        return ("timed_out", None, None);
    }
    ("in_progress", None, None)
}

fn addr(a: &SocketAddr) -> String {
    a.to_string()
}

impl Indexer {
    pub fn open(path: &Path, cfg: Config) -> Result<Self> {
        Ok(Indexer {
            conn: open_db(path)?,
            cfg,
            calls: HashMap::new(),
            streams: HashMap::new(),
            orphans: HashMap::new(),
            tcp: HashMap::new(),
            clock: 0,
            counters: BTreeMap::new(),
            totals: BTreeMap::new(),
        })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Several recorders, one call: 2N roles and failover parts ([`crate::dedup`]), recomputed
    /// from the index. Run between passes (no segment transaction open).
    pub fn consolidate(&mut self) -> Result<crate::dedup::Outcome> {
        let out = crate::dedup::consolidate(&self.conn, &self.cfg.dedup)?;
        if out.claimed_streams > 0 {
            // Claimed streams changed call in the database; the cached copies (clean after
            // the commit) would write the old one back.
            self.streams.clear();
            self.orphans.clear();
        }
        Ok(out)
    }

    fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_default() += 1;
        *self.totals.entry(name).or_default() += 1;
    }

    /// Counters of this process since it started (also added to the `counters` table at commit).
    pub fn session_counters(&self) -> &BTreeMap<&'static str, i64> {
        &self.totals
    }

    /// The recorder id for `name` in `store`, creating it.
    pub fn recorder(&mut self, name: &str, store: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO recorders(name, store) VALUES(?1, ?2) ON CONFLICT(name, store) DO NOTHING",
            params![name, store],
        )?;
        Ok(self.conn.query_row(
            "SELECT id FROM recorders WHERE name=?1 AND store=?2",
            params![name, store],
            |r| r.get(0),
        )?)
    }

    /// (offset reached, done) of a segment, None when never seen.
    pub fn progress(&self, key: &str) -> Result<Option<(u64, bool)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT offset_reached, done FROM segments WHERE key=?1",
                [key],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? != 0)),
            )
            .optional()?)
    }

    /// Starts the transaction for one pass over a segment (`key` identifies it across renames).
    pub fn begin(&mut self, recorder: i64, key: &str, path: &str) -> Result<SegCtx> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.conn.execute(
            "INSERT INTO segments(recorder, key, path) VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET path=excluded.path",
            params![recorder, key, path],
        )?;
        let (segment, off, done, now_ns): (i64, i64, i64, i64) = self.conn.query_row(
            "SELECT s.id, s.offset_reached, s.done, r.now_ns FROM segments s JOIN recorders r ON r.id=s.recorder WHERE s.key=?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        if !self.tcp.contains_key(&recorder) {
            let st: Option<String> = self
                .conn
                .query_row(
                    "SELECT state FROM tcp_state WHERE recorder=?1",
                    [recorder],
                    |r| r.get(0),
                )
                .optional()?;
            let t = st
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            self.tcp.insert(recorder, t);
        }
        Ok(SegCtx {
            recorder,
            segment,
            path: path.to_string(),
            offset_reached: off as u64,
            done: done != 0,
            now_ns,
        })
    }

    /// Ends a pass: writes streams, progress and counters, and commits.
    pub fn commit(
        &mut self,
        ctx: &SegCtx,
        offset_reached: u64,
        records: u64,
        done: bool,
    ) -> Result<()> {
        let r = self.commit_inner(ctx, offset_reached, records, done);
        if r.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.drop_caches();
        }
        r
    }

    /// Abandons a pass (the caches are dropped: they may hold uncommitted state).
    pub fn rollback(&mut self) -> Result<()> {
        self.conn.execute_batch("ROLLBACK")?;
        self.drop_caches();
        Ok(())
    }

    fn drop_caches(&mut self) {
        self.calls.clear();
        self.streams.clear();
        self.orphans.clear();
        self.tcp.clear();
    }

    fn commit_inner(
        &mut self,
        ctx: &SegCtx,
        offset_reached: u64,
        records: u64,
        done: bool,
    ) -> Result<()> {
        let keys: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, e)| e.dirty)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.flush_stream(&k)?;
        }
        // Calls with no final state whose last message is older than the timeout.
        self.conn.execute(
            "UPDATE calls SET state='timed_out' WHERE recorder=?1 AND state='in_progress' AND last_ns < ?2",
            params![ctx.recorder, ctx.now_ns.saturating_sub(self.cfg.invite_timeout_ns)],
        )?;
        self.conn.execute(
            "UPDATE recorders SET now_ns=?2 WHERE id=?1",
            params![ctx.recorder, ctx.now_ns],
        )?;
        self.conn.execute(
            "UPDATE segments SET offset_reached=?2, records=records+?3, done=?4 WHERE id=?1",
            params![
                ctx.segment,
                offset_reached as i64,
                records as i64,
                done as i64
            ],
        )?;
        if let Some(t) = self.tcp.get(&ctx.recorder) {
            self.conn.execute(
                "INSERT INTO tcp_state(recorder, state) VALUES(?1, ?2) ON CONFLICT(recorder) DO UPDATE SET state=excluded.state",
                params![ctx.recorder, serde_json::to_string(t)?],
            )?;
        }
        for (name, v) in std::mem::take(&mut self.counters) {
            self.conn.execute(
                "INSERT INTO counters(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                params![name, v],
            )?;
        }
        self.conn.execute_batch("COMMIT")?;
        // Calls that are over need no cache slot.
        let horizon = ctx.now_ns.saturating_sub(self.cfg.invite_timeout_ns);
        self.calls.retain(|_, c| c.facts.last_ns >= horizon);
        // Streams idle past the same horizon were written just above and leave the cache too
        // (a stream that resumes is loaded back from its row), so memory follows the calls
        // open at once, not the length of the capture.
        let idle: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, e)| !e.dirty && e.last_ns < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            self.streams.remove(&k);
            for end in [k.src, k.dst] {
                if let Some(v) = self.orphans.get_mut(&(k.rec, end)) {
                    v.retain(|o| *o != k);
                    if v.is_empty() {
                        self.orphans.remove(&(k.rec, end));
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads one record.
    pub fn push(&mut self, ctx: &mut SegCtx, f: &FrameIn<'_>) -> Result<()> {
        self.clock += 1;
        if f.ts_ns > ctx.now_ns {
            ctx.now_ns = f.ts_ns;
        }
        let Some(l4) = decode(f.link, f.data) else {
            self.count("records_undecodable");
            return Ok(());
        };
        let origin: Origin = (ctx.segment, f.offset, f.ts_ns);
        let sip_port = |p: u16| self.cfg.sip_ports.contains(&p);
        match l4.transport {
            Transport::Tcp {
                seq,
                syn,
                fin: _,
                rst: _,
            } => {
                let key = format!("{}>{}", l4.src, l4.dst);
                let tcp = self.tcp.entry(ctx.recorder).or_default();
                let known = tcp.flows.contains_key(&key);
                if !(known
                    || f.hint == Hint::Sip
                    || sip_port(l4.src.port())
                    || sip_port(l4.dst.port())
                    || looks_like_sip(l4.payload))
                {
                    self.count("records_other");
                    return Ok(());
                }
                let msgs = tcp.push(&key, seq, syn, l4.payload, origin);
                for (bytes, o) in msgs {
                    self.on_sip(ctx, &bytes, o, l4.src, l4.dst, "tcp")?;
                }
            }
            Transport::Sctp => {
                let key = format!("sctp:{}>{}", l4.src, l4.dst);
                let msgs = self
                    .tcp
                    .entry(ctx.recorder)
                    .or_default()
                    .push_in_order(&key, l4.payload, origin);
                for (bytes, o) in msgs {
                    self.on_sip(ctx, &bytes, o, l4.src, l4.dst, "sctp")?;
                }
            }
            Transport::Udp => {
                let p = l4.payload;
                let sipish = looks_like_sip(p);
                if sipish || (f.hint == Hint::Sip) {
                    self.on_sip(ctx, p, origin, l4.src, l4.dst, "udp")?;
                } else if f.hint == Hint::Rtcp || (f.hint != Hint::Rtp && is_rtcp(p)) {
                    if is_rtcp(p) {
                        let ssrc = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                        self.on_media(ctx, f, "rtcp", l4.src, l4.dst, ssrc, None)?;
                    } else {
                        self.count("rtcp_garbage");
                    }
                } else if sip_port(l4.src.port()) || sip_port(l4.dst.port()) {
                    // On a SIP port but not SIP (keep-alives, junk).
                    if p.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
                        self.count("sip_keepalives");
                    } else {
                        self.count("sip_garbage");
                    }
                } else if let Some((ssrc, rtp)) = parse_rtp(p, f.ts_ns as u64) {
                    let plausible = f.hint == Hint::Rtp
                        || (l4.src.port() >= 1024
                            && l4.dst.port() >= 1024
                            && !(72..=76).contains(&rtp.payload_type));
                    if plausible {
                        self.on_media(ctx, f, "rtp", l4.src, l4.dst, ssrc, Some(rtp))?;
                    } else {
                        self.count("records_other");
                    }
                } else if f.hint == Hint::Rtp {
                    self.count("rtp_garbage");
                } else {
                    self.count("records_other");
                }
            }
        }
        Ok(())
    }

    fn load_call(&mut self, rec: i64, call_id: &str, create: bool, ts: i64) -> Result<Option<i64>> {
        let key = (rec, call_id.to_string());
        if let Some(c) = self.calls.get_mut(&key) {
            c.last_use = self.clock;
            return Ok(Some(c.id));
        }
        let row: Option<(i64, String, String, String, i64)> = self
            .conn
            .query_row(
                "SELECT id, facts, from_uri, to_uri, sip_messages FROM calls WHERE recorder=?1 AND call_id=?2",
                params![rec, call_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<String>>(2)?.unwrap_or_default(), r.get::<_, Option<String>>(3)?.unwrap_or_default(), r.get(4)?)),
            )
            .optional()?;
        let entry = match row {
            Some((id, facts, from_uri, to_uri, sip_messages)) => CallEntry {
                id,
                facts: serde_json::from_str(&facts)?,
                from_uri,
                to_uri,
                sip_messages,
                last_use: self.clock,
            },
            None if create => {
                let facts = Facts {
                    first_ns: ts,
                    last_ns: ts,
                    ..Default::default()
                };
                let id = self.conn.query_row(
                    "INSERT INTO calls(recorder, call_id, state, facts, last_ns) VALUES(?1, ?2, 'in_progress', ?3, ?4) RETURNING id",
                    params![rec, call_id, serde_json::to_string(&facts)?, ts],
                    |r| r.get(0),
                )?;
                CallEntry {
                    id,
                    facts,
                    from_uri: String::new(),
                    to_uri: String::new(),
                    sip_messages: 0,
                    last_use: self.clock,
                }
            }
            None => return Ok(None),
        };
        if self.calls.len() >= self.cfg.calls_open_max.max(1) {
            // Calls are written through: evicting only drops the cached copy.
            let n = (self.calls.len() / 8).max(1);
            let mut lru: Vec<(u64, (i64, String))> = self
                .calls
                .iter()
                .map(|(k, c)| (c.last_use, k.clone()))
                .collect();
            lru.sort();
            for (_, k) in lru.into_iter().take(n) {
                self.calls.remove(&k);
                self.count("calls_evicted");
            }
        }
        let id = entry.id;
        self.calls.insert(key, entry);
        Ok(Some(id))
    }

    fn on_sip(
        &mut self,
        ctx: &mut SegCtx,
        bytes: &[u8],
        origin: Origin,
        src: SocketAddr,
        dst: SocketAddr,
        transport: &str,
    ) -> Result<()> {
        let m = match sipmsg::parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.count("sip_garbage");
                return Ok(());
            }
        };
        self.count("sip_messages");
        let (seg, offset, ts) = origin;
        let cm = m.cseq_method.to_ascii_uppercase();
        // The request line decides too: a damaged CSeq must not lose the call.
        let dialog = |x: &str| matches!(x, "INVITE" | "ACK" | "BYE" | "CANCEL");
        let creates = dialog(&cm) || m.method().is_some_and(dialog);
        let Some(call) = self.load_call(ctx.recorder, &m.call_id, creates, ts)? else {
            self.count("sip_not_in_call");
            return Ok(());
        };
        let what = match (m.method(), m.status()) {
            (Some(meth), _) => meth.to_string(),
            (_, Some(s)) => s.to_string(),
            _ => String::new(),
        };
        let dedup = format!(
            "{src}>{dst}|{what}|{}|{cm}|{}|{}",
            m.cseq_num, m.branch, m.to_tag
        );
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO sip_messages(call, segment, record_offset, ts_ns, src, dst, transport, method, status, cseq, cseq_method, dedup_key)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![call, seg, offset as i64, ts, addr(&src), addr(&dst), transport, m.method(), m.status(), m.cseq_num, cm, dedup],
        )?;
        if n == 0 {
            self.count("sip_retransmissions");
            self.conn.execute(
                "UPDATE sip_messages SET retransmissions=retransmissions+1 WHERE call=?1 AND dedup_key=?2",
                params![call, dedup],
            )?;
            return Ok(());
        }
        let key = (ctx.recorder, m.call_id.clone());
        let Some(c) = self.calls.get_mut(&key) else {
            return Ok(());
        };
        c.sip_messages += 1;
        apply(&mut c.facts, &m, ts);
        if c.from_uri.is_empty() || (m.method() == Some("INVITE") && m.to_tag.is_empty()) {
            c.from_uri = m.from_uri.clone();
            c.to_uri = m.to_uri.clone();
        }
        let (state, code, end) = derive_state(&c.facts, ctx.now_ns, self.cfg.invite_timeout_ns);
        let f = &c.facts;
        self.conn.execute(
            "UPDATE calls SET from_uri=?2, to_uri=?3, from_user=?4, to_user=?5, state=?6, final_code=?7, start_ns=?8,
             answer_ns=?9, end_ns=?10, last_ns=?11, has_invite=?12, sip_messages=?13, facts=?14 WHERE id=?1",
            params![
                c.id,
                c.from_uri,
                c.to_uri,
                sipmsg::user_part(&c.from_uri),
                sipmsg::user_part(&c.to_uri),
                state,
                code,
                f.start_ns.unwrap_or(f.first_ns),
                f.answer_ns,
                end,
                f.last_ns,
                f.invite_seen as i64,
                c.sip_messages,
                serde_json::to_string(f)?
            ],
        )?;
        if let Some(sdp) = &m.sdp {
            for md in &sdp.media {
                let Some(ip) = md.addr else { continue };
                if md.port == 0 || ip.is_unspecified() {
                    continue;
                }
                let ep = SocketAddr::new(ip, md.port);
                let rtcp = SocketAddr::new(ip, md.rtcp_port);
                self.conn.execute(
                    "INSERT INTO call_endpoints(call, recorder, addr, port, rtcp_port, sig_addr, media, rtpmap, ts_ns)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(call, addr, port) DO UPDATE SET rtpmap=excluded.rtpmap, ts_ns=min(ts_ns, excluded.ts_ns)",
                    params![call, ctx.recorder, ip.to_string(), md.port, md.rtcp_port, src.ip().to_string(), md.media, serde_json::to_string(&rtpmap_of(md))?, ts],
                )?;
                self.claim_orphans(ctx.recorder, call, ep, rtcp, ts, &rtpmap_of(md))?;
            }
        }
        Ok(())
    }

    fn claim_orphans(
        &mut self,
        rec: i64,
        call: i64,
        ep: SocketAddr,
        rtcp: SocketAddr,
        ts: i64,
        rtpmap: &[(u8, String, u32)],
    ) -> Result<()> {
        let from = ts.saturating_sub(self.cfg.nat_window_ns);
        for end in [ep, rtcp] {
            let Some(keys) = self.orphans.remove(&(rec, end)) else {
                continue;
            };
            let mut left = Vec::new();
            for k in keys {
                let Some(e) = self.streams.get_mut(&k) else {
                    continue;
                };
                if e.call.is_some() {
                    continue;
                }
                let want = if k.kind == "rtp" { ep } else { rtcp };
                if end != want || e.first_ns < from {
                    left.push(k);
                    continue;
                }
                e.call = Some(call);
                e.how = Some(if k.dst == want { "sdp" } else { "sdp-reverse" }.into());
                e.rtpmap = rtpmap.to_vec();
                e.dirty = true;
            }
            if !left.is_empty() {
                self.orphans.insert((rec, end), left);
            }
        }
        let (ep, rtcp) = (addr(&ep), addr(&rtcp));
        self.conn.execute(
            "UPDATE streams SET call=?2, how=CASE WHEN dst IN (?3, ?4) THEN 'sdp' ELSE 'sdp-reverse' END
             WHERE recorder=?1 AND call IS NULL AND first_ns >= ?5 AND
             ((kind='rtp' AND (dst=?3 OR src=?3)) OR (kind='rtcp' AND (dst=?4 OR src=?4)))",
            params![rec, call, ep, rtcp, from],
        )?;
        Ok(())
    }

    fn match_stream(
        &mut self,
        rec: i64,
        kind: &str,
        src: &SocketAddr,
        dst: &SocketAddr,
        first_ns: i64,
    ) -> Result<Option<StreamMatch>> {
        let port_col = if kind == "rtp" { "port" } else { "rtcp_port" };
        let pick = |rows: Vec<(i64, i64, String)>| -> Option<(i64, RtpMap)> {
            let before = rows
                .iter()
                .filter(|r| r.1 <= first_ns + 5_000_000_000)
                .max_by_key(|r| (r.1, r.0));
            let best = before.or_else(|| rows.iter().min_by_key(|r| (r.1, r.0)))?;
            Some((best.0, serde_json::from_str(&best.2).unwrap_or_default()))
        };
        let q =
            |conn: &Connection, sql: &str, a: String, p: u16| -> Result<Vec<(i64, i64, String)>> {
                let mut st = conn.prepare_cached(sql)?;
                let rows = st
                    .query_map(params![rec, a, p], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        ))
                    })?
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(rows)
            };
        let exact = format!("SELECT call, ts_ns, rtpmap FROM call_endpoints WHERE recorder=?1 AND addr=?2 AND {port_col}=?3");
        for (end, how) in [(dst, "sdp"), (src, "sdp-reverse")] {
            if let Some((c, m)) = pick(q(&self.conn, &exact, end.ip().to_string(), end.port())?) {
                return Ok(Some((c, how.into(), m)));
            }
        }
        if self.cfg.nat_match == NatMatch::Off {
            return Ok(None);
        }
        let nat = format!("SELECT call, ts_ns, rtpmap FROM call_endpoints WHERE recorder=?1 AND sig_addr=?2 AND {port_col}=?3");
        for end in [dst, src] {
            if let Some((c, m)) = pick(q(&self.conn, &nat, end.ip().to_string(), end.port())?) {
                self.count("streams_nat_port");
                return Ok(Some((c, "nat-port".into(), m)));
            }
        }
        if self.cfg.nat_match == NatMatch::Timing {
            let w = self.cfg.nat_window_ns;
            let mut st = self.conn.prepare_cached(
                "SELECT id FROM calls WHERE recorder=?1 AND answer_ns BETWEEN ?2 AND ?3 AND (end_ns IS NULL OR end_ns >= ?4) LIMIT 2",
            )?;
            let ids: Vec<i64> = st
                .query_map(params![rec, first_ns - w, first_ns + w, first_ns], |r| {
                    r.get(0)
                })?
                .collect::<std::result::Result<_, _>>()?;
            drop(st);
            match ids.as_slice() {
                [one] => {
                    self.count("streams_nat_timing");
                    return Ok(Some((*one, "nat-timing".into(), Vec::new())));
                }
                [] => {}
                _ => self.count("streams_nat_timing_ambiguous"),
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_media(
        &mut self,
        ctx: &mut SegCtx,
        f: &FrameIn<'_>,
        kind: &'static str,
        src: SocketAddr,
        dst: SocketAddr,
        ssrc: u32,
        rtp: Option<crate::quality::RtpPacket<'_>>,
    ) -> Result<()> {
        let key = StreamKey {
            rec: ctx.recorder,
            kind,
            src,
            dst,
            ssrc,
        };
        if !self.streams.contains_key(&key) {
            let entry = self.load_or_new_stream(&key, &src, &dst, f.ts_ns)?;
            if self.streams.len() >= self.cfg.streams_open_max.max(1) {
                let n = (self.streams.len() / 8).max(1);
                let mut lru: Vec<(u64, StreamKey)> = self
                    .streams
                    .iter()
                    .map(|(k, e)| (e.last_use, k.clone()))
                    .collect();
                lru.sort();
                for (_, k) in lru.into_iter().take(n) {
                    self.flush_stream(&k)?;
                    self.streams.remove(&k);
                    for end in [k.src, k.dst] {
                        if let Some(v) = self.orphans.get_mut(&(k.rec, end)) {
                            v.retain(|o| *o != k);
                            if v.is_empty() {
                                self.orphans.remove(&(k.rec, end));
                            }
                        }
                    }
                    self.count("streams_evicted");
                }
            }
            if entry.call.is_none() {
                for end in [key.src, key.dst] {
                    self.orphans
                        .entry((key.rec, end))
                        .or_default()
                        .push(key.clone());
                }
            }
            self.streams.insert(key.clone(), entry);
        }
        let clock = self.clock;
        let Some(e) = self.streams.get_mut(&key) else {
            return Ok(());
        };
        e.last_use = clock;
        e.dirty = true;
        e.first_ns = e.first_ns.min(f.ts_ns);
        e.last_ns = e.last_ns.max(f.ts_ns);
        let part = e
            .parts
            .entry((ctx.segment, f.stream_id))
            .or_insert((f.offset, 0));
        part.1 += 1;
        match rtp {
            Some(p) => {
                if e.tracker.packets == 0 {
                    if let Some(r) = e.rtpmap.iter().find(|m| m.0 == p.payload_type) {
                        e.tracker.clock_hz = r.2.max(1);
                    }
                }
                let ev = e
                    .rtpmap
                    .iter()
                    .find(|m| m.1.eq_ignore_ascii_case("telephone-event"))
                    .map(|m| m.0);
                e.tracker.push(&p, ev);
            }
            None => {
                e.tracker.packets += 1;
                e.tracker.bytes += f.data.len() as u64;
            }
        }
        Ok(())
    }

    fn load_or_new_stream(
        &mut self,
        key: &StreamKey,
        src: &SocketAddr,
        dst: &SocketAddr,
        ts: i64,
    ) -> Result<StreamEntry> {
        let row: Option<StreamRow> = self
            .conn
            .query_row(
                "SELECT s.id, s.call, s.how, s.first_ns, s.last_ns, s.tracker,
                  (SELECT e.rtpmap FROM call_endpoints e WHERE e.call=s.call ORDER BY e.ts_ns DESC LIMIT 1)
                 FROM streams s WHERE recorder=?1 AND kind=?2 AND src=?3 AND dst=?4 AND ssrc=?5",
                params![key.rec, key.kind, addr(&key.src), addr(&key.dst), key.ssrc],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()?;
        if let Some((id, call, how, first_ns, last_ns, tracker, rtpmap)) = row {
            return Ok(StreamEntry {
                id: Some(id),
                call,
                how,
                first_ns,
                last_ns,
                tracker: tracker
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_else(|| RtpTracker::new(8000)),
                rtpmap: rtpmap
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
                parts: BTreeMap::new(),
                dirty: false,
                last_use: self.clock,
            });
        }
        let m = self.match_stream(key.rec, key.kind, src, dst, ts)?;
        if m.is_none() {
            self.count("streams_orphan");
        }
        let (call, how, rtpmap) = match m {
            Some((c, h, r)) => (Some(c), Some(h), r),
            None => (None, None, Vec::new()),
        };
        Ok(StreamEntry {
            id: None,
            call,
            how,
            first_ns: ts,
            last_ns: ts,
            tracker: RtpTracker::new(8000),
            rtpmap,
            parts: BTreeMap::new(),
            dirty: true,
            last_use: self.clock,
        })
    }

    fn flush_stream(&mut self, k: &StreamKey) -> Result<()> {
        let Some(e) = self.streams.get_mut(k) else {
            return Ok(());
        };
        if !e.dirty {
            return Ok(());
        }
        let t = &e.tracker;
        let pt = t.main_payload_type();
        let codec = pt.map(|pt| codec_name(pt, &e.rtpmap));
        let (lost, jitter) = (t.lost(), t.jitter_ms());
        let mos = match (k.kind, pt) {
            ("rtp", Some(0 | 8)) => Some(mos_from_r(r_factor(lost, t.packets, jitter))),
            _ => None,
        };
        let dtmf: String = t.dtmf.iter().map(|(c, _)| dtmf_char(*c)).collect();
        let pts = t
            .payload_types
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let is_rtp = k.kind == "rtp";
        let id: i64 = self.conn.query_row(
            "INSERT INTO streams(recorder, kind, src, dst, ssrc, call, how, first_ns, last_ns, packets, bytes, lost, duplicates,
               out_of_order, jitter_ms, max_jitter_ms, payload_type, payload_types, codec, dtmf, mos, tracker)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22)
             ON CONFLICT(recorder, kind, src, dst, ssrc) DO UPDATE SET call=excluded.call, how=excluded.how,
               first_ns=excluded.first_ns, last_ns=excluded.last_ns, packets=excluded.packets, bytes=excluded.bytes,
               lost=excluded.lost, duplicates=excluded.duplicates, out_of_order=excluded.out_of_order,
               jitter_ms=excluded.jitter_ms, max_jitter_ms=excluded.max_jitter_ms, payload_type=excluded.payload_type,
               payload_types=excluded.payload_types, codec=excluded.codec, dtmf=excluded.dtmf, mos=excluded.mos,
               tracker=excluded.tracker
             RETURNING id",
            params![
                k.rec,
                k.kind,
                addr(&k.src),
                addr(&k.dst),
                k.ssrc,
                e.call,
                e.how,
                e.first_ns,
                e.last_ns,
                t.packets as i64,
                t.bytes as i64,
                lost as i64,
                t.duplicates as i64,
                t.out_of_order as i64,
                is_rtp.then_some(jitter),
                is_rtp.then_some(t.max_jitter_ms),
                if is_rtp { pt } else { None },
                pts,
                if is_rtp { codec } else { None },
                dtmf,
                mos,
                serde_json::to_string(t)?
            ],
            |r| r.get(0),
        )?;
        e.id = Some(id);
        for ((seg, sid), (off, n)) in std::mem::take(&mut e.parts) {
            self.conn.execute(
                "INSERT INTO stream_parts(stream, segment, stream_id, first_offset, packets) VALUES(?1,?2,?3,?4,?5)
                 ON CONFLICT(stream, segment, stream_id) DO UPDATE SET packets=packets+excluded.packets,
                   first_offset=min(first_offset, excluded.first_offset)",
                params![id, seg, sid, off as i64, n as i64],
            )?;
        }
        e.dirty = false;
        Ok(())
    }
}

fn rtpmap_of(md: &sipmsg::SdpMedia) -> Vec<(u8, String, u32)> {
    let mut v = md.rtpmap.clone();
    for pt in &md.payload_types {
        if !v.iter().any(|m| m.0 == *pt) {
            if let Some(name) = sipmsg::static_codec(*pt) {
                let rate = match pt {
                    10 | 11 => 44100,
                    6 => 16000,
                    16 => 11025,
                    17 => 22050,
                    14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => 90000,
                    _ => 8000,
                };
                v.push((*pt, name.to_string(), rate));
            }
        }
    }
    v
}

/// The codec name of a payload type: SDP rtpmap first, then the static table.
pub fn codec_name(pt: u8, rtpmap: &[(u8, String, u32)]) -> String {
    rtpmap
        .iter()
        .find(|m| m.0 == pt)
        .map(|m| m.1.clone())
        .or_else(|| sipmsg::static_codec(pt).map(str::to_string))
        .unwrap_or_else(|| format!("PT{pt}"))
}

fn dtmf_char(code: u8) -> char {
    match code {
        0..=9 => (b'0' + code) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + code - 12) as char,
        _ => '!',
    }
}

fn apply(f: &mut Facts, m: &SipMessage, ts: i64) {
    f.first_ns = if f.first_ns == 0 {
        ts
    } else {
        f.first_ns.min(ts)
    };
    f.last_ns = f.last_ns.max(ts);
    for t in [&m.from_tag, &m.to_tag] {
        if !t.is_empty() && !f.tags.contains(t) && f.tags.len() < TO_TAGS_MAX {
            f.tags.push(t.clone());
        }
    }
    let min = |o: Option<i64>| Some(o.map_or(ts, |v| v.min(ts)));
    let cm = m.cseq_method.to_ascii_uppercase();
    match (m.method(), m.status()) {
        (Some("INVITE"), _) => {
            if m.to_tag.is_empty() {
                f.invite_seen = true;
                f.start_ns = min(f.start_ns);
                f.max_invite_cseq = f.max_invite_cseq.max(m.cseq_num);
                if f.from_tag.is_empty() {
                    f.from_tag = m.from_tag.clone();
                }
            } else {
                f.reinvites += 1;
            }
        }
        (Some("CANCEL"), _) => f.cancel_ns = min(f.cancel_ns),
        (Some("BYE"), _) => f.bye_ns = min(f.bye_ns),
        (_, Some(code)) if cm == "INVITE" => {
            if (101..300).contains(&code)
                && !m.to_tag.is_empty()
                && !f.to_tags.contains(&m.to_tag)
                && f.to_tags.len() < TO_TAGS_MAX
            {
                f.to_tags.push(m.to_tag.clone());
            }
            if (200..300).contains(&code) {
                f.answer_ns = min(f.answer_ns);
            } else if code >= 300 {
                let newer = match f.final_resp {
                    None => true,
                    Some((c, _, t)) => m.cseq_num > c || (m.cseq_num == c && ts < t),
                };
                if newer {
                    f.final_resp = Some((m.cseq_num, code, ts));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(msgs: &[(&str, u32, &str, i64)]) -> Facts {
        let mut f = Facts::default();
        for (start, cseq, to_tag, ts) in msgs {
            let method = start.parse::<u16>().is_err();
            let text = format!(
                "{} SIP/2.0\r\nCall-ID: x\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>{}\r\nCSeq: {cseq} {}\r\n\r\n",
                if method { format!("{start} sip:b@h") } else { format!("SIP/2.0 {start} X").replacen(" SIP/2.0", "", 0) },
                if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") },
                if method && *start != "INVITE" { *start } else { "INVITE" }
            );
            let text = if method {
                text
            } else {
                text.replacen(" SIP/2.0\r\n", "\r\n", 1)
            };
            let m = sipmsg::parse(text.as_bytes()).unwrap();
            apply(&mut f, &m, *ts);
        }
        f
    }

    #[test]
    fn states_from_facts() {
        let f = facts(&[
            ("INVITE", 1, "", 1),
            ("407", 1, "x", 2),
            ("INVITE", 2, "", 3),
            ("180", 2, "b", 4),
            ("200", 2, "b", 5),
        ]);
        assert_eq!(derive_state(&f, 10, 100).0, "answered");
        let f = facts(&[("INVITE", 1, "", 1), ("407", 1, "x", 2)]);
        assert_eq!(derive_state(&f, 10, 100).0, "rejected");
        let f = facts(&[("INVITE", 1, "", 1), ("486", 1, "x", 2)]);
        assert_eq!(derive_state(&f, 10, 100).0, "busy");
        let f = facts(&[
            ("INVITE", 1, "", 1),
            ("CANCEL", 1, "", 2),
            ("487", 1, "x", 3),
        ]);
        assert_eq!(derive_state(&f, 10, 100).0, "cancelled");
        let f = facts(&[("INVITE", 1, "", 1)]);
        assert_eq!(derive_state(&f, 10, 100).0, "in_progress");
        assert_eq!(derive_state(&f, 1000, 100).0, "timed_out");
        let f = facts(&[("INVITE", 1, "", 1), ("503", 1, "x", 2)]);
        assert_eq!(derive_state(&f, 10, 100).0, "failed");
        // Order does not matter: the 200 before the INVITE gives the same facts.
        let a = facts(&[("200", 1, "b", 5), ("INVITE", 1, "", 1), ("180", 1, "c", 3)]);
        assert_eq!(derive_state(&a, 10, 100).0, "answered");
        assert_eq!(a.answer_ns, Some(5));
        assert_eq!(a.start_ns, Some(1));
        assert_eq!(a.to_tags.len(), 2);
    }
}
