/* Unit tests for the ACPI tables (src/arch/x86/acpi.h): the tables are
 * built into a buffer standing for the reserved area at ACPI_BASE, then
 * walked from the RSDP as a guest OS would, checking checksums, lengths,
 * the fixed registers the devices implement, and the MADT per CPU count. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "common/util.h"

#define HDR 36

/* One build of the tables and where each one landed. */
struct tables {
	uint8_t *area;
	uint64_t gpa;
	size_t cap;
	const uint8_t *rsdp, *rsdt, *xsdt, *fadt, *facs, *dsdt, *madt;
	uint64_t rsdp_gpa, facs_gpa;
	size_t end; /* offset one past the last byte used by any table */
};

static uint8_t sum8(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s += b[i];
	return s;
}

/* The host address of a table at gpa of len bytes, or a test failure when
 * it is not inside the area. */
static const uint8_t *at(struct tables *t, uint64_t gpa, size_t len)
{
	if (gpa < t->gpa || !range_within(gpa - t->gpa, len, t->cap))
		fail_msg("table [0x%llx, +%zu) is outside the ACPI area", (unsigned long long)gpa, len);
	t->end = MAX(t->end, (size_t)(gpa - t->gpa + len));
	return t->area + (gpa - t->gpa);
}

/* A table with a standard header: signature, length, checksum. */
static const uint8_t *sdt_at(struct tables *t, uint64_t gpa, const char *sig)
{
	const uint8_t *p = at(t, gpa, HDR);
	uint32_t len = get_le32(p + 4);

	if (memcmp(p, sig, 4))
		fail_msg("table at 0x%llx is \"%.4s\", want \"%s\"", (unsigned long long)gpa, p, sig);
	assert_true(len >= HDR);
	p = at(t, gpa, len);
	if (sum8(p, len) != 0)
		fail_msg("%s checksum: bytes sum to 0x%02x", sig, sum8(p, len));
	assert_memory_equal(p + 10, "FERRY ", 6);
	return p;
}

/* Builds into a fresh area and follows every pointer from the RSDP. */
static void build(struct tables *t, unsigned ncpus)
{
	struct acpi_config cfg = { .ncpus = ncpus };
	int64_t rsdp;
	const uint8_t *p;

	memset(t, 0, sizeof(*t));
	t->cap = ACPI_SIZE;
	t->gpa = ACPI_BASE;
	t->area = malloc(t->cap);
	assert_non_null(t->area);
	memset(t->area, 0xa5, t->cap); /* the tables must not rely on zeroed memory */
	rsdp = acpi_build(t->area, t->gpa, t->cap, &cfg);
	assert_true(rsdp > 0);
	t->rsdp_gpa = (uint64_t)rsdp;
	t->rsdp = p = at(t, t->rsdp_gpa, 36);
	t->rsdt = sdt_at(t, get_le32(p + 16), "RSDT");
	t->xsdt = sdt_at(t, get_le64(p + 24), "XSDT");
	t->fadt = sdt_at(t, get_le64(t->xsdt + HDR), "FACP");
	t->madt = sdt_at(t, get_le64(t->xsdt + HDR + 8), "APIC");
	t->dsdt = sdt_at(t, get_le64(t->fadt + 140), "DSDT");
	t->facs_gpa = get_le64(t->fadt + 132);
	t->facs = at(t, t->facs_gpa, 64);
}

static void unbuild(struct tables *t)
{
	free(t->area);
}

static const unsigned cpu_counts[] = { 1, 2, 4, 255 };

/* --- RSDP, RSDT, XSDT ---------------------------------------------------- */

static void test_rsdp(void **state)
{
	struct tables t;

	(void)state;
	build(&t, 1);
	assert_memory_equal(t.rsdp, "RSD PTR ", 8);
	assert_int_equal(sum8(t.rsdp, 20), 0);
	assert_int_equal(sum8(t.rsdp, 36), 0);
	assert_int_equal(t.rsdp[15], 2);
	assert_int_equal(get_le32(t.rsdp + 20), 36);
	assert_memory_equal(t.rsdp + 9, "FERRY ", 6);
	assert_memory_equal(t.rsdp + 33, ((uint8_t[3]){ 0 }), 3);
	/* Where an OS without rsdp_paddr scans: 16-byte aligned in the BIOS
	 * area below 1 MiB. */
	assert_true(t.rsdp_gpa % 16 == 0);
	assert_true(t.rsdp_gpa >= 0xe0000 && t.rsdp_gpa + 36 <= 0x100000);
	unbuild(&t);
}

static void test_rsdt_xsdt(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cpu_counts); i++) {
		struct tables t;

		build(&t, cpu_counts[i]);
		assert_int_equal(get_le32(t.rsdt + 4), HDR + 2 * 4);
		assert_int_equal(get_le32(t.xsdt + 4), HDR + 2 * 8);
		assert_int_equal(t.rsdt[8], 1);
		assert_int_equal(t.xsdt[8], 1);
		/* The same two tables, in the same order, in both. */
		for (unsigned j = 0; j < 2; j++)
			assert_int_equal(get_le32(t.rsdt + HDR + 4 * j), get_le64(t.xsdt + HDR + 8 * j));
		unbuild(&t);
	}
}

/* --- FADT, FACS, DSDT ---------------------------------------------------- */

/* A Generic Address Structure for an I/O port. */
static void check_gas_io(const uint8_t *g, unsigned bits, uint16_t port)
{
	assert_int_equal(g[0], 1); /* system I/O */
	assert_int_equal(g[1], bits);
	assert_int_equal(g[2], 0);
	assert_true(g[3] >= 1 && g[3] <= 4 && (8u << (g[3] - 1)) <= bits);
	assert_int_equal(get_le64(g + 4), port);
}

static void test_fadt(void **state)
{
	struct tables t;
	const uint8_t *f;
	uint32_t flags;

	(void)state;
	build(&t, 2);
	f = t.fadt;
	assert_int_equal(get_le32(f + 4), 276);
	assert_int_equal(f[8], 6);
	/* 32-bit and 64-bit pointers agree. */
	assert_int_equal(get_le32(f + 36), t.facs_gpa);
	assert_int_equal(get_le32(f + 40), get_le64(f + 140));
	assert_int_equal(get_le16(f + 46), IRQ_SCI);
	assert_int_equal(get_le16(f + 46), 9);
	assert_int_equal(get_le32(f + 48), 0); /* SMI_CMD: ACPI mode always on */
	assert_int_equal(get_le32(f + 56), 0x600);
	assert_int_equal(get_le32(f + 60), 0);
	assert_int_equal(get_le32(f + 64), 0x604);
	assert_int_equal(get_le32(f + 76), 0x608);
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	assert_int_equal(f[108], 0x32); /* century: the RTC implements it */
	assert_true(get_le16(f + 109) & 0x2); /* 8042 present */
	flags = get_le32(f + 112);
	assert_true(flags & (1u << 8));  /* 32-bit PM timer */
	assert_true(flags & (1u << 10)); /* RESET_REG_SUP */
	assert_false(flags & (1u << 20)); /* not hardware-reduced */
	check_gas_io(f + 116, 8, 0xcf9);
	assert_int_equal(f[128], 6);
	check_gas_io(f + 148, 32, 0x600);
	check_gas_io(f + 172, 16, 0x604);
	check_gas_io(f + 208, 32, 0x608);
	/* No PM1b, PM2 or GPE blocks. */
	assert_int_equal(get_le64(f + 160 + 4), 0);
	assert_int_equal(get_le64(f + 184 + 4), 0);
	assert_int_equal(get_le64(f + 220 + 4), 0);
	unbuild(&t);
}

static void test_facs(void **state)
{
	struct tables t;

	(void)state;
	build(&t, 1);
	assert_memory_equal(t.facs, "FACS", 4);
	assert_int_equal(get_le32(t.facs + 4), 64);
	assert_int_equal(t.facs[32], 2);
	assert_int_equal(get_le32(t.facs + 12), 0); /* no waking vector */
	unbuild(&t);
}

/* ACPI 6.5 §5.2.10: "The platform boot firmware aligns the FACS on a
 * 64-byte boundary". */
static void test_facs_aligned(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cpu_counts); i++) {
		struct tables t;

		build(&t, cpu_counts[i]);
		unbuild(&t);
		if (t.facs_gpa % 64)
			fail_msg("ncpus %u: FACS at 0x%llx is not 64-byte aligned", cpu_counts[i],
				 (unsigned long long)t.facs_gpa);
	}
}

static void test_dsdt_s5(void **state)
{
	static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
				      0x0a, ACPI_SLP_TYP_S5, 0x0a, ACPI_SLP_TYP_S5, 0x00, 0x00 };
	struct tables t;
	uint32_t len;
	bool found = false;

	(void)state;
	build(&t, 1);
	len = get_le32(t.dsdt + 4);
	assert_int_equal(t.dsdt[8], 2);
	assert_int_equal(len, HDR + sizeof(s5));
	for (uint32_t off = HDR; off + sizeof(s5) <= len; off++)
		found |= !memcmp(t.dsdt + off, s5, sizeof(s5));
	assert_true(found);
	assert_int_equal(ACPI_SLP_TYP_S5, 5);
	unbuild(&t);
}

/* --- MADT ---------------------------------------------------------------- */

static void check_madt(const uint8_t *m, unsigned ncpus)
{
	uint32_t len = get_le32(m + 4);
	unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;
	bool irq0 = false, irq9 = false;

	assert_int_equal(len, HDR + 8 + 8 * ncpus + 12 + 2 * 10 + 6);
	assert_int_equal(get_le32(m + 36), LAPIC_ADDR);
	assert_int_equal(get_le32(m + 40), 1); /* PCAT_COMPAT */
	for (uint32_t off = HDR + 8; off < len;) {
		const uint8_t *e = m + off;

		assert_true(off + 2 <= len);
		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], lapics); /* UID */
			assert_int_equal(e[3], lapics); /* APIC ID = index */
			assert_int_equal(get_le32(e + 4), 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(get_le32(e + 4), IOAPIC_ADDR);
			assert_int_equal(get_le32(e + 4), 0xfec00000u);
			assert_int_equal(get_le32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0); /* ISA */
			if (e[3] == 0) {
				assert_int_equal(get_le32(e + 4), 2);
				irq0 = true;
			} else if (e[3] == 9) {
				assert_int_equal(get_le32(e + 4), 9);
				assert_int_equal(get_le16(e + 8) & 3, 1);        /* active high */
				assert_int_equal((get_le16(e + 8) >> 2) & 3, 3); /* level */
				irq9 = true;
			} else {
				fail_msg("unexpected override for IRQ %u", e[3]);
			}
			isos++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff);
			assert_int_equal(e[5], 1); /* LINT1 */
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
		if (off == len)
			break;
	}
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 2);
	assert_int_equal(nmis, 1);
	assert_true(irq0 && irq9);
}

static void test_madt(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cpu_counts); i++) {
		struct tables t;

		build(&t, cpu_counts[i]);
		check_madt(t.madt, cpu_counts[i]);
		unbuild(&t);
	}
}

/* --- the whole set ------------------------------------------------------- */

/* Every table inside the area, 16-byte aligned, no two overlapping. */
static void test_layout(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cpu_counts); i++) {
		struct tables t;
		struct {
			const uint8_t *p;
			size_t len;
		} all[7];

		build(&t, cpu_counts[i]);
		all[0].p = t.rsdp, all[0].len = 36;
		all[1].p = t.rsdt, all[1].len = get_le32(t.rsdt + 4);
		all[2].p = t.xsdt, all[2].len = get_le32(t.xsdt + 4);
		all[3].p = t.fadt, all[3].len = get_le32(t.fadt + 4);
		all[4].p = t.madt, all[4].len = get_le32(t.madt + 4);
		all[5].p = t.dsdt, all[5].len = get_le32(t.dsdt + 4);
		all[6].p = t.facs, all[6].len = 64;
		for (unsigned a = 0; a < 7; a++) {
			assert_true((size_t)(all[a].p - t.area) % 16 == 0);
			for (unsigned b = a + 1; b < 7; b++)
				assert_false(all[a].p < all[b].p + all[b].len &&
					     all[b].p < all[a].p + all[a].len);
		}
		unbuild(&t);
	}
}

/* The tables depend on nothing but the config: two builds are equal. */
static void test_deterministic(void **state)
{
	struct tables a, b;

	(void)state;
	build(&a, 4);
	build(&b, 4);
	assert_int_equal(a.end, b.end);
	assert_memory_equal(a.area, b.area, a.end);
	unbuild(&a);
	unbuild(&b);
}

static void test_bad_cpu_counts(void **state)
{
	static uint8_t area[ACPI_SIZE];

	(void)state;
	assert_int_equal(acpi_build(area, ACPI_BASE, sizeof(area), &(struct acpi_config){ 0 }),
			 -EINVAL);
	assert_int_equal(acpi_build(area, ACPI_BASE, sizeof(area), &(struct acpi_config){ 256 }),
			 -EINVAL);
	assert_int_equal(acpi_build(area, ACPI_BASE, sizeof(area),
				    &(struct acpi_config){ ACPI_MAX_CPUS }), ACPI_BASE);
	/* The guest must see all of the area below 4 GiB (32-bit RSDT). */
	assert_int_equal(acpi_build(area, 0x100000000ull - sizeof(area) + 1, sizeof(area),
				    &(struct acpi_config){ 1 }), -EINVAL);
}

/* Every area smaller than what the tables need is refused, and writes stay
 * inside it; the exact size works. */
static void test_area_too_small(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cpu_counts); i++) {
		struct acpi_config cfg = { .ncpus = cpu_counts[i] };
		struct tables t;
		size_t need;

		build(&t, cpu_counts[i]);
		need = t.end;
		unbuild(&t);
		for (size_t cap = 0; cap <= need; cap++) {
			/* Exactly cap bytes on the heap: ASan sees any overflow. */
			uint8_t *area = malloc(cap ? cap : 1);
			int64_t ret = acpi_build(area, ACPI_BASE, cap, &cfg);

			if (cap < need && ret != -E2BIG)
				fail_msg("ncpus %u, %zu-byte area: got %lld, want -E2BIG", cfg.ncpus,
					 cap, (long long)ret);
			if (cap == need && ret != (int64_t)ACPI_BASE)
				fail_msg("ncpus %u, %zu-byte area: got %lld", cfg.ncpus, cap,
					 (long long)ret);
			free(area);
		}
	}
}

static void test_checksum(void **state)
{
	uint8_t b[64] = { 0 };

	(void)state;
	assert_int_equal(acpi_checksum(b, 0), 0);
	for (unsigned i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 37 + 1);
	b[17] = 0;
	b[17] = acpi_checksum(b, sizeof(b));
	assert_int_equal(sum8(b, sizeof(b)), 0);
	assert_int_equal(acpi_checksum((uint8_t[]){ 0xff }, 1), 1);
	assert_int_equal(acpi_checksum((uint8_t[]){ 0x80, 0x80 }, 2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsdp),
		cmocka_unit_test(test_rsdt_xsdt),
		cmocka_unit_test(test_fadt),
		cmocka_unit_test(test_facs),
		cmocka_unit_test(test_facs_aligned),
		cmocka_unit_test(test_dsdt_s5),
		cmocka_unit_test(test_madt),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_bad_cpu_counts),
		cmocka_unit_test(test_area_too_small),
		cmocka_unit_test(test_checksum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
