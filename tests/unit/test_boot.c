/* Unit tests for the PVH loader (src/arch/x86/boot.h): ELF32/ELF64 images
 * built in memory, a calloc'd stand-in for guest RAM, and the error line
 * each refusal logs (captured from stderr). */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "common/util.h"
#include "devices/pci.h"

#define RAM_SIZE MiB(4)
#define IMG_SIZE 0x2000
#define NOTE_OFF 0x200
#define CODE_OFF 0x1000
#define CODE_LEN 0x100
#define LOAD_ADDR 0x100000
#define LOAD_MEMSZ 0x2000
#define ENTRY 0x100010

/* --- fixtures ------------------------------------------------------------- */

struct seg {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

struct img {
	uint8_t data[IMG_SIZE];
	size_t size;
	bool is64;
	struct seg segs[4];
	unsigned nsegs;
	uint16_t machine;
};

/* Writes the ELF header and program headers for img->segs. */
static void img_write_headers(struct img *im)
{
	uint8_t *d = im->data;

	memcpy(d, ELFMAG, SELFMAG);
	d[EI_CLASS] = im->is64 ? ELFCLASS64 : ELFCLASS32;
	d[EI_DATA] = ELFDATA2LSB;
	d[EI_VERSION] = EV_CURRENT;
	if (im->is64) {
		Elf64_Ehdr eh = { 0 };

		memcpy(eh.e_ident, d, EI_NIDENT);
		eh.e_type = ET_EXEC;
		eh.e_machine = im->machine;
		eh.e_version = EV_CURRENT;
		eh.e_entry = 0x1000000;
		eh.e_phoff = sizeof(Elf64_Ehdr);
		eh.e_ehsize = sizeof(Elf64_Ehdr);
		eh.e_phentsize = sizeof(Elf64_Phdr);
		eh.e_phnum = (uint16_t)im->nsegs;
		memcpy(d, &eh, sizeof(eh));
		for (unsigned i = 0; i < im->nsegs; i++) {
			const struct seg *s = &im->segs[i];
			Elf64_Phdr ph = { .p_type = s->type, .p_offset = s->offset,
					  .p_vaddr = s->paddr, .p_paddr = s->paddr,
					  .p_filesz = s->filesz, .p_memsz = s->memsz,
					  .p_align = 4 };

			memcpy(d + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
		}
	} else {
		Elf32_Ehdr eh = { 0 };

		memcpy(eh.e_ident, d, EI_NIDENT);
		eh.e_type = ET_EXEC;
		eh.e_machine = im->machine;
		eh.e_version = EV_CURRENT;
		eh.e_entry = 0x1000000;
		eh.e_phoff = sizeof(Elf32_Ehdr);
		eh.e_ehsize = sizeof(Elf32_Ehdr);
		eh.e_phentsize = sizeof(Elf32_Phdr);
		eh.e_phnum = (uint16_t)im->nsegs;
		memcpy(d, &eh, sizeof(eh));
		for (unsigned i = 0; i < im->nsegs; i++) {
			const struct seg *s = &im->segs[i];
			Elf32_Phdr ph = { .p_type = s->type, .p_offset = (uint32_t)s->offset,
					  .p_vaddr = (uint32_t)s->paddr,
					  .p_paddr = (uint32_t)s->paddr,
					  .p_filesz = (uint32_t)s->filesz,
					  .p_memsz = (uint32_t)s->memsz, .p_align = 4 };

			memcpy(d + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
		}
	}
}

/* A note (namesz, descsz, type, name, desc) at off; returns its length. */
static size_t put_note(uint8_t *p, const char *name, uint32_t namesz, uint32_t type,
		       const void *desc, uint32_t descsz)
{
	size_t off = 12;

	put_le32(p, namesz);
	put_le32(p + 4, descsz);
	put_le32(p + 8, type);
	memcpy(p + off, name, namesz);
	off += ALIGN_UP(namesz, 4);
	memcpy(p + off, desc, descsz);
	return off + ALIGN_UP(descsz, 4);
}

/* The good image: one PT_NOTE with the PVH entry, one PT_LOAD of CODE_LEN
 * file bytes and a BSS up to LOAD_MEMSZ at 1 MiB. */
static void img_default(struct img *im, bool is64)
{
	uint32_t entry = ENTRY;
	size_t nlen;

	memset(im, 0, sizeof(*im));
	im->size = IMG_SIZE;
	im->is64 = is64;
	im->machine = is64 ? EM_X86_64 : EM_386;
	nlen = put_note(im->data + NOTE_OFF, "Xen", 4, XEN_ELFNOTE_PHYS32_ENTRY, &entry, 4);
	for (unsigned i = 0; i < CODE_LEN; i++)
		im->data[CODE_OFF + i] = (uint8_t)(0x5a ^ i);
	im->segs[0] = (struct seg){ PT_NOTE, NOTE_OFF, 0, nlen, nlen };
	im->segs[1] = (struct seg){ PT_LOAD, CODE_OFF, LOAD_ADDR, CODE_LEN, LOAD_MEMSZ };
	im->nsegs = 2;
	img_write_headers(im);
}

static struct guest_mem mem_new(uint64_t size)
{
	struct guest_mem m = { .memfd = -1, .host = calloc(1, size), .size = size,
			       .low_size = size, .high_size = 0 };

	assert_non_null(m.host);
	return m;
}

/* Captures what the code under test logs on stderr. */
static char log_text[4096];
static int log_saved_fd = -1;
static FILE *log_file;

static void log_capture_begin(void)
{
	fflush(stderr);
	log_file = tmpfile();
	assert_non_null(log_file);
	log_saved_fd = dup(STDERR_FILENO);
	assert_true(log_saved_fd >= 0);
	assert_true(dup2(fileno(log_file), STDERR_FILENO) >= 0);
}

static const char *log_capture_end(void)
{
	size_t n;

	fflush(stderr);
	dup2(log_saved_fd, STDERR_FILENO);
	close(log_saved_fd);
	rewind(log_file);
	n = fread(log_text, 1, sizeof(log_text) - 1, log_file);
	log_text[n] = '\0';
	fclose(log_file);
	return log_text;
}

static unsigned count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* --- pvh_parse: accepted images ----------------------------------------- */

static void check_default_parse(bool is64)
{
	struct img im;
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;

	img_default(&im, is64);
	assert_int_equal(pvh_parse("k", im.data, im.size, &mem, &k), 0);
	assert_int_equal(k.entry, ENTRY);
	assert_int_equal(k.load_low, LOAD_ADDR);
	assert_int_equal(k.load_high, LOAD_ADDR + LOAD_MEMSZ);
	free(mem.host);
}

static void test_parse_elf64(void **state)
{
	(void)state;
	check_default_parse(true);
}

static void test_parse_elf32(void **state)
{
	(void)state;
	check_default_parse(false);
}

static void test_parse_elf32_em_x86_64(void **state)
{
	struct img im;
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;

	(void)state;
	img_default(&im, false);
	im.machine = EM_X86_64;
	img_write_headers(&im);
	assert_int_equal(pvh_parse("k", im.data, im.size, &mem, &k), 0);
	free(mem.host);
}

/* A 64-bit descriptor, after another note, in the second PT_NOTE. */
static void test_parse_note_variants(void **state)
{
	struct img im;
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;
	uint64_t entry = 0x180000;
	uint32_t gnu = 0x1234;
	size_t a, b;

	(void)state;
	img_default(&im, true);
	memset(im.data + NOTE_OFF, 0, 0x100);
	a = put_note(im.data + NOTE_OFF, "GNU", 4, 3, &gnu, 4);
	/* A Xen note of another type first, then the entry. */
	b = put_note(im.data + NOTE_OFF + a, "Xen", 4, 17, &gnu, 4);
	b += put_note(im.data + NOTE_OFF + a + b, "Xen", 4, XEN_ELFNOTE_PHYS32_ENTRY, &entry, 8);
	im.segs[0] = (struct seg){ PT_NOTE, NOTE_OFF, 0, a, a }; /* GNU only */
	im.segs[1] = (struct seg){ PT_LOAD, CODE_OFF, LOAD_ADDR, CODE_LEN, MiB(1) };
	im.segs[2] = (struct seg){ PT_NOTE, NOTE_OFF + a, 0, b, b };
	im.nsegs = 3;
	img_write_headers(&im);
	assert_int_equal(pvh_parse("k", im.data, im.size, &mem, &k), 0);
	assert_int_equal(k.entry, 0x180000);
	assert_int_equal(k.load_high, LOAD_ADDR + MiB(1));
	free(mem.host);
}

/* Several PT_LOADs: the span covers all; empty ones do not count. */
static void test_parse_load_span(void **state)
{
	struct img im;
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;

	(void)state;
	img_default(&im, true);
	im.segs[1] = (struct seg){ PT_LOAD, CODE_OFF, 0x200000, 0x80, 0x1000 };
	im.segs[2] = (struct seg){ PT_LOAD, CODE_OFF + 0x80, 0x180000, 0x80, 0x80 };
	im.segs[3] = (struct seg){ PT_LOAD, 0, 0x10, 0, 0 }; /* empty: ignored */
	im.nsegs = 4;
	img_write_headers(&im);
	assert_int_equal(pvh_parse("k", im.data, im.size, &mem, &k), 0);
	assert_int_equal(k.load_low, 0x180000);
	assert_int_equal(k.load_high, 0x201000);
	free(mem.host);
}

/* Segment ending exactly at the end of RAM and of the file. */
static void test_parse_exact_fit(void **state)
{
	struct img im;
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;

	(void)state;
	img_default(&im, true);
	im.segs[1] = (struct seg){ PT_LOAD, CODE_OFF, RAM_SIZE - 0x1000, IMG_SIZE - CODE_OFF,
				   0x1000 };
	img_write_headers(&im);
	put_le32(im.data + NOTE_OFF + 16, (uint32_t)(RAM_SIZE - 1));
	assert_int_equal(pvh_parse("k", im.data, im.size, &mem, &k), 0);
	assert_int_equal(k.load_high, RAM_SIZE);
	assert_int_equal(k.entry, RAM_SIZE - 1);
	free(mem.host);
}

/* --- pvh_parse: refused images (table-driven) ---------------------------- */

struct bad_case {
	const char *name;
	void (*mutate)(struct img *im);
	const char *msg; /* a piece of the logged line */
};

static void bad_magic(struct img *im) { im->data[1] = 'e'; }
static void bad_tiny(struct img *im) { im->size = 10; }
static void bad_big_endian(struct img *im) { im->data[EI_DATA] = ELFDATA2MSB; }
static void bad_class(struct img *im) { im->data[EI_CLASS] = ELFCLASSNONE; }
static void bad_trunc(struct img *im)
{
	im->size = im->is64 ? sizeof(Elf64_Ehdr) - 1 : sizeof(Elf32_Ehdr) - 1;
}
static void bad_machine(struct img *im) { im->machine = EM_AARCH64; img_write_headers(im); }
static void bad_phentsize(struct img *im)
{
	if (im->is64)
		put_le16(im->data + offsetof(Elf64_Ehdr, e_phentsize), sizeof(Elf32_Phdr));
	else
		put_le16(im->data + offsetof(Elf32_Ehdr, e_phentsize), sizeof(Elf64_Phdr));
}
static void bad_phnum0(struct img *im) { im->nsegs = 0; img_write_headers(im); }
static void bad_phoff(struct img *im)
{
	if (im->is64)
		put_le64(im->data + offsetof(Elf64_Ehdr, e_phoff), IMG_SIZE - 56);
	else
		put_le32(im->data + offsetof(Elf32_Ehdr, e_phoff), IMG_SIZE - 56);
}
static void bad_phoff_wrap(struct img *im)
{
	if (im->is64)
		put_le64(im->data + offsetof(Elf64_Ehdr, e_phoff), UINT64_MAX - 8);
	else
		put_le32(im->data + offsetof(Elf32_Ehdr, e_phoff), UINT32_MAX - 8);
}
static void bad_no_note(struct img *im)
{
	im->segs[0].type = PT_NULL;
	img_write_headers(im);
}
static void bad_note_type(struct img *im) { put_le32(im->data + NOTE_OFF + 8, 17); }
static void bad_note_name(struct img *im) { memcpy(im->data + NOTE_OFF + 12, "Xem", 4); }
static void bad_note_descsz(struct img *im) { put_le32(im->data + NOTE_OFF + 4, 2); }
static void bad_note_namesz(struct img *im)
{
	put_le32(im->data + NOTE_OFF, 0xfffffff0u); /* runs off the segment */
}
static void bad_note_past_file(struct img *im)
{
	im->segs[0].offset = IMG_SIZE - 8;
	img_write_headers(im);
}
static void bad_note_cut(struct img *im)
{
	im->segs[0].filesz = 18; /* descriptor cut short */
	img_write_headers(im);
}
static void bad_no_load(struct img *im)
{
	im->segs[1].type = PT_NULL;
	img_write_headers(im);
}
static void bad_load_empty(struct img *im)
{
	im->segs[1].memsz = im->segs[1].filesz = 0;
	img_write_headers(im);
}
static void bad_load_past_file(struct img *im)
{
	im->segs[1].filesz = IMG_SIZE - CODE_OFF + 1;
	im->segs[1].memsz = 0x10000;
	img_write_headers(im);
}
static void bad_load_offset_wrap(struct img *im)
{
	im->segs[1].offset = UINT64_MAX - 0x10;
	img_write_headers(im);
}
static void bad_filesz_gt_memsz(struct img *im)
{
	im->segs[1].memsz = CODE_LEN - 1;
	img_write_headers(im);
}
static void bad_below_1m(struct img *im)
{
	im->segs[1].paddr = KERNEL_MIN_ADDR - 0x1000;
	img_write_headers(im);
}
static void bad_past_ram(struct img *im)
{
	im->segs[1].paddr = RAM_SIZE - 0x1000;
	im->segs[1].memsz = 0x1001;
	img_write_headers(im);
}
static void bad_paddr_wrap(struct img *im)
{
	im->segs[1].paddr = UINT64_MAX - 0xff;
	img_write_headers(im);
}
static void bad_in_hole(struct img *im)
{
	im->segs[1].paddr = MEM_LOW_LIMIT;
	img_write_headers(im);
}
static void bad_entry_outside(struct img *im)
{
	put_le32(im->data + NOTE_OFF + 16, (uint32_t)RAM_SIZE);
}
static void bad_entry_64bit(struct img *im)
{
	uint64_t entry = MEM_HIGH_BASE + 0x1000;

	put_note(im->data + NOTE_OFF, "Xen", 4, XEN_ELFNOTE_PHYS32_ENTRY, &entry, 8);
	im->segs[0].filesz = im->segs[0].memsz = 24;
	img_write_headers(im);
}

static const struct bad_case bad_cases[] = {
	{ "magic", bad_magic, "not an ELF file" },
	{ "tiny", bad_tiny, "not an ELF file" },
	{ "big-endian", bad_big_endian, "not a little-endian" },
	{ "class", bad_class, "not a little-endian" },
	{ "truncated-ehdr", bad_trunc, "truncated ELF header" },
	{ "machine", bad_machine, "not for x86" },
	{ "phentsize", bad_phentsize, "program headers" },
	{ "phnum-0", bad_phnum0, "program headers" },
	{ "phoff-past-end", bad_phoff, "program headers" },
	{ "phoff-wrap", bad_phoff_wrap, "program headers" },
	{ "no-note", bad_no_note, "not a PVH kernel" },
	{ "note-type", bad_note_type, "not a PVH kernel" },
	{ "note-name", bad_note_name, "not a PVH kernel" },
	{ "note-descsz", bad_note_descsz, "not a PVH kernel" },
	{ "note-namesz", bad_note_namesz, "not a PVH kernel" },
	{ "note-past-file", bad_note_past_file, "not a PVH kernel" },
	{ "note-cut", bad_note_cut, "not a PVH kernel" },
	{ "no-load", bad_no_load, "no loadable segment" },
	{ "load-empty", bad_load_empty, "no loadable segment" },
	{ "load-past-file", bad_load_past_file, "past the end of the file" },
	{ "load-offset-wrap", bad_load_offset_wrap, "past the end of the file" },
	{ "filesz>memsz", bad_filesz_gt_memsz, "0x1000" },
	{ "below-1MiB", bad_below_1m, "below 1 MiB" },
	{ "past-ram", bad_past_ram, "does not fit in guest RAM" },
	{ "paddr-wrap", bad_paddr_wrap, "does not fit in guest RAM" },
	{ "mmio-hole", bad_in_hole, "does not fit in guest RAM" },
	{ "entry-outside-ram", bad_entry_outside, "entry point 0x400000" },
	{ "entry-above-4g", bad_entry_64bit, "entry point" },
};

static void check_bad(bool is64)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct guest_mem mem;
		struct pvh_kernel k;
		struct img im;
		const char *log;
		int ret;

		if (!is64 && (c->mutate == bad_load_offset_wrap || c->mutate == bad_paddr_wrap))
			continue; /* 64-bit values */
		mem = mem_new(RAM_SIZE);
		img_default(&im, is64);
		c->mutate(&im);
		memset(mem.host, 0xcc, 64);
		log_capture_begin();
		ret = pvh_parse("/the/kernel", im.data, im.size, &mem, &k);
		log = log_capture_end();
		if (ret != -ENOEXEC)
			fail_msg("ELF%d %s: pvh_parse() = %d, want -ENOEXEC", is64 ? 64 : 32, c->name,
				 ret);
		if (count_lines(log) != 1 || !strstr(log, ": /the/kernel: ") ||
		    !strstr(log, c->msg))
			fail_msg("ELF%d %s: want one line naming the path and \"%s\", got \"%s\"",
				 is64 ? 64 : 32, c->name, c->msg, log);
		/* pvh_parse does not touch guest memory. */
		for (unsigned j = 0; j < 64; j++)
			assert_int_equal(mem.host[j], 0xcc);
		free(mem.host);
	}
}

static void test_parse_bad_elf64(void **state)
{
	(void)state;
	check_bad(true);
}

static void test_parse_bad_elf32(void **state)
{
	(void)state;
	check_bad(false);
}

/* Every prefix of a good image is refused, never read past. */
static void test_parse_every_truncation(void **state)
{
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;
	struct img im;

	(void)state;
	img_default(&im, true);
	log_capture_begin();
	for (size_t n = 0; n < CODE_OFF + CODE_LEN; n++) {
		/* An exact-size heap copy so ASan sees any overread. */
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, im.data, n);
		if (pvh_parse("k", copy, n, &mem, &k) != -ENOEXEC) {
			log_capture_end();
			fail_msg("a %zu-byte prefix was accepted", n);
		}
		free(copy);
	}
	log_capture_end();
	free(mem.host);
}

/* --- pvh_load ------------------------------------------------------------ */

static void test_load_copies_and_zeroes_bss(void **state)
{
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;
	struct img im;

	(void)state;
	img_default(&im, true);
	memset(mem.host, 0xaa, RAM_SIZE);
	assert_int_equal(pvh_parse("k", im.data, im.size, &mem, &k), 0);
	pvh_load(im.data, im.size, &mem);
	assert_memory_equal(mem.host + LOAD_ADDR, im.data + CODE_OFF, CODE_LEN);
	for (uint64_t a = LOAD_ADDR + CODE_LEN; a < LOAD_ADDR + LOAD_MEMSZ; a++)
		if (mem.host[a] != 0)
			fail_msg("BSS byte at 0x%llx is 0x%02x", (unsigned long long)a, mem.host[a]);
	/* Nothing outside the segment moves. */
	assert_int_equal(mem.host[LOAD_ADDR - 1], 0xaa);
	assert_int_equal(mem.host[LOAD_ADDR + LOAD_MEMSZ], 0xaa);
	assert_int_equal(mem.host[0], 0xaa);
	free(mem.host);
}

static void test_load_elf32(void **state)
{
	struct guest_mem mem = mem_new(RAM_SIZE);
	struct pvh_kernel k;
	struct img im;

	(void)state;
	img_default(&im, false);
	memset(mem.host, 0xaa, RAM_SIZE);
	assert_int_equal(pvh_parse("k", im.data, im.size, &mem, &k), 0);
	pvh_load(im.data, im.size, &mem);
	assert_memory_equal(mem.host + LOAD_ADDR, im.data + CODE_OFF, CODE_LEN);
	assert_int_equal(mem.host[LOAD_ADDR + LOAD_MEMSZ - 1], 0);
	assert_int_equal(mem.host[LOAD_ADDR + LOAD_MEMSZ], 0xaa);
	free(mem.host);
}

/* --- pvh_memmap ---------------------------------------------------------- */

/* Sorted, non-overlapping, RAM only where the guest has RAM, and the
 * fixed boot areas reserved. */
static void check_memmap_invariants(const struct guest_mem *mem, const struct e820_entry *map,
				    unsigned n)
{
	uint64_t ram = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		assert_true(map[i].size > 0);
		assert_true(map[i].type == E820_RAM || map[i].type == E820_RESERVED);
		if (i)
			assert_true(map[i].addr >= map[i - 1].addr + map[i - 1].size);
		if (map[i].type == E820_RAM) {
			assert_true(range_within(map[i].addr, map[i].size, mem->low_size) ||
				    (map[i].addr >= MEM_HIGH_BASE &&
				     range_within(map[i].addr - MEM_HIGH_BASE, map[i].size,
						  mem->high_size)));
			ram += map[i].size;
			/* The ACPI tables and the EBDA are never RAM. */
			assert_false(map[i].addr < ACPI_BASE + ACPI_SIZE &&
				     ACPI_BASE < map[i].addr + map[i].size);
			assert_false(map[i].addr < 0xa0000 && LOWMEM_TOP < map[i].addr + map[i].size);
		}
	}
	assert_true(ram <= mem->size);
	/* The ECAM area is reserved, whatever the RAM. */
	for (i = 0; i < n; i++)
		if (map[i].addr == PCI_ECAM_BASE)
			break;
	assert_true(i < n);
	assert_int_equal(map[i].size, PCI_ECAM_SIZE);
	assert_int_equal(map[i].type, E820_RESERVED);
}

static void test_memmap_low_only(void **state)
{
	struct guest_mem mem = { .memfd = -1, .size = MiB(256), .low_size = MiB(256) };
	struct e820_entry map[BOOT_MEMMAP_MAX];
	unsigned n = pvh_memmap(&mem, map, BOOT_MEMMAP_MAX);

	(void)state;
	assert_int_equal(n, 5);
	assert_int_equal(map[0].addr, 0);
	assert_int_equal(map[0].size, LOWMEM_TOP);
	assert_int_equal(map[0].type, E820_RAM);
	assert_int_equal(map[1].addr, LOWMEM_TOP);
	assert_int_equal(map[1].type, E820_RESERVED);
	assert_int_equal(map[2].addr, ACPI_BASE);
	assert_int_equal(map[2].size, ACPI_SIZE);
	assert_int_equal(map[2].type, E820_RESERVED);
	assert_int_equal(map[3].addr, KERNEL_MIN_ADDR);
	assert_int_equal(map[3].size, MiB(256) - KERNEL_MIN_ADDR);
	assert_int_equal(map[3].type, E820_RAM);
	assert_int_equal(map[4].addr, PCI_ECAM_BASE);
	check_memmap_invariants(&mem, map, n);
}

static void test_memmap_high(void **state)
{
	struct guest_mem mem = { .memfd = -1, .size = GiB(8), .low_size = MEM_LOW_LIMIT,
				 .high_size = GiB(8) - MEM_LOW_LIMIT };
	struct e820_entry map[BOOT_MEMMAP_MAX];
	unsigned n = pvh_memmap(&mem, map, BOOT_MEMMAP_MAX);

	(void)state;
	assert_int_equal(n, 6);
	assert_int_equal(map[3].size, MEM_LOW_LIMIT - KERNEL_MIN_ADDR);
	assert_int_equal(map[4].addr, PCI_ECAM_BASE);
	assert_true(map[3].addr + map[3].size <= PCI_ECAM_BASE);
	assert_int_equal(map[5].addr, MEM_HIGH_BASE);
	assert_int_equal(map[5].size, GiB(8) - MEM_LOW_LIMIT);
	assert_int_equal(map[5].type, E820_RAM);
	check_memmap_invariants(&mem, map, n);
}

static void test_memmap_max(void **state)
{
	struct guest_mem mem = { .memfd = -1, .size = GiB(8), .low_size = MEM_LOW_LIMIT,
				 .high_size = GiB(8) - MEM_LOW_LIMIT };
	struct e820_entry map[3] = { 0 };

	(void)state;
	assert_int_equal(pvh_memmap(&mem, map, 2), 2);
	assert_int_equal(map[1].addr, LOWMEM_TOP);
	assert_int_equal(map[2].size, 0); /* untouched */
	assert_int_equal(pvh_memmap(&mem, map, 0), 0);
}

/* The smallest VM (1 MiB: --memory is in MiB) has no RAM above 1 MiB. */
static void test_memmap_1mib(void **state)
{
	struct guest_mem mem = { .memfd = -1, .size = MiB(1), .low_size = MiB(1) };
	struct e820_entry map[BOOT_MEMMAP_MAX];
	unsigned n = pvh_memmap(&mem, map, BOOT_MEMMAP_MAX);

	(void)state;
	assert_int_equal(n, 4);
	check_memmap_invariants(&mem, map, n);
}

/* --- pvh_write_start_info ------------------------------------------------ */

static void check_start_info_memmap(const struct guest_mem *mem, const uint8_t *si)
{
	struct e820_entry map[BOOT_MEMMAP_MAX];
	unsigned n = pvh_memmap(mem, map, BOOT_MEMMAP_MAX);
	const uint8_t *mm = mem->host + BOOT_MEMMAP;

	assert_int_equal(get_le64(si + 40), BOOT_MEMMAP);
	assert_int_equal(get_le32(si + 48), n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(get_le64(mm + 24 * i), map[i].addr);
		assert_int_equal(get_le64(mm + 24 * i + 8), map[i].size);
		assert_int_equal(get_le32(mm + 24 * i + 16), map[i].type);
		assert_int_equal(get_le32(mm + 24 * i + 20), 0);
	}
}

static void test_start_info_full(void **state)
{
	struct guest_mem mem = mem_new(MiB(8));
	uint8_t initrd[5000];
	struct pvh_boot_params p = {
		.cmdline = "console=ttyS0 quiet",
		.initrd = initrd,
		.initrd_size = sizeof(initrd),
		.rsdp = ACPI_BASE,
		.kernel_high = 0x300000,
	};
	const uint8_t *si = mem.host + BOOT_START_INFO, *mod = mem.host + BOOT_MODLIST;
	uint64_t initrd_addr = ALIGN_DOWN(MiB(8) - sizeof(initrd), 4096);

	(void)state;
	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i * 13);
	memset(mem.host, 0xee, MiB(8));
	assert_int_equal(pvh_write_start_info(&mem, &p), BOOT_START_INFO);
	assert_int_equal(get_le32(si + 0), HVM_START_MAGIC);
	assert_int_equal(get_le32(si + 4), 1);
	assert_int_equal(get_le32(si + 8), 0);
	assert_int_equal(get_le32(si + 12), 1);
	assert_int_equal(get_le64(si + 16), BOOT_MODLIST);
	assert_int_equal(get_le64(si + 24), BOOT_CMDLINE);
	assert_int_equal(get_le64(si + 32), ACPI_BASE);
	assert_int_equal(get_le32(si + 52), 0);
	check_start_info_memmap(&mem, si);
	assert_string_equal((const char *)mem.host + BOOT_CMDLINE, "console=ttyS0 quiet");
	/* Module 0: the initrd, page-aligned at the top of low RAM. */
	assert_int_equal(get_le64(mod + 0), initrd_addr);
	assert_int_equal(get_le64(mod + 8), sizeof(initrd));
	assert_int_equal(get_le64(mod + 16), 0);
	assert_int_equal(get_le64(mod + 24), 0);
	assert_memory_equal(mem.host + initrd_addr, initrd, sizeof(initrd));
	assert_true(initrd_addr % 4096 == 0);
	assert_true(initrd_addr >= p.kernel_high);
	/* The boot structures do not overlap each other. */
	assert_true(BOOT_START_INFO + 56 <= BOOT_MODLIST);
	assert_true(BOOT_MODLIST + 32 <= BOOT_MEMMAP);
	assert_true(BOOT_MEMMAP + BOOT_MEMMAP_MAX * 24 <= BOOT_CMDLINE);
	assert_true(BOOT_CMDLINE + BOOT_CMDLINE_MAX <= LOWMEM_TOP);
	free(mem.host);
}

static void test_start_info_minimal(void **state)
{
	struct guest_mem mem = mem_new(MiB(4));
	struct pvh_boot_params p = { .kernel_high = 0x200000 };
	const uint8_t *si = mem.host + BOOT_START_INFO;

	(void)state;
	memset(mem.host, 0xee, MiB(4));
	assert_int_equal(pvh_write_start_info(&mem, &p), BOOT_START_INFO);
	assert_int_equal(get_le32(si + 0), HVM_START_MAGIC);
	assert_int_equal(get_le32(si + 4), 1);
	assert_int_equal(get_le32(si + 12), 0);
	assert_int_equal(get_le64(si + 16), 0);
	assert_int_equal(get_le64(si + 24), 0);
	assert_int_equal(get_le64(si + 32), 0);
	check_start_info_memmap(&mem, si);
	free(mem.host);
}

static void test_start_info_cmdline_limit(void **state)
{
	struct guest_mem mem = mem_new(MiB(4));
	char *cmdline = malloc(BOOT_CMDLINE_MAX + 1);
	struct pvh_boot_params p = { .cmdline = cmdline, .kernel_high = 0x200000 };

	(void)state;
	/* BOOT_CMDLINE_MAX includes the NUL. */
	memset(cmdline, 'a', BOOT_CMDLINE_MAX - 1);
	cmdline[BOOT_CMDLINE_MAX - 1] = '\0';
	memset(mem.host + BOOT_CMDLINE + BOOT_CMDLINE_MAX, 0x77, 16);
	assert_int_equal(pvh_write_start_info(&mem, &p), BOOT_START_INFO);
	assert_int_equal(strlen((char *)mem.host + BOOT_CMDLINE), BOOT_CMDLINE_MAX - 1);
	assert_int_equal(mem.host[BOOT_CMDLINE + BOOT_CMDLINE_MAX], 0x77);

	memset(cmdline, 'b', BOOT_CMDLINE_MAX);
	cmdline[BOOT_CMDLINE_MAX] = '\0';
	log_capture_begin();
	assert_int_equal(pvh_write_start_info(&mem, &p), -E2BIG);
	assert_non_null(strstr(log_capture_end(), "command line"));
	assert_int_equal(mem.host[BOOT_CMDLINE + BOOT_CMDLINE_MAX], 0x77);
	free(cmdline);
	free(mem.host);
}

static void test_start_info_initrd_too_big(void **state)
{
	struct guest_mem mem = mem_new(MiB(4));
	uint8_t *initrd = calloc(1, MiB(4) + 1);
	struct pvh_boot_params p = { .initrd = initrd, .kernel_high = 0x200000 };

	(void)state;
	/* Bigger than RAM. */
	p.initrd_size = MiB(4) + 1;
	log_capture_begin();
	assert_int_equal(pvh_write_start_info(&mem, &p), -E2BIG);
	assert_non_null(strstr(log_capture_end(), "initrd"));
	/* Would overlap the kernel by one page. */
	p.initrd_size = MiB(2) + 1;
	log_capture_begin();
	assert_int_equal(pvh_write_start_info(&mem, &p), -E2BIG);
	log_capture_end();
	/* Just fits: from the end of the kernel (page-aligned up) to the top. */
	p.kernel_high = 0x200001;
	p.initrd_size = MiB(2) - 0x1000;
	assert_int_equal(pvh_write_start_info(&mem, &p), BOOT_START_INFO);
	assert_int_equal(get_le64(mem.host + BOOT_MODLIST), 0x201000);
	p.initrd_size++;
	log_capture_begin();
	assert_int_equal(pvh_write_start_info(&mem, &p), -E2BIG);
	log_capture_end();
	free(initrd);
	free(mem.host);
}

/* With RAM above 4 GiB, the initrd still goes at the top of low RAM. */
static void test_start_info_initrd_low(void **state)
{
	struct guest_mem mem = mem_new(MiB(16));
	uint8_t initrd[100] = { 1, 2, 3 };
	struct pvh_boot_params p = { .initrd = initrd, .initrd_size = sizeof(initrd),
				     .kernel_high = 0x200000 };

	(void)state;
	mem.low_size = MiB(8);
	mem.high_size = MiB(8);
	assert_int_equal(pvh_write_start_info(&mem, &p), BOOT_START_INFO);
	assert_int_equal(get_le64(mem.host + BOOT_MODLIST), MiB(8) - 4096);
	assert_memory_equal(mem.host + MiB(8) - 4096, initrd, sizeof(initrd));
	assert_int_equal(get_le32(mem.host + BOOT_START_INFO + 48), 6);
	free(mem.host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_elf64),
		cmocka_unit_test(test_parse_elf32),
		cmocka_unit_test(test_parse_elf32_em_x86_64),
		cmocka_unit_test(test_parse_note_variants),
		cmocka_unit_test(test_parse_load_span),
		cmocka_unit_test(test_parse_exact_fit),
		cmocka_unit_test(test_parse_bad_elf64),
		cmocka_unit_test(test_parse_bad_elf32),
		cmocka_unit_test(test_parse_every_truncation),
		cmocka_unit_test(test_load_copies_and_zeroes_bss),
		cmocka_unit_test(test_load_elf32),
		cmocka_unit_test(test_memmap_low_only),
		cmocka_unit_test(test_memmap_high),
		cmocka_unit_test(test_memmap_max),
		cmocka_unit_test(test_memmap_1mib),
		cmocka_unit_test(test_start_info_full),
		cmocka_unit_test(test_start_info_minimal),
		cmocka_unit_test(test_start_info_cmdline_limit),
		cmocka_unit_test(test_start_info_initrd_too_big),
		cmocka_unit_test(test_start_info_initrd_low),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
