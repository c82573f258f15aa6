#include "migration/stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/crc32c.h"
#include "common/util.h"

/* writev until everything is out; iov is consumed. */
static int writev_all(int fd, struct iovec *iov, unsigned n)
{
	while (n) {
		ssize_t done = writev(fd, iov, (int)MIN(n, 1024u));

		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0)
			return done < 0 ? -errno : -EIO;
		while (n && (size_t)done >= iov->iov_len) {
			done -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= (size_t)done;
		}
	}
	return 0;
}

int stream_writer_start(struct stream_writer *w, int fd)
{
	uint8_t h[STREAM_HEADER_SIZE] = { 0 };

	w->fd = fd;
	w->offset = 0;
	memcpy(h, STREAM_MAGIC, 8);
	put_le32(h + 8, STREAM_VERSION);
	put_le32(h + 12, 0);
	w->offset = sizeof(h);
	return fd_write_all(fd, h, sizeof(h));
}

int stream_write_recordv(struct stream_writer *w, uint32_t type, const struct iovec *iov,
			 unsigned n)
{
	static const uint8_t zeros[8];
	uint8_t head[8], tail[8] = { 0 };
	struct iovec *v;
	size_t len = 0, pad;
	uint32_t crc;
	int ret;

	for (unsigned i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (len > STREAM_MAX_RECORD)
		return -E2BIG;
	pad = ALIGN_UP(len, 8) - len;
	put_le32(head, type);
	put_le32(head + 4, (uint32_t)len);
	crc = crc32c(0, head, sizeof(head));
	for (unsigned i = 0; i < n; i++)
		crc = crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	crc = crc32c(crc, zeros, pad);
	put_le32(tail, crc);

	v = malloc((n + 3) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[0] = (struct iovec){ head, sizeof(head) };
	memcpy(v + 1, iov, n * sizeof(*v));
	v[n + 1] = (struct iovec){ (void *)zeros, pad };
	v[n + 2] = (struct iovec){ tail, sizeof(tail) };
	ret = writev_all(w->fd, v, n + 3);
	free(v);
	if (ret == 0)
		w->offset += sizeof(head) + len + pad + sizeof(tail);
	return ret;
}

int stream_write_record(struct stream_writer *w, uint32_t type, const void *payload,
			size_t len)
{
	struct iovec iov = { (void *)payload, len };

	return stream_write_recordv(w, type, &iov, 1);
}

static int reader_fail(struct stream_reader *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	return err;
}

static int stream_read_exact(struct stream_reader *r, void *p, size_t len, const char *what)
{
	ssize_t n = fd_read_full(r->fd, p, len);

	if (n < 0)
		return reader_fail(r, (int)n, "reading %s at offset %llu: %s", what,
				   (unsigned long long)r->offset, strerror((int)-n));
	if ((size_t)n < len)
		return reader_fail(r, -EINVAL, "truncated: the stream ends inside %s at offset %llu",
				   what, (unsigned long long)(r->offset + (uint64_t)n));
	return 0;
}

int stream_reader_start(struct stream_reader *r, int fd)
{
	uint8_t h[STREAM_HEADER_SIZE];
	int ret;

	memset(r, 0, sizeof(*r));
	r->fd = fd;
	ret = stream_read_exact(r, h, sizeof(h), "the stream header");
	if (ret)
		return ret;
	if (memcmp(h, STREAM_MAGIC, 8))
		return reader_fail(r, -EINVAL, "not a ferry stream (bad magic)");
	if (get_le32(h + 8) != STREAM_VERSION)
		return reader_fail(r, -EINVAL, "stream format version %u; this ferry reads version %u",
				   get_le32(h + 8), STREAM_VERSION);
	if (get_le32(h + 12))
		return reader_fail(r, -EINVAL, "unknown stream flags 0x%x", get_le32(h + 12));
	r->offset = sizeof(h);
	return 0;
}

int stream_read_record(struct stream_reader *r, uint32_t *type, const uint8_t **payload,
		       size_t *len)
{
	uint8_t head[8], *tail;
	size_t plen, total;
	uint32_t crc;
	int ret;

	ret = stream_read_exact(r, head, sizeof(head), "a record header");
	if (ret)
		return ret;
	*type = get_le32(head);
	plen = get_le32(head + 4);
	if (plen > STREAM_MAX_RECORD)
		return reader_fail(r, -EINVAL, "%s record at offset %llu claims %zu bytes (limit %u)",
				   stream_rec_name(*type), (unsigned long long)r->offset, plen,
				   STREAM_MAX_RECORD);
	total = ALIGN_UP(plen, 8) + 8;
	if (total > r->cap) {
		uint8_t *b = realloc(r->buf, total);

		if (!b)
			return reader_fail(r, -ENOMEM, "out of memory for a %zu-byte record", plen);
		r->buf = b;
		r->cap = total;
	}
	ret = stream_read_exact(r, r->buf, total, "a record");
	if (ret)
		return ret;
	tail = r->buf + total - 8;
	crc = crc32c(crc32c(0, head, sizeof(head)), r->buf, total - 8);
	if (crc != get_le32(tail))
		return reader_fail(r, -EINVAL, "%s record at offset %llu is corrupt (CRC32C mismatch)",
				   stream_rec_name(*type), (unsigned long long)r->offset);
	for (size_t i = plen; i < total - 8; i++)
		if (r->buf[i])
			return reader_fail(r, -EINVAL, "record at offset %llu has non-zero padding",
					   (unsigned long long)r->offset);
	if (get_le32(tail + 4))
		return reader_fail(r, -EINVAL, "record at offset %llu has a non-zero reserved word",
				   (unsigned long long)r->offset);
	r->offset += sizeof(head) + total;
	*payload = r->buf;
	*len = plen;
	return 0;
}

bool stream_reader_at_eof(struct stream_reader *r)
{
	uint8_t b;

	return fd_read_full(r->fd, &b, 1) == 0;
}

void stream_reader_free(struct stream_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

int stream_write_error(struct stream_writer *w, const char *text)
{
	size_t n = strlen(text);
	uint8_t head[4];
	struct iovec iov[2] = { { head, sizeof(head) }, { (void *)text, n } };

	put_le32(head, (uint32_t)n);
	return stream_write_recordv(w, REC_ERROR, iov, 2);
}

size_t stream_error_text(const uint8_t *payload, size_t len, const char **text)
{
	uint32_t n = len >= 4 ? get_le32(payload) : 0;

	*text = (const char *)payload + MIN(len, 4u);
	return range_within(4, n, len) ? n : 0;
}

const char *stream_rec_name(uint32_t type)
{
	switch (type & ~STREAM_REC_OPTIONAL) {
	case REC_VM_INFO: return "VM_INFO";
	case REC_RAM: return "RAM";
	case REC_DEVICE: return "DEVICE";
	case REC_VCPU: return "VCPU";
	case REC_END: return "END";
	case REC_RAM_EXTENTS: return "RAM_EXTENTS";
	case REC_HELLO: return "HELLO";
	case REC_WELCOME: return "WELCOME";
	case REC_ERROR: return "ERROR";
	case REC_READY: return "READY";
	case REC_GO: return "GO";
	case REC_STARTED: return "STARTED";
	default: return "unknown";
	}
}
