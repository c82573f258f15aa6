/* The working set's page pattern, one definition for the test guest
 * (guest/wset.c) and the Linux agent (guest/linux/wset.c), so that both
 * fill and check pages alike: page p at generation g holds word i =
 * pattern_seed(p, g) + i * PATTERN_WORD_STEP, in 4 KiB pages. mix64 is
 * splitmix64's finaliser (the disk writer's records derive from it too).
 * Header-only, no includes but <stdint.h>/<stdbool.h>: the guest is
 * freestanding. */
#ifndef FERRY_GUEST_PATTERN_H
#define FERRY_GUEST_PATTERN_H

#include <stdbool.h>
#include <stdint.h>

#define PATTERN_PAGE_WORDS 512
#define PATTERN_WORD_STEP  0x9e3779b97f4a7c15ULL
#define PATTERN_SEED_SALT  0x5851f42d4c957f2dULL

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t pattern_seed(uint64_t page, uint32_t gen)
{
	return mix64((page << 32) ^ gen ^ PATTERN_SEED_SALT);
}

static inline void pattern_fill(uint64_t *p, uint64_t seed)
{
	for (unsigned i = 0; i < PATTERN_PAGE_WORDS; i++, seed += PATTERN_WORD_STEP)
		p[i] = seed;
}

static inline bool pattern_ok(const uint64_t *p, uint64_t seed)
{
	uint64_t diff = 0;

	for (unsigned i = 0; i < PATTERN_PAGE_WORDS; i++, seed += PATTERN_WORD_STEP)
		diff |= p[i] ^ seed;
	return diff == 0;
}

#endif
