#include "common/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (b->len + n > b->cap) {
		size_t cap = MAX(b->cap * 2, b->len + n);
		uint8_t *d = realloc(b->data, MAX(cap, 64));

		if (!d) {
			b->oom = true;
			return;
		}
		b->data = d;
		b->cap = MAX(cap, 64);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void buf_put_u8(struct buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

void buf_put_u16(struct buf *b, uint16_t v)
{
	uint8_t le[2];

	put_le16(le, v);
	buf_put(b, le, sizeof(le));
}

void buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t le[4];

	put_le32(le, v);
	buf_put(b, le, sizeof(le));
}

void buf_put_u64(struct buf *b, uint64_t v)
{
	uint8_t le[8];

	put_le64(le, v);
	buf_put(b, le, sizeof(le));
}

void buf_put_u8s(struct buf *b, uint8_t *const *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_put_u8(b, *f[i]);
}

int buf_finish(const struct buf *b)
{
	return b->oom ? -ENOMEM : 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void reader_init(struct reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->short_read = false;
}

void reader_get(struct reader *r, void *out, size_t n)
{
	if (r->short_read || !range_within(r->off, n, r->len)) {
		r->short_read = true;
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->p + r->off, n);
	r->off += n;
}

uint8_t reader_u8(struct reader *r)
{
	uint8_t v;

	reader_get(r, &v, 1);
	return v;
}

uint16_t reader_u16(struct reader *r)
{
	uint8_t le[2];

	reader_get(r, le, sizeof(le));
	return get_le16(le);
}

uint32_t reader_u32(struct reader *r)
{
	uint8_t le[4];

	reader_get(r, le, sizeof(le));
	return get_le32(le);
}

uint64_t reader_u64(struct reader *r)
{
	uint8_t le[8];

	reader_get(r, le, sizeof(le));
	return get_le64(le);
}

void reader_u8s(struct reader *r, uint8_t *const *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		*f[i] = reader_u8(r);
}

int reader_finish(const struct reader *r)
{
	return (r->short_read || r->off != r->len) ? -EINVAL : 0;
}
