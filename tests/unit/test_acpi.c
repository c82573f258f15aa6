/* Unit tests for the ACPI tables (src/arch/x86/acpi.h): the tables are
 * built into a buffer standing for the reserved area at ACPI_BASE, then
 * walked from the RSDP as a guest OS would, checking checksums, lengths,
 * the fixed registers the devices implement, and the MADT per CPU count.
 * The DSDT is read back with a small AML reader of its own (names, scopes,
 * devices, integers, buffers, packages; resource templates), which also
 * checks the AML encoder (src/arch/x86/aml.h) form by form.
 *
 * FERRY_ACPI_DUMP=DIR writes the tables to DIR/<signature>.dat, for
 * `iasl -d` and `acpiexec`. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "common/util.h"
#include "devices/pci.h"
#include "vm/memory.h"

#define HDR 36

/* One build of the tables and where each one landed. */
struct tables {
	uint8_t *area;
	uint64_t gpa;
	size_t cap;
	const uint8_t *rsdp, *rsdt, *xsdt, *fadt, *facs, *dsdt, *madt, *mcfg;
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
	t->mcfg = sdt_at(t, get_le64(t->xsdt + HDR + 16), "MCFG");
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
		assert_int_equal(get_le32(t.rsdt + 4), HDR + 3 * 4);
		assert_int_equal(get_le32(t.xsdt + 4), HDR + 3 * 8);
		assert_int_equal(t.rsdt[8], 1);
		assert_int_equal(t.xsdt[8], 1);
		/* The same three tables, in the same order, in both. */
		for (unsigned j = 0; j < 3; j++)
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
	assert_false(flags & (1u << 4)); /* PWR_BUTTON clear: a fixed-feature power button */
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

/* --- AML: a reader for the subset the DSDT uses ------------------------ */

/* A named object the reader found: its absolute path and its value. */
struct aml_obj {
	char path[48]; /* "\\_SB_.PCI0._HID": segments padded to 4 */
	enum { OBJ_INT, OBJ_BUFFER, OBJ_PACKAGE, OBJ_DEVICE } kind;
	uint64_t value;      /* OBJ_INT; OBJ_PACKAGE: NumElements */
	const uint8_t *enc;  /* OBJ_INT: its encoding, prefix included */
	size_t enc_len;
	const uint8_t *data; /* OBJ_BUFFER: the bytes; OBJ_PACKAGE: the elements */
	size_t len;
};

struct aml_doc {
	struct aml_obj obj[32];
	unsigned n;
};

/* A PkgLength at p: its value; *width gets the bytes it takes. */
static size_t read_pkglen(const uint8_t *p, const uint8_t *end, unsigned *width)
{
	unsigned k;
	size_t v;

	assert_true(p < end);
	k = (p[0] >> 6) + 1;
	assert_true(p + k <= end);
	*width = k;
	if (k == 1)
		return p[0] & 0x3f;
	assert_int_equal(p[0] & 0x30, 0); /* bits 5:4 are reserved in the long forms */
	v = p[0] & 0xf;
	for (unsigned i = 1; i < k; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

/* The end of a term whose PkgLength starts at p, checked against end. */
static const uint8_t *pkg_end(const uint8_t *p, const uint8_t *end, unsigned *width)
{
	size_t len = read_pkglen(p, end, width);

	if (len < *width || len > (size_t)(end - p))
		fail_msg("PkgLength %zu at %p overruns its parent (%td bytes left)", len, (void *)p,
			 end - p);
	return p + len;
}

/* An integer constant at p; returns its encoded length. */
static size_t read_int(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	static const struct {
		uint8_t op;
		unsigned bytes;
	} forms[] = { { 0x0a, 1 }, { 0x0b, 2 }, { 0x0c, 4 }, { 0x0e, 8 } };

	assert_true(p < end);
	if (p[0] <= 1) {
		*v = p[0];
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		if (p[0] != forms[i].op)
			continue;
		assert_true(p + 1 + forms[i].bytes <= end);
		*v = 0;
		for (unsigned b = 0; b < forms[i].bytes; b++)
			*v |= (uint64_t)p[1 + b] << (8 * b);
		return 1 + forms[i].bytes;
	}
	fail_msg("not an integer: opcode 0x%02x", p[0]);
	return 0;
}

static bool name_char(uint8_t c, bool lead)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!lead && c >= '0' && c <= '9');
}

/* A NameString at p, resolved against scope into path; returns its length. */
static size_t read_name(const uint8_t *p, const uint8_t *end, const char *scope, char *path,
			size_t size)
{
	const uint8_t *q = p;
	unsigned segs = 1;

	snprintf(path, size, "%s", scope);
	if (*q == '\\')
		snprintf(path, size, "\\"), q++;
	for (; q < end && *q == '^'; q++) {
		char *dot = strrchr(path, '.');

		assert_true(strcmp(path, "\\") != 0);
		if (dot)
			*dot = 0;
		else
			snprintf(path, size, "\\");
	}
	assert_true(q < end);
	if (*q == 0x00)
		return (size_t)(q + 1 - p);
	if (*q == 0x2e)
		segs = 2, q++;
	else if (*q == 0x2f && q + 1 < end)
		segs = q[1], q += 2;
	for (unsigned i = 0; i < segs; i++, q += 4) {
		size_t n = strlen(path);

		assert_true(q + 4 <= end);
		for (unsigned c = 0; c < 4; c++)
			if (!name_char(q[c], c == 0))
				fail_msg("bad NameSeg character 0x%02x", q[c]);
		assert_true(n + 6 <= size);
		snprintf(path + n, size - n, "%s%.4s", strcmp(path, "\\") ? "." : "", q);
	}
	return (size_t)(q - p);
}

static struct aml_obj *new_obj(struct aml_doc *d, const char *path)
{
	struct aml_obj *o;

	assert_true(d->n < ARRAY_SIZE(d->obj));
	o = &d->obj[d->n++];
	memset(o, 0, sizeof(*o));
	snprintf(o->path, sizeof(o->path), "%s", path);
	return o;
}

/* The data object of Name () at p: an integer, Buffer or Package (of
 * integers). Returns the end of it. */
static const uint8_t *read_data(struct aml_obj *o, const uint8_t *p, const uint8_t *end)
{
	const uint8_t *e, *q;
	unsigned w;
	uint64_t v;

	if (p[0] == 0x11 || p[0] == 0x12) {
		e = pkg_end(p + 1, end, &w);
		q = p + 1 + w;
		if (p[0] == 0x11) {
			o->kind = OBJ_BUFFER;
			q += read_int(q, e, &v);
			o->data = q, o->len = (size_t)(e - q);
			assert_int_equal(v, o->len); /* BufferSize = the initializer's length */
			return e;
		}
		o->kind = OBJ_PACKAGE;
		assert_true(q < e);
		o->value = *q++;
		o->data = q, o->len = (size_t)(e - q);
		for (unsigned i = 0; i < o->value; i++)
			q += read_int(q, e, &v);
		assert_ptr_equal(q, e); /* exactly NumElements integers */
		return e;
	}
	o->kind = OBJ_INT;
	o->enc = p;
	o->enc_len = read_int(p, end, &o->value);
	return p + o->enc_len;
}

/* A TermList of Name, Scope and Device terms, [p, end), inside scope. */
static void read_terms(struct aml_doc *d, const uint8_t *p, const uint8_t *end, const char *scope)
{
	char path[48];
	unsigned w;

	while (p < end) {
		const uint8_t *e;
		struct aml_obj *o;

		switch (p[0]) {
		case 0x08: /* NameOp */
			p += 1 + read_name(p + 1, end, scope, path, sizeof(path));
			p = read_data(new_obj(d, path), p, end);
			break;
		case 0x10: /* ScopeOp */
			e = pkg_end(p + 1, end, &w);
			p += 1 + w;
			p += read_name(p, e, scope, path, sizeof(path));
			read_terms(d, p, e, path);
			p = e;
			break;
		case 0x5b: /* DeviceOp */
			assert_true(p + 2 < end && p[1] == 0x82);
			e = pkg_end(p + 2, end, &w);
			p += 2 + w;
			p += read_name(p, e, scope, path, sizeof(path));
			o = new_obj(d, path);
			o->kind = OBJ_DEVICE;
			read_terms(d, p, e, path);
			p = e;
			break;
		default:
			fail_msg("unexpected AML opcode 0x%02x in %s", p[0], scope);
		}
	}
}

static const struct aml_obj *find(const struct aml_doc *d, const char *path)
{
	for (unsigned i = 0; i < d->n; i++)
		if (!strcmp(d->obj[i].path, path))
			return &d->obj[i];
	return NULL;
}

static const struct aml_obj *find_int(const struct aml_doc *d, const char *path)
{
	const struct aml_obj *o = find(d, path);

	if (!o || o->kind != OBJ_INT)
		fail_msg("%s: no such integer", path);
	return o;
}

/* The DSDT's definition block, read whole. */
static void read_dsdt(struct aml_doc *d, const uint8_t *dsdt)
{
	memset(d, 0, sizeof(*d));
	read_terms(d, dsdt + HDR, dsdt + get_le32(dsdt + 4), "\\");
}

/* --- resource templates -------------------------------------------------- */

/* One resource descriptor, decoded. */
struct res {
	uint8_t tag;    /* 0x47 IO; 0x88/0x87/0x8a Word/DWord/QWord Address Space;
			 * 0x86 Memory32Fixed (tflags: read/write; min, len) */
	uint8_t type;   /* address space: 0 memory, 1 I/O, 2 bus numbers */
	uint8_t gflags; /* address space: general flags */
	uint8_t tflags; /* address space: type-specific flags; IO: information */
	uint64_t gran, min, max, tra, len; /* IO: gran is the alignment */
};

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Walks a resource template as an OS does (ACPI 6.5 §6.4): every item
 * inside the buffer, an End Tag last with a checksum that makes the whole
 * template sum to zero. Returns the number of descriptors before the tag. */
static unsigned read_resources(const uint8_t *p, size_t len, struct res *out, unsigned max)
{
	unsigned n = 0;

	for (size_t off = 0;;) {
		const uint8_t *d = p + off;
		struct res *r = &out[n];
		size_t item, body, w;

		assert_true(off < len);
		if (!(d[0] & 0x80)) { /* small item */
			body = d[0] & 7;
			item = 1 + body;
			assert_true(item <= len - off);
			if (d[0] >> 3 == 0x0f) { /* End Tag */
				assert_int_equal(body, 1);
				assert_int_equal(off + item, len);
				assert_int_equal(sum8(p, len), 0);
				return n;
			}
			assert_int_equal(d[0], 0x47); /* the only small item we write: IO */
			assert_true(n < max);
			*r = (struct res){ .tag = d[0], .tflags = d[1], .min = le(d + 2, 2),
					   .max = le(d + 4, 2), .gran = d[6], .len = d[7] };
		} else {
			assert_true(off + 3 <= len);
			body = le(d + 1, 2);
			item = 3 + body;
			assert_true(item <= len - off);
			if (d[0] == 0x86) { /* Memory32Fixed */
				assert_int_equal(body, 9);
				assert_true(n < max);
				*r = (struct res){ .tag = d[0], .tflags = d[3], .min = le(d + 4, 4),
						   .len = le(d + 8, 4) };
				r->max = r->min + r->len - 1;
				n++;
				off += item;
				continue;
			}
			w = d[0] == 0x88 ? 2 : d[0] == 0x87 ? 4 : d[0] == 0x8a ? 8 : 0;
			if (!w)
				fail_msg("unexpected large resource item 0x%02x", d[0]);
			assert_true(body >= 3 + 5 * w);
			assert_true(n < max);
			*r = (struct res){ .tag = d[0], .type = d[3], .gflags = d[4],
					   .tflags = d[5], .gran = le(d + 6, w),
					   .min = le(d + 6 + w, w), .max = le(d + 6 + 2 * w, w),
					   .tra = le(d + 6 + 3 * w, w), .len = le(d + 6 + 4 * w, w) };
		}
		n++;
		off += item;
	}
}

/* --- DSDT ---------------------------------------------------------------- */

/* With FERRY_ACPI_DUMP=DIR set, the tables land in DIR/<signature>.dat,
 * for `iasl -d` or acpidump-style tools. */
static void dump_tables(const struct tables *t)
{
	const char *dir = getenv("FERRY_ACPI_DUMP");
	const uint8_t *all[] = { t->rsdt, t->xsdt, t->fadt, t->facs, t->dsdt, t->madt, t->mcfg };

	if (!dir)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path), "%s/%.4s.dat", dir, all[i]);
		f = fopen(path, "wb");
		if (!f)
			fail_msg("%s: %s", path, strerror(errno));
		assert_int_equal(fwrite(all[i], get_le32(all[i] + 4), 1, f), 1);
		fclose(f);
	}
}

/* The DSDT reads as a whole: every term inside its parent, nothing left
 * over, and nothing but what ferry means to declare. */
static void test_dsdt_terms(void **state)
{
	static const char *const names[] = {
		"\\_S5_", "\\_SB_.PCI0", "\\_SB_.PCI0._HID", "\\_SB_.PCI0._ADR", "\\_SB_.PCI0._UID",
		"\\_SB_.PCI0._BBN", "\\_SB_.PCI0._SEG", "\\_SB_.PCI0._CRS", "\\_SB_.PCI0.ECAM",
		"\\_SB_.PCI0.ECAM._HID", "\\_SB_.PCI0.ECAM._CRS",
	};
	struct tables t;
	struct aml_doc d;

	(void)state;
	build(&t, 1);
	dump_tables(&t);
	assert_int_equal(t.dsdt[8], 2); /* revision 2: 64-bit integers */
	assert_int_equal(sum8(t.dsdt, get_le32(t.dsdt + 4)), 0);
	read_dsdt(&d, t.dsdt);
	assert_int_equal(d.n, ARRAY_SIZE(names));
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!find(&d, names[i]))
			fail_msg("%s is missing from the DSDT", names[i]);
	unbuild(&t);
}

static void test_dsdt_s5(void **state)
{
	static const uint8_t pkg[] = { 0x0a, ACPI_SLP_TYP_S5, 0x0a, ACPI_SLP_TYP_S5, 0x00, 0x00 };
	struct tables t;
	struct aml_doc d;
	const struct aml_obj *s5;

	(void)state;
	build(&t, 1);
	read_dsdt(&d, t.dsdt);
	s5 = find(&d, "\\_S5_");
	assert_non_null(s5);
	assert_int_equal(s5->kind, OBJ_PACKAGE);
	assert_int_equal(s5->value, 4);
	assert_int_equal(s5->len, sizeof(pkg));
	assert_memory_equal(s5->data, pkg, sizeof(pkg));
	assert_int_equal(ACPI_SLP_TYP_S5, 5);
	unbuild(&t);
}

/* The letters and digits an EISA ID packs into a DWord (stored
 * big-endian: the AML integer of "PNP0A03" is 0x030AD041). */
static void eisaid_string(uint32_t v, char out[8])
{
	uint32_t be = __builtin_bswap32(v);

	for (unsigned i = 0; i < 3; i++)
		out[i] = (char)('@' + ((be >> (26 - 5 * i)) & 0x1f));
	snprintf(out + 3, 5, "%04X", be & 0xffff);
}

static void test_dsdt_pci0(void **state)
{
	static const uint8_t hid[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x03 }; /* as iasl writes it */
	static const char *const zero[] = { "_ADR", "_UID", "_BBN", "_SEG" };
	struct tables t;
	struct aml_doc d;
	const struct aml_obj *o;
	char id[8], path[32];

	(void)state;
	build(&t, 2);
	read_dsdt(&d, t.dsdt);
	o = find(&d, "\\_SB_.PCI0");
	assert_non_null(o);
	assert_int_equal(o->kind, OBJ_DEVICE);
	o = find_int(&d, "\\_SB_.PCI0._HID");
	assert_int_equal(o->enc_len, sizeof(hid));
	assert_memory_equal(o->enc, hid, sizeof(hid));
	assert_int_equal(o->value, 0x030ad041);
	eisaid_string((uint32_t)o->value, id);
	assert_string_equal(id, "PNP0A03");
	for (size_t i = 0; i < ARRAY_SIZE(zero); i++) {
		snprintf(path, sizeof(path), "\\_SB_.PCI0.%s", zero[i]);
		assert_int_equal(find_int(&d, path)->value, 0);
	}
	/* MSI-X only: no INTx routing; no _OSC; the ECAM area from MCFG
	 * (test_mcfg), not _CBA. */
	assert_null(find(&d, "\\_SB_.PCI0._PRT"));
	assert_null(find(&d, "\\_SB_.PCI0._OSC"));
	assert_null(find(&d, "\\_SB_.PCI0._CBA"));
	unbuild(&t);
}

/* MCFG: one allocation, segment 0, bus 0, at the area the VMM decodes. */
static void test_mcfg(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cpu_counts); i++) {
		struct tables t;
		const uint8_t *e;

		build(&t, cpu_counts[i]);
		assert_int_equal(get_le32(t.mcfg + 4), HDR + 8 + 16);
		assert_int_equal(t.mcfg[8], 1);
		for (unsigned j = 0; j < 8; j++)
			assert_int_equal(t.mcfg[HDR + j], 0); /* reserved */
		e = t.mcfg + HDR + 8;
		assert_int_equal(get_le64(e), PCI_ECAM_BASE);
		assert_int_equal(get_le16(e + 8), 0);
		assert_int_equal(e[10], 0);
		assert_int_equal(e[11], 0);
		assert_int_equal(get_le32(e + 12), 0);
		/* 1 MiB per bus, 1 MiB-aligned, outside RAM, the BAR window
		 * and the IOAPIC. */
		assert_int_equal(PCI_ECAM_SIZE, (uint64_t)(e[11] - e[10] + 1) << 20);
		assert_int_equal(PCI_ECAM_BASE % PCI_ECAM_SIZE, 0);
		assert_true(PCI_ECAM_BASE >= PCI_MMIO_END && PCI_ECAM_BASE >= MEM_LOW_LIMIT);
		assert_true(PCI_ECAM_BASE + PCI_ECAM_SIZE <= IOAPIC_ADDR);
		unbuild(&t);
	}
}

/* PCI0.ECAM reserves the MCFG area as a motherboard resource. */
static void test_dsdt_ecam(void **state)
{
	struct tables t;
	struct aml_doc d;
	const struct aml_obj *o;
	struct res got[2];
	char id[8];

	(void)state;
	build(&t, 1);
	read_dsdt(&d, t.dsdt);
	o = find(&d, "\\_SB_.PCI0.ECAM");
	assert_non_null(o);
	assert_int_equal(o->kind, OBJ_DEVICE);
	eisaid_string((uint32_t)find_int(&d, "\\_SB_.PCI0.ECAM._HID")->value, id);
	assert_string_equal(id, "PNP0C02");
	o = find(&d, "\\_SB_.PCI0.ECAM._CRS");
	assert_non_null(o);
	assert_int_equal(o->kind, OBJ_BUFFER);
	assert_int_equal(read_resources(o->data, o->len, got, ARRAY_SIZE(got)), 1);
	assert_int_equal(got[0].tag, 0x86);
	assert_int_equal(got[0].tflags, 1); /* read/write */
	assert_int_equal(got[0].min, get_le64(t.mcfg + HDR + 8));
	assert_int_equal(got[0].len, PCI_ECAM_SIZE);
	unbuild(&t);
}

/* _CRS: the windows QEMU's i440fx declares, less VGA and 64-bit memory. */
static void test_dsdt_pci0_crs(void **state)
{
	static const struct res want[] = {
		{ .tag = 0x88, .type = 2, .gflags = 0x0c, .min = 0, .max = 0, .len = 1 },
		{ .tag = 0x47, .tflags = 1, .gran = 1, .min = 0xcf8, .max = 0xcf8, .len = 8 },
		{ .tag = 0x88, .type = 1, .gflags = 0x0c, .tflags = 3, .min = 0, .max = 0xcf7,
		  .len = 0xcf8 },
		{ .tag = 0x88, .type = 1, .gflags = 0x0c, .tflags = 3, .min = 0xd00, .max = 0xffff,
		  .len = 0xf300 },
		{ .tag = 0x87, .type = 0, .gflags = 0x0c, .tflags = 1, .min = 0xc0000000,
		  .max = 0xfeafffff, .len = 0x3eb00000 },
	};
	static const uint16_t legacy[] = { PORT_COM1, PORT_I8042_DATA, PORT_I8042_CMD, PORT_RTC,
					   PORT_ACPI_PM, PORT_ACPI_PM_TMR + 3 };
	struct res got[8];
	struct tables t;
	struct aml_doc d;
	const struct aml_obj *crs;
	unsigned n;

	(void)state;
	build(&t, 1);
	read_dsdt(&d, t.dsdt);
	crs = find(&d, "\\_SB_.PCI0._CRS");
	assert_non_null(crs);
	assert_int_equal(crs->kind, OBJ_BUFFER);
	n = read_resources(crs->data, crs->len, got, ARRAY_SIZE(got));
	assert_int_equal(n, ARRAY_SIZE(want));
	for (unsigned i = 0; i < n; i++) {
		const struct res *g = &got[i], *w = &want[i];

		if (g->tag != w->tag || g->type != w->type || g->gflags != w->gflags ||
		    g->tflags != w->tflags || g->gran != w->gran || g->min != w->min ||
		    g->max != w->max || g->tra != w->tra || g->len != w->len)
			fail_msg("_CRS item %u: tag 0x%02x type %u flags 0x%02x/0x%02x "
				 "[0x%llx, 0x%llx] len 0x%llx gran %llu tra %llu", i, g->tag,
				 g->type, g->gflags, g->tflags, (unsigned long long)g->min,
				 (unsigned long long)g->max, (unsigned long long)g->len,
				 (unsigned long long)g->gran, (unsigned long long)g->tra);
		/* A window with fixed bounds spans exactly its length. */
		if (g->tag != 0x47)
			assert_int_equal(g->len, g->max - g->min + 1);
	}
	/* The memory window is where the VMM puts the BARs, above the RAM
	 * below 4 GiB and below the IOAPIC. */
	assert_int_equal(got[4].min, PCI_MMIO_BASE);
	assert_int_equal(got[4].max + 1, PCI_MMIO_END);
	assert_true(got[4].min >= MEM_LOW_LIMIT && got[4].max < IOAPIC_ADDR);
	/* The configuration ports, and the legacy ports in the first I/O
	 * window as on a PC. */
	assert_int_equal(got[1].min, PORT_PCI_CONFIG);
	for (size_t i = 0; i < ARRAY_SIZE(legacy); i++)
		assert_true(legacy[i] <= got[2].max);
	unbuild(&t);
}

/* --- the AML encoder ----------------------------------------------------- */

struct aml_case {
	const char *what;
	uint8_t bytes[16];
	size_t len;
};

static void check_bytes(const struct aml *a, const struct aml_case *c)
{
	assert_false(a->error);
	if (a->len != c->len || memcmp(a->buf, c->bytes, c->len))
		fail_msg("%s: %zu bytes, want %zu (first 0x%02x, want 0x%02x)", c->what, a->len,
			 c->len, a->len ? a->buf[0] : 0, c->bytes[0]);
}

static void test_aml_int(void **state)
{
	static const struct {
		uint64_t v;
		struct aml_case want;
	} cases[] = {
		{ 0, { "Zero", { 0x00 }, 1 } },
		{ 1, { "One", { 0x01 }, 1 } },
		{ 2, { "byte", { 0x0a, 0x02 }, 2 } },
		{ 0xff, { "byte max", { 0x0a, 0xff }, 2 } },
		{ 0x100, { "word", { 0x0b, 0x00, 0x01 }, 3 } },
		{ 0xffff, { "word max", { 0x0b, 0xff, 0xff }, 3 } },
		{ 0x10000, { "dword", { 0x0c, 0x00, 0x00, 0x01, 0x00 }, 5 } },
		{ 0xfebfffff, { "dword", { 0x0c, 0xff, 0xff, 0xbf, 0xfe }, 5 } },
		{ 0x100000000ull, { "qword", { 0x0e, 0, 0, 0, 0, 1, 0, 0, 0 }, 9 } },
		{ UINT64_MAX,
		  { "qword max", { 0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9 } },
	};
	uint8_t buf[16];
	struct aml a;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_int(&a, cases[i].v);
		check_bytes(&a, &cases[i].want);
	}
}

static void test_aml_names(void **state)
{
	static const struct aml_case good[] = {
		{ "_S5", { '_', 'S', '5', '_' }, 4 },
		{ "PCI0", { 'P', 'C', 'I', '0' }, 4 },
		{ "\\_SB", { '\\', '_', 'S', 'B', '_' }, 5 },
		{ "\\", { '\\', 0x00 }, 2 },
		{ "^^A", { '^', '^', 'A', '_', '_', '_' }, 6 },
		{ "\\_SB.PCI0", { '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0' }, 10 },
		{ "A.B.C", { 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_' },
		  14 },
	};
	static const char *const bad[] = { "ABCDE", "1ABC", "pci0", "A..B", "A.", ".A", "\\^A",
					   "A-B" };
	uint8_t buf[32];
	struct aml a;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_name_string(&a, good[i].what);
		check_bytes(&a, &good[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_name_string(&a, bad[i]);
		if (!a.error)
			fail_msg("\"%s\" was taken as a name", bad[i]);
	}
}

static void test_aml_eisaid(void **state)
{
	static const struct aml_case good[] = {
		{ "PNP0A03", { 0x0c, 0x41, 0xd0, 0x0a, 0x03 }, 5 },
		{ "PNP0C0F", { 0x0c, 0x41, 0xd0, 0x0c, 0x0f }, 5 },
		{ "QEM0001", { 0x0c, 0x44, 0xad, 0x00, 0x01 }, 5 },
	};
	static const char *const bad[] = { "PNP0A0", "PNP0A033", "pnp0a03", "PNP0a03", "PN10A03",
					   "PNP0A0G" };
	uint8_t buf[16];
	struct aml a;
	char id[8];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_eisaid(&a, good[i].what);
		check_bytes(&a, &good[i]);
		eisaid_string((uint32_t)get_le32(buf + 1), id);
		assert_string_equal(id, good[i].what);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_eisaid(&a, bad[i]);
		if (!a.error)
			fail_msg("\"%s\" was taken as an EISA ID", bad[i]);
	}
}

/* PkgLength in all four forms, at every boundary: a Buffer of n bytes
 * carries a PkgLength that counts itself, the BufferSize and the bytes,
 * in the shortest form that holds that. */
static void test_aml_pkglength(void **state)
{
	static const size_t max[] = { 0x3f, 0xfff, 0xfffff, 0xfffffff };
	static const struct {
		size_t from, to;
	} ranges[] = { { 0, 80 }, { 4070, 4100 }, { 0xfffe0, 0x100010 } };
	size_t cap = 0x100010 + 16;
	uint8_t *buf = malloc(cap), *data = malloc(0x100010);
	unsigned forms = 0;

	(void)state;
	assert_non_null(buf);
	assert_non_null(data);
	for (size_t i = 0; i < 0x100010; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (size_t r = 0; r < ARRAY_SIZE(ranges); r++) {
		for (size_t n = ranges[r].from; n <= ranges[r].to; n++) {
			struct aml a;
			unsigned w;
			size_t total, k;
			uint64_t size;

			aml_init(&a, buf, cap);
			aml_buffer(&a, data, n);
			assert_false(a.error);
			assert_int_equal(buf[0], 0x11);
			total = read_pkglen(buf + 1, buf + a.len, &w);
			assert_int_equal(total, a.len - 1);
			assert_true(total <= max[w - 1]);
			if (w > 1 && total - w + (w - 1) <= max[w - 2])
				fail_msg("n %zu: PkgLength %zu took %u bytes, %u would do", n,
					 total, w, w - 1);
			forms |= 1u << (w - 1);
			k = read_int(buf + 1 + w, buf + a.len, &size);
			assert_int_equal(size, n);
			assert_int_equal(1 + w + k + n, a.len);
			assert_memory_equal(buf + 1 + w + k, data, n);
		}
	}
	assert_int_equal(forms, 0xf); /* every form was taken */
	free(buf);
	free(data);
}

/* Terms nested three deep, the contents of each large enough to push its
 * PkgLength and its parents' into longer forms: the marks survive the
 * inner insertions and the reader finds every term where it was put. */
static void test_aml_nesting(void **state)
{
	static const size_t sizes[] = { 0, 30, 60, 100, 4000, 5000 };
	static uint8_t buf[8192], data[5000];
	struct aml a;
	struct aml_doc d;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct aml_mark sb, dev, pkg;
		const struct aml_obj *o;

		aml_init(&a, buf, sizeof(buf));
		sb = aml_scope(&a, "\\_SB");
		dev = aml_device(&a, "DEV0");
		aml_name(&a, "BUF0");
		memset(data, (int)i + 1, sizes[i]);
		aml_buffer(&a, data, sizes[i]);
		aml_name(&a, "PKG0");
		pkg = aml_package(&a, 3);
		aml_int(&a, 0x12345678);
		aml_int(&a, 1);
		aml_int(&a, sizes[i]);
		aml_end(&a, pkg);
		aml_end(&a, dev);
		aml_name_int(&a, "^TOP", 7); /* in \_SB, naming \TOP_ */
		aml_end(&a, sb);
		aml_name_int(&a, "LAST", 0xabcd);
		assert_false(a.error);

		memset(&d, 0, sizeof(d));
		read_terms(&d, buf, buf + a.len, "\\");
		assert_int_equal(d.n, 5);
		assert_non_null(find(&d, "\\_SB_.DEV0"));
		o = find(&d, "\\_SB_.DEV0.BUF0");
		assert_non_null(o);
		assert_int_equal(o->kind, OBJ_BUFFER);
		assert_int_equal(o->len, sizes[i]);
		if (sizes[i]) {
			assert_int_equal(o->data[0], i + 1);
			assert_int_equal(o->data[sizes[i] - 1], i + 1);
		}
		o = find(&d, "\\_SB_.DEV0.PKG0");
		assert_non_null(o);
		assert_int_equal(o->kind, OBJ_PACKAGE);
		assert_int_equal(o->value, 3);
		assert_int_equal(find_int(&d, "\\TOP_")->value, 7);
		assert_int_equal(find_int(&d, "\\LAST")->value, 0xabcd);
	}
}

/* A resource template of every descriptor the encoder writes. */
static void sample_template(struct aml *a)
{
	struct aml_mark m = aml_restemplate_begin(a);

	aml_res_word_bus(a, 0, 0xff);
	aml_res_io16(a, 0x60, 0x60, 1, 1);
	aml_res_word_io(a, 0x0d00, 0xffff);
	aml_res_dword_memory(a, AML_MEM_CACHEABLE | AML_MEM_READONLY, 0xa0000, 0xbffff);
	aml_res_dword_memory(a, AML_MEM_NONCACHEABLE | AML_MEM_READWRITE, 0, 0xfffffffe);
	aml_restemplate_end(a, m);
}

static void test_aml_restemplate(void **state)
{
	/* ResourceTemplate () {}: only the End Tag, its checksum 0x87. */
	static const struct aml_case empty = { "empty", { 0x11, 0x05, 0x0a, 0x02, 0x79, 0x87 }, 6 };
	uint8_t buf[256];
	struct aml a;
	struct aml_mark m;
	struct aml_obj o;
	struct res r[8];

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	m = aml_restemplate_begin(&a);
	aml_restemplate_end(&a, m);
	check_bytes(&a, &empty);

	aml_init(&a, buf, sizeof(buf));
	sample_template(&a);
	assert_false(a.error);
	assert_ptr_equal(read_data(&o, buf, buf + a.len), buf + a.len);
	assert_int_equal(o.kind, OBJ_BUFFER);
	assert_int_equal(read_resources(o.data, o.len, r, ARRAY_SIZE(r)), 5);
	assert_int_equal(r[0].len, 0x100);
	assert_int_equal(r[1].len, 1);
	assert_int_equal(r[2].len, 0xf300);
	assert_int_equal(r[3].tflags, 0x02); /* cacheable, read-only */
	assert_int_equal(r[3].len, 0x20000);
	assert_int_equal(r[4].tflags, 0x01); /* non-cacheable, read/write */
	assert_int_equal(r[4].len, 0xffffffff);

	/* Memory32Fixed (ReadWrite, 0xFEB00000, 0x100000), as iasl writes it. */
	static const struct aml_case fixed = {
		"memory32fixed",
		{ 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xb0, 0xfe, 0x00, 0x00, 0x10, 0x00 }, 12
	};
	aml_init(&a, buf, sizeof(buf));
	aml_res_memory32_fixed(&a, 0xfeb00000, 0x100000);
	check_bytes(&a, &fixed);
}

/* Ranges whose length does not fit the descriptor, or that end before
 * they start, are refused. */
static void test_aml_bad_ranges(void **state)
{
	uint8_t buf[64];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_res_word_io(&a, 0x100, 0xff);
	assert_true(a.error);
	aml_init(&a, buf, sizeof(buf));
	aml_res_word_io(&a, 0, 0xffff); /* length 0x10000: 17 bits */
	assert_true(a.error);
	aml_init(&a, buf, sizeof(buf));
	aml_res_dword_memory(&a, 0, 0, 0xffffffff); /* 4 GiB: 33 bits */
	assert_true(a.error);
	aml_init(&a, buf, sizeof(buf));
	aml_res_memory32_fixed(&a, 0xfff00000, 0x100001); /* past 4 GiB */
	assert_true(a.error);
	aml_init(&a, buf, sizeof(buf));
	aml_end(&a, (struct aml_mark){ .at = 1 }); /* a mark from the future */
	assert_true(a.error);
}

/* Every buffer too small for the output sets the error and is never
 * overrun (exactly cap bytes on the heap, for ASan); the exact size works
 * and gives the same bytes. */
static void test_aml_overflow(void **state)
{
	static uint8_t ref[512];
	struct aml a;
	size_t need;

	(void)state;
	aml_init(&a, ref, sizeof(ref));
	sample_template(&a);
	assert_false(a.error);
	need = a.len;
	for (size_t cap = 0; cap <= need; cap++) {
		uint8_t *buf = malloc(cap ? cap : 1);

		aml_init(&a, buf, cap);
		sample_template(&a);
		assert_int_equal(a.error, cap < need);
		assert_true(a.len <= cap);
		if (cap == need)
			assert_memory_equal(buf, ref, need);
		free(buf);
	}
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
		cmocka_unit_test(test_dsdt_terms),
		cmocka_unit_test(test_dsdt_s5),
		cmocka_unit_test(test_dsdt_pci0),
		cmocka_unit_test(test_dsdt_pci0_crs),
		cmocka_unit_test(test_mcfg),
		cmocka_unit_test(test_dsdt_ecam),
		cmocka_unit_test(test_aml_int),
		cmocka_unit_test(test_aml_names),
		cmocka_unit_test(test_aml_eisaid),
		cmocka_unit_test(test_aml_pkglength),
		cmocka_unit_test(test_aml_nesting),
		cmocka_unit_test(test_aml_restemplate),
		cmocka_unit_test(test_aml_bad_ranges),
		cmocka_unit_test(test_aml_overflow),
		cmocka_unit_test(test_madt),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_bad_cpu_counts),
		cmocka_unit_test(test_area_too_small),
		cmocka_unit_test(test_checksum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
