/* virtio-pci modern transport and split virtqueues (ring 3); see virtio.h.
 * Spec references are to virtio 1.2. */
#include "virtio.h"
#include "bootinfo.h"
#include "console.h"
#include "lib.h"
#include "user.h"

/* What we use of struct virtio_pci_common_cfg: up to queue_device. */
#define COMMON_LEN      (VIRTIO_CC_QDEVICE + 8)

#define RESET_WAIT_MS   1000

/* Rings of every queue, page-aligned (more than the 16/2/4 bytes the
 * spec asks), zeroed before use. */
struct vq_mem {
	struct vring_desc desc[VIRTQ_MAX_SIZE];
	u8 avail[4096];
	u8 used[4096];
} __attribute__((aligned(4096)));

_Static_assert(sizeof(struct vring_desc) * VIRTQ_MAX_SIZE <= 4096 &&
	       4 + 2 * VIRTQ_MAX_SIZE + 2 <= 4096 &&
	       4 + 8 * VIRTQ_MAX_SIZE + 2 <= 4096, "vq_mem too small");

static struct vq_mem vq_mem[VIRTQ_MAX];
static u32 vq_mem_used;

static u8 rd8(const struct virtio_dev *d, u32 off)
{
	return *(volatile u8 *)(d->common + off);
}

static u16 rd16(const struct virtio_dev *d, u32 off)
{
	return *(volatile u16 *)(d->common + off);
}

static u32 rd32(const struct virtio_dev *d, u32 off)
{
	return *(volatile u32 *)(d->common + off);
}

static void wr8(const struct virtio_dev *d, u32 off, u8 v)
{
	*(volatile u8 *)(d->common + off) = v;
}

static void wr16(const struct virtio_dev *d, u32 off, u16 v)
{
	*(volatile u16 *)(d->common + off) = v;
}

static void wr32(const struct virtio_dev *d, u32 off, u32 v)
{
	*(volatile u32 *)(d->common + off) = v;
}

/* 64-bit fields as two 32-bit writes, low half first (§4.1.3.1). */
static void wr64(const struct virtio_dev *d, u32 off, u64 v)
{
	wr32(d, off, (u32)v);
	wr32(d, off + 4, (u32)(v >> 32));
}

static int warn(const struct virtio_dev *d, const char *what)
{
	console_printf("ferry-agent warning: virtio %s: %s\n", d->pci.name, what);
	return -1;
}

u16 virtio_pci_type(const struct pci_dev *p)
{
	if (p->vendor != VIRTIO_PCI_VENDOR)
		return 0;
	if (p->device >= VIRTIO_PCI_DEVICE_BASE &&
	    p->device <= VIRTIO_PCI_DEVICE_LAST)
		return p->device - VIRTIO_PCI_DEVICE_BASE;
	if (p->device >= VIRTIO_PCI_TRANS_FIRST &&
	    p->device <= VIRTIO_PCI_TRANS_LAST)
		return p->subsys_id;
	return 0;
}

/* Map the structure one vendor capability points at; NULL on a bad one. */
static volatile u8 *map_cap(struct virtio_dev *d, u8 cap, u32 min_len,
			    u32 *len_out, const char *what)
{
	u8 bar = pci_read8(&d->pci, cap + VIRTIO_CAP_BAR);
	u32 off = pci_read32(&d->pci, cap + VIRTIO_CAP_OFFSET);
	u32 len = pci_read32(&d->pci, cap + VIRTIO_CAP_LENGTH);

	if (len < min_len) {
		console_printf("ferry-agent warning: virtio %s: %s capability "
			       "too short (%u bytes)\n", d->pci.name, what, len);
		return NULL;
	}
	if (len_out)
		*len_out = len;
	return pci_bar_ptr(&d->pci, bar, off, len, what);
}

/* The first capability of each type we need (§4.1.4: use the first one
 * the driver can handle). */
static int find_caps(struct virtio_dev *d)
{
	u8 cap = 0, ncommon = 0, nnotify = 0, nisr = 0, ndev = 0;

	while ((cap = pci_find_cap(&d->pci, PCI_CAP_VENDOR, cap))) {
		u8 type = pci_read8(&d->pci, cap + VIRTIO_CAP_CFGTYPE);

		if (type == VIRTIO_PCI_CAP_COMMON_CFG && !ncommon++)
			d->common = map_cap(d, cap, COMMON_LEN, NULL, "common cfg");
		else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && !nnotify++ &&
			 pci_read8(&d->pci, cap + VIRTIO_CAP_CAPLEN) >=
			 VIRTIO_CAP_NOTIFY_SIZE) {
			d->notify_base = map_cap(d, cap, 2, NULL, "notify cfg");
			d->notify_mult = pci_read32(&d->pci,
						    cap + VIRTIO_CAP_NOTIFY_MULT);
		} else if (type == VIRTIO_PCI_CAP_ISR_CFG && !nisr++)
			d->isr = map_cap(d, cap, 1, NULL, "isr cfg");
		else if (type == VIRTIO_PCI_CAP_DEVICE_CFG && !ndev++)
			d->devcfg = map_cap(d, cap, 1, &d->devcfg_len, "device cfg");
	}
	if (!d->common || !d->notify_base || !d->isr)
		return warn(d, "missing or bad virtio capability (common, "
			    "notify, isr)");
	return 0;
}

/* Write 0 and wait until the device reads back 0 (§4.1.4.3.2). */
static int reset(struct virtio_dev *d)
{
	u64 t0 = now_tsc();

	wr8(d, VIRTIO_CC_STATUS, 0);
	while (rd8(d, VIRTIO_CC_STATUS)) {
		if (now_tsc() - t0 > RESET_WAIT_MS * boot.tsc_khz)
			return warn(d, "reset did not complete");
		cpu_relax();
	}
	return 0;
}

static void set_status(struct virtio_dev *d, u8 bits)
{
	wr8(d, VIRTIO_CC_STATUS, rd8(d, VIRTIO_CC_STATUS) | bits);
}

int virtio_probe(struct virtio_dev *d, const struct pci_dev *p, u32 irq_apic)
{
	*d = (struct virtio_dev){ .pci = *p, .type = virtio_pci_type(p),
				  .cfg_msi = -1, .irq_apic = irq_apic };
	if (find_caps(d))
		return -1;
	pci_enable(&d->pci);
	if (msix_setup(&d->pci, &d->msix)) {
		warn(d, "no usable MSI-X: running without interrupts");
		d->msix.size = 0;
	}
	if (reset(d))
		return -1;
	set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(d, VIRTIO_STATUS_DRIVER);
	d->num_queues = rd16(d, VIRTIO_CC_NUMQ);
	return 0;
}

int virtio_negotiate(struct virtio_dev *d, u64 wanted, u64 required)
{
	u64 offered;

	required |= VIRTIO_BIT(VIRTIO_F_VERSION_1);
	wr32(d, VIRTIO_CC_DFSEL, 0);
	offered = rd32(d, VIRTIO_CC_DF);
	wr32(d, VIRTIO_CC_DFSEL, 1);
	offered |= (u64)rd32(d, VIRTIO_CC_DF) << 32;
	if ((offered & required) != required) {
		virtio_fail(d);
		return warn(d, "required features (VERSION_1) not offered");
	}
	d->features = (offered & wanted) | required;
	wr32(d, VIRTIO_CC_GFSEL, 0);
	wr32(d, VIRTIO_CC_GF, (u32)d->features);
	wr32(d, VIRTIO_CC_GFSEL, 1);
	wr32(d, VIRTIO_CC_GF, (u32)(d->features >> 32));
	set_status(d, VIRTIO_STATUS_FEATURES_OK);
	if (!(rd8(d, VIRTIO_CC_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_fail(d);
		return warn(d, "FEATURES_OK not accepted");
	}
	return 0;
}

/* Route MSI-X table entry `entry` to a fresh MSI vector; -1 (no interrupt)
 * when the table or the vectors ran out. */
static int route_entry(struct virtio_dev *d, u16 entry)
{
	int msi;

	if (entry >= d->msix.size)
		return -1;
	msi = msi_alloc();
	if (msi < 0) {
		warn(d, "out of MSI vectors: polling only");
		return -1;
	}
	msix_route(&d->msix, entry, (u32)msi, d->irq_apic);
	return msi;
}

/* Write a vector register and check the device took it (§4.1.5.1.2: it
 * reads back NO_VECTOR when it could not). */
static int set_vector(struct virtio_dev *d, u32 reg, u16 entry, int msi,
		      const char *what)
{
	u16 v = msi < 0 ? VIRTIO_MSI_NO_VECTOR : entry;

	wr16(d, reg, v);
	if (msi >= 0 && rd16(d, reg) != v) {
		console_printf("ferry-agent warning: virtio %s: %s MSI-X vector "
			       "%u refused\n", d->pci.name, what, v);
		return -1;
	}
	return msi;
}

static void config_vector(struct virtio_dev *d)
{
	int msi = route_entry(d, 0);

	d->cfg_msi = set_vector(d, VIRTIO_CC_MSIX, 0, msi, "config");
}

static void init_rings(struct virtq *q, struct vq_mem *m, u16 size)
{
	memset(m, 0, sizeof(*m));
	q->desc = m->desc;
	q->avail = (struct vring_avail *)m->avail;
	q->used = (volatile struct vring_used *)m->used;
	q->size = size;
	q->free_head = 0;
	q->num_free = size;
	q->last_used = 0;
	for (u16 i = 0; i < size; i++)
		q->desc[i].next = (u16)(i + 1);
}

int virtq_setup(struct virtio_dev *d, struct virtq *q, u16 index, u16 max_size)
{
	u16 dev_size, size = 1, noff, entry;
	struct vq_mem *m;

	if (d->cfg_msi < 0 && d->msix.size && index == 0)
		config_vector(d);
	if (vq_mem_used == VIRTQ_MAX)
		return warn(d, "out of virtqueue memory");
	if (index >= d->num_queues)
		return warn(d, "queue not offered");
	wr16(d, VIRTIO_CC_QSEL, index);
	dev_size = rd16(d, VIRTIO_CC_QSIZE);
	if (max_size > VIRTQ_MAX_SIZE)
		max_size = VIRTQ_MAX_SIZE;
	while ((u32)size * 2 <= dev_size && (u32)size * 2 <= max_size)
		size *= 2;
	if (!dev_size || rd16(d, VIRTIO_CC_QENABLE))
		return warn(d, "queue unavailable or already enabled");
	m = &vq_mem[vq_mem_used++];
	init_rings(q, m, size);
	q->index = index;
	entry = (u16)(1 + index);
	q->msi = set_vector(d, VIRTIO_CC_QMSIX, entry, route_entry(d, entry), "queue");
	wr16(d, VIRTIO_CC_QSIZE, size);
	wr64(d, VIRTIO_CC_QDESC, (u64)(uintptr_t)q->desc);
	wr64(d, VIRTIO_CC_QDRIVER, (u64)(uintptr_t)q->avail);
	wr64(d, VIRTIO_CC_QDEVICE, (u64)(uintptr_t)q->used);
	noff = rd16(d, VIRTIO_CC_QNOFF);
	q->notify = (volatile u16 *)(d->notify_base + (u64)noff * d->notify_mult);
	wr16(d, VIRTIO_CC_QENABLE, 1);
	return 0;
}

int virtio_ready(struct virtio_dev *d)
{
	if (d->msix.size)
		msix_unmask_all(&d->pci, &d->msix);
	set_status(d, VIRTIO_STATUS_DRIVER_OK);
	if (virtio_needs_reset(d)) {
		virtio_fail(d);
		return warn(d, "DEVICE_NEEDS_RESET after DRIVER_OK");
	}
	return 0;
}

void virtio_fail(struct virtio_dev *d)
{
	set_status(d, VIRTIO_STATUS_FAILED);
}

void virtio_abandon(struct virtio_dev *d)
{
	virtio_fail(d);
	wr8(d, VIRTIO_CC_STATUS, 0);
}

bool virtio_needs_reset(const struct virtio_dev *d)
{
	return rd8(d, VIRTIO_CC_STATUS) & VIRTIO_STATUS_NEEDS_RESET;
}

/* §4.1.4.3: retry while config_generation changes under the read. */
#define CFG_READ(d, T, off, expr) ({					\
	T v_;								\
	u8 g_;								\
	u32 tries_ = 0;							\
	do {								\
		g_ = rd8(d, VIRTIO_CC_CFGGEN);				\
		v_ = (expr);						\
	} while (g_ != rd8(d, VIRTIO_CC_CFGGEN) && ++tries_ < 100);	\
	v_;								\
})

u8 virtio_cfg_read8(const struct virtio_dev *d, u32 off)
{
	return CFG_READ(d, u8, off, *(volatile u8 *)(d->devcfg + off));
}

u16 virtio_cfg_read16(const struct virtio_dev *d, u32 off)
{
	return CFG_READ(d, u16, off, *(volatile u16 *)(d->devcfg + off));
}

u32 virtio_cfg_read32(const struct virtio_dev *d, u32 off)
{
	return CFG_READ(d, u32, off, *(volatile u32 *)(d->devcfg + off));
}

u64 virtio_cfg_read64(const struct virtio_dev *d, u32 off)
{
	return CFG_READ(d, u64, off,
			*(volatile u32 *)(d->devcfg + off) |
			(u64)*(volatile u32 *)(d->devcfg + off + 4) << 32);
}

u64 virtio_cfg_irqs(const struct virtio_dev *d)
{
	return d->cfg_msi < 0 ? 0 : msi_count[d->cfg_msi];
}

u64 virtq_irqs(const struct virtq *q)
{
	return q->msi < 0 ? 0 : msi_count[q->msi];
}

int virtq_add(struct virtq *q, const struct virtq_buf *b, u32 n, void *token)
{
	u16 head = q->free_head, i = head, last = head;
	u16 slot;

	if (!n || n > q->num_free)
		return -1;
	for (u32 k = 0; k < n; k++) {
		struct vring_desc *dsc = &q->desc[i];

		dsc->addr = (u64)(uintptr_t)b[k].addr;
		dsc->len = b[k].len;
		dsc->flags = (u16)((b[k].dev_writes ? VIRTQ_DESC_F_WRITE : 0) |
				   (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		last = i;
		i = dsc->next;
	}
	q->free_head = q->desc[last].next;
	q->num_free -= (u16)n;
	q->token[head] = token;
	slot = q->avail->idx & (q->size - 1);
	q->avail->ring[slot] = head;
	/* The entry before the index that publishes it; x86 keeps stores in
	 * order, the compiler must too. */
	barrier();
	*(volatile u16 *)&q->avail->idx = (u16)(q->avail->idx + 1);
	return 0;
}

void virtq_kick(struct virtq *q)
{
	barrier();
	*q->notify = q->index;
}

void *virtq_get(struct virtq *q, u32 *len)
{
	u16 id, i, n = 1;
	void *token;

	if (q->last_used == q->used->idx)
		return NULL;
	barrier();      /* the index before the entry (x86 loads are ordered) */
	id = (u16)q->used->ring[q->last_used & (q->size - 1)].id;
	if (len)
		*len = q->used->ring[q->last_used & (q->size - 1)].len;
	q->last_used++;
	if (id >= q->size)
		return NULL;
	for (i = id; q->desc[i].flags & VIRTQ_DESC_F_NEXT; i = q->desc[i].next)
		n++;
	q->desc[i].next = q->free_head;
	q->free_head = id;
	q->num_free += n;
	token = q->token[id];
	q->token[id] = NULL;
	return token;
}
