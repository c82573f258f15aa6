/* A 16550A UART (COM1): transmit, a 16-byte receive FIFO, interrupts,
 * loopback (Linux's probe uses it), divisor latch, scratch. Output goes to
 * a callback (the host-side chardev); input is pushed in by the VM's main
 * loop with serial_receive(). */
#ifndef FERRY_DEVICES_SERIAL_H
#define FERRY_DEVICES_SERIAL_H

#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

#define SERIAL_FIFO 16

/* Everything the guest can observe; saved and loaded as is. */
struct serial_state {
	uint8_t ier, lcr, mcr, msr, scr, dll, dlm, fcr;
	uint8_t lsr_err;      /* overrun error latched until LSR is read */
	uint8_t thr_ipending; /* THR-empty interrupt pending */
	uint8_t rx[SERIAL_FIFO];
	uint8_t rx_head, rx_count;
};

struct serial {
	struct serial_state s;
	struct irq_line irq;
	void (*out)(void *ctx, uint8_t byte); /* transmitted bytes */
	void *out_ctx;
	int irq_level; /* last level driven, -1 = unknown */
};

extern const struct bus_ops serial_bus_ops;
extern const struct device_ops serial_device_ops;

void serial_init(struct serial *s, struct irq_line irq,
		 void (*out)(void *ctx, uint8_t byte), void *out_ctx);

/* Room in the receive FIFO (0 when the guest has not drained it). */
unsigned serial_rx_room(const struct serial *s);

/* Queues up to len received bytes; returns how many were taken. */
unsigned serial_receive(struct serial *s, const uint8_t *data, unsigned len);

#endif
