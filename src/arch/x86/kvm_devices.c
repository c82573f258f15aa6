#include "arch/x86/kvm_devices.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>

#include "arch/x86/kvm_ioctl.h"
#include "arch/x86/layout.h"
#include "common/log.h"
#include "common/util.h"

/* ======================================================================
 * VM-wide in-kernel devices: irqchip, PIT, clock
 *
 * Their reset is a no-op: KVM puts them in their power-on state when the
 * VM is created, and ferry never resets a machine in place (a guest reset
 * stops the VM, VM_STOP_RESET), so there is nothing for it to do.
 * ====================================================================== */

#define X86_IRQCHIP_VERSION 1
#define X86_PIT_VERSION 1
#define X86_CLOCK_VERSION 1
#define PIT_COUNT_MAX 0x10000 /* a count of 0 is loaded as 65536 */
#define PIT_FLAGS_KNOWN (KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON)

static int vm_dev_fd(void *dev)
{
	return ((struct x86_kvm_devices *)dev)->vm_fd;
}

static void kvm_devices_reset(void *dev)
{
	(void)dev; /* see above */
}

/* ---- kvm-irqchip ----
 * Record (version 1): PIC master, PIC slave, each 16 u8 {last_irr, irr,
 * imr, isr, priority_add, irq_base, read_reg_select, poll, special_mask,
 * init_state, auto_eoi, rotate_on_auto_eoi, special_fully_nested_mode,
 * init4, elcr, elcr_mask}; then the IOAPIC: u64 base_address, u32 ioregsel,
 * u32 id, u32 irr, 24 × u64 redirection table entry (the architectural
 * RTE layout). 244 bytes. */

#define PIC_U8S(p)                                                                         \
	{ &(p)->last_irr, &(p)->irr, &(p)->imr, &(p)->isr, &(p)->priority_add,             \
	  &(p)->irq_base, &(p)->read_reg_select, &(p)->poll, &(p)->special_mask,           \
	  &(p)->init_state, &(p)->auto_eoi, &(p)->rotate_on_auto_eoi,                      \
	  &(p)->special_fully_nested_mode, &(p)->init4, &(p)->elcr, &(p)->elcr_mask }

static void pic_put(struct buf *b, struct kvm_pic_state *p)
{
	uint8_t *const u[] = PIC_U8S(p);

	buf_put_u8s(b, u, ARRAY_SIZE(u));
}

static void pic_get(struct reader *r, struct kvm_pic_state *p)
{
	uint8_t *const u[] = PIC_U8S(p);

	reader_u8s(r, u, ARRAY_SIZE(u));
}

static void ioapic_put(struct buf *b, const struct kvm_ioapic_state *io)
{
	buf_put_u64(b, io->base_address);
	buf_put_u32(b, io->ioregsel);
	buf_put_u32(b, io->id);
	buf_put_u32(b, io->irr);
	for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		buf_put_u64(b, io->redirtbl[i].bits);
}

static void ioapic_get(struct reader *r, struct kvm_ioapic_state *io)
{
	io->base_address = reader_u64(r);
	io->ioregsel = reader_u32(r);
	io->id = reader_u32(r);
	io->irr = reader_u32(r);
	for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		io->redirtbl[i].bits = reader_u64(r);
}

static int irqchip_save(void *dev, struct buf *out)
{
	struct kvm_irqchip c[KVM_NR_IRQCHIPS];
	int ret = 0;

	memset(c, 0, sizeof(c));
	for (unsigned i = 0; i < KVM_NR_IRQCHIPS && ret == 0; i++) {
		c[i].chip_id = i;
		ret = KVM_IOCTL(vm_dev_fd(dev), KVM_GET_IRQCHIP, &c[i]);
	}
	if (ret)
		return ret;
	pic_put(out, &c[KVM_IRQCHIP_PIC_MASTER].chip.pic);
	pic_put(out, &c[KVM_IRQCHIP_PIC_SLAVE].chip.pic);
	ioapic_put(out, &c[KVM_IRQCHIP_IOAPIC].chip.ioapic);
	return buf_finish(out);
}

static int irqchip_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct kvm_irqchip c[KVM_NR_IRQCHIPS];
	struct reader r;
	int ret = 0;

	if (version != X86_IRQCHIP_VERSION)
		return -EPROTO;
	memset(c, 0, sizeof(c));
	reader_init(&r, data, len);
	pic_get(&r, &c[KVM_IRQCHIP_PIC_MASTER].chip.pic);
	pic_get(&r, &c[KVM_IRQCHIP_PIC_SLAVE].chip.pic);
	ioapic_get(&r, &c[KVM_IRQCHIP_IOAPIC].chip.ioapic);
	/* KVM takes the IOAPIC's address from here: it must stay where the
	 * MADT says it is. */
	if (reader_finish(&r) || c[KVM_IRQCHIP_IOAPIC].chip.ioapic.base_address != IOAPIC_ADDR)
		return -EINVAL;
	for (unsigned i = 0; i < KVM_NR_IRQCHIPS && ret == 0; i++) {
		c[i].chip_id = i;
		ret = KVM_IOCTL(vm_dev_fd(dev), KVM_SET_IRQCHIP, &c[i]);
	}
	return ret;
}

const struct device_ops x86_irqchip_ops = {
	.name = "kvm-irqchip",
	.version = X86_IRQCHIP_VERSION,
	.save = irqchip_save,
	.load = irqchip_load,
	.reset = kvm_devices_reset,
};

/* ---- kvm-pit ----
 * Record (version 1): 3 channels, each {u32 count (<= 65536), u16
 * latched_count, u8 count_latched, status_latched, status, read_state,
 * write_state, write_latch, rw_mode, mode, bcd, gate}, then u32 flags
 * (KVM_PIT_FLAGS_*). 52 bytes.
 *
 * count_load_time is not in the record: it is a host CLOCK_MONOTONIC
 * timestamp, meaningless on another host, and KVM_SET_PIT2 does not keep
 * it anyway (it restarts channel 0's timer for a full period and sets
 * channels 1 and 2's load time to "now"). So a loaded PIT counts its
 * current period from the start again, as on QEMU with the in-kernel PIT
 * when the clocks of both hosts differ. */

#define PIT_CHANNEL_U8S(c)                                                                 \
	{ &(c)->count_latched, &(c)->status_latched, &(c)->status, &(c)->read_state,       \
	  &(c)->write_state, &(c)->write_latch, &(c)->rw_mode, &(c)->mode, &(c)->bcd,      \
	  &(c)->gate }

static void pit_channel_put(struct buf *b, struct kvm_pit_channel_state *c)
{
	uint8_t *const u[] = PIT_CHANNEL_U8S(c);

	buf_put_u32(b, c->count);
	buf_put_u16(b, c->latched_count);
	buf_put_u8s(b, u, ARRAY_SIZE(u));
}

static void pit_channel_get(struct reader *r, struct kvm_pit_channel_state *c)
{
	uint8_t *const u[] = PIT_CHANNEL_U8S(c);

	c->count = reader_u32(r);
	c->latched_count = reader_u16(r);
	reader_u8s(r, u, ARRAY_SIZE(u));
}

static int pit_save(void *dev, struct buf *out)
{
	struct kvm_pit_state2 p;
	int ret;

	memset(&p, 0, sizeof(p));
	ret = KVM_IOCTL(vm_dev_fd(dev), KVM_GET_PIT2, &p);
	if (ret)
		return ret;
	for (unsigned i = 0; i < ARRAY_SIZE(p.channels); i++)
		pit_channel_put(out, &p.channels[i]);
	buf_put_u32(out, p.flags);
	return buf_finish(out);
}

static int pit_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct kvm_pit_state2 p;
	struct reader r;

	if (version != X86_PIT_VERSION)
		return -EPROTO;
	memset(&p, 0, sizeof(p));
	reader_init(&r, data, len);
	for (unsigned i = 0; i < ARRAY_SIZE(p.channels); i++)
		pit_channel_get(&r, &p.channels[i]);
	p.flags = reader_u32(&r);
	if (reader_finish(&r) || p.flags & ~PIT_FLAGS_KNOWN)
		return -EINVAL;
	for (unsigned i = 0; i < ARRAY_SIZE(p.channels); i++)
		if (p.channels[i].count > PIT_COUNT_MAX)
			return -EINVAL;
	return KVM_IOCTL(vm_dev_fd(dev), KVM_SET_PIT2, &p);
}

const struct device_ops x86_pit_ops = {
	.name = "kvm-pit",
	.version = X86_PIT_VERSION,
	.save = pit_save,
	.load = pit_load,
	.reset = kvm_devices_reset,
};

/* ---- kvm-clock ----
 * Record (version 1): u64 clock (guest kvmclock, ns), u32 flags as
 * KVM_GET_CLOCK gave them (KVM_CLOCK_TSC_STABLE, _REALTIME, _HOST_TSC),
 * u64 realtime (host wall clock, ns, when the clock was read; valid with
 * KVM_CLOCK_REALTIME), u64 host_tsc (valid with KVM_CLOCK_HOST_TSC).
 * 28 bytes. KVM gives realtime only on hosts whose clocksource is the
 * TSC; elsewhere ferry reads CLOCK_REALTIME itself right after
 * KVM_GET_CLOCK and sets the flag, so that realtime is always there.
 *
 * Load advances the clock by the wall time that passed since it was read
 * (the migration's downtime, a saved file's time on disk): the guest's
 * kvmclock, and so its wall clock, goes on as the host's did while the VM
 * was stopped, rather than lagging by that much until NTP catches up
 * (QEMU's default). Never backwards: a destination whose wall clock is
 * behind the source's adds nothing. The guest's TSC keeps its saved value
 * (vCPU state, loaded before this); KVM maps TSC to kvmclock anew for each
 * vCPU, so the two stay consistent for the guest. A stream without
 * realtime (flag clear) loads the clock as it was. */

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int clock_save(void *dev, struct buf *out)
{
	struct kvm_clock_data c;
	int ret;

	memset(&c, 0, sizeof(c));
	ret = KVM_IOCTL(vm_dev_fd(dev), KVM_GET_CLOCK, &c);
	if (ret)
		return ret;
	if (!(c.flags & KVM_CLOCK_REALTIME)) {
		c.realtime = realtime_ns();
		c.flags |= KVM_CLOCK_REALTIME;
	}
	buf_put_u64(out, c.clock);
	buf_put_u32(out, c.flags);
	buf_put_u64(out, c.realtime);
	buf_put_u64(out, c.host_tsc);
	return buf_finish(out);
}

static int clock_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct kvm_clock_data c;
	struct reader r;
	uint64_t realtime, now;
	uint32_t flags;

	if (version != X86_CLOCK_VERSION)
		return -EPROTO;
	memset(&c, 0, sizeof(c));
	reader_init(&r, data, len);
	c.clock = reader_u64(&r);
	flags = reader_u32(&r);
	realtime = reader_u64(&r);
	(void)reader_u64(&r); /* host_tsc: for information */
	if (reader_finish(&r))
		return -EINVAL;
	now = realtime_ns();
	if ((flags & KVM_CLOCK_REALTIME) && now > realtime)
		c.clock += now - realtime;
	return KVM_IOCTL(vm_dev_fd(dev), KVM_SET_CLOCK, &c);
}

const struct device_ops x86_clock_ops = {
	.name = "kvm-clock",
	.version = X86_CLOCK_VERSION,
	.save = clock_save,
	.load = clock_load,
	.reset = kvm_devices_reset,
};
