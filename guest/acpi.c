/* ACPI table reading; see acpi.h. Checksums are not verified: the tables
 * come from our own VMM or QEMU, and every byte costs ~0.6 us in ring 0. */
#include "acpi.h"
#include "bootinfo.h"
#include "lib.h"

#define ENOENT  2

struct sdt_header {
	char sig[4];
	u32 length;
	u8 revision, checksum;
	char oem_id[6], oem_table_id[8];
	u32 oem_revision, creator_id, creator_revision;
} PACKED;

struct rsdp {
	char sig[8];
	u8 checksum;
	char oem_id[6];
	u8 revision;
	u32 rsdt;
	u32 length;
	u64 xsdt;
} PACKED;

static const void *phys(u64 pa)
{
	return (const void *)(uintptr_t)pa;
}

static bool sig_is(const char *p, const char *sig, size_t n)
{
	return memcmp(p, sig, n) == 0;
}

static const struct rsdp *find_rsdp(u64 hint)
{
	if (hint && sig_is(phys(hint), "RSD PTR ", 8))
		return phys(hint);
	for (u64 pa = 0xe0000; pa < 0x100000; pa += 16)
		if (sig_is(phys(pa), "RSD PTR ", 8))
			return phys(pa);
	return NULL;
}

/* The table with this signature from the XSDT (or the RSDT). */
static const struct sdt_header *find_table(const struct rsdp *rsdp,
					   const char *sig)
{
	bool x = rsdp->revision >= 2 && rsdp->xsdt;
	const struct sdt_header *root = phys(x ? rsdp->xsdt : rsdp->rsdt);
	size_t esz = x ? 8 : 4;
	size_t n = (root->length - sizeof(*root)) / esz;
	const u8 *ent = (const u8 *)(root + 1);

	for (size_t i = 0; i < n; i++) {
		u64 pa = 0;

		memcpy(&pa, ent + i * esz, esz);
		if (pa && sig_is(phys(pa), sig, 4))
			return phys(pa);
	}
	return NULL;
}

static void add_cpu(struct madt_info *m, u32 apic_id)
{
	if (m->ncpus < MADT_MAX_CPUS)
		m->apic_id[m->ncpus++] = apic_id;
}

static void parse_madt(const struct sdt_header *h, struct madt_info *m)
{
	const u8 *p = (const u8 *)h + 44, *end = (const u8 *)h + h->length;
	u32 base32;

	memcpy(&base32, (const u8 *)h + 36, 4);
	m->lapic_base = base32;
	for (; p + 2 <= end && p[1] >= 2; p += p[1]) {
		u32 flags, id;

		switch (p[0]) {
		case 0:         /* Processor Local APIC */
			memcpy(&flags, p + 4, 4);
			if (flags & 1)
				add_cpu(m, p[3]);
			break;
		case 5:         /* Local APIC Address Override */
			memcpy(&m->lapic_base, p + 4, 8);
			break;
		case 9:         /* Processor Local x2APIC */
			memcpy(&id, p + 4, 4);
			memcpy(&flags, p + 8, 4);
			if (flags & 1)
				add_cpu(m, id);
			break;
		}
	}
}

/* An AML integer constant: ZeroOp, OneOp, BytePrefix, or a bare byte. */
static u16 aml_small_int(const u8 *p)
{
	if (*p == 0x0a)
		return p[1];
	if (*p == 0x01)
		return 1;
	return *p == 0xff ? 0 : *p;
}

/* The classic scan: "_S5_" NameOp'd, PackageOp, PkgLength, NumElements,
 * then SLP_TYPa. Horspool-style skipping keeps the ring-0 loop short. */
static void find_s5(const struct sdt_header *dsdt)
{
	const u8 *p = (const u8 *)dsdt;
	u32 len = dsdt->length;

	for (u32 i = sizeof(*dsdt); i + 12 < len;) {
		u8 c = p[i + 3];

		if (c == '_') {
			if (p[i] == '_' && p[i + 1] == 'S' && p[i + 2] == '5' &&
			    p[i + 4] == 0x12) {
				const u8 *q = p + i + 5;

				q += 1 + (*q >> 6);     /* PkgLength */
				q += 1;                 /* NumElements */
				boot.slp_typa = aml_small_int(q);
				boot.s5_found = true;
				return;
			}
			i += 3;
		} else if (c == '5') {
			i += 1;
		} else if (c == 'S') {
			i += 2;
		} else {
			i += 4;
		}
	}
}

static void parse_fadt(const struct sdt_header *f)
{
	const u8 *p = (const u8 *)f;
	u32 pm1a = 0, evt = 0, dsdt32 = 0;
	u64 dsdt = 0;

	memcpy(&dsdt32, p + 40, 4);
	memcpy(&pm1a, p + 64, 4);
	memcpy(&evt, p + 56, 4);                /* PM1a_EVT_BLK */
	dsdt = dsdt32;
	if (f->length >= 148)
		memcpy(&dsdt, p + 140, 8);      /* X_DSDT */
	if (!dsdt)
		dsdt = dsdt32;
	if (!pm1a && f->length >= 184 && p[172] == 1)
		memcpy(&pm1a, p + 176, 4);      /* X_PM1a_CNT_BLK, I/O space */
	if (!evt && f->length >= 160 && p[148] == 1)
		memcpy(&evt, p + 152, 4);       /* X_PM1a_EVT_BLK, I/O space */
	boot.pm1a_cnt = (u16)pm1a;
	boot.pm1a_evt = (u16)evt;
	if (dsdt && sig_is(phys(dsdt), "DSDT", 4))
		find_s5(phys(dsdt));
}

int acpi_init(u64 rsdp_hint, struct madt_info *madt)
{
	const struct rsdp *rsdp = find_rsdp(rsdp_hint);
	const struct sdt_header *h;

	madt->lapic_base = 0xfee00000;
	madt->ncpus = 0;
	if (!rsdp)
		return -ENOENT;
	h = find_table(rsdp, "FACP");
	if (h)
		parse_fadt(h);
	h = find_table(rsdp, "APIC");
	if (!h)
		return -ENOENT;
	parse_madt(h, madt);
	return 0;
}
