//! Feeding the engine: segment stores (what `xdprec index` reads) and pcap files (tests,
//! tools). A pcap file is consumed like one sealed segment: one transaction, its path as the
//! segment path, the frame number as the record offset. IP fragments are not reassembled on
//! this path (the capture engine does that for stores).

use crate::engine::{FrameIn, Hint, Indexer};
use crate::error::{IndexError, Result};
use crate::frame::Link;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::path::Path;

/// Indexes a pcap or pcapng file as recorder `recorder`. Returns the frames read.
/// A file already consumed is skipped (returns 0).
pub fn index_pcap(ix: &mut Indexer, path: &Path, recorder: &str) -> Result<u64> {
    let bad = |msg: String| IndexError::Segment {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("read: {e}")))?;
    let key = path.to_string_lossy().to_string();
    let rec = ix.recorder(recorder, &key)?;
    if let Some((_, true)) = ix.progress(&key)? {
        return Ok(0);
    }
    let mut ctx = ix.begin(rec, &key, &key)?;
    let mut n = 0u64;
    let mut feed = |ix: &mut Indexer, link: Option<Link>, ts_ns: i64, data: &[u8]| -> Result<()> {
        n += 1;
        if let Some(link) = link {
            let f = FrameIn {
                ts_ns,
                offset: n - 1,
                stream_id: -1,
                hint: Hint::Unknown,
                link,
                data,
            };
            ix.push(&mut ctx, &f)?;
        }
        Ok(())
    };
    let r = (|| -> Result<()> {
        if bytes.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            let mut rd = PcapNgReader::new(&bytes[..]).map_err(|e| bad(format!("pcapng: {e}")))?;
            while let Some(b) = rd.next_block() {
                let Ok(b) = b else { break }; // a torn tail ends the file
                let (ts, iface, data) = match b {
                    Block::EnhancedPacket(p) => (p.timestamp, p.interface_id, p.data.into_owned()),
                    Block::SimplePacket(p) => (std::time::Duration::ZERO, 0, p.data.into_owned()),
                    _ => continue,
                };
                let link = rd
                    .interfaces()
                    .get(iface as usize)
                    .and_then(|i| Link::from_linktype(u32::from(i.linktype)));
                feed(ix, link, ts.as_nanos() as i64, &data)?;
            }
        } else {
            let mut rd = PcapReader::new(&bytes[..]).map_err(|e| bad(format!("pcap: {e}")))?;
            let link = Link::from_linktype(u32::from(rd.header().datalink));
            while let Some(p) = rd.next_packet() {
                let Ok(p) = p else { break };
                feed(ix, link, p.timestamp.as_nanos() as i64, &p.data)?;
            }
        }
        Ok(())
    })();
    match r {
        Ok(()) => {
            ix.commit(&ctx, n, n, true)?;
            ix.consolidate()?;
            Ok(n)
        }
        Err(e) => {
            let _ = ix.rollback();
            Err(e)
        }
    }
}

/// What one pass over a store did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Segments read in this pass (fully or the new part of an open one).
    pub segments: u64,
    pub records: u64,
    /// Segments that could not be opened (counted; retried on the next pass).
    pub unreadable: u64,
}

/// The identity of a segment across its renames (open → sealed → compressed).
pub fn segment_key(info: &xdprec_segment::SegmentInfo) -> String {
    format!(
        "{}/{}/{}/{}",
        info.recorder, info.iface, info.queue, info.seq
    )
}

fn hint_of(class: xdprec_segment::Class) -> Hint {
    use xdprec_segment::Class;
    match class {
        Class::Sip => Hint::Sip,
        Class::Rtp => Hint::Rtp,
        Class::Rtcp => Hint::Rtcp,
        _ => Hint::Unknown,
    }
}

/// One pass over a store: every sealed segment not yet consumed, and with `follow` also the new
/// records of segments still being written. Each segment's work is one transaction together
/// with its progress mark, so a killed pass is redone exactly from the last commit.
pub fn index_store(ix: &mut Indexer, store: &Path, follow: bool) -> Result<PassStats> {
    let st = index_store_until(ix, store, follow, u64::MAX).map(|(s, _)| s)?;
    if st.segments > 0 {
        ix.consolidate()?;
    }
    Ok(st)
}

/// Like [`index_store`], but stops in the middle of a segment after `records_budget` records,
/// abandoning its transaction as a killed process would (crash tests). Returns true when
/// the pass finished within the budget.
pub fn index_store_until(
    ix: &mut Indexer,
    store: &Path,
    follow: bool,
    records_budget: u64,
) -> Result<(PassStats, bool)> {
    let mut budget = records_budget;
    let store_err = |msg: String| IndexError::Store {
        path: store.to_path_buf(),
        msg,
    };
    let segs = xdprec_segment::list_segments(store).map_err(|e| store_err(e.to_string()))?;
    let store_name = store.to_string_lossy().to_string();
    let mut stats = PassStats::default();
    for info in segs {
        let key = segment_key(&info);
        let prog = ix.progress(&key)?;
        if prog.is_some_and(|p| p.1) || (!info.sealed && !follow) {
            continue;
        }
        let reader = match xdprec_segment::SegmentReader::open(&info.path) {
            Ok(r) => r,
            Err(_) => {
                // Renamed while sealing, or damaged: the next pass sees its new name.
                stats.unreadable += 1;
                continue;
            }
        };
        let sealed = reader.header().sealed;
        let start = prog.map_or(0, |p| p.0);
        let end = reader.records_end();
        if !sealed && end <= start {
            continue;
        }
        let rec = ix.recorder(&info.recorder, &store_name)?;
        let mut ctx = ix.begin(rec, &key, &info.path.to_string_lossy())?;
        let mut n = 0u64;
        let r = (|| -> Result<()> {
            for r in reader.records().filter(|r| r.offset >= start) {
                if budget == 0 {
                    return Err(IndexError::Store {
                        path: store.to_path_buf(),
                        msg: "budget".into(),
                    });
                }
                budget -= 1;
                n += 1;
                let reassembled = r.flags & xdprec_segment::RECORD_FLAG_REASSEMBLED != 0;
                if r.class == xdprec_segment::Class::Frag && !reassembled {
                    // Raw fragments: their reassembled copy is its own record.
                    continue;
                }
                let f = FrameIn {
                    ts_ns: r.ts_ns as i64,
                    offset: r.offset,
                    stream_id: r.stream_id as i64,
                    hint: if reassembled {
                        Hint::Unknown
                    } else {
                        hint_of(r.class)
                    },
                    link: Link::Ethernet,
                    data: r.frame,
                };
                ix.push(&mut ctx, &f)?;
            }
            Ok(())
        })();
        match r {
            // The `.open` file was recycled while being read (sealed by copy): what was read
            // may be a later segment's. The next pass reads the sealed file from `start`.
            Ok(()) if !reader.is_current() => {
                ix.rollback()?;
                stats.unreadable += 1;
                continue;
            }
            Ok(()) => ix.commit(&ctx, end, n, sealed)?,
            Err(_) if budget == 0 => {
                let _ = ix.rollback();
                return Ok((stats, false));
            }
            Err(e) => {
                let _ = ix.rollback();
                return Err(e);
            }
        }
        stats.segments += 1;
        stats.records += n;
    }
    Ok((stats, true))
}
