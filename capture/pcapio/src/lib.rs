//! pcap and pcapng reading (every link type a SIP/RTP capture uses) and pcap writing.
//!
//! Hand-written rather than built on `pcap-file` 2: that crate ignores pcapng's `if_tsresol`
//! (it takes every Enhanced Packet Block timestamp as nanoseconds), allocates whatever length a
//! record header claims, and has panicked on fuzzed input. Both formats are small:
//!
//! **pcap** (libpcap): a 24-byte file header `magic u32, version_major u16, version_minor u16,
//! thiszone i32, sigfigs u32, snaplen u32, linktype u32`, then records `ts_sec u32,
//! ts_frac u32, incl_len u32, orig_len u32, data[incl_len]`. The magic gives the byte order
//! (`a1b2c3d4` read as written: the file's order is the writer's) and the timestamp unit
//! (`a1b2c3d4` microseconds, `a1b23c4d` nanoseconds).
//!
//! **pcapng**: a sequence of blocks `type u32, total_len u32, body, total_len u32`, in the byte
//! order given by the Section Header Block (type `0a0d0d0a`, byte-order magic `1a2b3c4d`).
//! Each Interface Description Block (type 1: `linktype u16, reserved u16, snaplen u32,
//! options`) declares an interface of the section, with its own link type and timestamp unit
//! (option 9 `if_tsresol`: `10^-n` s, or `2^-n` s when the high bit is set; default 10^-6) and
//! offset (option 14 `if_tsoffset`, seconds). Packets come in Enhanced Packet Blocks (type 6:
//! `interface_id u32, ts_high u32, ts_low u32, caplen u32, origlen u32, data`), Simple Packet
//! Blocks (type 3: `origlen u32, data`, interface 0, no timestamp) or the obsolete Packet Block
//! (type 2: `interface_id u16, drops u16, ts_high, ts_low, caplen, origlen, data`). Other
//! blocks are skipped without reading them into memory.
//!
//! **Microsoft Network Monitor 2.x** (`.cap`, magic "GMBU", one public corpus file): see
//! [`netmon`].
//!
//! Limits: a packet record longer than [`RECORD_BYTES_MAX`] is refused with an error that names
//! the file and the record number (a garbage or corrupt file claims absurd lengths); other
//! pcapng blocks that must be read (section and interface headers) are limited to
//! [`HEADER_BLOCK_BYTES_MAX`], skipped blocks to [`SKIPPED_BLOCK_BYTES_MAX`]. The reader holds
//! one reusable buffer; reading allocates only when a record is longer than any before.
#![deny(unsafe_code)]

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The longest packet record accepted (captured bytes).
pub const RECORD_BYTES_MAX: usize = 256 * 1024;
/// The longest pcapng section header or interface description block accepted.
pub const HEADER_BLOCK_BYTES_MAX: usize = 64 * 1024;
/// The longest pcapng block of another type (skipped unread) accepted.
pub const SKIPPED_BLOCK_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Interfaces per pcapng section.
pub const INTERFACES_MAX: usize = 1024;

/// Link type of a capture (`LINKTYPE_*` / `DLT_*` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// 1
    Ethernet,
    /// 113: Linux cooked capture v1 (16-byte header, protocol at offset 14).
    LinuxSll,
    /// 276: Linux cooked capture v2 (20-byte header, protocol at offset 0).
    LinuxSll2,
    /// 101 (`LINKTYPE_RAW`), also `DLT_RAW` 12 and 14 as some platforms wrote it.
    Raw,
    /// 228
    Ipv4,
    /// 229
    Ipv6,
    /// 0: BSD loopback, 4-byte address family in the writer's byte order.
    Null,
    /// 108: OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
    Unknown(u32),
}

impl LinkType {
    pub fn from_dlt(dlt: u32) -> Self {
        match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            x => LinkType::Unknown(x),
        }
    }

    /// The `LINKTYPE_*` number (Raw as 101).
    pub fn dlt(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Null => 0,
            LinkType::Loop => 108,
            LinkType::Unknown(x) => x,
        }
    }
}

/// One captured packet, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Nanoseconds since the Unix epoch (saturating).
    pub ts_ns: u64,
    /// Length on the wire (may exceed `data.len()` when the capture had a snap length).
    pub wire_len: u32,
    pub link: LinkType,
    pub data: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("cannot open capture {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read capture {path} (record {record}): {source}")]
    Read {
        path: PathBuf,
        record: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not a pcap or pcapng file (first bytes {magic:08x}); \
         convert it with `editcap -F pcap`"
    )]
    NotACapture { path: PathBuf, magic: u32 },
    #[error("{path}: file ends inside record {record} (truncated capture)")]
    Truncated { path: PathBuf, record: u64 },
    #[error(
        "{path}: record {record} claims {len} bytes, more than the {max} accepted; \
         the file is corrupt or not a capture"
    )]
    RecordTooLong {
        path: PathBuf,
        record: u64,
        len: u64,
        max: u64,
    },
    #[error("{path}: record {record} is malformed: {what}")]
    Malformed {
        path: PathBuf,
        record: u64,
        what: &'static str,
    },
    #[error(
        "{path}: record {record} names interface {interface}, but the section declares {declared}"
    )]
    UnknownInterface {
        path: PathBuf,
        record: u64,
        interface: u32,
        declared: usize,
    },
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    units_per_s: u64,
    offset_s: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let x = [
            b.get(at).copied().unwrap_or(0),
            b.get(at + 1).copied().unwrap_or(0),
        ];
        match self {
            Order::Little => u16::from_le_bytes(x),
            Order::Big => u16::from_be_bytes(x),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let mut x = [0u8; 4];
        for (i, v) in x.iter_mut().enumerate() {
            *v = b.get(at + i).copied().unwrap_or(0);
        }
        match self {
            Order::Little => u32::from_le_bytes(x),
            Order::Big => u32::from_be_bytes(x),
        }
    }
}

#[derive(Debug)]
enum Format {
    Pcap {
        order: Order,
        nanos: bool,
        link: LinkType,
    },
    PcapNg {
        order: Order,
        interfaces: Vec<Interface>,
    },
    NetMon(netmon::NetMon),
}

/// A packet record: (ts_ns, wire_len, link, where the data lies in the reader's buffer).
type Record = (u64, u32, LinkType, Range<usize>);

/// Reads pcap and pcapng files packet by packet.
#[derive(Debug)]
pub struct PcapReader {
    path: PathBuf,
    r: BufReader<File>,
    format: Format,
    buf: Vec<u8>,
    /// Records (pcap) or blocks (pcapng) read so far, the file header excluded.
    record: u64,
    done: bool,
}

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
/// "GMBU", read little-endian.
const NETMON2_MAGIC: u32 = 0x5542_4d47;

/// Result of filling a buffer: all of it, nothing (clean end of file), or part of it.
enum Fill {
    Full,
    Eof,
    Partial,
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<Fill> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(if got == 0 { Fill::Eof } else { Fill::Partial }),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Fill::Full)
}

impl PcapReader {
    /// Opens a pcap or pcapng file and reads its file (section) header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| PcapError::Open {
            path: path.clone(),
            source,
        })?;
        let mut r = BufReader::with_capacity(64 * 1024, file);
        let mut head = [0u8; 24];
        let fill = read_full(&mut r, &mut head).map_err(|source| PcapError::Read {
            path: path.clone(),
            record: 0,
            source,
        })?;
        let magic_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if !matches!(fill, Fill::Full) {
            return Err(PcapError::NotACapture {
                path,
                magic: magic_le.swap_bytes(),
            });
        }
        let magic_be = magic_le.swap_bytes();
        let format = match (magic_le, magic_be) {
            (PCAP_MAGIC_US, _) | (PCAP_MAGIC_NS, _) | (_, PCAP_MAGIC_US) | (_, PCAP_MAGIC_NS) => {
                let (order, magic) = if magic_le == PCAP_MAGIC_US || magic_le == PCAP_MAGIC_NS {
                    (Order::Little, magic_le)
                } else {
                    (Order::Big, magic_be)
                };
                // The link type's upper bits carry FCS information (LINKTYPE_FCS...).
                let link = LinkType::from_dlt(order.u32(&head, 20) & 0x0fff_ffff);
                Format::Pcap {
                    order,
                    nanos: magic == PCAP_MAGIC_NS,
                    link,
                }
            }
            (PCAPNG_SHB, _) => {
                let order = match u32::from_le_bytes([head[8], head[9], head[10], head[11]]) {
                    PCAPNG_BOM => Order::Little,
                    x if x.swap_bytes() == PCAPNG_BOM => Order::Big,
                    _ => {
                        return Err(PcapError::Malformed {
                            path,
                            record: 0,
                            what: "pcapng section header has no byte-order magic",
                        })
                    }
                };
                let total = order.u32(&head, 4) as usize;
                if !(28..=HEADER_BLOCK_BYTES_MAX).contains(&total) {
                    return Err(PcapError::Malformed {
                        path,
                        record: 0,
                        what: "pcapng section header length out of range",
                    });
                }
                // Skip the rest of the section header (options and trailing length).
                let mut rest = (total - 24) as u64;
                let skipped =
                    io::copy(&mut (&mut r).take(rest), &mut io::sink()).map_err(|source| {
                        PcapError::Read {
                            path: path.clone(),
                            record: 0,
                            source,
                        }
                    })?;
                rest -= skipped;
                if rest != 0 {
                    return Err(PcapError::Truncated { path, record: 0 });
                }
                Format::PcapNg {
                    order,
                    interfaces: Vec::new(),
                }
            }
            (NETMON2_MAGIC, _) => netmon::open(&path, &mut r, &head)?,
            _ => {
                return Err(PcapError::NotACapture {
                    path,
                    magic: magic_be,
                })
            }
        };
        Ok(PcapReader {
            path,
            r,
            format,
            buf: Vec::new(),
            record: 0,
            done: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Link type of a pcap file, or of the first interface of a pcapng file seen so far.
    pub fn link_type(&self) -> Option<LinkType> {
        match &self.format {
            Format::Pcap { link, .. } => Some(*link),
            Format::PcapNg { interfaces, .. } => interfaces.first().map(|i| i.link),
            Format::NetMon(ref n) => Some(n.link),
        }
    }

    /// The next packet, `None` at the end of the file. After an error the reader stops
    /// (returns `None`): a corrupt length leaves no way to find the next record.
    pub fn next_packet(&mut self) -> Option<Result<Packet<'_>, PcapError>> {
        if self.done {
            return None;
        }
        let res = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
            Format::NetMon(_) => self.next_netmon(),
        };
        match res {
            Ok(Some((ts_ns, wire_len, link, range))) => Some(Ok(Packet {
                ts_ns,
                wire_len,
                link,
                data: self.buf.get(range).unwrap_or(&[]),
            })),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn err_read(&self, source: io::Error) -> PcapError {
        PcapError::Read {
            path: self.path.clone(),
            record: self.record,
            source,
        }
    }

    fn truncated(&self) -> PcapError {
        PcapError::Truncated {
            path: self.path.clone(),
            record: self.record,
        }
    }

    fn malformed(&self, what: &'static str) -> PcapError {
        PcapError::Malformed {
            path: self.path.clone(),
            record: self.record,
            what,
        }
    }

    fn too_long(&self, len: u64, max: u64) -> PcapError {
        PcapError::RecordTooLong {
            path: self.path.clone(),
            record: self.record,
            len,
            max,
        }
    }

    /// Reads `len` bytes into the start of the buffer.
    fn read_body(&mut self, len: usize) -> Result<(), PcapError> {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        match read_full(&mut self.r, &mut self.buf[..len]) {
            Ok(Fill::Full) => Ok(()),
            Ok(_) => Err(self.truncated()),
            Err(e) => Err(self.err_read(e)),
        }
    }

    /// (ts_ns, wire_len, link, where the data lies in the buffer)
    fn next_pcap(&mut self) -> Result<Option<Record>, PcapError> {
        let Format::Pcap { order, nanos, link } = self.format else {
            return Ok(None);
        };
        let mut h = [0u8; 16];
        self.record += 1;
        match read_full(&mut self.r, &mut h) {
            Ok(Fill::Full) => {}
            Ok(Fill::Eof) => return Ok(None),
            Ok(Fill::Partial) => return Err(self.truncated()),
            Err(e) => return Err(self.err_read(e)),
        }
        let sec = u64::from(order.u32(&h, 0));
        let frac = u64::from(order.u32(&h, 4));
        let incl = order.u32(&h, 8);
        let orig = order.u32(&h, 12);
        if incl as usize > RECORD_BYTES_MAX {
            return Err(self.too_long(u64::from(incl), RECORD_BYTES_MAX as u64));
        }
        self.read_body(incl as usize)?;
        let frac_ns = if nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        let ts_ns = sec.saturating_mul(1_000_000_000).saturating_add(frac_ns);
        Ok(Some((ts_ns, orig, link, 0..incl as usize)))
    }

    fn next_netmon(&mut self) -> Result<Option<Record>, PcapError> {
        let Format::NetMon(ref n) = self.format else {
            return Ok(None);
        };
        let Some(&offset) = n.frames.get(self.record as usize) else {
            return Ok(None);
        };
        let (start_ns, link) = (n.start_ns, n.link);
        self.record += 1;
        self.r
            .seek(SeekFrom::Start(u64::from(offset)))
            .map_err(|e| self.err_read(e))?;
        let mut h = [0u8; 16];
        match read_full(&mut self.r, &mut h) {
            Ok(Fill::Full) => {}
            Ok(_) => return Err(self.truncated()),
            Err(e) => return Err(self.err_read(e)),
        }
        let le = Order::Little;
        let delta_us = u64::from(le.u32(&h, 4)) << 32 | u64::from(le.u32(&h, 0));
        let orig = le.u32(&h, 8);
        let incl = le.u32(&h, 12);
        if incl as usize > RECORD_BYTES_MAX {
            return Err(self.too_long(u64::from(incl), RECORD_BYTES_MAX as u64));
        }
        self.read_body(incl as usize)?;
        let ts_ns = start_ns.saturating_add(delta_us.saturating_mul(1000));
        Ok(Some((ts_ns, orig, link, 0..incl as usize)))
    }

    fn next_pcapng(&mut self) -> Result<Option<Record>, PcapError> {
        loop {
            let Format::PcapNg { order, .. } = self.format else {
                return Ok(None);
            };
            let mut h = [0u8; 8];
            self.record += 1;
            match read_full(&mut self.r, &mut h) {
                Ok(Fill::Full) => {}
                Ok(Fill::Eof) => return Ok(None),
                Ok(Fill::Partial) => return Err(self.truncated()),
                Err(e) => return Err(self.err_read(e)),
            }
            let mut order = order;
            let btype = order.u32(&h, 0);
            if btype == PCAPNG_SHB {
                // A new section: its own byte order; its interfaces replace the old ones.
                let mut bom = [0u8; 4];
                match read_full(&mut self.r, &mut bom) {
                    Ok(Fill::Full) => {}
                    Ok(_) => return Err(self.truncated()),
                    Err(e) => return Err(self.err_read(e)),
                }
                order = match u32::from_le_bytes(bom) {
                    PCAPNG_BOM => Order::Little,
                    x if x.swap_bytes() == PCAPNG_BOM => Order::Big,
                    _ => return Err(self.malformed("section header has no byte-order magic")),
                };
                let total = order.u32(&h, 4) as usize;
                if !(28..=HEADER_BLOCK_BYTES_MAX).contains(&total) || total & 3 != 0 {
                    return Err(self.malformed("section header length out of range"));
                }
                self.read_body(total - 12)?;
                self.format = Format::PcapNg {
                    order,
                    interfaces: Vec::new(),
                };
                continue;
            }
            let total = order.u32(&h, 4) as u64;
            if total < 12 {
                return Err(self.malformed("block shorter than its 12-byte frame"));
            }
            let body = total - 8; // body + trailing length
            match btype {
                1 => {
                    if body > HEADER_BLOCK_BYTES_MAX as u64 {
                        return Err(self.too_long(total, HEADER_BLOCK_BYTES_MAX as u64));
                    }
                    self.read_body(body as usize)?;
                    self.add_interface(order, body as usize)?;
                }
                2 | 3 | 6 => {
                    if body > (RECORD_BYTES_MAX + 64) as u64 {
                        return Err(self.too_long(total, RECORD_BYTES_MAX as u64));
                    }
                    self.read_body(body as usize)?;
                    return self.packet_block(order, btype, body as usize).map(Some);
                }
                _ => {
                    if body > SKIPPED_BLOCK_BYTES_MAX {
                        return Err(self.too_long(total, SKIPPED_BLOCK_BYTES_MAX));
                    }
                    let got = io::copy(&mut (&mut self.r).take(body), &mut io::sink())
                        .map_err(|e| self.err_read(e))?;
                    if got != body {
                        return Err(self.truncated());
                    }
                }
            }
        }
    }

    fn add_interface(&mut self, order: Order, body: usize) -> Result<(), PcapError> {
        if body < 12 {
            return Err(self.malformed("interface description block too short"));
        }
        let b = &self.buf[..body];
        let link = LinkType::from_dlt(u32::from(order.u16(b, 0)));
        let mut units_per_s = 1_000_000u64;
        let mut offset_s = 0i64;
        // Options from offset 8 to the trailing length.
        let mut at = 8usize;
        while at + 4 <= body - 4 {
            let code = order.u16(b, at);
            let len = usize::from(order.u16(b, at + 2));
            let v = at + 4;
            if code == 0 || v + len > body - 4 {
                break;
            }
            match (code, len) {
                (9, 1) => {
                    let r = b[v];
                    let exp = u32::from(r & 0x7f);
                    let base: u64 = if r & 0x80 != 0 { 2 } else { 10 };
                    match base.checked_pow(exp) {
                        Some(u) if u > 0 => units_per_s = u,
                        _ => return Err(self.malformed("if_tsresol out of range")),
                    }
                }
                (14, 8) => {
                    let hi = order.u32(b, v);
                    let lo = order.u32(b, v + 4);
                    // A 64-bit value in the section's byte order.
                    offset_s = match order {
                        Order::Little => (u64::from(lo) << 32 | u64::from(hi)) as i64,
                        Order::Big => (u64::from(hi) << 32 | u64::from(lo)) as i64,
                    };
                }
                _ => {}
            }
            at = v + ((len + 3) & !3);
        }
        let Format::PcapNg { interfaces, .. } = &mut self.format else {
            return Ok(());
        };
        if interfaces.len() >= INTERFACES_MAX {
            return Err(self.malformed("more interfaces than the reader accepts"));
        }
        interfaces.push(Interface {
            link,
            units_per_s,
            offset_s,
        });
        Ok(())
    }

    fn packet_block(&self, order: Order, btype: u32, body: usize) -> Result<Record, PcapError> {
        let b = &self.buf[..body];
        let (iface, ts, caplen, orig, data_at) = match btype {
            6 => {
                if body < 24 {
                    return Err(self.malformed("enhanced packet block too short"));
                }
                let ts = u64::from(order.u32(b, 4)) << 32 | u64::from(order.u32(b, 8));
                (order.u32(b, 0), ts, order.u32(b, 12), order.u32(b, 16), 20)
            }
            2 => {
                if body < 24 {
                    return Err(self.malformed("packet block too short"));
                }
                let ts = u64::from(order.u32(b, 4)) << 32 | u64::from(order.u32(b, 8));
                let iface = u32::from(order.u16(b, 0));
                (iface, ts, order.u32(b, 12), order.u32(b, 16), 20)
            }
            _ => {
                if body < 8 {
                    return Err(self.malformed("simple packet block too short"));
                }
                let orig = order.u32(b, 0);
                let room = (body - 8) as u32;
                (0, 0, orig.min(room), orig, 4)
            }
        };
        if caplen as usize > RECORD_BYTES_MAX {
            return Err(self.too_long(u64::from(caplen), RECORD_BYTES_MAX as u64));
        }
        // data + padding + trailing length must fit in the block.
        if data_at + caplen as usize + 4 > body {
            return Err(self.malformed("captured length exceeds its block"));
        }
        let Format::PcapNg { interfaces, .. } = &self.format else {
            return Err(self.malformed("packet block outside a pcapng section"));
        };
        let Some(i) = interfaces.get(iface as usize) else {
            return Err(PcapError::UnknownInterface {
                path: self.path.clone(),
                record: self.record,
                interface: iface,
                declared: interfaces.len(),
            });
        };
        let ns = u128::from(ts) * 1_000_000_000 / u128::from(i.units_per_s);
        let ns = (ns as i128).saturating_add(i128::from(i.offset_s) * 1_000_000_000);
        let ts_ns = ns.clamp(0, i128::from(u64::MAX)) as u64;
        Ok((ts_ns, orig, i.link, data_at..data_at + caplen as usize))
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

/// Ethertype of an IP packet by its version nibble.
fn ip_ethertype(data: &[u8], at: usize) -> Option<u16> {
    match data.get(at)? >> 4 {
        4 => Some(ETHERTYPE_IPV4),
        6 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

/// Where the IP header starts in a frame of `link`, and its ethertype (0x0800 or 0x86dd).
/// `None` when the frame does not carry IPv4/IPv6 (ARP, other protocols, too short).
/// Ethernet frames are handled too (up to two VLAN tags skipped).
pub fn network_offset(link: LinkType, data: &[u8]) -> Option<(usize, u16)> {
    let (at, ethertype) = match link {
        LinkType::Ethernet => {
            let mut at = 12;
            let mut et = be16(data, at)?;
            for _ in 0..2 {
                if et != ETHERTYPE_VLAN && et != ETHERTYPE_QINQ {
                    break;
                }
                at += 4;
                et = be16(data, at)?;
            }
            (at + 2, et)
        }
        LinkType::LinuxSll => (16, be16(data, 14)?),
        LinkType::LinuxSll2 => (20, be16(data, 0)?),
        LinkType::Raw => (0, ip_ethertype(data, 0)?),
        LinkType::Ipv4 => (0, ETHERTYPE_IPV4),
        LinkType::Ipv6 => (0, ETHERTYPE_IPV6),
        LinkType::Null | LinkType::Loop => {
            let b: [u8; 4] = data.get(..4)?.try_into().ok()?;
            // DLT_NULL is in the writer's byte order, DLT_LOOP in network order: accept both.
            // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD),
            // 28 (FreeBSD), 30 (macOS).
            let family = |v: u32| match v {
                2 => Some(ETHERTYPE_IPV4),
                10 | 24 | 28 | 30 => Some(ETHERTYPE_IPV6),
                _ => None,
            };
            let et = family(u32::from_le_bytes(b)).or_else(|| family(u32::from_be_bytes(b)))?;
            (4, et)
        }
        LinkType::Unknown(_) => return None,
    };
    if ethertype != ETHERTYPE_IPV4 && ethertype != ETHERTYPE_IPV6 {
        return None;
    }
    // The version nibble must agree with the ethertype.
    if ip_ethertype(data, at)? != ethertype {
        return None;
    }
    Some((at, ethertype))
}

/// Documentation MACs of the Ethernet header [`to_ethernet`] builds.
pub const SYNTHETIC_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const SYNTHETIC_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Writes into `out` (cleared first) an Ethernet frame for the packet in `data`: a copy for
/// Ethernet links; for other links the IP packet behind a synthetic Ethernet header
/// (02:00:00:00:00:01 -> 02:00:00:00:00:02). Returns false (and leaves `out` empty) when the
/// frame does not carry IP or the link type is unknown.
pub fn to_ethernet(link: LinkType, data: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if link == LinkType::Ethernet {
        out.extend_from_slice(data);
        return true;
    }
    let Some((at, ethertype)) = network_offset(link, data) else {
        return false;
    };
    let Some(ip) = data.get(at..) else {
        return false;
    };
    out.reserve(14 + ip.len());
    out.extend_from_slice(&SYNTHETIC_DST_MAC);
    out.extend_from_slice(&SYNTHETIC_SRC_MAC);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(ip);
    true
}

/// Writes a nanosecond pcap file (native little-endian, LINKTYPE_ETHERNET).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. Packets longer than `snaplen` are cut to it.
    pub fn new(mut w: W, snaplen: u32) -> io::Result<Self> {
        let snaplen = snaplen.max(1);
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&PCAP_MAGIC_NS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LinkType::Ethernet.dlt().to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w, snaplen })
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Writes one record. `wire_len` is raised to the captured length if smaller. Seconds
    /// beyond u32 (year 2106) are clamped.
    pub fn write_packet(&mut self, ts_ns: u64, wire_len: u32, data: &[u8]) -> io::Result<()> {
        let cap = data.len().min(self.snaplen as usize);
        let sec = u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let ns = (ts_ns % 1_000_000_000) as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&ns.to_le_bytes());
        h[8..12].copy_from_slice(&(cap as u32).to_le_bytes());
        h[12..16].copy_from_slice(&wire_len.max(cap as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(&data[..cap])
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Microsoft Network Monitor 2.x: a little-endian header (`"GMBU", minor u8, major u8,
/// network u16, start time as a Windows SYSTEMTIME (8 x u16: year, month, day of week, day,
/// hour, minute, second, millisecond; UTC), frame_table_offset u32, frame_table_length u32,
/// ...`), frame records anywhere in the file (`ts_delta_us u64, orig_len u32, incl_len u32,
/// data`), and a frame table of u32 file offsets, one per frame, in order. The per-frame
/// trailers of 2.1+ (which may name another network type) are ignored: the header's network
/// type applies to every frame.
mod netmon {
    use super::*;

    /// Frames per file accepted (a 4 MiB frame table).
    pub const FRAMES_MAX: u32 = 1 << 20;

    #[derive(Debug)]
    pub struct NetMon {
        pub link: LinkType,
        pub start_ns: u64,
        pub frames: Vec<u32>,
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    pub(super) fn open(
        path: &Path,
        r: &mut BufReader<File>,
        head: &[u8; 24],
    ) -> Result<Format, PcapError> {
        let malformed = |what| PcapError::Malformed {
            path: path.to_path_buf(),
            record: 0,
            what,
        };
        let read_err = |source| PcapError::Read {
            path: path.to_path_buf(),
            record: 0,
            source,
        };
        if head[5] != 2 {
            return Err(malformed("only Network Monitor 2.x files are supported"));
        }
        let le = Order::Little;
        let mut rest = [0u8; 8];
        match read_full(r, &mut rest).map_err(read_err)? {
            Fill::Full => {}
            _ => return Err(malformed("Network Monitor header truncated")),
        }
        let link = match le.u16(head, 6) {
            1 => LinkType::Ethernet,
            // Not a DLT: keep the NetMon media type visible, out of the DLT range.
            x => LinkType::Unknown(0x1_0000 | u32::from(x)),
        };
        let f = |i: usize| i64::from(le.u16(head, 8 + 2 * i));
        let (year, month, day) = (f(0), f(1), f(3));
        let (hour, min, sec, ms) = (f(4), f(5), f(6), f(7));
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
            return Err(malformed("Network Monitor start time out of range"));
        }
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec;
        let start_ns = (secs.max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add((ms.max(0) as u64) * 1_000_000);
        let table_at = le.u32(&rest, 0);
        let table_len = le.u32(&rest, 4);
        if table_len & 3 != 0 || table_len / 4 > FRAMES_MAX {
            return Err(malformed("Network Monitor frame table size out of range"));
        }
        r.seek(SeekFrom::Start(u64::from(table_at)))
            .map_err(read_err)?;
        let mut table = vec![0u8; table_len as usize];
        match read_full(r, &mut table).map_err(read_err)? {
            Fill::Full => {}
            Fill::Eof if table_len == 0 => {}
            _ => {
                return Err(PcapError::Truncated {
                    path: path.to_path_buf(),
                    record: 0,
                })
            }
        }
        let frames = table.chunks_exact(4).map(|c| le.u32(c, 0)).collect();
        Ok(Format::NetMon(NetMon {
            link,
            start_ns,
            frames,
        }))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn civil_days() {
            assert_eq!(super::days_from_civil(1970, 1, 1), 0);
            assert_eq!(super::days_from_civil(2005, 7, 17), 12_981);
            assert_eq!(super::days_from_civil(2000, 3, 1), 11_017);
        }
    }
}
