/* vCPU and in-kernel device state, save and load, on real KVM: a paused
 * VM saves the same bytes twice; its state loaded into a second VM in the
 * same process saves the same bytes again (STYLE.md §12) and runs on from
 * where the first stopped; malformed records are refused untouched.
 *
 * Two things of a paused VM move, and are compared apart:
 *  - the kvm-clock record: kvmclock runs while the vCPUs are parked;
 *  - MSR_IA32_TSC. On a host whose TSC is stable it runs on while the
 *    vCPUs are parked. Where the host kernel found its TSC unstable (the
 *    test host's does unless booted with tsc=reliable: its two emulated
 *    CPUs' TSCs disagree), KVM holds a vCPU's TSC still outside KVM_RUN
 *    instead: every vCPU ioctl restarts it from the value it had when the
 *    vCPU last ran (kvm_arch_vcpu_load), and KVM catches it up at the next
 *    entry. A save then reads it up to the length of that save after it
 *    started, and a later save may read less.
 * Both must go on from the saved value by no more than the time the test
 * takes. The TSC may fall behind it by the length of the earlier save;
 * and a loaded VM's vCPUs share vCPU 0's TSC (KVM matches the later
 * vCPUs' writes to the first's), so a later vCPU's also by as much as its
 * saved value was read after vCPU 0's. That holds also when the saved VM
 * is younger than a second, which KVM before 6.7 would take for a TSC
 * synchronisation with the new VM's own (tsc_unsync in cpu_state.c;
 * test_vcpu_extra_msrs loads a vCPU milliseconds old into a VM created
 * just after it).
 * Without /dev/kvm the tests SKIP (exit 77), loudly. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/cpu_state.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "vm/vcpu.h"
#include "vm/vm.h"

#define NCPUS 2
#define SPIN_COUNTER 0x200000
#define MSR_IA32_TSC 0x10
#define ONE_SECOND_NS 1000000000ull

/* tests/payloads/ring3io.S: the port its ring-3 loop writes, its TR. */
#define RING3IO_PORT 0x88
#define RING3IO_TSS_SEL 0x28
#define RING3IO_TSS_LIMIT (0x68 + RING3IO_PORT / 8 + 2 - 1)
/* tests/payloads/timer.S: its vector, its ports, how long its timer runs. */
#define TIMER_VECTOR 0x40
#define TIMER_IRQ_PORT 0x89
#define TIMER_ARMED_PORT 0x8a
#define TIMER_MS 200
#define APIC_IRR 0x200
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390
/* Runs of the timer payload tried before a test gives up: its timer may
 * fire before a loaded host pauses the vCPU. */
#define TIMER_TRIES 5

static const char *payload_dir;
/* Why the last vcpu_load refused (x86_vcpu_load logs nothing). */
static char load_err[512];

static int vcpu_load(struct vm *vm, unsigned i, uint32_t version, const uint8_t *p, size_t len,
		     bool first)
{
	return x86_vcpu_load(vm->kvm.fd, vm->vcpus[i].fd, version, p, len, first, load_err,
			     sizeof(load_err));
}

/* The in-kernel devices, in load order; the clock is loaded after the
 * vCPUs. */
enum { DEV_IRQCHIP, DEV_PIT, DEV_CLOCK, NDEVS };
static const struct device_ops *const kvm_devs[NDEVS] = { &x86_irqchip_ops, &x86_pit_ops,
							   &x86_clock_ops };

struct saved {
	struct buf vcpu[NCPUS];
	uint64_t vcpu_ns[NCPUS]; /* how long each vCPU's save took */
	struct buf dev[NDEVS];
};

static void saved_free(struct saved *s)
{
	for (unsigned i = 0; i < NCPUS; i++)
		buf_free(&s->vcpu[i]);
	for (unsigned i = 0; i < NDEVS; i++)
		buf_free(&s->dev[i]);
}

static int vm_make(struct vm *vm, const char *payload)
{
	char kernel[512];
	struct vm_config cfg = { .name = "test-state", .memory_mib = 64, .cpus = NCPUS,
				 .serial = "null", .kernel = kernel };

	snprintf(kernel, sizeof(kernel), "%s/%s.elf", payload_dir, payload);
	return vm_create(vm, &cfg);
}

/* Saves vCPU i of vm into out; returns how long that took. */
static uint64_t vcpu_save(struct vm *vm, unsigned i, struct buf *out)
{
	uint64_t t0 = time_now_ns();

	assert_int_equal(x86_vcpu_save(vm->kvm.fd, vm->vcpus[i].fd, out), 0);
	return time_now_ns() - t0;
}

static void state_save(struct vm *vm, struct saved *s)
{
	struct x86_kvm_devices d = { .vm_fd = vm->fd };

	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < NDEVS; i++)
		assert_int_equal(kvm_devs[i]->save(&d, &s->dev[i]), 0);
	for (unsigned i = 0; i < NCPUS; i++)
		s->vcpu_ns[i] = vcpu_save(vm, i, &s->vcpu[i]);
}

/* The order of DESIGN.md: irqchip and PIT, the vCPUs, then the clock. */
static void state_load(struct vm *vm, const struct saved *s)
{
	struct x86_kvm_devices d = { .vm_fd = vm->fd };
	const struct buf *b;

	for (unsigned i = 0; i < NDEVS; i++) {
		if (i == DEV_CLOCK)
			continue;
		b = &s->dev[i];
		assert_int_equal(kvm_devs[i]->load(&d, kvm_devs[i]->version, b->data, b->len), 0);
	}
	for (unsigned i = 0; i < NCPUS; i++) {
		b = &s->vcpu[i];
		assert_int_equal(vcpu_load(vm, i, X86_VCPU_STATE_VERSION, b->data, b->len, i == 0), 0);
	}
	b = &s->dev[DEV_CLOCK];
	assert_int_equal(x86_clock_ops.load(&d, x86_clock_ops.version, b->data, b->len), 0);
}

/* Byte offset of MSR index's value in a vCPU record; 0 when absent. */
static size_t record_msr_offset(const struct buf *b, uint32_t index)
{
	struct x86_vcpu_record_layout lay;

	assert_int_equal(x86_vcpu_record_check(X86_VCPU_STATE_VERSION, b->data, b->len, &lay), 0);
	for (uint32_t i = 0; i < lay.nmsrs; i++) {
		size_t at = lay.msrs + 4 + (size_t)i * 12;

		if (get_le32(b->data + at) == index)
			return at + 4;
	}
	return 0;
}

/* The section of a vCPU record byte off is in, and in the MSRs which one. */
static const char *record_section(const struct buf *b, size_t off)
{
	static const char *const names[] = { "cpuid", "tsc_khz", "sregs", "regs",
					      "xsave", "xcrs", "msrs", "mp_state",
					      "lapic", "events", "debugregs" };
	static char msr[32];
	struct x86_vcpu_record_layout l;
	const char *name = "?";

	if (x86_vcpu_record_check(X86_VCPU_STATE_VERSION, b->data, b->len, &l))
		return name;
	const size_t at[] = { l.cpuid, l.tsc_khz, l.sregs, l.regs, l.xsave, l.xcrs,
			      l.msrs, l.mp_state, l.lapic, l.events, l.debugregs };
	for (size_t i = 0; i < ARRAY_SIZE(at); i++)
		if (off >= at[i])
			name = names[i];
	if (off >= l.msrs + 4 && off < l.mp_state) {
		size_t e = l.msrs + 4 + (off - l.msrs - 4) / 12 * 12;

		snprintf(msr, sizeof(msr), "msrs: MSR 0x%x", get_le32(b->data + e));
		name = msr;
	}
	return name;
}

static void assert_same_bytes(const char *what, const struct buf *a, const struct buf *b,
			      const struct buf *layout)
{
	if (a->len != b->len)
		fail_msg("%s: %zu bytes, then %zu", what, a->len, b->len);
	for (size_t i = 0; i < a->len; i++)
		if (a->data[i] != b->data[i])
			fail_msg("%s: first difference at byte %zu (%s): 0x%02x, then 0x%02x", what,
				 i, layout ? record_section(layout, i) : "", a->data[i], b->data[i]);
}

/* Checks that MSR index, which both records must have, moved from a's
 * value to b's by at most `back` down and less than `ahead` up; then
 * zeroes it in both (copies of the records). */
static void assert_msr_moved(const char *what, const char *name, struct buf *a, struct buf *b,
			     uint32_t index, uint64_t back, uint64_t ahead)
{
	size_t at = record_msr_offset(a, index);
	uint64_t va, vb;

	assert_true(at != 0 && at == record_msr_offset(b, index));
	va = get_le64(a->data + at);
	vb = get_le64(b->data + at);
	if (vb < va ? va - vb > back : vb - va >= ahead)
		fail_msg("%s: %s %" PRIu64 ", then %" PRIu64 " (%+" PRId64 "): more than %" PRIu64
			 " back or %" PRIu64 " ahead", what, name, va, vb, (int64_t)(vb - va), back,
			 ahead);
	put_le64(a->data + at, 0);
	put_le64(b->data + at, 0);
}

static uint64_t record_tsc(const struct buf *b)
{
	size_t at = record_msr_offset(b, MSR_IA32_TSC);

	assert_true(at != 0);
	return get_le64(b->data + at);
}

/* Compares two vCPU records, b saved (or loaded from a and saved) less than
 * max_ns after a: the same bytes but for the TSC, which moves as the
 * file's head comment says, and may be up to back_ns behind a's. */
static void assert_same_vcpu(const char *what, const struct buf *a, const struct buf *b,
			     uint32_t tsc_khz, uint64_t back_ns, uint64_t max_ns)
{
	struct buf ca = { 0 }, cb = { 0 };

	buf_put(&ca, a->data, a->len);
	buf_put(&cb, b->data, b->len);
	assert_int_equal(buf_finish(&ca) ?: buf_finish(&cb), 0);
	assert_msr_moved(what, "MSR_IA32_TSC", &ca, &cb, MSR_IA32_TSC,
			 back_ns * tsc_khz / 1000000, max_ns / 1000000 * tsc_khz);
	assert_same_bytes(what, &ca, &cb, a);
	buf_free(&ca);
	buf_free(&cb);
}

static uint64_t clock_of(const struct buf *b)
{
	assert_int_equal(b->len, 28);
	return get_le64(b->data);
}

/* b was saved after a (or loaded from it): the same state, time gone on.
 * A vCPU's TSC may be behind a's by the length of its save in a, and a
 * later vCPU's also by as much as a read it ahead of vCPU 0's: a loaded
 * VM's vCPUs share vCPU 0's TSC, as the saved one's did. */
static void assert_same_state(const struct saved *a, const struct saved *b, uint32_t tsc_khz,
			      uint64_t max_ns)
{
	uint64_t tsc0 = record_tsc(&a->vcpu[0]);
	char what[32];

	for (unsigned i = 0; i < NCPUS; i++) {
		uint64_t tsc = record_tsc(&a->vcpu[i]);
		uint64_t ahead = tsc > tsc0 ? (tsc - tsc0) * 1000000 / tsc_khz : 0;

		snprintf(what, sizeof(what), "vCPU %u", i);
		assert_same_vcpu(what, &a->vcpu[i], &b->vcpu[i], tsc_khz, a->vcpu_ns[i] + ahead,
				 max_ns);
	}
	assert_same_bytes("kvm-irqchip", &a->dev[DEV_IRQCHIP], &b->dev[DEV_IRQCHIP], NULL);
	assert_same_bytes("kvm-pit", &a->dev[DEV_PIT], &b->dev[DEV_PIT], NULL);
	assert_true(clock_of(&b->dev[DEV_CLOCK]) >= clock_of(&a->dev[DEV_CLOCK]));
	assert_true(clock_of(&b->dev[DEV_CLOCK]) - clock_of(&a->dev[DEV_CLOCK]) < max_ns);
}

static uint32_t spin_counter(struct vm *vm)
{
	volatile uint32_t *p = mem_gpa_to_hva(&vm->mem, SPIN_COUNTER, 4);

	return *p;
}

static void print_msrs(const struct buf *b)
{
	struct x86_vcpu_record_layout lay;

	assert_int_equal(x86_vcpu_record_check(X86_VCPU_STATE_VERSION, b->data, b->len, &lay), 0);
	printf("# vCPU record: %zu bytes, %u MSRs:", b->len, lay.nmsrs);
	for (uint32_t i = 0; i < lay.nmsrs; i++)
		printf(" %x", get_le32(b->data + lay.msrs + 4 + (size_t)i * 12));
	printf("\n");
}

static void test_save_load_save(void **state)
{
	struct vm *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct saved s1, s2, s3;
	uint64_t t0 = time_now_ns(), t1;
	uint32_t count, tsc_khz;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(vm_make(a, "spin"), 0);
	assert_int_equal(vm_start(a), 0);
	usleep(200000);
	vm_pause(a);
	count = spin_counter(a);
	assert_true(count > 0);
	tsc_khz = a->tsc_khz;

	/* Paused: saving again gives the same state. */
	state_save(a, &s1);
	state_save(a, &s2);
	print_msrs(&s1.vcpu[0]);
	t1 = time_now_ns();
	assert_same_state(&s1, &s2, tsc_khz, t1 - t0 + ONE_SECOND_NS);

	/* A second VM, never run: RAM copied, state loaded, saved again. */
	assert_int_equal(vm_make(b, "spin"), 0);
	assert_int_equal(a->mem.size, b->mem.size);
	memcpy(b->mem.host, a->mem.host, a->mem.size);
	state_load(b, &s1);
	state_save(b, &s3);
	assert_same_state(&s1, &s3, tsc_khz, time_now_ns() - t0 + ONE_SECOND_NS);

	/* The second VM runs on from where the first stopped. */
	vm_destroy(a);
	assert_int_equal(spin_counter(b), count);
	assert_int_equal(vm_start(b), 0);
	usleep(200000);
	vm_pause(b);
	assert_int_equal(vm_stop_reason(b), VM_STOP_NONE);
	printf("# counter: %u at save, %u after 200 ms in the second VM\n", count,
	       spin_counter(b));
	assert_true(spin_counter(b) > count);
	vm_destroy(b);
	saved_free(&s1);
	saved_free(&s2);
	saved_free(&s3);
	free(a);
	free(b);
}

/* MSRs KVM_GET_MSR_INDEX_LIST lacks (MTRRs, TSC_AUX) travel when a guest
 * set them: set on a vCPU of one VM, loaded into another's, saved equal. */
static void test_vcpu_extra_msrs(void **state)
{
	static const struct kvm_msr_entry set[] = {
		{ .index = 0x2ff, .data = 0xc06 },                 /* MTRRdefType */
		{ .index = 0x250, .data = 0x0606060606060606ull }, /* MTRRfix64K_00000 */
		{ .index = 0x200, .data = 0x6 },                   /* MTRRphysBase0 */
		{ .index = 0x201, .data = 0xfff0000800ull },       /* MTRRphysMask0 */
		{ .index = 0xc0000103, .data = 3 },                /* TSC_AUX */
	};
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry e[ARRAY_SIZE(set)];
	} m = { .head.nmsrs = ARRAY_SIZE(set) };
	struct vm *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct buf ra = { 0 }, rb = { 0 };
	uint64_t t0 = time_now_ns(), a_ns;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(vm_make(a, "spin"), 0);
	assert_int_equal(vm_make(b, "spin"), 0);
	memcpy(m.e, set, sizeof(set));
	assert_int_equal(ioctl(a->vcpus[0].fd, KVM_SET_MSRS, &m), (int)ARRAY_SIZE(set));
	a_ns = vcpu_save(a, 0, &ra);
	for (size_t i = 0; i < ARRAY_SIZE(set); i++) {
		size_t at = record_msr_offset(&ra, set[i].index);

		assert_true(at != 0);
		assert_true(get_le64(ra.data + at) == set[i].data);
	}
	assert_int_equal(vcpu_load(b, 0, X86_VCPU_STATE_VERSION, ra.data, ra.len, true), 0);
	vcpu_save(b, 0, &rb);
	assert_same_vcpu("vCPU 0 with MTRRs and TSC_AUX", &ra, &rb, a->tsc_khz, a_ns,
			 time_now_ns() - t0 + ONE_SECOND_NS);
	buf_free(&ra);
	buf_free(&rb);
	vm_destroy(a);
	vm_destroy(b);
	free(a);
	free(b);
}

/* ---- ring-3 port I/O after a load ---- */

/* A port that counts what is written to it. */
struct port_counter {
	uint64_t writes;
	uint8_t first, last; /* the first and last byte written */
};

static void port_counter_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct port_counter *c = dev;

	(void)offset;
	(void)size;
	if (c->writes++ == 0)
		c->first = data[0];
	c->last = data[0];
}

static void port_counter_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	(void)dev;
	(void)offset;
	memset(data, 0xff, size);
}

static const struct bus_ops port_counter_ops = {
	.read = port_counter_read,
	.write = port_counter_write,
};

static uint64_t port_writes(struct vm *vm, const struct port_counter *c)
{
	uint64_t n;

	pthread_mutex_lock(&vm->io_lock);
	n = c->writes;
	pthread_mutex_unlock(&vm->io_lock);
	return n;
}

/* Lets vm run until its port has seen n more writes or timeout_ms went by
 * or it stopped; then pauses it. */
static void port_run(struct vm *vm, const struct port_counter *c, uint64_t n, int timeout_ms)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000;
	uint64_t start = port_writes(vm, c);

	while (port_writes(vm, c) - start < n && vm_stop_reason(vm) == VM_STOP_NONE &&
	       time_now_ns() < deadline)
		usleep(10000);
	vm_pause(vm);
}

static void get_sregs(struct vm *vm, struct kvm_sregs *sr)
{
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_SREGS, sr), 0);
}

/* Ring-3 port I/O that the TSS's I/O permission bitmap allows goes on once
 * the vCPU's state is in another VM: TR comes back with its base, limit,
 * selector and present bit, and with a type this host's KVM runs it with.
 * (On SVM that needs tr_type_for_host in cpu_state.c: the test host's
 * emulated SVM raises #GP on the first OUT otherwise, and the payload,
 * without an IDT, triple-faults.) */
static void test_ring3_io_after_load(void **state)
{
	struct vm *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct port_counter ca = { 0 }, cb = { 0 };
	struct kvm_sregs ra, rb;
	struct saved s1, s3;
	uint64_t t0;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(vm_make(a, "ring3io"), 0);
	assert_int_equal(bus_register(&a->pio, RING3IO_PORT, 1, &port_counter_ops, &ca), 0);
	assert_int_equal(vm_start(a), 0);
	port_run(a, &ca, 100, 20000);
	assert_int_equal(vm_stop_reason(a), VM_STOP_NONE);
	assert_true(ca.writes >= 100);
	get_sregs(a, &ra);
	assert_int_equal(ra.cs.selector & 3, 3);
	assert_int_equal(ra.tr.selector, RING3IO_TSS_SEL);
	assert_int_equal(ra.tr.limit, RING3IO_TSS_LIMIT);
	assert_int_equal(ra.tr.present, 1);
	assert_true(ra.tr.base >= 0x100000 && ra.tr.base < 0x200000); /* in the payload */
	t0 = time_now_ns();
	state_save(a, &s1);

	assert_int_equal(vm_make(b, "ring3io"), 0);
	assert_int_equal(bus_register(&b->pio, RING3IO_PORT, 1, &port_counter_ops, &cb), 0);
	memcpy(b->mem.host, a->mem.host, a->mem.size);
	state_load(b, &s1);
	get_sregs(b, &rb);
	assert_true(rb.tr.base == ra.tr.base);
	assert_int_equal(rb.tr.limit, ra.tr.limit);
	assert_int_equal(rb.tr.selector, ra.tr.selector);
	assert_int_equal(rb.tr.present, ra.tr.present);
	state_save(b, &s3);
	assert_same_state(&s1, &s3, a->tsc_khz, time_now_ns() - t0 + ONE_SECOND_NS);
	vm_destroy(a);

	assert_int_equal(vm_start(b), 0);
	port_run(b, &cb, 100, 20000);
	printf("# port 0x%x: %" PRIu64 " writes in the first VM (last 0x%02x), %" PRIu64
	       " in the second (first 0x%02x), which stopped: %d\n", RING3IO_PORT, ca.writes,
	       ca.last, cb.writes, cb.first, vm_stop_reason(b));
	if (vm_stop_reason(b) != VM_STOP_NONE)
		fail_msg("the second VM stopped (reason %d) after %" PRIu64 " writes to port 0x%x: "
			 "ring-3 port I/O faults there", vm_stop_reason(b), cb.writes, RING3IO_PORT);
	assert_true(cb.writes >= 100);
	assert_int_equal(cb.first, (uint8_t)(ca.last + 1)); /* it went on where it stopped */
	vm_destroy(b);
	saved_free(&s1);
	saved_free(&s3);
	free(a);
	free(b);
}

/* ---- a one-shot timer that ran out while the vCPU was paused ---- */

/* Bit v of IRR in a LAPIC register page. */
static bool irr_has(const uint8_t *regs, unsigned v)
{
	return get_le32(regs + APIC_IRR + 0x10 * (v / 32)) & (1u << (v % 32));
}

static bool lapic_irr_has(const struct kvm_lapic_state *l, unsigned v)
{
	return irr_has((const uint8_t *)l->regs, v);
}

/* The LAPIC register page of a saved vCPU record. */
static const uint8_t *record_lapic(const struct buf *b)
{
	struct x86_vcpu_record_layout lay;

	assert_int_equal(x86_vcpu_record_check(X86_VCPU_STATE_VERSION, b->data, b->len, &lay), 0);
	return b->data + lay.lapic;
}

static void get_lapic(struct vm *vm, struct kvm_lapic_state *l)
{
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_LAPIC, l), 0);
}

/* Makes a the timer payload's VM, with port counters on its ports, runs it
 * until its timer is armed and pauses it. False (a destroyed) when the
 * timer fired before the vCPU could be paused: on a loaded host (the test
 * host, everything emulated) the 10 ms polls and the pause can take longer
 * than the timer's TIMER_MS. */
static bool timer_vm_armed(struct vm *a, struct port_counter *irqs, struct port_counter *armed)
{
	*irqs = (struct port_counter){ 0 };
	*armed = (struct port_counter){ 0 };
	assert_int_equal(vm_make(a, "timer"), 0);
	assert_int_equal(bus_register(&a->pio, TIMER_IRQ_PORT, 1, &port_counter_ops, irqs), 0);
	assert_int_equal(bus_register(&a->pio, TIMER_ARMED_PORT, 1, &port_counter_ops, armed), 0);
	assert_int_equal(vm_start(a), 0);
	port_run(a, armed, 1, 20000); /* paused once the timer is armed */
	assert_int_equal(vm_stop_reason(a), VM_STOP_NONE);
	assert_int_equal(armed->writes, 1);
	if (!irqs->writes)
		return true;
	vm_destroy(a);
	return false;
}

/* A VM loaded from s1 (RAM from a) with port counters on the timer
 * payload's ports. */
static void timer_vm_load(struct vm *b, struct vm *a, const struct saved *s1,
			  struct port_counter *irqs, struct port_counter *armed)
{
	assert_int_equal(vm_make(b, "timer"), 0);
	assert_int_equal(bus_register(&b->pio, TIMER_IRQ_PORT, 1, &port_counter_ops, irqs), 0);
	assert_int_equal(bus_register(&b->pio, TIMER_ARMED_PORT, 1, &port_counter_ops, armed), 0);
	memcpy(b->mem.host, a->mem.host, a->mem.size);
	state_load(b, s1);
}

/* A one-shot APIC timer that runs out while the vCPU is out of KVM_RUN
 * (paused for a save, or for a migration's final state) is only counted in
 * KVM then: KVM_GET_LAPIC shows it neither in IRR nor in TMCCT (0, as for
 * a timer that fired long ago). The save puts its vector in IRR
 * (x86_lapic_raise_expired_timer), so that the loaded vCPU takes exactly
 * that one interrupt: not lost, and not twice. The load sets the bit too
 * (for streams of a ferry that did not), so the saved record is checked
 * for it: only that shows the save did. A third VM, loaded and then
 * given the LAPIC without that IRR bit, shows what this host's KVM does by
 * itself (printed; recent KVM starts the timer again at TMCCT 0, i.e. at
 * once). */
static void test_expired_timer_after_load(void **state)
{
	struct vm *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b)), *c = calloc(1, sizeof(*c));
	struct port_counter ia = { 0 }, aa = { 0 }, ib = { 0 }, ab = { 0 }, ic = { 0 }, ac = { 0 };
	struct kvm_lapic_state la, lc;
	const uint8_t *saved_lapic;
	struct saved s1;
	unsigned tries = 1;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	while (!timer_vm_armed(a, &ia, &aa)) {
		printf("# try %u: the timer fired before the vCPU could be paused (%d ms)\n", tries,
		       TIMER_MS);
		if (tries++ == TIMER_TRIES)
			fail_msg("the timer fired before the vCPU could be paused (%d ms) in %d tries: "
				 "nothing tested", TIMER_MS, TIMER_TRIES);
	}
	usleep(2 * TIMER_MS * 1000); /* it runs out meanwhile */
	get_lapic(a, &la);
	printf("# KVM_GET_LAPIC after the timer ran out, vCPU paused: TMCCT %u, vector 0x%x %s IRR\n",
	       get_le32((const uint8_t *)la.regs + APIC_TMCCT), TIMER_VECTOR,
	       lapic_irr_has(&la, TIMER_VECTOR) ? "in" : "not in");
	state_save(a, &s1);

	/* The save put the expired timer's vector in IRR. */
	saved_lapic = record_lapic(&s1.vcpu[0]);
	if (!irr_has(saved_lapic, TIMER_VECTOR))
		fail_msg("the saved vCPU record has vector 0x%x not in IRR (TMICT %u, TMCCT %u): the "
			 "save did not raise the expired one-shot timer", TIMER_VECTOR,
			 get_le32(saved_lapic + APIC_TMICT), get_le32(saved_lapic + APIC_TMCCT));

	/* With the IRR bit the save set: exactly one interrupt. */
	timer_vm_load(b, a, &s1, &ib, &ab);
	assert_int_equal(vm_start(b), 0);
	port_run(b, &ib, 2, 3 * TIMER_MS);
	assert_int_equal(vm_stop_reason(b), VM_STOP_NONE);
	if (ib.writes != 1)
		fail_msg("the loaded vCPU took %" PRIu64 " timer interrupts, expected 1", ib.writes);

	/* What KVM does by itself with the timer as KVM_GET_LAPIC showed it. */
	timer_vm_load(c, a, &s1, &ic, &ac);
	get_lapic(c, &lc);
	memcpy(lc.regs + APIC_IRR, la.regs + APIC_IRR, 0x80);
	put_le32((uint8_t *)lc.regs + APIC_TMCCT, 0);
	assert_int_equal(ioctl(c->vcpus[0].fd, KVM_SET_LAPIC, &lc), 0);
	assert_int_equal(vm_start(c), 0);
	port_run(c, &ic, 2, 3 * TIMER_MS);
	printf("# without the IRR bit this host's KVM delivered %" PRIu64 " timer interrupt(s)%s\n",
	       ic.writes, ic.writes ? "" : ": the interrupt would have been lost");
	vm_destroy(a);
	vm_destroy(b);
	vm_destroy(c);
	saved_free(&s1);
	free(a);
	free(b);
	free(c);
}

/* ---- malformed records ---- */

/* stderr off while thousands of refusals are logged. */
static int quiet_begin(void)
{
	int saved = dup(2), null = open("/dev/null", O_WRONLY);

	assert_true(saved >= 0 && null >= 0);
	dup2(null, 2);
	close(null);
	return saved;
}

static void quiet_end(int saved)
{
	dup2(saved, 2);
	close(saved);
}

static int load_copy(struct vm *vm, const struct buf *rec, size_t len, size_t patch_at,
		     uint32_t patch)
{
	uint8_t *p = malloc(len + 1);
	int ret;

	assert_non_null(p);
	memcpy(p, rec->data, MIN(len, rec->len));
	if (len > rec->len)
		memset(p + rec->len, 0, len - rec->len);
	if (patch_at != SIZE_MAX)
		put_le32(p + patch_at, patch);
	ret = vcpu_load(vm, 0, X86_VCPU_STATE_VERSION, p, len, true);
	free(p);
	return ret;
}

static void test_vcpu_rejects(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct x86_vcpu_record_layout lay;
	struct buf rec = { 0 }, after = { 0 };
	uint64_t t0 = time_now_ns(), rec_ns;
	int q;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(vm_make(vm, "spin"), 0);
	rec_ns = vcpu_save(vm, 0, &rec);
	assert_int_equal(x86_vcpu_record_check(X86_VCPU_STATE_VERSION, rec.data, rec.len, &lay),
			 0);

	q = quiet_begin();
	for (size_t len = 0; len < rec.len; len++)
		if (load_copy(vm, &rec, len, SIZE_MAX, 0) != -EINVAL) {
			quiet_end(q);
			fail_msg("a record truncated to %zu of %zu bytes was not refused", len,
				 rec.len);
		}
	assert_int_equal(load_copy(vm, &rec, rec.len + 1, SIZE_MAX, 0), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len + 12, SIZE_MAX, 0), -EINVAL);
	/* Counts larger than what follows, or than the limits. */
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.msrs, lay.nmsrs + 1), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.msrs, X86_STATE_MSR_MAX + 1), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.msrs, UINT32_MAX), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.cpuid, CPUID_MAX_ENTRIES + 1), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.cpuid, UINT32_MAX), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.xsave, UINT32_MAX), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.xsave, 4095), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.xcrs, KVM_MAX_XCRS + 1), -EINVAL);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.tsc_khz, 0), -EINVAL);
	assert_non_null(strstr(load_err, "malformed"));
	/* A rate no KVM gives (beyond KVM_SET_TSC_KHZ's 0x7fffffff kHz, or
	 * another rate without TSC scaling): refused with both rates named,
	 * not taken for missing CPU features (-EOPNOTSUPP is -ENOTSUP). */
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.tsc_khz, UINT32_MAX), -EOPNOTSUPP);
	assert_non_null(strstr(load_err, "TSC ran at 4294967295 kHz"));
	assert_int_equal(vcpu_load(vm, 0, 2, rec.data, rec.len, true), -EPROTO);
	assert_int_equal(vcpu_load(vm, 0, 0, rec.data, rec.len, true), -EPROTO);
	assert_non_null(strstr(load_err, "state version 0"));
	quiet_end(q);

	/* None of that touched the vCPU; the record itself loads. */
	vcpu_save(vm, 0, &after);
	assert_same_vcpu("vCPU 0 after refused loads", &rec, &after, vm->tsc_khz, rec_ns,
			 time_now_ns() - t0 + ONE_SECOND_NS);
	assert_int_equal(vcpu_load(vm, 0, X86_VCPU_STATE_VERSION, rec.data, rec.len, true), 0);
	buf_free(&rec);
	buf_free(&after);
	vm_destroy(vm);
	free(vm);
}

static int vcpu_tsc_khz(struct vm *vm)
{
	return ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
}

/* A TSC rate KVM cannot give the vCPU is refused with a message naming
 * both rates, and the vCPU keeps its own; a rate within KVM's 250 ppm
 * tolerance is taken. kvm_pvm has no TSC scaling (KVM_CAP_TSC_CONTROL 0):
 * there KVM refuses a lower rate and would fake a higher one (catchup). */
static void test_vcpu_tsc_rate(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct x86_vcpu_record_layout lay;
	struct buf rec = { 0 };
	uint32_t khz;
	int scaling, lower, higher;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(vm_make(vm, "spin"), 0);
	khz = vm->tsc_khz;
	scaling = ioctl(vm->kvm.fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL);
	assert_int_equal(x86_vcpu_save(vm->kvm.fd, vm->vcpus[0].fd, &rec), 0);
	assert_int_equal(x86_vcpu_record_check(X86_VCPU_STATE_VERSION, rec.data, rec.len, &lay),
			 0);
	assert_int_equal(get_le32(rec.data + lay.tsc_khz), khz);
	lower = load_copy(vm, &rec, rec.len, lay.tsc_khz, khz / 2);
	assert_int_equal(vcpu_tsc_khz(vm), scaling > 0 ? khz / 2 : khz);
	higher = load_copy(vm, &rec, rec.len, lay.tsc_khz, khz * 2);
	assert_int_equal(vcpu_tsc_khz(vm), scaling > 0 ? khz * 2 : khz);
	printf("# KVM_CAP_TSC_CONTROL %d, host TSC %u kHz: loading %u kHz: %s; %u kHz: %s\n",
	       scaling, khz, khz / 2, lower ? strerror(-lower) : "taken", khz * 2,
	       higher ? strerror(-higher) : "taken");
	assert_int_equal(lower, scaling > 0 ? 0 : -EOPNOTSUPP);
	assert_int_equal(higher, scaling > 0 ? 0 : -EOPNOTSUPP);
	assert_int_equal(load_copy(vm, &rec, rec.len, lay.tsc_khz, khz - khz / 10000), 0);
	assert_int_equal(vcpu_tsc_khz(vm), khz - khz / 10000);
	buf_free(&rec);
	vm_destroy(vm);
	free(vm);
}

/* The clock goes on through a save and a load by the wall time between
 * them: a VM loaded 300 ms after the save reads kvmclock at least 300 ms
 * past the saved value, and not much more. A record without the
 * realtime flag loads the clock as it was. */
static void test_clock_advances_by_wall_time(void **state)
{
	struct vm *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct x86_kvm_devices d;
	struct kvm_clock_data c = { 0 };
	struct saved s;
	uint64_t saved;
	uint8_t *rec;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(vm_make(a, "spin"), 0);
	state_save(a, &s);
	saved = clock_of(&s.dev[DEV_CLOCK]);
	assert_true(get_le32(s.dev[DEV_CLOCK].data + 8) & KVM_CLOCK_REALTIME);
	vm_destroy(a);
	usleep(300 * 1000);
	assert_int_equal(vm_make(b, "spin"), 0);
	d.vm_fd = b->fd;
	assert_int_equal(x86_clock_ops.load(&d, x86_clock_ops.version, s.dev[DEV_CLOCK].data,
					    s.dev[DEV_CLOCK].len), 0);
	assert_int_equal(ioctl(b->fd, KVM_GET_CLOCK, &c), 0);
	assert_true(c.clock >= saved + 300 * 1000000ull);
	assert_true(c.clock < saved + 10 * 1000000000ull);
	/* flag cleared: as saved, plus what passes until KVM_GET_CLOCK */
	rec = s.dev[DEV_CLOCK].data;
	put_le32(rec + 8, get_le32(rec + 8) & ~(uint32_t)KVM_CLOCK_REALTIME);
	assert_int_equal(x86_clock_ops.load(&d, x86_clock_ops.version, rec,
					    s.dev[DEV_CLOCK].len), 0);
	assert_int_equal(ioctl(b->fd, KVM_GET_CLOCK, &c), 0);
	assert_true(c.clock >= saved && c.clock < saved + 300 * 1000000ull);
	saved_free(&s);
	vm_destroy(b);
	free(a);
	free(b);
}

static void test_device_rejects(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct x86_kvm_devices d;
	struct saved s;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(vm_make(vm, "spin"), 0);
	d.vm_fd = vm->fd;
	state_save(vm, &s);
	for (unsigned i = 0; i < NDEVS; i++) {
		const struct device_ops *ops = kvm_devs[i];
		struct buf *b = &s.dev[i];
		uint8_t *p = calloc(1, b->len + 1);

		assert_non_null(p);
		memcpy(p, b->data, b->len);
		for (size_t len = 0; len < b->len; len++)
			assert_int_equal(ops->load(&d, ops->version, p, len), -EINVAL);
		assert_int_equal(ops->load(&d, ops->version, p, b->len + 1), -EINVAL);
		assert_int_equal(ops->load(&d, ops->version + 1, p, b->len), -EPROTO);
		assert_int_equal(ops->load(&d, ops->version, p, b->len), 0);
		free(p);
	}
	/* A PIT count beyond 65536, and unknown PIT flags. */
	put_le32(s.dev[DEV_PIT].data, 0x10001);
	assert_int_equal(x86_pit_ops.load(&d, 1, s.dev[DEV_PIT].data, s.dev[DEV_PIT].len), -EINVAL);
	put_le32(s.dev[DEV_PIT].data, 0);
	put_le32(s.dev[DEV_PIT].data + s.dev[DEV_PIT].len - 4, 0x80);
	assert_int_equal(x86_pit_ops.load(&d, 1, s.dev[DEV_PIT].data, s.dev[DEV_PIT].len), -EINVAL);
	saved_free(&s);
	vm_destroy(vm);
	free(vm);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_save_load_save),
		cmocka_unit_test(test_vcpu_extra_msrs),
		cmocka_unit_test(test_ring3_io_after_load),
		cmocka_unit_test(test_expired_timer_after_load),
		cmocka_unit_test(test_vcpu_rejects),
		cmocka_unit_test(test_vcpu_tsc_rate),
		cmocka_unit_test(test_clock_advances_by_wall_time),
		cmocka_unit_test(test_device_rejects),
	};
	int fd;

	log_init("test_state");
	if (argc != 2) {
		fprintf(stderr, "usage: test_state PAYLOAD_DIR\n");
		return 2;
	}
	payload_dir = argv[1];
	fd = open("/dev/kvm", O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "SKIP: /dev/kvm is not usable here (%s): KVM state tests not run\n",
			strerror(errno));
		return 77;
	}
	close(fd);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
