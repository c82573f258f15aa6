/* Port-I/O and MMIO dispatch: address ranges mapped to device callbacks.
 * The caller serialises access (vm.c holds the VM's I/O lock). */
#ifndef FERRY_DEVICES_BUS_H
#define FERRY_DEVICES_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* size is 1, 2, 4 or 8; offset is relative to the range's base. */
	void (*read)(void *dev, uint64_t offset, uint8_t *data, unsigned size);
	void (*write)(void *dev, uint64_t offset, const uint8_t *data, unsigned size);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *dev;
};

#define BUS_MAX_RANGES 64

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	struct bus_range ranges[BUS_MAX_RANGES];
	unsigned n;
};

/* Maps [base, base + len) to dev. Returns 0, -EEXIST on overlap, -ENOSPC. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *dev);

/* Dispatches an access. Returns false when no device claims addr; reads of
 * unclaimed addresses return all ones, as on a PC. */
bool bus_read(struct bus *b, uint64_t addr, uint8_t *data, unsigned size);
bool bus_write(struct bus *b, uint64_t addr, const uint8_t *data, unsigned size);

#endif
