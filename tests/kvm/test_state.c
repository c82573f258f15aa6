/* vCPU and in-kernel device state, save and load, on real KVM: a paused
 * VM saves the same bytes twice; its state loaded into a second VM in the
 * same process saves the same bytes again (STYLE.md §12) and runs on from
 * where the first stopped; malformed records are refused untouched.
 *
 * Two things of a paused VM move with host time, and are compared apart:
 * MSR_IA32_TSC (the guest TSC runs while the vCPUs are parked) and the
 * kvm-clock record (kvmclock runs too). Both must go on from the saved
 * value, never back, and by no more than the time the test takes.
 * Without /dev/kvm the tests SKIP (exit 77), loudly. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
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
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define NCPUS 2
#define SPIN_COUNTER 0x200000
#define MSR_IA32_TSC 0x10
#define ONE_SECOND_NS 1000000000ull

static const char *payload_dir;

/* The in-kernel devices, in load order; the clock is loaded after the
 * vCPUs. */
enum { DEV_IRQCHIP, DEV_PIT, DEV_CLOCK, NDEVS };
static const struct device_ops *const kvm_devs[NDEVS] = { &x86_irqchip_ops, &x86_pit_ops,
							   &x86_clock_ops };

struct saved {
	struct buf vcpu[NCPUS];
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

static void state_save(struct vm *vm, struct saved *s)
{
	struct x86_kvm_devices d = { .vm_fd = vm->fd };

	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < NDEVS; i++)
		assert_int_equal(kvm_devs[i]->save(&d, &s->dev[i]), 0);
	for (unsigned i = 0; i < NCPUS; i++)
		assert_int_equal(x86_vcpu_save(vm->kvm.fd, vm->vcpus[i].fd, &s->vcpu[i]), 0);
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
		assert_int_equal(x86_vcpu_load(vm->kvm.fd, vm->vcpus[i].fd,
					       X86_VCPU_STATE_VERSION, b->data, b->len), 0);
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

static uint64_t record_tsc(const struct buf *b)
{
	size_t at = record_msr_offset(b, MSR_IA32_TSC);

	assert_true(at != 0);
	return get_le64(b->data + at);
}

static const char *record_section(const struct buf *b, size_t off)
{
	static const char *const names[] = { "cpuid", "tsc_khz", "sregs", "regs",
					      "xsave", "xcrs", "msrs", "mp_state",
					      "lapic", "events", "debugregs" };
	struct x86_vcpu_record_layout l;
	const char *name = "?";

	if (x86_vcpu_record_check(X86_VCPU_STATE_VERSION, b->data, b->len, &l))
		return name;
	const size_t at[] = { l.cpuid, l.tsc_khz, l.sregs, l.regs, l.xsave, l.xcrs,
			      l.msrs, l.mp_state, l.lapic, l.events, l.debugregs };
	for (size_t i = 0; i < ARRAY_SIZE(at); i++)
		if (off >= at[i])
			name = names[i];
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

/* Compares two vCPU records but for MSR_IA32_TSC, which must be b's >= a's
 * and ahead by less than max_ns of guest time. */
static void assert_same_vcpu(const char *what, const struct buf *a, const struct buf *b,
			     uint32_t tsc_khz, uint64_t max_ns)
{
	struct buf ca = { 0 }, cb = { 0 };
	size_t at = record_msr_offset(a, MSR_IA32_TSC);
	uint64_t ta = record_tsc(a), tb = record_tsc(b);

	assert_true(tb >= ta);
	assert_true(tb - ta < max_ns / 1000000 * tsc_khz);
	buf_put(&ca, a->data, a->len);
	buf_put(&cb, b->data, b->len);
	assert_int_equal(buf_finish(&ca) ?: buf_finish(&cb), 0);
	assert_true(at != 0 && at == record_msr_offset(b, MSR_IA32_TSC));
	put_le64(ca.data + at, 0);
	put_le64(cb.data + at, 0);
	assert_same_bytes(what, &ca, &cb, a);
	buf_free(&ca);
	buf_free(&cb);
}

static uint64_t clock_of(const struct buf *b)
{
	assert_int_equal(b->len, 28);
	return get_le64(b->data);
}

/* b was saved after a (or loaded from it): the same state, time gone on. */
static void assert_same_state(const struct saved *a, const struct saved *b, uint32_t tsc_khz,
			      uint64_t max_ns)
{
	char what[32];

	for (unsigned i = 0; i < NCPUS; i++) {
		snprintf(what, sizeof(what), "vCPU %u", i);
		assert_same_vcpu(what, &a->vcpu[i], &b->vcpu[i], tsc_khz, max_ns);
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

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(vm_make(a, "spin"), 0);
	assert_int_equal(vm_make(b, "spin"), 0);
	memcpy(m.e, set, sizeof(set));
	assert_int_equal(ioctl(a->vcpus[0].fd, KVM_SET_MSRS, &m), (int)ARRAY_SIZE(set));
	assert_int_equal(x86_vcpu_save(a->kvm.fd, a->vcpus[0].fd, &ra), 0);
	for (size_t i = 0; i < ARRAY_SIZE(set); i++) {
		size_t at = record_msr_offset(&ra, set[i].index);

		assert_true(at != 0);
		assert_true(get_le64(ra.data + at) == set[i].data);
	}
	assert_int_equal(x86_vcpu_load(b->kvm.fd, b->vcpus[0].fd, X86_VCPU_STATE_VERSION, ra.data,
				       ra.len), 0);
	assert_int_equal(x86_vcpu_save(b->kvm.fd, b->vcpus[0].fd, &rb), 0);
	assert_same_vcpu("vCPU 0 with MTRRs and TSC_AUX", &ra, &rb, a->tsc_khz, 10 * ONE_SECOND_NS);
	buf_free(&ra);
	buf_free(&rb);
	vm_destroy(a);
	vm_destroy(b);
	free(a);
	free(b);
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
	ret = x86_vcpu_load(vm->kvm.fd, vm->vcpus[0].fd, X86_VCPU_STATE_VERSION, p, len);
	free(p);
	return ret;
}

static void test_vcpu_rejects(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct x86_vcpu_record_layout lay;
	struct buf rec = { 0 }, after = { 0 };
	int q;

	(void)state;
	assert_non_null(vm);
	assert_int_equal(vm_make(vm, "spin"), 0);
	assert_int_equal(x86_vcpu_save(vm->kvm.fd, vm->vcpus[0].fd, &rec), 0);
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
	assert_int_equal(x86_vcpu_load(vm->kvm.fd, vm->vcpus[0].fd, 2, rec.data, rec.len),
			 -EPROTO);
	assert_int_equal(x86_vcpu_load(vm->kvm.fd, vm->vcpus[0].fd, 0, rec.data, rec.len),
			 -EPROTO);
	quiet_end(q);

	/* None of that touched the vCPU; the record itself loads. */
	assert_int_equal(x86_vcpu_save(vm->kvm.fd, vm->vcpus[0].fd, &after), 0);
	assert_same_vcpu("vCPU 0 after refused loads", &rec, &after, vm->tsc_khz, 10 * ONE_SECOND_NS);
	assert_int_equal(x86_vcpu_load(vm->kvm.fd, vm->vcpus[0].fd, X86_VCPU_STATE_VERSION,
				       rec.data, rec.len), 0);
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
		cmocka_unit_test(test_vcpu_rejects),
		cmocka_unit_test(test_vcpu_tsc_rate),
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
