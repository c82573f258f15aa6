#include "arch/x86/aml.h"

#include <string.h>

#include "common/util.h"

/* Opcodes and prefixes (ACPI 6.5 §20.2). */
#define AML_ZERO          0x00
#define AML_ONE           0x01
#define AML_NAME_OP       0x08
#define AML_BYTE_PREFIX   0x0a
#define AML_WORD_PREFIX   0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP      0x10
#define AML_BUFFER_OP     0x11
#define AML_PACKAGE_OP    0x12
#define AML_DUAL_NAME     0x2e
#define AML_MULTI_NAME    0x2f
#define AML_EXT_PREFIX    0x5b
#define AML_DEVICE_OP     0x82 /* after AML_EXT_PREFIX */
#define AML_ROOT_CHAR     '\\'
#define AML_PARENT_CHAR   '^'
#define AML_NULL_NAME     0x00

/* Resource descriptor tags and sizes (§6.4.2, §6.4.3). Small items: type
 * in bits 6:3, length in bits 2:0; large items: 0x80 | type, then a 16-bit
 * length of what follows the 3-byte header. */
#define RES_IO            0x47 /* small type 0x08, 7 bytes */
#define RES_END_TAG       0x79 /* small type 0x0f, 1 byte */
#define RES_MEM32_FIXED   0x86 /* large type 0x06, 9 bytes follow */
#define RES_DWORD_ADDR    0x87
#define RES_WORD_ADDR     0x88
#define RES_ADDR_MEM      0    /* address space resource types */
#define RES_ADDR_IO       1
#define RES_ADDR_BUS      2
/* General flags of a bridge window: _MAF and _MIF set (fixed bounds),
 * positive decode, bit 0 clear = the bridge produces the range. */
#define RES_ADDR_WINDOW   0x0c
#define RES_IO_ENTIRE     0x03 /* _RNG: ISA and non-ISA ports */

/* The largest PkgLength value of each form, 1 to 4 bytes long. */
static const uint32_t pkglen_max[4] = { 0x3f, 0xfff, 0xfffff, 0xfffffff };

void aml_init(struct aml *a, void *buf, size_t cap)
{
	*a = (struct aml){ .buf = buf, .cap = cap };
}

/* Inserts n bytes at offset at, moving what follows up. */
static void aml_insert(struct aml *a, size_t at, const void *p, size_t n)
{
	if (a->error || at > a->len || !range_within(a->len, n, a->cap)) {
		a->error = true;
		return;
	}
	memmove(a->buf + at + n, a->buf + at, a->len - at);
	memcpy(a->buf + at, p, n);
	a->len += n;
}

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	aml_insert(a, a->len, p, n);
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

/* Encodes an integer into out (9 bytes at most); returns its length. */
static size_t aml_int_encode(uint8_t *out, uint64_t v)
{
	unsigned n;

	if (v <= 1) {
		out[0] = v ? AML_ONE : AML_ZERO;
		return 1;
	}
	if (v <= 0xff)
		out[0] = AML_BYTE_PREFIX, n = 1;
	else if (v <= 0xffff)
		out[0] = AML_WORD_PREFIX, n = 2;
	else if (v <= 0xffffffff)
		out[0] = AML_DWORD_PREFIX, n = 4;
	else
		out[0] = AML_QWORD_PREFIX, n = 8;
	for (unsigned i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];

	aml_bytes(a, b, aml_int_encode(b, v));
}

static bool aml_lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

/* One NameSeg of 1-4 characters from s (up to a dot or the end), padded
 * with '_'; returns the characters consumed, 0 when malformed. */
static size_t aml_name_seg(struct aml *a, const char *s)
{
	char seg[4] = { '_', '_', '_', '_' };
	size_t n = 0;

	for (; s[n] && s[n] != '.'; n++) {
		bool ok = n == 0 ? aml_lead_char(s[n])
				 : aml_lead_char(s[n]) || (s[n] >= '0' && s[n] <= '9');

		if (!ok || n == 4)
			return 0;
		seg[n] = s[n];
	}
	if (n)
		aml_bytes(a, seg, 4);
	return n;
}

void aml_name_string(struct aml *a, const char *path)
{
	const char *s = path;
	size_t segs = 0;

	if (*s == AML_ROOT_CHAR)
		aml_byte(a, (uint8_t)*s++);
	else
		while (*s == AML_PARENT_CHAR)
			aml_byte(a, (uint8_t)*s++);
	if (*s)
		for (const char *c = s; c; c = strchr(c + 1, '.'))
			segs++;
	if (segs == 0)
		aml_byte(a, AML_NULL_NAME);
	else if (segs == 2)
		aml_byte(a, AML_DUAL_NAME);
	else if (segs > 2 && segs <= 255)
		aml_bytes(a, (uint8_t[]){ AML_MULTI_NAME, (uint8_t)segs }, 2);
	else if (segs > 255)
		a->error = true;
	for (size_t i = 0; i < segs; i++) {
		size_t n = aml_name_seg(a, s);

		if (n == 0)
			a->error = true;
		if (a->error)
			return;
		s += n + (s[n] == '.');
	}
}

void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, name);
}

void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_name(a, name);
	aml_int(a, v);
}

static int aml_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7) {
		a->error = true;
		return;
	}
	/* Bits 30:16 hold the letters, 5 bits each ('A' = 1); bits 15:0 the
	 * product number; the DWord is stored big-endian. */
	for (unsigned i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			a->error = true;
		v |= (uint32_t)((id[i] - '@') & 0x1f) << (26 - 5 * i);
	}
	for (unsigned i = 3; i < 7; i++) {
		int d = aml_hex_digit(id[i]);

		if (d < 0)
			a->error = true;
		v |= (uint32_t)(d & 0xf) << (4 * (6 - i));
	}
	aml_bytes(a, (uint8_t[]){ AML_DWORD_PREFIX, (uint8_t)(v >> 24), (uint8_t)(v >> 16),
				  (uint8_t)(v >> 8), (uint8_t)v }, 5);
}

/* --- terms with a PkgLength ------------------------------------------------ */

static struct aml_mark aml_open(struct aml *a, bool sized)
{
	return (struct aml_mark){ .at = a->len, .sized = sized };
}

struct aml_mark aml_scope(struct aml *a, const char *path)
{
	struct aml_mark m;

	aml_byte(a, AML_SCOPE_OP);
	m = aml_open(a, false);
	aml_name_string(a, path);
	return m;
}

struct aml_mark aml_device(struct aml *a, const char *path)
{
	struct aml_mark m;

	aml_bytes(a, (uint8_t[]){ AML_EXT_PREFIX, AML_DEVICE_OP }, 2);
	m = aml_open(a, false);
	aml_name_string(a, path);
	return m;
}

struct aml_mark aml_package(struct aml *a, uint8_t count)
{
	struct aml_mark m;

	aml_byte(a, AML_PACKAGE_OP);
	m = aml_open(a, false);
	aml_byte(a, count); /* NumElements */
	return m;
}

struct aml_mark aml_buffer_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	return aml_open(a, true);
}

/* PkgLength counts its own bytes too: n bytes of contents take the first
 * form whose maximum holds n plus the form's own length. The 1-byte form
 * keeps the length in bits 5:0; the longer ones put the count of following
 * bytes in bits 7:6, the low nibble in bits 3:0, the rest in the bytes. */
static void aml_pkglen(struct aml *a, size_t at, size_t n)
{
	uint8_t b[4];
	unsigned k;
	uint32_t total;

	for (k = 1; k <= 4 && n + k > pkglen_max[k - 1]; k++)
		;
	if (k > 4) {
		a->error = true;
		return;
	}
	total = (uint32_t)(n + k);
	if (k == 1) {
		b[0] = (uint8_t)total;
	} else {
		b[0] = (uint8_t)(((k - 1) << 6) | (total & 0xf));
		for (unsigned i = 1; i < k; i++)
			b[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	aml_insert(a, at, b, k);
}

void aml_end(struct aml *a, struct aml_mark m)
{
	uint8_t size[9];
	size_t n;

	if (a->error || m.at > a->len) {
		a->error = true;
		return;
	}
	n = a->len - m.at;
	if (m.sized) {
		size_t k = aml_int_encode(size, n); /* BufferSize */

		aml_insert(a, m.at, size, k);
		n += k;
	}
	aml_pkglen(a, m.at, n);
}

void aml_buffer(struct aml *a, const void *data, size_t n)
{
	struct aml_mark m = aml_buffer_begin(a);

	aml_bytes(a, data, n);
	aml_end(a, m);
}

/* --- resource templates ------------------------------------------------- */

struct aml_mark aml_restemplate_begin(struct aml *a)
{
	return aml_buffer_begin(a);
}

void aml_restemplate_end(struct aml *a, struct aml_mark m)
{
	uint8_t sum = RES_END_TAG;

	if (a->error || m.at > a->len) {
		a->error = true;
		return;
	}
	for (size_t i = m.at; i < a->len; i++)
		sum += a->buf[i];
	aml_bytes(a, (uint8_t[]){ RES_END_TAG, (uint8_t)-sum }, 2);
	aml_end(a, m);
}

void aml_res_io16(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(a, RES_IO);
	aml_byte(a, 1); /* decodes 16 address bits */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_byte(a, align);
	aml_byte(a, len);
}

/* A Word (width 2) or DWord (width 4) Address Space Descriptor of a bridge
 * window [min, max]. */
static void aml_res_window(struct aml *a, unsigned width, uint8_t type, uint8_t type_flags,
			   uint32_t min, uint32_t max)
{
	uint64_t len = (uint64_t)max - min + 1;

	if (max < min || len >> (8 * width)) { /* the length must fit too */
		a->error = true;
		return;
	}
	aml_byte(a, width == 2 ? RES_WORD_ADDR : RES_DWORD_ADDR);
	aml_le(a, 3 + 5 * width, 2); /* what follows this field */
	aml_byte(a, type);
	aml_byte(a, RES_ADDR_WINDOW);
	aml_byte(a, type_flags);
	aml_le(a, 0, width);   /* granularity: none, the bounds are fixed */
	aml_le(a, min, width);
	aml_le(a, max, width);
	aml_le(a, 0, width);   /* translation offset */
	aml_le(a, len, width);
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_window(a, 2, RES_ADDR_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_window(a, 2, RES_ADDR_IO, RES_IO_ENTIRE, min, max);
}

void aml_res_dword_memory(struct aml *a, uint8_t mem_flags, uint32_t min, uint32_t max)
{
	aml_res_window(a, 4, RES_ADDR_MEM, mem_flags & 0x07, min, max);
}

void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	if ((uint64_t)base + len > 0x100000000ull) {
		a->error = true;
		return;
	}
	aml_byte(a, RES_MEM32_FIXED);
	aml_le(a, 9, 2);
	aml_byte(a, AML_MEM_READWRITE);
	aml_le(a, base, 4);
	aml_le(a, len, 4);
}
