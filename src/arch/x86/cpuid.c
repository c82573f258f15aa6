#include "arch/x86/cpuid.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_KVM_SIGNATURE 0x40000000
#define CPUID_KVM_FEATURES 0x40000001
#define CPUID_TSC_LEAF 0x40000010
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_7_EDX_ARCH_CAPABILITIES (1u << 29)

int x86_cpuid_supported(int kvm_fd, struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	t->head.nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &t->head) < 0)
		return -errno;
	return 0;
}

struct kvm_cpuid_entry2 *x86_cpuid_find(struct cpuid_table *t, uint32_t function,
					uint32_t index)
{
	for (uint32_t i = 0; i < t->head.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function == function &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

static struct kvm_cpuid_entry2 *cpuid_add(struct cpuid_table *t, uint32_t function)
{
	struct kvm_cpuid_entry2 *e = x86_cpuid_find(t, function, 0);

	if (e)
		return e;
	if (t->head.nent >= CPUID_MAX_ENTRIES)
		return NULL;
	e = &t->entries[t->head.nent++];
	memset(e, 0, sizeof(*e));
	e->function = function;
	return e;
}

/* Bits needed to number n things (x2APIC ID shifts of leaf 0xB). */
static uint32_t bits_for(unsigned n)
{
	uint32_t b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static void cpuid_topology(struct cpuid_table *t, unsigned apic_id, unsigned ncpus)
{
	/* One socket, ncpus cores, one thread each: what --cpus N means. */
	for (uint32_t i = 0; i < t->head.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function == 0xb || e->function == 0x1f) {
			e->edx = apic_id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0; /* level 0: SMT */
			} else if (e->index == 1) {
				e->eax = bits_for(ncpus);
				e->ebx = ncpus;
				e->ecx = (2u << 8) | 1; /* level 1: core */
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
		}
		if (e->function == 4 && (e->eax & 0x1f)) {
			e->eax &= ~(0x3fu << 26);
			e->eax |= (uint32_t)(ncpus > 64 ? 63 : ncpus - 1) << 26;
		}
	}
}

void x86_cpuid_for_vcpu(struct cpuid_table *t, unsigned apic_id, unsigned ncpus,
			uint32_t tsc_khz)
{
	struct kvm_cpuid_entry2 *e;

	e = x86_cpuid_find(t, 1, 0);
	if (e) {
		e->ebx &= 0x0000ffffu;
		e->ebx |= (apic_id & 0xffu) << 24;
		e->ebx |= (ncpus > 255 ? 255u : ncpus) << 16;
		e->edx |= 1u << 28; /* HTT: the logical count above is valid */
		e->ecx |= CPUID_1_ECX_HYPERVISOR;
	}
	/* KVM reports ARCH_CAPABILITIES with the host's value, which cannot
	 * be written back on every host (kvm_pvm refuses MSR 0x10a); a guest
	 * that does not see the bit never reads the MSR. */
	e = x86_cpuid_find(t, 7, 0);
	if (e)
		e->edx &= ~CPUID_7_EDX_ARCH_CAPABILITIES;
	cpuid_topology(t, apic_id, ncpus);

	e = x86_cpuid_find(t, CPUID_KVM_SIGNATURE, 0);
	if (e && tsc_khz) {
		struct kvm_cpuid_entry2 *f = cpuid_add(t, CPUID_TSC_LEAF);

		if (f) {
			if (e->eax < CPUID_TSC_LEAF)
				e->eax = CPUID_TSC_LEAF;
			f->eax = tsc_khz;
			f->ebx = KVM_APIC_BUS_KHZ;
			f->ecx = f->edx = 0;
		}
	}
}

/* The feature registers a guest's CPUID may use, and the bits of them that
 * are not features but state (KVM sets them from CR4 and the APIC) or that
 * ferry itself adds. */
static const struct feature_reg {
	uint32_t function, index;
	uint8_t reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t ignore;
} feature_regs[] = {
	{ 1, 0, 2, (1u << 27) | CPUID_1_ECX_HYPERVISOR }, /* OSXSAVE */
	{ 1, 0, 3, (1u << 9) | (1u << 28) },               /* APIC, HTT */
	{ 7, 0, 1, 0 },
	{ 7, 0, 2, 1u << 4 },                              /* OSPKE */
	{ 7, 0, 3, CPUID_7_EDX_ARCH_CAPABILITIES },
	{ 7, 1, 0, 0 },
	{ 0xd, 1, 0, 0 },
	{ 0x80000001, 0, 2, 0 },
	{ 0x80000001, 0, 3, 0 },
	{ 0x80000008, 0, 1, 0 },
};

static const struct feature_name {
	uint32_t function;
	uint8_t reg, bit;
	const char *name;
} feature_names[] = {
	{ 1, 2, 0, "sse3" },      { 1, 2, 9, "ssse3" },      { 1, 2, 12, "fma" },
	{ 1, 2, 19, "sse4.1" },   { 1, 2, 20, "sse4.2" },    { 1, 2, 22, "movbe" },
	{ 1, 2, 23, "popcnt" },   { 1, 2, 25, "aes" },       { 1, 2, 26, "xsave" },
	{ 1, 2, 28, "avx" },      { 1, 2, 29, "f16c" },      { 1, 2, 30, "rdrand" },
	{ 1, 2, 24, "tsc-deadline" }, { 1, 2, 21, "x2apic" }, { 1, 2, 1, "pclmulqdq" },
	{ 7, 1, 3, "bmi1" },      { 7, 1, 5, "avx2" },       { 7, 1, 8, "bmi2" },
	{ 7, 1, 16, "avx512f" },  { 7, 1, 18, "rdseed" },    { 7, 1, 19, "adx" },
	{ 7, 1, 29, "sha" },      { 7, 1, 9, "erms" },       { 7, 1, 0, "fsgsbase" },
	{ 7, 2, 10, "vpclmulqdq" }, { 7, 2, 9, "vaes" },     { 7, 3, 4, "fsrm" },
	{ 0x80000001, 3, 27, "rdtscp" }, { 0x80000001, 2, 5, "lzcnt" },
	{ 0x80000001, 3, 26, "pdpe1gb" },
	/* KVM's paravirtual features (leaf 0x40000001 EAX, the kernel's
	 * Documentation/virt/kvm/x86/cpuid.rst), by libvirt's names. */
	{ CPUID_KVM_FEATURES, 0, 0, "kvmclock" },
	{ CPUID_KVM_FEATURES, 0, 1, "kvm_nopiodelay" },
	{ CPUID_KVM_FEATURES, 0, 3, "kvmclock2" },
	{ CPUID_KVM_FEATURES, 0, 4, "kvm_asyncpf" },
	{ CPUID_KVM_FEATURES, 0, 5, "kvm_steal_time" },
	{ CPUID_KVM_FEATURES, 0, 6, "kvm_pv_eoi" },
	{ CPUID_KVM_FEATURES, 0, 7, "kvm_pv_unhalt" },
	{ CPUID_KVM_FEATURES, 0, 9, "kvm_pv_tlb_flush" },
	{ CPUID_KVM_FEATURES, 0, 10, "kvm_asyncpf_vmexit" },
	{ CPUID_KVM_FEATURES, 0, 11, "kvm_pv_ipi" },
	{ CPUID_KVM_FEATURES, 0, 12, "kvm_poll_control" },
	{ CPUID_KVM_FEATURES, 0, 13, "kvm_pv_sched_yield" },
	{ CPUID_KVM_FEATURES, 0, 14, "kvm_asyncpf_int" },
	{ CPUID_KVM_FEATURES, 0, 15, "kvm_msi_ext_dest_id" },
	{ CPUID_KVM_FEATURES, 0, 24, "kvmclock_stable_bit" },
};

/* Feature names compare with '-' and '_' alike (QEMU writes
 * kvm-pv-unhalt, libvirt kvm_pv_unhalt; sse4.1 is sse4_1 to QEMU too). */
static bool feature_name_is(const char *table, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len && table[i]; i++) {
		char a = table[i], b = s[i];

		if (a == '.' || a == '-')
			a = '_';
		if (b == '.' || b == '-')
			b = '_';
		if (a != b)
			return false;
	}
	return i == len && !table[i];
}

static const struct feature_name *feature_by_name(const char *s, size_t len)
{
	for (size_t k = 0; k < sizeof(feature_names) / sizeof(feature_names[0]); k++)
		if (feature_name_is(feature_names[k].name, s, len))
			return &feature_names[k];
	return NULL;
}

static uint32_t *reg_ptr(struct kvm_cpuid_entry2 *e, unsigned reg)
{
	return reg == 0 ? &e->eax : reg == 1 ? &e->ebx : reg == 2 ? &e->ecx : &e->edx;
}

int x86_cpuid_apply_spec(struct cpuid_table *t, const char *spec, char *err, size_t errlen)
{
	const char *p = spec ? spec : "host";
	size_t len = strcspn(p, ",");

	if (len != 4 || strncmp(p, "host", 4)) {
		snprintf(err, errlen, "'%.*s' is not a CPU ferry offers (only host: what KVM "
			 "supports here, less features turned off)", (int)len, p);
		return -EINVAL;
	}
	for (p += len; *p == ','; p += len) {
		const char *tok = ++p, *eq;
		const struct feature_name *f;
		struct kvm_cpuid_entry2 *e;
		bool on;
		size_t nlen;

		len = strcspn(tok, ",");
		eq = memchr(tok, '=', len);
		if (*tok == '-' || *tok == '+') {
			on = *tok == '+';
			tok++;
			nlen = len - 1;
		} else if (eq && (!strncmp(eq, "=off", 4) || !strncmp(eq, "=on", 3)) &&
			   (size_t)(eq - tok) + (eq[2] == 'n' ? 3 : 4) == len) {
			on = eq[2] == 'n';
			nlen = (size_t)(eq - tok);
		} else {
			snprintf(err, errlen, "'%.*s': write -FEATURE or FEATURE=off (+FEATURE "
				 "or FEATURE=on to require one)", (int)len, tok);
			return -EINVAL;
		}
		f = nlen && !memchr(tok, '=', nlen) ? feature_by_name(tok, nlen) : NULL;
		if (!f) {
			snprintf(err, errlen, "unknown CPU feature '%.*s'", (int)nlen, tok);
			return -EINVAL;
		}
		e = x86_cpuid_find(t, f->function, 0);
		if (on && (!e || !(*reg_ptr(e, f->reg) & (1u << f->bit)))) {
			snprintf(err, errlen, "the host CPU does not provide required features: %s",
				 f->name);
			return -ENOTSUP;
		}
		if (!on && e)
			*reg_ptr(e, f->reg) &= ~(1u << f->bit);
	}
	return 0;
}

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, unsigned reg)
{
	return reg == 0 ? e->eax : reg == 1 ? e->ebx : reg == 2 ? e->ecx : e->edx;
}

static const char *reg_name(unsigned reg)
{
	static const char *const n[] = { "EAX", "EBX", "ECX", "EDX" };

	return n[reg & 3];
}

int x86_cpuid_check_compatible(struct cpuid_table *saved, struct cpuid_table *host, char *err,
			       size_t errlen)
{
	size_t off = 0;
	int bad = 0;

	for (size_t i = 0; i < sizeof(feature_regs) / sizeof(feature_regs[0]); i++) {
		const struct feature_reg *f = &feature_regs[i];
		struct kvm_cpuid_entry2 *s = x86_cpuid_find(saved, f->function, f->index);
		struct kvm_cpuid_entry2 *h = x86_cpuid_find(host, f->function, f->index);
		uint32_t missing;

		if (!s)
			continue;
		missing = reg_of(s, f->reg) & ~(h ? reg_of(h, f->reg) : 0) & ~f->ignore;
		for (unsigned bit = 0; bit < 32; bit++) {
			const char *name = NULL;

			if (!(missing & (1u << bit)))
				continue;
			for (size_t k = 0; k < sizeof(feature_names) / sizeof(feature_names[0]); k++)
				if (feature_names[k].function == f->function &&
				    feature_names[k].reg == f->reg && feature_names[k].bit == bit &&
				    f->index == 0)
					name = feature_names[k].name;
			if (off < errlen) {
				int n = name ? snprintf(err + off, errlen - off, "%s%s", bad ? ", " : "",
							name)
					     : snprintf(err + off, errlen - off,
							"%sleaf 0x%x.%u %s bit %u", bad ? ", " : "",
							f->function, f->index, reg_name(f->reg), bit);

				off += n > 0 ? (size_t)n : 0;
			}
			bad++;
		}
	}
	if (bad && errlen)
		err[errlen - 1] = 0;
	return bad ? -ENOTSUP : 0;
}
