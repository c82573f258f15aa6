/* Growable byte buffers for writing state, and bounds-checked readers for
 * reading it back. Fields are fixed-width little-endian: state never goes
 * out as a raw C struct (STYLE.md §11). */
#ifndef FERRY_COMMON_BUF_H
#define FERRY_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool oom; /* an allocation failed: the content is incomplete */
};

/* Appending never fails visibly: a failed allocation sets b->oom, which
 * buf_finish() reports once. */
void buf_put(struct buf *b, const void *p, size_t n);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_u64(struct buf *b, uint64_t v);

/* Appends *f[0], *f[1], ... (n single bytes gathered from struct fields). */
void buf_put_u8s(struct buf *b, uint8_t *const *f, size_t n);

/* Returns 0, or -ENOMEM if any append failed. */
int buf_finish(const struct buf *b);
void buf_free(struct buf *b);

struct reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool short_read; /* a get went past the end; values read as zero */
};

void reader_init(struct reader *r, const void *p, size_t len);
void reader_get(struct reader *r, void *out, size_t n);
uint8_t reader_u8(struct reader *r);
uint16_t reader_u16(struct reader *r);
uint32_t reader_u32(struct reader *r);
uint64_t reader_u64(struct reader *r);
/* Reads n single bytes into *f[0], *f[1], ... (the inverse of buf_put_u8s). */
void reader_u8s(struct reader *r, uint8_t *const *f, size_t n);

/* Returns 0 when every get was in bounds and all input was consumed,
 * -EINVAL otherwise (truncated or trailing bytes). */
int reader_finish(const struct reader *r);

#endif
