#include "devices/pci.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#define PCI_HOST_VENDOR   0x8086
#define PCI_HOST_DEVICE   0x0d57 /* a virtual host bridge, as Firecracker's */
#define CFG_ADDR_ENABLE   0x80000000u

/* ---- configuration space of one function ---- */

void pci_function_init(struct pci_function *f, uint16_t vendor, uint16_t device,
		       uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		       uint16_t subsys_id)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	put_le16(f->cfg + PCI_VENDOR_ID, vendor);
	put_le16(f->cfg + PCI_DEVICE_ID, device);
	f->cfg[PCI_REVISION] = revision;
	f->cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
	f->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
	f->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
	put_le16(f->cfg + PCI_SUBSYS_VENDOR, subsys_vendor);
	put_le16(f->cfg + PCI_SUBSYS_ID, subsys_id);
	put_le16(f->wmask + PCI_COMMAND,
		 PCI_CMD_IO | PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_INTX_OFF);
	f->wmask[PCI_INT_LINE] = 0xff;
	f->cap_end = 0x40;
}

void pci_function_add_bar(struct pci_function *f, unsigned bar, uint64_t size, bool mem64,
			  const struct bus_ops *ops, void *dev)
{
	unsigned off = PCI_BAR0 + 4 * bar;

	f->bars[bar] = (struct pci_bar){ size, mem64, ops, dev };
	put_le32(f->cfg + off, mem64 ? PCI_BAR_MEM64 : 0);
	put_le32(f->wmask + off, (uint32_t)~(size - 1) & ~0xfu);
	if (mem64)
		put_le32(f->wmask + off + 4, (uint32_t)(~(size - 1) >> 32));
}

uint8_t pci_function_add_cap(struct pci_function *f, uint8_t id, uint8_t len)
{
	uint8_t off = f->cap_end;

	f->cfg[off] = id;
	f->cfg[off + 1] = 0;
	if (f->cap_last)
		f->cfg[f->cap_last + 1] = off;
	else
		f->cfg[PCI_CAP_PTR] = off;
	put_le16(f->cfg + PCI_STATUS, get_le16(f->cfg + PCI_STATUS) | PCI_STATUS_CAPS);
	f->cap_last = off;
	f->cap_end = (uint8_t)ALIGN_UP(off + len, 4);
	return off;
}

void pci_function_add_msix(struct pci_function *f, unsigned nvec, unsigned bar,
			   uint32_t pba_off)
{
	uint8_t cap = pci_function_add_cap(f, PCI_CAP_MSIX, 12);

	f->msix.nvec = nvec;
	f->msix.bar = bar;
	f->msix.pba_off = pba_off;
	f->msix.cap = cap;
	put_le16(f->cfg + cap + 2, (uint16_t)(nvec - 1));
	put_le32(f->cfg + cap + 4, 0 | bar);           /* table: offset 0 */
	put_le32(f->cfg + cap + 8, pba_off | bar);
	f->wmask[cap + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
	for (unsigned v = 0; v < nvec; v++)
		put_le32(f->msix.table + v * MSIX_ENTRY_SIZE + 12, MSIX_VEC_MASKED);
}

uint64_t pci_bar_addr(const struct pci_function *f, unsigned bar)
{
	uint64_t a;

	if (bar >= PCI_NUM_BARS || !f->bars[bar].size ||
	    !(get_le16(f->cfg + PCI_COMMAND) & PCI_CMD_MEMORY))
		return 0;
	a = get_le32(f->cfg + PCI_BAR0 + 4 * bar) & ~0xfull;
	if (f->bars[bar].mem64)
		a |= (uint64_t)get_le32(f->cfg + PCI_BAR0 + 4 * bar + 4) << 32;
	return a;
}

bool pci_msix_enabled(const struct pci_function *f)
{
	return f->msix.nvec &&
	       (get_le16(f->cfg + f->msix.cap + 2) & MSIX_CTRL_ENABLE);
}

/* Under f->lock. */
static bool msix_try_send(struct pci_function *f, unsigned vec)
{
	const uint8_t *e = f->msix.table + vec * MSIX_ENTRY_SIZE;
	uint16_t ctrl = get_le16(f->cfg + f->msix.cap + 2);
	int ret;

	if (!(ctrl & MSIX_CTRL_ENABLE))
		return false;
	/* An MSI is a memory write: not without bus mastering. */
	if (!(get_le16(f->cfg + PCI_COMMAND) & PCI_CMD_MASTER)) {
		f->msix.pba |= 1ull << vec;
		return false;
	}
	if ((ctrl & MSIX_CTRL_MASKALL) || (get_le32(e + 12) & MSIX_VEC_MASKED)) {
		f->msix.pba |= 1ull << vec;
		return false;
	}
	f->msix.pba &= ~(1ull << vec);
	if (!f->msi.send)
		return false;
	ret = f->msi.send(f->msi.ctx, get_le64(e), get_le32(e + 8));
	if (ret) {
		log_warn("MSI-X vector %u: %s", vec, strerror(-ret));
		return false;
	}
	return true;
}

bool pci_msix_notify(struct pci_function *f, unsigned vec)
{
	bool sent;

	if (vec >= f->msix.nvec)
		return false;
	pthread_mutex_lock(&f->lock);
	sent = msix_try_send(f, vec);
	pthread_mutex_unlock(&f->lock);
	return sent;
}

/* Sends what became deliverable (an entry or the function unmasked). */
static void msix_flush_pending(struct pci_function *f)
{
	for (unsigned v = 0; v < f->msix.nvec; v++)
		if (f->msix.pba & (1ull << v))
			msix_try_send(f, v);
}

static void msix_bar_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct pci_function *f = dev;
	uint64_t tlen = (uint64_t)f->msix.nvec * MSIX_ENTRY_SIZE;

	memset(data, 0, size);
	pthread_mutex_lock(&f->lock);
	if (range_within(off, size, tlen)) {
		memcpy(data, f->msix.table + off, size);
	} else if (off >= f->msix.pba_off && range_within(off - f->msix.pba_off, size, 8)) {
		uint8_t pba[8];

		put_le64(pba, f->msix.pba);
		memcpy(data, pba + (off - f->msix.pba_off), size);
	}
	pthread_mutex_unlock(&f->lock);
}

static void msix_bar_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct pci_function *f = dev;
	uint64_t tlen = (uint64_t)f->msix.nvec * MSIX_ENTRY_SIZE;

	if (!range_within(off, size, tlen))
		return; /* the PBA is read-only */
	pthread_mutex_lock(&f->lock);
	memcpy(f->msix.table + off, data, size);
	msix_flush_pending(f);
	pthread_mutex_unlock(&f->lock);
}

const struct bus_ops pci_msix_bar_ops = {
	.read = msix_bar_read,
	.write = msix_bar_write,
};

static void cfg_read(struct pci_function *f, unsigned off, uint8_t *data, unsigned size)
{
	if (f->cfg_read_hook && off >= f->hook_start && off + size <= f->hook_end) {
		f->cfg_read_hook(f, off, data, size);
		return;
	}
	memcpy(data, f->cfg + off, size);
}

static void cfg_write(struct pci_function *f, unsigned off, const uint8_t *data, unsigned size)
{
	uint8_t before[PCI_CFG_SIZE];
	bool bars, msix;

	if (f->cfg_write_hook && off >= f->hook_start && off + size <= f->hook_end) {
		f->cfg_write_hook(f, off, data, size);
		return;
	}
	pthread_mutex_lock(&f->lock);
	memcpy(before, f->cfg, sizeof(before));
	for (unsigned i = 0; i < size; i++)
		f->cfg[off + i] = (uint8_t)((f->cfg[off + i] & ~f->wmask[off + i]) |
					    (data[i] & f->wmask[off + i]));
	bars = memcmp(before + PCI_BAR0, f->cfg + PCI_BAR0, 24) ||
	       ((get_le16(before + PCI_COMMAND) ^ get_le16(f->cfg + PCI_COMMAND)) &
		PCI_CMD_MEMORY);
	msix = f->msix.nvec && get_le16(before + f->msix.cap + 2) !=
			       get_le16(f->cfg + f->msix.cap + 2);
	if (msix || ((get_le16(f->cfg + PCI_COMMAND) & ~get_le16(before + PCI_COMMAND)) &
		     PCI_CMD_MASTER))
		msix_flush_pending(f); /* what waited for it to be allowed */
	pthread_mutex_unlock(&f->lock);
	if (bars && f->ops && f->ops->bars_changed)
		f->ops->bars_changed(f);
	if (msix && f->ops && f->ops->msix_changed)
		f->ops->msix_changed(f);
}

void pci_function_reset(struct pci_function *f)
{
	pthread_mutex_lock(&f->lock);
	memcpy(f->cfg, f->cfg_reset, sizeof(f->cfg));
	memset(f->msix.table, 0, sizeof(f->msix.table));
	for (unsigned v = 0; v < f->msix.nvec; v++)
		put_le32(f->msix.table + v * MSIX_ENTRY_SIZE + 12, MSIX_VEC_MASKED);
	f->msix.pba = 0;
	pthread_mutex_unlock(&f->lock);
	if (f->ops && f->ops->bars_changed)
		f->ops->bars_changed(f);
}

int pci_function_save(const struct pci_function *f, struct buf *out)
{
	struct pci_function *m = (struct pci_function *)f;

	pthread_mutex_lock(&m->lock);
	buf_put(out, f->cfg, sizeof(f->cfg));
	buf_put_u32(out, f->msix.nvec);
	buf_put(out, f->msix.table, (size_t)f->msix.nvec * MSIX_ENTRY_SIZE);
	buf_put_u64(out, f->msix.pba);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int pci_function_load_check(const struct pci_function *f, struct reader *in,
			    struct pci_function_saved *s)
{
	uint8_t *cfg = s->cfg, *table = s->table;
	uint32_t nvec;
	uint64_t pba;

	reader_get(in, cfg, sizeof(s->cfg));
	nvec = reader_u32(in);
	if (in->short_read || nvec != f->msix.nvec)
		return -EINVAL;
	reader_get(in, table, (size_t)nvec * MSIX_ENTRY_SIZE);
	pba = reader_u64(in);
	if (in->short_read || (nvec < 64 && (pba >> nvec)))
		return -EINVAL;
	/* Only what the guest can write may differ from this function. */
	for (unsigned i = 0; i < PCI_CFG_SIZE; i++) {
		bool hooked = f->cfg_write_hook && i >= f->hook_start && i < f->hook_end;

		if (!hooked && ((cfg[i] ^ f->cfg[i]) & ~f->wmask[i]))
			return -EINVAL;
	}
	s->pba = pba;
	return 0;
}

void pci_function_load_commit(struct pci_function *f, const struct pci_function_saved *s)
{
	pthread_mutex_lock(&f->lock);
	memcpy(f->cfg, s->cfg, sizeof(f->cfg));
	memcpy(f->msix.table, s->table, (size_t)f->msix.nvec * MSIX_ENTRY_SIZE);
	f->msix.pba = s->pba;
	pthread_mutex_unlock(&f->lock);
}

int pci_function_load(struct pci_function *f, struct reader *in)
{
	struct pci_function_saved s;
	int ret = pci_function_load_check(f, in, &s);

	if (!ret)
		pci_function_load_commit(f, &s);
	return ret;
}

/* ---- the host bridge and bus 0 ---- */

void pci_host_init(struct pci_host *h, const struct bus_ops *cf9_ops, void *cf9_dev)
{
	memset(h, 0, sizeof(*h));
	put_le16(h->bridge_cfg + PCI_VENDOR_ID, PCI_HOST_VENDOR);
	put_le16(h->bridge_cfg + PCI_DEVICE_ID, PCI_HOST_DEVICE);
	h->bridge_cfg[PCI_CLASS_PROG + 2] = 0x06; /* bridge, host */
	h->mmio_next = PCI_MMIO_BASE;
	h->cf9_ops = cf9_ops;
	h->cf9_dev = cf9_dev;
}

int pci_host_plug(struct pci_host *h, struct pci_function *f)
{
	unsigned slot;
	uint64_t next = h->mmio_next;

	for (slot = 1; slot < PCI_MAX_SLOTS && h->slots[slot]; slot++)
		;
	if (slot == PCI_MAX_SLOTS)
		return -ENOSPC;
	for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
		uint64_t size = f->bars[b].size;
		unsigned off = PCI_BAR0 + 4 * b;

		if (!size)
			continue;
		next = ALIGN_UP(next, size);
		if (next + size > PCI_MMIO_END)
			return -ENOSPC;
		put_le32(f->cfg + off, (uint32_t)next | (get_le32(f->cfg + off) & 0xf));
		if (f->bars[b].mem64)
			put_le32(f->cfg + off + 4, (uint32_t)(next >> 32));
		next += size;
	}
	h->mmio_next = next;
	/* Legacy INTx is not wired: the functions signal with MSI-X only. */
	f->cfg[PCI_INT_PIN] = 0;
	memcpy(f->cfg_reset, f->cfg, sizeof(f->cfg));
	h->slots[slot] = f;
	return (int)slot;
}

/* Configuration reads and writes of function fn in slot on bus 0, the
 * host bridge's own at slot 0, by either mechanism: absent functions read
 * as all ones and ignore writes, and so does the bridge's (read-only)
 * space on writes. off and size are within the 256-byte space. */
static struct pci_function *cfg_function(struct pci_host *h, unsigned bus, unsigned slot,
					 unsigned fn, bool *bridge)
{
	*bridge = bus == 0 && slot == 0 && fn == 0;
	if (bus != 0 || fn != 0 || slot == 0)
		return NULL;
	return h->slots[slot];
}

static void host_cfg_read(struct pci_host *h, unsigned bus, unsigned slot, unsigned fn,
			  unsigned off, uint8_t *data, unsigned size)
{
	bool bridge;
	struct pci_function *f = cfg_function(h, bus, slot, fn, &bridge);

	if (bridge)
		memcpy(data, h->bridge_cfg + off, size);
	else if (f)
		cfg_read(f, off, data, size);
}

static void host_cfg_write(struct pci_host *h, unsigned bus, unsigned slot, unsigned fn,
			   unsigned off, const uint8_t *data, unsigned size)
{
	bool bridge;
	struct pci_function *f = cfg_function(h, bus, slot, fn, &bridge);

	if (f)
		cfg_write(f, off, data, size);
}

/* Mechanism #1: port_off 4-7 is the data window onto the register the
 * 0xCF8 latch selects. False when the latch is off (nothing is accessed). */
static bool latch_target(const struct pci_host *h, unsigned port_off, unsigned *bus,
			 unsigned *slot, unsigned *fn, unsigned *off)
{
	uint32_t a = h->config_address;

	*bus = (a >> 16) & 0xff;
	*slot = (a >> 11) & 0x1f;
	*fn = (a >> 8) & 7;
	*off = (a & 0xfc) + (port_off - 4);
	return a & CFG_ADDR_ENABLE;
}

static void host_pio_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct pci_host *h = dev;
	unsigned bus, slot, fn, cfg_off;

	memset(data, 0xff, size);
	if (off == 0 && size == 4) {
		put_le32(data, h->config_address);
		return;
	}
	if (off == 1 && size == 1) {
		h->cf9_ops->read(h->cf9_dev, 0, data, size);
		return;
	}
	if (off < 4 || !range_within(off - 4, size, 4))
		return;
	if (latch_target(h, (unsigned)off, &bus, &slot, &fn, &cfg_off))
		host_cfg_read(h, bus, slot, fn, cfg_off, data, size);
}

static void host_pio_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct pci_host *h = dev;
	unsigned bus, slot, fn, cfg_off;

	if (off == 0 && size == 4) {
		h->config_address = get_le32(data) & 0x80fffffcu;
		return;
	}
	if (off == 1 && size == 1) {
		h->cf9_ops->write(h->cf9_dev, 0, data, size);
		return;
	}
	if (off < 4 || !range_within(off - 4, size, 4))
		return;
	if (latch_target(h, (unsigned)off, &bus, &slot, &fn, &cfg_off))
		host_cfg_write(h, bus, slot, fn, cfg_off, data, size);
}

const struct bus_ops pci_host_pio_ops = {
	.read = host_pio_read,
	.write = host_pio_write,
};

static const struct pci_bar *bar_at(struct pci_host *h, uint64_t addr, unsigned size,
				    uint64_t *off)
{
	for (unsigned s = 1; s < PCI_MAX_SLOTS; s++) {
		struct pci_function *f = h->slots[s];

		if (!f)
			continue;
		for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
			uint64_t base = pci_bar_addr(f, b);

			if (base && addr >= base &&
			    range_within(addr - base, size, f->bars[b].size)) {
				*off = addr - base;
				return &f->bars[b];
			}
		}
	}
	return NULL;
}

static void host_mmio_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	uint64_t bar_off;
	const struct pci_bar *b = bar_at(dev, PCI_MMIO_BASE + off, size, &bar_off);

	if (b && b->ops->read)
		b->ops->read(b->dev, bar_off, data, size);
	else
		memset(data, 0xff, size);
}

static void host_mmio_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	uint64_t bar_off;
	const struct pci_bar *b = bar_at(dev, PCI_MMIO_BASE + off, size, &bar_off);

	if (b && b->ops->write)
		b->ops->write(b->dev, bar_off, data, size);
}

const struct bus_ops pci_host_mmio_ops = {
	.read = host_mmio_read,
	.write = host_mmio_write,
};

/* ECAM: the offset in the area names bus, device, function and register
 * (PCIe 5.0 table 7-1). Accesses past the 256-byte space, or across its
 * end, read as all ones and write nothing, as QEMU does for a
 * conventional function. */
static bool ecam_target(uint64_t off, unsigned size, unsigned *bus, unsigned *slot,
			unsigned *fn, unsigned *reg)
{
	*bus = (unsigned)(off >> 20);
	*slot = (off >> 15) & 0x1f;
	*fn = (off >> 12) & 7;
	*reg = off & 0xfff;
	return range_within(*reg, size, PCI_CFG_SIZE);
}

static void host_ecam_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	unsigned bus, slot, fn, reg;

	memset(data, 0xff, size);
	if (ecam_target(off, size, &bus, &slot, &fn, &reg))
		host_cfg_read(dev, bus, slot, fn, reg, data, size);
}

static void host_ecam_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	unsigned bus, slot, fn, reg;

	if (ecam_target(off, size, &bus, &slot, &fn, &reg))
		host_cfg_write(dev, bus, slot, fn, reg, data, size);
}

const struct bus_ops pci_host_ecam_ops = {
	.read = host_ecam_read,
	.write = host_ecam_write,
};

static int pci_host_save(void *dev, struct buf *out)
{
	struct pci_host *h = dev;

	buf_put_u32(out, h->config_address);
	return buf_finish(out);
}

static int pci_host_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct pci_host *h = dev;
	struct reader r;
	uint32_t a;

	if (version != 1)
		return -EPROTO;
	reader_init(&r, data, len);
	a = reader_u32(&r);
	if (reader_finish(&r) || (a & ~0x80fffffcu))
		return -EINVAL;
	h->config_address = a;
	return 0;
}

static void pci_host_reset(void *dev)
{
	struct pci_host *h = dev;

	h->config_address = 0;
}

const struct device_ops pci_host_device_ops = {
	.name = "pci-host",
	.version = 1,
	.save = pci_host_save,
	.load = pci_host_load,
	.reset = pci_host_reset,
};
