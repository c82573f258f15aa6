/*
 * virtio-blk driver (virtio 1.2 §5.2), modern only, one request queue.
 * Ring 3. Requests are {header, data, status} chains of three descriptors
 * (the data buffer is one physically contiguous piece: identity map), so a
 * queue of N entries holds N/3 requests. Completion is polled.
 *
 * Features negotiated when offered: VERSION_1 (required), RO, BLK_SIZE,
 * SEG_MAX, FLUSH. Sectors are 512 bytes whatever blk_size says.
 */
#ifndef FERRY_GUEST_VIRTIO_BLK_H
#define FERRY_GUEST_VIRTIO_BLK_H

#include "virtio.h"

#define VBLK_QUEUE_SIZE         256     /* asked for; the device may offer less */
#define VBLK_REQ_TIMEOUT_MS     10000   /* a synchronous request gives up */

struct vblk {
	struct virtio_dev vdev;
	struct virtq vq;
	char name[8];           /* "vda", ... */
	u64 sectors;            /* capacity in 512-byte sectors */
	u32 blk_size;           /* logical block size (512 if not offered) */
	u32 seg_max;            /* data segments per request (0: not offered) */
	bool ro, flush;         /* VIRTIO_BLK_F_RO / _FLUSH negotiated */
	bool broken;            /* a request timed out: do not use any more */
};

/* One request in flight. Its header and status byte are read and written
 * by the device, so the struct must stay put until it completes. */
struct vblk_req {
	struct {
		u32 type;
		u32 reserved;
		u64 sector;
	} hdr;
	volatile u8 status;
	u32 len;                /* data bytes */
	u64 tag;                /* the caller's */
};

/* Initialise the virtio-blk device p (type 2) as `name`, its interrupts
 * aimed at irq_apic. Returns 0, or -1 after a warning (device dropped). */
int vblk_init(struct vblk *b, const struct pci_dev *p, const char *name,
	      u32 irq_apic);

/* Queue request r (type VIRTIO_BLK_T_*) of len bytes at sector; buf is
 * written by the device for IN and GET_ID. Not notified until
 * vblk_kick(). Returns 0, or -1 if the queue is full. */
int vblk_submit(struct vblk *b, struct vblk_req *r, u32 type, u64 sector,
		void *buf, u32 len);
void vblk_kick(struct vblk *b);

/* A completed request, or NULL. */
struct vblk_req *vblk_poll(struct vblk *b);

/* Submit one request and poll until it completes: its status, or -1 if it
 * did not complete within VBLK_REQ_TIMEOUT_MS (the disk is then marked
 * broken) or could not be queued. */
int vblk_sync(struct vblk *b, u32 type, u64 sector, void *buf, u32 len);

/* Requests the queue can hold at once. */
u32 vblk_max_inflight(const struct vblk *b);

/* Interrupts taken by the request queue (MSI-X, counted by ring 0). */
u64 vblk_irqs(const struct vblk *b);

#endif
