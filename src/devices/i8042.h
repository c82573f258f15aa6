/* The PS/2 controller as far as an OS without a keyboard needs it: status,
 * command byte, self-test, and the reset pulse (command 0xFE) that OSes use
 * to reboot. No keyboard or mouse is attached. */
#ifndef FERRY_DEVICES_I8042_H
#define FERRY_DEVICES_I8042_H

#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

struct i8042_state {
	uint8_t cmd_byte;  /* controller configuration byte */
	uint8_t pending;   /* command waiting for its data byte (0 = none) */
	uint8_t out;       /* output buffer */
	uint8_t out_full;  /* output buffer holds a byte */
	uint8_t outport;   /* output port (bit 1: A20) */
};

struct i8042 {
	struct i8042_state s;
	struct machine_link machine;
};

extern const struct bus_ops i8042_bus_ops; /* one range 0x60-0x64 */
extern const struct device_ops i8042_device_ops;

void i8042_init(struct i8042 *k, struct machine_link machine);

#endif
