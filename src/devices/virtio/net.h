/* virtio-net (virtio 1.2 §5.1) on an existing tap device: one receive and
 * one transmit queue served by the device's worker thread, the tap opened
 * with a virtio-net header so checksum and segmentation offloads pass
 * through where the tap supports them. After a migration or restore the
 * device announces the guest's MAC on the new host (RARP, as QEMU's
 * self-announce does) so that switches learn where it went. */
#ifndef FERRY_DEVICES_VIRTIO_NET_H
#define FERRY_DEVICES_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/pci.h"
#include "devices/virtio/worker.h"

#define NET_IFNAME_MAX 15

struct virtio_net_config {
	char tap[NET_IFNAME_MAX + 1];
	uint8_t mac[6];
	bool mac_given;         /* else a migrated guest keeps its MAC */
	bool defer_open;        /* open the tap at the first resume */
};

struct virtio_net {
	struct virtio_pci vp;
	struct virtio_net_config cfg;
	int tap_fd;             /* -1 until opened */
	bool tap_offloads;      /* TUNSETOFFLOAD accepted checksum + TSO */
	uint16_t status;        /* config status: LINK_UP, ANNOUNCE */
	unsigned announce_left; /* self-announce rounds still to send */
	int timer_fd;           /* paces the announcements */
	bool announce_pending;  /* at the next resume (after a load) */

	struct virtio_worker worker;
	struct virtq_elem *elem;
};

/* Checks that the tap exists and is free; opens it (unless deferred);
 * builds the PCI function; starts the worker. Returns 0 or -errno with one
 * error line naming the tap. */
int virtio_net_create(struct virtio_net *n, const struct virtio_net_config *cfg,
		      const struct virtio_host *host, bool start_paused);
void virtio_net_destroy(struct virtio_net *n);

/* "52:54:00:12:34:56" into mac; false when malformed. */
bool virtio_net_parse_mac(const char *s, uint8_t mac[6]);

extern const struct device_ops virtio_net_device_ops;

#endif
