/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdprec_replay_tx: sends every frame back out of the interface it arrived on.
 *
 * The replay tool runs it with BPF_PROG_RUN and BPF_F_TEST_XDP_LIVE_FRAMES: the kernel then
 * transmits each test frame for real, which is the fastest sender this machine has.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdprec_replay_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
