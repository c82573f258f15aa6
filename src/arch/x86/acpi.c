#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "common/util.h"
#include "devices/pci.h"

#define ACPI_OEM_ID "FERRY "
#define ACPI_OEM_TABLE "FERRYPC "
#define ACPI_HDR_LEN 36
#define FADT_LEN 276 /* revision 6 */
#define FACS_LEN 64
#define MCFG_LEN (ACPI_HDR_LEN + 8 + 16) /* one allocation: segment 0 */
#define DSDT_AML_MAX 512 /* the DSDT's AML, built on the stack first */

/* A bump allocator over the ACPI area. */
struct acpi_area {
	uint8_t *base;
	uint64_t gpa;
	size_t cap;
	size_t used;
	bool full;
};

static uint8_t *acpi_alloc_aligned(struct acpi_area *a, size_t len, size_t align, uint64_t *gpa)
{
	size_t off = ALIGN_UP(a->used, align);

	if (a->full || !range_within(off, len, a->cap)) {
		a->full = true;
		return NULL;
	}
	a->used = off + len;
	*gpa = a->gpa + off;
	memset(a->base + off, 0, len);
	return a->base + off;
}

/* Tables are 16-byte aligned (the RSDP must be, for OSes that scan). */
static uint8_t *acpi_alloc(struct acpi_area *a, size_t len, uint64_t *gpa)
{
	return acpi_alloc_aligned(a, len, 16, gpa);
}

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return (uint8_t)-sum;
}

static void acpi_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put_le32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE, 8);
	put_le32(t + 24, 1);       /* OEM revision */
	memcpy(t + 28, "FRRY", 4); /* creator ID */
	put_le32(t + 32, 1);       /* creator revision */
}

static void acpi_seal(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = acpi_checksum(t, len);
}

/* Generic Address Structure for an I/O port register. */
static void acpi_gas_io(uint8_t *g, uint8_t bits, uint16_t port)
{
	g[0] = 1; /* system I/O */
	g[1] = bits;
	g[2] = 0;
	g[3] = bits <= 8 ? 1 : bits <= 16 ? 2 : 3; /* access size */
	put_le64(g + 4, port);
}

/* \_S5 = Package { SLP_TYPa, SLP_TYPb, 0, 0 }: what a guest OS writes into
 * PM1_CNT.SLP_TYP to power off. */
static void dsdt_s5(struct aml *a)
{
	struct aml_mark pkg;

	aml_name(a, "_S5");
	pkg = aml_package(a, 4);
	aml_int(a, ACPI_SLP_TYP_S5);
	aml_int(a, ACPI_SLP_TYP_S5);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_end(a, pkg);
}

/* The windows the root bridge forwards, as QEMU's i440fx DSDT gives them:
 * bus 0 alone (there are no PCI-PCI bridges); the configuration ports,
 * which the bridge decodes itself; every other I/O port — the legacy ISA
 * ports below 0xCF8 included, as on a PC where the ISA bus hangs below
 * PCI, so the devices there stay reachable and Linux nests their regions
 * in the bus window — and the 32-bit hole where the VMM puts every BAR,
 * 64-bit ones included (hence no QWordMemory window above 4 GiB). No
 * VGA window: there is no VGA. */
static void dsdt_pci0_crs(struct aml *a)
{
	struct aml_mark crs;

	aml_name(a, "_CRS");
	crs = aml_restemplate_begin(a);
	aml_res_word_bus(a, 0, 0);
	aml_res_io16(a, PORT_PCI_CONFIG, PORT_PCI_CONFIG, 1, 8);
	aml_res_word_io(a, 0x0000, PORT_PCI_CONFIG - 1);
	aml_res_word_io(a, 0x0d00, 0xffff);
	aml_res_dword_memory(a, AML_MEM_NONCACHEABLE | AML_MEM_READWRITE, PCI_MMIO_BASE,
			     PCI_MMIO_END - 1);
	aml_restemplate_end(a, crs);
}

/* \_SB.PCI0, the PCI root bridge: with ACPI, Linux finds root buses only
 * here (pci_acpi_init leaves the legacy probe off).
 *
 * No _PRT: functions have no INTx pin (interrupt pin 0) and signal with
 * MSI-X only, and Linux asks _PRT for nothing else — acpi_pci_irq_enable
 * returns early for a function without a pin. No _OSC either: without it
 * Linux keeps native control of PCIe hot-plug, AER, PME and LTR off, none
 * of which this conventional bus has. No _CBA: the MCFG table gives the
 * bus's ECAM area, which PCI0.ECAM, a motherboard resource (PNP0C02),
 * reserves — where Linux looks before it trusts an MCFG entry (else
 * "fail to add MMCONFIG information" and no ECAM). */
static void dsdt_pci0(struct aml *a)
{
	struct aml_mark sb, dev, ecam, crs;

	sb = aml_scope(a, "\\_SB");
	dev = aml_device(a, "PCI0");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A03"); /* PCI bus */
	/* _ADR beside _HID, as QEMU's and most firmware's PCI0 have it (ACPI
	 * says a device should have one or the other, and iasl warns when it
	 * compiles the two together); OSes read neither for a root bridge's
	 * address, which _SEG, _BBN and _CRS give. */
	aml_name_int(a, "_ADR", 0);
	aml_name_int(a, "_UID", 0);
	aml_name_int(a, "_BBN", 0); /* base bus number */
	aml_name_int(a, "_SEG", 0); /* PCI segment group */
	dsdt_pci0_crs(a);
	ecam = aml_device(a, "ECAM");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C02"); /* motherboard resources */
	aml_name(a, "_CRS");
	crs = aml_restemplate_begin(a);
	aml_res_memory32_fixed(a, PCI_ECAM_BASE, PCI_ECAM_SIZE);
	aml_restemplate_end(a, crs);
	aml_end(a, ecam);
	aml_end(a, dev);
	aml_end(a, sb);
}

static uint64_t acpi_dsdt(struct acpi_area *a)
{
	uint8_t body[DSDT_AML_MAX];
	struct aml aml;
	uint64_t gpa = 0;
	uint32_t len;
	uint8_t *t;

	aml_init(&aml, body, sizeof(body));
	dsdt_s5(&aml);
	dsdt_pci0(&aml);
	if (aml.error) { /* DSDT_AML_MAX is too small: the tables do not fit */
		a->full = true;
		return 0;
	}
	len = ACPI_HDR_LEN + (uint32_t)aml.len;
	t = acpi_alloc(a, len, &gpa);
	if (!t)
		return 0;
	acpi_header(t, "DSDT", len, 2);
	memcpy(t + ACPI_HDR_LEN, body, aml.len);
	acpi_seal(t, len);
	return gpa;
}

static uint64_t acpi_facs(struct acpi_area *a)
{
	uint64_t gpa = 0;
	uint8_t *t = acpi_alloc_aligned(a, FACS_LEN, 64, &gpa); /* ACPI: 64-byte aligned */

	if (!t)
		return 0;
	memcpy(t, "FACS", 4);
	put_le32(t + 4, FACS_LEN);
	t[32] = 2; /* version */
	return gpa;
}

static uint64_t acpi_fadt(struct acpi_area *a, uint64_t dsdt, uint64_t facs)
{
	uint64_t gpa = 0;
	uint8_t *t = acpi_alloc(a, FADT_LEN, &gpa);
	uint32_t flags = (1u << 0)   /* WBINVD works */
		       | (1u << 2)   /* C1 supported */
		       | (1u << 5)   /* no fixed-feature sleep button */
		       | (1u << 8)   /* PM timer is 32 bits */
		       | (1u << 10); /* RESET_REG supported */

	if (!t)
		return 0;
	acpi_header(t, "FACP", FADT_LEN, 6);
	put_le32(t + 36, (uint32_t)facs);
	put_le32(t + 40, (uint32_t)dsdt);
	put_le16(t + 46, IRQ_SCI);
	/* SMI_CMD = 0: ACPI is always enabled (PM1_CNT.SCI_EN reads 1). */
	put_le32(t + 56, PORT_ACPI_PM1_EVT);
	put_le32(t + 64, PORT_ACPI_PM1_CNT);
	put_le32(t + 76, PORT_ACPI_PM_TMR);
	t[88] = 4; /* PM1_EVT_LEN */
	t[89] = 2; /* PM1_CNT_LEN */
	t[91] = 4; /* PM_TMR_LEN */
	put_le16(t + 96, 0x0fff); /* no C2 */
	put_le16(t + 98, 0x0fff); /* no C3 */
	t[108] = 0x32;            /* RTC century register */
	put_le16(t + 109, 0x3);   /* legacy devices, 8042 */
	put_le32(t + 112, flags);
	acpi_gas_io(t + 116, 8, PORT_RESET);
	t[128] = 0x06; /* reset value: CPU reset + system reset */
	put_le64(t + 132, facs);
	put_le64(t + 140, dsdt);
	acpi_gas_io(t + 148, 32, PORT_ACPI_PM1_EVT);
	acpi_gas_io(t + 172, 16, PORT_ACPI_PM1_CNT);
	acpi_gas_io(t + 208, 32, PORT_ACPI_PM_TMR);
	acpi_seal(t, FADT_LEN);
	return gpa;
}

/* MCFG (PCI Firmware 3.3 §4.1.2): where segment 0's ECAM area is, for
 * buses 0 to PCI_ECAM_BUS_END. */
static uint64_t acpi_mcfg(struct acpi_area *a)
{
	uint64_t gpa = 0;
	uint8_t *t = acpi_alloc(a, MCFG_LEN, &gpa), *e;

	if (!t)
		return 0;
	acpi_header(t, "MCFG", MCFG_LEN, 1);
	e = t + ACPI_HDR_LEN + 8; /* after 8 reserved bytes */
	put_le64(e, PCI_ECAM_BASE);
	put_le16(e + 8, 0); /* segment group */
	e[10] = 0;          /* start bus */
	e[11] = PCI_ECAM_BUS_END;
	acpi_seal(t, MCFG_LEN);
	return gpa;
}

static uint64_t acpi_madt(struct acpi_area *a, unsigned ncpus)
{
	uint32_t len = ACPI_HDR_LEN + 8 + 8 * ncpus + 12 + 10 * 2 + 6;
	uint64_t gpa = 0;
	uint8_t *t = acpi_alloc(a, len, &gpa), *e;

	if (!t)
		return 0;
	acpi_header(t, "APIC", len, 4);
	put_le32(t + 36, (uint32_t)LAPIC_ADDR);
	put_le32(t + 40, 1); /* PCAT_COMPAT: there are 8259 PICs */
	e = t + 44;
	for (unsigned i = 0; i < ncpus; i++, e += 8) {
		e[0] = 0; /* Processor Local APIC */
		e[1] = 8;
		e[2] = (uint8_t)i; /* ACPI processor UID */
		e[3] = (uint8_t)i; /* APIC ID */
		put_le32(e + 4, 1); /* enabled */
	}
	e[0] = 1; /* I/O APIC */
	e[1] = 12;
	e[2] = 0; /* IOAPIC ID (KVM's in-kernel IOAPIC) */
	put_le32(e + 4, (uint32_t)IOAPIC_ADDR);
	put_le32(e + 8, 0); /* GSI base */
	e += 12;
	/* ISA IRQ 0 (PIT) arrives on IOAPIC pin 2, as on every PC; the GSI
	 * routing in vm.c says the same to KVM. */
	e[0] = 2, e[1] = 10, e[2] = 0, e[3] = 0;
	put_le32(e + 4, 2);
	put_le16(e + 8, 0);
	e += 10;
	/* The SCI is level-triggered, active high. */
	e[0] = 2, e[1] = 10, e[2] = 0, e[3] = IRQ_SCI;
	put_le32(e + 4, IRQ_SCI);
	put_le16(e + 8, 0xd);
	e += 10;
	e[0] = 4, e[1] = 6, e[2] = 0xff; /* LINT1 is NMI on every CPU */
	put_le16(e + 3, 0);
	e[5] = 1;
	acpi_seal(t, len);
	return gpa;
}

static uint64_t acpi_sdt(struct acpi_area *a, const char sig[4], const uint64_t *tables,
			 unsigned n, unsigned width)
{
	uint32_t len = ACPI_HDR_LEN + width * n;
	uint64_t gpa = 0;
	uint8_t *t = acpi_alloc(a, len, &gpa);

	if (!t)
		return 0;
	acpi_header(t, sig, len, 1);
	for (unsigned i = 0; i < n; i++) {
		if (width == 8)
			put_le64(t + ACPI_HDR_LEN + 8 * i, tables[i]);
		else
			put_le32(t + ACPI_HDR_LEN + 4 * i, (uint32_t)tables[i]);
	}
	acpi_seal(t, len);
	return gpa;
}

static void acpi_rsdp(uint8_t *r, uint64_t rsdt, uint64_t xsdt)
{
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, ACPI_OEM_ID, 6);
	r[15] = 2; /* ACPI 2.0+ */
	put_le32(r + 16, (uint32_t)rsdt);
	put_le32(r + 20, 36);
	put_le64(r + 24, xsdt);
	r[8] = acpi_checksum(r, 20);
	r[32] = acpi_checksum(r, 36);
}

int64_t acpi_build(uint8_t *area, uint64_t gpa, size_t cap, const struct acpi_config *cfg)
{
	struct acpi_area a = { .base = area, .gpa = gpa, .cap = cap };
	uint64_t rsdp_gpa = 0, tables[3], rsdt, xsdt;
	uint8_t *rsdp;

	if (cfg->ncpus == 0 || cfg->ncpus > ACPI_MAX_CPUS || gpa + cap > 0x100000000ull)
		return -EINVAL;
	/* The RSDP first, on a 16-byte boundary inside the BIOS area where
	 * OSes that do not get rsdp_paddr scan for it. */
	rsdp = acpi_alloc(&a, 36, &rsdp_gpa);
	uint64_t dsdt = acpi_dsdt(&a);
	uint64_t facs = acpi_facs(&a);

	tables[0] = acpi_fadt(&a, dsdt, facs);
	tables[1] = acpi_madt(&a, cfg->ncpus);
	tables[2] = acpi_mcfg(&a);
	rsdt = acpi_sdt(&a, "RSDT", tables, ARRAY_SIZE(tables), 4);
	xsdt = acpi_sdt(&a, "XSDT", tables, ARRAY_SIZE(tables), 8);
	if (a.full || !rsdp)
		return -E2BIG;
	acpi_rsdp(rsdp, rsdt, xsdt);
	return (int64_t)rsdp_gpa;
}
