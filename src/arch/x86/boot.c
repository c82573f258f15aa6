#include "arch/x86/boot.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "common/log.h"
#include "common/util.h"
#include "devices/pci.h"

/* One program header, whatever the ELF class. */
struct phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

struct elf_view {
	const char *path; /* for messages */
	const uint8_t *data;
	size_t size;
	bool is64;
	uint64_t phoff;
	unsigned phnum;
	unsigned phentsize;
};

static int elf_open(struct elf_view *v, const char *path, const uint8_t *data, size_t size)
{
	v->path = path;
	v->data = data;
	v->size = size;
	if (size < EI_NIDENT || memcmp(data, ELFMAG, SELFMAG)) {
		log_error("%s: not an ELF file (a PVH kernel is an ELF such as vmlinux, "
			  "not a bzImage)", v->path);
		return -ENOEXEC;
	}
	if (data[EI_DATA] != ELFDATA2LSB ||
	    (data[EI_CLASS] != ELFCLASS32 && data[EI_CLASS] != ELFCLASS64)) {
		log_error("%s: not a little-endian ELF32/ELF64 file", v->path);
		return -ENOEXEC;
	}
	v->is64 = data[EI_CLASS] == ELFCLASS64;
	if (v->is64) {
		Elf64_Ehdr eh;

		if (size < sizeof(eh))
			goto truncated;
		memcpy(&eh, data, sizeof(eh));
		if (eh.e_machine != EM_X86_64)
			goto machine;
		v->phoff = eh.e_phoff;
		v->phnum = eh.e_phnum;
		v->phentsize = eh.e_phentsize;
		if (v->phentsize != sizeof(Elf64_Phdr))
			goto phdrs;
	} else {
		Elf32_Ehdr eh;

		if (size < sizeof(eh))
			goto truncated;
		memcpy(&eh, data, sizeof(eh));
		if (eh.e_machine != EM_386 && eh.e_machine != EM_X86_64)
			goto machine;
		v->phoff = eh.e_phoff;
		v->phnum = eh.e_phnum;
		v->phentsize = eh.e_phentsize;
		if (v->phentsize != sizeof(Elf32_Phdr))
			goto phdrs;
	}
	if (v->phnum == 0 || !range_within(v->phoff, (uint64_t)v->phnum * v->phentsize, size))
		goto phdrs;
	return 0;
truncated:
	log_error("%s: truncated ELF header", v->path);
	return -ENOEXEC;
machine:
	log_error("%s: ELF is not for x86", v->path);
	return -ENOEXEC;
phdrs:
	log_error("%s: bad or missing ELF program headers", v->path);
	return -ENOEXEC;
}

static void elf_phdr(const struct elf_view *v, unsigned i, struct phdr *ph)
{
	const uint8_t *p = v->data + v->phoff + (uint64_t)i * v->phentsize;

	if (v->is64) {
		Elf64_Phdr h;

		memcpy(&h, p, sizeof(h));
		*ph = (struct phdr){ h.p_type, h.p_offset, h.p_paddr, h.p_filesz, h.p_memsz };
	} else {
		Elf32_Phdr h;

		memcpy(&h, p, sizeof(h));
		*ph = (struct phdr){ h.p_type, h.p_offset, h.p_paddr, h.p_filesz, h.p_memsz };
	}
}

/* Looks for the Xen PHYS32_ENTRY note in one PT_NOTE segment. Notes are
 * (namesz, descsz, type, name, desc) with name and desc padded to 4. */
static bool elf_find_pvh_note(const uint8_t *p, uint64_t len, uint64_t *entry)
{
	uint64_t off = 0;

	while (off + 12 <= len) {
		uint32_t namesz = get_le32(p + off);
		uint32_t descsz = get_le32(p + off + 4);
		uint32_t type = get_le32(p + off + 8);
		uint64_t name_off = off + 12;
		uint64_t desc_off = name_off + ALIGN_UP((uint64_t)namesz, 4);
		uint64_t next = desc_off + ALIGN_UP((uint64_t)descsz, 4);

		if (!range_within(name_off, namesz, len) || !range_within(desc_off, descsz, len))
			return false;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    !memcmp(p + name_off, "Xen", 4) && (descsz == 4 || descsz == 8)) {
			*entry = descsz == 4 ? get_le32(p + desc_off) : get_le64(p + desc_off);
			return true;
		}
		off = next;
	}
	return false;
}

static int pvh_check_load(const struct elf_view *v, const struct phdr *ph,
			  const struct guest_mem *mem)
{
	if (ph->filesz > ph->memsz || !range_within(ph->offset, ph->filesz, v->size)) {
		log_error("%s: ELF segment at file offset 0x%llx runs past the end of the file", v->path,
			  (unsigned long long)ph->offset);
		return -ENOEXEC;
	}
	if (ph->paddr < KERNEL_MIN_ADDR) {
		log_error("%s: ELF segment at 0x%llx is below 1 MiB, where ferry keeps boot data", v->path,
			  (unsigned long long)ph->paddr);
		return -ENOEXEC;
	}
	if (!mem_gpa_to_hva(mem, ph->paddr, ph->memsz)) {
		log_error("%s: ELF segment [0x%llx, +0x%llx) does not fit in guest RAM "
			  "(give the VM more --memory)", v->path,
			  (unsigned long long)ph->paddr, (unsigned long long)ph->memsz);
		return -ENOEXEC;
	}
	return 0;
}

int pvh_parse(const char *path, const uint8_t *elf, size_t size, const struct guest_mem *mem,
	      struct pvh_kernel *out)
{
	struct elf_view v;
	bool have_entry = false, have_load = false;
	int ret = elf_open(&v, path, elf, size);

	if (ret)
		return ret;
	/* The note first: "not a PVH kernel" is the useful message for any
	 * other ELF (a program, a bzImage's vmlinux without CONFIG_PVH). */
	for (unsigned i = 0; i < v.phnum && !have_entry; i++) {
		struct phdr ph;

		elf_phdr(&v, i, &ph);
		if (ph.type == PT_NOTE && range_within(ph.offset, ph.filesz, size))
			have_entry = elf_find_pvh_note(elf + ph.offset, ph.filesz, &out->entry);
	}
	if (!have_entry) {
		log_error("%s: not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note "
			  "(Linux needs CONFIG_PVH=y)", path);
		return -ENOEXEC;
	}
	out->load_low = UINT64_MAX;
	out->load_high = 0;
	for (unsigned i = 0; i < v.phnum; i++) {
		struct phdr ph;

		elf_phdr(&v, i, &ph);
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		ret = pvh_check_load(&v, &ph, mem);
		if (ret)
			return ret;
		have_load = true;
		out->load_low = MIN(out->load_low, ph.paddr);
		out->load_high = MAX(out->load_high, ph.paddr + ph.memsz);
	}
	if (!have_load) {
		log_error("%s: ELF has no loadable segment", path);
		return -ENOEXEC;
	}
	if (out->entry >= 0x100000000ull || !mem_gpa_to_hva(mem, out->entry, 1)) {
		log_error("%s: PVH entry point 0x%llx is not in guest RAM", path,
			  (unsigned long long)out->entry);
		return -ENOEXEC;
	}
	return 0;
}

void pvh_load(const uint8_t *elf, size_t size, const struct guest_mem *mem)
{
	struct elf_view v;

	if (elf_open(&v, "", elf, size))
		return;
	for (unsigned i = 0; i < v.phnum; i++) {
		struct phdr ph;
		uint8_t *dst;

		elf_phdr(&v, i, &ph);
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		dst = mem_gpa_to_hva(mem, ph.paddr, ph.memsz);
		memcpy(dst, elf + ph.offset, ph.filesz);
		memset(dst + ph.filesz, 0, ph.memsz - ph.filesz);
	}
}

unsigned pvh_memmap(const struct guest_mem *mem, struct e820_entry *map, unsigned max)
{
	struct e820_entry all[] = {
		{ 0, LOWMEM_TOP, E820_RAM },
		{ LOWMEM_TOP, 0xa0000 - LOWMEM_TOP, E820_RESERVED },
		{ ACPI_BASE, ACPI_SIZE, E820_RESERVED },
		{ KERNEL_MIN_ADDR, mem->low_size - KERNEL_MIN_ADDR, E820_RAM },
		/* ECAM: Linux uses the area MCFG names only when the memory
		 * map or the firmware's motherboard resources reserve it. */
		{ PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_RESERVED },
		{ MEM_HIGH_BASE, mem->high_size, E820_RAM },
	};
	unsigned n = 0;

	for (unsigned i = 0; i < ARRAY_SIZE(all) && n < max; i++)
		if (all[i].size)
			map[n++] = all[i];
	return n;
}

static void put_start_info(uint8_t *si, uint64_t cmdline, uint64_t rsdp, unsigned nmods,
			   unsigned nmap)
{
	memset(si, 0, 56);
	put_le32(si + 0, HVM_START_MAGIC);
	put_le32(si + 4, 1); /* version 1: has the memory map */
	put_le32(si + 8, 0); /* flags */
	put_le32(si + 12, nmods);
	put_le64(si + 16, nmods ? BOOT_MODLIST : 0);
	put_le64(si + 24, cmdline);
	put_le64(si + 32, rsdp);
	put_le64(si + 40, BOOT_MEMMAP);
	put_le32(si + 48, nmap);
}

/* Puts the initrd at the top of low RAM, page-aligned, above the kernel. */
static int64_t pvh_place_initrd(const struct guest_mem *mem, const struct pvh_boot_params *p)
{
	uint64_t top = mem->low_size, addr;

	if (p->initrd_size > top)
		goto big;
	addr = ALIGN_DOWN(top - p->initrd_size, 4096);
	if (addr < ALIGN_UP(p->kernel_high, 4096))
		goto big;
	memcpy(mem_gpa_to_hva(mem, addr, p->initrd_size), p->initrd, p->initrd_size);
	return (int64_t)addr;
big:
	log_error("initrd (%zu bytes) does not fit in guest RAM above the kernel "
		  "(give the VM more --memory)", p->initrd_size);
	return -E2BIG;
}

int64_t pvh_write_start_info(const struct guest_mem *mem, const struct pvh_boot_params *p)
{
	struct e820_entry map[BOOT_MEMMAP_MAX];
	uint8_t *si = mem_gpa_to_hva(mem, BOOT_START_INFO, 56);
	uint8_t *mods = mem_gpa_to_hva(mem, BOOT_MODLIST, 32);
	uint8_t *mm = mem_gpa_to_hva(mem, BOOT_MEMMAP, BOOT_MEMMAP_MAX * 24);
	unsigned n = pvh_memmap(mem, map, BOOT_MEMMAP_MAX);
	uint64_t cmdline = 0;
	unsigned nmods = 0;

	if (!si || !mods || !mm)
		return -ENOMEM;
	if (p->cmdline) {
		size_t len = strlen(p->cmdline) + 1;
		char *dst = mem_gpa_to_hva(mem, BOOT_CMDLINE, BOOT_CMDLINE_MAX);

		if (len > BOOT_CMDLINE_MAX) {
			log_error("kernel command line is %zu bytes, the limit is %llu", len - 1,
				  (unsigned long long)BOOT_CMDLINE_MAX - 1);
			return -E2BIG;
		}
		memcpy(dst, p->cmdline, len);
		cmdline = BOOT_CMDLINE;
	}
	if (p->initrd) {
		int64_t addr = pvh_place_initrd(mem, p);

		if (addr < 0)
			return addr;
		memset(mods, 0, 32);
		put_le64(mods + 0, (uint64_t)addr);
		put_le64(mods + 8, p->initrd_size);
		nmods = 1;
	}
	for (unsigned i = 0; i < n; i++) {
		put_le64(mm + i * 24 + 0, map[i].addr);
		put_le64(mm + i * 24 + 8, map[i].size);
		put_le32(mm + i * 24 + 16, map[i].type);
		put_le32(mm + i * 24 + 20, 0);
	}
	put_start_info(si, cmdline, p->rsdp, nmods, n);
	return (int64_t)BOOT_START_INFO;
}
