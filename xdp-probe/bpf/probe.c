/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdprec_probe: classify mirrored frames as SIP / RTP / RTCP / FRAG / OTHER and steer the
 * first four into the AF_XDP socket of the receiving queue.
 *
 * The rules, the maps and the counters are the ABI: see xdprec_abi.h, which this program
 * implements line by line. Parsing is cursor style (as in xdp-project/bpf-examples): each
 * parse_* function checks its header against data_end, moves the cursor past it and returns
 * the next protocol, or -1 after recording in *err the counter that explains why it stopped.
 * Every loop has a compile-time bound.
 *
 * One tunnel level is unwrapped: the program runs xdprec_layer() on the frame and, when
 * that finds a tunnel, once more on the inner packet, where tunnels are not recognised.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdprec_abi.h"

/* EtherTypes and protocol numbers that uapi headers do not all define. */
#define XDPREC_ETH_P_8021Q 0x8100
#define XDPREC_ETH_P_8021AD 0x88a8
#define XDPREC_ETH_P_TEB 0x6558
#define XDPREC_ETH_P_ERSPAN2 0x88be /* ERSPAN type I and II */
#define XDPREC_ETH_P_ERSPAN3 0x22eb
#define XDPREC_ETH_P_PPP 0x880b
#define XDPREC_PPP_IPV4 0x0021
#define XDPREC_PPP_IPV6 0x0057

#define XDPREC_GRE_C 0x8000
#define XDPREC_GRE_R 0x4000
#define XDPREC_GRE_K 0x2000
#define XDPREC_GRE_S 0x1000
#define XDPREC_GRE_A 0x0080
#define XDPREC_GRE_VER 0x0007

#define XDPREC_IP_MF_OFFSET 0x3fff /* MF flag and fragment offset */

/* What follows a header: the "next protocol" of the parse_* functions. */
enum next_hdr {
	NEXT_NONE = 0, /* nothing we unwrap: the frame is OTHER */
	NEXT_ETH = 1,
	NEXT_IPV4 = 2,
	NEXT_IPV6 = 3,
};

/*
 * The cursor keeps the offset from the frame start next to the pointer: offsets cross into
 * the global functions below as scalars (subtracting packet pointers needs CAP_PERFMON).
 */
struct hdr_cursor {
	void *pos;
	__u32 off;
};

static __always_inline void cur_skip(struct hdr_cursor *nh, __u32 n)
{
	nh->pos += n;
	nh->off += n;
}

/* What the network layer found, for the transport layer. */
struct l3_info {
	__u32 l4_len;  /* payload length the IP header(s) declare */
	__u8 family;   /* 4 or 6 */
	__u8 is_frag;  /* IPv4 MF/offset, or an IPv6 fragment header */
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct gre_hdr {
	__be16 flags;
	__be16 proto;
};

struct vxlan_hdr {
	__u8 flags;
	__u8 reserved[3];
	__be32 vni;
};

struct gtpu_hdr {
	__u8 flags;
	__u8 type;
	__be16 length;
	__be32 teid;
};

struct gtpu_opt {
	__be16 seq;
	__u8 npdu;
	__u8 next_ext;
};

struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
	__u8 data[6];
};

/* ---- maps (names and layouts are the ABI) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdprec_config);
} xdprec_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPREC_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xdprec_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XDPREC_QUEUES_MAX);
	__type(key, __u32);
	__type(value, __u32);
} xdprec_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPREC_TCP_FLOWS_MAX);
	__type(key, struct xdprec_flow_key);
	__type(value, __u64);
} xdprec_tcp_sip SEC(".maps");

/* Reserved for hot standby: a standby probe watches the active one's heartbeat. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} xdprec_heartbeat SEC(".maps");

/* ---- counters ---- */

static __always_inline void cnt_add(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&xdprec_stats, &idx);

	/* Per-CPU slot and XDP runs one frame at a time per CPU: no atomic needed. */
	if (c)
		*c += n;
}

static __always_inline void cnt_inc(__u32 idx)
{
	cnt_add(idx, 1);
}

/* ---- layer 2 ---- */

/* Ethernet and up to XDPREC_VLAN_MAX tags. Returns the EtherType in network byte order. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end, __u32 *vlans,
					__u32 *err)
{
	struct ethhdr *eth = nh->pos;
	__u16 proto;

	if ((void *)(eth + 1) > data_end) {
		*err = XDPREC_CNT_TRUNC_ETH;
		return -1;
	}
	cur_skip(nh, sizeof(*eth));
	proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < XDPREC_VLAN_MAX; i++) {
		struct vlan_hdr *vh = nh->pos;

		if (proto != bpf_htons(XDPREC_ETH_P_8021Q) && proto != bpf_htons(XDPREC_ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end) {
			*err = XDPREC_CNT_TRUNC_VLAN;
			return -1;
		}
		cur_skip(nh, sizeof(*vh));
		proto = vh->proto;
		*vlans += 1;
	}
	return proto;
}

/* ---- layer 3 ---- */

/* IPv4 with options. Returns the protocol. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct l3_info *l3,
				       __u32 *err)
{
	struct iphdr *iph = nh->pos;
	__u32 hlen, tot;

	if ((void *)(iph + 1) > data_end) {
		*err = XDPREC_CNT_TRUNC_IPV4;
		return -1;
	}
	if (iph->version != 4 || iph->ihl < 5) {
		*err = XDPREC_CNT_PARSE_ERROR;
		return -1;
	}
	hlen = iph->ihl * 4;
	if (nh->pos + hlen > data_end) {
		*err = XDPREC_CNT_TRUNC_IPV4;
		return -1;
	}
	tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen) {
		*err = XDPREC_CNT_PARSE_ERROR;
		return -1;
	}
	l3->family = 4;
	l3->l4_len = tot - hlen;
	l3->is_frag = (iph->frag_off & bpf_htons(XDPREC_IP_MF_OFFSET)) != 0;
	cur_skip(nh, hlen);
	return iph->protocol;
}

static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT;
}

/* IPv6 and at most XDPREC_IPV6_EXT_MAX extension headers. Returns the upper protocol. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end, struct l3_info *l3,
					__u32 *err)
{
	struct ipv6hdr *ip6h = nh->pos;
	__u32 l4_len;
	__u8 nexthdr;

	if ((void *)(ip6h + 1) > data_end) {
		*err = XDPREC_CNT_TRUNC_IPV6;
		return -1;
	}
	if (ip6h->version != 6) {
		*err = XDPREC_CNT_PARSE_ERROR;
		return -1;
	}
	cur_skip(nh, sizeof(*ip6h));
	l3->family = 6;
	l3->is_frag = 0;
	l4_len = bpf_ntohs(ip6h->payload_len);
	/* 0 announces a jumbogram: the length is in a hop-by-hop option we do not read. */
	if (l4_len == 0)
		l4_len = 0xffff;
	nexthdr = ip6h->nexthdr;

#pragma unroll
	for (int i = 0; i < XDPREC_IPV6_EXT_MAX; i++) {
		struct ipv6_ext *ext = nh->pos;
		__u32 len;

		if (!ipv6_is_ext(nexthdr))
			break;
		/* Every extension header is at least 8 bytes. */
		if ((void *)(ext + 1) > data_end) {
			*err = XDPREC_CNT_TRUNC_IPV6_EXT;
			return -1;
		}
		if (nexthdr == IPPROTO_FRAGMENT) {
			len = 8;
			l3->is_frag = 1;
		} else {
			len = ((__u32)ext->hdrlen + 1) * 8;
		}
		if (nh->pos + len > data_end) {
			*err = XDPREC_CNT_TRUNC_IPV6_EXT;
			return -1;
		}
		l4_len = l4_len > len ? l4_len - len : 0;
		nexthdr = ext->nexthdr;
		cur_skip(nh, len);
		/* What follows a fragment header is fragment data, not a header. */
		if (l3->is_frag)
			break;
	}
	if (!l3->is_frag && ipv6_is_ext(nexthdr)) {
		*err = XDPREC_CNT_IPV6_EXT_LIMIT;
		return -1;
	}
	l3->l4_len = l4_len;
	return nexthdr;
}

/* ---- tunnels (outer packet only) ---- */

/* PPP inside GRE: optional address/control, then a 2-byte protocol. */
static __always_inline int parse_ppp(struct hdr_cursor *nh, void *data_end, __u32 *err)
{
	__u8 *p = nh->pos;
	__u16 proto;

	if ((void *)(p + 2) > data_end) {
		*err = XDPREC_CNT_TRUNC_TUNNEL;
		return -1;
	}
	if (p[0] == 0xff && p[1] == 0x03) {
		cur_skip(nh, 2);
		p = nh->pos;
		if ((void *)(p + 2) > data_end) {
			*err = XDPREC_CNT_TRUNC_TUNNEL;
			return -1;
		}
	}
	proto = ((__u16)p[0] << 8) | p[1];
	cur_skip(nh, 2);
	if (proto == XDPREC_PPP_IPV4)
		return NEXT_IPV4;
	if (proto == XDPREC_PPP_IPV6)
		return NEXT_IPV6;
	return NEXT_NONE;
}

/* ERSPAN type II (8 bytes) or III (12 bytes, + 8 with the optional subheader). */
static __always_inline int parse_erspan(struct hdr_cursor *nh, void *data_end, int type3,
					__u32 *err)
{
	__u8 *p = nh->pos;

	if (!type3) {
		if ((void *)(p + 8) > data_end) {
			*err = XDPREC_CNT_TRUNC_TUNNEL;
			return -1;
		}
		if ((p[0] >> 4) != 1) {
			*err = XDPREC_CNT_PARSE_ERROR;
			return -1;
		}
		cur_skip(nh, 8);
		return NEXT_ETH;
	}
	if ((void *)(p + 12) > data_end) {
		*err = XDPREC_CNT_TRUNC_TUNNEL;
		return -1;
	}
	if ((p[0] >> 4) != 2) {
		*err = XDPREC_CNT_PARSE_ERROR;
		return -1;
	}
	if (p[11] & 0x01) {
		if ((void *)(p + 20) > data_end) {
			*err = XDPREC_CNT_TRUNC_TUNNEL;
			return -1;
		}
		cur_skip(nh, 20);
	} else {
		cur_skip(nh, 12);
	}
	/* Frame type 0 is Ethernet; others (2: IP) are not unwrapped. */
	if (((p[10] >> 2) & 0x1f) != 0)
		return NEXT_NONE;
	return NEXT_ETH;
}

static __always_inline int parse_gre(struct hdr_cursor *nh, void *data_end, __u32 *err)
{
	struct gre_hdr *gre = nh->pos;
	__u16 flags, proto;
	__u32 hlen = sizeof(*gre);

	if ((void *)(gre + 1) > data_end) {
		*err = XDPREC_CNT_TRUNC_TUNNEL;
		return -1;
	}
	flags = bpf_ntohs(gre->flags);
	proto = bpf_ntohs(gre->proto);
	if ((flags & XDPREC_GRE_VER) > 1 || (flags & XDPREC_GRE_R)) {
		*err = XDPREC_CNT_PARSE_ERROR;
		return -1;
	}
	if (flags & XDPREC_GRE_C)
		hlen += 4;
	if (flags & XDPREC_GRE_K)
		hlen += 4;
	if (flags & XDPREC_GRE_S)
		hlen += 4;
	if ((flags & XDPREC_GRE_VER) == 1 && (flags & XDPREC_GRE_A))
		hlen += 4;
	if (nh->pos + hlen > data_end) {
		*err = XDPREC_CNT_TRUNC_TUNNEL;
		return -1;
	}
	cur_skip(nh, hlen);

	switch (proto) {
	case XDPREC_ETH_P_TEB:
		return NEXT_ETH;
	case ETH_P_IP:
		return NEXT_IPV4;
	case ETH_P_IPV6:
		return NEXT_IPV6;
	case XDPREC_ETH_P_ERSPAN2:
		cnt_inc(XDPREC_CNT_TUNNEL_ERSPAN);
		/* Type I has no sequence number and no ERSPAN header. */
		if (!(flags & XDPREC_GRE_S))
			return NEXT_ETH;
		return parse_erspan(nh, data_end, 0, err);
	case XDPREC_ETH_P_ERSPAN3:
		cnt_inc(XDPREC_CNT_TUNNEL_ERSPAN);
		return parse_erspan(nh, data_end, 1, err);
	case XDPREC_ETH_P_PPP:
		return parse_ppp(nh, data_end, err);
	default:
		return NEXT_NONE;
	}
}

static __always_inline int parse_vxlan(struct hdr_cursor *nh, void *data_end, __u32 *err)
{
	struct vxlan_hdr *vx = nh->pos;

	if ((void *)(vx + 1) > data_end) {
		*err = XDPREC_CNT_TRUNC_TUNNEL;
		return -1;
	}
	if (!(vx->flags & 0x08)) {
		*err = XDPREC_CNT_PARSE_ERROR;
		return -1;
	}
	cur_skip(nh, sizeof(*vx));
	return NEXT_ETH;
}

static __always_inline int parse_gtpu(struct hdr_cursor *nh, void *data_end, __u32 *err)
{
	struct gtpu_hdr *gh = nh->pos;
	__u8 *inner;

	if ((void *)(gh + 1) > data_end) {
		*err = XDPREC_CNT_TRUNC_TUNNEL;
		return -1;
	}
	if ((gh->flags & 0xf0) != 0x30) {
		*err = XDPREC_CNT_PARSE_ERROR;
		return -1;
	}
	if (gh->type != 255)
		return NEXT_NONE;
	cur_skip(nh, sizeof(*gh));

	if (gh->flags & 0x07) {
		struct gtpu_opt *opt = nh->pos;
		__u8 next_ext;

		if ((void *)(opt + 1) > data_end) {
			*err = XDPREC_CNT_TRUNC_TUNNEL;
			return -1;
		}
		next_ext = opt->next_ext;
		cur_skip(nh, sizeof(*opt));
		if (gh->flags & 0x04) {
#pragma unroll
			for (int i = 0; i < XDPREC_GTPU_EXT_MAX; i++) {
				__u8 *ext = nh->pos;
				__u8 *end;
				__u32 len;

				if (next_ext == 0)
					break;
				if ((void *)(ext + 1) > data_end) {
					*err = XDPREC_CNT_TRUNC_TUNNEL;
					return -1;
				}
				len = (__u32)ext[0] * 4;
				if (len == 0) {
					*err = XDPREC_CNT_PARSE_ERROR;
					return -1;
				}
				end = ext + len;
				if ((void *)end > data_end) {
					*err = XDPREC_CNT_TRUNC_TUNNEL;
					return -1;
				}
				next_ext = end[-1];
				cur_skip(nh, len);
			}
			if (next_ext != 0) {
				*err = XDPREC_CNT_GTPU_EXT_LIMIT;
				return -1;
			}
		}
	}

	inner = nh->pos;
	if ((void *)(inner + 1) > data_end) {
		*err = XDPREC_CNT_TRUNC_TUNNEL;
		return -1;
	}
	switch (inner[0] >> 4) {
	case 4:
		return NEXT_IPV4;
	case 6:
		return NEXT_IPV6;
	default:
		return NEXT_NONE;
	}
}

/* ---- payload rules ---- */

/*
 * True when the first n bytes of a payload of declared length plen can be read: inside the
 * declared length and inside the frame (a truncated capture holds less than it declares).
 */
static __always_inline int have(__u8 *p, __u32 n, __u32 plen, void *data_end)
{
	return n <= plen && (void *)(p + n) <= data_end;
}

/* The payload starts with tok (a string literal: the loop unrolls into constant compares). */
static __always_inline int token_is(__u8 *p, __u32 plen, void *data_end, const char *tok,
				    __u32 len)
{
	if (!have(p, len, plen, data_end))
		return 0;
	for (__u32 i = 0; i < len; i++) {
		if (p[i] != (__u8)tok[i])
			return 0;
	}
	return 1;
}

#define TOKEN(s) token_is(p, plen, data_end, s, sizeof(s) - 1)

/* The payload starts with a SIP request line's method and a space, or "SIP/2.0 ". */
static __always_inline int sip_first_line(__u8 *p, __u32 plen, void *data_end)
{
	/* The shortest tokens ("ACK ", "BYE ") are 4 bytes. */
	if (!have(p, 4, plen, data_end))
		return 0;
	switch (p[0]) {
	case 'A':
		return TOKEN("ACK ");
	case 'B':
		return TOKEN("BYE ");
	case 'C':
		return TOKEN("CANCEL ");
	case 'I':
		return TOKEN("INVITE ") || TOKEN("INFO ");
	case 'M':
		return TOKEN("MESSAGE ");
	case 'N':
		return TOKEN("NOTIFY ");
	case 'O':
		return TOKEN("OPTIONS ");
	case 'P':
		return TOKEN("PRACK ") || TOKEN("PUBLISH ");
	case 'R':
		return TOKEN("REGISTER ") || TOKEN("REFER ");
	case 'S':
		return TOKEN("SUBSCRIBE ") || TOKEN("SIP/2.0 ");
	case 'U':
		return TOKEN("UPDATE ");
	default:
		return 0;
	}
}

/* ---- global functions ----
 *
 * Non-static __noinline functions are "global": the verifier checks each one once, on its
 * own, with its arguments as unknown scalars, instead of once per path that reaches it.
 * That keeps the many header combinations (VLANs x IPv6 extensions x tunnels x inner
 * packet) from multiplying. They take the context and offsets, never packet pointers.
 * Offsets are __u64: the upper half of a 32-bit argument is unknown to the verifier, and an
 * unbounded offset cannot be checked against data_end.
 */

/* A linear XDP buffer is at most a page: no header starts beyond this. */
#define XDPREC_OFF_MAX 4096

/* Results of xdprec_layer / xdprec_l4: a class counter, or "tunnel: go on at (next, off)". */
#define RES_TUNNEL 0xff
#define RES_TUNNEL_TO(next, off) (RES_TUNNEL | ((next) << 8) | ((off) << 16))
#define RES_KIND(r) ((r) & 0xff)
#define RES_NEXT(r) (((r) >> 8) & 0xff)
#define RES_OFF(r) ((__u32)(r) >> 16)

static __always_inline struct xdprec_config *config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xdprec_config, &zero);
}

__noinline int xdprec_is_sip_port(__u32 port)
{
	struct xdprec_config *cfg = config();
	__u32 n;

	if (!cfg)
		return 0;
	n = cfg->sip_port_count;
	for (__u32 i = 0; i < XDPREC_SIP_PORTS_MAX; i++) {
		if (i >= n)
			break;
		if (cfg->sip_ports[i] == port)
			return 1;
	}
	return 0;
}

/* Rule 4's first-line test on the payload at off, of declared length plen. */
__noinline int xdprec_sip_line(struct xdp_md *ctx, __u64 off, __u32 plen)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (off > XDPREC_OFF_MAX)
		return 0;
	return sip_first_line(data + off, plen, data_end);
}

static __always_inline int in_rtp_range(const struct xdprec_config *cfg, __u16 port)
{
	return port >= cfg->rtp_port_lo && port <= cfg->rtp_port_hi;
}

static __always_inline int is_rtcp(__u8 *p, __u32 plen, void *data_end)
{
	if (!have(p, 8, plen, data_end))
		return 0;
	return (p[0] >> 6) == 2 && p[1] >= 200 && p[1] <= 204;
}

static __always_inline int is_rtp(__u8 *p, __u32 plen, void *data_end)
{
	__u8 pt;

	if (!have(p, 12, plen, data_end))
		return 0;
	if ((p[0] >> 6) != 2)
		return 0;
	/* 72..76 are RTCP packet types 200..204 with the marker bit: never RTP (RFC 5761). */
	pt = p[1] & 0x7f;
	if (pt >= 72 && pt <= 76)
		return 0;
	return have(p, 12 + 4 * (__u32)(p[0] & 0x0f), plen, data_end);
}

/* Rule 4 on a UDP payload at off. ports: source << 16 | destination (host order). */
__noinline int xdprec_udp(struct xdp_md *ctx, __u64 off, __u32 plen, __u32 ports)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xdprec_config *cfg = config();
	__u16 sport = ports >> 16, dport = ports & 0xffff;
	__u8 *payload;

	if (!cfg || off > XDPREC_OFF_MAX)
		return XDPREC_CNT_CLASS_OTHER;
	if (xdprec_is_sip_port(sport) || xdprec_is_sip_port(dport))
		return XDPREC_CNT_CLASS_SIP_UDP;
	if (cfg->sip_by_content && xdprec_sip_line(ctx, off, plen)) {
		cnt_inc(XDPREC_CNT_SIP_BY_CONTENT);
		return XDPREC_CNT_CLASS_SIP_UDP;
	}
	if (in_rtp_range(cfg, sport) && in_rtp_range(cfg, dport)) {
		payload = data + off;
		if (is_rtcp(payload, plen, data_end))
			return XDPREC_CNT_CLASS_RTCP;
		if (is_rtp(payload, plen, data_end))
			return XDPREC_CNT_CLASS_RTP;
	}
	return XDPREC_CNT_CLASS_OTHER;
}

/* Address as 4 words in network order, IPv4 mapped into ::ffff:0:0/96. */
static __always_inline void key_addr4(__u32 *dst, __be32 src4)
{
	dst[0] = 0;
	dst[1] = 0;
	dst[2] = bpf_htonl(0x0000ffff);
	dst[3] = src4;
}

static __always_inline void key_addr6(__u32 *dst, const __u32 *src6)
{
	dst[0] = src6[0];
	dst[1] = src6[1];
	dst[2] = src6[2];
	dst[3] = src6[3];
}

/* (a, pa) > (b, pb): addresses as big-endian byte strings, then ports in host order. */
static __always_inline int endpoint_greater(const __u32 *a, __be16 pa, const __u32 *b, __be16 pb)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 x = bpf_ntohl(a[i]), y = bpf_ntohl(b[i]);

		if (x != y)
			return x > y;
	}
	return bpf_ntohs(pa) > bpf_ntohs(pb);
}

/* Rule 5 on the TCP segment at l4_off, its IP header at l3_off. */
__noinline int xdprec_tcp(struct xdp_md *ctx, __u64 l3_off, __u64 l4_off, __u32 l4_len,
			  __u32 family)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xdprec_config *cfg = config();
	struct xdprec_flow_key key;
	__u32 src[4], dst[4];
	__be16 sport, dport;
	struct tcphdr *th;
	__u64 now, *seen;
	__u32 hlen;

	if (!cfg || l3_off > XDPREC_OFF_MAX || l4_off > XDPREC_OFF_MAX)
		return XDPREC_CNT_CLASS_OTHER;
	th = data + l4_off;
	if ((void *)(th + 1) > data_end) {
		cnt_inc(XDPREC_CNT_TRUNC_TCP);
		return XDPREC_CNT_CLASS_OTHER;
	}
	hlen = th->doff * 4;
	if (hlen < sizeof(*th) || hlen > l4_len) {
		cnt_inc(XDPREC_CNT_PARSE_ERROR);
		return XDPREC_CNT_CLASS_OTHER;
	}
	if ((void *)th + hlen > data_end) {
		cnt_inc(XDPREC_CNT_TRUNC_TCP);
		return XDPREC_CNT_CLASS_OTHER;
	}
	sport = th->source;
	dport = th->dest;

	if (xdprec_is_sip_port(bpf_ntohs(sport)) || xdprec_is_sip_port(bpf_ntohs(dport)))
		return XDPREC_CNT_CLASS_SIP_TCP;

	if (family == 4) {
		struct iphdr *iph = data + l3_off;

		if ((void *)(iph + 1) > data_end)
			return XDPREC_CNT_CLASS_OTHER;
		key_addr4(src, iph->saddr);
		key_addr4(dst, iph->daddr);
	} else {
		struct ipv6hdr *ip6h = data + l3_off;

		if ((void *)(ip6h + 1) > data_end)
			return XDPREC_CNT_CLASS_OTHER;
		key_addr6(src, ip6h->saddr.in6_u.u6_addr32);
		key_addr6(dst, ip6h->daddr.in6_u.u6_addr32);
	}
	__builtin_memset(&key, 0, sizeof(key));
	if (endpoint_greater(src, sport, dst, dport)) {
		__builtin_memcpy(key.addr_a, dst, 16);
		__builtin_memcpy(key.addr_b, src, 16);
		key.port_a = dport;
		key.port_b = sport;
	} else {
		__builtin_memcpy(key.addr_a, src, 16);
		__builtin_memcpy(key.addr_b, dst, 16);
		key.port_a = sport;
		key.port_b = dport;
	}

	now = bpf_ktime_get_ns();
	seen = bpf_map_lookup_elem(&xdprec_tcp_sip, &key);
	if (seen) {
		*seen = now;
		cnt_inc(XDPREC_CNT_TCP_FLOW_HIT);
		return XDPREC_CNT_CLASS_SIP_TCP;
	}
	if (cfg->sip_by_content && xdprec_sip_line(ctx, l4_off + hlen, l4_len - hlen)) {
		/* A full LRU evicts its oldest flow; the kernel does not tell us which. */
		bpf_map_update_elem(&xdprec_tcp_sip, &key, &now, BPF_ANY);
		cnt_inc(XDPREC_CNT_SIP_BY_CONTENT);
		return XDPREC_CNT_CLASS_SIP_TCP;
	}
	return XDPREC_CNT_CLASS_OTHER;
}

/*
 * Everything above IP at l4_off: UDP, TCP, and in the outer packet the tunnels, for which
 * it returns RES_TUNNEL_TO(what follows, where).
 * info: protocol | outer << 8.
 */
__noinline int xdprec_l4(struct xdp_md *ctx, __u64 l3_off, __u64 l4_off, __u32 l4_len,
			 __u32 info)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 proto = info & 0xff, outer = (info >> 8) & 1;
	struct hdr_cursor nh;
	__u32 err = 0;
	int next;

	if (l4_off > XDPREC_OFF_MAX)
		return XDPREC_CNT_CLASS_OTHER;
	nh.pos = data + l4_off;
	nh.off = l4_off;

	switch (proto) {
	case IPPROTO_UDP: {
		struct udphdr *uh = nh.pos;
		__u16 sport, dport;
		__u32 ulen;

		if ((void *)(uh + 1) > data_end) {
			err = XDPREC_CNT_TRUNC_UDP;
			goto error;
		}
		ulen = bpf_ntohs(uh->len);
		if (ulen < sizeof(*uh) || ulen > l4_len) {
			err = XDPREC_CNT_PARSE_ERROR;
			goto error;
		}
		sport = bpf_ntohs(uh->source);
		dport = bpf_ntohs(uh->dest);
		cur_skip(&nh, sizeof(*uh));
		if (outer && dport == XDPREC_VXLAN_PORT) {
			cnt_inc(XDPREC_CNT_TUNNEL_VXLAN);
			next = parse_vxlan(&nh, data_end, &err);
			break;
		}
		if (outer && dport == XDPREC_GTPU_PORT) {
			cnt_inc(XDPREC_CNT_TUNNEL_GTPU);
			next = parse_gtpu(&nh, data_end, &err);
			break;
		}
		return xdprec_udp(ctx, nh.off, ulen - sizeof(*uh), ((__u32)sport << 16) | dport);
	}
	case IPPROTO_TCP:
		return xdprec_tcp(ctx, l3_off, l4_off, l4_len, (info >> 16) & 0xff);
	case IPPROTO_GRE:
		if (!outer)
			return XDPREC_CNT_CLASS_OTHER;
		cnt_inc(XDPREC_CNT_TUNNEL_GRE);
		next = parse_gre(&nh, data_end, &err);
		break;
	case IPPROTO_IPIP:
		if (!outer)
			return XDPREC_CNT_CLASS_OTHER;
		cnt_inc(XDPREC_CNT_TUNNEL_IPIP);
		next = NEXT_IPV4;
		break;
	case IPPROTO_IPV6:
		if (!outer)
			return XDPREC_CNT_CLASS_OTHER;
		cnt_inc(XDPREC_CNT_TUNNEL_IPIP);
		next = NEXT_IPV6;
		break;
	default:
		return XDPREC_CNT_CLASS_OTHER;
	}
	/* Only tunnels get here. */
	if (next < 0)
		goto error;
	if (next == NEXT_NONE || nh.off > XDPREC_OFF_MAX)
		return XDPREC_CNT_CLASS_OTHER;
	return RES_TUNNEL_TO(next, nh.off);

error:
	cnt_inc(err);
	return XDPREC_CNT_CLASS_OTHER;
}

/*
 * One packet starting at off with header `next` (Ethernet or IP): layers 2 and 3 here, the
 * rest in xdprec_l4. outer: 1 for the frame itself, 0 for the packet inside a tunnel.
 */
__noinline int xdprec_layer(struct xdp_md *ctx, __u64 off, __u32 next, __u32 outer)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xdprec_config *cfg = config();
	struct l3_info l3 = {};
	struct hdr_cursor nh;
	__u32 err = 0, l3_off;
	int proto;

	if (!cfg || off > XDPREC_OFF_MAX)
		return XDPREC_CNT_CLASS_OTHER;
	nh.pos = data + off;
	nh.off = off;

	if (next == NEXT_ETH) {
		__u32 vlans = 0;

		proto = parse_ethhdr(&nh, data_end, &vlans, &err);
		if (proto < 0)
			goto error;
		if (outer && vlans)
			cnt_inc(XDPREC_CNT_VLAN);
		if (proto == bpf_htons(ETH_P_IP))
			next = NEXT_IPV4;
		else if (proto == bpf_htons(ETH_P_IPV6))
			next = NEXT_IPV6;
		else
			return XDPREC_CNT_CLASS_OTHER;
	}

	l3_off = nh.off;
	if (next == NEXT_IPV4) {
		if (outer)
			cnt_inc(XDPREC_CNT_IPV4);
		proto = parse_iphdr(&nh, data_end, &l3, &err);
	} else if (next == NEXT_IPV6) {
		if (outer)
			cnt_inc(XDPREC_CNT_IPV6);
		proto = parse_ip6hdr(&nh, data_end, &l3, &err);
	} else {
		return XDPREC_CNT_CLASS_OTHER;
	}
	if (proto < 0)
		goto error;

	if (l3.is_frag) {
		if (proto == IPPROTO_UDP && cfg->capture_frags)
			return XDPREC_CNT_CLASS_FRAG;
		return XDPREC_CNT_CLASS_OTHER;
	}
	return xdprec_l4(ctx, l3_off, nh.off, l3.l4_len,
			 (__u32)proto | (outer ? 1u << 8 : 0) | ((__u32)l3.family << 16));

error:
	cnt_inc(err);
	return XDPREC_CNT_CLASS_OTHER;
}

/* ---- the program ---- */

SEC("xdp")
int xdprec_probe(struct xdp_md *ctx)
{
	struct xdprec_config *cfg;
	__u32 cls, queue;
	int res;

	cnt_inc(XDPREC_CNT_RX_PACKETS);
	cnt_add(XDPREC_CNT_RX_BYTES, bpf_xdp_get_buff_len(ctx));

	cfg = config();
	if (!cfg || cfg->abi_version != XDPREC_ABI_VERSION) {
		/* A loader from another build: classify nothing rather than guess. */
		cnt_inc(XDPREC_CNT_ABI_MISMATCH);
		cnt_inc(XDPREC_CNT_PASSED);
		return XDP_PASS;
	}

	res = xdprec_layer(ctx, 0, NEXT_ETH, 1);
	if (RES_KIND(res) == RES_TUNNEL)
		res = xdprec_layer(ctx, RES_OFF(res), RES_NEXT(res), 0);
	cls = RES_KIND(res);
	/* The inner layer never returns RES_TUNNEL; anything unexpected is OTHER. */
	if (cls < XDPREC_CNT_CLASS_SIP_UDP || cls > XDPREC_CNT_CLASS_OTHER)
		cls = XDPREC_CNT_CLASS_OTHER;
	cnt_inc(cls);

	if (cls == XDPREC_CNT_CLASS_OTHER) {
		if (cfg->drop_other) {
			cnt_inc(XDPREC_CNT_DROPPED);
			return XDP_DROP;
		}
		cnt_inc(XDPREC_CNT_PASSED);
		return XDP_PASS;
	}

	queue = ctx->rx_queue_index;
	/* bpf_redirect_map alone cannot tell "no socket" from other failures. */
	if (!bpf_map_lookup_elem(&xdprec_xsks, &queue)) {
		cnt_inc(XDPREC_CNT_NO_SOCKET);
		cnt_inc(XDPREC_CNT_PASSED);
		return XDP_PASS;
	}
	if (bpf_redirect_map(&xdprec_xsks, queue, XDP_PASS) == XDP_REDIRECT) {
		cnt_inc(XDPREC_CNT_REDIRECTED);
		return XDP_REDIRECT;
	}
	cnt_inc(XDPREC_CNT_REDIRECT_FAILED);
	cnt_inc(XDPREC_CNT_PASSED);
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
