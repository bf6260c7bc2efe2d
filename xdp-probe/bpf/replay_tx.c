/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Senders for `xdprec replay`, run with BPF_PROG_RUN and BPF_F_TEST_XDP_LIVE_FRAMES: the kernel
 * then transmits each test frame for real (XDP_TX becomes a redirect out of ingress_ifindex),
 * which is the fastest sender this machine has.
 *
 * xdprec_replay_tx: sends the test frame as it is (a run with repeat K sends K copies of ONE
 * frame).
 *
 * xdprec_replay_ring: sends DISTINCT frames. User space preloads up to REPLAY_RING_FRAMES_MAX
 * frame templates (at most REPLAY_RING_FRAME_BYTES bytes each) into xdprec_replay_frames and
 * sets state[1] = n. Every run takes template i = state[0]++ % n, cuts the test frame (which
 * must be REPLAY_RING_FRAME_BYTES long) to the template's length and overwrites it with the
 * template, then returns XDP_TX: one BPF_PROG_RUN with repeat K sends K different frames.
 * Live-frames pages keep what the program wrote, and the kernel restores only the frame bounds
 * between runs, so every byte that goes out is written by this run.
 *
 * Cycles: in pass c = counter / n over the templates, an RTP template (rtp_off != 0) gets
 * sequence number seq0 + c * seq_step and timestamp ts0 + c * ts_step (user space sets the
 * steps to what the stream advanced over the n templates), so streams go on instead of
 * repeating; frames that are not RTP (SIP, RTCP) repeat as they are every n packets. The RTP
 * templates carry UDP checksum 0 (IPv4), so patching them keeps them valid.
 *
 * Pacing: with state[2] = interval_ps != 0 the program waits (spinning on bpf_ktime_get_ns in
 * bpf_loop) until packet j of the run is due at t0 + j * interval_ps / 1000, t0 being the
 * time of the run's first packet (user space zeroes state[3] before each run; state[4] keeps
 * the counter at t0). The kernel transmits at the end of each inner batch (batch_size frames
 * of the live-frames run), so the stream is even at the scale of one batch. Without it a run
 * goes out as fast as the CPU allows, a burst of repeat frames.
 *
 * One sender at a time: the counter is a plain read-modify-write (a run stays on one CPU).
 *
 * Template layout (native endian, 272 bytes; tools/replay/src/sender.rs writes it):
 *   u16 len, u16 rtp_off (offset of the RTP header in the frame; 0 = not RTP), u16 seq0,
 *   u16 seq_step, u32 ts0, u32 ts_step, u8 data[256].
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define REPLAY_RING_FRAME_BYTES 256
#define REPLAY_RING_FRAMES_MAX 65536

struct replay_frame {
	__u16 len;
	__u16 rtp_off;
	__u16 seq0;
	__u16 seq_step;
	__u32 ts0;
	__u32 ts_step;
	__u8 data[REPLAY_RING_FRAME_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, REPLAY_RING_FRAMES_MAX);
	__type(key, __u32);
	__type(value, struct replay_frame);
} xdprec_replay_frames SEC(".maps");

/* [0]: frames sent so far (the next one to send), [1]: templates loaded (n),
 * [2]: pacing interval in ps (0: none), [3]: t0 in ns of this run (0: not yet), [4]: the
 * counter at t0. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[5]);
} xdprec_replay_state SEC(".maps");

/* Spin waits are bounded: 1<<22 clock reads (about 0.1 s). */
#define PACE_SPINS_MAX (1 << 22)

static long spin_until(__u32 idx, void *arg)
{
	return bpf_ktime_get_ns() >= *(__u64 *)arg ? 1 : 0;
}

SEC("xdp")
int xdprec_replay_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp")
int xdprec_replay_ring(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *st = bpf_map_lookup_elem(&xdprec_replay_state, &zero);
	if (!st)
		return XDP_ABORTED;
	__u64 n = st[1];
	if (n == 0 || n > REPLAY_RING_FRAMES_MAX)
		return XDP_DROP;
	__u64 ctr = st[0];
	st[0] = ctr + 1;
	__u64 ivl = st[2];
	if (ivl) {
		__u64 now = bpf_ktime_get_ns();
		if (st[3] == 0) {
			st[3] = now;
			st[4] = ctr;
		}
		__u64 due = st[3] + (ctr - st[4]) * ivl / 1000;
		if (now < due)
			bpf_loop(PACE_SPINS_MAX, spin_until, &due, 0);
	}
	__u32 i = (__u32)(ctr % n);
	__u32 cycle = (__u32)(ctr / n);
	struct replay_frame *f = bpf_map_lookup_elem(&xdprec_replay_frames, &i);
	if (!f)
		return XDP_ABORTED;
	__u32 len = f->len;
	if (len < 14 || len > REPLAY_RING_FRAME_BYTES)
		return XDP_DROP;
	int have = (int)(ctx->data_end - ctx->data);
	if (have != (int)len && bpf_xdp_adjust_tail(ctx, (int)len - have))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, f->data, len))
		return XDP_ABORTED;
	__u32 off = f->rtp_off;
	if (cycle && off && off + 12 <= len) {
		__u16 seq = f->seq0 + (__u16)(cycle * f->seq_step);
		__u32 ts = f->ts0 + cycle * f->ts_step;
		__u8 b[6] = {
			seq >> 8, seq & 0xff, ts >> 24, (ts >> 16) & 0xff, (ts >> 8) & 0xff, ts & 0xff,
		};
		if (bpf_xdp_store_bytes(ctx, off + 2, b, sizeof(b)))
			return XDP_ABORTED;
	}
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
