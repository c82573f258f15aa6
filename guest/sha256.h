/* SHA-256 (FIPS 180-4), ring 3: disk digests and disk-record checksums. */
#ifndef FERRY_GUEST_SHA256_H
#define FERRY_GUEST_SHA256_H

#include "types.h"

#define SHA256_BYTES    32

struct sha256 {
	u32 h[8];
	u64 len;                /* bytes hashed so far */
	u8 buf[64];             /* a partial block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, u8 out[SHA256_BYTES]);

/* The digest of [data, data + n). */
void sha256(const void *data, size_t n, u8 out[SHA256_BYTES]);

/* Check the implementation against the FIPS 180-2 test vectors ("abc" and
 * the two-block message); true if it is right. */
bool sha256_selftest(void);

/* 64 lowercase hex digits and a NUL into hex[65]. */
void sha256_hex(const u8 d[SHA256_BYTES], char hex[2 * SHA256_BYTES + 1]);

#endif
