#include "devices/virtio/pci.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define BAR_MSIX          1
#define BAR_VIRTIO        4
#define BAR_MSIX_SIZE     0x1000
#define MSIX_PBA_OFF      0x800
#define BAR_VIRTIO_SIZE   0x4000
#define OFF_COMMON        0x0000
#define OFF_ISR           0x1000
#define OFF_DEVICE        0x2000
#define OFF_NOTIFY        0x3000
#define NOTIFY_MULT       4
/* The common configuration through queue_device: queue_notify_data and
 * queue_reset belong to features not offered (NOTIF_CONFIG_DATA, RING_RESET). */
#define COMMON_SIZE       (VIRTIO_CC_QDEVICE + 8)
/* The device status and ISR bits the spec defines (§2.1, §4.1.4.5): a
 * saved state with any other set is damaged. */
#define STATUS_BITS                                                                        \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |      \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)
#define ISR_BITS          (VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG)

static struct virtio_pci *of_function(struct pci_function *f)
{
	return f->owner;
}

bool virtio_pci_feature(const struct virtio_pci *vp, unsigned bit)
{
	return vp->s.driver_features & VIRTIO_BIT(bit);
}

bool virtio_pci_may_serve(const struct virtio_pci *vp)
{
	return vp->active && (get_le16(vp->pci.cfg + PCI_COMMAND) & PCI_CMD_MASTER);
}

static uint64_t notify_addr(const struct virtio_pci *vp, unsigned q)
{
	uint64_t bar = pci_bar_addr(&vp->pci, BAR_VIRTIO);

	return bar ? bar + OFF_NOTIFY + (uint64_t)q * NOTIFY_MULT : 0;
}

/* Registers each enabled queue's eventfd at its notify address as the BAR
 * sits now (or unregisters everything when !on). Under vp->lock. */
static void update_ioeventfds(struct virtio_pci *vp, bool on)
{
	for (unsigned q = 0; q < vp->nqueues; q++) {
		uint64_t want = on && vp->vq[q].s.enabled ? notify_addr(vp, q) : 0;

		if (want == vp->notify_reg[q] || !vp->host.ioeventfd)
			continue;
		if (vp->notify_reg[q])
			vp->host.ioeventfd(vp->host.ctx, vp->notify_reg[q], vp->notify_fd[q],
					   false);
		vp->notify_reg[q] = 0;
		if (want && vp->host.ioeventfd(vp->host.ctx, want, vp->notify_fd[q], true) == 0)
			vp->notify_reg[q] = want;
	}
}

static void send_config_irq(struct virtio_pci *vp)
{
	vp->s.isr |= VIRTIO_ISR_CONFIG;
	if (pci_msix_enabled(&vp->pci))
		pci_msix_notify(&vp->pci, vp->s.config_msix_vector);
}

void virtio_pci_notify_config(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp->s.config_generation++;
	send_config_irq(vp);
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_set_broken(struct virtio_pci *vp, const char *why)
{
	/* Under vp->lock (the worker found it while taking a request). */
	if (vp->s.status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn("virtio device %02x (%s): %s; marked as needing reset",
		 vp->ops->device_id, vp->ops->device_id == VIRTIO_ID_BLOCK ? "blk" : "net", why);
	vp->s.status |= VIRTIO_STATUS_NEEDS_RESET;
	vp->active = false;
	send_config_irq(vp);
}

void virtio_pci_notify_queue(struct virtio_pci *vp, unsigned q)
{
	vp->s.isr |= VIRTIO_ISR_QUEUE;
	if (pci_msix_enabled(&vp->pci))
		pci_msix_notify(&vp->pci, vp->vq[q].s.msix_vector);
}

/* Under vp->lock. */
static void reset_state(struct virtio_pci *vp)
{
	update_ioeventfds(vp, false);
	for (unsigned q = 0; q < vp->nqueues; q++)
		virtq_reset(&vp->vq[q]);
	vp->s = (struct virtio_pci_state){ .config_msix_vector = VIRTIO_MSI_NO_VECTOR };
	vp->active = false;
}

void virtio_pci_reset(struct virtio_pci *vp)
{
	vp->ops->quiesce(vp);
	pthread_mutex_lock(&vp->lock);
	reset_state(vp);
	pthread_mutex_unlock(&vp->lock);
}

/* DRIVER_OK: rings mapped, eventfds registered, the device told. Under
 * vp->lock. */
static void activate(struct virtio_pci *vp)
{
	bool indirect = virtio_pci_feature(vp, VIRTIO_F_INDIRECT_DESC);

	for (unsigned q = 0; q < vp->nqueues; q++) {
		vp->vq[q].indirect = indirect;
		if (vp->vq[q].s.enabled && virtq_map(&vp->vq[q])) {
			virtio_pci_set_broken(vp, "a queue lies outside guest RAM");
			return;
		}
	}
	update_ioeventfds(vp, true);
	vp->active = true;
	if (vp->ops->activate(vp))
		virtio_pci_set_broken(vp, "the device could not start");
}

static bool features_ok(const struct virtio_pci *vp)
{
	uint64_t f = vp->s.driver_features;

	return !(f & ~vp->device_features) && (f & VIRTIO_BIT(VIRTIO_F_VERSION_1));
}

static void common_fill(struct virtio_pci *vp, uint8_t *c)
{
	unsigned qs = vp->s.queue_sel;
	const struct virtq *q = qs < vp->nqueues ? &vp->vq[qs] : NULL;
	uint32_t sel = vp->s.dev_feature_sel;

	memset(c, 0, COMMON_SIZE);
	put_le32(c + VIRTIO_CC_DFSEL, sel);
	put_le32(c + VIRTIO_CC_DF, sel < 2 ? (uint32_t)(vp->device_features >> (32 * sel)) : 0);
	put_le32(c + VIRTIO_CC_GFSEL, vp->s.drv_feature_sel);
	put_le32(c + VIRTIO_CC_GF, vp->s.drv_feature_sel < 2 ?
		 (uint32_t)(vp->s.driver_features >> (32 * vp->s.drv_feature_sel)) : 0);
	put_le16(c + VIRTIO_CC_MSIX, vp->s.config_msix_vector);
	put_le16(c + VIRTIO_CC_NUMQ, (uint16_t)vp->nqueues);
	c[VIRTIO_CC_STATUS] = vp->s.status;
	c[VIRTIO_CC_CFGGEN] = vp->s.config_generation;
	put_le16(c + VIRTIO_CC_QSEL, (uint16_t)qs);
	if (!q)
		return;
	put_le16(c + VIRTIO_CC_QSIZE, q->s.size);
	put_le16(c + VIRTIO_CC_QMSIX, q->s.msix_vector);
	put_le16(c + VIRTIO_CC_QENABLE, q->s.enabled);
	put_le16(c + VIRTIO_CC_QNOFF, (uint16_t)qs);
	put_le64(c + VIRTIO_CC_QDESC, q->s.desc);
	put_le64(c + VIRTIO_CC_QDRIVER, q->s.avail);
	put_le64(c + VIRTIO_CC_QDEVICE, q->s.used);
}

static bool touches(unsigned off, unsigned size, unsigned field, unsigned flen)
{
	return off < field + flen && field < off + size;
}

static uint16_t checked_vector(const struct virtio_pci *vp, uint16_t v)
{
	return v < vp->pci.msix.nvec ? v : VIRTIO_MSI_NO_VECTOR;
}

/* Under vp->lock; returns true when the driver asked for a reset. */
static bool common_write(struct virtio_pci *vp, unsigned off, const uint8_t *data,
			 unsigned size)
{
	uint8_t c[COMMON_SIZE];
	unsigned qs = vp->s.queue_sel;
	struct virtq *q = qs < vp->nqueues ? &vp->vq[qs] : NULL;

	common_fill(vp, c);
	memcpy(c + off, data, size);
	if (touches(off, size, VIRTIO_CC_DFSEL, 4))
		vp->s.dev_feature_sel = get_le32(c + VIRTIO_CC_DFSEL);
	if (touches(off, size, VIRTIO_CC_GFSEL, 4))
		vp->s.drv_feature_sel = get_le32(c + VIRTIO_CC_GFSEL);
	if (touches(off, size, VIRTIO_CC_GF, 4) && vp->s.drv_feature_sel < 2 &&
	    !(vp->s.status & VIRTIO_STATUS_FEATURES_OK)) {
		unsigned sh = 32 * vp->s.drv_feature_sel;

		vp->s.driver_features &= ~(0xffffffffull << sh);
		vp->s.driver_features |= (uint64_t)get_le32(c + VIRTIO_CC_GF) << sh;
	}
	if (touches(off, size, VIRTIO_CC_MSIX, 2))
		vp->s.config_msix_vector = checked_vector(vp, get_le16(c + VIRTIO_CC_MSIX));
	if (touches(off, size, VIRTIO_CC_STATUS, 1)) {
		uint8_t st = c[VIRTIO_CC_STATUS], old = vp->s.status;

		if (st == 0)
			return true;
		st &= VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |
		      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_FAILED;
		st |= old & VIRTIO_STATUS_NEEDS_RESET;
		if ((st & ~old & VIRTIO_STATUS_FEATURES_OK) && !features_ok(vp))
			st &= ~VIRTIO_STATUS_FEATURES_OK;
		vp->s.status = st;
		/* DRIVER_OK counts only after FEATURES_OK (§3.1.1): a device
		 * never serves with features nobody agreed on. */
		if ((st & ~old & VIRTIO_STATUS_DRIVER_OK) && (st & VIRTIO_STATUS_FEATURES_OK) &&
		    !(st & VIRTIO_STATUS_NEEDS_RESET))
			activate(vp);
	}
	if (touches(off, size, VIRTIO_CC_QSEL, 2))
		vp->s.queue_sel = get_le16(c + VIRTIO_CC_QSEL);
	/* The queue fields below belong to the queue selected before this
	 * write (a driver writes queue_select on its own). */
	if (!q)
		return false;
	if (touches(off, size, VIRTIO_CC_QMSIX, 2))
		q->s.msix_vector = checked_vector(vp, get_le16(c + VIRTIO_CC_QMSIX));
	/* Size and addresses are fixed once the queue is enabled (§4.1.4.3.2). */
	if (!q->s.enabled) {
		if (touches(off, size, VIRTIO_CC_QSIZE, 2)) {
			uint16_t n = get_le16(c + VIRTIO_CC_QSIZE);

			/* A split ring: a power of two up to the maximum. */
			if (n && n <= q->max_size && !(n & (n - 1)))
				q->s.size = n;
		}
		if (touches(off, size, VIRTIO_CC_QDESC, 8))
			q->s.desc = get_le64(c + VIRTIO_CC_QDESC);
		if (touches(off, size, VIRTIO_CC_QDRIVER, 8))
			q->s.avail = get_le64(c + VIRTIO_CC_QDRIVER);
		if (touches(off, size, VIRTIO_CC_QDEVICE, 8))
			q->s.used = get_le64(c + VIRTIO_CC_QDEVICE);
		if (touches(off, size, VIRTIO_CC_QENABLE, 2) &&
		    get_le16(c + VIRTIO_CC_QENABLE) == 1) {
			q->s.enabled = true;
			if (vp->active) {
				/* Enabled after DRIVER_OK: serve it from now. */
				q->indirect = virtio_pci_feature(vp, VIRTIO_F_INDIRECT_DESC);
				if (virtq_map(q))
					virtio_pci_set_broken(vp, "a queue lies outside guest RAM");
				update_ioeventfds(vp, true);
			}
		}
	}
	return false;
}

static void bar_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct virtio_pci *vp = dev;

	memset(data, 0, size);
	pthread_mutex_lock(&vp->lock);
	if (off < COMMON_SIZE && range_within(off, size, COMMON_SIZE)) {
		uint8_t c[COMMON_SIZE];

		common_fill(vp, c);
		memcpy(data, c + off, size);
	} else if (off == OFF_ISR) {
		data[0] = vp->s.isr; /* reading clears it (§4.1.4.5) */
		vp->s.isr = 0;
	} else if (off >= OFF_DEVICE && range_within(off - OFF_DEVICE, size, vp->config_size)) {
		vp->ops->config_read(vp, (unsigned)(off - OFF_DEVICE), data, size);
	}
	pthread_mutex_unlock(&vp->lock);
}

static void bar_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct virtio_pci *vp = dev;
	bool reset = false;

	if (off >= OFF_NOTIFY && off < OFF_NOTIFY + (uint64_t)vp->nqueues * NOTIFY_MULT) {
		/* No ioeventfd here (or not yet): the vCPU passes it on. */
		uint64_t one = 1;
		unsigned q = (unsigned)(off - OFF_NOTIFY) / NOTIFY_MULT;

		if (write(vp->notify_fd[q], &one, sizeof(one)) < 0)
			log_warn("virtio notify: %s", strerror(errno));
		return;
	}
	pthread_mutex_lock(&vp->lock);
	if (range_within(off, size, COMMON_SIZE))
		reset = common_write(vp, (unsigned)off, data, size);
	else if (off >= OFF_DEVICE && range_within(off - OFF_DEVICE, size, vp->config_size))
		vp->ops->config_write(vp, (unsigned)(off - OFF_DEVICE), data, size);
	pthread_mutex_unlock(&vp->lock);
	if (reset)
		virtio_pci_reset(vp);
}

static const struct bus_ops virtio_bar_ops = {
	.read = bar_read,
	.write = bar_write,
};

static void bars_changed(struct pci_function *f)
{
	struct virtio_pci *vp = of_function(f);

	pthread_mutex_lock(&vp->lock);
	update_ioeventfds(vp, vp->active);
	pthread_mutex_unlock(&vp->lock);
}

static const struct pci_function_ops virtio_function_ops = {
	.bars_changed = bars_changed,
};

/* VIRTIO_PCI_CAP_PCI_CFG: a window onto the BARs through config space. */
static bool pci_cfg_window(struct virtio_pci *vp, const struct pci_bar **bar, uint32_t *off,
			   uint32_t *len)
{
	const uint8_t *cap = vp->pci.cfg + vp->pci_cfg_cap;
	unsigned b = cap[VIRTIO_CAP_BAR];

	*off = get_le32(cap + VIRTIO_CAP_OFFSET);
	*len = get_le32(cap + VIRTIO_CAP_LENGTH);
	if (b >= PCI_NUM_BARS || !vp->pci.bars[b].size || (*len != 1 && *len != 2 && *len != 4) ||
	    !range_within(*off, *len, vp->pci.bars[b].size))
		return false;
	*bar = &vp->pci.bars[b];
	return true;
}

static void pci_cfg_read(struct pci_function *f, unsigned off, uint8_t *data, unsigned size)
{
	struct virtio_pci *vp = of_function(f);
	const struct pci_bar *bar;
	uint8_t win[4] = { 0 };
	uint32_t boff, len;
	unsigned at = off - (vp->pci_cfg_cap + VIRTIO_CAP_PCI_CFG_DATA);

	if (pci_cfg_window(vp, &bar, &boff, &len))
		bar->ops->read(bar->dev, boff, win, len);
	memcpy(data, win + at, size);
}

static void pci_cfg_write(struct pci_function *f, unsigned off, const uint8_t *data,
			  unsigned size)
{
	struct virtio_pci *vp = of_function(f);
	const struct pci_bar *bar;
	uint32_t boff, len;

	if (off == vp->pci_cfg_cap + VIRTIO_CAP_PCI_CFG_DATA &&
	    pci_cfg_window(vp, &bar, &boff, &len) && size >= len)
		bar->ops->write(bar->dev, boff, data, len);
}

static uint8_t add_vendor_cap(struct pci_function *f, uint8_t type, uint8_t bar, uint32_t off,
			      uint32_t len, uint8_t cap_len)
{
	uint8_t c = pci_function_add_cap(f, PCI_CAP_VENDOR, cap_len);

	f->cfg[c + VIRTIO_CAP_CAPLEN] = cap_len;
	f->cfg[c + VIRTIO_CAP_CFGTYPE] = type;
	f->cfg[c + VIRTIO_CAP_BAR] = bar;
	put_le32(f->cfg + c + VIRTIO_CAP_OFFSET, off);
	put_le32(f->cfg + c + VIRTIO_CAP_LENGTH, len);
	return c;
}

int virtio_pci_init(struct virtio_pci *vp, const struct virtio_device_ops *ops, void *dev,
		    const struct virtio_host *host, uint64_t device_features, unsigned nqueues,
		    uint16_t max_queue_size, uint32_t config_size, uint16_t subsys_id)
{
	struct pci_function *f = &vp->pci;
	uint8_t c;

	memset(vp, 0, sizeof(*vp));
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->notify_fd[q] = -1;
	vp->ops = ops;
	vp->dev = dev;
	vp->host = *host;
	vp->device_features = device_features | VIRTIO_BIT(VIRTIO_F_VERSION_1) |
			      VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
	vp->nqueues = nqueues;
	vp->config_size = config_size;
	pthread_mutex_init(&vp->lock, NULL);
	for (unsigned q = 0; q < nqueues; q++) {
		virtq_init(&vp->vq[q], max_queue_size, &vp->host.ram);
		vp->notify_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->notify_fd[q] < 0) {
			int ret = -errno;

			virtio_pci_destroy(vp);
			return ret;
		}
	}
	reset_state(vp);

	pci_function_init(f, VIRTIO_PCI_VENDOR, (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_id),
			  ops->class_code, VIRTIO_PCI_REV_MIN, VIRTIO_PCI_VENDOR, subsys_id);
	f->owner = vp;
	f->ops = &virtio_function_ops;
	f->msi = host->msi;
	pci_function_add_bar(f, BAR_MSIX, BAR_MSIX_SIZE, false, &pci_msix_bar_ops, f);
	pci_function_add_bar(f, BAR_VIRTIO, BAR_VIRTIO_SIZE, true, &virtio_bar_ops, vp);
	pci_function_add_msix(f, nqueues + 1, BAR_MSIX, MSIX_PBA_OFF);
	add_vendor_cap(f, VIRTIO_PCI_CAP_COMMON_CFG, BAR_VIRTIO, OFF_COMMON, COMMON_SIZE,
		       VIRTIO_CAP_SIZE);
	c = add_vendor_cap(f, VIRTIO_PCI_CAP_NOTIFY_CFG, BAR_VIRTIO, OFF_NOTIFY,
			   nqueues * NOTIFY_MULT, VIRTIO_CAP_NOTIFY_SIZE);
	put_le32(f->cfg + c + VIRTIO_CAP_NOTIFY_MULT, NOTIFY_MULT);
	add_vendor_cap(f, VIRTIO_PCI_CAP_ISR_CFG, BAR_VIRTIO, OFF_ISR, 1, VIRTIO_CAP_SIZE);
	add_vendor_cap(f, VIRTIO_PCI_CAP_DEVICE_CFG, BAR_VIRTIO, OFF_DEVICE, config_size,
		       VIRTIO_CAP_SIZE);
	c = add_vendor_cap(f, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, VIRTIO_CAP_PCI_CFG_SIZE);
	vp->pci_cfg_cap = c;
	/* The driver sets the window: bar, offset and length. */
	f->wmask[c + VIRTIO_CAP_BAR] = 0xff;
	memset(f->wmask + c + VIRTIO_CAP_OFFSET, 0xff, 8);
	f->hook_start = (uint8_t)(c + VIRTIO_CAP_PCI_CFG_DATA);
	f->hook_end = (uint8_t)(c + VIRTIO_CAP_PCI_CFG_SIZE);
	f->cfg_read_hook = pci_cfg_read;
	f->cfg_write_hook = pci_cfg_write;
	return 0;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	update_ioeventfds(vp, false);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (vp->notify_fd[q] >= 0)
			close(vp->notify_fd[q]);
		vp->notify_fd[q] = -1;
	}
}

int virtio_pci_save(struct virtio_pci *vp, struct buf *out)
{
	pci_function_save(&vp->pci, out);
	pthread_mutex_lock(&vp->lock);
	buf_put_u32(out, vp->s.dev_feature_sel);
	buf_put_u32(out, vp->s.drv_feature_sel);
	buf_put_u64(out, vp->s.driver_features);
	buf_put_u16(out, vp->s.config_msix_vector);
	buf_put_u16(out, vp->s.queue_sel);
	buf_put_u8(out, vp->s.status);
	buf_put_u8(out, vp->s.config_generation);
	buf_put_u8(out, vp->s.isr);
	buf_put_u32(out, vp->nqueues);
	for (unsigned q = 0; q < vp->nqueues; q++)
		virtq_save(&vp->vq[q], out);
	pthread_mutex_unlock(&vp->lock);
	return 0;
}

int virtio_pci_load(struct virtio_pci *vp, struct reader *in)
{
	struct pci_function_saved ps;
	struct virtio_pci_state s;
	struct virtq_state qs[VIRTIO_MAX_QUEUES];
	uint32_t nq;
	int ret;

	ret = pci_function_load_check(&vp->pci, in, &ps);
	if (ret)
		return ret;
	s.dev_feature_sel = reader_u32(in);
	s.drv_feature_sel = reader_u32(in);
	s.driver_features = reader_u64(in);
	s.config_msix_vector = reader_u16(in);
	s.queue_sel = reader_u16(in);
	s.status = reader_u8(in);
	s.config_generation = reader_u8(in);
	s.isr = reader_u8(in);
	nq = reader_u32(in);
	if (in->short_read || nq != vp->nqueues)
		return -EINVAL;
	if (((s.status & VIRTIO_STATUS_FEATURES_OK) &&
	     (s.driver_features & ~vp->device_features)) ||
	    (s.config_msix_vector != VIRTIO_MSI_NO_VECTOR &&
	     s.config_msix_vector >= vp->pci.msix.nvec) ||
	    (s.status & (uint8_t)~STATUS_BITS) || (s.isr & ~ISR_BITS))
		return -EINVAL;
	for (unsigned q = 0; q < nq; q++) {
		ret = virtq_load_state(&qs[q], vp->vq[q].max_size, in);
		if (ret)
			return ret;
		if (qs[q].msix_vector != VIRTIO_MSI_NO_VECTOR &&
		    qs[q].msix_vector >= vp->pci.msix.nvec)
			return -EINVAL;
	}
	/* The transport's section ends the device's record: nothing changes
	 * before all of it was checked. */
	if (reader_finish(in))
		return -EINVAL;
	pci_function_load_commit(&vp->pci, &ps);
	pthread_mutex_lock(&vp->lock);
	vp->s = s;
	for (unsigned q = 0; q < nq; q++) {
		vp->vq[q].s = qs[q];
		virtq_unmap(&vp->vq[q]);
	}
	vp->active = false;
	pthread_mutex_unlock(&vp->lock);
	return 0;
}

int virtio_pci_post_load(struct virtio_pci *vp)
{
	int ret = 0;

	pthread_mutex_lock(&vp->lock);
	if ((vp->s.status & VIRTIO_STATUS_DRIVER_OK) &&
	    !(vp->s.status & VIRTIO_STATUS_NEEDS_RESET)) {
		bool indirect = virtio_pci_feature(vp, VIRTIO_F_INDIRECT_DESC);

		for (unsigned q = 0; q < vp->nqueues && !ret; q++) {
			vp->vq[q].indirect = indirect;
			if (vp->vq[q].s.enabled)
				ret = virtq_map(&vp->vq[q]);
		}
		if (!ret) {
			update_ioeventfds(vp, true);
			vp->active = true;
			/* What the driver made available before the source
			 * paused was notified there: look at every queue once. */
			for (unsigned q = 0; q < vp->nqueues; q++)
				if (vp->vq[q].s.enabled)
					eventfd_write(vp->notify_fd[q], 1);
		}
	}
	pthread_mutex_unlock(&vp->lock);
	return ret;
}
