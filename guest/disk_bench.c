/*
 * ferry.disk-bench (ring 3, CPU 0); see disk.h. Each phase keeps `depth`
 * requests in flight for its whole time by polling the used ring (no
 * sleeping): every completion is resubmitted at once, and one notification
 * covers all the requests resubmitted in a pass.
 */
#include "disk.h"
#include "bootinfo.h"
#include "console.h"
#include "syscall.h"
#include "user.h"

#define BENCH_MAX_DEPTH 32
#define DRAIN_MS        10000

struct phase {
	u32 type;               /* VIRTIO_BLK_T_IN / _OUT */
	u32 size;               /* bytes per request */
	u32 depth;
	bool random;
};

struct run {
	struct vblk *b;
	const struct phase *p;
	u64 nblocks;            /* request-sized blocks on the disk */
	u64 next;               /* sequential: the next block */
	u64 rng;
	u64 errors;
	struct vblk_req req[BENCH_MAX_DEPTH];
};

static u64 next_block(struct run *r)
{
	if (!r->p->random) {
		u64 blk = r->next;

		r->next = (r->next + 1) % r->nblocks;
		return blk;
	}
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng % r->nblocks;
}

static void issue(struct run *r, u32 i)
{
	u64 blk = next_block(r);

	vblk_submit(r->b, &r->req[i], r->p->type, blk * (r->p->size / 512),
		    disk_io_buf + (u64)i * r->p->size, r->p->size);
}

static void reap(struct run *r, struct vblk_req *q)
{
	if (q->status != VIRTIO_BLK_S_OK && r->errors++ < 3)
		console_printf("ferry-agent warning: disk %s bench request "
			       "failed status=%u\n", r->b->name, q->status);
}

/* Requests completed within `seconds`, and the TSC time they took. */
static u64 run_phase(struct vblk *b, const struct phase *p, u64 seconds,
		     u64 *tsc_out)
{
	struct run r = { .b = b, .p = p, .nblocks = b->sectors * 512 / p->size,
			 .rng = 0x9e3779b97f4a7c15ULL ^ now_tsc() };
	u32 depth = p->depth, inflight;
	u64 t0, end, done = 0;
	struct vblk_req *q;

	if (depth > vblk_max_inflight(b))
		depth = vblk_max_inflight(b);
	if (!r.nblocks || !depth)
		return 0;
	for (u32 i = 0; i < depth; i++)
		issue(&r, i);
	inflight = depth;
	t0 = now_tsc();
	end = t0 + seconds * 1000 * boot.tsc_khz;
	vblk_kick(b);
	while (now_tsc() < end) {
		bool again = false;

		while ((q = vblk_poll(b))) {
			reap(&r, q);
			done++;
			issue(&r, (u32)(q - r.req));
			again = true;
		}
		if (again)
			vblk_kick(b);
	}
	*tsc_out = now_tsc() - t0;
	/* Drain what is still in flight, so the next phase starts empty. */
	for (end = now_tsc() + DRAIN_MS * boot.tsc_khz; inflight && now_tsc() < end;)
		if ((q = vblk_poll(b)))
			inflight--;
	if (inflight) {
		console_printf("ferry-agent warning: disk %s: bench requests "
			       "did not complete\n", b->name);
		b->broken = true;
		virtio_abandon(&b->vdev);
	}
	return done;
}

NORETURN void disk_bench(struct vblk *b, u64 seconds)
{
	static const struct phase phases[4] = {
		{ VIRTIO_BLK_T_IN, 4096, 32, true },
		{ VIRTIO_BLK_T_OUT, 4096, 32, true },
		{ VIRTIO_BLK_T_IN, 128 * 1024, 8, false },
		{ VIRTIO_BLK_T_OUT, 128 * 1024, 8, false },
	};
	u64 result[4] = { 0 };

	_Static_assert(32 * 4096 <= DISK_IO_BYTES && 8 * 128 * 1024 <= DISK_IO_BYTES,
		       "bench buffers");
	console_printf("ferry-agent diskbench disk=%s seconds=%lu\n", b->name,
		       seconds);
	for (u32 i = 0; i < 4 && !b->broken; i++) {
		u64 tsc = 0, n, us;

		if (phases[i].type == VIRTIO_BLK_T_OUT && b->ro)
			continue;
		n = run_phase(b, &phases[i], seconds, &tsc);
		us = tsc * 1000 / boot.tsc_khz;
		if (!us)
			continue;
		/* IOPS, or MB/s (10^6 bytes a second = bytes a microsecond) */
		result[i] = phases[i].size == 4096 ? n * 1000000 / us
						   : n * phases[i].size / us;
	}
	console_printf("ferry-agent diskbench randread_iops=%lu randwrite_iops=%lu "
		       "seqread_mbs=%lu seqwrite_mbs=%lu\n", result[0], result[1],
		       result[2], result[3]);
	disk_report();
	sys_poweroff();
}
