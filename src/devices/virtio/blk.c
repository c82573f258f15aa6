#include "devices/virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "devices/virtio/virtio.h"

#define SECTOR              ((uint64_t)VIRTIO_BLK_SECTOR_SIZE)
#define QUEUE_SIZE          256
#define SEG_MAX             (QUEUE_SIZE - 2)
#define CONFIG_SIZE         60  /* struct virtio_blk_config through unused1 */
#define MAX_INFLIGHT        VIRTIO_BLK_MAX_INFLIGHT
#define MERGE_MAX           (512u << 10)  /* bytes of one merged transfer */
#define BOUNCE_MAX          (4ull << 20)
#define DIRECT_ALIGN        512
#define DISCARD_MAX_SECTORS 0x3fffffu   /* 2 GiB per segment */

static struct virtio_blk *blk_of(struct virtio_pci *vp)
{
	return vp->dev;
}

/* ---- configuration space ---- */

static void config_fill(struct virtio_blk *b, uint8_t *c)
{
	memset(c, 0, CONFIG_SIZE);
	put_le64(c + VIRTIO_BLK_CFG_CAPACITY, b->size / SECTOR);
	put_le32(c + VIRTIO_BLK_CFG_SEG_MAX, SEG_MAX);
	put_le32(c + VIRTIO_BLK_CFG_BLK_SIZE, SECTOR);
	put_le16(c + VIRTIO_BLK_CFG_NUM_QUEUES, 1);
	put_le32(c + VIRTIO_BLK_CFG_DISCARD_MAX, DISCARD_MAX_SECTORS);
	put_le32(c + VIRTIO_BLK_CFG_DISCARD_SEG, 1);
	put_le32(c + VIRTIO_BLK_CFG_DISCARD_ALN, 4096 / SECTOR);
	put_le32(c + VIRTIO_BLK_CFG_WZ_MAX, DISCARD_MAX_SECTORS);
	put_le32(c + VIRTIO_BLK_CFG_WZ_SEG, 1);
	c[VIRTIO_BLK_CFG_WZ_UNMAP] = b->discard;
}

static void blk_config_read(struct virtio_pci *vp, unsigned off, uint8_t *data, unsigned size)
{
	uint8_t c[CONFIG_SIZE];

	config_fill(blk_of(vp), c);
	memcpy(data, c + off, size);
}

static void blk_config_write(struct virtio_pci *vp, unsigned off, const uint8_t *data,
			     unsigned size)
{
	(void)vp, (void)off, (void)data, (void)size; /* nothing writable (no CONFIG_WCE) */
}

/* ---- requests ---- */

static bool aligned_iov(const struct iovec *iov, unsigned n, uint64_t off)
{
	if (off % DIRECT_ALIGN)
		return false;
	for (unsigned i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % DIRECT_ALIGN || iov[i].iov_len % DIRECT_ALIGN)
			return false;
	return true;
}

/* The whole of [off, off + len) or an error (short transfers retried). */
static int do_rw(struct virtio_blk *b, bool write, struct iovec *iov, unsigned n, uint64_t off,
		 uint64_t len)
{
	uint64_t done = 0;

	if (b->cfg.direct && !aligned_iov(iov, n, off)) {
		/* O_DIRECT wants aligned memory: go through the bounce buffer. */
		uint64_t at = 0;

		while (at < len) {
			uint64_t chunk = MIN(len - at, BOUNCE_MAX);
			ssize_t r;

			if (write)
				iov_to_buf(iov, n, at, b->bounce, chunk);
			r = write ? pwrite(b->fd, b->bounce, chunk, (off_t)(off + at))
				  : pread(b->fd, b->bounce, chunk, (off_t)(off + at));
			if (r != (ssize_t)chunk)
				return r < 0 ? -errno : -EIO;
			if (!write)
				buf_to_iov(iov, n, at, b->bounce, chunk);
			at += chunk;
		}
		return 0;
	}
	while (done < len) {
		struct iovec rest[VIRTQ_MAX_SEGS];
		unsigned rn;
		ssize_t r;

		iov_slice(iov, n, done, len - done, rest, &rn);
		r = write ? pwritev(b->fd, rest, (int)rn, (off_t)(off + done))
			  : preadv(b->fd, rest, (int)rn, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (uint64_t)r;
	}
	return 0;
}

static uint8_t do_discard(struct virtio_blk *b, struct iovec *iov, unsigned n, uint64_t len,
			  bool zeroes)
{
	uint8_t seg[VIRTIO_BLK_DWZ_SIZE];
	uint64_t sector, off, bytes;
	uint32_t num, flags;
	int mode;

	if (len != sizeof(seg) || iov_to_buf(iov, n, 0, seg, sizeof(seg)) != sizeof(seg))
		return VIRTIO_BLK_S_UNSUPP; /* one segment at a time (max_*_seg = 1) */
	sector = get_le64(seg + VIRTIO_BLK_DWZ_SECTOR);
	num = get_le32(seg + VIRTIO_BLK_DWZ_NUM_SECTORS);
	flags = get_le32(seg + VIRTIO_BLK_DWZ_FLAGS);
	if (num > DISCARD_MAX_SECTORS || (flags & ~(uint32_t)VIRTIO_BLK_DWZ_F_UNMAP) ||
	    (!zeroes && flags))
		return VIRTIO_BLK_S_UNSUPP;
	off = sector * SECTOR;
	bytes = (uint64_t)num * SECTOR;
	if (sector > b->size / SECTOR || !range_within(off, bytes, b->size))
		return VIRTIO_BLK_S_IOERR;
	if (!bytes)
		return VIRTIO_BLK_S_OK;
	mode = zeroes ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
		      : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	if (zeroes && (flags & VIRTIO_BLK_DWZ_F_UNMAP))
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	if (fallocate(b->fd, mode, (off_t)off, (off_t)bytes) == 0)
		return VIRTIO_BLK_S_OK;
	if (!zeroes)
		return VIRTIO_BLK_S_OK; /* discard is a hint: doing nothing is correct */
	return VIRTIO_BLK_S_IOERR;
}

/* One request between taking it and returning it. */
struct blk_req {
	uint32_t type;
	uint64_t off, dlen;     /* image offset, data bytes */
	struct iovec data[VIRTQ_MAX_SEGS];
	unsigned dn;
	uint8_t status;
	bool io;                /* needs a read, write or flush */
	bool bad;               /* malformed: no header or status byte */
	/* Requests for adjacent sectors go to the disk as one (as QEMU's
	 * virtio-blk merges them): the first one's data[] is extended with
	 * the others' buffers; own_dn is its own part, next the following
	 * request's slot (-1: the last), total the bytes of all of them. */
	unsigned own_dn;
	int next;
	uint64_t total;
};

/* Checks a request and does what needs no I/O. */
static void req_prepare(struct virtio_blk *b, struct virtq_elem *e, struct blk_req *r)
{
	struct iovec *out = e->iov, *in = e->iov + e->n_out;
	uint8_t hdr[VIRTIO_BLK_REQ_HDR_SIZE];
	uint64_t sector;

	r->io = r->bad = false;
	r->status = VIRTIO_BLK_S_OK;
	r->dlen = 0;
	r->dn = 0;
	/* Header (16 bytes, device-readable), data, status (last writable
	 * byte), in any framing (§5.2.6.2: no assumption on the layout). */
	if (e->out_len < sizeof(hdr) || e->in_len < 1 ||
	    iov_to_buf(out, e->n_out, 0, hdr, sizeof(hdr)) != sizeof(hdr)) {
		r->bad = true;
		return;
	}
	r->type = get_le32(hdr + VIRTIO_BLK_REQ_TYPE);
	sector = get_le64(hdr + VIRTIO_BLK_REQ_SECTOR);
	r->off = sector * SECTOR;
	if (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_GET_ID) {
		r->dlen = e->in_len - 1;
		iov_slice(in, e->n_in, 0, r->dlen, r->data, &r->dn);
	} else {
		r->dlen = e->out_len - sizeof(hdr);
		iov_slice(out, e->n_out, sizeof(hdr), r->dlen, r->data, &r->dn);
	}
	if (b->fd < 0 && (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_OUT ||
			  r->type == VIRTIO_BLK_T_FLUSH || r->type == VIRTIO_BLK_T_DISCARD ||
			  r->type == VIRTIO_BLK_T_WRITE_ZEROES)) {
		/* The image could not be opened here (after a migration): the
		 * guest sees its disk fail rather than hang. */
		r->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if ((r->type == VIRTIO_BLK_T_OUT && b->cfg.readonly) || r->dlen % SECTOR ||
		    sector > b->size / SECTOR ||
		    !range_within(r->off, r->dlen, b->size / SECTOR * SECTOR))
			r->status = VIRTIO_BLK_S_IOERR;
		else
			r->io = true;
		break;
	case VIRTIO_BLK_T_FLUSH:
		r->io = true;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES] = { 0 };

		memcpy(id, b->cfg.serial, strnlen(b->cfg.serial, sizeof(id)));
		r->dlen = buf_to_iov(r->data, r->dn, 0, id, MIN(r->dlen, sizeof(id)));
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		r->status = b->cfg.readonly || !b->discard
				    ? VIRTIO_BLK_S_UNSUPP
				    : do_discard(b, r->data, r->dn, r->dlen,
						 r->type == VIRTIO_BLK_T_WRITE_ZEROES);
		break;
	default:
		r->status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
}

/* The I/O of a request, here and now; from byte `done` on. */
static void req_do_sync(struct virtio_blk *b, struct blk_req *r, uint64_t done)
{
	if (r->type == VIRTIO_BLK_T_FLUSH) {
		if (fdatasync(b->fd))
			r->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	if (done < r->dlen) {
		struct iovec rest[VIRTQ_MAX_SEGS];
		unsigned rn;

		iov_slice(r->data, r->dn, done, r->dlen - done, rest, &rn);
		if (do_rw(b, r->type == VIRTIO_BLK_T_OUT, rest, rn, r->off + done, r->dlen - done))
			r->status = VIRTIO_BLK_S_IOERR;
	}
}

/* Writes the status byte; returns the bytes the device wrote into the
 * guest's buffers (data read, the ID, the status). */
static uint32_t req_finish(struct virtq_elem *e, struct blk_req *r)
{
	if (r->bad)
		return 0;
	buf_to_iov(e->iov + e->n_out, e->n_in, e->in_len - 1, &r->status, 1);
	if (r->status == VIRTIO_BLK_S_OK &&
	    (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_GET_ID))
		return (uint32_t)(r->dlen + 1);
	return 1;
}

/* Returns a request to the driver. Under vp->lock. */
static void complete_locked(struct virtio_blk *b, unsigned slot)
{
	struct virtq *q = &b->vp.vq[0];
	uint32_t len = req_finish(&b->elems[slot], &b->reqs[slot]);

	/* The status byte is the last writable byte, and a read that failed
	 * may have written data: all of it may have changed. */
	if (!b->reqs[slot].bad)
		virtq_dirty_in(q, &b->elems[slot], b->elems[slot].in_len);
	virtq_push(q, &b->elems[slot], len);
	b->free_slot[b->nfree++] = (uint16_t)slot;
}

/* Returns the requests in done[0..n); the driver is interrupted by
 * notify_driver() once the worker has nothing more to return. */
static void complete(struct virtio_blk *b, const uint16_t *done, unsigned n, bool broken)
{
	struct virtio_pci *vp = &b->vp;

	if (!n && !broken)
		return;
	pthread_mutex_lock(&vp->lock);
	for (unsigned i = 0; i < n; i++)
		complete_locked(b, done[i]);
	if (broken)
		virtio_pci_set_broken(vp, "a request without header or status byte");
	pthread_mutex_unlock(&vp->lock);
	b->returned += n;
}

/* One interrupt for everything returned since the last one (each costs
 * the guest an exit and its handler; QEMU coalesces the same way). */
static void notify_driver(struct virtio_blk *b)
{
	struct virtio_pci *vp = &b->vp;

	if (!b->returned)
		return;
	b->returned = 0;
	pthread_mutex_lock(&vp->lock);
	if (virtq_should_notify(&vp->vq[0]))
		virtio_pci_notify_queue(vp, 0);
	pthread_mutex_unlock(&vp->lock);
}

/* Returns what io_uring finished (all of it, waiting, when wait). Under
 * ring_lock. Returns the count. */
static unsigned reap(struct virtio_blk *b, bool wait)
{
	uint16_t done[MAX_INFLIGHT];
	unsigned n = 0;

	/* Entries a failed submit left in the queue would never complete. */
	if (b->inflight && io_uring_sq_ready(&b->ring))
		io_uring_submit(&b->ring);
	while (b->inflight) {
		struct io_uring_cqe *cqe;
		struct blk_req *r;
		unsigned slot;
		int ret = wait ? io_uring_wait_cqe(&b->ring, &cqe)
			       : io_uring_peek_cqe(&b->ring, &cqe);

		if (ret == -EINTR)
			continue;
		if (ret == -EAGAIN)
			break;
		if (ret < 0) {
			log_warn("--disk %s: io_uring: %s", b->path, strerror(-ret));
			break;
		}
		slot = (unsigned)io_uring_cqe_get_data64(cqe);
		r = &b->reqs[slot];
		if (r->type == VIRTIO_BLK_T_FLUSH) {
			if (cqe->res < 0)
				r->status = VIRTIO_BLK_S_IOERR;
			done[n++] = (uint16_t)slot;
		} else {
			/* Each request of a merged transfer gets what covered
			 * it; a short transfer is finished here. */
			uint64_t pos = 0, got = cqe->res < 0 ? 0 : (uint64_t)cqe->res;

			r->dn = r->own_dn;
			for (int s = (int)slot; s >= 0; s = b->reqs[s].next) {
				struct blk_req *m = &b->reqs[s];
				uint64_t cov = got > pos ? MIN(got - pos, m->dlen) : 0;

				if (cqe->res < 0)
					m->status = VIRTIO_BLK_S_IOERR;
				else if (cov < m->dlen)
					req_do_sync(b, m, cov);
				pos += m->dlen;
				done[n++] = (uint16_t)s;
			}
		}
		io_uring_cqe_seen(&b->ring, cqe);
		b->inflight--;
	}
	complete(b, done, n, false);
	return n;
}

/* Whether a request's I/O can go through io_uring (not: no io_uring, or
 * an O_DIRECT transfer that needs the bounce buffer). */
static bool can_async(const struct virtio_blk *b, const struct blk_req *r)
{
	return b->uring && (r->type == VIRTIO_BLK_T_FLUSH || !b->cfg.direct ||
			    aligned_iov(r->data, r->dn, r->off));
}

/* Whether request r can join the merged transfer that h leads. */
static bool can_merge(const struct blk_req *h, const struct blk_req *r)
{
	return (h->type == VIRTIO_BLK_T_IN || h->type == VIRTIO_BLK_T_OUT) && r->type == h->type &&
	       h->off + h->total == r->off && h->dn + r->dn <= VIRTQ_MAX_SEGS &&
	       h->total + r->dlen <= MERGE_MAX;
}

/* Starts a (merged) request's I/O through io_uring; false when the
 * submission queue is full. */
static bool start_async(struct virtio_blk *b, struct blk_req *r, unsigned slot)
{
	struct io_uring_sqe *sqe;

	sqe = io_uring_get_sqe(&b->ring);
	if (!sqe)
		return false;
	if (r->type == VIRTIO_BLK_T_FLUSH) {
		/* After everything submitted before it has completed. */
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_IO_DRAIN;
	} else if (r->type == VIRTIO_BLK_T_IN) {
		io_uring_prep_readv(sqe, b->fd, r->data, r->dn, r->off);
	} else {
		io_uring_prep_writev(sqe, b->fd, r->data, r->dn, r->off);
	}
	io_uring_sqe_set_data64(sqe, slot);
	b->inflight++;
	return true;
}

/* Submits the transfer that slot lead leads; when io_uring cannot take it,
 * does each of its requests here and adds them to done. Returns 1 when
 * submitted. */
static unsigned submit_group(struct virtio_blk *b, int lead, uint16_t *done, unsigned *nd)
{
	struct blk_req *h = &b->reqs[lead];

	if (start_async(b, h, (unsigned)lead))
		return 1;
	h->dn = h->own_dn;
	for (int s = lead; s >= 0; s = b->reqs[s].next) {
		req_do_sync(b, &b->reqs[s], 0);
		done[(*nd)++] = (uint16_t)s;
	}
	return 0;
}

/* Takes what the driver made available (as many as there are free slots)
 * and starts it; requests that need no I/O, or cannot go asynchronously,
 * are done and returned at once. Under ring_lock. Returns the count taken. */
static unsigned start_requests(struct virtio_blk *b)
{
	struct virtio_pci *vp = &b->vp;
	uint16_t got[MAX_INFLIGHT], done[MAX_INFLIGHT];
	unsigned ng = 0, nd = 0, queued = 0;
	int lead = -1, tail = -1;
	bool broken = false;

	pthread_mutex_lock(&vp->lock);
	while (virtio_pci_may_serve(vp) && b->nfree) {
		unsigned slot = b->free_slot[b->nfree - 1];
		int r = virtq_pop(&vp->vq[0], &b->elems[slot]);

		if (r < 0)
			virtio_pci_set_broken(vp, "the driver made a malformed request chain");
		if (r <= 0)
			break;
		b->nfree--;
		got[ng++] = (uint16_t)slot;
	}
	pthread_mutex_unlock(&vp->lock);
	for (unsigned i = 0; i < ng; i++) {
		struct blk_req *r = &b->reqs[got[i]];

		req_prepare(b, &b->elems[got[i]], r);
		broken |= r->bad;
		r->own_dn = r->dn;
		r->next = -1;
		r->total = r->dlen;
		if (!r->io || !can_async(b, r)) {
			if (r->io)
				req_do_sync(b, r, 0);
			done[nd++] = got[i];
			continue;
		}
		/* Adjacent to the transfer being built: join it. */
		if (lead >= 0 && can_merge(&b->reqs[lead], r)) {
			struct blk_req *h = &b->reqs[lead];

			memcpy(h->data + h->dn, r->data, r->dn * sizeof(r->data[0]));
			h->dn += r->dn;
			h->total += r->dlen;
			b->merged++;
			b->reqs[tail].next = (int)got[i];
			tail = (int)got[i];
			continue;
		}
		if (lead >= 0)
			queued += submit_group(b, lead, done, &nd);
		lead = tail = (int)got[i];
	}
	if (lead >= 0)
		queued += submit_group(b, lead, done, &nd);
	if (queued) {
		int ret = io_uring_submit(&b->ring);

		if (ret < 0)
			log_warn("--disk %s: io_uring submit: %s", b->path, strerror(-ret));
	}
	complete(b, done, nd, broken);
	return ng;
}

static void blk_fill(void *dev, struct pollfd *fds, unsigned *n)
{
	struct virtio_blk *b = dev;

	/* Not called while paused, so a deferred image is open here, or its
	 * opening failed (then requests fail, below). */
	fds[(*n)++] = (struct pollfd){ .fd = b->vp.notify_fd[0], .events = POLLIN };
	if (b->uring)
		fds[(*n)++] = (struct pollfd){ .fd = b->ring_efd, .events = POLLIN };
}

static void drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) > 0)
		;
}

/* Requests keep flowing: completions are returned as they come and new
 * ones start while others are in flight, so the disk's queue stays full. */
static void blk_work(void *dev, const struct pollfd *fds, unsigned n)
{
	struct virtio_blk *b = dev;

	(void)fds;
	if (!n)
		return;
	pthread_mutex_lock(&b->ring_lock);
	drain_eventfd(b->vp.notify_fd[0]);
	if (b->uring)
		drain_eventfd(b->ring_efd);
	for (;;) {
		unsigned moved = b->uring ? reap(b, false) : 0;

		if (!virtio_worker_yield(&b->worker))
			moved += start_requests(b);
		if (!moved)
			break;
	}
	notify_driver(b);
	pthread_mutex_unlock(&b->ring_lock);
}

/* Waits for every request in flight and returns it (the worker is idle
 * or paused: it takes ring_lock to do anything). */
static void blk_drain(struct virtio_blk *b)
{
	pthread_mutex_lock(&b->ring_lock);
	if (b->uring)
		reap(b, true);
	notify_driver(b);
	pthread_mutex_unlock(&b->ring_lock);
}

/* ---- transport hooks ---- */

static int blk_activate(struct virtio_pci *vp)
{
	virtio_worker_kick(&blk_of(vp)->worker);
	return 0;
}

static void blk_quiesce(struct virtio_pci *vp)
{
	struct virtio_blk *b = blk_of(vp);

	pthread_mutex_lock(&vp->lock);
	vp->active = false;
	pthread_mutex_unlock(&vp->lock);
	virtio_worker_kick(&b->worker);
	virtio_worker_wait_idle(&b->worker);
	blk_drain(b);
}

static const struct virtio_device_ops blk_virtio_ops = {
	.device_id = VIRTIO_ID_BLOCK,
	.class_code = 0x018000, /* mass storage, other */
	.activate = blk_activate,
	.quiesce = blk_quiesce,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
};

/* ---- the image ---- */

static int image_size(int fd, const char *path, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size))
			return -errno;
	} else {
		log_error("--disk %s: not a regular file or block device", path);
		return -EINVAL;
	}
	return 0;
}

static int image_open(struct virtio_blk *b, uint64_t *size)
{
	int flags = (b->cfg.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int fd, ret;

	if (b->cfg.direct)
		flags |= O_DIRECT;
	fd = open(b->path, flags);
	if (fd < 0) {
		ret = -errno;
		if (ret == -EINVAL && b->cfg.direct)
			log_error("--disk %s: cache=none needs O_DIRECT, which this file "
				  "system does not support (use cache=writeback)", b->path);
		else
			log_error("--disk %s: %s", b->path, strerror(-ret));
		return ret;
	}
	ret = image_size(fd, b->path, size);
	if (ret) {
		if (ret != -EINVAL)
			log_error("--disk %s: %s", b->path, strerror(-ret));
		close(fd);
		return ret;
	}
	return fd;
}

/* Without opening it: is it there, of a usable kind, and ours to open? */
static int image_check(struct virtio_blk *b, uint64_t *size)
{
	int fd = image_open(b, size);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static bool can_punch(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

int virtio_blk_create(struct virtio_blk *b, const struct virtio_blk_config *cfg,
		      const struct virtio_host *host, bool start_paused)
{
	uint64_t features = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
			    VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	int ret;

	memset(b, 0, sizeof(*b));
	b->fd = -1;
	b->ring_efd = -1;
	b->cfg = *cfg;
	b->path = strdup(cfg->path);
	b->elems = calloc(MAX_INFLIGHT, sizeof(*b->elems));
	b->reqs = calloc(MAX_INFLIGHT, sizeof(*b->reqs));
	if (!b->path || !b->elems || !b->reqs) {
		ret = -ENOMEM;
		goto fail;
	}
	b->cfg.path = b->path;
	/* Opened for the check even when deferred: a missing image, a
	 * directory or a permission problem is reported at start-up. */
	ret = image_check(b, &b->size);
	if (ret)
		goto fail;
	if (b->size < SECTOR) {
		log_error("--disk %s: smaller than one 512-byte sector", b->path);
		ret = -EINVAL;
		goto fail;
	}
	if (!cfg->defer_open) {
		ret = image_open(b, &b->size);
		if (ret < 0)
			goto fail;
		b->fd = ret;
	}
	b->discard = !cfg->readonly && (b->fd < 0 || can_punch(b->fd));
	if (cfg->readonly)
		features |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	if (b->discard)
		features |=
			VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if (cfg->direct && posix_memalign(&b->bounce, 4096, BOUNCE_MAX)) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = virtio_pci_init(&b->vp, &blk_virtio_ops, b, host, features, 1, QUEUE_SIZE,
			      CONFIG_SIZE, VIRTIO_PCI_SUBSYS_MIN + VIRTIO_ID_BLOCK);
	if (ret)
		goto fail;
	/* io_uring where the kernel allows it (a sysctl or seccomp may not):
	 * the batch's requests then run side by side. */
	for (unsigned i = 0; i < MAX_INFLIGHT; i++)
		b->free_slot[b->nfree++] = (uint16_t)(MAX_INFLIGHT - 1 - i);
	pthread_mutex_init(&b->ring_lock, NULL);
	ret = io_uring_queue_init(MAX_INFLIGHT, &b->ring, 0);
	if (ret == 0) {
		b->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (b->ring_efd >= 0 && io_uring_register_eventfd(&b->ring, b->ring_efd) == 0) {
			b->uring = true;
		} else {
			io_uring_queue_exit(&b->ring);
			ret = -EIO;
		}
	}
	if (!b->uring)
		log_debug("--disk %s: io_uring: %s; requests run one at a time", b->path,
			  strerror(-ret));
	b->worker = (struct virtio_worker){ .fill = blk_fill, .work = blk_work, .dev = b };
	ret = virtio_worker_start(&b->worker, start_paused);
	if (ret)
		goto fail;
	return 0;
fail:
	if (ret == -ENOMEM)
		log_error("--disk %s: out of memory", cfg->path);
	virtio_blk_destroy(b);
	return ret;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	log_debug("--disk %s: %llu requests merged into others", b->path ? b->path : "?",
		  (unsigned long long)b->merged);
	virtio_worker_stop(&b->worker);
	/* The thread stops with requests in flight: wait for them (and answer
	 * them) before the ring goes, else the kernel still reads into guest
	 * RAM after we returned, and the VMM unmaps it next. */
	if (b->uring) {
		blk_drain(b);
		io_uring_queue_exit(&b->ring);
	}
	b->uring = false;
	if (b->ring_efd >= 0)
		close(b->ring_efd);
	b->ring_efd = -1;
	virtio_pci_destroy(&b->vp);
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	free(b->bounce);
	free(b->elems);
	free(b->reqs);
	free(b->path);
	b->bounce = b->elems = NULL;
	b->reqs = NULL;
	b->path = NULL;
}

/* ---- device registry hooks ---- */

static void blk_pause(void *dev)
{
	struct virtio_blk *b = dev;

	virtio_worker_pause(&b->worker);
	blk_drain(b);
}

static int blk_resume(void *dev)
{
	struct virtio_blk *b = dev;
	int ret = 0;

	if (b->fd < 0) {
		uint64_t size;
		int fd = image_open(b, &size);

		if (fd >= 0 && size != b->size) {
			log_error("--disk %s: the image is %llu bytes now, %llu when the guest "
				  "last saw it", b->path, (unsigned long long)size,
				  (unsigned long long)b->size);
			close(fd);
			fd = -EINVAL;
		}
		if (fd < 0)
			ret = fd; /* served anyway: every request fails */
		else
			b->fd = fd;
	}
	virtio_worker_resume(&b->worker);
	/* Look at the queue once: a pause that came after the thread had read
	 * a notification but before it took the requests leaves them in the
	 * ring with the notification gone (nothing would wake us for them). */
	if (eventfd_write(b->vp.notify_fd[0], 1))
		log_warn("--disk %s: eventfd: %s", b->path, strerror(errno));
	return ret;
}

static int blk_flush(void *dev)
{
	struct virtio_blk *b = dev;

	if (b->fd >= 0 && !b->cfg.readonly && fdatasync(b->fd)) {
		int ret = -errno;

		log_error("--disk %s: flush: %s", b->path, strerror(-ret));
		return ret;
	}
	return 0;
}

static int blk_save(void *dev, struct buf *out)
{
	struct virtio_blk *b = dev;

	buf_put_u64(out, b->size);
	buf_put_u8(out, b->cfg.readonly);
	virtio_pci_save(&b->vp, out);
	return buf_finish(out);
}

static int blk_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct virtio_blk *b = dev;
	struct reader r;
	uint64_t size;
	uint8_t ro;
	int ret;

	if (version != 1)
		return -EPROTO;
	reader_init(&r, data, len);
	size = reader_u64(&r);
	ro = reader_u8(&r);
	if (r.short_read)
		return -EINVAL;
	if (size != b->size) {
		log_error("--disk %s: the image is %llu bytes here, %llu where the guest ran",
			  b->path, (unsigned long long)b->size, (unsigned long long)size);
		return -EINVAL;
	}
	if (ro != b->cfg.readonly) {
		log_error("--disk %s: readonly=%s here, %s where the guest ran", b->path,
			  b->cfg.readonly ? "on" : "off", ro ? "on" : "off");
		return -EINVAL;
	}
	ret = virtio_pci_load(&b->vp, &r);
	if (ret)
		return ret;
	if (reader_finish(&r))
		return -EINVAL;
	return virtio_pci_post_load(&b->vp);
}

static void blk_reset(void *dev)
{
	struct virtio_blk *b = dev;

	virtio_pci_reset(&b->vp);
	pci_function_reset(&b->vp.pci);
}

const struct device_ops virtio_blk_device_ops = {
	.name = "virtio-blk",
	.version = 1,
	.save = blk_save,
	.load = blk_load,
	.reset = blk_reset,
	.pause = blk_pause,
	.resume = blk_resume,
	.flush = blk_flush,
};
