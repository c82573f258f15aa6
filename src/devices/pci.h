/* PCI: the host bridge of bus 0 (configuration mechanism #1 at 0xCF8-0xCFF),
 * the configuration space every function shares (header, BARs, capability
 * list), MSI-X, and dispatch of memory accesses to the BARs where the guest
 * placed them. Functions are plugged at creation; there is no hot-plug.
 *
 * The VMM assigns every BAR at creation (there is no firmware on the PVH
 * path, as on Firecracker and Cloud Hypervisor); a guest may still size and
 * move BARs, and accesses follow the BARs wherever they are while memory
 * decoding is on. */
#ifndef FERRY_DEVICES_PCI_H
#define FERRY_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "devices/bus.h"
#include "devices/device.h"

#define PCI_CFG_SIZE      256
#define PCI_MAX_SLOTS     32
#define PCI_NUM_BARS      6

/* Configuration-space offsets and bits (PCI Local Bus 3.0, §6). */
#define PCI_VENDOR_ID     0x00
#define PCI_DEVICE_ID     0x02
#define PCI_COMMAND       0x04
#define PCI_STATUS        0x06
#define PCI_REVISION      0x08
#define PCI_CLASS_PROG    0x09
#define PCI_HEADER_TYPE   0x0e
#define PCI_BAR0          0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID     0x2e
#define PCI_CAP_PTR       0x34
#define PCI_INT_LINE      0x3c
#define PCI_INT_PIN       0x3d

#define PCI_CMD_IO        0x0001
#define PCI_CMD_MEMORY    0x0002
#define PCI_CMD_MASTER    0x0004
#define PCI_CMD_INTX_OFF  0x0400
#define PCI_STATUS_CAPS   0x0010

#define PCI_CAP_MSIX      0x11
#define PCI_CAP_VENDOR    0x09

#define PCI_BAR_MEM64     0x04

/* MSI-X (PCI 3.0 §6.8.2): message control bits and table entry layout. */
#define MSIX_CTRL_ENABLE  0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_SIZE   16
#define MSIX_VEC_MASKED   0x1
#define MSIX_MAX_VECTORS  64

/* The enhanced configuration access mechanism (ECAM, PCI Express 5.0
 * §7.2.2; "MMCONFIG" to Linux): each function's configuration space as
 * 4 KiB of memory at PCI_ECAM_BASE + (bus << 20 | device << 15 |
 * function << 12), for bus 0 only — 1 MiB, just below the IOAPIC. The
 * MCFG table points the guest here, and the memory map and a motherboard
 * device in the DSDT reserve it. The functions are conventional PCI with
 * the 256-byte space: the rest of each 4 KiB reads as all ones. */
#define PCI_ECAM_BASE     0xfeb00000ull
#define PCI_ECAM_SIZE     0x100000ull
#define PCI_ECAM_BUS_END  0 /* the last bus it covers */

/* Where the guest's 32-bit PCI memory window lies (ACPI _CRS says so too):
 * above the RAM below 4 GiB, up to the ECAM area. */
#define PCI_MMIO_BASE     0xc0000000ull
#define PCI_MMIO_END      PCI_ECAM_BASE

/* How the VMM delivers a message-signalled interrupt (KVM_SIGNAL_MSI or an
 * irqfd); returns 0 or -errno. */
struct msi_sink {
	int (*send)(void *ctx, uint64_t addr, uint32_t data);
	void *ctx;
};

struct pci_bar {
	uint64_t size;          /* 0: not implemented; a power of two >= 4 KiB */
	bool mem64;
	const struct bus_ops *ops;
	void *dev;              /* passed to ops with the offset in the BAR */
};

struct pci_function;

/* What a function's owner learns about configuration changes. */
struct pci_function_ops {
	/* A BAR moved, or memory decoding changed (addresses of notify
	 * registers that the VMM registered with KVM must follow). */
	void (*bars_changed)(struct pci_function *f);
	/* MSI-X enable or function mask changed. */
	void (*msix_changed)(struct pci_function *f);
};

struct msix {
	unsigned nvec;          /* 0: no MSI-X */
	unsigned bar;           /* table at offset 0, PBA at pba_off */
	uint32_t pba_off;
	uint8_t cap;            /* its capability's offset in config space */
	/* Guest-visible state: */
	uint8_t table[MSIX_MAX_VECTORS * MSIX_ENTRY_SIZE];
	uint64_t pba;           /* pending bits, one per vector */
};

struct pci_function {
	/* Serialises config writes, the MSI-X table and interrupt delivery
	 * (vCPU threads and device I/O threads both get here). */
	pthread_mutex_t lock;
	/* Guest-visible state: */
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t cfg_reset[PCI_CFG_SIZE]; /* cfg as plugged (BARs assigned) */
	/* Fixed at creation: which bits of cfg the guest may write, the
	 * capability chain's tail, the BARs and MSI-X layout. */
	uint8_t wmask[PCI_CFG_SIZE];
	uint8_t cap_end;        /* next free config offset for a capability */
	uint8_t cap_last;       /* offset of the last capability, 0: none */
	struct pci_bar bars[PCI_NUM_BARS];
	struct msix msix;
	struct msi_sink msi;
	const struct pci_function_ops *ops;
	void *owner;
	/* Called for reads/writes in [start, end) of config space instead of
	 * the plain byte array (a capability with side effects). */
	uint8_t hook_start, hook_end;
	void (*cfg_read_hook)(struct pci_function *f, unsigned off, uint8_t *data, unsigned size);
	void (*cfg_write_hook)(struct pci_function *f, unsigned off, const uint8_t *data,
			       unsigned size);
};

struct pci_host {
	uint32_t config_address;        /* the 0xCF8 latch (guest-visible) */
	uint8_t bridge_cfg[PCI_CFG_SIZE];
	struct pci_function *slots[PCI_MAX_SLOTS];  /* slot 0: the bridge */
	uint64_t mmio_next;             /* next free address for a BAR */
	/* 0xCF9 shares the ports of mechanism #1: byte accesses there go to
	 * the reset control register. */
	const struct bus_ops *cf9_ops;
	void *cf9_dev;
};

/* The host bridge at 00:00.0; cf9 handles byte accesses to port 0xCF9. */
void pci_host_init(struct pci_host *h, const struct bus_ops *cf9_ops, void *cf9_dev);

/* Port range 0xCF8-0xCFF, the memory window [PCI_MMIO_BASE,
 * PCI_MMIO_END), and the ECAM area [PCI_ECAM_BASE, + PCI_ECAM_SIZE). */
extern const struct bus_ops pci_host_pio_ops;
extern const struct bus_ops pci_host_mmio_ops;
extern const struct bus_ops pci_host_ecam_ops;

/* Sets up f's header: IDs, class (0xCCSSPP), subsystem IDs. */
void pci_function_init(struct pci_function *f, uint16_t vendor, uint16_t device,
		       uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		       uint16_t subsys_id);

/* Declares a memory BAR of size bytes (a power of two >= 4096). */
void pci_function_add_bar(struct pci_function *f, unsigned bar, uint64_t size, bool mem64,
			  const struct bus_ops *ops, void *dev);

/* Appends a capability of len bytes (id and next filled in; the rest is
 * zero and read-only unless wmask says otherwise). Returns its offset. */
uint8_t pci_function_add_cap(struct pci_function *f, uint8_t id, uint8_t len);

/* Adds MSI-X with nvec vectors, table at offset 0 of bar and the PBA at
 * pba_off; the BAR must already exist and be big enough. */
void pci_function_add_msix(struct pci_function *f, unsigned nvec, unsigned bar,
			   uint32_t pba_off);

/* Plugs f into the first free slot, assigning its BARs. Returns the slot,
 * -ENOSPC (no slot or no room in the window). */
int pci_host_plug(struct pci_host *h, struct pci_function *f);

/* The guest-physical address of a BAR as programmed now, or 0 when it is
 * not decoded (memory space off, or unassigned). */
uint64_t pci_bar_addr(const struct pci_function *f, unsigned bar);

/* Delivers MSI-X vector vec: now if enabled and unmasked, else marks it
 * pending (sent when unmasked). A vec past the table (virtio's
 * VIRTIO_MSI_NO_VECTOR, say) does nothing. Returns false when nothing was
 * sent. */
bool pci_msix_notify(struct pci_function *f, unsigned vec);

bool pci_msix_enabled(const struct pci_function *f);

/* BAR access handlers for the MSI-X table/PBA (a device whose BAR holds
 * only the table uses these as the BAR's ops with dev = the function). */
extern const struct bus_ops pci_msix_bar_ops;

/* Resets the function's guest-writable configuration (command, BARs back
 * to the VMM's assignment, MSI-X off, table masked). */
void pci_function_reset(struct pci_function *f);

/* Save/load of config space, MSI-X table and PBA (one section of the
 * owner's state record). load checks that the read-only parts match this
 * function; on error f is unchanged. */
int pci_function_save(const struct pci_function *f, struct buf *out);
int pci_function_load(struct pci_function *f, struct reader *in);

/* pci_function_load in two steps, for an owner with more to check before
 * anything changes: check reads and checks a section into *s (f stays
 * as it is), commit applies it. */
struct pci_function_saved {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t table[MSIX_MAX_VECTORS * MSIX_ENTRY_SIZE];
	uint64_t pba;
};
int pci_function_load_check(const struct pci_function *f, struct reader *in,
			    struct pci_function_saved *s);
void pci_function_load_commit(struct pci_function *f, const struct pci_function_saved *s);

/* The host bridge's own state (the 0xCF8 latch, its config space). */
extern const struct device_ops pci_host_device_ops;

#endif
