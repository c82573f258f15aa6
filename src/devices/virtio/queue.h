/* A split virtqueue (virtio 1.2 §2.7) as the device side sees it: take the
 * next chain of buffers the driver made available, hand back a used one.
 * Every address and index the guest supplies is checked: a ring outside
 * RAM, an index beyond the ring, a chain that loops or is longer than the
 * queue, a writable buffer before a readable one — each is an error that
 * the caller turns into DEVICE_NEEDS_RESET, never a crash. */
#ifndef FERRY_DEVICES_VIRTIO_QUEUE_H
#define FERRY_DEVICES_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/buf.h"
#include "devices/dma.h"

#define VIRTQ_MAX_SIZE  1024
#define VIRTQ_MAX_SEGS  256    /* buffers of one chain (indirect included) */

/* Guest-visible state of a queue: what the driver programmed and how far
 * the device got. */
struct virtq_state {
	uint16_t size;          /* queue_size as the driver left it */
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, avail, used;
	uint16_t last_avail;    /* next avail ring entry to take */
	uint16_t used_idx;      /* next used ring entry to write */
};

struct virtq {
	struct virtq_state s;
	uint16_t max_size;
	bool indirect;          /* VIRTIO_F_INDIRECT_DESC negotiated */
	/* Host addresses of the rings while mapped (NULL otherwise). */
	uint8_t *desc, *avail, *used;
	const struct guest_ram *ram;
};

/* One chain taken from the avail ring: readable buffers first (out), then
 * writable ones (in). */
struct virtq_elem {
	uint16_t head;
	unsigned n_out, n_in;
	struct iovec iov[VIRTQ_MAX_SEGS];   /* out then in */
	uint64_t gpa[VIRTQ_MAX_SEGS];
	uint64_t out_len, in_len;
};

void virtq_init(struct virtq *q, uint16_t max_size, const struct guest_ram *ram);

/* Back to the state after a device reset (size = max_size, disabled). */
void virtq_reset(struct virtq *q);

/* Translates the rings' addresses; -EINVAL when any is outside RAM, not
 * aligned as §2.7 requires, or the size is not a power of two. */
int virtq_map(struct virtq *q);
void virtq_unmap(struct virtq *q);

/* Takes the next available chain into e: 1, 0 when there is none, or
 * -EINVAL when the guest broke the rules. */
int virtq_pop(struct virtq *q, struct virtq_elem *e);

/* Gives back the chain the last pop took, unused (no data for it yet). */
void virtq_unpop(struct virtq *q);

/* Returns a chain to the driver with len bytes written into its writable
 * buffers (those bytes and the used ring are reported dirty). */
void virtq_push(struct virtq *q, const struct virtq_elem *e, uint32_t len);

/* Reports the first len bytes of e's writable buffers dirty: for what a
 * device wrote beyond the used length it returns (a status byte at the
 * end, the data of a read that failed part way). */
void virtq_dirty_in(struct virtq *q, const struct virtq_elem *e, uint64_t len);

/* After pushes: whether the driver wants an interrupt. */
bool virtq_should_notify(struct virtq *q);

/* True when the driver made buffers available that were not taken yet. */
bool virtq_has_work(struct virtq *q);

void virtq_save(const struct virtq *q, struct buf *out);
/* Reads a queue's state (as saved) into s, checking it against max_size. */
int virtq_load_state(struct virtq_state *s, uint16_t max_size, struct reader *in);

/* Copies up to len bytes from offset off of iov[0..n) into dst; returns the
 * count copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len);
size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len);

/* Makes dst[0..*dn) the part [off, off + len) of iov[0..n). Returns the
 * byte count it covers (less than len when iov is shorter). */
size_t iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
		 struct iovec *dst, unsigned *dn);

#endif
