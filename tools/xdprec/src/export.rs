//! `xdprec export`: a call back as a file (contract):
//!
//! ```text
//! xdprec export --store DIR [--store DIR ...] --call-id ID (--pcap OUT | --wav OUT) [--merge]
//! xdprec export --store DIR [--since T] [--until T] --all --pcap OUT
//! ```
//!
//! The index (`DIR/index.sqlite` of the first store, or `--db`) names every record of the call
//! (its SIP messages by segment + offset, its RTP/RTCP streams by segment + stream id), so a
//! call export reads only those records. Several recorders' copies of a call (2N, failover):
//! without `--merge` the primary copy is written (plus the other parts of a failover call);
//! with `--merge` every copy is merged packet by packet and the report says how many packets
//! came from each recorder. Output paths come only from the command line.

use anyhow::{bail, Context};
use rusqlite::params;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xdprec_export::pcap::{collect, export_range, write_pcap, Frame, FrameRef};
use xdprec_export::wav::{decode_channel, write_wav, RtpPacket};

#[derive(clap::Args)]
pub struct Args {
    /// Store directory (repeatable: 2N and failover copies live in several stores).
    #[arg(long = "store", required = true)]
    stores: Vec<PathBuf>,
    /// The index database (default: index.sqlite in the first store).
    #[arg(long)]
    db: Option<PathBuf>,
    /// The call to export.
    #[arg(long = "call-id", conflicts_with = "all")]
    call_id: Option<String>,
    /// Every recorded frame (optionally within --since/--until) instead of one call.
    #[arg(long)]
    all: bool,
    /// Start of the time range (RFC 3339 or Unix seconds), with --all.
    #[arg(long, requires = "all")]
    since: Option<String>,
    /// End of the time range (RFC 3339 or Unix seconds), with --all.
    #[arg(long, requires = "all")]
    until: Option<String>,
    /// Write a pcap (nanosecond timestamps, Ethernet).
    #[arg(long, conflicts_with = "wav")]
    pcap: Option<PathBuf>,
    /// Write a WAV: G.711 decoded, one channel per direction.
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Merge every recorder's copy of the call packet by packet (2N).
    #[arg(long)]
    merge: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.pcap.is_none() && args.wav.is_none() {
        bail!("give --pcap OUT or --wav OUT");
    }
    if args.all {
        let Some(out) = &args.pcap else {
            bail!("--all writes a pcap: give --pcap OUT")
        };
        let since = parse_time_arg(args.since.as_deref(), "--since")?;
        let until = parse_time_arg(args.until.as_deref(), "--until")?;
        let report = export_range(&args.stores, since, until, out, |n| {
            eprint!("\rexported {n} frames");
        })?;
        eprintln!(
            "\rexported {} frames ({} bytes) from {} segments to {}",
            report.frames,
            report.bytes,
            report.segments,
            out.display()
        );
        return Ok(());
    }
    let Some(call_id) = &args.call_id else {
        bail!("give --call-id ID, or --all")
    };
    let db = match &args.db {
        Some(p) => p.clone(),
        None => args.stores[0].join("index.sqlite"),
    };
    if !db.is_file() {
        bail!(
            "no index at {}: run `xdprec index --store DIR` first",
            db.display()
        );
    }
    let copies = call_copies(&db, call_id, &args.stores)?;
    if copies.is_empty() {
        bail!("no call with Call-ID {call_id:?} in {}", db.display());
    }
    let chosen: Vec<&Copy> = if args.merge {
        copies.iter().collect()
    } else {
        // The primary copy and the parts that are not a 2N duplicate of it: the fragments of
        // a failed-over call (their union in time order is the call), and copies kept apart.
        copies.iter().filter(|c| c.role != "secondary").collect()
    };
    let mut frames: Vec<Frame> = Vec::new();
    for c in &chosen {
        frames.extend(collect(&c.refs).with_context(|| format!("recorder {}", c.recorder))?);
    }
    let (frames, report) = xdprec_export::merge::merge(frames);
    if chosen.len() > 1 || args.merge {
        let parts: Vec<String> = report
            .kept_by_recorder
            .iter()
            .map(|(r, n)| format!("{n} from {r}"))
            .collect();
        let what = if args.merge {
            "merged"
        } else {
            "assembled (failover)"
        };
        eprintln!(
            "{what} {} copies: {} ({} duplicates dropped)",
            chosen.len(),
            parts.join(", "),
            report.duplicates
        );
    }
    if let Some(out) = &args.pcap {
        write_pcap(out, &frames)?;
        eprintln!(
            "wrote {} frames of call {call_id:?} to {}",
            frames.len(),
            out.display()
        );
    }
    if let Some(out) = &args.wav {
        write_call_wav(out, &frames)?;
    }
    Ok(())
}

fn parse_time_arg(s: Option<&str>, flag: &str) -> anyhow::Result<Option<u64>> {
    match s {
        None => Ok(None),
        Some(s) => match xdprec_index::timefmt::parse_time(s) {
            Some(ns) if ns >= 0 => Ok(Some(ns as u64)),
            _ => bail!("{flag} {s:?}: expected RFC 3339 (2024-01-02T03:04:05Z) or Unix seconds"),
        },
    }
}

/// One recorder's copy of the call.
struct Copy {
    recorder: String,
    role: String,
    refs: Vec<FrameRef>,
}

/// Every copy of the call in the index, with the records it names resolved to segment files
/// of the given stores (the index keys segments by recorder/interface/queue/sequence, which
/// survive the renames from open to sealed to compressed).
fn call_copies(db: &Path, call_id: &str, stores: &[PathBuf]) -> anyhow::Result<Vec<Copy>> {
    // The index names segment files; a file it named may have been renamed since (sealed,
    // compressed), so names are matched by their identity: recorder + interface + queue +
    // sequence, the part of the file name that no rename changes.
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for store in stores {
        for info in xdprec_segment::list_segments(store)
            .with_context(|| format!("store {}", store.display()))?
        {
            if let Some(id) = segment_identity(&info.path) {
                files.insert(id, info.path.clone());
            }
        }
    }
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("open index {}", db.display()))?;
    let resolve = |key: &str| -> anyhow::Result<PathBuf> {
        segment_identity(Path::new(key)).and_then(|id| files.get(&id).cloned()).with_context(|| {
            format!("segment {key} named by the index is not in the given stores (pass every --store the call was recorded in)")
        })
    };
    let mut calls = conn.prepare(
        "SELECT c.id, r.name, c.role FROM calls c JOIN recorders r ON r.id = c.recorder
         WHERE c.call_id = ?1 ORDER BY c.role, c.start_ns, c.id",
    )?;
    let rows: Vec<(i64, String, String)> = calls
        .query_map(params![call_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (id, recorder, role) in rows {
        let mut refs = Vec::new();
        let mut sip = conn.prepare(
            "SELECT s.path, m.record_offset FROM sip_messages m JOIN segments s ON s.id = m.segment
             WHERE m.call = ?1",
        )?;
        for row in sip.query_map(params![id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (key, offset) = row?;
            refs.push(FrameRef::Record {
                segment: resolve(&key)?,
                offset: offset as u64,
            });
        }
        let mut parts = conn.prepare(
            "SELECT s.path, p.stream_id FROM stream_parts p JOIN streams st ON st.id = p.stream
             JOIN segments s ON s.id = p.segment WHERE st.call = ?1 AND p.stream_id > 0",
        )?;
        for row in parts.query_map(params![id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (key, stream_id) = row?;
            refs.push(FrameRef::Stream {
                segment: resolve(&key)?,
                stream_id: stream_id as u32,
            });
        }
        out.push(Copy {
            recorder,
            role,
            refs,
        });
    }
    Ok(out)
}

/// `R+I+qQ+SEQ` of a segment file name (see the store layout in xdprec_segment::format).
fn segment_identity(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name.splitn(5, '+');
    let (r, i, q, seq) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let seq = seq.split('.').next()?;
    Some(format!("{r}+{i}+{q}+{seq}"))
}

/// WAV of a call: one channel per RTP direction (the two largest streams by packets),
/// G.711 only.
fn write_call_wav(out: &Path, frames: &[Frame]) -> anyhow::Result<()> {
    let mut classifier = xdprec_classify::Classifier::new(xdprec_classify::ProbeConfig::default());
    // Direction = (src, dst, ssrc).
    type Dir = (std::net::IpAddr, u16, std::net::IpAddr, u16, u32);
    let mut dirs: BTreeMap<Dir, Vec<RtpPacket<'_>>> = BTreeMap::new();
    for f in frames {
        let c = classifier.classify(&f.data);
        if c.class != xdprec_classify::Class::Rtp {
            continue;
        }
        let (Some(t), Some(payload)) = (c.tuple, f.data.get(c.payload.clone())) else {
            continue;
        };
        let Some(h) = xdprec_classify::rtp_header(payload) else {
            continue;
        };
        let body = rtp_payload(payload).unwrap_or(&[]);
        dirs.entry((t.src, t.src_port, t.dst, t.dst_port, h.ssrc))
            .or_default()
            .push(RtpPacket {
                arrival_ns: f.ts_ns,
                seq: h.seq,
                timestamp: h.timestamp,
                payload_type: h.payload_type,
                payload: body,
            });
    }
    if dirs.is_empty() {
        bail!("the call has no RTP to decode; export it with --pcap");
    }
    let mut streams: Vec<_> = dirs.into_iter().collect();
    streams.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
    streams.truncate(2);
    let start = streams
        .iter()
        .filter_map(|(_, p)| p.first().map(|x| x.arrival_ns))
        .min()
        .unwrap_or(0);
    // Four hours of audio at most per channel (a bound on memory: 2 x 230 MB).
    const SAMPLES_MAX: usize = 8000 * 3600 * 4;
    let mut channels = Vec::new();
    for (dir, pkts) in &streams {
        let (pcm, rep) = decode_channel(pkts, start, SAMPLES_MAX).with_context(|| {
            format!(
                "stream {}:{} -> {}:{} ssrc {:#x}",
                dir.0, dir.1, dir.2, dir.3, dir.4
            )
        })?;
        eprintln!(
            "channel {}: {}:{} -> {}:{} ssrc {:#010x}: {} packets decoded, {} not G.711 (silence), {} beyond the length limit",
            channels.len() + 1, dir.0, dir.1, dir.2, dir.3, dir.4,
            rep.decoded_packets, rep.skipped_packets, rep.cut_packets
        );
        channels.push(pcm);
    }
    xdprec_export::write_atomically(out, |w| write_wav(w, &channels))?;
    eprintln!(
        "wrote {} ({} channels, 8 kHz, 16-bit)",
        out.display(),
        channels.len()
    );
    Ok(())
}

/// The payload of an RTP packet after header, CSRCs, extension and padding.
fn rtp_payload(p: &[u8]) -> Option<&[u8]> {
    let first = *p.first()?;
    let cc = usize::from(first & 0x0f);
    let mut off = 12 + 4 * cc;
    if first & 0x10 != 0 {
        let ext = p.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = p.len();
    if first & 0x20 != 0 {
        end = end.checked_sub(usize::from(*p.last()?))?;
    }
    p.get(off..end)
}
