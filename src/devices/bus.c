#include "devices/bus.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *dev)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	if (b->n >= BUS_MAX_RANGES)
		return -ENOSPC;
	b->ranges[b->n++] = (struct bus_range){ base, len, ops, dev };
	return 0;
}

static const struct bus_range *bus_find(const struct bus *b, uint64_t addr, unsigned size)
{
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];

		if (addr >= r->base && range_within(addr - r->base, size, r->len))
			return r;
	}
	return NULL;
}

bool bus_read(struct bus *b, uint64_t addr, uint8_t *data, unsigned size)
{
	const struct bus_range *r = bus_find(b, addr, size);

	if (!r || !r->ops->read) {
		memset(data, 0xff, size);
		return r != NULL;
	}
	r->ops->read(r->dev, addr - r->base, data, size);
	return true;
}

bool bus_write(struct bus *b, uint64_t addr, const uint8_t *data, unsigned size)
{
	const struct bus_range *r = bus_find(b, addr, size);

	if (!r)
		return false;
	if (r->ops->write)
		r->ops->write(r->dev, addr - r->base, data, size);
	return true;
}
