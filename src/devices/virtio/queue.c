#include "devices/virtio/queue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "devices/virtio/virtio.h"

static uint64_t desc_bytes(uint16_t n)
{
	return (uint64_t)n * VIRTQ_DESC_SIZE;
}

/* Each ring ends with a le16: used_event, avail_event. */
static uint64_t avail_bytes(uint16_t n)
{
	return VIRTQ_AVAIL_RING + 2 * (uint64_t)n + 2;
}

static uint64_t used_bytes(uint16_t n)
{
	return VIRTQ_USED_RING + VIRTQ_USED_ELEM_SIZE * (uint64_t)n + 2;
}

void virtq_init(struct virtq *q, uint16_t max_size, const struct guest_ram *ram)
{
	memset(q, 0, sizeof(*q));
	q->max_size = max_size;
	q->ram = ram;
	virtq_reset(q);
}

void virtq_reset(struct virtq *q)
{
	q->s = (struct virtq_state){ .size = q->max_size, .msix_vector = VIRTIO_MSI_NO_VECTOR };
	q->indirect = false;
	virtq_unmap(q);
}

static bool size_ok(uint16_t size, uint16_t max)
{
	return size && size <= max && !(size & (size - 1));
}

int virtq_map(struct virtq *q)
{
	uint16_t n = q->s.size;

	virtq_unmap(q);
	if (!size_ok(n, q->max_size) || q->s.desc % VIRTQ_DESC_ALIGN ||
	    q->s.avail % VIRTQ_AVAIL_ALIGN || q->s.used % VIRTQ_USED_ALIGN)
		return -EINVAL;
	q->desc = ram_map(q->ram, q->s.desc, desc_bytes(n));
	q->avail = ram_map(q->ram, q->s.avail, avail_bytes(n));
	q->used = ram_map(q->ram, q->s.used, used_bytes(n));
	if (!q->desc || !q->avail || !q->used) {
		virtq_unmap(q);
		return -EINVAL;
	}
	return 0;
}

void virtq_unmap(struct virtq *q)
{
	q->desc = q->avail = q->used = NULL;
}

static uint16_t avail_idx(const struct virtq *q)
{
	/* Acquire: the ring entries it covers are read after it. */
	return le16toh(__atomic_load_n((uint16_t *)(q->avail + VIRTQ_AVAIL_IDX), __ATOMIC_ACQUIRE));
}

bool virtq_has_work(struct virtq *q)
{
	return q->avail && avail_idx(q) != q->s.last_avail;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static struct desc read_desc(const uint8_t *table, unsigned i)
{
	const uint8_t *p = table + (size_t)i * VIRTQ_DESC_SIZE;
	/* Each field is read once: the guest may change them under us. */
	struct desc d = {
		.addr = get_le64(p + VIRTQ_DESC_ADDR), .len = get_le32(p + VIRTQ_DESC_LEN),
		.flags = get_le16(p + VIRTQ_DESC_FLAGS), .next = get_le16(p + VIRTQ_DESC_NEXT),
	};

	return d;
}

static int add_buf(struct virtq *q, struct virtq_elem *e, const struct desc *d)
{
	unsigned i = e->n_out + e->n_in;
	void *host;

	if (i >= VIRTQ_MAX_SEGS)
		return -EINVAL;
	if (!(d->flags & VIRTQ_DESC_F_WRITE) && e->n_in)
		return -EINVAL; /* readable after writable (§2.7.4.2) */
	host = d->len ? ram_map(q->ram, d->addr, d->len) : NULL;
	if (d->len && !host)
		return -EINVAL;
	e->iov[i] = (struct iovec){ host, d->len };
	e->gpa[i] = d->addr;
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		e->n_in++;
		e->in_len += d->len;
	} else {
		e->n_out++;
		e->out_len += d->len;
	}
	return 0;
}

int virtq_pop(struct virtq *q, struct virtq_elem *e)
{
	uint16_t n = q->s.size, idx, head;
	const uint8_t *table;
	unsigned max, count = 0, i;
	bool in_indirect = false;

	if (!q->avail)
		return 0;
	idx = avail_idx(q);
	if (idx == q->s.last_avail)
		return 0;
	if ((uint16_t)(idx - q->s.last_avail) > n)
		return -EINVAL; /* more available than the ring holds */
	head = get_le16(q->avail + VIRTQ_AVAIL_RING + 2 * (q->s.last_avail % n));
	if (head >= n)
		return -EINVAL;
	e->head = head;
	e->n_out = e->n_in = 0;
	e->out_len = e->in_len = 0;
	table = q->desc;
	max = n;
	i = head;
	for (;;) {
		struct desc d = read_desc(table, i);

		if (++count > max)
			return -EINVAL; /* a loop, or longer than the table */
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT) ||
			    !d.len || d.len % VIRTQ_DESC_SIZE ||
			    d.len / VIRTQ_DESC_SIZE > VIRTQ_MAX_SEGS)
				return -EINVAL;
			table = ram_map(q->ram, d.addr, d.len);
			if (!table)
				return -EINVAL;
			in_indirect = true;
			max = d.len / VIRTQ_DESC_SIZE;
			count = 0;
			i = 0;
			continue;
		}
		if (add_buf(q, e, &d))
			return -EINVAL;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		i = d.next;
		if (i >= max)
			return -EINVAL;
	}
	q->s.last_avail++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->s.last_avail--;
}

void virtq_dirty_in(struct virtq *q, const struct virtq_elem *e, uint64_t len)
{
	for (unsigned i = e->n_out; i < e->n_out + e->n_in && len; i++) {
		uint64_t part = MIN(len, e->iov[i].iov_len);

		ram_dirty(q->ram, e->gpa[i], part);
		len -= part;
	}
}

void virtq_push(struct virtq *q, const struct virtq_elem *e, uint32_t len)
{
	uint16_t n = q->s.size, slot;
	uint8_t *u;

	if (!q->used)
		return;
	slot = q->s.used_idx % n;
	u = q->used + VIRTQ_USED_RING + VIRTQ_USED_ELEM_SIZE * (size_t)slot;
	virtq_dirty_in(q, e, len);
	put_le32(u + VIRTQ_USED_ELEM_ID, e->head);
	put_le32(u + VIRTQ_USED_ELEM_LEN, len);
	q->s.used_idx++;
	/* Release: the element (and the data) before the index. */
	__atomic_store_n((uint16_t *)(q->used + VIRTQ_USED_IDX), htole16(q->s.used_idx),
			 __ATOMIC_RELEASE);
	ram_dirty(q->ram, q->s.used, used_bytes(n));
}

bool virtq_should_notify(struct virtq *q)
{
	if (!q->avail)
		return false;
	/* Our used index store before the driver's flags load. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !(get_le16(q->avail + VIRTQ_AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

void virtq_save(const struct virtq *q, struct buf *out)
{
	buf_put_u16(out, q->s.size);
	buf_put_u16(out, q->s.msix_vector);
	buf_put_u8(out, q->s.enabled);
	buf_put_u64(out, q->s.desc);
	buf_put_u64(out, q->s.avail);
	buf_put_u64(out, q->s.used);
	buf_put_u16(out, q->s.last_avail);
	buf_put_u16(out, q->s.used_idx);
}

int virtq_load_state(struct virtq_state *s, uint16_t max_size, struct reader *in)
{
	uint8_t en;

	s->size = reader_u16(in);
	s->msix_vector = reader_u16(in);
	en = reader_u8(in);
	s->desc = reader_u64(in);
	s->avail = reader_u64(in);
	s->used = reader_u64(in);
	s->last_avail = reader_u16(in);
	s->used_idx = reader_u16(in);
	s->enabled = en;
	if (in->short_read || en > 1 || !s->size || s->size > max_size)
		return -EINVAL;
	/* Every request taken was answered: the device drains before it
	 * saves, so nothing is in flight. */
	if (s->last_avail != s->used_idx)
		return -EINVAL;
	return 0;
}

/* Copies between [off, off + len) of iov[0..n) and buf, in the direction
 * to_iov says; returns the count copied. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len,
		       bool to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		uint8_t *p;

		if (off >= l) {
			off -= l;
			continue;
		}
		l = MIN(l - off, len - done);
		p = (uint8_t *)iov[i].iov_base + off;
		if (to_iov)
			memcpy(p, (const uint8_t *)buf + done, l);
		else
			memcpy((uint8_t *)buf + done, p, l);
		done += l;
		off = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len)
{
	return iov_copy(iov, n, off, dst, len, false);
}

size_t buf_to_iov(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len)
{
	return iov_copy(iov, n, off, (void *)src, len, true);
}

size_t iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
		 struct iovec *dst, unsigned *dn)
{
	size_t done = 0;

	*dn = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l = MIN(l - off, len - done);
		dst[(*dn)++] = (struct iovec){ (uint8_t *)iov[i].iov_base + off, l };
		done += l;
		off = 0;
	}
	return done;
}
