/* The virtio-pci transport, modern only (virtio 1.2 §4.1): the vendor
 * capabilities, the common configuration (features, status, queues), the
 * ISR and notify registers, and MSI-X. A device type (blk, net) plugs in
 * through virtio_device_ops and sees only queues and its own config.
 *
 * BAR 1 (4 KiB) holds the MSI-X table and PBA; BAR 4 (64-bit, 16 KiB) the
 * virtio structures: common config at 0, ISR at 0x1000, device config at
 * 0x2000, notify registers at 0x3000 (4 bytes per queue). Queue
 * notifications arrive on one eventfd per queue: KVM signals it directly
 * (ioeventfd) where the VMM could register one, else the vCPU's MMIO exit
 * does. The device's worker thread waits on those eventfds. */
#ifndef FERRY_DEVICES_VIRTIO_PCI_H
#define FERRY_DEVICES_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/dma.h"
#include "devices/pci.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"

#define VIRTIO_MAX_QUEUES 8

/* What the VMM provides: KVM ioeventfds for the notify registers. */
struct virtio_host {
	/* Makes KVM signal fd on a guest write to [addr, addr + 2) (assign)
	 * or stop doing so; returns 0 or -errno (then the MMIO exit path
	 * signals fd instead). May be NULL. */
	int (*ioeventfd)(void *ctx, uint64_t addr, int fd, bool assign);
	void *ctx;
	struct guest_ram ram;
	struct msi_sink msi;
};

struct virtio_pci;

struct virtio_device_ops {
	uint16_t device_id;             /* VIRTIO_ID_* */
	uint32_t class_code;            /* PCI class, 0xCCSSPP */
	/* The driver set DRIVER_OK: start serving the queues. Returns 0, or
	 * -errno to mark the device broken. */
	int (*activate)(struct virtio_pci *vp);
	/* Stop serving the queues and wait until no request is in flight
	 * (called without vp->lock; before a reset). */
	void (*quiesce)(struct virtio_pci *vp);
	/* Device-specific configuration space (offsets from 0). */
	void (*config_read)(struct virtio_pci *vp, unsigned off, uint8_t *data, unsigned size);
	void (*config_write)(struct virtio_pci *vp, unsigned off, const uint8_t *data,
			     unsigned size);
};

/* Guest-visible transport state (saved). */
struct virtio_pci_state {
	uint32_t dev_feature_sel, drv_feature_sel;
	uint64_t driver_features;
	uint16_t config_msix_vector;
	uint16_t queue_sel;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
};

struct virtio_pci {
	struct pci_function pci;
	const struct virtio_device_ops *ops;
	void *dev;                      /* the device type's own struct */
	struct virtio_host host;
	uint64_t device_features;       /* offered, VERSION_1 included */
	unsigned nqueues;
	uint32_t config_size;
	unsigned pci_cfg_cap;           /* offset of VIRTIO_PCI_CAP_PCI_CFG */

	/* Under lock: the transport state, the queues. vCPU threads take it
	 * for register accesses, the worker to take and return requests. */
	pthread_mutex_t lock;
	struct virtio_pci_state s;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	bool active;                    /* activate() succeeded, not reset */

	/* Runtime: one notify eventfd per queue, and where each is
	 * registered with KVM (0: not). */
	int notify_fd[VIRTIO_MAX_QUEUES];
	uint64_t notify_reg[VIRTIO_MAX_QUEUES];
};

/* Builds the transport for a device with nqueues queues of at most
 * max_queue_size entries and config_size bytes of device config. Returns 0
 * or -errno (eventfds). */
int virtio_pci_init(struct virtio_pci *vp, const struct virtio_device_ops *ops, void *dev,
		    const struct virtio_host *host, uint64_t device_features, unsigned nqueues,
		    uint16_t max_queue_size, uint32_t config_size, uint16_t subsys_id);
void virtio_pci_destroy(struct virtio_pci *vp);

/* The device found the guest breaking the rules (a bad ring, a looping
 * chain): DEVICE_NEEDS_RESET and a configuration interrupt; the worker
 * stops serving the queues until the driver resets the device. */
void virtio_pci_set_broken(struct virtio_pci *vp, const char *why);

/* Interrupts the driver for queue q (if it wants one). Under vp->lock. */
void virtio_pci_notify_queue(struct virtio_pci *vp, unsigned q);

/* Configuration change interrupt (net link status, announce). */
void virtio_pci_notify_config(struct virtio_pci *vp);

bool virtio_pci_feature(const struct virtio_pci *vp, unsigned bit);

/* Whether the device may take requests now: activated, and the driver left
 * bus mastering on (PCI: no DMA without it — a guest shutting a device
 * down may only clear that bit). Under vp->lock. */
bool virtio_pci_may_serve(const struct virtio_pci *vp);

/* State section of the device's record: the PCI function, the transport,
 * the queues. load validates everything first; post_load maps the rings
 * and re-registers the notify eventfds. */
int virtio_pci_save(struct virtio_pci *vp, struct buf *out);
int virtio_pci_load(struct virtio_pci *vp, struct reader *in);
/* After load (or to re-arm): rings mapped, ioeventfds at the BAR's
 * address. Returns 0 or -EINVAL (a saved ring outside RAM). */
int virtio_pci_post_load(struct virtio_pci *vp);

/* Device reset as the driver's status write 0 does it. */
void virtio_pci_reset(struct virtio_pci *vp);

#endif
