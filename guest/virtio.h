/*
 * virtio over PCI, modern interface only (virtio 1.2 §4.1), and split
 * virtqueues (§2.7). Ring 3. Device-type drivers (virtio_blk.c,
 * virtio_net.c) use it in this order, on CPU 0 before "ready":
 *
 *   virtio_probe()        capabilities, MSI-X table, reset, ACKNOWLEDGE|DRIVER
 *   virtio_negotiate()    features, FEATURES_OK (checked)
 *   virtq_setup() ...     one call per queue used; config vector set here too
 *   virtio_ready()        DRIVER_OK
 *
 * then virtq_add() / virtq_kick() / virtq_get() from one CPU at a time (no
 * locks). Any failure sets the device FAILED and returns < 0 after a
 * "ferry-agent warning:" line; the caller just drops the device.
 *
 * DMA addresses are guest physical = virtual (identity map), so buffers
 * are passed as pointers. Completion is found by polling the used ring;
 * each queue still has an MSI-X vector, counted by ring 0 (msi_count[]).
 */
#ifndef FERRY_GUEST_VIRTIO_H
#define FERRY_GUEST_VIRTIO_H

#include "pci.h"
#include "types.h"

/* The spec's constants, shared with ferry's devices (pure #defines). */
#include "devices/virtio/virtio.h"

#define VIRTQ_MAX_SIZE          256     /* ring entries we allocate at most */
#define VIRTQ_MAX               16      /* queues over all devices */

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct vring_avail {
	u16 flags;
	u16 idx;
	u16 ring[];
};

struct vring_used_elem {
	u32 id;
	u32 len;
};

struct vring_used {
	u16 flags;
	u16 idx;
	struct vring_used_elem ring[];
};

struct virtq {
	u16 index;              /* queue number in the device */
	u16 size;               /* entries (a power of two) */
	struct vring_desc *desc;
	struct vring_avail *avail;
	volatile struct vring_used *used;
	volatile u16 *notify;   /* this queue's notification address */
	u16 free_head;          /* free descriptors are chained from here */
	u16 num_free;
	u16 last_used;          /* used->idx as far as we consumed it */
	int msi;                /* msi_count[] index, -1: no interrupt */
	void *token[VIRTQ_MAX_SIZE];    /* by head descriptor */
};

/* One buffer of a chain: device-readable unless dev_writes. */
struct virtq_buf {
	void *addr;
	u32 len;
	bool dev_writes;
};

struct virtio_dev {
	struct pci_dev pci;
	u16 type;               /* VIRTIO_ID_* */
	volatile u8 *common;    /* struct virtio_pci_common_cfg */
	volatile u8 *notify_base;
	u32 notify_mult;
	volatile u8 *isr;
	volatile u8 *devcfg;    /* device-specific configuration */
	u32 devcfg_len;
	struct msix msix;
	int cfg_msi;            /* msi_count[] index of config changes, or -1 */
	u32 irq_apic;           /* APIC ID the interrupts go to */
	u64 features;           /* negotiated */
	u16 num_queues;         /* offered by the device */
};

/* Virtio device type of a PCI function with the virtio vendor ID (modern
 * 0x1040 + type, or transitional 0x1000-0x103f with the type in the
 * subsystem ID); 0 if not virtio. */
u16 virtio_pci_type(const struct pci_dev *p);

/* Locate the common, notify, ISR and device capabilities, set up MSI-X
 * (interrupts aimed at irq_apic), enable the function, reset the device
 * and set ACKNOWLEDGE | DRIVER. */
int virtio_probe(struct virtio_dev *d, const struct pci_dev *p, u32 irq_apic);

/* Offer (device features & wanted) | required, masks of VIRTIO_BIT(bit);
 * VIRTIO_F_VERSION_1 is always required. Sets FEATURES_OK and checks the
 * device kept it; d->features holds the result. */
int virtio_negotiate(struct virtio_dev *d, u64 wanted, u64 required);

/* Set up queue `index` with at most max_size entries (rounded down to a
 * power of two, at most VIRTQ_MAX_SIZE and the device's queue_size), its
 * own MSI-X vector, and enable it. The first call also sets the config
 * vector. */
int virtq_setup(struct virtio_dev *d, struct virtq *q, u16 index, u16 max_size);

/* DRIVER_OK; fails if the device asks for a reset. */
int virtio_ready(struct virtio_dev *d);

/* Set FAILED (the device is given up). */
void virtio_fail(struct virtio_dev *d);

/* Give up on a device that may still hold our buffers (a request timed
 * out): FAILED, then a reset, which makes it drop its queues. Does not
 * wait for the reset to complete. */
void virtio_abandon(struct virtio_dev *d);

/* True if the device set DEVICE_NEEDS_RESET. */
bool virtio_needs_reset(const struct virtio_dev *d);

/* Device configuration reads, retried until config_generation is stable
 * (a 64-bit field is read as two 32-bit halves). */
u32 virtio_cfg_read32(const struct virtio_dev *d, u32 off);
u16 virtio_cfg_read16(const struct virtio_dev *d, u32 off);
u64 virtio_cfg_read64(const struct virtio_dev *d, u32 off);
u8 virtio_cfg_read8(const struct virtio_dev *d, u32 off);

/* Interrupts counted on the config vector / on queue q. */
u64 virtio_cfg_irqs(const struct virtio_dev *d);
u64 virtq_irqs(const struct virtq *q);

/* Put a chain of n buffers on the available ring (not yet notified);
 * token comes back from virtq_get(). Returns 0, or -1 if fewer than n
 * descriptors are free. */
int virtq_add(struct virtq *q, const struct virtq_buf *b, u32 n, void *token);

/* Tell the device about what was added (one MMIO write, ~30 us). */
void virtq_kick(struct virtq *q);

/* The token of the next completed chain (its descriptors freed), with the
 * bytes the device wrote in *len; NULL if none yet. */
void *virtq_get(struct virtq *q, u32 *len);

#endif
