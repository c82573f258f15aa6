/* Unit tests for x86_cpuid_for_vcpu() (src/arch/x86/cpuid.h): a fake
 * KVM_GET_SUPPORTED_CPUID table in, the per-vCPU table out. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/cpuid.h"
#include "common/util.h"

#define SIG_LEAF 0x40000000
#define TSC_LEAF 0x40000010
#define ARCH_CAP (1u << 29)
#define HYPERVISOR (1u << 31)

static void add(struct cpuid_table *t, uint32_t fn, uint32_t idx, bool sig_idx, uint32_t eax,
		uint32_t ebx, uint32_t ecx, uint32_t edx)
{
	struct kvm_cpuid_entry2 *e = &t->entries[t->head.nent++];

	*e = (struct kvm_cpuid_entry2){
		.function = fn, .index = idx,
		.flags = sig_idx ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
		.eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx,
	};
}

/* Roughly what a modern host's KVM reports. */
static void fake_supported(struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	add(t, 0, 0, false, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69);
	/* Leaf 1: host APIC ID 0x17 and 16 logicals in EBX, no HTT. */
	add(t, 1, 0, false, 0x000906ea, 0x17100800, 0x7ffafbff, 0x0fabfbff);
	add(t, 4, 0, true, 0x1c004121, 0x01c0003f, 0x3f, 0);
	add(t, 4, 1, true, 0x1c004122, 0x01c0003f, 0x3f, 0);
	add(t, 4, 2, true, 0, 0, 0, 0);
	add(t, 7, 0, true, 1, 0x029c6fbf, 0x40000000, 0x9c000400 | ARCH_CAP);
	add(t, 7, 1, true, 0, 0, 0, ARCH_CAP); /* bit 29 means something else here */
	add(t, 0xb, 0, true, 1, 2, 0x100, 0x17);
	add(t, 0xb, 1, true, 4, 16, 0x201, 0x17);
	add(t, 0xb, 2, true, 0, 0, 2, 0x17);
	add(t, SIG_LEAF, 0, false, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
	add(t, 0x40000001, 0, false, 0x01007afb, 0, 0, 0);
	add(t, 0x80000000, 0, false, 0x80000008, 0, 0, 0);
}

static struct kvm_cpuid_entry2 *get(struct cpuid_table *t, uint32_t fn, uint32_t idx)
{
	struct kvm_cpuid_entry2 *e = x86_cpuid_find(t, fn, idx);

	if (!e)
		fail_msg("leaf 0x%x index %u missing", fn, idx);
	return e;
}

static void test_leaf1(void **state)
{
	static const unsigned ids[][2] = { { 0, 1 }, { 1, 2 }, { 3, 4 }, { 254, 255 } };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		struct cpuid_table t;
		struct kvm_cpuid_entry2 *e;

		fake_supported(&t);
		x86_cpuid_for_vcpu(&t, ids[i][0], ids[i][1], 2000000);
		e = get(&t, 1, 0);
		assert_int_equal(e->ebx >> 24, ids[i][0]);
		assert_int_equal((e->ebx >> 16) & 0xff, ids[i][1]);
		assert_int_equal(e->ebx & 0xffff, 0x0800); /* CLFLUSH size, brand kept */
		assert_true(e->ecx & HYPERVISOR);
		assert_true(e->edx & (1u << 28)); /* HTT */
		assert_int_equal(e->eax, 0x000906ea);
		/* The other feature bits are the host's. */
		assert_int_equal(e->ecx & ~HYPERVISOR, 0x7ffafbff);
		assert_int_equal(e->edx & ~(1u << 28), 0x0fabfbff);
	}
}

static void test_leaf7_arch_capabilities(void **state)
{
	struct cpuid_table t;

	(void)state;
	fake_supported(&t);
	x86_cpuid_for_vcpu(&t, 0, 1, 2000000);
	assert_int_equal(get(&t, 7, 0)->edx, 0x9c000400);
	assert_int_equal(get(&t, 7, 0)->ebx, 0x029c6fbf);
	assert_int_equal(get(&t, 7, 0)->ecx, 0x40000000);
	/* Subleaf 1 is a different register set: untouched. */
	assert_int_equal(get(&t, 7, 1)->edx, ARCH_CAP);
}

static void test_leaf_b_topology(void **state)
{
	static const unsigned cases[][3] = {
		/* apic_id, ncpus, bits to number the cores */
		{ 0, 1, 0 }, { 1, 2, 1 }, { 2, 3, 2 }, { 3, 4, 2 }, { 4, 5, 3 }, { 254, 255, 8 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cpuid_table t;
		struct kvm_cpuid_entry2 *e;

		fake_supported(&t);
		x86_cpuid_for_vcpu(&t, cases[i][0], cases[i][1], 0);
		e = get(&t, 0xb, 0);
		assert_int_equal(e->edx, cases[i][0]);
		assert_int_equal(e->eax, 0);
		assert_int_equal(e->ebx, 1);
		assert_int_equal(e->ecx, 0x100);
		e = get(&t, 0xb, 1);
		assert_int_equal(e->edx, cases[i][0]);
		assert_int_equal(e->eax, cases[i][2]);
		assert_int_equal(e->ebx, cases[i][1]);
		assert_int_equal(e->ecx, 0x201);
		/* The APIC ID fits the shift. */
		assert_true(cases[i][0] >> e->eax == 0);
		e = get(&t, 0xb, 2);
		assert_int_equal(e->edx, cases[i][0]);
		assert_int_equal(e->eax, 0);
		assert_int_equal(e->ebx, 0);
		assert_int_equal(e->ecx & 0xff00, 0); /* invalid level ends the list */
		/* Leaf 4: cores per package - 1 in EAX[31:26]. */
		assert_int_equal(get(&t, 4, 0)->eax >> 26, MIN(cases[i][1], 64) - 1);
		assert_int_equal(get(&t, 4, 1)->eax >> 26, MIN(cases[i][1], 64) - 1);
		assert_int_equal(get(&t, 4, 0)->eax & 0x03ffffff, 0x004121);
		assert_int_equal(get(&t, 4, 2)->eax, 0);
	}
}

static void test_tsc_leaf(void **state)
{
	struct cpuid_table t;
	struct kvm_cpuid_entry2 *e;
	uint32_t n;

	(void)state;
	fake_supported(&t);
	n = t.head.nent;
	x86_cpuid_for_vcpu(&t, 0, 1, 2995200);
	assert_int_equal(t.head.nent, n + 1);
	assert_int_equal(get(&t, SIG_LEAF, 0)->eax, TSC_LEAF);
	assert_int_equal(get(&t, SIG_LEAF, 0)->ebx, 0x4b4d564b); /* signature kept */
	e = get(&t, TSC_LEAF, 0);
	assert_int_equal(e->eax, 2995200);
	assert_int_equal(e->ebx, 1000000);
	assert_int_equal(e->ecx, 0);
	assert_int_equal(e->edx, 0);
	assert_int_equal(e->index, 0);
	assert_int_equal(e->flags, 0);
}

/* Applying it twice (a vCPU re-created) changes nothing more. */
static void test_idempotent(void **state)
{
	struct cpuid_table a, b;

	(void)state;
	fake_supported(&a);
	x86_cpuid_for_vcpu(&a, 3, 4, 1234567);
	b = a;
	x86_cpuid_for_vcpu(&b, 3, 4, 1234567);
	assert_int_equal(a.head.nent, b.head.nent);
	assert_memory_equal(a.entries, b.entries, sizeof(a.entries[0]) * a.head.nent);
}

static void test_max_leaf_not_lowered(void **state)
{
	struct cpuid_table t;

	(void)state;
	fake_supported(&t);
	get(&t, SIG_LEAF, 0)->eax = 0x40000020;
	x86_cpuid_for_vcpu(&t, 0, 1, 1000);
	assert_int_equal(get(&t, SIG_LEAF, 0)->eax, 0x40000020);
	assert_int_equal(get(&t, TSC_LEAF, 0)->eax, 1000);
}

/* Without a TSC frequency, or without KVM's leaves, no TSC leaf. */
static void test_no_tsc_leaf(void **state)
{
	struct cpuid_table t;
	uint32_t n;

	(void)state;
	fake_supported(&t);
	n = t.head.nent;
	x86_cpuid_for_vcpu(&t, 0, 1, 0);
	assert_int_equal(t.head.nent, n);
	assert_null(x86_cpuid_find(&t, TSC_LEAF, 0));
	assert_int_equal(get(&t, SIG_LEAF, 0)->eax, 0x40000001);

	fake_supported(&t);
	get(&t, SIG_LEAF, 0)->function = 0x12345; /* no KVM signature leaf */
	n = t.head.nent;
	x86_cpuid_for_vcpu(&t, 0, 1, 1000);
	assert_int_equal(t.head.nent, n);
	assert_null(x86_cpuid_find(&t, TSC_LEAF, 0));
}

/* A full table: nothing written past it. */
static void test_full_table(void **state)
{
	struct cpuid_table t;

	(void)state;
	fake_supported(&t);
	while (t.head.nent < CPUID_MAX_ENTRIES)
		add(&t, 0x80000100 + t.head.nent, 0, false, 0, 0, 0, 0);
	x86_cpuid_for_vcpu(&t, 1, 2, 1000);
	assert_int_equal(t.head.nent, CPUID_MAX_ENTRIES);
	assert_null(x86_cpuid_find(&t, TSC_LEAF, 0));
	assert_true(get(&t, 1, 0)->ecx & HYPERVISOR);
}

/* Absent leaves are not invented (apart from the TSC leaf). */
static void test_sparse_table(void **state)
{
	struct cpuid_table t;

	(void)state;
	memset(&t, 0, sizeof(t));
	add(&t, 0, 0, false, 0xd, 0, 0, 0);
	x86_cpuid_for_vcpu(&t, 0, 1, 1000);
	assert_int_equal(t.head.nent, 1);
	assert_null(x86_cpuid_find(&t, 1, 0));
}

static void test_find(void **state)
{
	struct cpuid_table t;

	(void)state;
	fake_supported(&t);
	assert_int_equal(get(&t, 0xb, 1)->ebx, 16);
	assert_int_equal(get(&t, 0xb, 2)->ecx, 2);
	assert_null(x86_cpuid_find(&t, 0xb, 3));
	assert_null(x86_cpuid_find(&t, 0x1234, 0));
	/* Without the significant-index flag any index matches. */
	assert_int_equal(get(&t, 1, 7)->eax, 0x000906ea);
}


/* x86_cpuid_check_compatible: a vCPU table made on one host, checked
 * against another host's. */
/* --cpu: "host", less features turned off, by libvirt's or QEMU's names. */
static void test_cpu_spec_host(void **state)
{
	struct cpuid_table t, want;
	char err[160] = "";

	(void)state;
	fake_supported(&want);
	fake_supported(&t);
	assert_int_equal(x86_cpuid_apply_spec(&t, NULL, err, sizeof(err)), 0);
	assert_int_equal(x86_cpuid_apply_spec(&t, "host", err, sizeof(err)), 0);
	assert_memory_equal(&t, &want, sizeof(t));
}

static void test_cpu_spec_disable(void **state)
{
	static const char *const specs[] = {
		"host,-kvm_pv_unhalt,-avx2,-sse4.1",
		"host,kvm-pv-unhalt=off,avx2=off,sse4_1=off",
		"host,-kvm-pv-unhalt,avx2=off,-sse4-1,+kvmclock",
	};
	char err[160] = "";

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(specs); i++) {
		struct cpuid_table t, want;

		fake_supported(&want);
		get(&want, 0x40000001, 0)->eax &= ~(1u << 7);
		get(&want, 7, 0)->ebx &= ~(1u << 5);
		get(&want, 1, 0)->ecx &= ~(1u << 19);
		fake_supported(&t);
		if (x86_cpuid_apply_spec(&t, specs[i], err, sizeof(err)))
			fail_msg("%s: %s", specs[i], err);
		/* Those bits and nothing else. */
		assert_memory_equal(&t, &want, sizeof(t));
	}
}

static void test_cpu_spec_require(void **state)
{
	struct cpuid_table t;
	char err[160] = "";

	(void)state;
	fake_supported(&t);
	assert_int_equal(x86_cpuid_apply_spec(&t, "host,+avx2,kvmclock=on", err, sizeof(err)), 0);
	/* Leaf 0x80000001 is not in the table: the host has no pdpe1gb. */
	assert_int_equal(x86_cpuid_apply_spec(&t, "host,+pdpe1gb", err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "the host CPU does not provide required features: pdpe1gb");
	/* Turned off first, then required: not there any more. */
	assert_int_equal(x86_cpuid_apply_spec(&t, "host,-avx2,+avx2", err, sizeof(err)),
			 -ENOTSUP);
}

static void test_cpu_spec_bad(void **state)
{
	static const struct {
		const char *spec, *err;
	} bad[] = {
		{ "Skylake-Client", "'Skylake-Client' is not a CPU ferry offers" },
		{ "hostx", "'hostx' is not a CPU ferry offers" },
		{ "", "'' is not a CPU ferry offers" },
		{ "host,-nosuch", "unknown CPU feature 'nosuch'" },
		{ "host,kvm_pv_unhalt", "'kvm_pv_unhalt': write -FEATURE or FEATURE=off" },
		{ "host,avx2=maybe", "'avx2=maybe': write -FEATURE or FEATURE=off" },
		{ "host,avx2=offx", "'avx2=offx': write -FEATURE or FEATURE=off" },
		{ "host,", "'': write -FEATURE or FEATURE=off" },
		{ "host,-", "unknown CPU feature ''" },
		{ "host,=off", "unknown CPU feature ''" },
		{ "host,-avx2=off", "unknown CPU feature 'avx2=off'" },
		{ "host,-avx2,,", "'': write -FEATURE or FEATURE=off" },
	};
	char err[160];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cpuid_table t;

		fake_supported(&t);
		err[0] = 0;
		if (x86_cpuid_apply_spec(&t, bad[i].spec, err, sizeof(err)) != -EINVAL ||
		    strncmp(err, bad[i].err, strlen(bad[i].err)))
			fail_msg("'%s': got '%s', want '%s...'", bad[i].spec, err, bad[i].err);
	}
}

static struct cpuid_table saved_t, host_t;

static void make_pair(void)
{
	fake_supported(&saved_t);
	x86_cpuid_for_vcpu(&saved_t, 3, 4, 2000000);
	fake_supported(&host_t);
	x86_cpuid_for_vcpu(&host_t, 0, 1, 0);
}

static void test_compatible_same_host(void **state)
{
	char err[256] = "";

	(void)state;
	make_pair();
	/* Topology, APIC IDs, the TSC leaf differ; features do not. */
	assert_int_equal(x86_cpuid_check_compatible(&saved_t, &host_t, err, sizeof(err)), 0);
}

static void test_compatible_dynamic_bits_ignored(void **state)
{
	char err[256] = "";

	(void)state;
	make_pair();
	/* OSXSAVE and OSPKE follow the guest's CR4, APIC its APIC base: KVM
	 * sets them in a running vCPU's table; they are not host features. */
	get(&saved_t, 1, 0)->ecx |= 1u << 27;
	get(&host_t, 1, 0)->ecx &= ~(1u << 27);
	get(&saved_t, 7, 0)->ecx |= 1u << 4;
	get(&host_t, 1, 0)->edx &= ~(1u << 9);
	assert_int_equal(x86_cpuid_check_compatible(&saved_t, &host_t, err, sizeof(err)), 0);
}

static void test_incompatible_names_features(void **state)
{
	char err[256] = "";

	(void)state;
	make_pair();
	get(&host_t, 7, 0)->ebx &= ~(1u << 5);  /* avx2 */
	get(&host_t, 1, 0)->ecx &= ~(1u << 25); /* aes */
	get(&host_t, 7, 0)->ebx &= ~(1u << 1);  /* no name in the table */
	assert_int_equal(x86_cpuid_check_compatible(&saved_t, &host_t, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, "avx2"));
	assert_non_null(strstr(err, "aes"));
	assert_non_null(strstr(err, "leaf 0x7.0 EBX bit 1"));
}

static void test_incompatible_missing_leaf(void **state)
{
	char err[256] = "";

	(void)state;
	make_pair();
	/* The host has no leaf 7 at all: every leaf-7 feature is missing. */
	for (uint32_t i = 0; i < host_t.head.nent; i++)
		if (host_t.entries[i].function == 7)
			host_t.entries[i].function = 0x12345;
	assert_int_equal(x86_cpuid_check_compatible(&saved_t, &host_t, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, "avx2"));
}

static void test_more_on_host_is_fine(void **state)
{
	char err[256] = "";

	(void)state;
	make_pair();
	get(&saved_t, 7, 0)->ebx &= ~(1u << 5); /* the guest never had avx2 */
	assert_int_equal(x86_cpuid_check_compatible(&saved_t, &host_t, err, sizeof(err)), 0);
}

static void test_incompatible_message_bounded(void **state)
{
	char err[16];

	(void)state;
	make_pair();
	memset(&host_t, 0, sizeof(host_t)); /* nothing at all */
	assert_int_equal(x86_cpuid_check_compatible(&saved_t, &host_t, err, sizeof(err)),
			 -ENOTSUP);
	assert_true(strlen(err) < sizeof(err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf1),
		cmocka_unit_test(test_leaf7_arch_capabilities),
		cmocka_unit_test(test_leaf_b_topology),
		cmocka_unit_test(test_tsc_leaf),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_max_leaf_not_lowered),
		cmocka_unit_test(test_no_tsc_leaf),
		cmocka_unit_test(test_full_table),
		cmocka_unit_test(test_sparse_table),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_cpu_spec_host),
		cmocka_unit_test(test_cpu_spec_disable),
		cmocka_unit_test(test_cpu_spec_require),
		cmocka_unit_test(test_cpu_spec_bad),
		cmocka_unit_test(test_compatible_same_host),
		cmocka_unit_test(test_compatible_dynamic_bits_ignored),
		cmocka_unit_test(test_incompatible_names_features),
		cmocka_unit_test(test_incompatible_missing_leaf),
		cmocka_unit_test(test_more_on_host_is_fine),
		cmocka_unit_test(test_incompatible_message_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
