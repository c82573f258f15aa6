/*
 * The disk record writer (ring 3); see disk.h, and guest/README.md for the
 * record layout that scripts/check-disk-records.py reads.
 *
 * One request is in flight at a time, so the disk always holds an unbroken
 * run of records (a later record is never written before an earlier one
 * completed), whatever moment the VM is stopped at. Order of work: the
 * read-back owed by the last write, then a due FLUSH, then the next write.
 */
#include "disk.h"
#include "bootinfo.h"
#include "console.h"
#include "lib.h"
#include "record.h"
#include "user.h"
#include "wset.h"

#define FLUSH_EVERY     16                      /* records */
#define FLUSH_MS        1000
#define STUCK_MS        10000
#define LOG_PER_SEC     5

enum op { OP_NONE, OP_WRITE, OP_READ, OP_FLUSH };

struct dwriter_stats dwriter_stats;

static struct {
	struct vblk *b;
	u64 nonce, nslots, rate_kib;
	u64 t0;                 /* schedule origin (first tick) */
	u64 due_done;           /* writes issued or dropped since t0 */
	u64 next_seq;           /* seq of the next write */
	u64 last_seq;           /* last write completed (any status) */
	u64 unflushed;          /* records written since the last FLUSH */
	u64 flush_t;            /* TSC of the last FLUSH */
	bool verify_owed;
	enum op op;             /* request in flight */
	u64 op_seq;             /* the record it writes or reads */
	u64 op_t;               /* when it was submitted */
	bool stuck_warned;
	u64 rng;
	u64 log_window;
	u32 log_lines;
	struct vblk_req req;
	u64 wbuf[RECORD_WORDS] __attribute__((aligned(4096)));
	u64 rbuf[RECORD_WORDS] __attribute__((aligned(4096)));
	u64 want[RECORD_WORDS];
} D;

static u64 slot_sector(u64 seq)
{
	return record_slot(seq, D.nslots) * (RECORD_BYTES / 512);
}

int dwriter_init(struct vblk *b, u64 rate_kib)
{
	D.b = b;
	D.nslots = b->sectors * 512 / RECORD_BYTES;
	if (!D.nslots) {
		console_printf("ferry-agent warning: disk %s is too small for "
			       "the disk writer\n", b->name);
		D.b = NULL;
		return -1;
	}
	D.rate_kib = rate_kib;
	D.nonce = mix64(now_tsc() ^ boot.start_tsc << 20) | 1;
	D.rng = D.nonce;
	D.next_seq = 1;
	console_printf("ferry-agent disk-writer disk=%s nonce=%lx slots=%lu "
		       "rate_kib=%lu\n", b->name, D.nonce, D.nslots, rate_kib);
	return 0;
}

bool dwriter_active(void)
{
	return D.b != NULL;
}

/* Records due by now at rate_kib / 4 a second; a backlog over 1 s (the
 * VM was stopped, the disk was slow) is dropped, not caught up. */
static u64 writes_due(u64 now)
{
	u64 per_s = D.rate_kib / 4 ? D.rate_kib / 4 : 1;
	u64 target = muldiv(now - D.t0, D.rate_kib, 4 * boot.tsc_khz * 1000);

	if (target - D.due_done > per_s)
		D.due_done = target - per_s;
	return target - D.due_done;
}

static void submit(enum op op, u64 seq, u64 now)
{
	u32 type = op == OP_WRITE ? VIRTIO_BLK_T_OUT :
		   op == OP_READ ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_FLUSH;
	void *buf = op == OP_WRITE ? (void *)D.wbuf : (void *)D.rbuf;

	if (op == OP_WRITE)
		record_build(D.wbuf, D.nonce, seq, D.nslots);
	if (vblk_submit(D.b, &D.req, type, op == OP_FLUSH ? 0 : slot_sector(seq),
			buf, op == OP_FLUSH ? 0 : RECORD_BYTES))
		return;         /* cannot happen: the queue holds only this one */
	vblk_kick(D.b);
	D.op = op;
	D.op_seq = seq;
	D.op_t = now;
}

/* The next request, or false if nothing is due. */
static bool issue_next(u64 now)
{
	if (D.verify_owed) {
		u64 lo = D.last_seq > D.nslots ? D.last_seq - D.nslots + 1 : 1;

		D.rng ^= D.rng << 13;
		D.rng ^= D.rng >> 7;
		D.rng ^= D.rng << 17;
		D.verify_owed = false;
		submit(OP_READ, lo + D.rng % (D.last_seq - lo + 1), now);
		return true;
	}
	if (D.b->flush && D.unflushed &&
	    (D.unflushed >= FLUSH_EVERY || now - D.flush_t >= FLUSH_MS * boot.tsc_khz)) {
		submit(OP_FLUSH, 0, now);
		return true;
	}
	if (writes_due(now)) {
		D.due_done++;
		submit(OP_WRITE, D.next_seq++, now);
		return true;
	}
	return false;
}

static void corrupt(u64 seq)
{
	u64 now = now_tsc();

	dwriter_stats.corrupt++;
	if (now - D.log_window > boot.tsc_khz * 1000) {
		D.log_window = now;
		D.log_lines = 0;
	}
	if (D.log_lines++ < LOG_PER_SEC)
		console_printf("ferry-agent DISK-CORRUPT slot=%lu want_seq=%lu\n",
			       record_slot(seq, D.nslots), seq);
}

static void failed(const char *what, u8 status)
{
	dwriter_stats.corrupt++;
	console_printf("ferry-agent warning: disk %s %s failed status=%u\n",
		       D.b->name, what, status);
}

static void complete(u64 now)
{
	u8 st = D.req.status;
	enum op op = D.op;

	D.op = OP_NONE;
	D.stuck_warned = false;
	if (op == OP_FLUSH) {
		D.unflushed = 0;
		D.flush_t = now;
		if (st != VIRTIO_BLK_S_OK)
			failed("flush", st);
		return;
	}
	if (st != VIRTIO_BLK_S_OK) {
		failed(op == OP_WRITE ? "write" : "read", st);
	} else if (op == OP_READ) {
		record_build(D.want, D.nonce, D.op_seq, D.nslots);
		if (memcmp(D.rbuf, D.want, RECORD_BYTES))
			corrupt(D.op_seq);
	} else {
		dwriter_stats.written++;
	}
	if (op == OP_WRITE) {
		D.last_seq = D.op_seq;
		D.unflushed++;
		D.verify_owed = true;
	}
}

u64 dwriter_wake(u64 now)
{
	if (!D.b || D.b->broken || D.op == OP_NONE)
		return ~0ULL;
	return now + DWRITER_POLL_US * boot.tsc_khz / 1000;
}

void dwriter_tick(u64 now)
{
	u64 end = now + DWRITER_BUDGET_US * boot.tsc_khz / 1000;

	if (!D.b || D.b->broken)
		return;
	if (!D.t0)
		D.t0 = D.flush_t = now;
	for (;;) {
		if (D.op != OP_NONE) {
			if (vblk_poll(D.b) != &D.req) {
				now = now_tsc();
				if (now - D.op_t > STUCK_MS * boot.tsc_khz &&
				    !D.stuck_warned) {
					D.stuck_warned = true;
					console_printf("ferry-agent warning: disk %s: "
						       "request pending for %u s\n",
						       D.b->name, STUCK_MS / 1000);
				}
				if (now >= end)
					return;
				cpu_relax();
				continue;
			}
			complete(now_tsc());
		}
		if (!issue_next(now_tsc()))
			return;
	}
}
