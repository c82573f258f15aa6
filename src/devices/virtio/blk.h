/* virtio-blk (virtio 1.2 §5.2) on a raw image file or block device: read,
 * write, flush, get-id, discard and write-zeroes, served by one I/O thread
 * per disk so that a slow disk never stalls a vCPU. cache=none opens the
 * image with O_DIRECT (what migration with shared storage needs: no host
 * page cache to go stale on either side). */
#ifndef FERRY_DEVICES_VIRTIO_BLK_H
#define FERRY_DEVICES_VIRTIO_BLK_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/pci.h"
#include "devices/virtio/worker.h"

#define VIRTIO_BLK_MAX_INFLIGHT 128  /* requests between taking and returning */

struct blk_req;

struct virtio_blk_config {
	const char *path;
	bool readonly;
	bool direct;            /* cache=none */
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	/* Open the image only at the first resume (restore, incoming
	 * migration: the source may still be writing until hand-over). */
	bool defer_open;
};

struct virtio_blk {
	struct virtio_pci vp;
	struct virtio_blk_config cfg;
	char *path;
	int fd;                 /* -1 until opened */
	uint64_t size;          /* image bytes (a multiple of 512 used) */
	bool discard;           /* the image can punch holes */
	void *bounce;           /* for O_DIRECT with unaligned guest buffers */

	struct virtio_worker worker;
	/* Requests between taking and returning them, by slot; the worker
	 * (or a drain) works on them under ring_lock. */
	pthread_mutex_t ring_lock;
	struct virtq_elem *elems;
	struct blk_req *reqs;
	uint16_t free_slot[VIRTIO_BLK_MAX_INFLIGHT];
	unsigned nfree;
	unsigned inflight;              /* in io_uring */
	unsigned returned;              /* since the last interrupt */
	uint64_t merged;                /* requests that joined another's transfer */
	struct io_uring ring;
	int ring_efd;                   /* io_uring signals completions here */
	bool uring;                     /* else each request is done at once */
};

/* Checks the image and opens it (unless cfg->defer_open); builds the PCI
 * function and starts the I/O thread. Returns 0 or -errno with one error
 * line logged naming the image. */
int virtio_blk_create(struct virtio_blk *b, const struct virtio_blk_config *cfg,
		      const struct virtio_host *host, bool start_paused);
void virtio_blk_destroy(struct virtio_blk *b);

extern const struct device_ops virtio_blk_device_ops;

#endif
