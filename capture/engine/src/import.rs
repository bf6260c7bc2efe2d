//! Offline import: a pcap/pcapng file through the same pipeline as live capture.
//!
//! Frames of every link type xdprec-pcapio reads are turned into Ethernet frames (a copy for
//! Ethernet; the IP packet behind a synthetic Ethernet header otherwise), classified by the
//! same rules as the probe, and only SIP/RTP/RTCP/FRAG are stored, with their capture
//! timestamps. Frames that carry no IP are counted as `class_other`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use xdprec_classify::{Classifier, ProbeConfig};
use xdprec_pcapio::{to_ethernet, LinkType, PcapReader};

use crate::config::ReasmLimits;
use crate::dedup::DedupTable;
use crate::pipeline::{Pipeline, ProbeClassifier, RecordSink};
use crate::stats::{Counters, Field};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Pcap(#[from] xdprec_pcapio::PcapError),
    #[error("sealing the store after importing {path}: {message}")]
    Seal { path: PathBuf, message: String },
}

/// What an import did.
#[derive(Clone, Debug)]
pub struct ImportSummary {
    pub counters: Counters,
    /// Frames whose link type or content carried no IP.
    pub not_ip: u64,
}

impl ImportSummary {
    pub fn get(&self, f: Field) -> u64 {
        self.counters.get(f)
    }

    /// A one-line human summary.
    pub fn line(&self) -> String {
        let g = |f| self.counters.get(f);
        format!(
            "{} frames: sip {} rtp {} rtcp {} frag {} other {} (not IP {}); written {} \
             (reassembled datagrams {}), duplicates dropped {}, disk full {}, write errors {}",
            g(Field::RxPackets),
            g(Field::ClassSip),
            g(Field::ClassRtp),
            g(Field::ClassRtcp),
            g(Field::ClassFrag),
            g(Field::ClassOther),
            self.not_ip,
            g(Field::Written),
            g(Field::Reassembled),
            g(Field::DupDropped),
            g(Field::DiskFull),
            g(Field::WriteErrors),
        )
    }
}

/// Imports `path` into `sink` without deduplication. Returns the summary and the sink
/// (sealed).
pub fn import_pcap<S: RecordSink>(
    path: &Path,
    sink: S,
    probe: ProbeConfig,
    limits: ReasmLimits,
) -> Result<(ImportSummary, S), ImportError> {
    import_pcap_dedup(path, sink, probe, limits, None)
}

/// [`import_pcap`], dropping copies of a packet within the window of `dedup` (by pcap time;
/// counted `dup_dropped`).
pub fn import_pcap_dedup<S: RecordSink>(
    path: &Path,
    sink: S,
    probe: ProbeConfig,
    limits: ReasmLimits,
    dedup: Option<Arc<DedupTable>>,
) -> Result<(ImportSummary, S), ImportError> {
    let mut reader = PcapReader::open(path)?;
    let classifier = ProbeClassifier::new(Classifier::new(probe));
    let mut pipe =
        Pipeline::new(classifier, sink, limits, path.display().to_string()).with_dedup(dedup);
    let mut eth = Vec::with_capacity(64 * 1024);
    let mut not_ip = 0u64;
    let mut last_ts = 0u64;
    while let Some(p) = reader.next_packet() {
        let p = p?;
        last_ts = p.ts_ns;
        if p.link == LinkType::Ethernet {
            pipe.process(p.data, p.wire_len, p.ts_ns, p.ts_ns);
        } else if to_ethernet(p.link, p.data, &mut eth) {
            // The wire length grows by what the synthetic header adds.
            let wire = (i64::from(p.wire_len) + eth.len() as i64 - p.data.len() as i64)
                .clamp(0, i64::from(u32::MAX)) as u32;
            pipe.process(&eth, wire, p.ts_ns, p.ts_ns);
        } else {
            not_ip += 1;
            pipe.count_other(p.wire_len);
        }
        pipe.housekeeping(p.ts_ns, p.ts_ns);
    }
    let _ = last_ts;
    let sealed = pipe.finish();
    let (counters, sink) = pipe.into_parts();
    if let Err(message) = sealed {
        return Err(ImportError::Seal {
            path: path.to_path_buf(),
            message,
        });
    }
    Ok((ImportSummary { counters, not_ip }, sink))
}
