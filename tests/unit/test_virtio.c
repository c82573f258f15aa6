/* Unit tests for PCI (src/devices/pci.c) and virtio (queue.c, the virtio-pci
 * transport, virtio-blk), driven the way a guest driver drives them:
 * configuration mechanism #1 through the host bridge's port ops, BARs
 * through the PCI memory window, a split virtqueue laid out in a fake guest
 * RAM, requests served by virtio-blk's own I/O thread on a temporary image.
 * Interrupts arrive at a fake MSI sink, dirty RAM at a fake dirty log, and
 * the ioeventfd fake either refuses (notifications take the MMIO path) or
 * records what is registered where. State must survive save -> load -> save
 * byte for byte (STYLE.md §12) and load must refuse damaged records.
 *
 * Seven tests found bugs (each says which); they stay as regression tests. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/util.h"
#include "devices/bus.h"
#include "devices/device.h"
#include "devices/dma.h"
#include "devices/pci.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/pci.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"

/* --- fakes --------------------------------------------------------------- */

/* Guest RAM: [base, base + size) backed by one aligned buffer; map()
 * refuses anything not wholly inside; dirty() records ranges and marks a
 * byte map (called from device threads, hence the lock). */
#define RAM_BASE 0x100000ull
#define RAM_SIZE MiB(1)
#define DIRTY_LOG 64

struct fake_ram {
	uint8_t *mem;
	uint8_t *dmap;          /* one byte per RAM byte: reported dirty */
	uint64_t base, size;
	pthread_mutex_t lock;
	struct { uint64_t gpa, len; } log[DIRTY_LOG];
	unsigned ndirty;        /* dirty() calls (log holds the first 64) */
	unsigned dirty_outside; /* dirty() calls for bytes that are not RAM */
	struct guest_ram gr;    /* what the devices get */
};

static void *fake_map(void *ctx, uint64_t gpa, uint64_t len)
{
	struct fake_ram *r = ctx;

	if (gpa < r->base || !range_within(gpa - r->base, len, r->size))
		return NULL;
	return r->mem + (gpa - r->base);
}

static void fake_dirty(void *ctx, uint64_t gpa, uint64_t len)
{
	struct fake_ram *r = ctx;

	pthread_mutex_lock(&r->lock);
	if (r->ndirty < DIRTY_LOG) {
		r->log[r->ndirty].gpa = gpa;
		r->log[r->ndirty].len = len;
	}
	r->ndirty++;
	if (gpa < r->base || !range_within(gpa - r->base, len, r->size))
		r->dirty_outside++;
	else
		memset(r->dmap + (gpa - r->base), 1, len);
	pthread_mutex_unlock(&r->lock);
}

static struct fake_ram *fake_ram_new(void)
{
	struct fake_ram *r = calloc(1, sizeof(*r));
	void *mem = NULL;

	assert_non_null(r);
	assert_int_equal(posix_memalign(&mem, 4096, RAM_SIZE), 0);
	r->mem = mem;
	memset(r->mem, 0, RAM_SIZE);
	r->dmap = calloc(1, RAM_SIZE);
	assert_non_null(r->dmap);
	r->base = RAM_BASE;
	r->size = RAM_SIZE;
	pthread_mutex_init(&r->lock, NULL);
	r->gr = (struct guest_ram){ fake_map, fake_dirty, r };
	return r;
}

static void fake_ram_free(struct fake_ram *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->mem);
	free(r->dmap);
	free(r);
}

static uint8_t *host(struct fake_ram *r, uint64_t gpa)
{
	assert_true(gpa >= r->base && gpa - r->base < r->size);
	return r->mem + (gpa - r->base);
}

static void dirty_clear(struct fake_ram *r)
{
	pthread_mutex_lock(&r->lock);
	memset(r->dmap, 0, r->size);
	r->ndirty = 0;
	r->dirty_outside = 0;
	pthread_mutex_unlock(&r->lock);
}

/* Every byte of [gpa, gpa + len) was reported dirty. */
static bool dirty_all(struct fake_ram *r, uint64_t gpa, uint64_t len)
{
	bool all = true;

	pthread_mutex_lock(&r->lock);
	for (uint64_t i = 0; i < len; i++)
		all = all && r->dmap[gpa - r->base + i];
	pthread_mutex_unlock(&r->lock);
	return all;
}

static bool dirty_any(struct fake_ram *r, uint64_t gpa, uint64_t len)
{
	bool any = false;

	pthread_mutex_lock(&r->lock);
	for (uint64_t i = 0; i < len; i++)
		any = any || r->dmap[gpa - r->base + i];
	pthread_mutex_unlock(&r->lock);
	return any;
}

/* MSI sink: records (addr, data); send() returns ret. */
#define MSI_LOG 256

struct fake_msi {
	pthread_mutex_t lock;
	unsigned n;
	struct { uint64_t addr; uint32_t data; } m[MSI_LOG];
	int ret;
};

static int fake_msi_send(void *ctx, uint64_t addr, uint32_t data)
{
	struct fake_msi *f = ctx;

	pthread_mutex_lock(&f->lock);
	if (f->n < MSI_LOG) {
		f->m[f->n].addr = addr;
		f->m[f->n].data = data;
	}
	f->n++;
	pthread_mutex_unlock(&f->lock);
	return f->ret;
}

static void fake_msi_init(struct fake_msi *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
}

static unsigned msi_total(struct fake_msi *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->n;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* How many messages went to (addr, data). */
static unsigned msi_count(struct fake_msi *f, uint64_t addr, uint32_t data)
{
	unsigned n = 0;

	pthread_mutex_lock(&f->lock);
	for (unsigned i = 0; i < f->n && i < MSI_LOG; i++)
		n += f->m[i].addr == addr && f->m[i].data == data;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* KVM ioeventfds: ret != 0 refuses (-ENOSYS: the MMIO path); else the
 * registrations are kept as (addr, fd) pairs. */
#define IOEV_MAX 16

struct fake_ioev {
	int ret;
	unsigned assigns, deassigns, bad_deassigns;
	struct { uint64_t addr; int fd; } reg[IOEV_MAX];
	unsigned nreg;
};

static int fake_ioeventfd(void *ctx, uint64_t addr, int fd, bool assign)
{
	struct fake_ioev *e = ctx;

	if (!assign) {
		e->deassigns++;
		for (unsigned i = 0; i < e->nreg; i++) {
			if (e->reg[i].addr == addr && e->reg[i].fd == fd) {
				e->reg[i] = e->reg[--e->nreg];
				return 0;
			}
		}
		e->bad_deassigns++;
		return -ENOENT;
	}
	if (e->ret)
		return e->ret;
	e->assigns++;
	if (e->nreg == IOEV_MAX)
		return -ENOSPC;
	e->reg[e->nreg].addr = addr;
	e->reg[e->nreg].fd = fd;
	e->nreg++;
	return 0;
}

/* The reset control register behind byte accesses to 0xCF9. */
struct fake_cf9 {
	unsigned reads, writes;
	uint8_t reg;
};

static void fake_cf9_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct fake_cf9 *c = dev;

	assert_int_equal(off, 0);
	assert_int_equal(size, 1);
	c->reads++;
	data[0] = c->reg;
}

static void fake_cf9_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct fake_cf9 *c = dev;

	assert_int_equal(off, 0);
	assert_int_equal(size, 1);
	c->writes++;
	c->reg = data[0];
}

static const struct bus_ops fake_cf9_ops = {
	.read = fake_cf9_read,
	.write = fake_cf9_write,
};

/* A BAR's device: records the last access; reads return 0x5a bytes. */
struct fake_bar {
	unsigned reads, writes;
	uint64_t off;
	unsigned size;
	uint64_t val;
};

static void fake_bar_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct fake_bar *b = dev;

	b->reads++;
	b->off = off;
	b->size = size;
	memset(data, 0x5a, size);
}

static void fake_bar_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct fake_bar *b = dev;

	b->writes++;
	b->off = off;
	b->size = size;
	b->val = 0;
	memcpy(&b->val, data, size);
}

static const struct bus_ops fake_bar_ops = {
	.read = fake_bar_read,
	.write = fake_bar_write,
};

/* --- access helpers ------------------------------------------------------ */

static uint64_t rd(const struct bus_ops *ops, void *dev, uint64_t off, unsigned size)
{
	uint8_t d[8];
	uint64_t v = 0;

	memset(d, 0xcd, sizeof(d));
	ops->read(dev, off, d, size);
	memcpy(&v, d, size);
	return v;
}

static void wr(const struct bus_ops *ops, void *dev, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t d[8];

	memcpy(d, &v, sizeof(d));
	ops->write(dev, off, d, size);
}

#define CFG_ENABLE 0x80000000u

static uint32_t cfg_address(unsigned bus, unsigned slot, unsigned fn, unsigned off)
{
	return CFG_ENABLE | bus << 16 | slot << 11 | fn << 8 | (off & 0xfc);
}

/* Mechanism #1: the address to 0xCF8 (a dword), the data at 0xCFC + the
 * low two bits of the offset. */
static uint64_t cfg_rd_at(struct pci_host *h, uint32_t addr, unsigned off, unsigned size)
{
	wr(&pci_host_pio_ops, h, 0, 4, addr);
	return rd(&pci_host_pio_ops, h, 4 + (off & 3), size);
}

static uint64_t cfg_rd(struct pci_host *h, unsigned slot, unsigned off, unsigned size)
{
	return cfg_rd_at(h, cfg_address(0, slot, 0, off), off, size);
}

static void cfg_wr(struct pci_host *h, unsigned slot, unsigned off, unsigned size, uint64_t v)
{
	wr(&pci_host_pio_ops, h, 0, 4, cfg_address(0, slot, 0, off));
	wr(&pci_host_pio_ops, h, 4 + (off & 3), size, v);
}

static uint64_t mm_rd(struct pci_host *h, uint64_t addr, unsigned size)
{
	assert_true(addr >= PCI_MMIO_BASE && addr < PCI_MMIO_END);
	return rd(&pci_host_mmio_ops, h, addr - PCI_MMIO_BASE, size);
}

static void mm_wr(struct pci_host *h, uint64_t addr, unsigned size, uint64_t v)
{
	assert_true(addr >= PCI_MMIO_BASE && addr < PCI_MMIO_END);
	wr(&pci_host_mmio_ops, h, addr - PCI_MMIO_BASE, size, v);
}

/* A BAR's address as the guest reads it from config space. */
static uint64_t bar_addr(struct pci_host *h, unsigned slot, unsigned bar)
{
	uint32_t lo = (uint32_t)cfg_rd(h, slot, PCI_BAR0 + 4 * bar, 4);
	uint64_t a = lo & ~0xfull;

	if ((lo & 0x6) == PCI_BAR_MEM64)
		a |= cfg_rd(h, slot, PCI_BAR0 + 4 * bar + 4, 4) << 32;
	return a;
}

/* Sizes a BAR as Linux's __pci_read_base() does: all ones, read back,
 * restore. Returns the size mask read back (low dword; high in *hi). */
static uint32_t bar_size_mask(struct pci_host *h, unsigned slot, unsigned bar, uint32_t *hi)
{
	unsigned off = PCI_BAR0 + 4 * bar;
	uint32_t lo0 = (uint32_t)cfg_rd(h, slot, off, 4), hi0 = 0, mask;
	bool mem64 = (lo0 & 0x6) == PCI_BAR_MEM64;

	if (mem64)
		hi0 = (uint32_t)cfg_rd(h, slot, off + 4, 4);
	cfg_wr(h, slot, off, 4, 0xffffffff);
	mask = (uint32_t)cfg_rd(h, slot, off, 4);
	if (mem64) {
		cfg_wr(h, slot, off + 4, 4, 0xffffffff);
		*hi = (uint32_t)cfg_rd(h, slot, off + 4, 4);
		cfg_wr(h, slot, off + 4, 4, hi0);
	} else if (hi) {
		*hi = 0;
	}
	cfg_wr(h, slot, off, 4, lo0);
	assert_int_equal(cfg_rd(h, slot, off, 4), lo0);
	if (mem64)
		assert_int_equal(cfg_rd(h, slot, off + 4, 4), hi0);
	return mask;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Polls cond for up to 2 s (the I/O thread serves requests on its own). */
#define WAIT_UNTIL(cond)                                                  \
	({                                                                \
		uint64_t end_ = time_now_ns() + 2000000000ull;            \
		bool ok_;                                                 \
		while (!(ok_ = (cond)) && time_now_ns() < end_)           \
			sleep_ms(1);                                      \
		ok_;                                                      \
	})

/* --- a plain PCI function ------------------------------------------------ */

#define T_VENDOR  0x1234
#define T_DEVICE  0x5678
#define T_CLASS   0x020000
#define T_REV     3
#define T_NVEC    4

struct pci_fix {
	struct pci_host h;
	struct fake_cf9 cf9;
	struct pci_function f;
	struct fake_bar bar0, bar2;
	struct fake_msi msi;
	unsigned bars_changed, msix_changed;
	uint8_t vcap;
	int slot;
};

static void fix_bars_changed(struct pci_function *f)
{
	((struct pci_fix *)f->owner)->bars_changed++;
}

static void fix_msix_changed(struct pci_function *f)
{
	((struct pci_fix *)f->owner)->msix_changed++;
}

static const struct pci_function_ops fix_function_ops = {
	.bars_changed = fix_bars_changed,
	.msix_changed = fix_msix_changed,
};

/* BAR0: 4 KiB 32-bit; BAR2+3: 16 KiB 64-bit; BAR4: the MSI-X table (4
 * vectors) and its PBA at 0x800; a vendor capability after MSI-X. */
static void pci_fix_build(struct pci_fix *x, struct pci_function *f)
{
	pci_function_init(f, T_VENDOR, T_DEVICE, T_CLASS, T_REV, 0x1af4, 0x1100);
	f->owner = x;
	f->ops = &fix_function_ops;
	f->msi = (struct msi_sink){ fake_msi_send, &x->msi };
	pci_function_add_bar(f, 0, 0x1000, false, &fake_bar_ops, &x->bar0);
	pci_function_add_bar(f, 2, 0x4000, true, &fake_bar_ops, &x->bar2);
	pci_function_add_bar(f, 4, 0x1000, false, &pci_msix_bar_ops, f);
	pci_function_add_msix(f, T_NVEC, 4, 0x800);
	x->vcap = pci_function_add_cap(f, PCI_CAP_VENDOR, 8);
}

static struct pci_fix *pci_fix_new(void)
{
	struct pci_fix *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	fake_msi_init(&x->msi);
	pci_host_init(&x->h, &fake_cf9_ops, &x->cf9);
	pci_fix_build(x, &x->f);
	x->slot = pci_host_plug(&x->h, &x->f);
	assert_int_equal(x->slot, 1);
	return x;
}

/* --- 1. configuration mechanism #1 ---------------------------------------- */

static void test_pci_host_bridge_ids(void **state)
{
	struct pci_fix *x = pci_fix_new();

	(void)state;
	/* Linux's pci_check_type1(): 0x80000000 reads back from 0xCF8. */
	wr(&pci_host_pio_ops, &x->h, 0, 4, 0x80000000);
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 0, 4), 0x80000000);
	/* The register bits 1:0 and 30:24 are reserved: they read as 0. */
	wr(&pci_host_pio_ops, &x->h, 0, 4, 0xff00ff03);
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 0, 4), 0x8000ff00);

	/* 00:00.0: the host bridge. */
	assert_int_equal(cfg_rd(&x->h, 0, PCI_VENDOR_ID, 2), 0x8086);
	assert_int_equal(cfg_rd(&x->h, 0, PCI_DEVICE_ID, 2), 0x0d57);
	assert_int_equal(cfg_rd(&x->h, 0, 0x08, 4) >> 8, 0x060000); /* bridge, host */
	assert_int_equal(cfg_rd(&x->h, 0, PCI_HEADER_TYPE, 1), 0);
	/* Read-only: a write to its command register does nothing. */
	cfg_wr(&x->h, 0, PCI_COMMAND, 2, 0x0007);
	assert_int_equal(cfg_rd(&x->h, 0, PCI_COMMAND, 2), 0);

	/* 00:01.0: the plugged function, as dword, word and byte reads. */
	assert_int_equal(cfg_rd(&x->h, 1, 0, 4), (uint32_t)T_DEVICE << 16 | T_VENDOR);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_VENDOR_ID, 2), T_VENDOR);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_DEVICE_ID, 2), T_DEVICE);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_DEVICE_ID + 1, 1), T_DEVICE >> 8);
	assert_int_equal(cfg_rd(&x->h, 1, 0x08, 4), (uint32_t)T_CLASS << 8 | T_REV);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_CLASS_PROG + 2, 1), T_CLASS >> 16);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_SUBSYS_VENDOR, 2), 0x1af4);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_SUBSYS_ID, 2), 0x1100);
	/* MSI-X only: no INTx pin. */
	assert_int_equal(cfg_rd(&x->h, 1, PCI_INT_PIN, 1), 0);
	/* Interrupt line is a scratch register for the OS. */
	cfg_wr(&x->h, 1, PCI_INT_LINE, 1, 0x0b);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_INT_LINE, 1), 0x0b);
	free(x);
}

static void test_pci_host_absent_functions(void **state)
{
	struct pci_fix *x = pci_fix_new();
	static const struct {
		const char *what;
		uint32_t addr;
	} absent[] = {
		{ "empty slot 2", 0x80000000u | 2 << 11 },
		{ "empty slot 31", 0x80000000u | 31 << 11 },
		{ "bus 1, slot 0", 0x80000000u | 1 << 16 },
		{ "bus 1, slot 1", 0x80000000u | 1 << 16 | 1 << 11 },
		{ "bus 255, slot 1", 0x80000000u | 255 << 16 | 1 << 11 },
		{ "slot 1, function 1", 0x80000000u | 1 << 11 | 1 << 8 },
		{ "slot 0, function 7", 0x80000000u | 7 << 8 },
		{ "enable bit clear, slot 1", 1 << 11 },
		{ "enable bit clear, slot 0", 0 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(absent); i++) {
		if (cfg_rd_at(&x->h, absent[i].addr, 0, 4) != 0xffffffff ||
		    cfg_rd_at(&x->h, absent[i].addr, 2, 2) != 0xffff ||
		    cfg_rd_at(&x->h, absent[i].addr, 3, 1) != 0xff)
			fail_msg("%s: not all ones", absent[i].what);
		/* A write there reaches nobody. */
		wr(&pci_host_pio_ops, &x->h, 0, 4, absent[i].addr | PCI_COMMAND);
		wr(&pci_host_pio_ops, &x->h, 4, 2, PCI_CMD_MEMORY);
	}
	assert_int_equal(cfg_rd(&x->h, 1, PCI_COMMAND, 2), 0);
	assert_int_equal(x->bars_changed, 0);
	/* An access to 0xCFC that does not fit in the dword: all ones. */
	wr(&pci_host_pio_ops, &x->h, 0, 4, cfg_address(0, 1, 0, 0));
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 6, 4), 0xffffffff);
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 7, 2), 0xffff);
	/* Ports 0xCFA/0xCFB are not the latch: byte/word reads give ones. */
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 2, 1), 0xff);
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 2, 2), 0xffff);
	free(x);
}

/* ECAM: the same spaces as mechanism #1, at bus << 20 | slot << 15 |
 * function << 12 | register, whatever the 0xCF8 latch holds. */
static uint64_t ecam_rd(struct pci_host *h, unsigned slot, unsigned fn, unsigned reg,
			unsigned size)
{
	return rd(&pci_host_ecam_ops, h, (uint64_t)slot << 15 | fn << 12 | reg, size);
}

static void ecam_wr(struct pci_host *h, unsigned slot, unsigned reg, unsigned size, uint64_t v)
{
	wr(&pci_host_ecam_ops, h, (uint64_t)slot << 15 | reg, size, v);
}

static void test_pci_ecam(void **state)
{
	struct pci_fix *x = pci_fix_new();
	static const unsigned sizes[] = { 1, 2, 4 };

	(void)state;
	wr(&pci_host_pio_ops, &x->h, 0, 4, 0); /* the latch has no say */
	/* Every register of the bridge and the function, read both ways. */
	for (unsigned slot = 0; slot < 2; slot++)
		for (unsigned reg = 0; reg < PCI_CFG_SIZE; reg += 4)
			for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
				unsigned off = reg + (sizes[i] == 4 ? 0 : 4 - sizes[i]);
				uint64_t via_ecam = ecam_rd(&x->h, slot, 0, off, sizes[i]);

				if (via_ecam != cfg_rd(&x->h, slot, off, sizes[i]))
					fail_msg("00:%02x.0 register 0x%02x (%u bytes): ECAM 0x%llx",
						 slot, off, sizes[i], (unsigned long long)via_ecam);
			}
	/* Writes land where mechanism #1 sees them, with the same effects. */
	ecam_wr(&x->h, 1, PCI_INT_LINE, 1, 0x0b);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_INT_LINE, 1), 0x0b);
	ecam_wr(&x->h, 1, PCI_COMMAND, 2, PCI_CMD_MEMORY);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_COMMAND, 2), PCI_CMD_MEMORY);
	assert_true(x->bars_changed > 0);
	ecam_wr(&x->h, 0, PCI_COMMAND, 2, 0x0007); /* the bridge is read-only */
	assert_int_equal(cfg_rd(&x->h, 0, PCI_COMMAND, 2), 0);
	/* Absent functions, and past the 256-byte space (a conventional
	 * function has no extended capabilities): all ones, writes lost. */
	assert_int_equal(ecam_rd(&x->h, 2, 0, 0, 4), 0xffffffff);
	assert_int_equal(ecam_rd(&x->h, 31, 0, 0, 2), 0xffff);
	assert_int_equal(ecam_rd(&x->h, 1, 1, 0, 4), 0xffffffff);
	assert_int_equal(ecam_rd(&x->h, 0, 7, 0, 1), 0xff);
	assert_int_equal(ecam_rd(&x->h, 1, 0, 0x100, 4), 0xffffffff);
	assert_int_equal(ecam_rd(&x->h, 1, 0, 0xffc, 4), 0xffffffff);
	assert_int_equal(ecam_rd(&x->h, 1, 0, 0xfe, 4), 0xffffffff); /* across the end */
	ecam_wr(&x->h, 1, 0x100, 4, 0x12345678);
	ecam_wr(&x->h, 1, 0xfe, 4, 0x12345678);
	assert_int_equal(cfg_rd(&x->h, 1, 0xfc, 4), 0);
	wr(&pci_host_ecam_ops, &x->h, 1 << 15 | 1 << 12 | PCI_INT_LINE, 1, 0x0c);
	assert_int_equal(cfg_rd(&x->h, 1, PCI_INT_LINE, 1), 0x0b);
	free(x);
}

static void test_pci_bar_sizing(void **state)
{
	struct pci_fix *x = pci_fix_new();
	uint64_t a0, a2, a4;
	uint32_t hi = 0xdead;

	(void)state;
	a0 = bar_addr(&x->h, 1, 0);
	a2 = bar_addr(&x->h, 1, 2);
	a4 = bar_addr(&x->h, 1, 4);
	/* Assigned in the window, naturally aligned, not overlapping. */
	assert_true(a0 >= PCI_MMIO_BASE && a0 + 0x1000 <= PCI_MMIO_END && a0 % 0x1000 == 0);
	assert_true(a2 >= PCI_MMIO_BASE && a2 + 0x4000 <= PCI_MMIO_END && a2 % 0x4000 == 0);
	assert_true(a4 >= PCI_MMIO_BASE && a4 + 0x1000 <= PCI_MMIO_END && a4 % 0x1000 == 0);
	assert_true(a0 + 0x1000 <= a2 || a2 + 0x4000 <= a0);
	assert_true(a2 + 0x4000 <= a4 || a4 + 0x1000 <= a2);
	assert_true(a0 + 0x1000 <= a4 || a4 + 0x1000 <= a0);

	/* 32-bit memory BAR of 4 KiB. */
	assert_int_equal(bar_size_mask(&x->h, 1, 0, &hi), 0xfffff000);
	assert_int_equal(hi, 0);
	/* 64-bit memory BAR of 16 KiB: type bits 10b, upper half all ones. */
	assert_int_equal(bar_size_mask(&x->h, 1, 2, &hi), 0xffffc000 | PCI_BAR_MEM64);
	assert_int_equal(hi, 0xffffffff);
	/* Unimplemented BARs (1 is between, 5 after) stay 0. */
	assert_int_equal(bar_size_mask(&x->h, 1, 1, &hi), 0);
	assert_int_equal(bar_size_mask(&x->h, 1, 5, &hi), 0);
	/* The sizing wrote the BARs: the owner heard of it. */
	assert_true(x->bars_changed > 0);
	assert_int_equal(bar_addr(&x->h, 1, 0), a0);
	assert_int_equal(bar_addr(&x->h, 1, 2), a2);
	free(x);
}

static void test_pci_cf9(void **state)
{
	struct pci_fix *x = pci_fix_new();

	(void)state;
	x->cf9.reg = 0x0a;
	/* Byte accesses to 0xCF9 reach the reset control register. */
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 1, 1), 0x0a);
	wr(&pci_host_pio_ops, &x->h, 1, 1, 0x06);
	assert_int_equal(x->cf9.writes, 1);
	assert_int_equal(x->cf9.reads, 1);
	assert_int_equal(x->cf9.reg, 0x06);
	/* A dword to 0xCF8 is the address latch, not the reset register. */
	wr(&pci_host_pio_ops, &x->h, 0, 4, 0x80000806);
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 0, 4), 0x80000804);
	/* Neither are word or byte accesses at 0xCF8, or a word at 0xCF9. */
	wr(&pci_host_pio_ops, &x->h, 0, 2, 0x0606);
	wr(&pci_host_pio_ops, &x->h, 0, 1, 0x06);
	wr(&pci_host_pio_ops, &x->h, 1, 2, 0x0606);
	(void)rd(&pci_host_pio_ops, &x->h, 1, 2);
	(void)rd(&pci_host_pio_ops, &x->h, 0, 1);
	/* Linux's pci_check_type1() pokes 0xCFB with a byte: harmless. */
	wr(&pci_host_pio_ops, &x->h, 3, 1, 0x01);
	assert_int_equal(x->cf9.writes, 1);
	assert_int_equal(x->cf9.reads, 1);
	assert_int_equal(x->cf9.reg, 0x06);
	assert_int_equal(rd(&pci_host_pio_ops, &x->h, 0, 4), 0x80000804);
	free(x);
}

static void test_pci_plug_full(void **state)
{
	struct pci_host *h = calloc(1, sizeof(*h));
	struct pci_function *f = calloc(PCI_MAX_SLOTS, sizeof(*f));
	struct fake_cf9 cf9 = { 0 };
	struct fake_bar bar = { 0 };

	(void)state;
	assert_true(h && f);
	pci_host_init(h, &fake_cf9_ops, &cf9);
	for (unsigned i = 0; i < PCI_MAX_SLOTS; i++) {
		pci_function_init(&f[i], T_VENDOR, (uint16_t)i, T_CLASS, 0, 0, 0);
		pci_function_add_bar(&f[i], 0, 0x1000, false, &fake_bar_ops, &bar);
	}
	/* Slots 1..31; slot 0 is the bridge. */
	for (unsigned i = 0; i < PCI_MAX_SLOTS - 1; i++)
		assert_int_equal(pci_host_plug(h, &f[i]), (int)i + 1);
	assert_int_equal(pci_host_plug(h, &f[PCI_MAX_SLOTS - 1]), -ENOSPC);
	for (unsigned s = 1; s < PCI_MAX_SLOTS; s++)
		assert_int_equal(cfg_rd(h, s, PCI_DEVICE_ID, 2), s - 1);

	/* A BAR that does not fit in the window. */
	pci_host_init(h, &fake_cf9_ops, &cf9);
	pci_function_init(&f[0], T_VENDOR, 0, T_CLASS, 0, 0, 0);
	pci_function_add_bar(&f[0], 0, GiB(1), true, &fake_bar_ops, &bar);
	assert_int_equal(pci_host_plug(h, &f[0]), -ENOSPC);
	free(f);
	free(h);
}

/* --- 2. MMIO dispatch ---------------------------------------------------- */

static void test_pci_mmio_dispatch(void **state)
{
	struct pci_fix *x = pci_fix_new();
	uint64_t a0 = bar_addr(&x->h, 1, 0), a2 = bar_addr(&x->h, 1, 2);
	uint64_t moved = 0xd0000000;
	unsigned changed;

	(void)state;
	/* Memory decoding off (as plugged): nobody answers. */
	assert_int_equal(pci_bar_addr(&x->f, 0), 0);
	assert_int_equal(mm_rd(&x->h, a0 + 8, 4), 0xffffffff);
	mm_wr(&x->h, a0 + 8, 4, 1);
	assert_int_equal(x->bar0.reads + x->bar0.writes, 0);

	changed = x->bars_changed;
	cfg_wr(&x->h, 1, PCI_COMMAND, 2, PCI_CMD_MEMORY);
	assert_int_equal(x->bars_changed, changed + 1);
	assert_int_equal(pci_bar_addr(&x->f, 0), a0);
	assert_int_equal(pci_bar_addr(&x->f, 2), a2);
	assert_int_equal(mm_rd(&x->h, a0 + 8, 4), 0x5a5a5a5a);
	assert_int_equal(x->bar0.reads, 1);
	assert_int_equal(x->bar0.off, 8);
	assert_int_equal(x->bar0.size, 4);
	mm_wr(&x->h, a0 + 0xff8, 8, 0x1122334455667788ull);
	assert_int_equal(x->bar0.writes, 1);
	assert_int_equal(x->bar0.off, 0xff8);
	assert_int_equal(x->bar0.val, 0x1122334455667788ull);
	mm_wr(&x->h, a2 + 0x3ffe, 2, 0xbeef);
	assert_int_equal(x->bar2.writes, 1);
	assert_int_equal(x->bar2.off, 0x3ffe);
	assert_int_equal(x->bar2.val, 0xbeef);
	/* Straddling the end of a BAR: not dispatched. */
	mm_wr(&x->h, a0 + 0xffc, 8, 0);
	assert_int_equal(x->bar0.writes, 1);

	/* The guest moves BAR0: accesses follow it. */
	changed = x->bars_changed;
	cfg_wr(&x->h, 1, PCI_BAR0, 4, moved);
	assert_int_equal(x->bars_changed, changed + 1);
	assert_int_equal(pci_bar_addr(&x->f, 0), moved);
	mm_wr(&x->h, a0 + 8, 4, 7);
	assert_int_equal(x->bar0.writes, 1);
	mm_wr(&x->h, moved + 0x10, 4, 7);
	assert_int_equal(x->bar0.writes, 2);
	assert_int_equal(x->bar0.off, 0x10);
	/* Low bits below the size are not writable: aligned regardless. */
	cfg_wr(&x->h, 1, PCI_BAR0, 4, moved + 0x123);
	assert_int_equal(pci_bar_addr(&x->f, 0), moved);
	/* The 64-bit BAR moves with its two halves. */
	cfg_wr(&x->h, 1, PCI_BAR0 + 8, 4, 0xd0010000);
	cfg_wr(&x->h, 1, PCI_BAR0 + 12, 4, 0);
	assert_int_equal(pci_bar_addr(&x->f, 2), 0xd0010000);
	mm_rd(&x->h, 0xd0010000 + 0x20, 2);
	assert_int_equal(x->bar2.reads, 1);
	assert_int_equal(x->bar2.off, 0x20);
	/* Above 4 GiB it is out of this window. */
	cfg_wr(&x->h, 1, PCI_BAR0 + 12, 4, 1);
	assert_int_equal(pci_bar_addr(&x->f, 2), 0x1d0010000ull);
	assert_int_equal(mm_rd(&x->h, 0xd0010000 + 0x20, 2), 0xffff);
	assert_int_equal(x->bar2.reads, 1);

	/* Decoding off again: nothing answers anywhere. */
	cfg_wr(&x->h, 1, PCI_COMMAND, 2, 0);
	assert_int_equal(mm_rd(&x->h, moved + 0x10, 4), 0xffffffff);
	assert_int_equal(x->bar0.reads, 1);
	free(x);
}

/* --- 3. MSI-X ------------------------------------------------------------ */

static uint64_t msix_table(struct pci_fix *x)
{
	return bar_addr(&x->h, 1, 4);
}

static void msix_set_entry(struct pci_fix *x, unsigned v, uint64_t addr, uint32_t data,
			   bool masked)
{
	uint64_t e = msix_table(x) + v * MSIX_ENTRY_SIZE;

	mm_wr(&x->h, e, 4, (uint32_t)addr);
	mm_wr(&x->h, e + 4, 4, addr >> 32);
	mm_wr(&x->h, e + 8, 4, data);
	mm_wr(&x->h, e + 12, 4, masked ? MSIX_VEC_MASKED : 0);
}

static uint64_t pba(struct pci_fix *x)
{
	return mm_rd(&x->h, msix_table(x) + 0x800, 8);
}

static void msix_ctrl(struct pci_fix *x, uint16_t bits)
{
	unsigned cap = x->f.msix.cap;
	uint16_t c = (uint16_t)cfg_rd(&x->h, 1, cap + 2, 2);

	cfg_wr(&x->h, 1, cap + 2, 2, (c & 0x7ff) | bits);
}

static void test_msix(void **state)
{
	struct pci_fix *x = pci_fix_new();
	const uint64_t addr = 0xfee01000;
	unsigned cap = x->f.msix.cap;

	(void)state;
	cfg_wr(&x->h, 1, PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	/* The capability: table size N-1, table and PBA in BAR 4. */
	assert_int_equal(cfg_rd(&x->h, 1, cap, 1), PCI_CAP_MSIX);
	assert_int_equal(cfg_rd(&x->h, 1, cap + 2, 2), T_NVEC - 1);
	assert_int_equal(cfg_rd(&x->h, 1, cap + 4, 4), 0 | 4);
	assert_int_equal(cfg_rd(&x->h, 1, cap + 8, 4), 0x800 | 4);
	/* Table size and BIRs are read-only. */
	cfg_wr(&x->h, 1, cap + 2, 2, 0x07ff);
	cfg_wr(&x->h, 1, cap + 4, 4, 0x1000 | 2);
	assert_int_equal(cfg_rd(&x->h, 1, cap + 2, 2), T_NVEC - 1);
	assert_int_equal(cfg_rd(&x->h, 1, cap + 4, 4), 0 | 4);
	/* Every vector starts masked. */
	for (unsigned v = 0; v < T_NVEC; v++)
		assert_int_equal(mm_rd(&x->h, msix_table(x) + v * 16 + 12, 4), MSIX_VEC_MASKED);

	/* Disabled: nothing sent, nothing pending. */
	assert_false(pci_msix_enabled(&x->f));
	assert_false(pci_msix_notify(&x->f, 2));
	assert_int_equal(msi_total(&x->msi), 0);
	assert_int_equal(pba(x), 0);

	msix_set_entry(x, 2, addr, 0x4042, true);
	msix_set_entry(x, 3, addr + 0x2000, 0x4043, false);
	msix_ctrl(x, MSIX_CTRL_ENABLE);
	assert_true(pci_msix_enabled(&x->f));
	assert_int_equal(x->msix_changed, 1);
	/* Unmasked entry: sent now with the table's address and data. */
	assert_true(pci_msix_notify(&x->f, 3));
	assert_int_equal(msi_total(&x->msi), 1);
	assert_int_equal(msi_count(&x->msi, addr + 0x2000, 0x4043), 1);
	/* Masked entry: pending bit, nothing sent ... */
	assert_false(pci_msix_notify(&x->f, 2));
	assert_int_equal(msi_total(&x->msi), 1);
	assert_int_equal(pba(x), 1u << 2);
	assert_int_equal(mm_rd(&x->h, msix_table(x) + 0x800, 4), 1u << 2);
	assert_int_equal(mm_rd(&x->h, msix_table(x) + 0x800, 1), 1u << 2);
	/* ... the PBA is read-only ... */
	mm_wr(&x->h, msix_table(x) + 0x800, 8, 0);
	assert_int_equal(pba(x), 1u << 2);
	/* ... and unmasking delivers it and clears the bit. */
	mm_wr(&x->h, msix_table(x) + 2 * 16 + 12, 4, 0);
	assert_int_equal(msi_total(&x->msi), 2);
	assert_int_equal(msi_count(&x->msi, addr, 0x4042), 1);
	assert_int_equal(pba(x), 0);
	assert_true(pci_msix_notify(&x->f, 2));
	assert_int_equal(msi_count(&x->msi, addr, 0x4042), 2);

	/* Function mask: everything pends, unmasking the function sends. */
	msix_ctrl(x, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	assert_int_equal(x->msix_changed, 2);
	assert_false(pci_msix_notify(&x->f, 2));
	assert_false(pci_msix_notify(&x->f, 3));
	assert_int_equal(msi_total(&x->msi), 3);
	assert_int_equal(pba(x), (1u << 2) | (1u << 3));
	msix_ctrl(x, MSIX_CTRL_ENABLE);
	assert_int_equal(msi_total(&x->msi), 5);
	assert_int_equal(msi_count(&x->msi, addr, 0x4042), 3);
	assert_int_equal(msi_count(&x->msi, addr + 0x2000, 0x4043), 2);
	assert_int_equal(pba(x), 0);

	/* Out-of-range vectors and "no vector" send nothing. */
	assert_false(pci_msix_notify(&x->f, T_NVEC));
	assert_false(pci_msix_notify(&x->f, VIRTIO_MSI_NO_VECTOR));
	assert_int_equal(msi_total(&x->msi), 5);
	/* A sink that fails: not sent. */
	x->msi.ret = -EIO;
	assert_false(pci_msix_notify(&x->f, 3));
	x->msi.ret = 0;
	/* Table reads give back what the guest wrote, in any size. */
	assert_int_equal(mm_rd(&x->h, msix_table(x) + 2 * 16, 8), addr);
	assert_int_equal(mm_rd(&x->h, msix_table(x) + 2 * 16 + 8, 2), 0x4042);
	/* Past the table and the PBA: zeroes, writes ignored. */
	assert_int_equal(mm_rd(&x->h, msix_table(x) + T_NVEC * 16, 4), 0);
	mm_wr(&x->h, msix_table(x) + T_NVEC * 16, 4, 0x12345678);
	assert_int_equal(mm_rd(&x->h, msix_table(x) + T_NVEC * 16, 4), 0);

	/* Reset: MSI-X off, every entry masked, BARs as assigned. */
	cfg_wr(&x->h, 1, PCI_BAR0, 4, 0xd0000000);
	pci_function_reset(&x->f);
	assert_false(pci_msix_enabled(&x->f));
	assert_int_equal(cfg_rd(&x->h, 1, PCI_COMMAND, 2), 0);
	assert_int_equal(memcmp(x->f.cfg, x->f.cfg_reset, PCI_CFG_SIZE), 0);
	for (unsigned v = 0; v < T_NVEC; v++)
		assert_int_equal(get_le32(x->f.msix.table + v * 16 + 12), MSIX_VEC_MASKED);
	assert_int_equal(x->f.msix.pba, 0);
	free(x);
}

/* --- 4. the split virtqueue ---------------------------------------------- */

#define VQ_SIZE   8
#define VQ_DESC   (RAM_BASE + 0x0000)
#define VQ_AVAIL  (RAM_BASE + 0x1000)
#define VQ_USED   (RAM_BASE + 0x2000)
#define VQ_IND    (RAM_BASE + 0x3000)   /* indirect tables, 0x100 apart */
#define VQ_BUF    (RAM_BASE + 0x10000)  /* buffers, 0x100 apart */


struct vq_fix {
	struct fake_ram *ram;
	struct virtq q;
	struct virtq_elem e;
	uint16_t aidx;
};

static void put_desc(struct fake_ram *r, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *p = host(r, table + VIRTQ_DESC_SIZE * (uint64_t)i);

	put_le64(p + VIRTQ_DESC_ADDR, addr);
	put_le32(p + VIRTQ_DESC_LEN, len);
	put_le16(p + VIRTQ_DESC_FLAGS, flags);
	put_le16(p + VIRTQ_DESC_NEXT, next);
}

/* The driver side: ring entry, then the index (release). */
static void avail_push(struct fake_ram *r, uint64_t avail, uint16_t size, uint16_t *aidx,
		       uint16_t head)
{
	put_le16(host(r, avail + VIRTQ_AVAIL_RING + 2 * (uint64_t)(*aidx % size)), head);
	(*aidx)++;
	__atomic_store_n((uint16_t *)host(r, avail + VIRTQ_AVAIL_IDX), *aidx, __ATOMIC_RELEASE);
}

static uint16_t used_idx_at(struct fake_ram *r, uint64_t used)
{
	return __atomic_load_n((uint16_t *)host(r, used + VIRTQ_USED_IDX), __ATOMIC_ACQUIRE);
}

static struct vq_fix *vq_fix_new(bool indirect)
{
	struct vq_fix *v = calloc(1, sizeof(*v));

	assert_non_null(v);
	v->ram = fake_ram_new();
	virtq_init(&v->q, VQ_SIZE, &v->ram->gr);
	v->q.s.size = VQ_SIZE;
	v->q.s.desc = VQ_DESC;
	v->q.s.avail = VQ_AVAIL;
	v->q.s.used = VQ_USED;
	v->q.s.enabled = true;
	v->q.indirect = indirect;
	assert_int_equal(virtq_map(&v->q), 0);
	return v;
}

static void vq_fix_free(struct vq_fix *v)
{
	fake_ram_free(v->ram);
	free(v);
}

static uint64_t vbuf(unsigned i)
{
	return VQ_BUF + 0x100 * (uint64_t)i;
}

static void test_virtq_good_chains(void **state)
{
	struct vq_fix *v = vq_fix_new(true);
	struct fake_ram *r = v->ram;
	uint8_t *u = host(r, VQ_USED);

	(void)state;
	/* Nothing available. */
	assert_int_equal(virtq_pop(&v->q, &v->e), 0);
	assert_false(virtq_has_work(&v->q));

	/* Chain at 5: readable 16, readable 8, writable 16, writable 16
	 * (in table order 5 -> 1 -> 6 -> 2). */
	put_desc(r, VQ_DESC, 5, vbuf(0), 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(r, VQ_DESC, 1, vbuf(1), 8, VIRTQ_DESC_F_NEXT, 6);
	put_desc(r, VQ_DESC, 6, vbuf(2), 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(r, VQ_DESC, 2, vbuf(3), 16, VIRTQ_DESC_F_WRITE, 0);
	/* Chain at 3: an indirect table of readable 4, writable 32, writable
	 * 0 (a zero-length buffer is allowed), writable 1. */
	put_desc(r, VQ_DESC, 3, VQ_IND, 4 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(r, VQ_IND, 0, vbuf(4), 4, VIRTQ_DESC_F_NEXT, 3);
	put_desc(r, VQ_IND, 3, vbuf(5), 32, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(r, VQ_IND, 1, vbuf(6), 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(r, VQ_IND, 2, vbuf(7), 1, VIRTQ_DESC_F_WRITE, 0);
	avail_push(r, VQ_AVAIL, VQ_SIZE, &v->aidx, 5);
	avail_push(r, VQ_AVAIL, VQ_SIZE, &v->aidx, 3);
	assert_true(virtq_has_work(&v->q));

	assert_int_equal(virtq_pop(&v->q, &v->e), 1);
	assert_int_equal(v->e.head, 5);
	assert_int_equal(v->e.n_out, 2);
	assert_int_equal(v->e.n_in, 2);
	assert_int_equal(v->e.out_len, 24);
	assert_int_equal(v->e.in_len, 32);
	for (unsigned i = 0; i < 4; i++) {
		assert_ptr_equal(v->e.iov[i].iov_base, host(r, vbuf(i)));
		assert_int_equal(v->e.gpa[i], vbuf(i));
	}
	assert_int_equal(v->e.iov[1].iov_len, 8);
	assert_int_equal(v->e.iov[3].iov_len, 16);
	assert_int_equal(v->q.s.last_avail, 1);

	/* 20 bytes written: 16 of the first writable buffer, 4 of the next. */
	dirty_clear(r);
	virtq_push(&v->q, &v->e, 20);
	assert_int_equal(used_idx_at(r, VQ_USED), 1);
	assert_int_equal(get_le32(u + 4), 5);
	assert_int_equal(get_le32(u + 8), 20);
	assert_true(dirty_all(r, vbuf(2), 16));
	assert_true(dirty_all(r, vbuf(3), 4));
	assert_false(dirty_any(r, vbuf(3) + 4, 12));
	assert_false(dirty_any(r, vbuf(0), 16 * 2)); /* readable: untouched */
	assert_true(dirty_all(r, VQ_USED + 2, 2 + 8)); /* idx and element 0 */
	assert_int_equal(r->dirty_outside, 0);
	/* As ranges: the two buffers' written parts, then the used ring. */
	assert_int_equal(r->ndirty, 3);
	assert_int_equal(r->log[0].gpa, vbuf(2));
	assert_int_equal(r->log[0].len, 16);
	assert_int_equal(r->log[1].gpa, vbuf(3));
	assert_int_equal(r->log[1].len, 4);
	assert_true(r->log[2].gpa <= VQ_USED + 2 &&
		    r->log[2].gpa + r->log[2].len >= VQ_USED + 4 + 8 * VQ_SIZE);
	assert_true(virtq_should_notify(&v->q));

	assert_int_equal(virtq_pop(&v->q, &v->e), 1);
	assert_int_equal(v->e.head, 3);
	assert_int_equal(v->e.n_out, 1);
	assert_int_equal(v->e.n_in, 3);
	assert_int_equal(v->e.out_len, 4);
	assert_int_equal(v->e.in_len, 33);
	assert_ptr_equal(v->e.iov[0].iov_base, host(r, vbuf(4)));
	assert_ptr_equal(v->e.iov[1].iov_base, host(r, vbuf(5)));
	assert_int_equal(v->e.iov[2].iov_len, 0);
	assert_ptr_equal(v->e.iov[3].iov_base, host(r, vbuf(7)));
	dirty_clear(r);
	virtq_push(&v->q, &v->e, 33);
	assert_int_equal(used_idx_at(r, VQ_USED), 2);
	assert_int_equal(get_le32(u + 4 + 8), 3);
	assert_int_equal(get_le32(u + 8 + 8), 33);
	assert_true(dirty_all(r, vbuf(5), 32));
	assert_true(dirty_all(r, vbuf(7), 1));
	assert_true(dirty_all(r, VQ_USED + 2, 2));
	assert_true(dirty_all(r, VQ_USED + 4 + 8, 8));
	assert_int_equal(r->dirty_outside, 0);
	assert_int_equal(virtq_pop(&v->q, &v->e), 0);

	/* A chain as long as the queue is fine. */
	for (unsigned i = 0; i < VQ_SIZE; i++)
		put_desc(r, VQ_DESC, i, vbuf(i), 8, i + 1 < VQ_SIZE ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	avail_push(r, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
	assert_int_equal(virtq_pop(&v->q, &v->e), 1);
	assert_int_equal(v->e.n_out, VQ_SIZE);
	virtq_push(&v->q, &v->e, 0);

	/* NO_INTERRUPT: the driver does not want to hear of it. */
	put_le16(host(r, VQ_AVAIL + VIRTQ_AVAIL_FLAGS), VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_should_notify(&v->q));
	put_le16(host(r, VQ_AVAIL + VIRTQ_AVAIL_FLAGS), 0);
	assert_true(virtq_should_notify(&v->q));
	vq_fix_free(v);
}

/* The 16-bit indexes wrap: 0xfffe -> 0x0001 is three entries. */
static void test_virtq_index_wrap(void **state)
{
	struct vq_fix *v = vq_fix_new(false);
	struct fake_ram *r = v->ram;

	(void)state;
	v->q.s.last_avail = v->q.s.used_idx = 0xfffe;
	v->aidx = 0xfffe;
	for (unsigned i = 0; i < 3; i++) {
		put_desc(r, VQ_DESC, i, vbuf(i), 8, VIRTQ_DESC_F_WRITE, 0);
		avail_push(r, VQ_AVAIL, VQ_SIZE, &v->aidx, (uint16_t)i);
	}
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(virtq_pop(&v->q, &v->e), 1);
		assert_int_equal(v->e.head, i);
		virtq_push(&v->q, &v->e, 8);
	}
	assert_int_equal(virtq_pop(&v->q, &v->e), 0);
	assert_int_equal(v->q.s.last_avail, 1);
	assert_int_equal(used_idx_at(r, VQ_USED), 1);
	/* Slots 0xfffe % 8 = 6, 7, then 0. */
	assert_int_equal(get_le32(host(r, VQ_USED + 4 + 8 * 6)), 0);
	assert_int_equal(get_le32(host(r, VQ_USED + 4 + 8 * 7)), 1);
	assert_int_equal(get_le32(host(r, VQ_USED + 4)), 2);
	vq_fix_free(v);
}

/* Malformed chains: each builder lays out descriptors and makes one head
 * available. */
struct bad_chain {
	const char *what;
	bool indirect;          /* VIRTIO_F_INDIRECT_DESC negotiated */
	void (*build)(struct vq_fix *v);
};

static void bad_head(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, vbuf(0), 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, VQ_SIZE);
}

static void bad_next(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, vbuf(0), 8, VIRTQ_DESC_F_NEXT, VQ_SIZE);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_loop(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 2, vbuf(0), 8, VIRTQ_DESC_F_NEXT, 5);
	put_desc(v->ram, VQ_DESC, 5, vbuf(1), 8, VIRTQ_DESC_F_NEXT, 2);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 2);
}

static void bad_self_loop(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 4, vbuf(0), 8, VIRTQ_DESC_F_NEXT, 4);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 4);
}

/* Every descriptor of the table, then on: longer than the queue. */
static void bad_too_long(struct vq_fix *v)
{
	for (unsigned i = 0; i < VQ_SIZE; i++)
		put_desc(v->ram, VQ_DESC, i, vbuf(i), 8, VIRTQ_DESC_F_NEXT,
			 (uint16_t)((i + 1) % VQ_SIZE));
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_indirect_in_indirect(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(v->ram, VQ_IND, 0, vbuf(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(v->ram, VQ_IND, 1, VQ_IND + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(v->ram, VQ_IND + 0x100, 0, vbuf(1), 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_indirect_with_next(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	put_desc(v->ram, VQ_DESC, 1, vbuf(1), 8, VIRTQ_DESC_F_WRITE, 0);
	put_desc(v->ram, VQ_IND, 0, vbuf(0), 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void good_indirect(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(v->ram, VQ_IND, 0, vbuf(0), 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_indirect_len(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 24, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(v->ram, VQ_IND, 0, vbuf(0), 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_indirect_empty(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 0, VIRTQ_DESC_F_INDIRECT, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_indirect_table_outside(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, RAM_BASE + RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_indirect_next(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(v->ram, VQ_IND, 0, vbuf(0), 8, VIRTQ_DESC_F_NEXT, 2); /* the table has 2 */
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_indirect_loop(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(v->ram, VQ_IND, 0, vbuf(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(v->ram, VQ_IND, 1, vbuf(1), 8, VIRTQ_DESC_F_NEXT, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_buffer_after_ram(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, RAM_BASE + RAM_SIZE, 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_buffer_across_end(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, vbuf(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(v->ram, VQ_DESC, 1, RAM_BASE + RAM_SIZE - 4, 8, VIRTQ_DESC_F_WRITE, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_buffer_before_ram(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, RAM_BASE - 0x1000, 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_buffer_wraps(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, UINT64_MAX - 3, 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_write_then_read(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, vbuf(0), 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(v->ram, VQ_DESC, 1, vbuf(1), 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	put_desc(v->ram, VQ_DESC, 2, vbuf(2), 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

static void bad_write_then_read_indirect(struct vq_fix *v)
{
	put_desc(v->ram, VQ_DESC, 0, VQ_IND, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(v->ram, VQ_IND, 0, vbuf(0), 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(v->ram, VQ_IND, 1, vbuf(1), 8, 0, 0);
	avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, 0);
}

/* The avail index runs size + 1 ahead of what the device took. */
static void bad_avail_ahead(struct vq_fix *v)
{
	for (unsigned i = 0; i < VQ_SIZE; i++)
		put_desc(v->ram, VQ_DESC, i, vbuf(i), 8, 0, 0);
	for (unsigned i = 0; i <= VQ_SIZE; i++)
		avail_push(v->ram, VQ_AVAIL, VQ_SIZE, &v->aidx, (uint16_t)(i % VQ_SIZE));
}

static const struct bad_chain bad_chains[] = {
	{ "head >= queue size", false, bad_head },
	{ "next >= queue size", false, bad_next },
	{ "a loop a -> b -> a", false, bad_loop },
	{ "a descriptor chained to itself", false, bad_self_loop },
	{ "a chain longer than the queue", false, bad_too_long },
	{ "indirect inside indirect", true, bad_indirect_in_indirect },
	{ "indirect with NEXT", true, bad_indirect_with_next },
	{ "indirect when not negotiated", false, good_indirect },
	{ "indirect table length not a multiple of 16", true, bad_indirect_len },
	{ "indirect table of length 0", true, bad_indirect_empty },
	{ "indirect table outside RAM", true, bad_indirect_table_outside },
	{ "indirect next >= table entries", true, bad_indirect_next },
	{ "a loop inside an indirect table", true, bad_indirect_loop },
	{ "a buffer after RAM", false, bad_buffer_after_ram },
	{ "a buffer across the end of RAM", false, bad_buffer_across_end },
	{ "a buffer below RAM", false, bad_buffer_before_ram },
	{ "a buffer whose end wraps around", false, bad_buffer_wraps },
	{ "writable before readable", false, bad_write_then_read },
	{ "writable before readable, indirect", true, bad_write_then_read_indirect },
	{ "avail idx more than size ahead", false, bad_avail_ahead },
};

static void test_virtq_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad_chains); i++) {
		struct vq_fix *v = vq_fix_new(bad_chains[i].indirect);
		int ret;

		bad_chains[i].build(v);
		dirty_clear(v->ram);
		ret = virtq_pop(&v->q, &v->e);
		if (ret != -EINVAL)
			fail_msg("%s: pop = %d, want -EINVAL", bad_chains[i].what, ret);
		/* Nothing taken, nothing written. */
		if (v->q.s.last_avail != 0 || v->q.s.used_idx != 0 ||
		    used_idx_at(v->ram, VQ_USED) != 0 || v->ram->ndirty)
			fail_msg("%s: the queue moved", bad_chains[i].what);
		vq_fix_free(v);
	}
	/* The control: with the feature, the same indirect chain is fine. */
	{
		struct vq_fix *v = vq_fix_new(true);

		good_indirect(v);
		assert_int_equal(virtq_pop(&v->q, &v->e), 1);
		vq_fix_free(v);
	}
}

static void test_virtq_map(void **state)
{
	static const struct {
		const char *what;
		uint16_t size;
		uint64_t desc, avail, used;
	} bad[] = {
		{ "size 0", 0, VQ_DESC, VQ_AVAIL, VQ_USED },
		{ "size not a power of two", 6, VQ_DESC, VQ_AVAIL, VQ_USED },
		{ "size above the maximum", 2 * VQ_SIZE, VQ_DESC, VQ_AVAIL, VQ_USED },
		{ "descriptors not 16-aligned", VQ_SIZE, VQ_DESC + 8, VQ_AVAIL, VQ_USED },
		{ "avail ring odd", VQ_SIZE, VQ_DESC, VQ_AVAIL + 1, VQ_USED },
		{ "used ring not 4-aligned", VQ_SIZE, VQ_DESC, VQ_AVAIL, VQ_USED + 2 },
		{ "descriptors outside RAM", VQ_SIZE, RAM_BASE + RAM_SIZE - 64, VQ_AVAIL, VQ_USED },
		{ "avail ring outside RAM", VQ_SIZE, VQ_DESC, RAM_BASE + RAM_SIZE - 8, VQ_USED },
		{ "used ring outside RAM", VQ_SIZE, VQ_DESC, VQ_AVAIL, RAM_BASE + RAM_SIZE - 16 },
		{ "used ring below RAM", VQ_SIZE, VQ_DESC, VQ_AVAIL, 0 },
	};
	struct vq_fix *v = vq_fix_new(false);

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		v->q.s.size = bad[i].size;
		v->q.s.desc = bad[i].desc;
		v->q.s.avail = bad[i].avail;
		v->q.s.used = bad[i].used;
		if (virtq_map(&v->q) != -EINVAL)
			fail_msg("%s: mapped", bad[i].what);
		assert_null(v->q.desc);
		assert_null(v->q.avail);
		assert_null(v->q.used);
		/* Unmapped: no work, no pop, no interrupt. */
		assert_false(virtq_has_work(&v->q));
		assert_int_equal(virtq_pop(&v->q, &v->e), 0);
		assert_false(virtq_should_notify(&v->q));
	}
	/* A smaller power of two at the very end of RAM is fine. */
	v->q.s.size = 2;
	v->q.s.desc = RAM_BASE + RAM_SIZE - 32;
	v->q.s.avail = RAM_BASE + RAM_SIZE - 64;
	v->q.s.used = RAM_BASE + RAM_SIZE - 128;
	assert_int_equal(virtq_map(&v->q), 0);
	/* Reset: size back to the maximum, vector none, unmapped. */
	v->q.s.last_avail = 3;
	virtq_reset(&v->q);
	assert_int_equal(v->q.s.size, VQ_SIZE);
	assert_int_equal(v->q.s.msix_vector, VIRTIO_MSI_NO_VECTOR);
	assert_false(v->q.s.enabled);
	assert_int_equal(v->q.s.last_avail, 0);
	assert_null(v->q.avail);
	vq_fix_free(v);
}

/* A push on a queue that is not mapped does nothing (and does not compute
 * addresses from NULL). */
static void test_virtq_push_unmapped(void **state)
{
	struct vq_fix *v = vq_fix_new(false);

	(void)state;
	virtq_unmap(&v->q);
	memset(&v->e, 0, sizeof(v->e));
	dirty_clear(v->ram);
	virtq_push(&v->q, &v->e, 0);
	assert_int_equal(v->q.s.used_idx, 0);
	assert_int_equal(v->ram->ndirty, 0);
	vq_fix_free(v);
}

static void test_virtq_save_load(void **state)
{
	struct vq_fix *v = vq_fix_new(true);
	struct virtq_state s;
	struct buf b = { 0 }, b2 = { 0 };
	struct reader r;
	struct virtq q2;

	(void)state;
	v->q.s.msix_vector = 3;
	v->q.s.last_avail = v->q.s.used_idx = 0x1234;
	virtq_save(&v->q, &b);
	reader_init(&r, b.data, b.len);
	assert_int_equal(virtq_load_state(&s, VQ_SIZE, &r), 0);
	assert_int_equal(reader_finish(&r), 0);
	virtq_init(&q2, VQ_SIZE, &v->ram->gr);
	q2.s = s;
	virtq_save(&q2, &b2);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.data, b.data, b.len);

	/* Truncated anywhere. */
	for (size_t n = 0; n < b.len; n++) {
		reader_init(&r, b.data, n);
		if (virtq_load_state(&s, VQ_SIZE, &r) != -EINVAL)
			fail_msg("truncated to %zu of %zu bytes: accepted", n, b.len);
	}
	/* A larger queue than this device has. */
	reader_init(&r, b.data, b.len);
	assert_int_equal(virtq_load_state(&s, VQ_SIZE / 2, &r), -EINVAL);
	/* Requests in flight. */
	put_le16(b.data + b.len - 4, 0x1233);
	reader_init(&r, b.data, b.len);
	assert_int_equal(virtq_load_state(&s, VQ_SIZE, &r), -EINVAL);
	put_le16(b.data + b.len - 4, 0x1234);
	/* enabled is 0 or 1. */
	b.data[4] = 2;
	reader_init(&r, b.data, b.len);
	assert_int_equal(virtq_load_state(&s, VQ_SIZE, &r), -EINVAL);
	buf_free(&b);
	buf_free(&b2);
	vq_fix_free(v);
}

static void test_iov_helpers(void **state)
{
	uint8_t a[3] = { 1, 2, 3 }, b[5] = { 4, 5, 6, 7, 8 }, c[2] = { 9, 10 }, z[1] = { 0xee };
	struct iovec iov[4] = { { a, 3 }, { z, 0 }, { b, 5 }, { c, 2 } };
	struct iovec dst[4];
	uint8_t out[16];
	unsigned dn;

	(void)state;
	/* iov_to_buf: all, across entries, from a boundary, past the end. */
	memset(out, 0, sizeof(out));
	assert_int_equal(iov_to_buf(iov, 4, 0, out, 10), 10);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(out[i], i + 1);
	memset(out, 0, sizeof(out));
	assert_int_equal(iov_to_buf(iov, 4, 2, out, 4), 4);
	assert_int_equal(out[0], 3);
	assert_int_equal(out[1], 4);
	assert_int_equal(out[3], 6);
	assert_int_equal(out[4], 0);
	assert_int_equal(iov_to_buf(iov, 4, 3, out, 1), 1);
	assert_int_equal(out[0], 4);
	assert_int_equal(iov_to_buf(iov, 4, 8, out, 16), 2);
	assert_int_equal(out[0], 9);
	assert_int_equal(out[1], 10);
	assert_int_equal(iov_to_buf(iov, 4, 10, out, 16), 0);
	assert_int_equal(iov_to_buf(iov, 4, 11, out, 16), 0);
	assert_int_equal(iov_to_buf(iov, 4, 0, out, 0), 0);
	assert_int_equal(iov_to_buf(iov, 0, 0, out, 16), 0);
	assert_int_equal(iov_to_buf(iov, 1, 0, out, 16), 3);

	/* buf_to_iov writes exactly len bytes, nothing more. */
	memset(out, 0xa0, sizeof(out));
	assert_int_equal(buf_to_iov(iov, 4, 2, out, 5), 5);
	assert_int_equal(a[0], 1);
	assert_int_equal(a[1], 2);
	assert_int_equal(a[2], 0xa0);
	assert_int_equal(b[3], 0xa0);
	assert_int_equal(b[4], 8);
	assert_int_equal(z[0], 0xee);
	assert_int_equal(buf_to_iov(iov, 4, 9, out, 5), 1);
	assert_int_equal(c[0], 9);
	assert_int_equal(c[1], 0xa0);
	assert_int_equal(buf_to_iov(iov, 4, 10, out, 5), 0);
	assert_int_equal(buf_to_iov(iov, 4, 0, out, 0), 0);

	/* iov_slice: the zero-length entry never appears in the result. */
	assert_int_equal(iov_slice(iov, 4, 2, 6, dst, &dn), 6);
	assert_int_equal(dn, 2);
	assert_ptr_equal(dst[0].iov_base, a + 2);
	assert_int_equal(dst[0].iov_len, 1);
	assert_ptr_equal(dst[1].iov_base, b);
	assert_int_equal(dst[1].iov_len, 5);
	assert_int_equal(iov_slice(iov, 4, 0, 100, dst, &dn), 10);
	assert_int_equal(dn, 3);
	assert_int_equal(iov_slice(iov, 4, 3, 5, dst, &dn), 5);
	assert_int_equal(dn, 1);
	assert_ptr_equal(dst[0].iov_base, b);
	assert_int_equal(iov_slice(iov, 4, 4, 0, dst, &dn), 0);
	assert_int_equal(dn, 0);
	assert_int_equal(iov_slice(iov, 4, 10, 4, dst, &dn), 0);
	assert_int_equal(dn, 0);
	assert_int_equal(iov_slice(iov, 4, 9, 4, dst, &dn), 1);
	assert_int_equal(dn, 1);
	assert_ptr_equal(dst[0].iov_base, c + 1);
	assert_int_equal(dst[0].iov_len, 1);
}

/* --- 5. the transport and virtio-blk, end to end ------------------------- */



#define IMG_SIZE   MiB(1)
#define BLK_QMAX   256
#define DRV_QSIZE  16

/* Where the driver keeps things in guest RAM. */
#define G_DESC     (RAM_BASE + 0x0000)
#define G_AVAIL    (RAM_BASE + 0x1000)
#define G_USED     (RAM_BASE + 0x2000)
#define G_HDR      (RAM_BASE + 0x3000)   /* 16 bytes per request slot */
#define G_STATUS   (RAM_BASE + 0x3800)   /* 1 byte per request slot */
#define G_IND      (RAM_BASE + 0x4000)   /* 0x100 per request slot */
#define G_WDATA    (RAM_BASE + 0x10000)  /* what the driver writes */
#define G_RDATA    (RAM_BASE + 0x40000)  /* where reads land */

#define MSI_ADDR_CFG  0xfee00000ull
#define MSI_DATA_CFG  0x0030
#define MSI_ADDR_Q    0xfee01000ull
#define MSI_DATA_Q    0x0031

/* The driver's own view of the device and of queue 0. */
struct gdrv {
	uint64_t bar1, bar4;
	uint32_t common, notify, isr, device, mult;
	uint8_t msix_cap, pci_cfg_cap;
	uint16_t qsize, notify_off;
	uint16_t aidx;          /* shadow of avail->idx */
	unsigned next_desc;     /* descriptor allocator (wraps) */
	unsigned nreq;          /* request slot allocator */
};

struct blk_fix {
	struct fake_ram *ram;
	bool own_ram;
	struct fake_msi msi;
	struct fake_ioev ioev;
	struct fake_cf9 cf9;
	struct pci_host host;
	struct virtio_blk blk;
	bool created;
	char path[64];
	bool own_image;
	int slot;
	struct gdrv d;
};

struct blk_opts {
	bool readonly, direct, defer_open, start_paused;
	int ioev_ret;           /* 0: the fake registers ioeventfds */
	const char *serial;
	const char *path;       /* NULL: a new image */
	struct fake_ram *ram;   /* NULL: a new RAM */
};

static uint8_t img_byte(uint64_t off)
{
	return (uint8_t)((off / 512) * 7 + off % 251);
}

static void make_image(char *path, size_t n, uint64_t size)
{
	uint8_t *p = malloc(size);
	int fd;

	snprintf(path, n, "/var/tmp/ferry-test-virtio-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_non_null(p);
	for (uint64_t i = 0; i < size; i++)
		p[i] = img_byte(i);
	assert_int_equal(pwrite(fd, p, size, 0), (ssize_t)size);
	close(fd);
	free(p);
}

static void read_image(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* Finds the virtio vendor capability of type cfg_type by walking the list
 * as Linux's virtio_pci_find_capability() does. Returns its offset, 0. */
static uint8_t find_vcap(struct pci_host *h, unsigned slot, uint8_t cfg_type)
{
	uint8_t pos = (uint8_t)cfg_rd(h, slot, PCI_CAP_PTR, 1);

	for (unsigned n = 0; pos && n < 48; n++) {
		if (cfg_rd(h, slot, pos, 1) == PCI_CAP_VENDOR &&
		    cfg_rd(h, slot, pos + 3, 1) == cfg_type)
			return pos;
		pos = (uint8_t)cfg_rd(h, slot, pos + 1, 1);
	}
	return 0;
}

/* What the driver learns at probe: BARs, the structures, MSI-X. Turns
 * memory decoding and bus mastering on. */
static void drv_probe(struct blk_fix *f)
{
	struct gdrv *d = &f->d;
	uint8_t c;

	assert_int_equal(cfg_rd(&f->host, f->slot, PCI_VENDOR_ID, 2), VIRTIO_PCI_VENDOR);
	assert_int_equal(cfg_rd(&f->host, f->slot, PCI_DEVICE_ID, 2),
			 VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_BLOCK);
	cfg_wr(&f->host, f->slot, PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	d->bar1 = bar_addr(&f->host, f->slot, 1);
	d->bar4 = bar_addr(&f->host, f->slot, 4);
	c = find_vcap(&f->host, f->slot, VIRTIO_PCI_CAP_COMMON_CFG);
	assert_true(c);
	d->common = (uint32_t)cfg_rd(&f->host, f->slot, c + VIRTIO_CAP_OFFSET, 4);
	c = find_vcap(&f->host, f->slot, VIRTIO_PCI_CAP_NOTIFY_CFG);
	assert_true(c);
	d->notify = (uint32_t)cfg_rd(&f->host, f->slot, c + VIRTIO_CAP_OFFSET, 4);
	d->mult = (uint32_t)cfg_rd(&f->host, f->slot, c + VIRTIO_CAP_NOTIFY_MULT, 4);
	c = find_vcap(&f->host, f->slot, VIRTIO_PCI_CAP_ISR_CFG);
	assert_true(c);
	d->isr = (uint32_t)cfg_rd(&f->host, f->slot, c + VIRTIO_CAP_OFFSET, 4);
	c = find_vcap(&f->host, f->slot, VIRTIO_PCI_CAP_DEVICE_CFG);
	assert_true(c);
	d->device = (uint32_t)cfg_rd(&f->host, f->slot, c + VIRTIO_CAP_OFFSET, 4);
	d->pci_cfg_cap = find_vcap(&f->host, f->slot, VIRTIO_PCI_CAP_PCI_CFG);
	assert_true(d->pci_cfg_cap);
	d->msix_cap = f->blk.vp.pci.msix.cap;
}

static struct blk_fix *blk_fix_new(const struct blk_opts *o)
{
	struct blk_fix *f = calloc(1, sizeof(*f));
	struct virtio_blk_config cfg = { 0 };
	struct virtio_host vh;

	assert_non_null(f);
	fake_msi_init(&f->msi);
	f->ioev.ret = o->ioev_ret;
	f->own_ram = !o->ram;
	f->ram = o->ram ? o->ram : fake_ram_new();
	if (o->path) {
		snprintf(f->path, sizeof(f->path), "%s", o->path);
	} else {
		make_image(f->path, sizeof(f->path), IMG_SIZE);
		f->own_image = true;
	}
	cfg.path = f->path;
	cfg.readonly = o->readonly;
	cfg.direct = o->direct;
	cfg.defer_open = o->defer_open;
	snprintf(cfg.serial, sizeof(cfg.serial), "%s", o->serial ? o->serial : "");
	vh = (struct virtio_host){
		.ioeventfd = fake_ioeventfd, .ctx = &f->ioev,
		.ram = f->ram->gr,
		.msi = { fake_msi_send, &f->msi },
	};
	pci_host_init(&f->host, &fake_cf9_ops, &f->cf9);
	assert_int_equal(virtio_blk_create(&f->blk, &cfg, &vh, o->start_paused), 0);
	f->created = true;
	f->slot = pci_host_plug(&f->host, &f->blk.vp.pci);
	assert_int_equal(f->slot, 1);
	return f;
}

static void blk_fix_free(struct blk_fix *f)
{
	if (f->created)
		virtio_blk_destroy(&f->blk);
	if (f->own_image)
		unlink(f->path);
	if (f->own_ram)
		fake_ram_free(f->ram);
	free(f);
}

static uint64_t cc_rd(struct blk_fix *f, unsigned off, unsigned size)
{
	return mm_rd(&f->host, f->d.bar4 + f->d.common + off, size);
}

static void cc_wr(struct blk_fix *f, unsigned off, unsigned size, uint64_t v)
{
	mm_wr(&f->host, f->d.bar4 + f->d.common + off, size, v);
}

static uint8_t status(struct blk_fix *f)
{
	return (uint8_t)cc_rd(f, VIRTIO_CC_STATUS, 1);
}

static void set_status(struct blk_fix *f, uint8_t st)
{
	cc_wr(f, VIRTIO_CC_STATUS, 1, st);
}

static uint64_t dev_features(struct blk_fix *f)
{
	cc_wr(f, VIRTIO_CC_DFSEL, 4, 0);
	uint64_t lo = cc_rd(f, VIRTIO_CC_DF, 4);
	cc_wr(f, VIRTIO_CC_DFSEL, 4, 1);
	return lo | cc_rd(f, VIRTIO_CC_DF, 4) << 32;
}

static void write_features(struct blk_fix *f, uint64_t feat)
{
	cc_wr(f, VIRTIO_CC_GFSEL, 4, 0);
	cc_wr(f, VIRTIO_CC_GF, 4, (uint32_t)feat);
	cc_wr(f, VIRTIO_CC_GFSEL, 4, 1);
	cc_wr(f, VIRTIO_CC_GF, 4, feat >> 32);
}

static uint64_t read_driver_features(struct blk_fix *f)
{
	cc_wr(f, VIRTIO_CC_GFSEL, 4, 0);
	uint64_t lo = cc_rd(f, VIRTIO_CC_GF, 4);
	cc_wr(f, VIRTIO_CC_GFSEL, 4, 1);
	return lo | cc_rd(f, VIRTIO_CC_GF, 4) << 32;
}

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. Returns whether the
 * device kept FEATURES_OK. */
static bool drv_negotiate(struct blk_fix *f, uint64_t feat)
{
	set_status(f, 0);
	assert_int_equal(status(f), 0);
	set_status(f, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	write_features(f, feat);
	set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	return status(f) & VIRTIO_STATUS_FEATURES_OK;
}

/* Vector 0 for configuration changes, 1 for queue 0, as Linux does. */
static void drv_msix(struct blk_fix *f)
{
	uint64_t t = f->d.bar1;
	uint16_t ctrl;

	mm_wr(&f->host, t + 0, 4, (uint32_t)MSI_ADDR_CFG);
	mm_wr(&f->host, t + 4, 4, 0);
	mm_wr(&f->host, t + 8, 4, MSI_DATA_CFG);
	mm_wr(&f->host, t + 12, 4, 0);
	mm_wr(&f->host, t + 16, 4, (uint32_t)MSI_ADDR_Q);
	mm_wr(&f->host, t + 20, 4, 0);
	mm_wr(&f->host, t + 24, 4, MSI_DATA_Q);
	mm_wr(&f->host, t + 28, 4, 0);
	ctrl = (uint16_t)cfg_rd(&f->host, f->slot, f->d.msix_cap + 2, 2);
	cfg_wr(&f->host, f->slot, f->d.msix_cap + 2, 2, ctrl | MSIX_CTRL_ENABLE);
	cc_wr(f, VIRTIO_CC_MSIX, 2, 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_MSIX, 2), 0);
}

/* Queue 0 as vp_modern_setup_queue() programs it (64-bit addresses as two
 * 32-bit writes). */
static void drv_queue(struct blk_fix *f, uint16_t qsize)
{
	cc_wr(f, VIRTIO_CC_QSEL, 2, 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QSIZE, 2), BLK_QMAX);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QENABLE, 2), 0);
	cc_wr(f, VIRTIO_CC_QSIZE, 2, qsize);
	cc_wr(f, VIRTIO_CC_QMSIX, 2, 1);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QMSIX, 2), 1);
	cc_wr(f, VIRTIO_CC_QDESC, 4, (uint32_t)G_DESC);
	cc_wr(f, VIRTIO_CC_QDESC + 4, 4, G_DESC >> 32);
	cc_wr(f, VIRTIO_CC_QDRIVER, 4, (uint32_t)G_AVAIL);
	cc_wr(f, VIRTIO_CC_QDRIVER + 4, 4, G_AVAIL >> 32);
	cc_wr(f, VIRTIO_CC_QDEVICE, 4, (uint32_t)G_USED);
	cc_wr(f, VIRTIO_CC_QDEVICE + 4, 4, G_USED >> 32);
	f->d.notify_off = (uint16_t)cc_rd(f, VIRTIO_CC_QNOFF, 2);
	cc_wr(f, VIRTIO_CC_QENABLE, 2, 1);
	f->d.qsize = qsize;
	f->d.aidx = 0;
	f->d.next_desc = 0;
	memset(host(f->ram, G_AVAIL), 0, 0x1000);
	memset(host(f->ram, G_USED), 0, 0x1000);
}

static const uint64_t drv_all_features =
	VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
	VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
	VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);

static void drv_start_with(struct blk_fix *f, uint64_t feat)
{
	drv_probe(f);
	assert_true(drv_negotiate(f, feat));
	drv_msix(f);
	drv_queue(f, DRV_QSIZE);
	set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		      VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(f), 0x0f);
}

static void drv_start(struct blk_fix *f)
{
	drv_start_with(f, drv_all_features);
}

static void drv_notify(struct blk_fix *f)
{
	mm_wr(&f->host, f->d.bar4 + f->d.notify + (uint64_t)f->d.notify_off * f->d.mult, 2, 0);
}

static uint16_t used_idx(struct blk_fix *f)
{
	return used_idx_at(f->ram, G_USED);
}

/* The used element in ring slot i. */
static uint32_t used_id(struct blk_fix *f, uint16_t i)
{
	return get_le32(host(f->ram, G_USED + VIRTQ_USED_RING + VIRTQ_USED_ELEM_ID +
			     VIRTQ_USED_ELEM_SIZE * (uint64_t)(i % f->d.qsize)));
}

static uint32_t used_len(struct blk_fix *f, uint16_t i)
{
	return get_le32(host(f->ram, G_USED + VIRTQ_USED_RING + VIRTQ_USED_ELEM_LEN +
			     VIRTQ_USED_ELEM_SIZE * (uint64_t)(i % f->d.qsize)));
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

/* Lays a chain out in the descriptor table and makes it available. */
static uint16_t drv_submit(struct blk_fix *f, const struct seg *s, unsigned n, bool notify)
{
	struct gdrv *d = &f->d;
	uint16_t head;

	if (d->next_desc + n > d->qsize)
		d->next_desc = 0;
	head = (uint16_t)d->next_desc;
	for (unsigned i = 0; i < n; i++)
		put_desc(f->ram, G_DESC, head + i, s[i].gpa, s[i].len,
			 (uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE : 0) |
				    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			 (uint16_t)(head + i + 1));
	d->next_desc += n;
	avail_push(f->ram, G_AVAIL, d->qsize, &d->aidx, head);
	if (notify)
		drv_notify(f);
	return head;
}

/* The same chain in an indirect table (one descriptor in the ring). */
static uint16_t drv_submit_indirect(struct blk_fix *f, const struct seg *s, unsigned n,
				    unsigned slot)
{
	struct gdrv *d = &f->d;
	uint64_t t = G_IND + 0x100 * (uint64_t)slot;
	uint16_t head;

	for (unsigned i = 0; i < n; i++)
		put_desc(f->ram, t, i, s[i].gpa, s[i].len,
			 (uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE : 0) |
				    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			 (uint16_t)(i + 1));
	if (d->next_desc + 1 > d->qsize)
		d->next_desc = 0;
	head = (uint16_t)d->next_desc++;
	put_desc(f->ram, G_DESC, head, t, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	avail_push(f->ram, G_AVAIL, d->qsize, &d->aidx, head);
	drv_notify(f);
	return head;
}

struct req {
	uint16_t head;
	uint16_t idx;           /* the avail index it took */
	uint64_t hdr, status;   /* where its header and status byte are */
};

/* A block request: header, optional data, status byte (preset to 0xff). */
static struct req blk_submit(struct blk_fix *f, uint32_t type, uint64_t sector, uint64_t data,
			     uint32_t len, bool notify)
{
	unsigned slot = f->d.nreq++ % 16;
	struct req r = { .hdr = G_HDR + 16 * slot, .status = G_STATUS + slot };
	bool dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	struct seg s[3];
	unsigned n = 0;
	uint8_t *h = host(f->ram, r.hdr);

	put_le32(h, type);
	put_le32(h + 4, 0);
	put_le64(h + 8, sector);
	*host(f->ram, r.status) = 0xff;
	s[n++] = (struct seg){ r.hdr, 16, false };
	if (len)
		s[n++] = (struct seg){ data, len, dev_writes };
	s[n++] = (struct seg){ r.status, 1, true };
	r.idx = f->d.aidx;
	r.head = drv_submit(f, s, n, notify);
	return r;
}

/* Until the request that took avail index idx was returned (the used
 * index went past idx; it never passes the avail index). */
static bool wait_used(struct blk_fix *f, uint16_t idx)
{
	return WAIT_UNTIL((uint16_t)(used_idx(f) - idx - 1) < 0x8000);
}

/* Submits, waits until served, returns the status byte (and the used
 * length in *ulen). */
static uint8_t blk_do_len(struct blk_fix *f, uint32_t type, uint64_t sector, uint64_t data,
			  uint32_t len, uint32_t *ulen)
{
	struct req r = blk_submit(f, type, sector, data, len, true);

	if (!wait_used(f, r.idx))
		fail_msg("request type %u: not served within 2 s", type);
	assert_int_equal(used_id(f, r.idx), r.head);
	if (ulen)
		*ulen = used_len(f, r.idx);
	return *host(f->ram, r.status);
}

static uint8_t blk_do(struct blk_fix *f, uint32_t type, uint64_t sector, uint64_t data,
		      uint32_t len)
{
	return blk_do_len(f, type, sector, data, len, NULL);
}

/* Waits until the I/O thread took the notification and finished what it
 * did about it (for "nothing happened" checks). */
static void settle(struct blk_fix *f)
{
	struct pollfd p = { .fd = f->blk.vp.notify_fd[0], .events = POLLIN };

	if (!WAIT_UNTIL(poll(&p, 1, 0) == 0))
		fail_msg("the I/O thread did not take the notification");
	virtio_worker_wait_idle(&f->blk.worker);
}

static const struct blk_opts default_opts = { .serial = "ferry-disk-0", .ioev_ret = -ENOSYS };

static void test_virtio_caps(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	unsigned seen[6] = { 0 }, n = 0;
	uint8_t pos;
	uint32_t hi;

	(void)state;
	assert_int_equal(cfg_rd(&f->host, 1, 0x08, 4), 0x01800001); /* class, rev 1 */
	assert_int_equal(cfg_rd(&f->host, 1, PCI_SUBSYS_VENDOR, 2), VIRTIO_PCI_VENDOR);
	assert_true(cfg_rd(&f->host, 1, PCI_STATUS, 2) & PCI_STATUS_CAPS);
	/* BAR 1: 4 KiB, 32-bit (MSI-X); BAR 4: 16 KiB, 64-bit (virtio). */
	assert_int_equal(bar_size_mask(&f->host, 1, 1, &hi), 0xfffff000);
	assert_int_equal(bar_size_mask(&f->host, 1, 4, &hi), 0xffffc000 | PCI_BAR_MEM64);
	assert_int_equal(hi, 0xffffffff);
	assert_int_equal(bar_size_mask(&f->host, 1, 0, &hi), 0);

	pos = (uint8_t)cfg_rd(&f->host, 1, PCI_CAP_PTR, 1);
	for (; pos; pos = (uint8_t)cfg_rd(&f->host, 1, pos + 1, 1)) {
		uint8_t id = (uint8_t)cfg_rd(&f->host, 1, pos, 1);
		uint8_t len, type, bar;
		uint32_t off, length;

		assert_true(pos >= 0x40 && pos % 4 == 0);
		assert_true(++n < 16); /* no loop */
		if (id == PCI_CAP_MSIX) {
			assert_int_equal(cfg_rd(&f->host, 1, pos + 2, 2), 1); /* 2 vectors */
			assert_int_equal(cfg_rd(&f->host, 1, pos + 4, 4), 1); /* BAR 1, 0 */
			assert_int_equal(cfg_rd(&f->host, 1, pos + 8, 4), 0x800 | 1);
			seen[0]++;
			continue;
		}
		assert_int_equal(id, PCI_CAP_VENDOR);
		len = (uint8_t)cfg_rd(&f->host, 1, pos + VIRTIO_CAP_CAPLEN, 1);
		type = (uint8_t)cfg_rd(&f->host, 1, pos + VIRTIO_CAP_CFGTYPE, 1);
		bar = (uint8_t)cfg_rd(&f->host, 1, pos + VIRTIO_CAP_BAR, 1);
		off = (uint32_t)cfg_rd(&f->host, 1, pos + VIRTIO_CAP_OFFSET, 4);
		length = (uint32_t)cfg_rd(&f->host, 1, pos + VIRTIO_CAP_LENGTH, 4);
		assert_true(type >= VIRTIO_PCI_CAP_COMMON_CFG && type <= VIRTIO_PCI_CAP_PCI_CFG);
		assert_true(pos + len <= PCI_CFG_SIZE);
		seen[type]++;
		/* struct virtio_pci_cap; notify and pci_cfg add 4 bytes. */
		assert_int_equal(len, type == VIRTIO_PCI_CAP_NOTIFY_CFG ? VIRTIO_CAP_NOTIFY_SIZE
				      : type == VIRTIO_PCI_CAP_PCI_CFG ? VIRTIO_CAP_PCI_CFG_SIZE
				      : VIRTIO_CAP_SIZE);
		if (type == VIRTIO_PCI_CAP_PCI_CFG)
			continue; /* bar/offset/length are the driver's to set */
		assert_int_equal(bar, 4);
		assert_true(off % 4 == 0);
		assert_true(range_within(off, length, 0x4000));
		if (type == VIRTIO_PCI_CAP_COMMON_CFG)
			assert_true(length >= VIRTIO_CC_QDEVICE + 8);
		if (type == VIRTIO_PCI_CAP_ISR_CFG)
			assert_true(length >= 1);
		if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
			assert_true(length >= 60); /* struct virtio_blk_config up to unused1 */
		if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
			uint32_t mult =
				(uint32_t)cfg_rd(&f->host, 1, pos + VIRTIO_CAP_NOTIFY_MULT, 4);

			/* Queue 0 (notify_off 0) has its 2-byte register. */
			assert_true(mult % 2 == 0);
			assert_true(length >= 2);
		}
	}
	for (unsigned i = 0; i < 6; i++)
		if (seen[i] != 1)
			fail_msg("capability %s%u found %u times", i ? "virtio type " : "MSI-X ",
				 i, seen[i]);
	blk_fix_free(f);
}

static void test_virtio_features(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	uint64_t df;

	(void)state;
	drv_probe(f);
	df = dev_features(f);
	assert_true(df & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_true(df & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	assert_true(df & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	assert_true(df & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE));
	assert_true(df & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX));
	assert_false(df & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_false(df & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX));
	cc_wr(f, VIRTIO_CC_DFSEL, 4, 2);
	assert_int_equal(cc_rd(f, VIRTIO_CC_DF, 4), 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_DFSEL, 4), 2);

	/* Without VERSION_1 (a legacy driver): refused. */
	assert_false(drv_negotiate(f, drv_all_features & ~VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	assert_int_equal(status(f), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* Bits the device does not offer: refused. */
	assert_false(drv_negotiate(f, drv_all_features | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX)));
	assert_false(drv_negotiate(f, drv_all_features | VIRTIO_BIT(0)));
	assert_false(drv_negotiate(f, drv_all_features | VIRTIO_BIT(63)));
	/* Everything offered: accepted; VERSION_1 alone too. */
	assert_true(drv_negotiate(f, df));
	assert_int_equal(read_driver_features(f), df);
	assert_true(drv_negotiate(f, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	/* After FEATURES_OK the features are fixed. */
	write_features(f, df);
	assert_int_equal(read_driver_features(f), VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_true(virtio_pci_feature(&f->blk.vp, VIRTIO_F_VERSION_1));
	assert_false(virtio_pci_feature(&f->blk.vp, VIRTIO_F_INDIRECT_DESC));
	/* Selector 2 and up: zero, writes ignored. */
	cc_wr(f, VIRTIO_CC_GFSEL, 4, 2);
	assert_int_equal(cc_rd(f, VIRTIO_CC_GF, 4), 0);

	/* The device configuration: capacity, blk_size, seg_max. */
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.device, 8), IMG_SIZE / 512);
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.device + 4, 4), 0); /* high half */
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.device + VIRTIO_BLK_CFG_BLK_SIZE, 4),
			 512);
	assert_true(mm_rd(&f->host, f->d.bar4 + f->d.device + VIRTIO_BLK_CFG_SEG_MAX, 4) >= 1);
	/* Read-only: a write changes nothing. */
	mm_wr(&f->host, f->d.bar4 + f->d.device, 8, 1);
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.device, 8), IMG_SIZE / 512);
	blk_fix_free(f);
}

static void test_virtio_queue_setup(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);

	(void)state;
	drv_probe(f);
	assert_int_equal(cc_rd(f, VIRTIO_CC_NUMQ, 2), 1);
	assert_int_equal(cc_rd(f, VIRTIO_CC_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_true(drv_negotiate(f, drv_all_features));
	/* Queue 1 does not exist: size 0, writes go nowhere. */
	cc_wr(f, VIRTIO_CC_QSEL, 2, 1);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QSEL, 2), 1);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QSIZE, 2), 0);
	cc_wr(f, VIRTIO_CC_QSIZE, 2, 8);
	cc_wr(f, VIRTIO_CC_QENABLE, 2, 1);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QSIZE, 2), 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QENABLE, 2), 0);
	/* A vector the table does not have reads back as NO_VECTOR. */
	cc_wr(f, VIRTIO_CC_QSEL, 2, 0);
	cc_wr(f, VIRTIO_CC_QMSIX, 2, 2);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QMSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cc_wr(f, VIRTIO_CC_MSIX, 2, 7);
	assert_int_equal(cc_rd(f, VIRTIO_CC_MSIX, 2), VIRTIO_MSI_NO_VECTOR);

	drv_msix(f);
	drv_queue(f, DRV_QSIZE);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QSIZE, 2), DRV_QSIZE);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QDESC, 8), G_DESC);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QDRIVER, 4), (uint32_t)G_AVAIL);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QDEVICE, 8), G_USED);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QENABLE, 2), 1);
	assert_int_equal(f->d.notify_off, 0);
	/* Enabled: size and addresses are fixed; enable can't be undone. */
	cc_wr(f, VIRTIO_CC_QSIZE, 2, 4);
	cc_wr(f, VIRTIO_CC_QDESC, 8, G_DESC + 0x100);
	cc_wr(f, VIRTIO_CC_QENABLE, 2, 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QSIZE, 2), DRV_QSIZE);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QDESC, 8), G_DESC);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QENABLE, 2), 1);
	/* The vector can still change. */
	cc_wr(f, VIRTIO_CC_QMSIX, 2, 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QMSIX, 2), 0);
	cc_wr(f, VIRTIO_CC_QMSIX, 2, 1);
	/* Reads of the notify area and the rest of the BAR: zero. */
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.notify, 2), 0);
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + 0x3ff0, 4), 0);
	/* Not started before DRIVER_OK: a request waits. */
	{
		struct req r = blk_submit(f, VIRTIO_BLK_T_IN, 0, G_RDATA, 512, true);

		settle(f);
		assert_int_equal(used_idx(f), 0);
		set_status(f, 0x0f);
		assert_true(wait_used(f, r.idx));
		assert_int_equal(*host(f->ram, r.status), VIRTIO_BLK_S_OK);
	}
	blk_fix_free(f);
}

static void test_blk_read_write(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	uint8_t *w = host(f->ram, G_WDATA), *r = host(f->ram, G_RDATA);
	uint8_t file[4096];
	uint32_t ulen;
	unsigned q_msis;

	(void)state;
	drv_start(f);
	/* A read of the image as it was made. */
	assert_int_equal(blk_do_len(f, VIRTIO_BLK_T_IN, 3, G_RDATA, 1024, &ulen), VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1024 + 1);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(r[i], img_byte(3 * 512 + i));
	assert_true(WAIT_UNTIL(msi_count(&f->msi, MSI_ADDR_Q, MSI_DATA_Q) == 1));
	assert_int_equal(msi_count(&f->msi, MSI_ADDR_CFG, MSI_DATA_CFG), 0);

	/* Write 8 sectors at sector 10, read them back. */
	for (unsigned i = 0; i < 4096; i++)
		w[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(blk_do_len(f, VIRTIO_BLK_T_OUT, 10, G_WDATA, 4096, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ulen, 1);
	read_image(f->path, 10 * 512, file, sizeof(file));
	assert_memory_equal(file, w, 4096);
	read_image(f->path, 9 * 512, file, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(file[i], img_byte(9 * 512 + i));
	memset(r, 0, 4096);
	dirty_clear(f->ram);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 10, G_RDATA, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(r, w, 4096);
	/* The bytes the device wrote and the used ring were reported. */
	assert_true(dirty_all(f->ram, G_RDATA, 4096));
	assert_true(dirty_all(f->ram, G_STATUS + (f->d.nreq - 1) % 16, 1));
	assert_true(dirty_all(f->ram, G_USED + 2, 2));
	assert_false(dirty_any(f->ram, G_WDATA, 4096));
	assert_int_equal(f->ram->dirty_outside, 0);

	/* GET_ID: the serial, zero padded to 20 bytes. */
	memset(r, 0xff, 32);
	assert_int_equal(blk_do_len(f, VIRTIO_BLK_T_GET_ID, 0, G_RDATA, 20, &ulen),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(r, "ferry-disk-0\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(ulen, 21);
	assert_int_equal(r[20], 0xff);

	/* FLUSH. */
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	/* The last sector, exactly. */
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, IMG_SIZE / 512 - 1, G_RDATA, 512),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(r[511], img_byte(IMG_SIZE - 1));
	/* Past the end, across the end, absurd sectors: IOERR, no data. */
	memset(r, 0xee, 1024);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, IMG_SIZE / 512, G_RDATA, 512),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(r[0], 0xee);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, IMG_SIZE / 512 - 1, G_RDATA, 1024),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_OUT, IMG_SIZE / 512, G_WDATA, 512),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1, G_RDATA, 512),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, UINT64_MAX, G_RDATA, 512), VIRTIO_BLK_S_IOERR);
	/* Not a whole number of sectors. */
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 0, G_RDATA, 100), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_OUT, 0, G_WDATA, 511), VIRTIO_BLK_S_IOERR);
	/* Unknown types: UNSUPP. */
	assert_int_equal(blk_do(f, 2, 0, G_WDATA, 512), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(blk_do(f, 0x12345, 0, 0, 0), VIRTIO_BLK_S_UNSUPP);
	/* Nothing was written by any of them. */
	read_image(f->path, 0, file, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(file[i], img_byte(i));
	assert_int_equal(status(f), 0x0f);
	/* One interrupt per request, on the queue's vector. */
	q_msis = f->d.nreq;
	assert_true(WAIT_UNTIL(msi_count(&f->msi, MSI_ADDR_Q, MSI_DATA_Q) == q_msis));
	assert_int_equal(msi_total(&f->msi), q_msis);
	blk_fix_free(f);
}

/* Descriptor framing is free (§5.2.6.2): header and data in one readable
 * buffer, data and status in one writable buffer, data in many pieces, and
 * an indirect table. */
static void test_blk_framing(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	uint8_t *w = host(f->ram, G_WDATA), *r = host(f->ram, G_RDATA);
	uint8_t file[2048];
	struct seg s[8];
	uint16_t idx;

	(void)state;
	drv_start(f);
	/* OUT: header + 1024 bytes in one buffer, status alone. */
	put_le32(w, VIRTIO_BLK_T_OUT);
	put_le32(w + 4, 0);
	put_le64(w + 8, 20);
	for (unsigned i = 0; i < 1024; i++)
		w[16 + i] = (uint8_t)(0x80 ^ i);
	*host(f->ram, G_STATUS) = 0xff;
	s[0] = (struct seg){ G_WDATA, 16 + 1024, false };
	s[1] = (struct seg){ G_STATUS, 1, true };
	idx = f->d.aidx;
	drv_submit(f, s, 2, true);
	assert_true(wait_used(f, idx));
	assert_int_equal(*host(f->ram, G_STATUS), VIRTIO_BLK_S_OK);
	read_image(f->path, 20 * 512, file, 1024);
	assert_memory_equal(file, w + 16, 1024);

	/* IN: the 1024 bytes and the status in one writable buffer. */
	put_le32(w + 0x800, VIRTIO_BLK_T_IN);
	put_le32(w + 0x804, 0);
	put_le64(w + 0x808, 20);
	memset(r, 0, 1025);
	s[0] = (struct seg){ G_WDATA + 0x800, 16, false };
	s[1] = (struct seg){ G_RDATA, 1024 + 1, true };
	idx = f->d.aidx;
	drv_submit(f, s, 2, true);
	assert_true(wait_used(f, idx));
	assert_memory_equal(r, w + 16, 1024);
	assert_int_equal(r[1024], VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(f, idx), 1025);

	/* IN: the header split 4 + 12, the data in 512 + 256 + 256. */
	memset(r, 0, 2048);
	*host(f->ram, G_STATUS + 1) = 0xff;
	s[0] = (struct seg){ G_WDATA + 0x800, 4, false };
	s[1] = (struct seg){ G_WDATA + 0x804, 12, false };
	s[2] = (struct seg){ G_RDATA, 512, true };
	s[3] = (struct seg){ G_RDATA + 0x400, 256, true };
	s[4] = (struct seg){ G_RDATA + 0x600, 256, true };
	s[5] = (struct seg){ G_STATUS + 1, 1, true };
	idx = f->d.aidx;
	drv_submit(f, s, 6, true);
	assert_true(wait_used(f, idx));
	assert_int_equal(*host(f->ram, G_STATUS + 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(r, w + 16, 512);
	assert_memory_equal(r + 0x400, w + 16 + 512, 256);
	assert_memory_equal(r + 0x600, w + 16 + 768, 256);

	/* The same through an indirect table. */
	memset(r, 0, 2048);
	*host(f->ram, G_STATUS + 1) = 0xff;
	idx = f->d.aidx;
	drv_submit_indirect(f, s, 6, 0);
	assert_true(wait_used(f, idx));
	assert_int_equal(*host(f->ram, G_STATUS + 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(r + 0x600, w + 16 + 768, 256);
	assert_int_equal(status(f), 0x0f);
	blk_fix_free(f);
}

/* Several requests in one notification, one of them with NO_INTERRUPT
 * set meanwhile: all served, in order. */
static void test_blk_batch_and_no_interrupt(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	struct req rq[4];
	uint8_t *r = host(f->ram, G_RDATA);

	(void)state;
	drv_start(f);
	for (unsigned i = 0; i < 4; i++)
		rq[i] = blk_submit(f, VIRTIO_BLK_T_IN, i, G_RDATA + 512 * (uint64_t)i, 512, i == 3);
	assert_true(wait_used(f, rq[3].idx));
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(*host(f->ram, rq[i].status), VIRTIO_BLK_S_OK);
		assert_int_equal(used_id(f, rq[i].idx), rq[i].head);
		assert_int_equal(r[512 * i + 5], img_byte(512 * i + 5));
	}
	assert_true(WAIT_UNTIL(msi_count(&f->msi, MSI_ADDR_Q, MSI_DATA_Q) >= 1));

	/* The driver turns interrupts off: served without one. */
	settle(f);
	unsigned before = msi_total(&f->msi);

	put_le16(host(f->ram, G_AVAIL), 1); /* VIRTQ_AVAIL_F_NO_INTERRUPT */
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 0, G_RDATA, 512), VIRTIO_BLK_S_OK);
	settle(f);
	assert_int_equal(msi_total(&f->msi), before);
	put_le16(host(f->ram, G_AVAIL), 0);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 0, G_RDATA, 512), VIRTIO_BLK_S_OK);
	assert_true(WAIT_UNTIL(msi_total(&f->msi) == before + 1));
	blk_fix_free(f);
}

static void test_blk_readonly(void **state)
{
	struct blk_opts o = default_opts;
	struct blk_fix *f;
	uint8_t *w, file[1024];
	uint64_t df;

	(void)state;
	o.readonly = true;
	f = blk_fix_new(&o);
	w = host(f->ram, G_WDATA);
	drv_probe(f);
	df = dev_features(f);
	assert_true(df & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_false(df & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	assert_false(df & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	drv_start_with(f, drv_all_features | VIRTIO_BIT(VIRTIO_BLK_F_RO));
	memset(w, 0x77, 1024);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_OUT, 0, G_WDATA, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, G_WDATA, 0), VIRTIO_BLK_S_UNSUPP);
	read_image(f->path, 0, file, sizeof(file));
	for (unsigned i = 0; i < sizeof(file); i++)
		assert_int_equal(file[i], img_byte(i));
	/* Reads, flushes and GET_ID still work. */
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 1, G_RDATA, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(*host(f->ram, G_RDATA), img_byte(512));
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(status(f), 0x0f);
	blk_fix_free(f);
}

static void test_blk_discard_write_zeroes(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	uint8_t *seg = host(f->ram, G_WDATA), file[4096];
	uint64_t df;

	(void)state;
	drv_probe(f);
	df = dev_features(f);
	assert_true(df & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	drv_start_with(f, df);
	/* WRITE_ZEROES of sectors 8..15. */
	put_le64(seg, 8);
	put_le32(seg + 8, 8);
	put_le32(seg + 12, 0);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, G_WDATA, 16), VIRTIO_BLK_S_OK);
	read_image(f->path, 7 * 512, file, 10 * 512 > sizeof(file) ? sizeof(file) : 10 * 512);
	assert_int_equal(file[511], img_byte(8 * 512 - 1));
	for (unsigned i = 512; i < 4096; i++)
		assert_int_equal(file[i], 0);
	/* DISCARD is a hint: OK. With flags (only WRITE_ZEROES has one):
	 * UNSUPP. Past the end: IOERR. Two segments: UNSUPP. */
	put_le32(seg + 12, 0);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_DISCARD, 0, G_WDATA, 16), VIRTIO_BLK_S_OK);
	put_le32(seg + 12, 1);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_DISCARD, 0, G_WDATA, 16), VIRTIO_BLK_S_UNSUPP);
	put_le32(seg + 12, 0);
	put_le64(seg, IMG_SIZE / 512 - 4);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, G_WDATA, 16), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, G_WDATA, 32), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(status(f), 0x0f);
	blk_fix_free(f);
}

/* cache=none: O_DIRECT on the image, buffers aligned or not (the bounce
 * buffer). /var/tmp is a disk file system, not tmpfs. */
static void test_blk_direct(void **state)
{
	struct blk_opts o = default_opts;
	struct blk_fix *f;
	uint8_t *w, *r, file[2048];
	char path[64];
	int fd;

	(void)state;
	o.direct = true;
	make_image(path, sizeof(path), IMG_SIZE);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		unlink(path);
		print_message("REQUIRE: /var/tmp does not support O_DIRECT\n");
		skip();
	}
	close(fd);
	o.path = path;
	f = blk_fix_new(&o);
	f->own_image = true;
	w = host(f->ram, G_WDATA);
	r = host(f->ram, G_RDATA);
	drv_start(f);
	/* Aligned: straight into guest memory. */
	for (unsigned i = 0; i < 2048; i++)
		w[i] = (uint8_t)(i ^ 0x3c);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_OUT, 4, G_WDATA, 1024), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 4, G_RDATA, 1024), VIRTIO_BLK_S_OK);
	assert_memory_equal(r, w, 1024);
	/* Unaligned guest buffers: through the bounce buffer. */
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_OUT, 6, G_WDATA + 3, 1024), VIRTIO_BLK_S_OK);
	memset(r, 0, 2048);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 6, G_RDATA + 5, 1024), VIRTIO_BLK_S_OK);
	assert_memory_equal(r + 5, w + 3, 1024);
	assert_int_equal(r[4], 0);
	assert_int_equal(r[5 + 1024], 0);
	read_image(f->path, 6 * 512, file, 1024);
	assert_memory_equal(file, w + 3, 1024);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	blk_fix_free(f);
}

/* The driver breaks the rules: the device says NEEDS_RESET, sends the
 * configuration interrupt, serves nothing more; a reset brings it back. */
static void test_blk_needs_reset(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	struct seg s[2];
	struct req rq;
	uint16_t idx;

	(void)state;
	drv_start(f);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 0, G_RDATA, 512), VIRTIO_BLK_S_OK);
	/* A chain that loops. */
	put_desc(f->ram, G_DESC, 0, G_HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f->ram, G_DESC, 1, G_STATUS, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	idx = f->d.aidx;
	avail_push(f->ram, G_AVAIL, f->d.qsize, &f->d.aidx, 0);
	drv_notify(f);
	assert_true(WAIT_UNTIL(status(f) & VIRTIO_STATUS_NEEDS_RESET));
	assert_int_equal(status(f), 0x0f | VIRTIO_STATUS_NEEDS_RESET);
	assert_true(WAIT_UNTIL(msi_count(&f->msi, MSI_ADDR_CFG, MSI_DATA_CFG) == 1));
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.isr, 1) & VIRTIO_ISR_CONFIG,
			 VIRTIO_ISR_CONFIG);
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.isr, 1), 0); /* read clears */
	settle(f);
	assert_int_equal(used_idx(f), idx);
	/* The driver can't clear it by writing status; good requests wait. */
	set_status(f, 0x0f);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	rq = blk_submit(f, VIRTIO_BLK_T_IN, 0, G_RDATA, 512, true);
	settle(f);
	assert_int_equal(used_idx(f), idx);
	(void)rq;

	/* Reset: everything back to power-on values. */
	set_status(f, 0);
	assert_int_equal(status(f), 0);
	assert_int_equal(read_driver_features(f), 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cc_wr(f, VIRTIO_CC_QSEL, 2, 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QENABLE, 2), 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QSIZE, 2), BLK_QMAX);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QMSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QDESC, 8), 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QDRIVER, 8), 0);
	assert_int_equal(cc_rd(f, VIRTIO_CC_QDEVICE, 8), 0);
	assert_int_equal(mm_rd(&f->host, f->d.bar4 + f->d.isr, 1), 0);
	assert_false(f->blk.vp.active);
	/* MSI-X is PCI state: still on. */
	assert_true(pci_msix_enabled(&f->blk.vp.pci));
	/* A fresh start works. */
	drv_start(f);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 1, G_RDATA, 512), VIRTIO_BLK_S_OK);

	/* A request with no room for the header: NEEDS_RESET too. */
	s[0] = (struct seg){ G_HDR, 8, false };
	s[1] = (struct seg){ G_STATUS, 1, true };
	drv_submit(f, s, 2, true);
	assert_true(WAIT_UNTIL(status(f) & VIRTIO_STATUS_NEEDS_RESET));
	assert_true(WAIT_UNTIL(msi_count(&f->msi, MSI_ADDR_CFG, MSI_DATA_CFG) == 2));

	/* No status byte (nothing writable): NEEDS_RESET. */
	drv_start(f);
	s[0] = (struct seg){ G_HDR, 16, false };
	drv_submit(f, s, 1, true);
	assert_true(WAIT_UNTIL(status(f) & VIRTIO_STATUS_NEEDS_RESET));

	/* Indirect without the feature: NEEDS_RESET. */
	drv_start_with(f, drv_all_features & ~VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	s[0] = (struct seg){ G_HDR, 16, false };
	s[1] = (struct seg){ G_STATUS, 1, true };
	put_le32(host(f->ram, G_HDR), VIRTIO_BLK_T_IN);
	drv_submit_indirect(f, s, 2, 1);
	assert_true(WAIT_UNTIL(status(f) & VIRTIO_STATUS_NEEDS_RESET));

	/* DRIVER_OK with a ring outside RAM: NEEDS_RESET at once. */
	drv_probe(f);
	assert_true(drv_negotiate(f, drv_all_features));
	cc_wr(f, VIRTIO_CC_QSEL, 2, 0);
	cc_wr(f, VIRTIO_CC_QSIZE, 2, DRV_QSIZE);
	cc_wr(f, VIRTIO_CC_QDESC, 8, RAM_BASE + RAM_SIZE);
	cc_wr(f, VIRTIO_CC_QDRIVER, 8, G_AVAIL);
	cc_wr(f, VIRTIO_CC_QDEVICE, 8, G_USED);
	cc_wr(f, VIRTIO_CC_QENABLE, 2, 1);
	set_status(f, 0x0f);
	assert_int_equal(status(f), 0x0f | VIRTIO_STATUS_NEEDS_RESET);
	set_status(f, 0);
	assert_int_equal(status(f), 0);
	blk_fix_free(f);
}

/* The notify registers follow BAR 4 with KVM ioeventfds. */
static void test_virtio_ioeventfd(void **state)
{
	struct blk_opts o = default_opts;
	struct blk_fix *f;
	uint64_t moved = 0xd0000000;

	(void)state;
	o.ioev_ret = 0;
	f = blk_fix_new(&o);
	drv_start(f);
	assert_int_equal(f->ioev.nreg, 1);
	assert_int_equal(f->ioev.reg[0].addr, f->d.bar4 + f->d.notify);
	assert_int_equal(f->ioev.reg[0].fd, f->blk.vp.notify_fd[0]);
	/* The MMIO path still works (a write before KVM took the fd). */
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 0, G_RDATA, 512), VIRTIO_BLK_S_OK);

	/* The guest moves BAR 4. */
	cfg_wr(&f->host, f->slot, PCI_BAR0 + 16, 4, moved | PCI_BAR_MEM64);
	cfg_wr(&f->host, f->slot, PCI_BAR0 + 20, 4, 0);
	f->d.bar4 = moved;
	assert_int_equal(f->ioev.nreg, 1);
	assert_int_equal(f->ioev.reg[0].addr, moved + f->d.notify);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 1, G_RDATA, 512), VIRTIO_BLK_S_OK);
	/* Memory decoding off: unregistered; on: back. */
	cfg_wr(&f->host, f->slot, PCI_COMMAND, 2, PCI_CMD_MASTER);
	assert_int_equal(f->ioev.nreg, 0);
	cfg_wr(&f->host, f->slot, PCI_COMMAND, 2, PCI_CMD_MASTER | PCI_CMD_MEMORY);
	assert_int_equal(f->ioev.nreg, 1);
	assert_int_equal(f->ioev.reg[0].addr, moved + f->d.notify);
	/* Device reset: unregistered. */
	set_status(f, 0);
	assert_int_equal(f->ioev.nreg, 0);
	assert_int_equal(f->ioev.bad_deassigns, 0);
	blk_fix_free(f);
	/* destroy unregistered whatever was left: nothing here. */
}

/* VIRTIO_PCI_CAP_PCI_CFG: the BARs through a window in config space. */
static void test_virtio_pci_cfg_window(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	unsigned c;

	(void)state;
	drv_probe(f);
	c = f->d.pci_cfg_cap;
	/* num_queues (2 bytes at 0x12 of the common configuration). */
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_BAR, 1, 4);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_OFFSET, 4, f->d.common + VIRTIO_CC_NUMQ);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_LENGTH, 4, 2);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_BAR, 1), 4);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_OFFSET, 4),
			 f->d.common + VIRTIO_CC_NUMQ);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 4), 1);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 2), 1);
	/* A write through it: status ACKNOWLEDGE. */
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_OFFSET, 4, f->d.common + VIRTIO_CC_STATUS);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_LENGTH, 4, 1);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(status(f), VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 1),
			 VIRTIO_STATUS_ACKNOWLEDGE);
	/* The MSI-X table in BAR 1: vector control, masked. */
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_BAR, 1, 1);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_OFFSET, 4, 12);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_LENGTH, 4, 4);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 4), MSIX_VEC_MASKED);
	/* Bad windows read as zero and write nowhere: length 3, a BAR that
	 * does not exist, an offset past the BAR. */
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_LENGTH, 4, 3);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 4), 0);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_LENGTH, 4, 4);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_BAR, 1, 0);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 4), 0);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_BAR, 1, 9);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 4), 0);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_BAR, 1, 4);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_OFFSET, 4, 0x4000 - 2);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 4), 0);
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_PCI_CFG_DATA, 4, 0xffffffff);
	/* The capability's own fields stay read-only. */
	cfg_wr(&f->host, 1, c + VIRTIO_CAP_CAPLEN, 2, 0xffff);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_CFGTYPE, 1), VIRTIO_PCI_CAP_PCI_CFG);
	assert_int_equal(cfg_rd(&f->host, 1, c + VIRTIO_CAP_CAPLEN, 1), VIRTIO_CAP_PCI_CFG_SIZE);
	assert_int_equal(status(f), VIRTIO_STATUS_ACKNOWLEDGE);
	blk_fix_free(f);
}

/* Pause (the VM stops) holds requests back; resume serves them. */
static void test_blk_pause_resume(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	struct req r;

	(void)state;
	drv_start(f);
	virtio_blk_device_ops.pause(&f->blk);
	r = blk_submit(f, VIRTIO_BLK_T_IN, 2, G_RDATA, 512, true);
	sleep_ms(20);
	assert_int_equal(used_idx(f), r.idx);
	assert_int_equal(virtio_blk_device_ops.flush(&f->blk), 0);
	assert_int_equal(virtio_blk_device_ops.resume(&f->blk), 0);
	assert_true(wait_used(f, r.idx));
	assert_int_equal(*host(f->ram, r.status), VIRTIO_BLK_S_OK);
	blk_fix_free(f);
}

/* Found a bug, fixed since: every byte the device writes must be reported dirty (dma.h), but
 * virtq_push() reports only the first `len` writable bytes, and blk.c's
 * req_finish() returns len 1 for any request that did not read data
 * successfully. Missed: (1) the status byte of a failed IN request when
 * it has its own descriptor (it is the last writable byte, not the
 * first); (2) the data a read had already put into guest RAM before it
 * failed part way (here the image shrank under the device: io_uring or
 * preadv return short, the retry hits EOF, IOERR). A migration running
 * meanwhile leaves those bytes stale at the destination. Fix: report the
 * whole writable part of every answered chain dirty (a superset is
 * harmless), independently of the used length; see the report. */
static void test_blk_error_writes_are_dirty(void **state)
{
	struct blk_fix *f;
	struct req r;
	int fd;

	(void)state;
	f = blk_fix_new(&default_opts);
	drv_start(f);
	/* (1) A read past the end: only the status byte is written. */
	dirty_clear(f->ram);
	r = blk_submit(f, VIRTIO_BLK_T_IN, IMG_SIZE / 512, G_RDATA, 512, true);
	assert_true(wait_used(f, r.idx));
	assert_int_equal(*host(f->ram, r.status), VIRTIO_BLK_S_IOERR);
	assert_true(dirty_all(f->ram, r.status, 1));

	/* (2) The image loses its second half; a 1 KiB read across the new
	 * end gets 512 bytes into guest RAM, then fails. */
	fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE / 2), 0);
	close(fd);
	memset(host(f->ram, G_RDATA), 0, 1024);
	dirty_clear(f->ram);
	r = blk_submit(f, VIRTIO_BLK_T_IN, IMG_SIZE / 2 / 512 - 1, G_RDATA, 1024, true);
	assert_true(wait_used(f, r.idx));
	assert_int_equal(*host(f->ram, r.status), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*host(f->ram, G_RDATA + 5), img_byte(IMG_SIZE / 2 - 512 + 5));
	assert_true(dirty_all(f->ram, r.status, 1));
	assert_true(dirty_all(f->ram, G_RDATA, 512));
	blk_fix_free(f);
}

/* --- 6. save and load ---------------------------------------------------- */

/* The virtio-blk record (blk.c, virtio/pci.c, pci.c, queue.c). */
#define REC_SIZE     0
#define REC_RO       8
#define REC_CFG      9
#define REC_NVEC     (REC_CFG + PCI_CFG_SIZE)
#define REC_TABLE    (REC_NVEC + 4)
#define REC_PBA      (REC_TABLE + 2 * MSIX_ENTRY_SIZE)
#define REC_DFSEL    (REC_PBA + 8)
#define REC_GFSEL    (REC_DFSEL + 4)
#define REC_GF       (REC_GFSEL + 4)
#define REC_CFGVEC   (REC_GF + 8)
#define REC_QSEL     (REC_CFGVEC + 2)
#define REC_STATUS   (REC_QSEL + 2)
#define REC_GEN      (REC_STATUS + 1)
#define REC_ISR      (REC_GEN + 1)
#define REC_NQ       (REC_ISR + 1)
#define REC_Q0       (REC_NQ + 4)
#define REC_Q_SIZE   (REC_Q0 + 0)
#define REC_Q_VEC    (REC_Q0 + 2)
#define REC_Q_EN     (REC_Q0 + 4)
#define REC_Q_LAST   (REC_Q0 + 29)
#define REC_Q_USED   (REC_Q0 + 31)
#define REC_END      (REC_Q0 + 33)

static void blk_save_rec(struct blk_fix *f, struct buf *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(virtio_blk_device_ops.save(&f->blk, out), 0);
	assert_int_equal(out->len, REC_END);
}

static bool same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && !memcmp(a->data, b->data, a->len);
}

/* A device in use: queue set up, requests served, MSI-X on, a pending bit. */
static struct blk_fix *busy_source(void)
{
	struct blk_fix *f = blk_fix_new(&default_opts);

	drv_start(f);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, i, G_RDATA, 512), VIRTIO_BLK_S_OK);
	assert_true(WAIT_UNTIL(msi_count(&f->msi, MSI_ADDR_Q, MSI_DATA_Q) == 3));
	mm_wr(&f->host, f->d.bar1 + 12, 4, MSIX_VEC_MASKED);
	virtio_pci_notify_config(&f->blk.vp);
	assert_int_equal(f->blk.vp.pci.msix.pba, 1);
	virtio_blk_device_ops.pause(&f->blk);
	return f;
}

/* A destination on the same image and the same (migrated) RAM. */
static struct blk_fix *destination(struct blk_fix *src, bool defer_open)
{
	struct blk_opts o = default_opts;

	o.path = src->path;
	o.ram = src->ram;
	o.start_paused = true;
	o.defer_open = defer_open;
	return blk_fix_new(&o);
}

static void test_blk_save_load_save(void **state)
{
	struct blk_fix *a = busy_source(), *b = destination(a, true);
	struct buf r1, r2, r3, fresh;

	(void)state;
	blk_save_rec(a, &r1);
	blk_save_rec(b, &fresh);
	assert_false(same(&r1, &fresh));
	assert_int_equal(virtio_blk_device_ops.load(&b->blk, virtio_blk_device_ops.version,
						    r1.data, r1.len), 0);
	blk_save_rec(b, &r2);
	if (!same(&r1, &r2))
		fail_msg("save -> load -> save differs");
	/* Loading its own record again changes nothing. */
	assert_int_equal(virtio_blk_device_ops.load(&b->blk, virtio_blk_device_ops.version,
						    r2.data, r2.len), 0);
	blk_save_rec(b, &r3);
	assert_true(same(&r1, &r3));

	/* The guest goes on at the destination: the rings are where it left
	 * them, interrupts carry the table's message, and the configuration
	 * vector that was pending at the source is still pending. */
	b->d = a->d;
	assert_int_equal(virtio_blk_device_ops.resume(&b->blk), 0);
	assert_int_equal(blk_do(b, VIRTIO_BLK_T_IN, 7, G_RDATA, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(*host(b->ram, G_RDATA + 9), img_byte(7 * 512 + 9));
	assert_int_equal(used_idx(b), 4);
	assert_true(WAIT_UNTIL(msi_count(&b->msi, MSI_ADDR_Q, MSI_DATA_Q) == 1));
	assert_int_equal(msi_count(&b->msi, MSI_ADDR_CFG, MSI_DATA_CFG), 0);
	assert_int_equal(blk_do(b, VIRTIO_BLK_T_IN, 8, G_RDATA, 512), VIRTIO_BLK_S_OK);
	/* Unmasking vector 0 delivers what was pending at the source. */
	mm_wr(&b->host, b->d.bar1 + 12, 4, 0);
	assert_int_equal(msi_count(&b->msi, MSI_ADDR_CFG, MSI_DATA_CFG), 1);
	assert_int_equal(msi_total(&a->msi), 3);
	buf_free(&r1);
	buf_free(&r2);
	buf_free(&r3);
	buf_free(&fresh);
	blk_fix_free(b);
	blk_fix_free(a);
}

/* Found a bug, fixed since: a request the driver made available (and notified) just before the
 * source paused is never served at the destination: the notification sits
 * in the source's eventfd; at resume the destination's worker is kicked,
 * but it was paused when it last filled its poll set, so work() runs with
 * n == 0 and blk_work() returns at once; after that it waits on an eventfd
 * nobody writes until the guest notifies again (a guest waiting on that
 * one request hangs). Fix in virtio_pci_post_load(): once the rings are
 * mapped, signal every enabled queue's notify eventfd, as QEMU does when
 * it starts ioeventfds ("process any pending buffers"). */
static void test_blk_pending_request_after_migration(void **state)
{
	(void)state;
	for (int defer = 0; defer < 2; defer++) {
		struct blk_fix *a = busy_source(), *b = destination(a, defer);
		struct buf r1;
		struct req rq;

		/* Available and notified, not taken: the source is paused. */
		rq = blk_submit(a, VIRTIO_BLK_T_IN, 7, G_RDATA, 512, true);
		sleep_ms(10);
		assert_int_equal(used_idx(a), rq.idx);
		blk_save_rec(a, &r1);
		assert_int_equal(virtio_blk_device_ops.load(&b->blk, 1, r1.data, r1.len), 0);
		assert_int_equal(virtio_blk_device_ops.resume(&b->blk), 0);
		if (!wait_used(b, rq.idx))
			fail_msg("defer_open=%d: the pending request was not served", defer);
		assert_int_equal(*host(b->ram, rq.status), VIRTIO_BLK_S_OK);
		buf_free(&r1);
		blk_fix_free(b);
		blk_fix_free(a);
	}
}

/* The ioeventfd is registered at the loaded BAR address. */
static void test_blk_load_registers_ioeventfd(void **state)
{
	struct blk_fix *a = busy_source(), *b;
	struct blk_opts o = default_opts;
	struct buf r1;

	(void)state;
	o.path = a->path;
	o.ram = a->ram;
	o.start_paused = true;
	o.ioev_ret = 0;
	b = blk_fix_new(&o);
	blk_save_rec(a, &r1);
	assert_int_equal(b->ioev.nreg, 0);
	assert_int_equal(virtio_blk_device_ops.load(&b->blk, 1, r1.data, r1.len), 0);
	assert_int_equal(b->ioev.nreg, 1);
	assert_int_equal(b->ioev.reg[0].addr, a->d.bar4 + a->d.notify);
	assert_int_equal(b->ioev.reg[0].fd, b->blk.vp.notify_fd[0]);
	buf_free(&r1);
	blk_fix_free(b);
	blk_fix_free(a);
}

struct corruption {
	const char *what;
	size_t off;
	unsigned size;
	uint64_t value;
};

static const struct corruption corruptions[] = {
	{ "a different image size", REC_SIZE, 8, IMG_SIZE + 512 },
	{ "readonly where the guest ran", REC_RO, 1, 1 },
	{ "readonly byte 2", REC_RO, 1, 2 },
	{ "vendor ID changed (read-only)", REC_CFG + PCI_VENDOR_ID, 2, 0x1234 },
	{ "class changed (read-only)", REC_CFG + PCI_CLASS_PROG + 2, 1, 0x02 },
	{ "BAR 4 no longer 64-bit (read-only)", REC_CFG + PCI_BAR0 + 16, 1, 0x00 },
	{ "BAR 4 address bits below its size", REC_CFG + PCI_BAR0 + 16, 1, 0x14 },
	{ "capability pointer changed", REC_CFG + PCI_CAP_PTR, 1, 0x50 },
	{ "MSI-X table size changed", REC_CFG + 0x40 + 2, 1, 0x03 },
	{ "virtio cap offset changed", REC_CFG + 0x4c + VIRTIO_CAP_OFFSET, 1, 0x10 },
	{ "MSI-X vector count 3", REC_NVEC, 4, 3 },
	{ "MSI-X vector count 0", REC_NVEC, 4, 0 },
	{ "a pending bit beyond the vectors", REC_PBA, 8, 4 },
	{ "driver features the device does not offer", REC_GF, 8,
	  VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) },
	{ "driver feature bit 0", REC_GF, 8, VIRTIO_BIT(VIRTIO_F_VERSION_1) | 1 },
	{ "config vector 2 of 2", REC_CFGVEC, 2, 2 },
	{ "status with reserved bit 0x10", REC_STATUS, 1, 0x1f },
	{ "ISR bit 2", REC_ISR, 1, 4 },
	{ "nqueues 2", REC_NQ, 4, 2 },
	{ "nqueues 0", REC_NQ, 4, 0 },
	{ "queue size 512 > max 256", REC_Q_SIZE, 2, 512 },
	{ "queue size 0", REC_Q_SIZE, 2, 0 },
	{ "queue vector 2 of 2", REC_Q_VEC, 2, 2 },
	{ "queue enabled = 2", REC_Q_EN, 1, 2 },
	{ "requests in flight (last_avail != used_idx)", REC_Q_LAST, 2, 2 },
	{ "requests in flight (used_idx ahead)", REC_Q_USED, 2, 4 },
};

static void corrupt(struct buf *b, const struct corruption *c)
{
	uint8_t v[8];

	assert_true(c->off + c->size <= b->len);
	put_le64(v, c->value);
	memcpy(b->data + c->off, v, c->size);
}

static void test_blk_load_rejects(void **state)
{
	struct blk_fix *a = busy_source(), *b = destination(a, false);
	struct buf rec, bad = { 0 };
	int ret;

	(void)state;
	blk_save_rec(a, &rec);
	/* The record as this test reads it. */
	assert_int_equal(get_le64(rec.data + REC_SIZE), IMG_SIZE);
	assert_int_equal(get_le32(rec.data + REC_NVEC), 2);
	assert_int_equal(get_le32(rec.data + REC_NQ), 1);
	assert_int_equal(get_le16(rec.data + REC_Q_SIZE), DRV_QSIZE);
	assert_int_equal(get_le16(rec.data + REC_Q_LAST), 3);
	assert_int_equal(get_le16(rec.data + REC_Q_USED), 3);
	assert_int_equal(rec.data[REC_STATUS], 0x0f);
	assert_int_equal(rec.data[REC_CFG + 0x40], PCI_CAP_MSIX);
	assert_int_equal(rec.data[REC_CFG + 0x4c + VIRTIO_CAP_CFGTYPE], VIRTIO_PCI_CAP_COMMON_CFG);
	/* It loads (the control). */
	assert_int_equal(virtio_blk_device_ops.load(&b->blk, 1, rec.data, rec.len), 0);

	assert_true(virtio_blk_device_ops.load(&b->blk, 2, rec.data, rec.len) < 0);
	assert_true(virtio_blk_device_ops.load(&b->blk, 0, rec.data, rec.len) < 0);
	for (size_t n = 0; n < rec.len; n++) {
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, rec.data, n);
		ret = virtio_blk_device_ops.load(&b->blk, 1, cut, n);
		free(cut);
		if (ret != -EINVAL)
			fail_msg("truncated to %zu of %zu bytes: load = %d", n, rec.len, ret);
	}
	buf_put(&bad, rec.data, rec.len);
	buf_put_u8(&bad, 0);
	assert_int_equal(virtio_blk_device_ops.load(&b->blk, 1, bad.data, bad.len), -EINVAL);
	buf_free(&bad);
	for (size_t i = 0; i < ARRAY_SIZE(corruptions); i++) {
		memset(&bad, 0, sizeof(bad));
		buf_put(&bad, rec.data, rec.len);
		corrupt(&bad, &corruptions[i]);
		ret = virtio_blk_device_ops.load(&b->blk, 1, bad.data, bad.len);
		if (ret != -EINVAL)
			fail_msg("%s: load = %d, want -EINVAL", corruptions[i].what, ret);
		buf_free(&bad);
	}
	buf_free(&rec);
	blk_fix_free(b);
	blk_fix_free(a);
}

/* Found a bug, fixed since: virtio_pci_load() calls pci_function_load(), which copies the
 * config space and MSI-X table in, before it checks the transport and
 * queue sections; blk_load() checks for trailing bytes and runs post_load
 * after that. A refused record therefore leaves the destination's PCI
 * state (BARs, command, MSI-X) half-loaded, against device_ops' "On error
 * the device is unchanged". Fix: split pci_function_load into a check
 * (into a local copy) and a commit, and commit only after the transport,
 * the queues and reader_finish() passed (see the report). */
static void test_blk_refused_load_changes_nothing(void **state)
{
	struct blk_fix *a, *b;
	struct buf rec, before, after, bad;

	(void)state;
	a = busy_source();
	b = destination(a, false);
	blk_save_rec(a, &rec);
	blk_save_rec(b, &before);
	assert_false(same(&rec, &before));
	for (size_t i = 0; i < ARRAY_SIZE(corruptions); i++) {
		memset(&bad, 0, sizeof(bad));
		buf_put(&bad, rec.data, rec.len);
		corrupt(&bad, &corruptions[i]);
		assert_int_equal(virtio_blk_device_ops.load(&b->blk, 1, bad.data, bad.len),
				 -EINVAL);
		blk_save_rec(b, &after);
		if (!same(&before, &after))
			fail_msg("%s: a refused load changed the device", corruptions[i].what);
		buf_free(&after);
		buf_free(&bad);
	}
	memset(&bad, 0, sizeof(bad));
	buf_put(&bad, rec.data, rec.len);
	buf_put_u8(&bad, 0);
	assert_int_equal(virtio_blk_device_ops.load(&b->blk, 1, bad.data, bad.len), -EINVAL);
	blk_save_rec(b, &after);
	if (!same(&before, &after))
		fail_msg("a trailing byte: a refused load changed the device");
	buf_free(&after);
	buf_free(&bad);
	buf_free(&before);
	buf_free(&rec);
	blk_fix_free(b);
	blk_fix_free(a);
}

/* Found a bug, fixed since: blk_load() and pci_host_load() answer an unknown version with
 * -EINVAL; every other device (serial, i8042, rtc, acpi_pm, the KVM ones)
 * returns -EPROTO, which migration/state.c turns into "state version N is
 * not supported (this ferry writes M)". Fix: `return -EPROTO;` for
 * `version != 1` in both. */
static void test_load_unknown_version_is_eproto(void **state)
{
	struct blk_fix *a;
	struct pci_host h;
	struct buf rec;

	(void)state;
	a = busy_source();
	blk_save_rec(a, &rec);
	assert_int_equal(virtio_blk_device_ops.load(&a->blk, 2, rec.data, rec.len), -EPROTO);
	buf_free(&rec);
	memset(&rec, 0, sizeof(rec));
	pci_host_init(&h, &fake_cf9_ops, NULL);
	assert_int_equal(pci_host_device_ops.save(&h, &rec), 0);
	assert_int_equal(pci_host_device_ops.load(&h, 2, rec.data, rec.len), -EPROTO);
	buf_free(&rec);
	blk_fix_free(a);
}

/* A guest must not be able to put the device into a state whose own
 * record the destination refuses: each hostile write below is something a
 * driver can do through the common configuration. */
struct hostile {
	const char *what;
	void (*poke)(struct blk_fix *f);
};

static void poke_qsize_big(struct blk_fix *f)
{
	cc_wr(f, VIRTIO_CC_QSEL, 2, 0);
	cc_wr(f, VIRTIO_CC_QSIZE, 2, 1024);
}

static void poke_qsize_zero(struct blk_fix *f)
{
	cc_wr(f, VIRTIO_CC_QSEL, 2, 0);
	cc_wr(f, VIRTIO_CC_QSIZE, 2, 0);
}

static void poke_status_reserved(struct blk_fix *f)
{
	set_status(f, 0x33);
}

static void poke_features_unoffered(struct blk_fix *f)
{
	set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	write_features(f, ~0ull);
	/* FEATURES_OK is refused, the bits stay written. */
	set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static void poke_selectors(struct blk_fix *f)
{
	cc_wr(f, VIRTIO_CC_DFSEL, 4, 0xffffffff);
	cc_wr(f, VIRTIO_CC_GFSEL, 4, 0x12345678);
	cc_wr(f, VIRTIO_CC_QSEL, 2, 0xffff);
}

static const struct hostile hostile_ok[] = {
	{ "selectors out of range", poke_selectors },
};

static const struct hostile hostile_bug[] = {
	{ "queue_size 1024 (max 256)", poke_qsize_big },
	{ "queue_size 0", poke_qsize_zero },
	{ "status with reserved bits 0x30", poke_status_reserved },
	{ "driver features never accepted", poke_features_unoffered },
};

static void check_hostile(const struct hostile *h)
{
	struct blk_fix *a = blk_fix_new(&default_opts), *b;
	struct buf r1, r2;
	int ret;

	drv_probe(a);
	h->poke(a);
	virtio_blk_device_ops.pause(&a->blk);
	blk_save_rec(a, &r1);
	b = destination(a, false);
	ret = virtio_blk_device_ops.load(&b->blk, 1, r1.data, r1.len);
	if (ret)
		fail_msg("%s: the destination refuses the record (%d)", h->what, ret);
	blk_save_rec(b, &r2);
	assert_true(same(&r1, &r2));
	buf_free(&r1);
	buf_free(&r2);
	blk_fix_free(b);
	blk_fix_free(a);
}

static void test_guest_states_load(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(hostile_ok); i++)
		check_hostile(&hostile_ok[i]);
}

/* Found a bug, fixed since: common_write() stores any queue_size (0, above the maximum) and any
 * status byte (reserved bits 0x10/0x20), and keeps driver_features the
 * device refused at FEATURES_OK; virtio_pci_load() / virtq_load_state()
 * refuse exactly those values, so a guest can make its own migration (or
 * snapshot restore) fail. Fix: ignore queue_size writes that are 0, above
 * max_size or not a power of two (QEMU, crosvm do); mask the status to the
 * bits of §2.1; check driver_features against device_features in load only
 * when FEATURES_OK is set. */
static void test_guest_states_load_bug(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(hostile_bug); i++)
		check_hostile(&hostile_bug[i]);
}

/* Deferred open (incoming migration): the image is opened at resume and
 * must still have the size the guest saw. */
static void test_blk_deferred_open(void **state)
{
	struct blk_fix *a = busy_source(), *b = destination(a, true), *c;
	char path[64];
	struct blk_opts o = default_opts;
	int fd;

	(void)state;
	assert_int_equal(b->blk.fd, -1);
	assert_int_equal(virtio_blk_device_ops.resume(&b->blk), 0);
	assert_true(b->blk.fd >= 0);

	make_image(path, sizeof(path), IMG_SIZE);
	o.path = path;
	o.defer_open = true;
	o.start_paused = true;
	c = blk_fix_new(&o);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE * 2), 0);
	close(fd);
	assert_int_equal(virtio_blk_device_ops.resume(&c->blk), -EINVAL);
	assert_int_equal(c->blk.fd, -1);
	blk_fix_free(c);
	unlink(path);
	blk_fix_free(b);
	blk_fix_free(a);
}

/* The reset op gives the state of a freshly plugged device. */
static void test_blk_reset_is_fresh(void **state)
{
	struct blk_fix *a = busy_source(), *b = destination(a, false);
	struct buf r1, r2;

	(void)state;
	cfg_wr(&a->host, 1, PCI_BAR0 + 16, 4, 0xd0000000 | PCI_BAR_MEM64);
	virtio_blk_device_ops.resume(&a->blk);
	virtio_blk_device_ops.reset(&a->blk);
	blk_save_rec(a, &r1);
	blk_save_rec(b, &r2);
	if (!same(&r1, &r2))
		fail_msg("reset state differs from a fresh device");
	assert_false(a->blk.vp.active);
	buf_free(&r1);
	buf_free(&r2);
	blk_fix_free(b);
	blk_fix_free(a);
}

/* --- 7. requests in flight: merging, many at once, pause, reset -------- */

/* Many requests at once: each has its own indirect table (one ring
 * descriptor), header and status byte, by index i < MREQ_MAX (the
 * fixture's blk_submit has 16 slots and 3 descriptors per request). */
#define G_MTAB   (RAM_BASE + 0x8000)   /* 64 bytes per request */
#define G_MHDR   (RAM_BASE + 0xc000)   /* 16 bytes per request */
#define G_MSTAT  (RAM_BASE + 0xd000)   /* 1 byte per request */
#define MREQ_MAX 256

static struct req mreq_submit(struct blk_fix *f, unsigned i, uint32_t type, uint64_t sector,
			      uint64_t data, uint32_t len, bool notify)
{
	uint64_t t = G_MTAB + 64 * (uint64_t)i;
	struct req r = { .hdr = G_MHDR + 16 * (uint64_t)i, .status = G_MSTAT + i };
	bool dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	uint8_t *h = host(f->ram, r.hdr);
	uint16_t n = 0;

	assert_true(i < MREQ_MAX);
	put_le32(h, type);
	put_le32(h + 4, 0);
	put_le64(h + 8, sector);
	*host(f->ram, r.status) = 0xff;
	put_desc(f->ram, t, n, r.hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		put_desc(f->ram, t, n, data, len,
			 (uint16_t)((dev_writes ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT),
			 (uint16_t)(n + 1));
		n++;
	}
	put_desc(f->ram, t, n, r.status, 1, VIRTQ_DESC_F_WRITE, 0);
	n++;
	r.head = (uint16_t)(i % f->d.qsize);
	put_desc(f->ram, G_DESC, r.head, t, 16u * n, VIRTQ_DESC_F_INDIRECT, 0);
	r.idx = f->d.aidx;
	avail_push(f->ram, G_AVAIL, f->d.qsize, &f->d.aidx, r.head);
	if (notify)
		drv_notify(f);
	return r;
}

/* The driver with a queue of qsize entries. */
static void drv_start_q(struct blk_fix *f, uint16_t qsize)
{
	drv_probe(f);
	assert_true(drv_negotiate(f, drv_all_features));
	drv_msix(f);
	drv_queue(f, qsize);
	set_status(f, 0x0f);
	assert_int_equal(status(f), 0x0f);
}

/* Nothing in flight and no event pending: the I/O thread looks at the
 * queue again only at the next notification (so that requests made
 * available before it are taken together). */
static bool blk_quiet(struct blk_fix *f)
{
	struct pollfd p[2] = {
		{ .fd = f->blk.vp.notify_fd[0], .events = POLLIN },
		{ .fd = f->blk.ring_efd, .events = POLLIN },
	};
	bool quiet;

	pthread_mutex_lock(&f->blk.ring_lock);
	quiet = !f->blk.inflight && poll(p, f->blk.uring ? 2 : 1, 0) == 0;
	pthread_mutex_unlock(&f->blk.ring_lock);
	return quiet;
}

static void wait_quiet(struct blk_fix *f)
{
	if (!WAIT_UNTIL(blk_quiet(f)))
		fail_msg("the I/O thread did not go quiet");
}

static uint64_t merged(struct blk_fix *f)
{
	uint64_t m;

	pthread_mutex_lock(&f->blk.ring_lock);
	m = f->blk.merged;
	pthread_mutex_unlock(&f->blk.ring_lock);
	return m;
}

/* How many requests the device took (the avail index it reached). */
static uint16_t taken(struct blk_fix *f)
{
	uint16_t n;

	pthread_mutex_lock(&f->blk.vp.lock);
	n = f->blk.vp.vq[0].s.last_avail;
	pthread_mutex_unlock(&f->blk.vp.lock);
	return n;
}

/* A cache=none disk of size bytes; NULL where /var/tmp has no O_DIRECT. */
static struct blk_fix *direct_fix(uint64_t size)
{
	struct blk_opts o = default_opts;
	struct blk_fix *f;
	char path[64];
	int fd;

	make_image(path, sizeof(path), size);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		unlink(path);
		print_message("REQUIRE: /var/tmp does not support O_DIRECT\n");
		return NULL;
	}
	close(fd);
	o.direct = true;
	o.path = path;
	f = blk_fix_new(&o);
	f->own_image = true;
	return f;
}

/* The used length of the request with this head among the used elements
 * [from, from + n) (returned in any order); fails when not there once. */
static uint32_t used_len_of(struct blk_fix *f, uint16_t head, uint16_t from, unsigned n)
{
	uint32_t len = 0;
	unsigned found = 0;

	for (unsigned k = 0; k < n; k++) {
		if (used_id(f, (uint16_t)(from + k)) == head) {
			len = used_len(f, (uint16_t)(from + k));
			found++;
		}
	}
	if (found != 1)
		fail_msg("head %u answered %u times", head, found);
	return len;
}

/* Requests for adjacent sectors made available before one notification
 * go to the disk as one transfer; each gets its data, its length, OK. */
static void check_merge(struct blk_fix *f)
{
	uint8_t *w = host(f->ram, G_WDATA), *rd = host(f->ram, G_RDATA), file[8 * 4096];
	struct req rq[8];
	uint64_t m0;

	drv_start_q(f, BLK_QMAX);
	wait_quiet(f);
	/* 8 reads of 4 KiB, sectors 16.. (adjacent), notified once. */
	memset(rd, 0, sizeof(file));
	dirty_clear(f->ram);
	m0 = merged(f);
	for (unsigned i = 0; i < 8; i++)
		rq[i] = mreq_submit(f, i, VIRTIO_BLK_T_IN, 16 + 8 * i, G_RDATA + 4096 * (uint64_t)i,
				    4096, i == 7);
	assert_true(wait_used(f, rq[7].idx));
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(*host(f->ram, rq[i].status), VIRTIO_BLK_S_OK);
		assert_int_equal(used_len_of(f, rq[i].head, rq[0].idx, 8), 4096 + 1);
		assert_true(dirty_all(f->ram, rq[i].status, 1));
	}
	for (unsigned i = 0; i < 8 * 4096; i++)
		if (rd[i] != img_byte(16 * 512 + i))
			fail_msg("merged read: byte %u is %u, not %u", i, rd[i],
				 img_byte(16 * 512 + i));
	assert_true(dirty_all(f->ram, G_RDATA, 8 * 4096));
	assert_int_equal(merged(f) - m0, 7);

	/* 8 writes of 4 KiB, sectors 200.., then read back from the file. */
	wait_quiet(f);
	m0 = merged(f);
	for (unsigned i = 0; i < 8 * 4096; i++)
		w[i] = (uint8_t)(i * 31 + 7);
	for (unsigned i = 0; i < 8; i++)
		rq[i] = mreq_submit(f, 8 + i, VIRTIO_BLK_T_OUT, 200 + 8 * i,
				    G_WDATA + 4096 * (uint64_t)i, 4096, i == 7);
	assert_true(wait_used(f, rq[7].idx));
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(*host(f->ram, rq[i].status), VIRTIO_BLK_S_OK);
		assert_int_equal(used_len_of(f, rq[i].head, rq[0].idx, 8), 1);
	}
	assert_int_equal(merged(f) - m0, 7);
	read_image(f->path, 200 * 512, file, sizeof(file));
	assert_memory_equal(file, w, sizeof(file));
	read_image(f->path, 199 * 512, file, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(file[i], img_byte(199 * 512 + i));
	read_image(f->path, 264 * 512, file, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(file[i], img_byte(264 * 512 + i));
}

static void test_blk_merge_adjacent(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);

	(void)state;
	check_merge(f);
	blk_fix_free(f);
	f = direct_fix(IMG_SIZE);
	if (!f)
		skip();
	check_merge(f);
	blk_fix_free(f);
}

/* Adjacent requests at the end of the image: the one that crosses the end
 * fails its bounds check (IOERR, nothing read) and is not merged; the
 * ones before it are. */
static void test_blk_merge_tail_out_of_bounds(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	const uint64_t end = IMG_SIZE / 512;
	uint8_t *rd = host(f->ram, G_RDATA);
	struct req rq[3];
	uint64_t m0;

	(void)state;
	drv_start_q(f, BLK_QMAX);
	wait_quiet(f);
	memset(rd, 0xee, 4 * 1024);
	dirty_clear(f->ram);
	m0 = merged(f);
	rq[0] = mreq_submit(f, 0, VIRTIO_BLK_T_IN, end - 6, G_RDATA, 1024, false);
	rq[1] = mreq_submit(f, 1, VIRTIO_BLK_T_IN, end - 4, G_RDATA + 1024, 1024, false);
	rq[2] = mreq_submit(f, 2, VIRTIO_BLK_T_IN, end - 2, G_RDATA + 2048, 2048,
			    true); /* 2 sectors too many */
	assert_true(wait_used(f, rq[2].idx));
	assert_int_equal(*host(f->ram, rq[0].status), VIRTIO_BLK_S_OK);
	assert_int_equal(*host(f->ram, rq[1].status), VIRTIO_BLK_S_OK);
	assert_int_equal(*host(f->ram, rq[2].status), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used_len_of(f, rq[0].head, rq[0].idx, 3), 1025);
	assert_int_equal(used_len_of(f, rq[1].head, rq[0].idx, 3), 1025);
	assert_int_equal(used_len_of(f, rq[2].head, rq[0].idx, 3), 1);
	for (unsigned i = 0; i < 2048; i++)
		assert_int_equal(rd[i], img_byte((end - 6) * 512 + i));
	for (unsigned i = 2048; i < 4096; i++)
		assert_int_equal(rd[i], 0xee);
	assert_true(dirty_all(f->ram, rq[2].status, 1));
	assert_int_equal(merged(f) - m0, 1);
	blk_fix_free(f);
}

/* The image shrinks to a size that is not a whole number of sectors under
 * a merged read: the transfer comes back short in the middle of the third
 * request; the first two are OK, the third gets the bytes that exist and
 * IOERR, the fourth IOERR; all that was written is reported dirty. */
static void test_blk_merge_short_transfer(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	const uint64_t cut = IMG_SIZE / 2 + 100;
	const uint64_t first = IMG_SIZE / 2 / 512 - 4;
	uint8_t *rd = host(f->ram, G_RDATA);
	struct req rq[4];
	uint64_t m0;
	int fd;

	(void)state;
	drv_start_q(f, BLK_QMAX);
	wait_quiet(f);
	fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)cut), 0);
	close(fd);
	memset(rd, 0, 4096);
	dirty_clear(f->ram);
	m0 = merged(f);
	for (unsigned i = 0; i < 4; i++)
		rq[i] = mreq_submit(f, i, VIRTIO_BLK_T_IN, first + 2 * i,
				    G_RDATA + 1024 * (uint64_t)i, 1024, i == 3);
	assert_true(wait_used(f, rq[3].idx));
	assert_int_equal(merged(f) - m0, 3);
	assert_int_equal(*host(f->ram, rq[0].status), VIRTIO_BLK_S_OK);
	assert_int_equal(*host(f->ram, rq[1].status), VIRTIO_BLK_S_OK);
	assert_int_equal(*host(f->ram, rq[2].status), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*host(f->ram, rq[3].status), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used_len_of(f, rq[1].head, rq[0].idx, 4), 1025);
	assert_int_equal(used_len_of(f, rq[2].head, rq[0].idx, 4), 1);
	for (unsigned i = 0; i < 2048 + 100; i++)
		assert_int_equal(rd[i], img_byte(first * 512 + i));
	for (unsigned i = 0; i < 4; i++)
		assert_true(dirty_all(f->ram, rq[i].status, 1));
	assert_true(dirty_all(f->ram, G_RDATA, 4096));
	blk_fix_free(f);
}

/* Reads, writes, a flush and a GET_ID mixed in one notification. */
/* PCI: no DMA and no MSI while the driver has bus mastering off (a guest
 * shutting a device down may only clear that bit); turned back on, the
 * device serves what waited and the interrupt held back is sent. */
static void test_blk_bus_master_off(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	struct req r;
	unsigned msis;

	(void)state;
	drv_start(f);
	cfg_wr(&f->host, f->slot, PCI_COMMAND, 2, PCI_CMD_MEMORY);
	msis = f->msi.n;
	r = blk_submit(f, VIRTIO_BLK_T_GET_ID, 0, G_RDATA, 20, true);
	settle(f);
	assert_int_equal(used_idx(f), r.idx);
	assert_int_equal(f->msi.n, msis);
	cfg_wr(&f->host, f->slot, PCI_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	drv_notify(f);
	assert_true(wait_used(f, r.idx));
	assert_int_equal(*host(f->ram, r.status), VIRTIO_BLK_S_OK);
	assert_true(WAIT_UNTIL(f->msi.n > msis));
	blk_fix_free(f);
}

/* DRIVER_OK without FEATURES_OK (§3.1.1) does not start the device. */
static void test_blk_driver_ok_needs_features_ok(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	struct req r;

	(void)state;
	drv_probe(f);
	write_features(f, drv_all_features);
	drv_msix(f);
	drv_queue(f, DRV_QSIZE);
	set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		      VIRTIO_STATUS_DRIVER_OK);
	r = blk_submit(f, VIRTIO_BLK_T_GET_ID, 0, G_RDATA, 20, true);
	settle(f);
	assert_int_equal(used_idx(f), r.idx);
	assert_false(f->blk.vp.active);
	blk_fix_free(f);
}

static void test_blk_mixed_batch(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	uint8_t *w = host(f->ram, G_WDATA), *rd = host(f->ram, G_RDATA), file[8192];
	struct req rq[8];

	(void)state;
	drv_start_q(f, BLK_QMAX);
	wait_quiet(f);
	for (unsigned i = 0; i < 8192; i++)
		w[i] = (uint8_t)(i * 5 + 3);
	memset(rd, 0, 16384);
	rq[0] = mreq_submit(f, 0, VIRTIO_BLK_T_IN, 0, G_RDATA, 1024, false);
	rq[1] = mreq_submit(f, 1, VIRTIO_BLK_T_IN, 2, G_RDATA + 1024, 1024, false);
	rq[2] = mreq_submit(f, 2, VIRTIO_BLK_T_OUT, 100, G_WDATA, 4096, false);
	rq[3] = mreq_submit(f, 3, VIRTIO_BLK_T_OUT, 108, G_WDATA + 4096, 4096, false);
	rq[4] = mreq_submit(f, 4, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	rq[5] = mreq_submit(f, 5, VIRTIO_BLK_T_IN, 4, G_RDATA + 2048, 2048, false);
	rq[6] = mreq_submit(f, 6, VIRTIO_BLK_T_GET_ID, 0, G_RDATA + 8192, 20, false);
	rq[7] = mreq_submit(f, 7, VIRTIO_BLK_T_OUT, 300, G_WDATA, 512, true);
	assert_true(wait_used(f, rq[7].idx));
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(*host(f->ram, rq[i].status), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(rd[i], img_byte(i));
	assert_memory_equal(rd + 8192, "ferry-disk-0\0\0\0\0\0\0\0\0", 20);
	read_image(f->path, 100 * 512, file, 8192);
	assert_memory_equal(file, w, 8192);
	read_image(f->path, 300 * 512, file, 512);
	assert_memory_equal(file, w, 512);
	/* Each used element is one of ours, once, with its length. */
	for (unsigned i = 0; i < 8; i++) {
		unsigned want = i == 0 || i == 1 ? 1025 : i == 5 ? 2049 : i == 6 ? 21 : 1;

		assert_int_equal(used_len_of(f, rq[i].head, rq[0].idx, 8), want);
	}
	blk_fix_free(f);
}

/* More requests available at once than MAX_INFLIGHT (queue of 256): each
 * is answered exactly once, with its data. Adjacent and scattered sectors. */
static void check_many(struct blk_fix *f, unsigned rounds)
{
	uint8_t *rd = host(f->ram, G_RDATA);
	bool seen[MREQ_MAX];
	uint16_t start;

	drv_start_q(f, BLK_QMAX);
	for (unsigned round = 0; round < rounds; round++) {
		struct req rq[MREQ_MAX];

		start = f->d.aidx;
		memset(rd, 0, 512 * MREQ_MAX);
		for (unsigned i = 0; i < MREQ_MAX; i++) {
			/* Runs of 4 adjacent sectors, the runs scattered. */
			uint64_t sector = (i / 4) * 37 % 2000 + i % 4;

			rq[i] = mreq_submit(f, i, VIRTIO_BLK_T_IN, sector,
					    G_RDATA + 512 * (uint64_t)i, 512, i == MREQ_MAX - 1);
		}
		if (!WAIT_UNTIL(used_idx(f) == (uint16_t)(start + MREQ_MAX)))
			fail_msg("round %u: %u of %u answered", round,
				 (uint16_t)(used_idx(f) - start), MREQ_MAX);
		memset(seen, 0, sizeof(seen));
		for (unsigned k = 0; k < MREQ_MAX; k++) {
			uint32_t id = used_id(f, (uint16_t)(start + k));

			assert_true(id < MREQ_MAX);
			if (seen[id])
				fail_msg("round %u: head %u answered twice", round, id);
			seen[id] = true;
			assert_int_equal(used_len(f, (uint16_t)(start + k)), 513);
		}
		for (unsigned i = 0; i < MREQ_MAX; i++) {
			uint64_t sector = (i / 4) * 37 % 2000 + i % 4;

			assert_int_equal(*host(f->ram, rq[i].status), VIRTIO_BLK_S_OK);
			for (unsigned b = 0; b < 512; b += 97)
				assert_int_equal(rd[512 * i + b], img_byte(sector * 512 + b));
		}
		wait_quiet(f);
		/* Nothing more, and every slot back. */
		assert_int_equal(used_idx(f), (uint16_t)(start + MREQ_MAX));
		assert_int_equal(taken(f), (uint16_t)(start + MREQ_MAX));
		assert_int_equal(f->blk.nfree, VIRTIO_BLK_MAX_INFLIGHT);
	}
	assert_true(WAIT_UNTIL(msi_count(&f->msi, MSI_ADDR_Q, MSI_DATA_Q) >= 1));
}

static void test_blk_many_in_flight(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);

	(void)state;
	check_many(f, 3);
	blk_fix_free(f);
	f = direct_fix(IMG_SIZE);
	if (!f)
		skip();
	check_many(f, 3);
	blk_fix_free(f);
}

/* n big O_DIRECT reads (256 KiB each, all into the same guest buffer:
 * the data is not checked) so that many are in flight for a while. */
#define BIG_IMG   MiB(64)
#define BIG_LEN   (256u * 1024)

static void submit_big_reads(struct blk_fix *f, unsigned first, unsigned n)
{
	for (unsigned i = first; i < first + n; i++)
		mreq_submit(f, i, VIRTIO_BLK_T_IN, (uint64_t)(i % 256) * (BIG_LEN / 512), G_RDATA,
			    BIG_LEN, i == first + n - 1);
}

/* Status bytes of requests [0, n) that were written (not 0xff any more). */
static unsigned answered(struct blk_fix *f, unsigned n)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		k += *host(f->ram, G_MSTAT + i) != 0xff;
	return k;
}

/* The driver resets the device with requests in flight: when the status
 * write returns, every request the device took was answered (status and
 * used element), none is answered later; the device starts afresh. */
static void test_blk_reset_in_flight(void **state)
{
	struct blk_fix *f = direct_fix(BIG_IMG);
	uint16_t used;
	unsigned k;

	(void)state;
	if (!f)
		skip();
	drv_start_q(f, BLK_QMAX);
	submit_big_reads(f, 0, 200);
	assert_true(WAIT_UNTIL(taken(f) > 0));
	set_status(f, 0);
	assert_int_equal(status(f), 0);
	assert_int_equal(f->blk.inflight, 0);
	assert_int_equal(f->blk.nfree, VIRTIO_BLK_MAX_INFLIGHT);
	used = used_idx(f);
	k = answered(f, 200);
	assert_int_equal(k, used);
	assert_true(used > 0);
	for (unsigned i = 0; i < 200; i++) {
		uint8_t s = *host(f->ram, G_MSTAT + i);

		assert_true(s == 0xff || s == VIRTIO_BLK_S_OK);
	}
	/* A fresh start (new rings at the same place): works, and nothing of
	 * the old requests shows up. */
	drv_start_q(f, BLK_QMAX);
	assert_int_equal(used_idx(f), 0);
	for (unsigned i = 0; i < 8; i++)
		mreq_submit(f, 200 + i, VIRTIO_BLK_T_IN, 8 * i, G_RDATA, 4096, i == 7);
	assert_true(WAIT_UNTIL(used_idx(f) == 8));
	wait_quiet(f);
	assert_int_equal(used_idx(f), 8);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(*host(f->ram, G_MSTAT + 200 + i), VIRTIO_BLK_S_OK);
	assert_int_equal(answered(f, 200), k);
	blk_fix_free(f);
}

/* pause (device_ops) with requests in flight: when it returns, every
 * request taken is in the used ring, nothing is in flight, and nothing
 * more is taken until resume; then the rest is served. */
static void test_blk_pause_in_flight(void **state)
{
	struct blk_fix *f = direct_fix(BIG_IMG);
	struct pollfd p;
	uint16_t t;

	(void)state;
	if (!f)
		skip();
	drv_start_q(f, BLK_QMAX);
	submit_big_reads(f, 0, 200);
	assert_true(WAIT_UNTIL(taken(f) > 0));
	virtio_blk_device_ops.pause(&f->blk);
	t = taken(f);
	assert_int_equal(used_idx(f), t);
	assert_int_equal(answered(f, 200), t);
	assert_int_equal(f->blk.inflight, 0);
	assert_int_equal(f->blk.nfree, VIRTIO_BLK_MAX_INFLIGHT);
	/* More, notified: left alone (the notification waits). */
	submit_big_reads(f, 200, 40);
	p = (struct pollfd){ .fd = f->blk.vp.notify_fd[0], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 1);
	sleep_ms(20);
	assert_int_equal(taken(f), t);
	assert_int_equal(used_idx(f), t);
	assert_int_equal(answered(f, 240), t);
	assert_int_equal(virtio_blk_device_ops.resume(&f->blk), 0);
	if (!WAIT_UNTIL(used_idx(f) == 240))
		fail_msg("%u of 240 answered after resume", used_idx(f));
	assert_int_equal(answered(f, 240), 240);
	blk_fix_free(f);
}

static void *pause_thread(void *arg)
{
	virtio_blk_device_ops.pause(arg);
	return NULL;
}

static bool worker_flag(struct blk_fix *f, bool busy)
{
	bool v;

	pthread_mutex_lock(&f->blk.worker.lock);
	v = busy ? f->blk.worker.busy : f->blk.worker.paused;
	pthread_mutex_unlock(&f->blk.worker.lock);
	return v;
}

/* Found a bug, fixed since: a pause that comes while the I/O thread has
 * woken for a notification but not yet taken the requests. The thread
 * consumed the notification (it reads the eventfd first), then saw the
 * pause and stopped before taking anything; after resume it waited for a
 * notification that had already come: the request was never served (the
 * guest hangs). Made deterministic by holding ring_lock while the pause
 * starts. Fix: resume makes the thread look at the queue once. */
static void test_blk_pause_keeps_notification(void **state)
{
	struct blk_fix *f = blk_fix_new(&default_opts);
	pthread_t th;
	struct req r;

	(void)state;
	drv_start(f);
	assert_int_equal(blk_do(f, VIRTIO_BLK_T_IN, 1, G_RDATA, 512), VIRTIO_BLK_S_OK);
	wait_quiet(f);
	pthread_mutex_lock(&f->blk.ring_lock);
	r = blk_submit(f, VIRTIO_BLK_T_IN, 2, G_RDATA, 512, true);
	/* The thread woke and waits for ring_lock in its work function. */
	assert_true(WAIT_UNTIL(worker_flag(f, true)));
	assert_int_equal(pthread_create(&th, NULL, pause_thread, &f->blk), 0);
	assert_true(WAIT_UNTIL(worker_flag(f, false)));
	pthread_mutex_unlock(&f->blk.ring_lock);
	pthread_join(th, NULL);
	assert_int_equal(used_idx(f), r.idx);
	assert_int_equal(virtio_blk_device_ops.resume(&f->blk), 0);
	if (!wait_used(f, r.idx))
		fail_msg("the request notified just before the pause was never served");
	assert_int_equal(*host(f->ram, r.status), VIRTIO_BLK_S_OK);
	blk_fix_free(f);
}

/* Found a bug, fixed since: virtio_blk_destroy() with requests in flight
 * stopped the thread and tore the io_uring down with them still going:
 * the kernel goes on reading into guest RAM after destroy returned (the
 * VMM unmaps it next; here it is freed). Fix: destroy waits for them (and
 * answers them) first: every request taken is in the used ring. */
static void test_blk_destroy_in_flight(void **state)
{
	struct blk_fix *f = direct_fix(BIG_IMG);

	(void)state;
	if (!f)
		skip();
	drv_start_q(f, BLK_QMAX);
	submit_big_reads(f, 0, 200);
	assert_true(WAIT_UNTIL(taken(f) > 0));
	virtio_blk_destroy(&f->blk);
	f->created = false;
	/* The queue's state stays in the struct after destroy. */
	assert_int_equal(used_idx(f), f->blk.vp.vq[0].s.last_avail);
	assert_int_equal(answered(f, 200), f->blk.vp.vq[0].s.last_avail);
	blk_fix_free(f);
}

/* cache=none with a guest buffer O_DIRECT cannot use, among adjacent
 * aligned ones: it goes through the bounce buffer on its own (not merged),
 * the aligned ones around it are merged where adjacent; all data right. */
static void test_blk_direct_unaligned_in_batch(void **state)
{
	struct blk_fix *f = direct_fix(IMG_SIZE);
	uint8_t *w, *rd, file[4 * 4096];
	struct req rq[4];
	uint64_t m0;

	(void)state;
	if (!f)
		skip();
	w = host(f->ram, G_WDATA);
	rd = host(f->ram, G_RDATA);
	drv_start_q(f, BLK_QMAX);
	wait_quiet(f);
	for (unsigned i = 0; i < 5 * 4096; i++)
		w[i] = (uint8_t)(i * 11 + 5);
	/* Writes: sectors 40, 48 (unaligned buffer), 56, 64. */
	m0 = merged(f);
	rq[0] = mreq_submit(f, 0, VIRTIO_BLK_T_OUT, 40, G_WDATA, 4096, false);
	rq[1] = mreq_submit(f, 1, VIRTIO_BLK_T_OUT, 48, G_WDATA + 4096 + 3, 4096, false);
	rq[2] = mreq_submit(f, 2, VIRTIO_BLK_T_OUT, 56, G_WDATA + 2 * 4096, 4096, false);
	rq[3] = mreq_submit(f, 3, VIRTIO_BLK_T_OUT, 64, G_WDATA + 3 * 4096, 4096, true);
	assert_true(wait_used(f, rq[3].idx));
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(*host(f->ram, rq[i].status), VIRTIO_BLK_S_OK);
	assert_int_equal(merged(f) - m0, 1);
	read_image(f->path, 40 * 512, file, sizeof(file));
	assert_memory_equal(file, w, 4096);
	assert_memory_equal(file + 4096, w + 4096 + 3, 4096);
	assert_memory_equal(file + 8192, w + 8192, 8192);

	/* Reads of the same: the second into an unaligned buffer. */
	wait_quiet(f);
	m0 = merged(f);
	memset(rd, 0, 5 * 4096);
	rq[0] = mreq_submit(f, 4, VIRTIO_BLK_T_IN, 40, G_RDATA, 4096, false);
	rq[1] = mreq_submit(f, 5, VIRTIO_BLK_T_IN, 48, G_RDATA + 4096 + 5, 4096, false);
	rq[2] = mreq_submit(f, 6, VIRTIO_BLK_T_IN, 56, G_RDATA + 2 * 4096 + 512, 4096, false);
	rq[3] = mreq_submit(f, 7, VIRTIO_BLK_T_IN, 64, G_RDATA + 3 * 4096 + 512, 4096, true);
	assert_true(wait_used(f, rq[3].idx));
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(*host(f->ram, rq[i].status), VIRTIO_BLK_S_OK);
		assert_int_equal(used_len_of(f, rq[i].head, rq[0].idx, 4), 4097);
	}
	assert_int_equal(merged(f) - m0, 1);
	assert_memory_equal(rd, file, 4096);
	assert_memory_equal(rd + 4096 + 5, file + 4096, 4096);
	assert_memory_equal(rd + 2 * 4096 + 512, file + 8192, 8192);
	blk_fix_free(f);
}

/* pci_function_save/load on their own, and the host bridge's latch. */
static void test_pci_function_save_load(void **state)
{
	struct pci_fix *x = pci_fix_new(), *y = pci_fix_new();
	struct buf r1 = { 0 }, r2 = { 0 }, bad;
	struct reader rd_;

	(void)state;
	cfg_wr(&x->h, 1, PCI_COMMAND, 2, PCI_CMD_MEMORY);
	cfg_wr(&x->h, 1, PCI_BAR0, 4, 0xd0000000);
	cfg_wr(&x->h, 1, PCI_INT_LINE, 1, 5);
	msix_set_entry(x, 1, 0xfee00000, 0x41, true);
	msix_ctrl(x, MSIX_CTRL_ENABLE);
	pci_msix_notify(&x->f, 1);
	assert_int_equal(pci_function_save(&x->f, &r1), 0);
	reader_init(&rd_, r1.data, r1.len);
	assert_int_equal(pci_function_load(&y->f, &rd_), 0);
	assert_int_equal(reader_finish(&rd_), 0);
	assert_int_equal(pci_function_save(&y->f, &r2), 0);
	assert_true(same(&r1, &r2));
	assert_int_equal(pci_bar_addr(&y->f, 0), 0xd0000000);
	assert_int_equal(y->f.msix.pba, 2);

	/* Refused: truncated, a read-only byte, another vector count. */
	for (size_t n = 0; n < r1.len; n++) {
		reader_init(&rd_, r1.data, n);
		if (pci_function_load(&y->f, &rd_) == 0)
			fail_msg("truncated to %zu of %zu: accepted", n, r1.len);
	}
	memset(&bad, 0, sizeof(bad));
	buf_put(&bad, r1.data, r1.len);
	bad.data[PCI_DEVICE_ID] ^= 1;
	reader_init(&rd_, bad.data, bad.len);
	assert_int_equal(pci_function_load(&y->f, &rd_), -EINVAL);
	bad.data[PCI_DEVICE_ID] ^= 1;
	bad.data[PCI_STATUS] ^= PCI_STATUS_CAPS;
	reader_init(&rd_, bad.data, bad.len);
	assert_int_equal(pci_function_load(&y->f, &rd_), -EINVAL);
	bad.data[PCI_STATUS] ^= PCI_STATUS_CAPS;
	put_le32(bad.data + PCI_CFG_SIZE, T_NVEC + 1);
	reader_init(&rd_, bad.data, bad.len);
	assert_int_equal(pci_function_load(&y->f, &rd_), -EINVAL);
	buf_free(&bad);
	buf_free(&r2);
	memset(&r2, 0, sizeof(r2));
	assert_int_equal(pci_function_save(&y->f, &r2), 0);
	assert_true(same(&r1, &r2));

	/* The host bridge: the latch, reserved bits refused. */
	buf_free(&r1);
	buf_free(&r2);
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	wr(&pci_host_pio_ops, &x->h, 0, 4, cfg_address(0, 3, 0, 0x10));
	assert_int_equal(pci_host_device_ops.save(&x->h, &r1), 0);
	assert_int_equal(pci_host_device_ops.load(&y->h, 1, r1.data, r1.len), 0);
	assert_int_equal(rd(&pci_host_pio_ops, &y->h, 0, 4), cfg_address(0, 3, 0, 0x10));
	assert_int_equal(pci_host_device_ops.save(&y->h, &r2), 0);
	assert_true(same(&r1, &r2));
	put_le32(r1.data, 0x80000001);
	assert_int_equal(pci_host_device_ops.load(&y->h, 1, r1.data, r1.len), -EINVAL);
	put_le32(r1.data, 0x40000000);
	assert_int_equal(pci_host_device_ops.load(&y->h, 1, r1.data, r1.len), -EINVAL);
	assert_int_equal(pci_host_device_ops.load(&y->h, 1, r1.data, 3), -EINVAL);
	assert_true(pci_host_device_ops.load(&y->h, 2, r2.data, r2.len) != 0);
	pci_host_device_ops.reset(&y->h);
	assert_int_equal(rd(&pci_host_pio_ops, &y->h, 0, 4), 0);
	buf_free(&r1);
	buf_free(&r2);
	free(x);
	free(y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pci_host_bridge_ids),
		cmocka_unit_test(test_pci_host_absent_functions),
		cmocka_unit_test(test_pci_ecam),
		cmocka_unit_test(test_pci_bar_sizing),
		cmocka_unit_test(test_pci_cf9),
		cmocka_unit_test(test_pci_plug_full),
		cmocka_unit_test(test_pci_mmio_dispatch),
		cmocka_unit_test(test_msix),
		cmocka_unit_test(test_virtq_good_chains),
		cmocka_unit_test(test_virtq_index_wrap),
		cmocka_unit_test(test_virtq_rejects),
		cmocka_unit_test(test_virtq_map),
		cmocka_unit_test(test_virtq_push_unmapped),
		cmocka_unit_test(test_virtq_save_load),
		cmocka_unit_test(test_iov_helpers),
		cmocka_unit_test(test_virtio_caps),
		cmocka_unit_test(test_virtio_features),
		cmocka_unit_test(test_virtio_queue_setup),
		cmocka_unit_test(test_blk_read_write),
		cmocka_unit_test(test_blk_framing),
		cmocka_unit_test(test_blk_batch_and_no_interrupt),
		cmocka_unit_test(test_blk_readonly),
		cmocka_unit_test(test_blk_discard_write_zeroes),
		cmocka_unit_test(test_blk_direct),
		cmocka_unit_test(test_blk_needs_reset),
		cmocka_unit_test(test_virtio_ioeventfd),
		cmocka_unit_test(test_virtio_pci_cfg_window),
		cmocka_unit_test(test_blk_pause_resume),
		cmocka_unit_test(test_blk_error_writes_are_dirty),
		cmocka_unit_test(test_blk_save_load_save),
		cmocka_unit_test(test_blk_pending_request_after_migration),
		cmocka_unit_test(test_blk_load_registers_ioeventfd),
		cmocka_unit_test(test_blk_load_rejects),
		cmocka_unit_test(test_blk_refused_load_changes_nothing),
		cmocka_unit_test(test_load_unknown_version_is_eproto),
		cmocka_unit_test(test_guest_states_load),
		cmocka_unit_test(test_guest_states_load_bug),
		cmocka_unit_test(test_blk_deferred_open),
		cmocka_unit_test(test_blk_reset_is_fresh),
		cmocka_unit_test(test_blk_merge_adjacent),
		cmocka_unit_test(test_blk_merge_tail_out_of_bounds),
		cmocka_unit_test(test_blk_merge_short_transfer),
		cmocka_unit_test(test_blk_mixed_batch),
		cmocka_unit_test(test_blk_bus_master_off),
		cmocka_unit_test(test_blk_driver_ok_needs_features_ok),
		cmocka_unit_test(test_blk_many_in_flight),
		cmocka_unit_test(test_blk_reset_in_flight),
		cmocka_unit_test(test_blk_pause_in_flight),
		cmocka_unit_test(test_blk_pause_keeps_notification),
		cmocka_unit_test(test_blk_destroy_in_flight),
		cmocka_unit_test(test_blk_direct_unaligned_in_batch),
		cmocka_unit_test(test_pci_function_save_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
