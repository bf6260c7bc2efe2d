/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdprec probe ABI: the one contract between the XDP program (probe.c) and user space.
 *
 * The Rust mirror is xdp-probe/classify/src/abi.rs. Both sides assert the sizes below
 * (C: _Static_assert at the end of this file; Rust: const assertions in abi.rs). Change the
 * two together and bump XDPREC_ABI_VERSION.
 *
 * Maps (names are part of the ABI; the loader finds them by name):
 *   xdprec_config  ARRAY, 1 entry, struct xdprec_config      written by the loader before attach
 *   xdprec_stats   PERCPU_ARRAY, XDPREC_CNT_MAX entries, u64   one counter per index, per CPU
 *   xdprec_xsks    XSKMAP, XDPREC_QUEUES_MAX entries           AF_XDP socket per rx queue
 *   xdprec_tcp_sip LRU_HASH, XDPREC_TCP_FLOWS_MAX entries, struct xdprec_flow_key -> u64 (ns last seen)
 *                  TCP flows that were seen carrying SIP (both directions share one key)
 *   xdprec_heartbeat ARRAY, 1 entry, u64                        reserved for hot standby
 *
 * Classification rules (the Rust classifier in xdprec-classify implements exactly these; the
 * differential test runs both over ../shared/corpus):
 *   1. Parse Ethernet, up to 2 VLAN tags (0x8100, 0x88a8), then IPv4 (options allowed) or IPv6
 *      (at most XDPREC_IPV6_EXT_MAX extension headers: hop-by-hop, routing, destination options,
 *      fragment).
 *   2. One level of tunnel is unwrapped and the INNER packet is classified (the whole outer
 *      frame is what gets recorded): GRE (proto 47; payload 0x6558 Ethernet, 0x0800/0x86dd IP,
 *      0x88be ERSPAN II, 0x22eb ERSPAN III, 0x880b PPP carrying 0x0021 IPv4 / 0x0057 IPv6),
 *      VXLAN (UDP dst 4789), GTP-U (UDP dst 2152, G-PDU message type 255), IP-in-IP (IPv4
 *      proto 4, IPv6 proto 41). A tunnel inside the inner packet is not unwrapped again.
 *   3. IP fragments of UDP datagrams (IPv4 with MF or offset != 0 and protocol 17; IPv6 with a
 *      fragment header whose next header is 17) are class FRAG, every one of them. Policy: a
 *      non-first fragment carries no ports, so the probe cannot tell SIP from anything else;
 *      on a voice fork fragmented UDP is almost always large SIP, and recording the odd other
 *      fragment costs far less than losing a call. Capture reassembles them.
 *   4. UDP: SIP if either port is in the configured SIP port set, or the payload starts with
 *      a SIP request line ("INVITE ", "ACK ", "BYE ", "CANCEL ", "OPTIONS ", "REGISTER ",
 *      "PRACK ", "SUBSCRIBE ", "NOTIFY ", "PUBLISH ", "INFO ", "REFER ", "MESSAGE ",
 *      "UPDATE ") or a status line ("SIP/2.0 "). Else, if both ports are in [rtp_port_lo,
 *      rtp_port_hi]: RTCP if the payload is >= 8 bytes, version 2 and packet type 200..=204;
 *      RTP if it is >= 12 bytes, version 2, 12 + 4*CC <= payload length and the payload type
 *      (7 bits) is not 72..=76. Else OTHER.
 *   5. TCP: SIP if either port is in the SIP port set, or the flow is in xdprec_tcp_sip, or the
 *      payload starts as in 4 (then the flow is added to xdprec_tcp_sip). Else OTHER.
 *   6. Verdict: SIP, RTP, RTCP and FRAG are redirected to xdprec_xsks[rx_queue_index] when a
 *      socket is there, else passed (counted XDPREC_CNT_NO_SOCKET). OTHER is passed, or dropped
 *      when config.drop_other is set (a dedicated capture NIC). Parse errors and truncated
 *      frames are OTHER (counted by layer).
 *
 * Details of the rules (probe.c is the reference; the Rust classifier mirrors these):
 *   - Ethernet: after XDPREC_VLAN_MAX tags, a further 0x8100/0x88a8 is an unknown EtherType:
 *     OTHER, no error. Any EtherType other than 0x0800/0x86dd is OTHER.
 *   - IPv4: version 4, IHL >= 5 and total length >= IHL*4, else PARSE_ERROR; header (with
 *     options) cut by the frame end: TRUNC_IPV4. IPv6: version 6 else PARSE_ERROR.
 *     Extension headers 0, 43, 60 are (hdrlen+1)*8 bytes, 44 is 8 bytes; each counts toward
 *     XDPREC_IPV6_EXT_MAX; the fragment header ends the chain. An extension header still
 *     left after XDPREC_IPV6_EXT_MAX of them: IPV6_EXT_LIMIT, OTHER.
 *   - "Payload length" is what the headers declare: IPv4 total length - IHL*4 (IPv6 payload
 *     length, 0xffff when it is 0, less the extension headers, not below 0), for UDP its
 *     length field - 8
 *     (UDP length < 8 or > the IP payload length: PARSE_ERROR), for TCP the IP payload
 *     length - data offset*4 (data offset < 5 or beyond the IP payload: PARSE_ERROR). A check
 *     "N <= payload length" also needs the N bytes in the frame (a truncated capture holds
 *     fewer); Ethernet padding is never payload.
 *   - Fragments (rule 3) are tested before anything else above IP: a fragment is FRAG when
 *     its protocol (IPv6: the fragment header's next header) is 17 and config.capture_frags
 *     is 1, otherwise OTHER; fragments are never unwrapped or looked into.
 *   - Tunnels are recognised in the outer packet only, before the SIP/RTP rules (UDP to 4789
 *     or 2152 is a tunnel even when the port is also a SIP port), and counted TUNNEL_* as
 *     soon as the outer header says so, whether or not the inner packet parses. Inside a
 *     tunnel, protocols 4, 41, 47 are OTHER and UDP to 4789/2152 is plain UDP.
 *     GRE: version 0 or 1 and routing bit (0x4000) clear, else PARSE_ERROR; the header is
 *     4 bytes + 4 for each of C (0x8000), K (0x2000), S (0x1000), and for version 1 A (0x0080).
 *     0x88be with S clear is ERSPAN type I (Ethernet follows), with S set an 8-byte type II
 *     header (version nibble 1, else PARSE_ERROR). 0x22eb: a 12-byte type III header
 *     (version nibble 2, else PARSE_ERROR), + 8 bytes when O (byte 11 bit 0) is set; frame
 *     type (byte 10 bits 6..2) other than 0 (Ethernet) is OTHER. PPP: optional 0xff 0x03,
 *     then a 2-byte protocol (0x0021, 0x0057, else OTHER). Other GRE protocols: OTHER.
 *     VXLAN: 8-byte header with the I flag (0x08) set, else PARSE_ERROR; Ethernet follows.
 *     GTP-U: version 1 and PT 1 (flags 0x30 under mask 0xf0), else PARSE_ERROR; message
 *     type other than 255: OTHER; any of E/S/PN (0x07): 4 more bytes, the last being the
 *     next extension type; with E (0x04) extension headers follow while that type is not 0:
 *     a length byte in 4-byte units (0: PARSE_ERROR), next type in the header's last byte, at
 *     most XDPREC_GTPU_EXT_MAX of them (else GTPU_EXT_LIMIT, OTHER). The inner packet is IP
 *     by its version nibble (4 or 6, else OTHER). Inner Ethernet takes VLAN tags as outer.
 *   - A cut tunnel header counts TRUNC_TUNNEL; a cut inner header counts its own layer
 *     (TRUNC_ETH, TRUNC_IPV4...).
 *   - TCP flow key: addresses as 16 bytes (IPv4 mapped), compared as big-endian byte
 *     strings, then ports compared in host order; the lower endpoint goes into addr_a/port_a.
 *     A flow hit refreshes the value (bpf_ktime_get_ns); entries leave only by LRU eviction.
 *     config.sip_by_content = 0 turns off both content tests, so no TCP flow is learnt;
 *     flows already learnt still match.
 *   - Headers are looked for in the first 4096 bytes of the frame only (XDP's linear buffer
 *     is smaller than that); a header that would start beyond is OTHER.
 *   - Counting: exactly one CLASS_* and exactly one of REDIRECTED/PASSED/DROPPED per frame
 *     (an ABI mismatch counts ABI_MISMATCH + PASSED and no class). VLAN, IPV4 and IPV6 count
 *     the outer layer only. REDIRECTED means bpf_redirect_map accepted the frame; a full
 *     socket ring is counted by the socket (XDP_STATISTICS), not here.
 */
#ifndef XDPREC_ABI_H
#define XDPREC_ABI_H

#ifdef __BPF__
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

#define XDPREC_ABI_VERSION 1
#define XDPREC_SIP_PORTS_MAX 16
#define XDPREC_QUEUES_MAX 256
#define XDPREC_TCP_FLOWS_MAX 65536
#define XDPREC_VLAN_MAX 2
#define XDPREC_IPV6_EXT_MAX 4
#define XDPREC_VXLAN_PORT 4789
#define XDPREC_GTPU_PORT 2152
#define XDPREC_GTPU_EXT_MAX 4

/* Class of a frame. Also stored in every segment record. */
enum xdprec_class {
	XDPREC_CLASS_OTHER = 0,
	XDPREC_CLASS_SIP = 1,
	XDPREC_CLASS_RTP = 2,
	XDPREC_CLASS_RTCP = 3,
	XDPREC_CLASS_FRAG = 4,
};

/* Counter indexes into xdprec_stats. Append only; never renumber. */
enum xdprec_counter {
	XDPREC_CNT_RX_PACKETS = 0,    /* every frame the program saw */
	XDPREC_CNT_RX_BYTES = 1,      /* their bytes */
	/* classes */
	XDPREC_CNT_CLASS_SIP_UDP = 2,
	XDPREC_CNT_CLASS_SIP_TCP = 3,
	XDPREC_CNT_CLASS_RTP = 4,
	XDPREC_CNT_CLASS_RTCP = 5,
	XDPREC_CNT_CLASS_FRAG = 6,
	XDPREC_CNT_CLASS_OTHER = 7,
	XDPREC_CNT_SIP_BY_CONTENT = 8, /* SIP recognised by content on a non-SIP port */
	XDPREC_CNT_TCP_FLOW_HIT = 9,   /* TCP segment classified SIP via xdprec_tcp_sip */
	XDPREC_CNT_TUNNEL_GRE = 10,
	XDPREC_CNT_TUNNEL_ERSPAN = 11,
	XDPREC_CNT_TUNNEL_VXLAN = 12,
	XDPREC_CNT_TUNNEL_GTPU = 13,
	XDPREC_CNT_TUNNEL_IPIP = 14,
	XDPREC_CNT_VLAN = 15,          /* frames with at least one VLAN tag */
	XDPREC_CNT_IPV4 = 16,
	XDPREC_CNT_IPV6 = 17,
	/* verdicts */
	XDPREC_CNT_REDIRECTED = 18,
	XDPREC_CNT_PASSED = 19,
	XDPREC_CNT_DROPPED = 20,
	XDPREC_CNT_REDIRECT_FAILED = 21, /* bpf_redirect_map returned an error */
	XDPREC_CNT_NO_SOCKET = 22,       /* classified, but no socket in the queue's slot: passed */
	/* errors */
	XDPREC_CNT_PARSE_ERROR = 23,     /* malformed header (bad IHL, version, GRE version...) */
	XDPREC_CNT_TRUNC_ETH = 24,
	XDPREC_CNT_TRUNC_VLAN = 25,
	XDPREC_CNT_TRUNC_IPV4 = 26,
	XDPREC_CNT_TRUNC_IPV6 = 27,
	XDPREC_CNT_TRUNC_IPV6_EXT = 28,
	XDPREC_CNT_TRUNC_UDP = 29,
	XDPREC_CNT_TRUNC_TCP = 30,
	XDPREC_CNT_TRUNC_TUNNEL = 31,
	XDPREC_CNT_IPV6_EXT_LIMIT = 32,  /* more extension headers than XDPREC_IPV6_EXT_MAX */
	XDPREC_CNT_TCP_FLOW_FULL = 33,   /* reserved: LRU evictions are not visible to BPF */
	XDPREC_CNT_ABI_MISMATCH = 34,    /* config.abi_version != XDPREC_ABI_VERSION: passed */
	XDPREC_CNT_GTPU_EXT_LIMIT = 35,  /* more GTP-U extension headers than XDPREC_GTPU_EXT_MAX */
	XDPREC_CNT_MAX = 36,
};

struct xdprec_config {
	__u32 abi_version;          /* must equal XDPREC_ABI_VERSION, else the program passes all */
	__u16 sip_ports[XDPREC_SIP_PORTS_MAX]; /* first sip_port_count entries are used */
	__u16 sip_port_count;
	__u16 rtp_port_lo;          /* inclusive */
	__u16 rtp_port_hi;          /* inclusive */
	__u8 drop_other;            /* 1: XDP_DROP what is not classified (dedicated capture NIC) */
	__u8 sip_by_content;        /* 1: recognise SIP on any port by its first line */
	__u8 capture_frags;         /* 1: steer IP fragments of UDP datagrams (class FRAG); 0: OTHER */
	__u8 _pad[3];
};

/* Key of xdprec_tcp_sip: the lower (addr, port) endpoint first so both directions match. */
struct xdprec_flow_key {
	__u8 addr_a[16];            /* IPv4 as ::ffff:a.b.c.d */
	__u8 addr_b[16];
	__u16 port_a;               /* network byte order */
	__u16 port_b;
	__u32 _pad;
};

#define XDPREC_CONFIG_SIZE 48
#define XDPREC_FLOW_KEY_SIZE 40

#ifndef __cplusplus
_Static_assert(sizeof(struct xdprec_config) == XDPREC_CONFIG_SIZE, "xdprec_config size");
_Static_assert(sizeof(struct xdprec_flow_key) == XDPREC_FLOW_KEY_SIZE, "xdprec_flow_key size");
#endif

#endif /* XDPREC_ABI_H */
