#include "devices/virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "devices/virtio/virtio.h"

#define QUEUE_SIZE          256
#define CONFIG_SIZE         12  /* struct virtio_net_config through mtu */
#define BATCH               64

#define ANNOUNCE_ROUNDS     5
#define ANNOUNCE_FIRST_MS   50
#define ANNOUNCE_STEP_MS    100

static struct virtio_net *net_of(struct virtio_pci *vp)
{
	return vp->dev;
}

bool virtio_net_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
				      &v[4], &v[5], &end) != 6)
		return false;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	/* A unicast address: bit 0 of the first byte clear. */
	return !(mac[0] & 1);
}

/* ---- configuration space ---- */

static void net_config_read(struct virtio_pci *vp, unsigned off, uint8_t *data, unsigned size)
{
	struct virtio_net *n = net_of(vp);
	uint8_t c[CONFIG_SIZE] = { 0 };

	memcpy(c + VIRTIO_NET_CFG_MAC, n->cfg.mac, 6);
	put_le16(c + VIRTIO_NET_CFG_STATUS, n->status);
	put_le16(c + VIRTIO_NET_CFG_MAX_PAIRS, 1);
	memcpy(data, c + off, size);
}

static void net_config_write(struct virtio_pci *vp, unsigned off, const uint8_t *data,
			     unsigned size)
{
	/* The MAC is writable by legacy drivers only (§5.1.4.2). */
	(void)vp, (void)off, (void)data, (void)size;
}

/* ---- the tap ---- */

static int tap_open(const char *name)
{
	struct ifreq ifr;
	char path[64];
	int fd, hdr = VIRTIO_NET_HDR_LEN;

	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	if (access(path, F_OK)) {
		log_error("--net tap=%s: no such network interface (create it first: ip tuntap "
			  "add dev %s mode tap)", name, name);
		return -ENODEV;
	}
	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", name);
	if (access(path, F_OK)) {
		log_error("--net tap=%s: not a tap device", name);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int ret = -errno;

		log_error("--net tap=%s: /dev/net/tun: %s", name, strerror(-ret));
		return ret;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int ret = -errno;

		if (ret == -EBUSY)
			log_error("--net tap=%s: the tap is in use by another process", name);
		else if (ret == -EINVAL)
			log_error("--net tap=%s: the device does not take a single-queue tap with "
				  "a virtio-net header (is it a tun, or multi_queue?)", name);
		else
			log_error("--net tap=%s: %s", name, strerror(-ret));
		close(fd);
		return ret;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		int ret = -errno;

		log_error("--net tap=%s: TUNSETVNETHDRSZ: %s", name, strerror(-ret));
		close(fd);
		return ret;
	}
	return fd;
}

/* What the tap may hand us, from the features the guest accepted. */
static void tap_set_offloads(struct virtio_net *n)
{
	unsigned flags = 0;

	if (n->tap_fd < 0 || !n->tap_offloads)
		return;
	if (virtio_pci_feature(&n->vp, VIRTIO_NET_F_GUEST_CSUM)) {
		flags |= TUN_F_CSUM;
		if (virtio_pci_feature(&n->vp, VIRTIO_NET_F_GUEST_TSO4))
			flags |= TUN_F_TSO4;
		if (virtio_pci_feature(&n->vp, VIRTIO_NET_F_GUEST_TSO6))
			flags |= TUN_F_TSO6;
		if (virtio_pci_feature(&n->vp, VIRTIO_NET_F_GUEST_ECN))
			flags |= TUN_F_TSO_ECN;
	}
	if (ioctl(n->tap_fd, TUNSETOFFLOAD, flags) < 0)
		log_warn("--net tap=%s: TUNSETOFFLOAD %#x: %s", n->cfg.tap, flags, strerror(errno));
}

/* ---- announcements ---- */

static void arm_timer(struct virtio_net *n, unsigned ms)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 },
	};

	if (timerfd_settime(n->timer_fd, 0, &its, NULL) < 0)
		log_warn("--net tap=%s: timerfd: %s", n->cfg.tap, strerror(errno));
}

/* A RARP "reverse request" from the guest's MAC, as QEMU's self-announce
 * sends: switches on the path learn the port it is behind now. */
static void send_announce(struct virtio_net *n)
{
	uint8_t f[VIRTIO_NET_HDR_LEN + 60] = { 0 };
	uint8_t *e = f + VIRTIO_NET_HDR_LEN;

	memset(e, 0xff, 6);
	memcpy(e + 6, n->cfg.mac, 6);
	e[12] = 0x80, e[13] = 0x35;             /* ETH_P_RARP */
	e[14] = 0, e[15] = 1;                   /* Ethernet */
	e[16] = 0x08, e[17] = 0x00;             /* IPv4 */
	e[18] = 6, e[19] = 4;
	e[20] = 0, e[21] = 3;                   /* reverse request */
	memcpy(e + 22, n->cfg.mac, 6);
	memcpy(e + 32, n->cfg.mac, 6);
	if (write(n->tap_fd, f, sizeof(f)) < 0)
		log_debug("--net tap=%s: announce: %s", n->cfg.tap, strerror(errno));
}

static void announce_tick(struct virtio_net *n)
{
	unsigned round = ANNOUNCE_ROUNDS - n->announce_left;

	send_announce(n);
	if (--n->announce_left)
		arm_timer(n, ANNOUNCE_FIRST_MS + ANNOUNCE_STEP_MS * round);
}

/* ---- the queues ---- */

/* Takes the next chain of queue qi into n->elem: 1, or 0 when there is
 * none or the device may not serve; a malformed chain breaks the device. */
static int take(struct virtio_net *n, unsigned qi, const char *what)
{
	struct virtio_pci *vp = &n->vp;
	int r;

	pthread_mutex_lock(&vp->lock);
	r = virtio_pci_may_serve(vp) ? virtq_pop(&vp->vq[qi], n->elem) : 0;
	if (r < 0)
		virtio_pci_set_broken(vp, what);
	pthread_mutex_unlock(&vp->lock);
	return r > 0;
}

/* Returns n->elem with len bytes written; the driver is interrupted every
 * BATCH chains (and by give_done() for the rest). broken: the chain broke
 * the rules, the device stops. */
static void give(struct virtio_net *n, unsigned qi, uint32_t len, unsigned *done,
		 const char *broken)
{
	struct virtio_pci *vp = &n->vp;
	struct virtq *q = &vp->vq[qi];

	pthread_mutex_lock(&vp->lock);
	virtq_push(q, n->elem, len);
	if (broken)
		virtio_pci_set_broken(vp, broken);
	else if (++*done % BATCH == 0 && virtq_should_notify(q))
		virtio_pci_notify_queue(vp, qi);
	pthread_mutex_unlock(&vp->lock);
}

static void give_done(struct virtio_net *n, unsigned qi, unsigned done)
{
	struct virtio_pci *vp = &n->vp;

	if (!(done % BATCH))
		return;
	pthread_mutex_lock(&vp->lock);
	if (virtq_should_notify(&vp->vq[qi]))
		virtio_pci_notify_queue(vp, qi);
	pthread_mutex_unlock(&vp->lock);
}

static void tx(struct virtio_net *n)
{
	unsigned done = 0;

	while (take(n, VIRTIO_NET_TXQ, "the driver made a malformed transmit chain")) {
		if (n->elem->out_len < VIRTIO_NET_HDR_LEN || n->elem->n_in) {
			give(n, VIRTIO_NET_TXQ, 0, &done, "a transmit chain without a header");
			break;
		}
		/* The header goes to the tap as it is: the tap's vnet header is
		 * virtio_net_hdr_v1. A full or failing tap drops the frame, as a
		 * wire would. */
		if (writev(n->tap_fd, n->elem->iov, (int)n->elem->n_out) < 0 && errno != EAGAIN)
			log_debug("--net tap=%s: transmit: %s", n->cfg.tap, strerror(errno));
		give(n, VIRTIO_NET_TXQ, 0, &done, NULL);
		if (virtio_worker_yield(&n->worker))
			break;
	}
	give_done(n, VIRTIO_NET_TXQ, done);
}

static void rx(struct virtio_net *n)
{
	unsigned done = 0;

	while (take(n, VIRTIO_NET_RXQ, "the driver made a malformed receive chain")) {
		uint8_t nb[2];
		ssize_t len;

		if (n->elem->in_len < VIRTIO_NET_HDR_LEN || n->elem->n_out) {
			give(n, VIRTIO_NET_RXQ, 0, &done,
			     "a receive buffer smaller than the header");
			break;
		}
		len = readv(n->tap_fd, n->elem->iov, (int)n->elem->n_in);
		if (len < 0) {
			/* Nothing to read: the chain goes back unused. */
			pthread_mutex_lock(&n->vp.lock);
			virtq_unpop(&n->vp.vq[VIRTIO_NET_RXQ]);
			pthread_mutex_unlock(&n->vp.lock);
			break;
		}
		put_le16(nb, 1);
		buf_to_iov(n->elem->iov, n->elem->n_in, VIRTIO_NET_HDR_NUM_BUFFERS, nb, 2);
		give(n, VIRTIO_NET_RXQ, (uint32_t)len, &done, NULL);
		if (virtio_worker_yield(&n->worker))
			break;
	}
	give_done(n, VIRTIO_NET_RXQ, done);
}

enum { FD_RXQ, FD_TXQ, FD_TAP, FD_TIMER };

static void net_fill(void *dev, struct pollfd *fds, unsigned *cnt)
{
	struct virtio_net *n = dev;
	bool rx_room;

	/* Without a tap (its opening failed after a migration) the tap's entry
	 * is -1, which poll skips: frames sent are dropped, none arrive. */
	pthread_mutex_lock(&n->vp.lock);
	rx_room = virtio_pci_may_serve(&n->vp) && virtq_has_work(&n->vp.vq[VIRTIO_NET_RXQ]);
	pthread_mutex_unlock(&n->vp.lock);
	fds[FD_RXQ] = (struct pollfd){ .fd = n->vp.notify_fd[VIRTIO_NET_RXQ], .events = POLLIN };
	fds[FD_TXQ] = (struct pollfd){ .fd = n->vp.notify_fd[VIRTIO_NET_TXQ], .events = POLLIN };
	/* Frames wait in the tap until the guest gives receive buffers. */
	fds[FD_TAP] = (struct pollfd){ .fd = n->tap_fd, .events = rx_room ? POLLIN : 0 };
	fds[FD_TIMER] = (struct pollfd){ .fd = n->timer_fd, .events = POLLIN };
	*cnt = 4;
}

static void net_work(void *dev, const struct pollfd *fds, unsigned cnt)
{
	struct virtio_net *n = dev;
	uint64_t v;

	if (cnt < 4)
		return;
	while (read(fds[FD_RXQ].fd, &v, sizeof(v)) > 0)
		;
	while (read(fds[FD_TXQ].fd, &v, sizeof(v)) > 0)
		;
	if ((fds[FD_TIMER].revents & POLLIN) && read(n->timer_fd, &v, sizeof(v)) > 0 &&
	    n->announce_left)
		announce_tick(n);
	tx(n);
	rx(n);
}

/* ---- transport hooks ---- */

static int net_activate(struct virtio_pci *vp)
{
	struct virtio_net *n = net_of(vp);

	tap_set_offloads(n);
	virtio_worker_kick(&n->worker);
	return 0;
}

static void net_quiesce(struct virtio_pci *vp)
{
	struct virtio_net *n = net_of(vp);

	pthread_mutex_lock(&vp->lock);
	vp->active = false;
	pthread_mutex_unlock(&vp->lock);
	virtio_worker_kick(&n->worker);
	virtio_worker_wait_idle(&n->worker);
}

static const struct virtio_device_ops net_virtio_ops = {
	.device_id = VIRTIO_ID_NET,
	.class_code = 0x020000, /* network, Ethernet */
	.activate = net_activate,
	.quiesce = net_quiesce,
	.config_read = net_config_read,
	.config_write = net_config_write,
};

static bool tap_probe_offloads(int fd)
{
	unsigned all = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

	if (ioctl(fd, TUNSETOFFLOAD, all) < 0)
		return false;
	/* Nothing offloaded until the guest says what it can take. */
	return ioctl(fd, TUNSETOFFLOAD, 0) == 0;
}

int virtio_net_create(struct virtio_net *n, const struct virtio_net_config *cfg,
		      const struct virtio_host *host, bool start_paused)
{
	uint64_t features = VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
			    VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
			    VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN);
	int fd, ret;

	memset(n, 0, sizeof(*n));
	n->tap_fd = n->timer_fd = -1;
	n->cfg = *cfg;
	n->status = VIRTIO_NET_S_LINK_UP;
	n->elem = calloc(1, sizeof(*n->elem));
	if (!n->elem) {
		ret = -ENOMEM;
		log_error("--net tap=%s: out of memory", cfg->tap);
		goto fail;
	}
	/* Opened for the check even when deferred: a missing tap or one in
	 * use is reported at start-up. */
	fd = tap_open(cfg->tap);
	if (fd < 0) {
		ret = fd;
		goto fail;
	}
	n->tap_offloads = tap_probe_offloads(fd);
	if (cfg->defer_open)
		close(fd);
	else
		n->tap_fd = fd;
	if (n->tap_offloads)
		features |=
			VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
			VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN);
	n->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (n->timer_fd < 0) {
		ret = -errno;
		log_error("--net tap=%s: timerfd: %s", cfg->tap, strerror(-ret));
		goto fail;
	}
	ret = virtio_pci_init(&n->vp, &net_virtio_ops, n, host, features, 2, QUEUE_SIZE,
			      CONFIG_SIZE, VIRTIO_PCI_SUBSYS_MIN + VIRTIO_ID_NET);
	if (ret)
		goto fail;
	n->worker = (struct virtio_worker){ .fill = net_fill, .work = net_work, .dev = n };
	ret = virtio_worker_start(&n->worker, start_paused);
	if (ret)
		goto fail;
	return 0;
fail:
	virtio_net_destroy(n);
	return ret;
}

void virtio_net_destroy(struct virtio_net *n)
{
	virtio_worker_stop(&n->worker);
	virtio_pci_destroy(&n->vp);
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	if (n->timer_fd >= 0)
		close(n->timer_fd);
	n->tap_fd = n->timer_fd = -1;
	free(n->elem);
	n->elem = NULL;
}

/* ---- device registry hooks ---- */

static void net_pause(void *dev)
{
	struct virtio_net *n = dev;

	virtio_worker_pause(&n->worker);
}

static int net_resume(void *dev)
{
	struct virtio_net *n = dev;
	int ret = 0;

	if (n->tap_fd < 0) {
		int fd = tap_open(n->cfg.tap);

		if (fd < 0) {
			/* The guest sees its link go down rather than a NIC that
			 * silently eats frames. */
			ret = fd;
			pthread_mutex_lock(&n->vp.lock);
			n->status &= (uint16_t)~VIRTIO_NET_S_LINK_UP;
			pthread_mutex_unlock(&n->vp.lock);
			virtio_pci_notify_config(&n->vp);
		} else {
			n->tap_fd = fd;
			tap_set_offloads(n);
		}
	}
	if (n->announce_pending) {
		n->announce_pending = false;
		n->announce_left = ANNOUNCE_ROUNDS;
		arm_timer(n, 1); /* the first at once */
	}
	virtio_worker_resume(&n->worker);
	/* Look at both queues once: a pause that came after the thread read a
	 * notification but before it took the buffers leaves them waiting
	 * with the notification gone. */
	if (eventfd_write(n->vp.notify_fd[VIRTIO_NET_RXQ], 1) ||
	    eventfd_write(n->vp.notify_fd[VIRTIO_NET_TXQ], 1))
		log_warn("--net tap=%s: eventfd: %s", n->cfg.tap, strerror(errno));
	return ret;
}

static int net_save(void *dev, struct buf *out)
{
	struct virtio_net *n = dev;

	buf_put(out, n->cfg.mac, 6);
	buf_put_u16(out, n->status);
	virtio_pci_save(&n->vp, out);
	return buf_finish(out);
}

static int net_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct virtio_net *n = dev;
	struct reader r;
	uint8_t mac[6];
	uint16_t status;
	int ret;

	if (version != 1)
		return -EPROTO;
	reader_init(&r, data, len);
	reader_get(&r, mac, 6);
	status = reader_u16(&r);
	if (r.short_read || (status & ~VIRTIO_NET_S_LINK_UP) || (mac[0] & 1))
		return -EINVAL;
	if (n->cfg.mac_given && memcmp(mac, n->cfg.mac, 6)) {
		log_error("--net tap=%s: mac=%02x:%02x:%02x:%02x:%02x:%02x here, the guest has "
			  "%02x:%02x:%02x:%02x:%02x:%02x",
			  n->cfg.tap, n->cfg.mac[0], n->cfg.mac[1], n->cfg.mac[2], n->cfg.mac[3],
			  n->cfg.mac[4], n->cfg.mac[5], mac[0], mac[1], mac[2], mac[3], mac[4],
			  mac[5]);
		return -EINVAL;
	}
	ret = virtio_pci_load(&n->vp, &r);
	if (ret)
		return ret;
	if (reader_finish(&r))
		return -EINVAL;
	ret = virtio_pci_post_load(&n->vp);
	if (ret)
		return ret;
	memcpy(n->cfg.mac, mac, 6);
	n->status = status;
	n->announce_pending = true;
	return 0;
}

static void net_reset(void *dev)
{
	struct virtio_net *n = dev;

	virtio_pci_reset(&n->vp);
	pci_function_reset(&n->vp.pci);
}

const struct device_ops virtio_net_device_ops = {
	.name = "virtio-net",
	.version = 1,
	.save = net_save,
	.load = net_load,
	.reset = net_reset,
	.pause = net_pause,
	.resume = net_resume,
};
