/* The disk writer's 4 KiB record (guest/README.md, "Disk records"), one
 * definition for the test guest (guest/disk_writer.c) and the Linux agent
 * (guest/linux/disk.c), so that scripts/check-disk-records.py reads both:
 * word 0 the magic, 1 the boot's nonce, 2 the sequence number, 3 the slot,
 * 4 .. 510 a fill derived from nonce and seq, 511 the first 8 bytes of the
 * SHA-256 of words 0 .. 510. Record seq (from 1) lives in slot
 * (seq - 1) % slots. Header-only (the guest is freestanding); the caller
 * links sha256.c. */
#ifndef FERRY_GUEST_RECORD_H
#define FERRY_GUEST_RECORD_H

#include <stdint.h>

#include "pattern.h"
#include "sha256.h"

#define RECORD_BYTES     4096
#define RECORD_WORDS     (RECORD_BYTES / 8)
#define RECORD_MAGIC     0x4345525952524546ULL   /* "FERRYREC" */
#define RECORD_FILL      4                       /* first fill word */
#define RECORD_SUM       (RECORD_WORDS - 1)      /* checksum word */
#define RECORD_FILL_STEP 0x9e3779b97f4a7c15ULL

static inline uint64_t record_slot(uint64_t seq, uint64_t slots)
{
	return (seq - 1) % slots;
}

/* w[RECORD_WORDS] = record seq of the boot with this nonce. */
static inline void record_build(uint64_t *w, uint64_t nonce, uint64_t seq, uint64_t slots)
{
	uint64_t fill = mix64(nonce + seq * RECORD_FILL_STEP);
	uint8_t d[SHA256_BYTES];

	w[0] = RECORD_MAGIC;
	w[1] = nonce;
	w[2] = seq;
	w[3] = record_slot(seq, slots);
	for (unsigned i = RECORD_FILL; i < RECORD_SUM; i++, fill += RECORD_FILL_STEP)
		w[i] = fill;
	sha256(w, RECORD_SUM * 8, d);
	__builtin_memcpy(&w[RECORD_SUM], d, 8);
}

#endif
