/*
 * virtio-net driver (virtio 1.2 §5.1), modern only, one queue pair: rx is
 * queue 0, tx queue 1; no control queue, no multiqueue. Ring 3.
 *
 * Features negotiated when offered: VERSION_1 (required), MAC, STATUS.
 * Nothing that needs offloads (no CSUM, GUEST_CSUM, TSO, MRG_RXBUF), so
 * every frame either way is complete, with its checksums, and the 12-byte
 * virtio_net_hdr_v1 in front of it is all zero on transmit and ignored on
 * receive.
 *
 * Receive: every rx descriptor holds one device-writable buffer of
 * VNET_RX_BUF_LEN bytes (header + 1526, enough for a 1514-byte frame
 * plus a VLAN tag without MRG_RXBUF/GUEST_TSO); the ring is kept full.
 * Transmit: one device-readable descriptor per frame (header and frame
 * contiguous), at most VNET_TX_SLOTS in flight; a frame with no free slot
 * is dropped and counted. Completion of both is found by polling.
 *
 * vnet_init() runs on CPU 0 before "ready"; after it, one CPU at a time
 * uses the device (no locks).
 */
#ifndef FERRY_GUEST_VIRTIO_NET_H
#define FERRY_GUEST_VIRTIO_NET_H

#include "virtio.h"

#define VNET_FRAME_MAX          1526    /* what a receive buffer takes */
#define VNET_RX_BUF_LEN         (VIRTIO_NET_HDR_LEN + VNET_FRAME_MAX)
#define VNET_SLOT_BYTES         2048    /* one rx or tx buffer in memory */
#define VNET_QUEUE_SIZE         256     /* asked for, rx and tx */
#define VNET_TX_SLOTS           64      /* frames in flight at most */
#define VNET_ETH_MIN            60      /* shorter frames are padded */
#define VNET_ETH_MAX            1514    /* longest frame sent */

struct vnet {
	struct virtio_dev vdev;
	struct virtq rxq, txq;
	char name[8];           /* "eth0", ... */
	u8 mac[6];
	bool mac_offered;       /* VIRTIO_NET_F_MAC (else a random local MAC) */
	u8 (*rx_buf)[VNET_SLOT_BYTES];  /* rxq.size slots */
	u8 (*tx_buf)[VNET_SLOT_BYTES];  /* VNET_TX_SLOTS slots */
	u32 tx_free[VNET_TX_SLOTS];     /* stack of free tx slots */
	u32 tx_nfree;
	u64 rx_frames, tx_frames, tx_dropped, rx_dropped;
};

/* Initialise the virtio-net device p (type 1) as `name`, its interrupts
 * aimed at irq_apic, with rx/tx buffers taken from rx_mem (rxq.size <=
 * VNET_QUEUE_SIZE slots) and tx_mem (VNET_TX_SLOTS slots); fills the rx
 * ring. Returns 0, or -1 after a warning (device dropped). */
int vnet_init(struct vnet *n, const struct pci_dev *p, const char *name,
	      u32 irq_apic, u8 (*rx_mem)[VNET_SLOT_BYTES],
	      u8 (*tx_mem)[VNET_SLOT_BYTES]);

/* Link state: the STATUS field's LINK_UP bit; up if STATUS was not
 * negotiated. */
bool vnet_link_up(const struct vnet *n);

/* Queue one Ethernet frame (destination MAC first, no FCS; padded to 60
 * bytes, at most 1514) and notify the device. Returns 0, or -1 if it was
 * dropped (no free slot, too long). Reclaims finished tx slots first. */
int vnet_send(struct vnet *n, const void *frame, u32 len);

/*
 * Hand up to max received frames to fn (frame without the virtio header,
 * its length), give their buffers back to the device (one notification
 * for all), and reclaim finished tx slots. Returns the frames handled.
 * fn may call vnet_send().
 */
u32 vnet_poll(struct vnet *n, u32 max,
	      void (*fn)(void *ctx, const u8 *frame, u32 len), void *ctx);

/* Interrupts counted on the rx / tx queues (MSI-X, ring 0). */
u64 vnet_rx_irqs(const struct vnet *n);
u64 vnet_tx_irqs(const struct vnet *n);

#endif
