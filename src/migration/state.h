/* The whole VM as stream records: its shape (VM_INFO), RAM, every
 * registered device, every vCPU — written by one function and read by one,
 * for save/restore now and migration next (docs/stream-format.md). */
#ifndef FERRY_MIGRATION_STATE_H
#define FERRY_MIGRATION_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/stream.h"

struct vm;

/* More vCPUs than any VM ferry builds (ACPI_MAX_CPUS): a bound for readers. */
#define STATE_MAX_VCPUS 255u

/* The VM's shape as VM_INFO carries it. Strings are owned (state_info_free). */
struct state_info {
	uint64_t ram_size;
	uint32_t ncpus;
	char *name;
	char *cmdline;
	char *kernel;
	char *serial;
	char *cpu;     /* the CPU spec (--cpu); "host" in streams without one */
};

struct state_stats {
	uint64_t pages_full;    /* RAM pages written with their contents */
	uint64_t pages_skipped; /* never touched, or all zero */
	uint64_t bytes;         /* stream bytes written */
};

/* Writes the complete state of a paused VM (every vCPU parked, its last
 * exit completed) as a whole stream to fd: header, VM_INFO, RAM, devices,
 * vCPUs, END. Returns 0 or -errno, with a message logged. */
int state_save(struct vm *vm, int fd, struct state_stats *stats);

/* The pieces of state_save, for a migration that sends RAM in passes
 * while the guest runs: VM_INFO; and, once the VM is paused, the devices,
 * vCPUs and END. */
int state_write_info(struct vm *vm, struct stream_writer *w);
int state_write_final(struct vm *vm, struct stream_writer *w);

/* RAM_EXTENTS (optional): the stretches of RAM that hold data, so that the
 * loader can allocate them while the pages are still on their way. Sets
 * *data_bytes (may be NULL) to their total (the extents listed). */
int state_write_ram_extents(struct vm *vm, struct stream_writer *w, uint64_t *data_bytes);

/* RAM records: pages gathered into batches of up to RAM_MAX_BATCH, each
 * sent whole (its contents referenced, not copied, until the flush) or as
 * a zero-page flag. copy: the guest may write its RAM meanwhile, so each
 * page is copied as it is added (its checksum then matches what is sent);
 * without, the pages must stay unchanged until the flush (a paused VM). */
struct state_ram_batch;
struct state_ram_batch *state_ram_batch_new(bool copy);
void state_ram_batch_free(struct state_ram_batch *b);
int state_ram_batch_add(struct stream_writer *w, struct state_ram_batch *b, uint64_t gpa,
			const uint8_t *page, bool zero);
int state_ram_batch_flush(struct stream_writer *w, struct state_ram_batch *b);
bool state_page_is_zero(const uint8_t *page);

/* Starts reading a stream and reads its VM_INFO, so that the caller can
 * build a VM of that shape. Returns 0 or -errno, with r->error set. */
int state_read_info(struct stream_reader *r, int fd, struct state_info *info);
void state_info_free(struct state_info *info);

/* Reads the next record of a started stream, which must be VM_INFO. */
int state_read_info_record(struct stream_reader *r, struct state_info *info);

/* Reads the rest of the stream into vm, which has the shape of the info
 * and has never run: RAM, device and vCPU records in their order, up to
 * END (and, for a file, nothing after it). Every record is checked before
 * it is applied; every device and vCPU must get exactly one record.
 * Returns 0 or -errno with r->error saying what was wrong. */
int state_load(struct vm *vm, struct stream_reader *r, bool expect_eof);

/* Checks a RAM record's payload against a VM of ram_size bytes without
 * touching any VM: page count, encodings, every address inside RAM, the
 * length. Sets *pages and *full. Returns 0, or -EINVAL with err set. */
int state_ram_record_check(uint64_t ram_size, const uint8_t *p, size_t len, uint32_t *pages,
			   uint32_t *full, char *err, size_t errlen);

/* A checksum of all guest RAM (never-touched pages count as zeros without
 * being read), for checking that a restore reproduced memory exactly. */
uint32_t state_ram_hash(const struct vm *vm);

#endif
