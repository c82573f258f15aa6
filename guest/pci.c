/* PCI configuration mechanism #1 and MSI-X (ring 3); see pci.h. Every
 * configuration access is two port exits (~60 us on kvm_pvm). */
#include "pci.h"
#include "bootinfo.h"
#include "console.h"
#include "lib.h"
#include "x86.h"

#define PCI_ADDR        0xcf8
#define PCI_DATA        0xcfc

#define PCI_VENDOR_ID   0x00
#define PCI_COMMAND     0x04
#define PCI_STATUS      0x06
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0        0x10
#define PCI_SUBSYS      0x2c
#define PCI_CAP_PTR     0x34

#define CMD_MEMORY      0x0002
#define CMD_MASTER      0x0004
#define CMD_INTX_OFF    0x0400
#define STATUS_CAPS     0x0010

#define BAR_IO          0x1
#define BAR_TYPE_MASK   0x6
#define BAR_TYPE_64     0x4

#define MSIX_CTRL       2
#define MSIX_TABLE      4
#define MSIX_ENABLE     0x8000
#define MSIX_MASKALL    0x4000
#define MSIX_VEC_MASKED 0x1

static u32 msi_next;

static void select_reg(const struct pci_dev *d, u8 off)
{
	outl(PCI_ADDR, 0x80000000u | (u32)d->bus << 16 | (u32)d->dev << 11 |
		       (u32)d->fn << 8 | (off & 0xfc));
}

u32 pci_read32(const struct pci_dev *d, u8 off)
{
	select_reg(d, off);
	return inl(PCI_DATA);
}

u16 pci_read16(const struct pci_dev *d, u8 off)
{
	select_reg(d, off);
	return inw(PCI_DATA + (off & 2));
}

u8 pci_read8(const struct pci_dev *d, u8 off)
{
	select_reg(d, off);
	return inb(PCI_DATA + (off & 3));
}

void pci_write16(const struct pci_dev *d, u8 off, u16 v)
{
	select_reg(d, off);
	outw(PCI_DATA + (off & 2), v);
}

void pci_write32(const struct pci_dev *d, u8 off, u32 v)
{
	select_reg(d, off);
	outl(PCI_DATA, v);
}

/* Memory BARs only; a 64-bit BAR takes the next slot as its high half. */
static void read_bars(struct pci_dev *d)
{
	for (u8 i = 0; i < PCI_NUM_BARS; i++) {
		u32 lo = pci_read32(d, PCI_BAR0 + 4 * i);
		u64 addr = lo & ~0xfu;

		if (lo & BAR_IO)
			continue;
		if ((lo & BAR_TYPE_MASK) == BAR_TYPE_64 && i + 1 < PCI_NUM_BARS) {
			addr |= (u64)pci_read32(d, PCI_BAR0 + 4 * (i + 1)) << 32;
			d->bar[i++] = addr;
			continue;
		}
		d->bar[i] = addr;
	}
}

/* Fill in one function found present; false if its vendor is not wanted. */
static bool probe_fn(struct pci_dev *d, u32 id, u16 vendor)
{
	u32 sub;

	if ((id & 0xffff) != vendor)
		return false;
	d->vendor = (u16)id;
	d->device = (u16)(id >> 16);
	sub = pci_read32(d, PCI_SUBSYS);
	d->subsys_vendor = (u16)sub;
	d->subsys_id = (u16)(sub >> 16);
	fmt_sn(d->name, sizeof(d->name), "%02x:%02x.%x", d->bus, d->dev, d->fn);
	read_bars(d);
	return true;
}

u32 pci_scan(u16 vendor, struct pci_dev *out, u32 max)
{
	u32 n = 0;

	for (u8 dev = 0; dev < 32 && n < max; dev++) {
		u8 nfn = 1;

		for (u8 fn = 0; fn < nfn && n < max; fn++) {
			struct pci_dev d = { .dev = dev, .fn = fn };
			u32 id = pci_read32(&d, PCI_VENDOR_ID);

			if ((id & 0xffff) == 0xffff)
				continue;
			if (fn == 0 && (pci_read8(&d, PCI_HEADER_TYPE) & 0x80))
				nfn = 8;
			if (probe_fn(&d, id, vendor))
				out[n++] = d;
		}
	}
	return n;
}

u8 pci_find_cap(const struct pci_dev *d, u8 id, u8 from)
{
	u8 off;

	if (!from) {
		if (!(pci_read16(d, PCI_STATUS) & STATUS_CAPS))
			return 0;
		off = pci_read8(d, PCI_CAP_PTR) & 0xfc;
	} else {
		off = pci_read8(d, from + 1) & 0xfc;
	}
	for (u32 i = 0; off >= 0x40 && i < 48; i++) {
		if (pci_read8(d, off) == id)
			return off;
		off = pci_read8(d, off + 1) & 0xfc;
	}
	return 0;
}

volatile void *pci_bar_ptr(const struct pci_dev *d, u8 bar, u64 off, u64 len,
			   const char *what)
{
	u64 base = bar < PCI_NUM_BARS ? d->bar[bar] : 0;

	if (!base) {
		console_printf("ferry-agent warning: pci %s: %s in bar%u, which "
			       "is unset or not memory\n", d->name, what, bar);
		return NULL;
	}
	if (base + off < base || base + off + len > boot.mapped_top) {
		console_printf("ferry-agent warning: pci %s: %s at 0x%lx is above "
			       "the mapped 0x%lx\n", d->name, what, base + off,
			       boot.mapped_top);
		return NULL;
	}
	return (volatile void *)(uintptr_t)(base + off);
}

void pci_enable(const struct pci_dev *d)
{
	u16 cmd = pci_read16(d, PCI_COMMAND);

	pci_write16(d, PCI_COMMAND, cmd | CMD_MEMORY | CMD_MASTER | CMD_INTX_OFF);
}

int msix_setup(const struct pci_dev *d, struct msix *m)
{
	u8 cap = pci_find_cap(d, PCI_CAP_MSIX, 0);
	u32 tbl;
	u16 ctrl;

	if (!cap)
		return -1;
	ctrl = pci_read16(d, cap + MSIX_CTRL);
	tbl = pci_read32(d, cap + MSIX_TABLE);
	m->cap = cap;
	m->size = (ctrl & 0x7ff) + 1;
	m->table = pci_bar_ptr(d, tbl & 7, tbl & ~7u, (u64)m->size * 16,
			       "MSI-X table");
	if (!m->table)
		return -1;
	pci_write16(d, cap + MSIX_CTRL, ctrl | MSIX_ENABLE | MSIX_MASKALL);
	for (u16 e = 0; e < m->size; e++)
		m->table[4 * e + 3] = MSIX_VEC_MASKED;
	return 0;
}

void msix_route(const struct msix *m, u16 entry, u32 msi, u32 apic_id)
{
	volatile u32 *e = m->table + 4 * entry;

	e[0] = 0xfee00000u | apic_id << 12;     /* fixed, physical destination */
	e[1] = 0;
	e[2] = VEC_MSI_BASE + msi;              /* edge, fixed delivery */
	e[3] = 0;
}

void msix_unmask_all(const struct pci_dev *d, const struct msix *m)
{
	u16 ctrl = pci_read16(d, m->cap + MSIX_CTRL);

	pci_write16(d, m->cap + MSIX_CTRL, (ctrl | MSIX_ENABLE) & ~MSIX_MASKALL);
}

int msi_alloc(void)
{
	return msi_next < MSI_VECTORS ? (int)msi_next++ : -1;
}
