/* A 16550A UART (COM1): 16-byte transmit and receive FIFOs, interrupts,
 * loopback (Linux's probe uses it), divisor latch, scratch. Transmitted
 * bytes are offered to a non-blocking sink (the host-side chardev) that
 * says how many it took: what it does not take stays in the TX FIFO with
 * THRE clear, as on a UART whose line is flow-controlled, and the guest
 * waits for THRE; the VM's main loop offers it again with serial_tx_drain()
 * once the sink can take more. Input is pushed in by the main loop with
 * serial_receive(). */
#ifndef FERRY_DEVICES_SERIAL_H
#define FERRY_DEVICES_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

#define SERIAL_FIFO 16

/* Everything the guest can observe; saved and loaded as is. */
struct serial_state {
	uint8_t ier, lcr, mcr, msr, scr, dll, dlm, fcr;
	uint8_t lsr_err;      /* overrun error latched until LSR is read */
	uint8_t thr_ipending; /* THR-empty interrupt pending (only with tx_count 0) */
	uint8_t rx[SERIAL_FIFO];
	uint8_t rx_head, rx_count;
	/* Written by the guest, not yet taken by the sink: THRE is clear
	 * while any is here. At most 1 byte is queued with the FIFO off. */
	uint8_t tx[SERIAL_FIFO];
	uint8_t tx_head, tx_count;
};

/* Takes up to len transmitted bytes (len <= SERIAL_FIFO, oldest first) and
 * returns how many it took, from the front. Must not block: it runs on a
 * vCPU thread in the middle of a port write. A sink with nowhere to put
 * the bytes takes (discards) them all, so that the guest never stalls. */
typedef size_t serial_out_fn(void *ctx, const uint8_t *data, size_t len);

struct serial {
	struct serial_state s;
	struct irq_line irq;
	serial_out_fn *out; /* NULL: transmitted bytes are discarded */
	void *out_ctx;
	int irq_level; /* last level driven, -1 = unknown */
};

extern const struct bus_ops serial_bus_ops;
extern const struct device_ops serial_device_ops;

void serial_init(struct serial *s, struct irq_line irq, serial_out_fn *out, void *out_ctx);

/* Room in the receive FIFO (0 when the guest has not drained it). */
unsigned serial_rx_room(const struct serial *s);

/* Queues up to len received bytes; returns how many were taken. */
unsigned serial_receive(struct serial *s, const uint8_t *data, unsigned len);

/* Bytes the guest wrote that the sink has not taken yet. */
unsigned serial_tx_pending(const struct serial *s);

/* Offers the pending bytes to the sink again (after a load, or once the
 * sink can take more); when the FIFO empties, THRE is set and its
 * interrupt raised. Returns the bytes still pending. Call it under the
 * same lock as the port accesses. */
unsigned serial_tx_drain(struct serial *s);

#endif
