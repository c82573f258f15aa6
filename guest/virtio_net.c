/* virtio-net driver (ring 3); see virtio_net.h. */
#include "virtio_net.h"
#include "console.h"
#include "lib.h"
#include "user.h"

/* What we read of struct virtio_net_config: up to status. */
#define CFG_MIN_LEN     (VIRTIO_NET_CFG_STATUS + 2)

static int fail(struct vnet *n, const char *what)
{
	console_printf("ferry-agent warning: virtio %s: %s\n", n->vdev.pci.name,
		       what);
	virtio_fail(&n->vdev);
	return -1;
}

static void read_mac(struct vnet *n)
{
	u64 r = now_tsc();

	n->mac_offered = n->vdev.features & VIRTIO_BIT(VIRTIO_NET_F_MAC);
	for (u32 i = 0; i < 6; i++)
		n->mac[i] = n->mac_offered
			    ? virtio_cfg_read8(&n->vdev, VIRTIO_NET_CFG_MAC + i)
			    : (u8)(r >> (8 * i));
	if (!n->mac_offered)    /* locally administered, unicast */
		n->mac[0] = (u8)((n->mac[0] & 0xfc) | 0x02);
}

/* Give rx slot i to the device (not notified). */
static int rx_post(struct vnet *n, u32 i)
{
	struct virtq_buf b = { n->rx_buf[i], VNET_RX_BUF_LEN, true };

	return virtq_add(&n->rxq, &b, 1, n->rx_buf[i]);
}

int vnet_init(struct vnet *n, const struct pci_dev *p, const char *name,
	      u32 irq_apic, u8 (*rx_mem)[VNET_SLOT_BYTES],
	      u8 (*tx_mem)[VNET_SLOT_BYTES])
{
	struct virtio_dev *d = &n->vdev;

	*n = (struct vnet){ .rx_buf = rx_mem, .tx_buf = tx_mem };
	fmt_sn(n->name, sizeof(n->name), "%s", name);
	if (virtio_probe(d, p, irq_apic) ||
	    virtio_negotiate(d, VIRTIO_BIT(VIRTIO_NET_F_MAC) |
			     VIRTIO_BIT(VIRTIO_NET_F_STATUS), 0))
		return -1;
	if ((d->features & (VIRTIO_BIT(VIRTIO_NET_F_MAC) |
			     VIRTIO_BIT(VIRTIO_NET_F_STATUS))) &&
	    (!d->devcfg || d->devcfg_len < CFG_MIN_LEN))
		return fail(n, "no usable net config");
	read_mac(n);
	if (virtq_setup(d, &n->rxq, VIRTIO_NET_RXQ, VNET_QUEUE_SIZE) ||
	    virtq_setup(d, &n->txq, VIRTIO_NET_TXQ, VNET_QUEUE_SIZE))
		return fail(n, "queues not set up");
	for (u32 i = 0; i < n->rxq.size; i++)
		rx_post(n, i);
	for (u32 i = 0; i < VNET_TX_SLOTS; i++)
		n->tx_free[n->tx_nfree++] = VNET_TX_SLOTS - 1 - i;
	if (virtio_ready(d))
		return -1;
	virtq_kick(&n->rxq);
	return 0;
}

bool vnet_link_up(const struct vnet *n)
{
	if (!(n->vdev.features & VIRTIO_BIT(VIRTIO_NET_F_STATUS)))
		return true;
	return virtio_cfg_read16(&n->vdev, VIRTIO_NET_CFG_STATUS) &
	       VIRTIO_NET_S_LINK_UP;
}

static void tx_reclaim(struct vnet *n)
{
	u8 *buf;

	while ((buf = virtq_get(&n->txq, NULL)))
		n->tx_free[n->tx_nfree++] = (u32)((buf - n->tx_buf[0]) / VNET_SLOT_BYTES);
}

int vnet_send(struct vnet *n, const void *frame, u32 len)
{
	u32 total = len < VNET_ETH_MIN ? VNET_ETH_MIN : len;
	struct virtq_buf b;
	u8 *buf;

	tx_reclaim(n);
	if (!n->tx_nfree || len > VNET_ETH_MAX) {
		n->tx_dropped++;
		return -1;
	}
	buf = n->tx_buf[n->tx_free[--n->tx_nfree]];
	memset(buf, 0, VIRTIO_NET_HDR_LEN);
	memcpy(buf + VIRTIO_NET_HDR_LEN, frame, len);
	memset(buf + VIRTIO_NET_HDR_LEN + len, 0, total - len);
	b = (struct virtq_buf){ buf, VIRTIO_NET_HDR_LEN + total, false };
	if (virtq_add(&n->txq, &b, 1, buf)) {
		/* more slots than ring entries: cannot happen with a ring of
		 * VNET_TX_SLOTS or more, but a small device queue is legal */
		n->tx_free[n->tx_nfree++] = (u32)((buf - n->tx_buf[0]) / VNET_SLOT_BYTES);
		n->tx_dropped++;
		return -1;
	}
	virtq_kick(&n->txq);
	n->tx_frames++;
	return 0;
}

u32 vnet_poll(struct vnet *n, u32 max,
	      void (*fn)(void *ctx, const u8 *frame, u32 len), void *ctx)
{
	u32 done = 0, len;
	u8 *buf;

	while (done < max && (buf = virtq_get(&n->rxq, &len))) {
		done++;
		if (len > VIRTIO_NET_HDR_LEN && len <= VNET_RX_BUF_LEN) {
			n->rx_frames++;
			fn(ctx, buf + VIRTIO_NET_HDR_LEN, len - VIRTIO_NET_HDR_LEN);
		} else {
			n->rx_dropped++;
		}
		rx_post(n, (u32)((buf - n->rx_buf[0]) / VNET_SLOT_BYTES));
	}
	if (done)
		virtq_kick(&n->rxq);
	tx_reclaim(n);
	return done;
}

u64 vnet_rx_irqs(const struct vnet *n)
{
	return virtq_irqs(&n->rxq);
}

u64 vnet_tx_irqs(const struct vnet *n)
{
	return virtq_irqs(&n->txq);
}
