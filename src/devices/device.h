/* What every emulated device shares: an ops table through which its state
 * is reset, saved and loaded (the migration registry reads these), the
 * interrupt lines it drives, and the requests it can make of the machine.
 * A device never knows about KVM, migration or transports. */
#ifndef FERRY_DEVICES_DEVICE_H
#define FERRY_DEVICES_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct device_ops {
	const char *name;  /* state record name, stable across releases */
	uint32_t version;  /* layout version that save() writes */
	/* Appends the device's guest-visible state (no host resources, no
	 * derived values) to out. Returns 0 or -errno. */
	int (*save)(void *dev, struct buf *out);
	/* Replaces the device's state with a record written by save() of
	 * `version`; checks every field; recomputes derived state (such as
	 * interrupt levels). On error the device is unchanged. */
	int (*load)(void *dev, uint32_t version, const uint8_t *data, size_t len);
	/* Puts the device in its power-on state. */
	void (*reset)(void *dev);
	/* Optional, for devices that work outside the vCPUs (virtio I/O
	 * threads). pause: finish every request in flight and take no new one
	 * (after it returns, neither guest RAM nor the device state changes);
	 * resume: carry on (opening what the device deferred opening, such as
	 * a migrated disk); flush: make what was written durable. */
	void (*pause)(void *dev);
	int (*resume)(void *dev);
	int (*flush)(void *dev);
};

#define DEVICE_MAX 32

struct device {
	const struct device_ops *ops;
	unsigned instance; /* 0, 1, ... among devices with the same name */
	void *dev;
	bool after_vcpus;  /* state loads after the vCPUs' (the guest clock) */
};

/* The VM's devices, in registration order: the order their state is saved
 * and loaded in. */
struct device_list {
	struct device items[DEVICE_MAX];
	unsigned n;
};

/* Adds a device. Returns 0 or -ENOSPC / -EEXIST (same name and instance). */
int device_register(struct device_list *l, const struct device_ops *ops, unsigned instance,
		    void *dev);

/* The same, for a device whose state must be loaded after the vCPUs'. */
int device_register_after_vcpus(struct device_list *l, const struct device_ops *ops,
				unsigned instance, void *dev);

/* Pause, resume or flush every device that has the hook, in order. resume
 * and flush return the first error (after trying every device). */
void device_list_pause(struct device_list *l);
int device_list_resume(struct device_list *l);
int device_list_flush(struct device_list *l);

/* An interrupt line to the interrupt controllers (in-kernel on KVM). */
struct irq_line {
	void (*set)(void *ctx, unsigned gsi, bool level);
	void *ctx;
	unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *l, bool level)
{
	if (l->set)
		l->set(l->ctx, l->gsi, level);
}

/* What a device may ask of the machine it is plugged into. */
enum machine_request {
	MACHINE_POWEROFF, /* ACPI S5 */
	MACHINE_RESET,    /* i8042 pulse, 0xCF9 */
};

struct machine_link {
	void (*request)(void *ctx, enum machine_request req);
	void *ctx;
};

static inline void machine_request(const struct machine_link *m, enum machine_request req)
{
	if (m->request)
		m->request(m->ctx, req);
}

#endif
