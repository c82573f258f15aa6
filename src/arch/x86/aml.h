/* A small AML encoder (ACPI 6.5 §20, "ACPI Machine Language"): the few
 * terms ferry's DSDT needs — named integers, packages, scopes, devices and
 * resource templates — written as code instead of byte blobs.
 *
 * Everything is appended to one caller-owned buffer. Terms that carry a
 * PkgLength (Scope, Device, Package, Buffer) are written in two steps: the
 * opening call writes the opcode and returns a mark, the contents follow,
 * and aml_end() slides them up to insert the PkgLength in the shortest of
 * its four forms (§20.2.4). Marks close in reverse order, like braces.
 *
 * Errors stick: a write that does not fit or a malformed name sets
 * a->error and turns every later call into a no-op, so a builder checks
 * once at the end. */
#ifndef FERRY_ARCH_X86_AML_H
#define FERRY_ARCH_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t cap;
	size_t len;  /* bytes written so far */
	bool error;  /* something did not fit or was malformed: buf is garbage */
};

/* An open term: where its contents start, and whether a BufferSize goes in
 * front of them (Buffer) besides the PkgLength. */
struct aml_mark {
	size_t at;
	bool sized;
};

/* Starts writing into buf (cap bytes). */
void aml_init(struct aml *a, void *buf, size_t cap);

/* An Integer in its shortest form: Zero, One, or Byte/Word/DWord/QWord
 * prefix. (Ones is never used: its width depends on the table revision.) */
void aml_int(struct aml *a, uint64_t v);

/* A NameString: "\\" for the root or "^" for each parent, then NameSegs
 * separated by dots, each 1-4 of [A-Z0-9_] not starting with a digit and
 * padded with '_' ("\\_SB.PCI0", "_S5", "^FOO"). */
void aml_name_string(struct aml *a, const char *path);

/* Name (name, ...): the caller writes the value right after. */
void aml_name(struct aml *a, const char *name);

/* Name (name, v): the common case of a named integer. */
void aml_name_int(struct aml *a, const char *name, uint64_t v);

/* EisaId ("PNP0A03"): three capitals and four hex digits compressed into a
 * DWord, as iasl writes it (DWordPrefix, bytes 41 D0 0A 03). */
void aml_eisaid(struct aml *a, const char *id);

/* Scope (path) { ... }, Device (path) { ... }, Package (n) { ... } and
 * Buffer () { ... }: each returns the mark its aml_end() takes. */
struct aml_mark aml_scope(struct aml *a, const char *path);
struct aml_mark aml_device(struct aml *a, const char *path);
struct aml_mark aml_package(struct aml *a, uint8_t count);
struct aml_mark aml_buffer_begin(struct aml *a);

/* Closes the term opened at m: inserts its PkgLength (and a Buffer's
 * BufferSize) in front of everything written since. */
void aml_end(struct aml *a, struct aml_mark m);

/* Buffer (n) { data }: a whole buffer in one call. */
void aml_buffer(struct aml *a, const void *data, size_t n);

/* ResourceTemplate () { ... } (§6.4): a Buffer of resource descriptors.
 * The end closes it with an End Tag whose checksum makes the descriptors
 * and the tag sum to zero. */
struct aml_mark aml_restemplate_begin(struct aml *a);
void aml_restemplate_end(struct aml *a, struct aml_mark m);

/* IO (Decode16, min, max, align, len): len I/O ports that the device
 * itself decodes (a consumer), based between min and max. */
void aml_res_io16(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);

/* The address-space descriptors of a bridge's windows: each is a resource
 * producer, positive decode, with fixed minimum and maximum, granularity 0,
 * no translation, and the length max - min + 1 (ACPI 6.5 table 6.43). */

/* WordBusNumber: the bus numbers [min, max] behind the bridge. */
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);

/* WordIO (..., EntireRange, ...): the I/O ports [min, max] forwarded. */
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);

/* DWordMemory: the memory [min, max] forwarded; mem_flags is one of the
 * cacheability values or'd with a read/write value below. */
#define AML_MEM_NONCACHEABLE 0x00
#define AML_MEM_CACHEABLE    0x02
#define AML_MEM_READONLY     0x00
#define AML_MEM_READWRITE    0x01
void aml_res_dword_memory(struct aml *a, uint8_t mem_flags, uint32_t min, uint32_t max);

/* Memory32Fixed (ReadWrite, base, len): memory the device itself decodes
 * (a consumer), as a motherboard resource says what it reserves. */
void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len);

#endif
