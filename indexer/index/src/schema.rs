//! The call index: SQLite (WAL mode), one file per index (by default `DIR/index.sqlite` of the
//! first store given to `xdprec index`; `--db PATH` overrides).
//!
//! Times are nanoseconds since the Unix epoch (UTC) as INTEGER; addresses are text `ip:port`
//! (`[ip]:port` for IPv6). Every row that describes captured traffic points at the segment
//! records that hold it, so export never scans.
//!
//! | table | one row per | key columns |
//! |---|---|---|
//! | `recorders` | recorder (capture point) in a store | `name`, `store` (directory; the same name in two stores is two recorders), `now_ns` (latest record time seen: timeouts are measured against it, never the wall clock) |
//! | `segments` | segment file consumed | `key` (recorder/iface/queue/seq: survives the rename at sealing and compression), `path` (latest file name), `offset_reached` (byte offset of the next unread record), `done` (sealed and fully consumed) |
//! | `calls` | INVITE dialog set (Call-ID, per recorder; forks and auth retries stay in one call) | `call_id`, `from_uri`/`to_uri`, `from_user`/`to_user`, `state`, `final_code`, `start_ns`, `answer_ns`, `end_ns`, `last_ns`, `sip_messages`, `has_invite` (0: a part that saw no initial INVITE, e.g. recorded after a failover), `role` (`primary`/`secondary`/`fragment`, see `dedup`), `primary_id` (the primary copy of a secondary, the head of a fragment), `dup_flags` (why copies were kept apart: `ambiguous: ...`), `failover` (JSON on the head of a failed-over call: `recorders` in time order, `gap_ns`, `gap_ms`, `missing_rtp`, `streams` [{`src`,`dst`,`ssrc`,`from`,`to`,`last_seq`,`next_seq`,`missing`,`gap_ns`}]), `facts` (JSON: everything the state is derived from, incl. every dialog tag seen) |
//! | `sip_messages` | distinct SIP message (retransmissions counted in `retransmissions`) | `call` → calls, `segment` → segments, `record_offset`, `ts_ns`, `src`, `dst`, `transport`, `method`/`status`, `cseq`, `dedup_key` |
//! | `call_endpoints` | SDP media address announced in a call | `addr`, `port`, `rtcp_port`, `sig_addr` (address the SDP's SIP message came from, for NAT), `ts_ns` |
//! | `streams` | RTP (or RTCP) stream: recorder + src + dst + SSRC | counters, `jitter_ms`, `payload_types`, `codec`, `dtmf`, `mos`, `call` (NULL: orphan; after a failover, the call's row on this stream's recorder), `how` (sdp, sdp-reverse, nat-port, nat-timing, failover), `tracker` (JSON state, incl. first/highest sequence number and their RTP timestamps) |
//! | `stream_parts` | piece of a stream inside one segment | `stream`, `segment`, `stream_id` (the segment's stream table id; -1 when unknown), `first_offset`, `packets` |
//! | `call_streams` | view: calls × streams | |
//! | `counters` | named counter (garbage, evictions, ...) | `name`, `value` |
//! | `tcp_state` | recorder | SIP-over-TCP reassembly state (JSON), committed with the segment progress |
//!
//! Several recorders in one index: a call is the `calls` rows of one Call-ID that
//! `dedup::consolidate` ties together: one `primary`, its 2N copies (`secondary`, same
//! `primary_id`) or its failover parts (`fragment`, same `primary_id`); which recorder holds
//! which part is `calls.recorder` of each row and `streams.recorder` of each stream.
//!
//! Version 2 (from 1): `calls.failover`, indexes `streams_ssrc` and `endpoints_any`
//! ([`migrate`] adds them to an older index).
//!
//! Consumption is transactional: all rows derived from one segment (or from the part of a
//! growing segment read in one pass) are committed in the transaction that advances
//! `segments.offset_reached`, so a killed indexer resumes exactly where its last commit ended.

/// Schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS recorders(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, store TEXT NOT NULL, now_ns INTEGER NOT NULL DEFAULT 0,
  UNIQUE(name, store));
CREATE TABLE IF NOT EXISTS segments(
  id INTEGER PRIMARY KEY, recorder INTEGER NOT NULL REFERENCES recorders(id), key TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
  offset_reached INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS calls(
  id INTEGER PRIMARY KEY, recorder INTEGER NOT NULL REFERENCES recorders(id), call_id TEXT NOT NULL,
  from_uri TEXT, to_uri TEXT, from_user TEXT, to_user TEXT, state TEXT NOT NULL, final_code INTEGER,
  start_ns INTEGER, answer_ns INTEGER, end_ns INTEGER, last_ns INTEGER, has_invite INTEGER NOT NULL DEFAULT 0,
  sip_messages INTEGER NOT NULL DEFAULT 0, role TEXT NOT NULL DEFAULT 'primary', primary_id INTEGER,
  dup_flags TEXT, facts TEXT NOT NULL, failover TEXT, UNIQUE(recorder, call_id));
CREATE INDEX IF NOT EXISTS calls_start ON calls(start_ns);
CREATE INDEX IF NOT EXISTS calls_primary ON calls(primary_id);
CREATE INDEX IF NOT EXISTS calls_callid ON calls(call_id);
CREATE INDEX IF NOT EXISTS calls_answer ON calls(recorder, answer_ns);
CREATE INDEX IF NOT EXISTS calls_state ON calls(recorder, state, last_ns);
CREATE TABLE IF NOT EXISTS sip_messages(
  id INTEGER PRIMARY KEY, call INTEGER NOT NULL REFERENCES calls(id), segment INTEGER NOT NULL REFERENCES segments(id),
  record_offset INTEGER NOT NULL, ts_ns INTEGER NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL, transport TEXT NOT NULL,
  method TEXT, status INTEGER, cseq INTEGER, cseq_method TEXT, dedup_key TEXT NOT NULL,
  retransmissions INTEGER NOT NULL DEFAULT 0, UNIQUE(call, dedup_key));
CREATE TABLE IF NOT EXISTS call_endpoints(
  call INTEGER NOT NULL REFERENCES calls(id), recorder INTEGER NOT NULL, addr TEXT NOT NULL, port INTEGER NOT NULL,
  rtcp_port INTEGER NOT NULL, sig_addr TEXT, media TEXT, rtpmap TEXT, ts_ns INTEGER NOT NULL,
  PRIMARY KEY(call, addr, port));
CREATE INDEX IF NOT EXISTS endpoints_addr ON call_endpoints(recorder, addr, port);
CREATE INDEX IF NOT EXISTS endpoints_rtcp ON call_endpoints(recorder, addr, rtcp_port);
CREATE INDEX IF NOT EXISTS endpoints_port ON call_endpoints(recorder, port);
CREATE INDEX IF NOT EXISTS endpoints_any ON call_endpoints(addr, port);
CREATE TABLE IF NOT EXISTS streams(
  id INTEGER PRIMARY KEY, recorder INTEGER NOT NULL REFERENCES recorders(id), kind TEXT NOT NULL,
  src TEXT NOT NULL, dst TEXT NOT NULL, ssrc INTEGER NOT NULL, call INTEGER REFERENCES calls(id), how TEXT,
  first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, packets INTEGER NOT NULL, bytes INTEGER NOT NULL,
  lost INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0, out_of_order INTEGER NOT NULL DEFAULT 0,
  jitter_ms REAL, max_jitter_ms REAL, payload_type INTEGER, payload_types TEXT, codec TEXT, dtmf TEXT, mos REAL,
  tracker TEXT, UNIQUE(recorder, kind, src, dst, ssrc));
CREATE INDEX IF NOT EXISTS streams_call ON streams(call);
CREATE INDEX IF NOT EXISTS streams_orphan ON streams(recorder, call, dst);
CREATE INDEX IF NOT EXISTS streams_ssrc ON streams(ssrc);
CREATE TABLE IF NOT EXISTS stream_parts(
  stream INTEGER NOT NULL REFERENCES streams(id), segment INTEGER NOT NULL REFERENCES segments(id),
  stream_id INTEGER NOT NULL, first_offset INTEGER NOT NULL, packets INTEGER NOT NULL,
  PRIMARY KEY(stream, segment, stream_id));
CREATE VIEW IF NOT EXISTS call_streams AS SELECT call, id AS stream, how FROM streams WHERE call IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tcp_state(recorder INTEGER PRIMARY KEY, state TEXT NOT NULL);
"#;

/// Brings an index made by an older version up to [`SCHEMA_VERSION`] (columns that
/// `CREATE TABLE IF NOT EXISTS` cannot add). Version 2 added `calls.failover`.
pub fn migrate(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has_failover: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('calls') WHERE name='failover'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_failover {
        conn.execute_batch("ALTER TABLE calls ADD COLUMN failover TEXT")?;
    }
    Ok(())
}
