/* Guest RAM as a device sees it when it does DMA: every guest-supplied
 * address is translated (and bounds-checked) through map(), and every byte
 * a device writes is reported through dirty() so that a migration running
 * meanwhile sends the page again. The VMM fills this in; devices never see
 * how RAM is laid out. */
#ifndef FERRY_DEVICES_DMA_H
#define FERRY_DEVICES_DMA_H

#include <stdint.h>

struct guest_ram {
	/* Host address of [gpa, gpa + len), or NULL when any of it is not
	 * RAM. */
	void *(*map)(void *ctx, uint64_t gpa, uint64_t len);
	void (*dirty)(void *ctx, uint64_t gpa, uint64_t len);
	void *ctx;
};

static inline void *ram_map(const struct guest_ram *r, uint64_t gpa, uint64_t len)
{
	return r->map(r->ctx, gpa, len);
}

static inline void ram_dirty(const struct guest_ram *r, uint64_t gpa, uint64_t len)
{
	if (r->dirty)
		r->dirty(r->ctx, gpa, len);
}

#endif
