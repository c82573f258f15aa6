/*
 * PCI bus 0 through configuration mechanism #1 (ports 0xCF8-0xCFF, opened
 * to ring 3 by the TSS I/O bitmap), and MSI-X. Ring 3, CPU 0, before
 * "ready": nothing locks the 0xCF8 latch, so no other CPU may touch
 * configuration space meanwhile.
 *
 * BARs are used where the firmware or the VMM put them; nothing is
 * reassigned. Memory BARs are reached through the identity map (virtual ==
 * guest physical), so a BAR must lie below boot.mapped_top.
 */
#ifndef FERRY_GUEST_PCI_H
#define FERRY_GUEST_PCI_H

#include "types.h"

#define PCI_MAX_DEVS    16      /* functions of interest kept by a scan */
#define PCI_NUM_BARS    6

#define PCI_CAP_MSIX    0x11
#define PCI_CAP_VENDOR  0x09

struct pci_dev {
	u8 bus, dev, fn;
	u16 vendor, device;
	u16 subsys_vendor, subsys_id;
	u64 bar[PCI_NUM_BARS];  /* memory BAR addresses; 0 = none/IO/unset */
	char name[8];           /* "00:04.0" */
};

/* Configuration space of d, offset off (aligned to the width). */
u8 pci_read8(const struct pci_dev *d, u8 off);
u16 pci_read16(const struct pci_dev *d, u8 off);
u32 pci_read32(const struct pci_dev *d, u8 off);
void pci_write16(const struct pci_dev *d, u8 off, u16 v);
void pci_write32(const struct pci_dev *d, u8 off, u32 v);

/* Scan bus 0 (every slot, functions 1-7 of multifunction devices) and keep
 * up to max functions with the given vendor ID, in scan order, with their
 * memory BARs decoded. Returns how many. A missing bus (reads of all ones)
 * costs 32 configuration reads and prints nothing. */
u32 pci_scan(u16 vendor, struct pci_dev *out, u32 max);

/* Offset of the first capability with this ID at or after the one linked
 * from `from` (0: from the start of the list); 0 if none. Loops in the
 * list are cut off after 48 entries. */
u8 pci_find_cap(const struct pci_dev *d, u8 id, u8 from);

/* Pointer to [off, off + len) of memory BAR bar, or NULL (with a warning
 * naming what) if the BAR is unset, is I/O, or the range is not mapped. */
volatile void *pci_bar_ptr(const struct pci_dev *d, u8 bar, u64 off, u64 len,
			   const char *what);

/* Turn on memory decoding and bus mastering, INTx off. */
void pci_enable(const struct pci_dev *d);

/*
 * MSI-X: the table of up to `nvec` entries. msix_setup() finds the
 * capability, maps the table, masks every entry and enables MSI-X with the
 * function masked; msix_route() aims entry e at an MSI vector (index into
 * msi_count[], see bootinfo.h) on the CPU with this APIC ID and unmasks
 * it; msix_unmask_all() clears the function mask once every entry is set.
 */
struct msix {
	volatile u32 *table;    /* 4 u32 per entry */
	u16 size;               /* entries in the table */
	u8 cap;                 /* capability offset */
};

int msix_setup(const struct pci_dev *d, struct msix *m);
void msix_route(const struct msix *m, u16 entry, u32 msi, u32 apic_id);
void msix_unmask_all(const struct pci_dev *d, const struct msix *m);

/* Take one of the MSI_VECTORS interrupt vectors; -1 if none is left. */
int msi_alloc(void);

#endif
